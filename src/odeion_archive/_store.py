"""The backup store: the archives in ``<data_dir>/backups``.

Archives appear in the store only whole: each is written under a hidden
temporary name, fsynced, linked to its final name (which never replaces an
existing file) and the directory fsynced. A crash at any moment leaves at worst
a hidden temporary file, which the next mutating operation removes.

An upload being imported is staged and checked the same way, but without the
data directory's lock: its temporary file carries an ``flock`` of its own for
as long as the import runs, which tells the leftover cleanup of a concurrent
operation to keep it; the kernel drops that lock when the importer exits, kill
-9 included, so the file of a dead import is removed like any other leftover.

The store records when each archive entered it (created here, or imported) in
a small file of its own, ``.entered/<name>``: an archive's ``created_at`` is
whatever its writer put there, so retention never trusts it. The records travel
with any copy of the data directory (file times do not survive every copy); an
archive without a record (an older store, a renamed file) counts as entered at
its ``created_at`` or its file's modification time, whichever is earlier.
"""

from __future__ import annotations

import builtins
import contextlib
import datetime as dt
import fcntl
import hashlib
import logging
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Literal

import attrs

from odeion_archive import _converter, _safejson
from odeion_archive._archive import ArchiveFile
from odeion_archive._keys import Keyring
from odeion_archive._manifest import Manifest
from odeion_archive._os import fsync_dir
from odeion_archive._proving import damaged_since_verified
from odeion_archive._registry import Registry
from odeion_archive._retention import Candidate, RetentionDecision, RetentionRules, decide
from odeion_archive.errors import (
    ArchiveError,
    ArchiveInvalidError,
    DuplicateArchiveError,
    NotFoundError,
)
from odeion_archive.interfaces import Issue
from odeion_archive.results import ArchiveInfo, CheckRecord

__all__ = ["CLOCK_SKEW", "RECORDS_DIR", "TEMP_PREFIX", "BackupStore", "EntryRecord"]

_log = logging.getLogger(__name__)

#: Names of files being written start with this; they are never listed.
TEMP_PREFIX = ".partial-"
_DIR_MODE = 0o700
_FILE_MODE = 0o600
#: The directory (inside the store) of the records of when archives entered it.
RECORDS_DIR = ".entered"
#: How far an archive's ``created_at`` may lie after the moment it entered the
#: store (clocks differ) before it counts as dated in the future.
CLOCK_SKEW = dt.timedelta(minutes=5)
_RECORD_LIMIT = 16 * 1024
#: A check's reason is cut to this many characters in the store's record.
_REASON_LIMIT = 2000


@attrs.frozen
class EntryRecord:
    """The store's record of one archive: when and how it entered the store.

    It also keeps the outcome of the archive's last verification and last
    restore drill, and when a verification last found it intact.
    """

    entered_at: dt.datetime
    how: Literal["created", "imported"]
    last_verification: CheckRecord | None = None
    last_drill: CheckRecord | None = None
    last_intact_at: dt.datetime | None = None


def _future_warning(manifest: Manifest, entered_at: dt.datetime) -> tuple[Issue, ...]:
    if manifest.created_at <= entered_at + CLOCK_SKEW:
        return ()
    return (
        Issue(
            "created_in_future",
            f"the archive says it was created at {manifest.created_at:%Y-%m-%d %H:%M:%S}Z, "
            f"after it entered this store ({entered_at:%Y-%m-%d %H:%M:%S}Z): a clock was "
            "wrong or the archive was edited. It never counts as newer than the other "
            "archives (prune removes it first); check where it comes from before restoring it",
        ),
    )


def _is_future(info: ArchiveInfo) -> bool:
    return any(issue.code == "created_in_future" for issue in info.warnings)


