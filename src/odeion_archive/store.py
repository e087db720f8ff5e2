"""The backup store: the archives in ``<data_dir>/backups``.

Archives appear in the store only whole: each is written under a hidden
temporary name, fsynced, linked to its final name (which never replaces an
existing file) and the directory fsynced. A crash at any moment leaves at worst
a hidden temporary file, which the next mutating operation removes.
"""

from __future__ import annotations

import builtins
import contextlib
import datetime as dt
import hashlib
import logging
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from odeion_archive.archive import ArchiveFile
from odeion_archive.errors import (
    ArchiveError,
    ArchiveInvalidError,
    DuplicateArchiveError,
    NotFoundError,
)
from odeion_archive.registry import Registry
from odeion_archive.results import ArchiveInfo

__all__ = ["TEMP_PREFIX", "BackupStore"]

_log = logging.getLogger(__name__)

#: Names of files being written start with this; they are never listed.
TEMP_PREFIX = ".partial-"
_DIR_MODE = 0o700
_FILE_MODE = 0o600


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BackupStore:
    """The archives of one data directory."""

    def __init__(self, directory: Path, registry: Registry) -> None:
        self._dir = directory
        self._registry = registry

    @property
    def directory(self) -> Path:
        """The directory that holds the archives."""
        return self._dir

    def ensure(self) -> None:
        """Create the directory (mode 0700, whatever the umask) if needed."""
        self._dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self._dir, _DIR_MODE)  # noqa: PTH101 - explicit about the mode

    # -- reading -------------------------------------------------------------

    def list(self) -> builtins.list[ArchiveInfo]:
        """Every archive, newest first, as read from their manifests.

        A file that is not a readable archive is left out (and logged).
        """
        if not self._dir.is_dir():
            return []
        infos = []
        for path in self._dir.iterdir():
            if path.name.startswith(".") or not path.is_file():
                continue
            try:
                infos.append(self.info(path))
            except ArchiveError as exc:
                _log.warning("skipping %s in the backup store: %s", path.name, exc)
        infos.sort(key=lambda info: (info.created_at, info.name), reverse=True)
        return infos

    def info(self, path: Path) -> ArchiveInfo:
        """Read the manifest of the archive at ``path``."""
        with ArchiveFile.open(path, self._registry) as archive:
            return ArchiveInfo(
                name=path.name, path=path, size=path.stat().st_size, manifest=archive.manifest
            )

    def path_of(self, name: str) -> Path:
        """The path of the archive ``name``; :class:`NotFoundError` if absent."""
        if not name or "/" in name or "\\" in name or name.startswith(".") or "\0" in name:
            raise NotFoundError(f"{name!r} is not an archive name; use a name that 'list' shows")
        path = self._dir / name
        if not path.is_file():
            raise NotFoundError(
                f"no archive named {name!r} in {self._dir}; use a name that 'list' shows"
            )
        return path

    def open_download(self, name: str) -> IO[bytes]:
        """A binary stream of the archive ``name``, to send to a browser."""
        return self.path_of(name).open("rb")

    # -- writing (callers hold the data directory's lock) ---------------------

    def clean_leftovers(self) -> builtins.list[str]:
        """Remove temporary files of interrupted operations; returns their names."""
        removed = []
        if self._dir.is_dir():
            for path in self._dir.iterdir():
                if path.name.startswith(TEMP_PREFIX):
                    path.unlink(missing_ok=True)
                    removed.append(path.name)
        return removed

    def new_name(self, suffix: str, when: dt.datetime) -> str:
        """A fresh, unique archive name: time of the backup plus a random tag."""
        stamp = when.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        return f"odeion-backup-{stamp}-{secrets.token_hex(4)}{suffix}"

    @contextlib.contextmanager
    def writing(self) -> Iterator[tuple[Path, IO[bytes]]]:
        """A hidden temporary file to write an archive into.

        Removed on any exception; otherwise the caller passes it to :meth:`publish`.
        """
        self.ensure()
        temp = self._dir / f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(8)}"
        # Read-write: a format may read back what it wrote (tar.zst seals rewritten headers).
        fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, _FILE_MODE)
        try:
            with os.fdopen(fd, "wb", buffering=1024 * 1024) as stream:
                yield temp, stream
                stream.flush()
                os.fsync(stream.fileno())
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    def publish(self, temp: Path, name: str) -> Path:
        """Give the written temporary file its final name, atomically and durably."""
        final = self._dir / name
        os.chmod(temp, _FILE_MODE)  # noqa: PTH101
        try:
            os.link(temp, final)  # fails rather than replacing an existing archive
        finally:
            temp.unlink(missing_ok=True)
        _fsync_dir(self._dir)
        return final

    def import_file(self, source: IO[bytes], *, verify: bool = True) -> ArchiveInfo:
        """Copy an uploaded archive into the store once it is fully validated.

        The upload is copied to a hidden temporary file, opened with every
        safety check, and (with ``verify``) every member's sha256 checked; only
        then does it get a name in the store. A rejected upload leaves nothing.
        """
        with self.writing() as (temp, stream):
            shutil.copyfileobj(source, stream, 1024 * 1024)
            stream.flush()
            with ArchiveFile.open(temp, self._registry) as archive:
                if verify:
                    report = archive.verify()
                    if not report.ok:
                        details = "; ".join(
                            f"{p.member or 'container'}: {p.message}" for p in report.problems[:5]
                        )
                        raise ArchiveInvalidError(
                            f"the uploaded archive failed verification ({details}); "
                            "upload an intact copy"
                        )
                manifest = archive.manifest
                suffix = archive.format.suffix
            existing = self.identical_to(temp)
            if existing is not None:
                raise DuplicateArchiveError(existing)
        name = self.new_name(suffix, manifest.created_at)
        path = self.publish(temp, name)
        return ArchiveInfo(name=name, path=path, size=path.stat().st_size, manifest=manifest)

    def identical_to(self, path: Path) -> str | None:
        """The name of an archive in the store with the same bytes as ``path``, if any.

        Only archives of the same size are read, so this is cheap unless a copy exists.
        """
        size = path.stat().st_size
        digest: str | None = None
        for other in sorted(self._dir.iterdir()):
            if other.name.startswith(".") or not other.is_file() or other == path:
                continue
            if other.stat().st_size != size:
                continue
            digest = digest or _sha256(path)
            if _sha256(other) == digest:
                return other.name
        return None

    def delete(self, name: str) -> None:
        """Delete the archive ``name``."""
        self.path_of(name).unlink()
        _fsync_dir(self._dir)

    def prune(self, keep_last: int, *, dry_run: bool = False) -> builtins.list[str]:
        """Delete all but the newest ``keep_last`` archives (by manifest time).

        Returns the names deleted; with ``dry_run``, the names that would be, deleting nothing.
        """
        if keep_last < 0:
            raise ValueError("keep_last must be zero or more")
        doomed = self.list()[keep_last:]
        if dry_run:
            return [info.name for info in doomed]
        for info in doomed:
            info.path.unlink(missing_ok=True)
        if doomed:
            _fsync_dir(self._dir)
        return [info.name for info in doomed]
