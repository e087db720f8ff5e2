"""Running a PostgreSQL client program that a cancellation token can stop.

One helper for ``pg_dump`` (the backup) and ``pg_restore`` (the restore):
:func:`cancel_watch` runs a thread that calls back once the token is set, and
the other functions turn the program's end into words.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO

from odeion_archive.events import CancelToken

__all__ = ["STDERR_LIMIT", "cancel_watch", "exit_text", "stderr_head", "stderr_tail"]

#: The most of a program's stderr that a message quotes.
STDERR_LIMIT = 64 * 1024


@contextmanager
def cancel_watch(
    cancel: CancelToken | None, on_cancel: Callable[[], None], *, name: str
) -> Iterator[None]:
    """While the block runs, call ``on_cancel`` once (from a thread) when ``cancel`` is set.

    The token is looked at ten times a second; leaving the block stops the
    watch. Without a token, nothing is watched.
    """
    if cancel is None:
        yield
        return
    finished = threading.Event()

    def watch() -> None:
        while not finished.is_set():
            if cancel.wait(0.1):
                on_cancel()
                return

    watcher = threading.Thread(target=watch, name=name, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        finished.set()


def exit_text(code: int) -> str:
    """How a program ended, from its exit code: ``exited with 1``, ``was killed by signal 9``."""
    return f"was killed by signal {-code}" if code < 0 else f"exited with {code}"


def stderr_tail(stream: IO[bytes], limit: int = STDERR_LIMIT) -> str:
    """The last ``limit`` bytes a program wrote to ``stream`` (a temporary file)."""
    stream.flush()
    size = stream.seek(0, os.SEEK_END)
    stream.seek(max(0, size - limit))
    return stream.read().decode("utf-8", "replace").strip()


def stderr_head(stream: IO[bytes]) -> str:
    """The first :data:`STDERR_LIMIT` bytes a program wrote to ``stream`` (a temporary file)."""
    stream.seek(0)
    return stream.read(STDERR_LIMIT).decode("utf-8", "replace").strip()
