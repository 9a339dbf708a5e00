"""One exception family and a report that collects what readers and writers decided.

Every user-facing problem is a :class:`SegbridgeError` whose ``str()`` is one line naming the file
and the problem; the CLI prints it and exits non-zero. Readers are tolerant by default and put
what they noticed into a :class:`Report`; ``strict=True`` turns those warnings into errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class SegbridgeError(Exception):
    """Base class: a problem the user can act on, described in one line."""


class InvalidInputError(SegbridgeError):
    """The input file or argument is broken, inconsistent or not what was expected."""


class GeometryMismatchError(SegbridgeError):
    """Two grids (or a frame and a grid) do not line up within the stated tolerance."""


class UnsupportedError(SegbridgeError):
    """A valid input that segbridge does not handle (yet)."""


class RemoteError(SegbridgeError):
    """A server could not be reached or answered with an error."""


class ValidationFailed(SegbridgeError):
    """An output (or input) has error-level validation findings."""

    def __init__(self, message: str, findings: list | None = None) -> None:
        super().__init__(message)
        self.findings = findings or []


class StrictModeError(InvalidInputError):
    """A warning raised as an error because ``strict`` was asked for."""


@dataclass
class Report:
    """Warnings and decisions collected while reading, converting or writing.

    ``warnings`` are things that may be wrong with the data; ``notes`` are decisions taken on the
    user's behalf (renumbering, splitting, filling) that they should know about.
    """

    strict: bool = False
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        """Record a warning, or raise it when the report is strict."""
        if self.strict:
            raise StrictModeError(f"{message} (strict mode)")
        if message not in self.warnings:
            self.warnings.append(message)

    def note(self, message: str) -> None:
        """Record a decision that was taken."""
        if message not in self.notes:
            self.notes.append(message)

    def extend(self, other: Report) -> None:
        for w in other.warnings:
            self.warn(w)
        for n in other.notes:
            self.note(n)