def _in_use(path: Path) -> bool:
    """Whether a process holds the ``flock`` of ``path`` (a running import's staging file)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


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

    def list(self, *, keyring: Keyring | None = None) -> builtins.list[ArchiveInfo]:
        """Every archive, newest first, as read from their manifests.

        ``keyring`` (the server's archive keys) decides each one's authenticity.
        A file that is not a readable archive is left out (and logged).
        """
        if not self._dir.is_dir():
            return []
        infos = []
        for path in self._dir.iterdir():
            if path.name.startswith(".") or not path.is_file():
                continue
            try:
                infos.append(self.info(path, keyring=keyring))
            except ArchiveError as exc:
                _log.warning("skipping %s in the backup store: %s", path.name, exc)
        # Newest first by when they entered the store; archives dated in the future last.
        infos.sort(
            key=lambda info: (not _is_future(info), info.entered_at, info.name), reverse=True
        )
        return infos

    def info(self, path: Path, *, keyring: Keyring | None = None) -> ArchiveInfo:
        """Read the manifest of the archive at ``path``, and the store's record of it."""
        with ArchiveFile.open(path, self._registry, keyring=keyring) as archive:
            manifest = archive.manifest
            authenticity = archive.authenticity
        stat = path.stat()
        record = self._read_record(path.name) or self._assumed_record(path, manifest)
        return ArchiveInfo(
            name=path.name,
            path=path,
            size=stat.st_size,
            manifest=manifest,
            authenticity=authenticity,
            entered_at=record.entered_at,
            warnings=_future_warning(manifest, record.entered_at)
            + damaged_since_verified(record.last_verification, record.last_intact_at),
            last_verification=record.last_verification,
            last_drill=record.last_drill,
            last_intact_at=record.last_intact_at,
            entered_how=record.how,
        )

    @staticmethod
    def _assumed_record(path: Path, manifest: Manifest) -> EntryRecord:
        """The record of an archive the store has none of (see the module's notes)."""
        modified = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
        return EntryRecord(min(manifest.created_at, modified), "imported")

    def record(self, name: str) -> EntryRecord | None:
        """The store's record of the archive ``name`` (``None``: it has none, or a damaged one)."""
        return self._read_record(self.path_of(name).name)

    def archive_names(self) -> builtins.list[str]:
        """The names of every archive file, readable or not, sorted."""
        if not self._dir.is_dir():
            return []
        return sorted(
            path.name
            for path in self._dir.iterdir()
            if not path.name.startswith(".") and path.is_file()
        )

    def record_check(self, name: str, check: CheckRecord) -> None:
        """Remember the outcome of a verification or drill of the archive ``name``.

        Only the last of each kind is kept, and when a verification last passed.
        """
        path = self.path_of(name)
        if check.reason is not None and len(check.reason) > _REASON_LIMIT:
            check = attrs.evolve(check, reason=check.reason[: _REASON_LIMIT - 1] + "…")
        record = self._read_record(name)
        if record is None:
            with ArchiveFile.open(path, self._registry) as archive:
                record = self._assumed_record(path, archive.manifest)
        if check.kind == "drill":
            record = attrs.evolve(record, last_drill=check)
        else:
            record = attrs.evolve(
                record,
                last_verification=check,
                last_intact_at=check.at if check.passed else record.last_intact_at,
            )
        self._write_record(name, record)

    # -- the records of when archives entered the store ------------------------

    def _record_path(self, name: str) -> Path:
        return self._dir / RECORDS_DIR / name

    def _read_record(self, name: str) -> EntryRecord | None:
        try:
            with self._record_path(name).open("rb") as stream:
                data = stream.read(_RECORD_LIMIT + 1)
        except OSError:
            return None
        try:
            if len(data) > _RECORD_LIMIT:
                raise ValueError("too long")  # noqa: TRY301 - one way out for every flaw
            return _converter.converter.structure(
                _safejson.loads(data, what=f"{RECORDS_DIR}/{name}"), EntryRecord
            )
        except Exception as exc:  # a damaged record only loses what it recorded
            _log.warning("ignoring the damaged store record of %s: %s", name, exc)
            return None

    def _write_record(self, name: str, record: EntryRecord) -> None:
        records = self._dir / RECORDS_DIR
        records.mkdir(mode=_DIR_MODE, exist_ok=True)
        data = _safejson.dumps(_converter.converter.unstructure(record))
        temp = records / f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(8)}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, _FILE_MODE)
        try:
            with os.fdopen(fd, "wb") as stream:
                stream.write(data)
                stream.flush()
                os.fsync(stream.fileno())
            temp.replace(records / name)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        fsync_dir(records)

    def _delete_record(self, name: str) -> None:
        self._record_path(name).unlink(missing_ok=True)

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
        """Remove temporary files of interrupted operations; returns their names.

        A file that a running import still holds (its ``flock``) is kept.
        """
        removed = []
        if self._dir.is_dir():
            for path in self._dir.iterdir():
                if path.name.startswith(TEMP_PREFIX) and not _in_use(path):
                    path.unlink(missing_ok=True)
                    removed.append(path.name)
        records = self._dir / RECORDS_DIR
        if records.is_dir():
            # Records of archives that are gone (deleted by hand, or renamed).
            for path in records.iterdir():
                if path.name.startswith(TEMP_PREFIX) or not (self._dir / path.name).is_file():
                    path.unlink(missing_ok=True)
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

    def publish(
        self, temp: Path, name: str, *, how: Literal["created", "imported"] = "created"
    ) -> Path:
        """Give the written temporary file its final name, atomically and durably.

        Records that the archive entered the store now (``how``: created here or
        imported). A crash before the record is written leaves an archive that
        counts as entered at its ``created_at`` or file time, whichever is earlier.
        """
        final = self._dir / name
        os.chmod(temp, _FILE_MODE)  # noqa: PTH101
        try:
            os.link(temp, final)  # fails rather than replacing an existing archive
        finally:
            temp.unlink(missing_ok=True)
        fsync_dir(self._dir)
        self._write_record(name, EntryRecord(dt.datetime.now(dt.UTC), how))
        return final

    @contextlib.contextmanager
    def staging(self) -> Iterator[tuple[Path, IO[bytes]]]:
        """A hidden temporary file for an upload, safe to fill without the lock.

        The file holds an ``flock`` while the context lasts, so that
        :meth:`clean_leftovers` (run by operations that take the data
        directory's lock) leaves it alone. It is removed when the context ends,
        unless :meth:`publish` gave it a name first.
        """
        self.ensure()
        while True:
            temp = self._dir / f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(8)}"
            fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, _FILE_MODE)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                ours = os.path.samestat(os.fstat(fd), temp.stat())
            except (BlockingIOError, FileNotFoundError):
                ours = False  # a concurrent cleanup took it for a leftover: start again
            if ours:
                break
            os.close(fd)
        try:
            with os.fdopen(fd, "w+b", buffering=1024 * 1024) as stream:
                yield temp, stream
        finally:
            temp.unlink(missing_ok=True)

    def import_file(
        self,
        source: IO[bytes],
        *,
        verify: bool = True,
        publishing: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext,
        keyring: Keyring | None = None,
    ) -> ArchiveInfo:
        """Copy an uploaded archive into the store once it is fully validated.

        The upload is copied to a hidden temporary file (see :meth:`staging`),
        opened with every safety check, and (with ``verify``) every member's
        sha256 checked, all without the data directory's lock; only then does
        it get a name in the store, inside ``publishing()`` (the archiver passes
        its lock). A rejected upload, or one that cannot be published, leaves
        nothing.
        """
        with self.staging() as (temp, stream):
            shutil.copyfileobj(source, stream, 1024 * 1024)
            stream.flush()
            os.fsync(stream.fileno())
            with ArchiveFile.open(temp, self._registry, keyring=keyring) as archive:
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
            # Named by the backup's time, but never by a time to come.
            name = self.new_name(suffix, min(manifest.created_at, dt.datetime.now(dt.UTC)))
            with publishing():
                path = self.publish(temp, name, how="imported")
        return self.info(path, keyring=keyring)

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
        self._delete_record(name)
        fsync_dir(self._dir)

    def retention(
        self, rules: RetentionRules, *, keyring: Keyring | None = None
    ) -> tuple[RetentionDecision, ...]:
        """What ``rules`` keep of the archives, and why; newest first (nothing is deleted).

        See :mod:`odeion_archive._retention` for how the rules combine.
        ``keyring`` (the server's archive keys) tells this server's archives,
        which the safety nets prefer; without it, every archive counts as foreign.
        """
        return decide([Candidate.of(info) for info in self.list(keyring=keyring)], rules)

    def prune(
        self,
        keep_last: int | None = None,
        *,
        dry_run: bool = False,
        rules: RetentionRules | None = None,
        keyring: Keyring | None = None,
    ) -> builtins.list[str]:
        """Delete the archives that ``rules`` (and ``keep_last``) do not keep.

        The order is by when the archives entered the store, never by the time an
        archive claims: one dated in the future counts as the oldest. The safety
        nets of :mod:`odeion_archive._retention` keep the newest archive holding
        full_db and the newest that passed a drill that can be trusted to restore
        (``keyring`` tells this server's own). Returns the names deleted; with
        ``dry_run``, the names that would be, deleting nothing.
        """
        rules = RetentionRules.combined(rules, keep_last)
        doomed = [
            decision.name
            for decision in self.retention(rules, keyring=keyring)
            if not decision.keep
        ]
        if dry_run:
            return doomed
        for name in doomed:
            (self._dir / name).unlink(missing_ok=True)
            self._delete_record(name)
        if doomed:
            fsync_dir(self._dir)
        return doomed
