"""One mutating operation at a time per data directory, across processes.

The lock is an advisory ``flock`` on ``<data_dir>/.odeion-archive.lock``. The
kernel releases it when its holder exits for any reason, kill -9 included, so a
lock left by a dead process is recovered without any clean-up step. The file
records the holder's pid and operation, so that a "busy" error can name them.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType
from typing import Self

from odeion_archive.errors import BusyError

__all__ = ["LOCK_NAME", "DataDirLock"]

LOCK_NAME = ".odeion-archive.lock"


class DataDirLock:
    """An exclusive, non-blocking, inter-process lock on a data directory."""

    def __init__(self, data_dir: Path, operation: str) -> None:
        self._path = data_dir / LOCK_NAME
        self._operation = operation
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`BusyError` naming its holder."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise BusyError(
                f"the data directory {self._path.parent} is busy: {holder} is running; "
                "wait for it to finish (or cancel it), then try again"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"a {self._operation} (pid {os.getpid()})".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Give the lock back."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
