"""Turning progress events into a bar on a terminal, or log lines elsewhere."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from odeion_archive.events import ProgressEvent

__all__ = ["ProgressPrinter"]

_WIDTH = 28


def _amount(value: float, unit: str) -> str:
    if unit != "bytes":
        return f"{value:,.0f} {unit}"
    for suffix in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or suffix == "TiB":
            return f"{value:.1f} {suffix}" if suffix != "B" else f"{value:.0f} B"
        value /= 1024
    raise AssertionError  # pragma: no cover


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class ProgressPrinter:
    """A progress callback that draws on ``stream``.

    On a terminal: one line redrawn in place, with a bar where the total is
    known, the rate and the time remaining. Elsewhere: a plain line when the
    phase changes and at most every ``interval`` seconds.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        tty: bool,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._tty = tty
        self._interval = interval
        self._clock = clock
        self._key: tuple[str, str | None] | None = None
        self._started = clock()
        self._done_at_start = 0
        self._last_line = float("-inf")
        self._drawn = False

    def __call__(self, event: ProgressEvent) -> None:
        key = (event.phase, event.component)
        now = self._clock()
        if key != self._key:
            self._key = key
            self._started = now
            self._done_at_start = event.done
            if self._drawn:
                self._stream.write("\n")
                self._drawn = False
            if event.message and not self._tty:
                self._stream.write(f"{event.message}\n")
                self._stream.flush()
                self._last_line = now
        if event.unit == "steps":
            if self._tty and event.message:
                self._stream.write(f"\r\x1b[K{event.message}")
                self._drawn = True
                self._stream.flush()
            return
        elapsed = now - self._started
        # The rate needs some time to mean anything; until then it is not shown.
        rate = (event.done - self._done_at_start) / elapsed if elapsed >= 0.5 else None
        speed = f", {_amount(rate, event.unit)}/s" if rate is not None else ""
        label = f"{event.component + ' ' if event.component else ''}{event.phase}"
        if event.total:
            fraction = min(event.done / event.total, 1.0)
            left = f", {_duration((event.total - event.done) / rate)} left" if rate else ""
            detail = (
                f"{fraction:6.1%} {_amount(event.done, event.unit)} of "
                f"{_amount(event.total, event.unit)}{speed}{left}"
            )
            bar = "#" * int(fraction * _WIDTH)
            drawn = f"[{bar:<{_WIDTH}}] {detail}"
        else:
            drawn = f"{_amount(event.done, event.unit)}{speed}"
        if self._tty:
            self._stream.write(f"\r\x1b[K{label}: {drawn}")
            self._drawn = True
            self._stream.flush()
        elif now - self._last_line >= self._interval:
            self._stream.write(f"{label}: {drawn}\n")
            self._stream.flush()
            self._last_line = now

    def finish(self) -> None:
        """End the line being redrawn, if any."""
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False
