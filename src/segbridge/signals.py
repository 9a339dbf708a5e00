"""Ctrl-C and SIGTERM for the command line.

Both stop a run through the ordinary exception path (KeyboardInterrupt), so every ``finally``
removes its temporary files and no partial output is left; the command then exits 130 (SIGINT)
or 143 (SIGTERM). A signal that arrives while the command is still importing ends it at once:
nothing has been written yet. Imported first by ``cli`` so the window without handlers is as
short as the interpreter allows.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager

_state = {"running": False, "terminated": False}


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C."""


def _handle(signum: int, frame) -> None:
    if signum == signal.SIGTERM:
        _state["terminated"] = True
    if not _state["running"]:
        print(f"segbridge: {'terminated' if _state['terminated'] else 'aborted'}",
              file=sys.stderr)
        os._exit(exit_code())
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def install() -> None:
    """Handle SIGINT and SIGTERM from now on (main thread only)."""
    signal.signal(signal.SIGINT, _handle)
    signal.signal(signal.SIGTERM, _handle)


def running() -> None:
    """The command has started: from now on a signal unwinds it instead of ending it."""
    _state["running"] = True


def terminated() -> bool:
    """True when SIGTERM (not Ctrl-C) stopped the run."""
    return _state["terminated"]


def exit_code() -> int:
    """128 + the signal's number: 143 for SIGTERM, 130 for Ctrl-C."""
    return 143 if _state["terminated"] else 130


@contextmanager
def deferred():
    """Hold SIGINT / SIGTERM back while a C library runs that cannot be interrupted safely
    (pylibjpeg-openjpeg's encoder crashes the process with SIGSEGV when Ctrl-C lands in it);
    a signal that came meanwhile is handled as soon as the block ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
