"""Progress events and cancellation, the two things a background task needs."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Literal

import attrs

from odeion_archive.errors import CancelledError

__all__ = ["CancelToken", "ProgressCallback", "ProgressEvent", "null_progress"]

Unit = Literal["bytes", "rows", "steps"]


@attrs.frozen
class ProgressEvent:
    """One report of progress of a long operation.

    ``phase`` is a stable word: for a backup ``"snapshot"``, ``"component"``,
    ``"export <table>"`` (rows), ``"write"`` (bytes of a member), ``"finalize"`` and
    ``"done"``; ``"verify"`` while an archive is verified; for a restore
    ``"component"``, ``"restore"`` (a full_db restore's work over all its phases, in
    byte-equivalents of loading data, for a time left that holds to the end) and the
    components' own per-table phases (rows), and ``"done"`` once it is committed;
    for a copy to a storage target ``"upload"`` and ``"check"`` (bytes), for a
    fetch from one ``"download"`` (bytes). ``component`` is the component being worked on, if any. ``done``
    counts ``unit``; ``total`` is ``None`` where it is not known in advance.
    """

    operation: Literal["backup", "restore", "verify", "import", "copy", "fetch", "drill"]
    phase: str
    component: str | None = None
    done: int = 0
    total: int | None = None
    unit: Unit = "bytes"
    message: str = ""


ProgressCallback = Callable[[ProgressEvent], None]


def null_progress(event: ProgressEvent) -> None:
    """A progress callback that ignores every event."""


class CancelToken:
    """A thread-safe flag that a host sets to stop a running backup or restore.

    Long operations check it between chunks of work and raise
    :class:`~odeion_archive.errors.CancelledError` within about a second.
    """

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the operation that holds this token to stop."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise :class:`~odeion_archive.errors.CancelledError` if cancelled."""
        if self._event.is_set():
            raise CancelledError("the operation was cancelled; nothing was changed")

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds, waking early on cancellation."""
        return self._event.wait(timeout)
