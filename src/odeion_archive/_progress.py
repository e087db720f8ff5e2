"""Progress events shown to a person: bars on a terminal, occasional plain lines elsewhere.

Only the command line uses this module (and with it, ``rich``); the library
reports progress through :class:`~odeion_archive.events.ProgressEvent` callbacks.

Each (operation, phase) gets its own bar with its own totals, so a
phase that follows another (the indexes after the data of a restore) starts at
zero instead of moving the first one's total. A bar ends full: when the phase
is over its total becomes what was actually done. A step (an event of unit
``"steps"`` without a total) is printed as a line of its own and ends the bars
shown so far; an event of phase ``"done"`` only ends them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

import attrs
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn
from rich.table import Column
from rich.text import Text

from odeion_archive._printable import printable
from odeion_archive.events import ProgressEvent

__all__ = ["ProgressPrinter", "amount", "figures"]

_Key = tuple[str, str]
_REFRESH_SECONDS = 0.1
_RATE_AFTER_SECONDS = 0.5


def amount(value: float, unit: str) -> str:
    """``value`` of ``unit`` for a person: bytes in KiB, MiB...; other units counted."""
    if unit != "bytes":
        return f"{value:,.0f}"
    for suffix in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or suffix == "TiB":
            return f"{value:.1f} {suffix}" if suffix != "B" else f"{value:.0f} B"
        value /= 1024
    raise AssertionError  # pragma: no cover


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def figures(done: float, total: float | None, unit: str, rate: float | None) -> str:
    """``3 of 12 indexes, 1.5/s, 0:06 left``: the figures of a phase, without a bar."""
    counted = "" if unit in ("bytes", "steps") else f" {unit}"
    text = f"{amount(done, unit)}"
    if total is not None:
        text += f" of {amount(total, unit)}"
    text += counted
    if rate:
        text += f", {amount(rate, unit)}{counted}/s"
        if total is not None and total > done:
            text += f", {_duration((total - done) / rate)} left"
    return text


@attrs.define
class _Phase:
    """What is known of one phase's progress."""

    label: str
    unit: str
    started: float
    done: int = 0
    done_at_start: int = 0
    total: int | None = None
    task: TaskID | None = None
    last: float = 0.0

    def rate(self, now: float) -> float | None:
        elapsed = now - self.started
        if elapsed < _RATE_AFTER_SECONDS:
            return None  # the rate needs some time to mean anything
        return (self.done - self.done_at_start) / elapsed


class _Percent(ProgressColumn):
    """The share done, where the total is known."""

    def render(self, task: Task) -> Text:
        return Text("" if task.total is None else f"{task.percentage:5.1f}%", justify="right")


class _Figures(ProgressColumn):
    """The figures of a bar, as the plain lines write them."""

    def render(self, task: Task) -> Text:
        unit = str(task.fields.get("unit", "bytes"))
        total = task.total if task.total is not None and not task.finished else None
        rate = None if task.finished else task.speed
        return Text(figures(task.completed, total, unit, rate))


def _label(event: ProgressEvent) -> str:
    words = [event.component, event.phase, event.message]
    return printable(" ".join(word for word in words if word))


