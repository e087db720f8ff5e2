"""Operating-system facts that several modules need: a durable directory, a live process,
and which process ids this process can judge."""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
import socket
from pathlib import Path

__all__ = ["fsync_dir", "pid_space", "process_alive"]


def fsync_dir(path: Path) -> None:
    """Make the entries of the directory ``path`` (a rename, a new file) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def process_alive(pid: int) -> bool:
    """Whether the process ``pid`` still runs; a zombie (exited, not yet reaped) does not.

    ``pid`` may come from a file anyone could write: 0 and negative numbers
    (which :func:`os.kill` reads as process groups) and numbers past any
    process id are no running process.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True  # it exists, as another user
    try:
        status = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return True  # no /proc: the signal's answer is all there is
    return status.rpartition(")")[2].split()[0] != "Z"


@functools.cache
def pid_space() -> str:
    """A name of the space of process ids this process lives in: ``host-0123456789ab``.

    Two processes whose names are equal can judge each other's process ids
    with :func:`process_alive`. The host name alone does not say so: two
    machines (or two containers of one machine) may share a name. So the name
    also carries a digest of the kernel's boot id (new at every boot of every
    machine) and of this process's PID namespace. Where neither can be read
    (no ``/proc``), nothing tells this machine from a namesake: the name is
    then this process's alone, so that no other process judges its ids.
    """
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        boot = ""
    try:
        namespace = str(Path("/proc/self/ns/pid").readlink())  # "pid:[4026531836]"
    except OSError:
        namespace = ""
    parts = (boot, namespace) if boot or namespace else ("alone", secrets.token_hex(16))
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]
    return f"{socket.gethostname()}-{digest}"
