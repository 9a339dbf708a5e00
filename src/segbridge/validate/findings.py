"""Findings, rules and the registry every rule module adds to."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

ERROR, WARNING, INFO = "error", "warning", "info"
PROFILES = ("standard", "ohif", "slicer")
ALL = frozenset(PROFILES)


@dataclass(frozen=True)
class Rule:
    """One check: what it looks at, how bad a violation is, where the requirement comes from."""

    id: str
    kind: str  # "SEG" or "RTSTRUCT"
    severity: str
    summary: str
    hint: str
    source: str
    profiles: frozenset
    check: Callable[..., Iterable[tuple[str, str]]]
    needs_reference: bool = False
    needs_pixels: bool = False


@dataclass
class Finding:
    """One violation of one rule, at one place."""

    rule: str
    severity: str
    where: str
    message: str
    hint: str
    source: str

    def line(self) -> str:
        return f"{self.severity.upper():7s} {self.rule:22s} {self.where}: {self.message}"


@dataclass
class ValidationResult:
    """All findings for one file under one profile."""

    path: str
    kind: str
    profile: str
    findings: list[Finding] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == WARNING]

    @property
    def ok(self) -> bool:
        return not self.errors

    def rule_ids(self) -> set[str]:
        return {f.rule for f in self.findings}

    def to_dict(self) -> dict:
        return {"path": self.path, "kind": self.kind, "profile": self.profile, "ok": self.ok,
                "errors": len(self.errors), "warnings": len(self.warnings),
                "findings": [asdict(f) for f in self.findings], "skipped": self.skipped}


RULES: list[Rule] = []


def rule(id: str, kind: str, severity: str, summary: str, *, hint: str, source: str,
         profiles: Iterable[str] = ALL, needs_reference: bool = False,
         needs_pixels: bool = False):
    """Register a check function ``f(ctx) -> iterable of (where, message)`` as a rule."""
    def register(fn):
        RULES.append(Rule(id, kind, severity, summary, hint, source, frozenset(profiles), fn,
                          needs_reference, needs_pixels))
        return fn
    return register