class ProgressPrinter:
    """A progress callback that draws on ``stream``.

    On a terminal: a bar per phase with its figures, the rate and the time
    left. Elsewhere: the steps as lines, a line about each phase at most
    every ``interval`` seconds, and a line with the real figures when a phase
    ends. Writing stops quietly if ``stream`` is closed.
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
        self._phases: dict[_Key, _Phase] = {}
        self._ended: dict[_Key, tuple[int, int | None]] = {}
        self._last_line = clock()
        self._last_refresh = float("-inf")
        self._console = Console(file=stream, force_terminal=tty, highlight=False)
        self._bars: Progress | None = None
        self._closed = False

    # -- events ------------------------------------------------------------------

    def __call__(self, event: ProgressEvent) -> None:
        if self._closed:
            return
        try:
            self._handle(event)
        except OSError:  # a closed stderr must not stop the operation
            self._closed = True

    def _handle(self, event: ProgressEvent) -> None:
        if event.phase == "done" or (event.unit == "steps" and event.total is None):
            self.finish()
            if event.message:
                self._line(printable(event.message))
            return
        now = self._clock()
        key = (event.operation, event.phase)
        if self._ended.get(key) == (event.done, event.total):
            return  # the last figures of a phase that ended, once more
        phase = self._phases.get(key)
        if phase is None or event.done < phase.done:  # a new phase, or the next of a kind
            if phase is not None:
                self._end(phase)
            phase = self._start(key, event, now)
        phase.label = _label(event)
        phase.done = event.done
        phase.last = now
        if event.total is not None:
            phase.total = event.total
        if self._tty:
            self._draw(phase, now)
        if phase.total is not None and phase.done >= phase.total:  # complete
            self._end(phase)
            del self._phases[key]
            self._ended[key] = (event.done, event.total)
        elif not self._tty and now - self._last_line >= self._interval:
            self._plain(phase, now)

    def finish(self) -> None:
        """End every phase shown: its bar full, or its closing line written."""
        if self._closed:
            return
        try:
            for phase in self._phases.values():
                self._end(phase)
            self._phases.clear()
            self._ended.clear()
            if self._bars is not None:
                self._bars.refresh()
                self._bars.stop()
                self._bars = None
        except OSError:
            self._closed = True

    # -- phases ------------------------------------------------------------------

    def _start(self, key: _Key, event: ProgressEvent, now: float) -> _Phase:
        phase = _Phase(
            _label(event), event.unit, now, event.done, event.done, event.total, last=now
        )
        self._phases[key] = phase
        if self._tty:
            phase.task = self._progress().add_task(
                phase.label, total=event.total, completed=event.done, unit=event.unit
            )
        return phase

    def _end(self, phase: _Phase) -> None:
        if not self._tty:
            done = figures(phase.done, None, phase.unit, None)
            self._line(f"{phase.label}: {done} in {phase.last - phase.started:.1f} s")
        elif self._bars is not None and phase.task is not None and phase.done:
            # Over: the bar is full, at what was actually done.
            self._bars.update(phase.task, total=phase.done, completed=phase.done)

    # -- drawing -----------------------------------------------------------------

    def _progress(self) -> Progress:
        if self._bars is None:
            self._bars = Progress(
                TextColumn(
                    "{task.description}",
                    markup=False,
                    table_column=Column(no_wrap=True, overflow="ellipsis", max_width=40),
                ),
                BarColumn(bar_width=28, complete_style="cyan", finished_style="green"),
                _Percent(),
                _Figures(table_column=Column(no_wrap=True, overflow="ellipsis")),
                console=self._console,
                auto_refresh=False,
                redirect_stdout=False,
                redirect_stderr=False,
                get_time=self._clock,
            )
            self._bars.start()
        return self._bars

    def _draw(self, phase: _Phase, now: float) -> None:
        bars = self._progress()
        assert phase.task is not None
        if phase.total is not None:
            bars.update(phase.task, total=phase.total, completed=phase.done)
        bars.update(phase.task, completed=phase.done, description=phase.label)
        if now - self._last_refresh >= _REFRESH_SECONDS:
            self._last_refresh = now
            bars.refresh()

    def _plain(self, phase: _Phase, now: float) -> None:
        rate = phase.rate(now)
        percent = f"{min(phase.done / phase.total, 1.0):.1%} " if phase.total else ""
        self._line(f"{phase.label}: {percent}{figures(phase.done, phase.total, phase.unit, rate)}")

    def _line(self, text: str) -> None:
        if self._bars is not None:
            self._bars.console.print(Text(text))
        else:
            self._stream.write(text + "\n")
            self._stream.flush()
        self._last_line = self._clock()
