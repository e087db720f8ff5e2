"""SIGINT and SIGTERM: both end a command as an interrupt, never during its cleanup."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["Interrupted", "Outcome", "deferred", "handling_signals"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The command was interrupted by ``signum`` (SIGINT or SIGTERM)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Outcome:
    """What an interrupted command has done: said in its message."""

    def __init__(self) -> None:
        self.before = "nothing was changed"
        self.done: str | None = None

    def interrupted(self, exc: KeyboardInterrupt) -> str:
        """The message for an interrupt arriving now."""
        name = signal.Signals(exc.signum).name if isinstance(exc, Interrupted) else "SIGINT"
        if self.done is None:
            return f"interrupted ({name}); {self.before}"
        return f"interrupted ({name}) after {self.done}"


def _raise(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signum)


@contextmanager
def handling_signals() -> Iterator[None]:
    """SIGTERM interrupts like SIGINT while the block runs (on the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _raise) for signum in _SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def deferred() -> Iterator[list[int]]:
    """Hold SIGINT and SIGTERM back while the block runs; the signals received are listed."""
    if threading.current_thread() is not threading.main_thread():
        yield []
        return
    received: list[int] = []
    previous = {
        signum: signal.signal(signum, lambda n, _frame: received.append(n)) for signum in _SIGNALS
    }
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
