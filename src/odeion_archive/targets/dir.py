"""The ``dir`` target kind: a mounted directory (a NAS share, a USB disk).

An object is written under a hidden temporary name, fsynced, renamed to its
name and the directory fsynced: a copy interrupted at any moment leaves at
worst a hidden ``.partial-`` file, never an object that is listed. The next
copy removes those whose process is gone (when it can tell: the file names the
host and the space of process ids its writer lived in) and those that nothing
has written to for a day, by the share's clock (a host that went away, or
rebooted, or a process id taken again). The directory must exist: a missing
mount point is an error, never a directory quietly created on the server's own
disk.

Settings: ``path`` (relative paths are relative to the data directory).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
import secrets
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from odeion_archive._os import fsync_dir, pid_space, process_alive
from odeion_archive.errors import TargetError, UsageError
from odeion_archive.hookspecs import hookimpl
from odeion_archive.targets import RemoteObject, Target, TargetKind, TargetSpec
from odeion_archive.targets._config import CONFIG_FILE
from odeion_archive.targets._names import check_object_name, check_options

__all__ = ["DirTarget", "DirTargetKind", "odeion_archive_targets"]

_TEMP_PREFIX = ".partial-"
#: A temporary file that nothing wrote to for this long is a leftover, whoever wrote it.
_ABANDONED_SECONDS = 24 * 3600
#: Linux process ids have at most 7 digits (pid_max is at most 2**22).
_PID_DIGITS = 7
_FILE_MODE = 0o600
_CHUNK = 1024 * 1024
#: Errors that may pass (a network share that went away for a moment).
_TRANSIENT = {errno.EIO, errno.ETIMEDOUT, errno.EAGAIN, errno.ESTALE, errno.ENOTCONN}


class DirTarget:
    """A directory that holds the objects as files."""

    def __init__(self, name: str, directory: Path) -> None:
        self._name = name
        self._dir = directory

    @property
    def name(self) -> str:
        return self._name

    def describe(self) -> str:
        return str(self._dir)

    def _error(self, exc: OSError, doing: str) -> TargetError:
        if isinstance(exc, FileNotFoundError) and not self._dir.is_dir():
            return TargetError(
                f"the directory {self._dir} of target {self._name!r} does not exist; mount the "
                "disk or share, or create the directory"
            )
        return TargetError(
            f"target {self._name!r} could not {doing} in {self._dir}: {exc.strerror or exc}; "
            "check that the disk is mounted and writable by this user",
            transient=exc.errno in _TRANSIENT,
        )

    def list(self) -> Sequence[RemoteObject]:
        try:
            found = []
            for entry in os.scandir(self._dir):
                if entry.name.startswith(_TEMP_PREFIX) or not entry.is_file(follow_symlinks=False):
                    continue
                stat = entry.stat(follow_symlinks=False)
                modified = dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC)
                found.append(RemoteObject(entry.name, stat.st_size, modified))
        except OSError as exc:
            raise self._error(exc, "list the archives") from exc
        return found

    def _path(self, name: str) -> Path:
        check_object_name(name)
        return self._dir / name

    def read_range(self, name: str, start: int, length: int) -> bytes:
        try:
            fd = os.open(self._path(name), os.O_RDONLY | os.O_CLOEXEC)
            try:
                return os.pread(fd, length, start)
            finally:
                os.close(fd)
        except OSError as exc:
            raise self._error(exc, f"read {name}") from exc

    def read(self, name: str) -> Iterator[bytes]:
        try:
            with self._path(name).open("rb") as stream:
                while chunk := stream.read(_CHUNK):
                    yield chunk
        except OSError as exc:
            raise self._error(exc, f"read {name}") from exc

    def _own_prefix(self) -> str:
        return f"{_TEMP_PREFIX}{pid_space()}-"

    def _remove_leftovers(self, now: float, keep: Path) -> None:
        """Remove the temporary files of copies that died (kill -9, a power cut).

        A file of this host and process-id space whose process is gone goes at
        once. Any other (another host's, hosts that share a name included, or
        one whose process id was reused since) may belong to a copy still
        running: it goes only once nothing has written to it for
        :data:`_ABANDONED_SECONDS`. ``now`` is the time as the directory's own
        file system tells it (a network share's clock may differ from this
        host's); ``keep`` is this copy's own file.
        """
        prefix = self._own_prefix()
        for entry in os.scandir(self._dir):
            if not entry.name.startswith(_TEMP_PREFIX) or entry.name == keep.name:
                continue
            gone = False
            if entry.name.startswith(prefix):
                pid = entry.name.removeprefix(prefix).split("-", 1)[0]
                gone = _is_pid(pid) and not process_alive(int(pid))
            if not gone:
                with contextlib.suppress(OSError):
                    gone = entry.stat(follow_symlinks=False).st_mtime < now - _ABANDONED_SECONDS
            if gone:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)  # noqa: PTH108 - a scandir entry's path

    def write(self, name: str, chunks: Iterable[bytes]) -> None:
        final = self._path(name)
        temp = self._dir / f"{self._own_prefix()}{os.getpid()}-{secrets.token_hex(8)}"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, _FILE_MODE)
        except OSError as exc:
            raise self._error(exc, f"write {name}") from exc
        try:
            with os.fdopen(fd, "wb") as stream:
                self._remove_leftovers(os.fstat(fd).st_mtime, temp)
                for chunk in chunks:
                    stream.write(chunk)
                stream.flush()
                os.fsync(stream.fileno())
            temp.replace(final)
            fsync_dir(self._dir)
        except OSError as exc:
            raise self._error(exc, f"write {name}") from exc
        finally:
            with contextlib.suppress(OSError):
                temp.unlink(missing_ok=True)

    def delete(self, name: str) -> None:
        try:
            self._path(name).unlink(missing_ok=True)
            fsync_dir(self._dir)
        except OSError as exc:
            raise self._error(exc, f"delete {name}") from exc


class DirTargetKind:
    """Opens ``dir`` targets."""

    name = "dir"

    def open(self, spec: TargetSpec) -> Target:
        check_options(spec, required={"path"}, optional=set())
        given = spec.options["path"]
        if not isinstance(given, str) or not given:
            where = (
                f"{spec.base / CONFIG_FILE}: [targets.{spec.name}]"
                if spec.base is not None
                else f"target {spec.name!r} (dir):"
            )
            raise UsageError(
                f"{where} path must be the directory's path in quotes "
                f'(path = "/mnt/backups"), not {given!r}'
            )
        path = Path(given).expanduser()
        if not path.is_absolute() and spec.base is not None:
            path = spec.base / path
        return DirTarget(spec.name, path)


def _is_pid(text: str) -> bool:
    """Whether ``text`` (from a file name anyone may have written) is a process id."""
    return text.isascii() and text.isdigit() and len(text) <= _PID_DIGITS


@hookimpl
def odeion_archive_targets() -> list[TargetKind]:
    """The built-in ``dir`` target kind."""
    return [DirTargetKind()]
