"""Two operating-system facts that several modules need: a durable directory, a live process."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fsync_dir", "process_alive"]


def fsync_dir(path: Path) -> None:
    """Make the entries of the directory ``path`` (a rename, a new file) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def process_alive(pid: int) -> bool:
    """Whether the process ``pid`` still runs; a zombie (exited, not yet reaped) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, as another user
    try:
        status = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return True  # no /proc: the signal's answer is all there is
    return status.rpartition(")")[2].split()[0] != "Z"
