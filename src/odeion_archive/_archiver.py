"""The host's entry point: one :class:`Archiver` per Odeion data directory.

It ties together the backup store in ``<data_dir>/backups``, the database (a
URL the host passes, or the embedded PostgreSQL in ``<data_dir>/pgdata``), the
plugin registry and the data directory's lock, and offers every operation the
admin panel and the command line need.
"""

from __future__ import annotations

import builtins
import datetime as dt
import io
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import attrs

from odeion_archive import _agekeys, _due, _failures, _keys, _scratch
from odeion_archive._age import AgeIdentities, AgeRecipients, combine
from odeion_archive._archive import ArchiveFile
from odeion_archive._backup import DEFAULT_FORMAT, BackupOptions, run_backup
from odeion_archive._checks import StoreChecks, verify_targets
from odeion_archive._drill import run_drill
from odeion_archive._encrypted import open_readable, verify_file
from odeion_archive._lock import DataDirLock
from odeion_archive._manifest import Manifest
from odeion_archive._postgres import EmbeddedPostgres
from odeion_archive._proving import drill_record
from odeion_archive._registry import Registry
from odeion_archive._restore import RestoreOptions, check_options, plan_restore, run_restore
from odeion_archive._retention import RetentionDecision, RetentionRules
from odeion_archive._schedule import Due, RunReport, SchedulePolicy
from odeion_archive._store import BackupStore
from odeion_archive.errors import ArchiveError, ArchiveInvalidError, NotFoundError, UsageError
from odeion_archive.events import CancelToken, ProgressCallback, null_progress
from odeion_archive.interfaces import Authenticity, Conflict
from odeion_archive.results import (
    ArchiveInfo,
    BackupResult,
    DrillReport,
    Failure,
    RestorePlan,
    RestoreResult,
    VerifyAllReport,
    VerifyReport,
)
from odeion_archive.targets import CopyResult, RemoteArchive, TargetSpec, TargetStatus
from odeion_archive.targets._config import load_specs
from odeion_archive.targets._service import TargetService

__all__ = ["Archiver"]

_log = logging.getLogger(__name__)


class Archiver:
    """Backups and restores of one Odeion data directory.

    ``database_url`` is the server's PostgreSQL; without it the embedded
    PostgreSQL in ``<data_dir>/pgdata`` is started on first use and stopped by
    :meth:`close`. ``pg_bin`` restricts the client tools to one directory.

    ``targets`` are the storage targets copies go to; without them, those that
    ``<data_dir>/targets.toml`` configures (see :mod:`odeion_archive.targets`).

    The archiver owns the data directory's archive key (``<data_dir>/archive.key``,
    created by the first backup), which seals every archive this server makes;
    see :meth:`authenticity` and :meth:`export_key`.

    ``identities`` (:class:`AgeIdentities`) open encrypted archives, besides the
    data directory's own age identity (``<data_dir>/age-identity.txt``).
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        database_url: str | None = None,
        registry: Registry | None = None,
        pg_bin: Path | str | None = None,
        server_version: str = "unknown",
        targets: Sequence[TargetSpec] | None = None,
        identities: AgeIdentities | None = None,
    ) -> None:
        self._data_dir = Path(data_dir)
        self._database_url = database_url
        self._registry = registry if registry is not None else Registry.default()
        self._pg_bin = Path(pg_bin) if pg_bin is not None else None
        self._server_version = server_version
        self._store = BackupStore(self._data_dir / "backups", self._registry)
        self._embedded: EmbeddedPostgres | None = None
        self._embedded_url: str | None = None
        self._key_path = self._data_dir / _keys.KEY_FILE
        self._given_identities = identities
        specs = targets
        self._targets = TargetService(
            (lambda: specs) if specs is not None else (lambda: load_specs(self._data_dir)),
            self._registry,
            self._store,
        )
        self._checks = StoreChecks(
            self._store, self._registry, self._notify_failure, self._verify_file
        )

    # -- plumbing ------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        """The Odeion data directory."""
        return self._data_dir

    @property
    def registry(self) -> Registry:
        """The formats and components available."""
        return self._registry

    @property
    def store(self) -> BackupStore:
        """The archives in ``<data_dir>/backups``."""
        return self._store

    def database_url(self) -> str:
        """The database's connection string, starting the embedded server if needed."""
        if self._database_url is not None:
            return self._database_url
        if self._embedded_url is None:
            self._data_dir.mkdir(parents=True, exist_ok=True)
            self._embedded = EmbeddedPostgres(self._data_dir)
            self._embedded_url = self._embedded.start()
        return self._embedded_url

    def close(self) -> None:
        """Stop the embedded PostgreSQL if this archiver started it."""
        if self._embedded is not None:
            self._embedded.stop()
            self._embedded = None
            self._embedded_url = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _exclusive(self, operation: str) -> Iterator[None]:
        with DataDirLock(self._data_dir, operation):
            removed = self._store.clean_leftovers()
            if removed:
                _log.info("removed leftovers of interrupted operations: %s", removed)
            try:
                scratch = _scratch.clean_leftovers(self._data_dir, self._database_url)
            except ArchiveError as exc:
                _log.warning("the scratch databases of interrupted drills remain: %s", exc)
            else:
                if scratch:
                    _log.info("removed the scratch databases of interrupted drills: %s", scratch)
            yield

    def resolve(self, archive: str | Path) -> Path:
        """The path of ``archive``: a name from :meth:`list`, or a path to a file."""
        if isinstance(archive, Path):
            return archive
        in_store = "/" not in archive and (self._store.directory / archive).is_file()
        if not in_store and Path(archive).is_file():
            return Path(archive)
        if not in_store and ("/" in archive or "\\" in archive) and Path(archive).exists():
            what = "is a directory" if Path(archive).is_dir() else "is not a regular file"
            raise NotFoundError(
                f"{archive!r} {what}; give the path of an archive file or a name that 'list' shows"
            )
        if "/" in archive or "\\" in archive:
            raise NotFoundError(
                f"no such file {archive!r}; give the path of an archive file or a name "
                "that 'list' shows"
            )
        return self._store.path_of(archive)

    def _check_mode(self, mode: str) -> None:
        """Raise :class:`UsageError` for a mode no one provides."""
        choices = self._registry.modes()
        if mode not in choices:
            raise UsageError(f"unknown restore mode {mode!r}; choose one of {', '.join(choices)}")

    # -- backups ---------------------------------------------------------------

    def create(
        self,
        *,
        components: Sequence[str] | None = None,
        format: str = DEFAULT_FORMAT,  # noqa: A002 - the word users know
        progress: ProgressCallback = null_progress,
        cancel: CancelToken | None = None,
        copy_to: Sequence[str] | None = None,
        encryption: AgeRecipients | None = None,
    ) -> BackupResult:
        """Back up ``components`` into a new archive in the store.

        Without ``components``, those that declare themselves part of a default
        backup (the built-ins: users_auth, settings and full_db). With
        ``encryption`` (or, without it, the recipients listed in
        ``<data_dir>/age-recipients.txt``), every member is encrypted with age.

        Once published, the archive is copied to the storage targets
        ``copy_to`` names, or without it to those configured with
        ``copy_after_backup``; each copy's outcome is in ``copies`` of the
        result (a failed copy does not undo the backup).

        Runs in the calling thread (start it in a background task); reports
        progress to ``progress`` and stops within a second of ``cancel``.

        A backup that fails fires the ``odeion_archive_backup_failed`` hook
        once, then raises; a cancelled one does not (the user chose it).
        """
        started = time.monotonic()
        options = BackupOptions(
            components=None if components is None else tuple(components),
            format=format,
            server_version=self._server_version,
        )
        # The targets are known before the backup, so that a bad configuration costs nothing.
        names = self._targets.after_backup() if copy_to is None else tuple(copy_to)
        for name in names:
            self._targets.open(name)  # checks the settings; reaches nothing yet
        failing = _failures.reporting_backup(self._notify_failure, options.components)
        with failing, self._exclusive("backup"):
            info = run_backup(
                self.database_url(),
                self._store,
                self._registry,
                options,
                pg_bin=self._pg_bin,
                progress=progress,
                cancel=cancel,
                keyring=_keys.load_or_create(self._key_path),
                encryption=encryption
                if encryption is not None
                else _agekeys.default_recipients(self._data_dir),
            )
        copies = self._targets.copy_each(info.path, names, progress=progress, cancel=cancel)
        result = BackupResult(archive=info, seconds=time.monotonic() - started, copies=copies)
        self._notify("odeion_archive_backup_created", result)
        return result

    def list(self) -> builtins.list[ArchiveInfo]:
        """The archives in the store, newest first (each with its authenticity)."""
        return self._store.list(keyring=self._keyring())

    def inspect(self, archive: str | Path, *, identities: AgeIdentities | None = None) -> Manifest:
        """The manifest of an archive (a bounded read, fast for any size).

        Of an encrypted archive, the whole manifest if ``identities`` (or the
        data directory's identity) open it, else the manifest it shows without
        the key; identities given that do not open it raise
        :class:`~odeion_archive.errors.DecryptionError`.
        """
        with open_readable(
            self.resolve(archive),
            self._registry,
            self._identities(identities),
            required=self._given_identities is not None or identities is not None,
        ) as opened:
            return opened.manifest

    def verify(
        self,
        archive: str | Path,
        *,
        progress: ProgressCallback = null_progress,
        cancel: CancelToken | None = None,
        identities: AgeIdentities | None = None,
    ) -> VerifyReport:
        """Check every member of an archive against its manifest, and the container.

        Of an encrypted archive, without a key that opens it: the container
        and the ciphertexts; with one (``identities`` or the data directory's),
        every decrypted member too.

        Damage found in an archive of the store fires the
        ``odeion_archive_backup_failed`` hook once (a file elsewhere is only
        reported); the outcome for an archive of the store is recorded (see
        :meth:`list`).
        """
        path = self.resolve(archive)
        stored = _failures.in_store(path, self._store.directory)
        try:
            report = self._checks.verify(path, progress, cancel, identities)
        except ArchiveInvalidError as exc:
            if stored:
                self._notify_failure(_failures.verification_failure(path.name, error=exc))
            raise
        if stored and not report.ok:
            self._notify_failure(_failures.verification_failure(path.name, report.problems))
        return report

    def verify_all(
        self,
        *,
        progress: ProgressCallback = null_progress,
        cancel: CancelToken | None = None,
    ) -> VerifyAllReport:
        """Verify every archive in the store and record each outcome; then every copy on the targets.

        An archive too damaged to open counts as damaged. Each damaged archive
        fires the ``odeion_archive_backup_failed`` hook once; those that an
        earlier verification found intact are named in the report's
        ``damaged_since_verified`` (and carry that warning in :meth:`list`).
        Each configured storage target's copies are fetched one at a time into
        the staging area and verified the same way (``report.targets``); a
        damaged copy, or a target that cannot be listed, fires the hook too.
        """
        report = self._checks.verify_all(progress, cancel)
        copies, unreachable = verify_targets(
            self._targets, self._verify_file, self._notify_failure, progress, cancel
        )
        return attrs.evolve(report, targets=copies, unreachable=unreachable)

    def drill(
        self,
        name: str,
        *,
        progress: ProgressCallback = null_progress,
        cancel: CancelToken | None = None,
        **options: Any,
    ) -> DrillReport:
        """Restore the archive ``name`` into a scratch database and check it there.

        The live database is never touched: the drill restores into a new
        database on the same server when the role may create databases,
        otherwise into a temporary embedded PostgreSQL cluster in the data
        directory; it is dropped however the drill ends (a drill that was
        killed leaves it to the next operation). The outcome is recorded (see
        :meth:`list`); a failed drill fires the ``odeion_archive_backup_failed``
        hook. ``options`` are the components' restore options, as for
        :meth:`restore` (``trust_foreign_dump=True`` drills the dump of an
        archive this server did not make). Raises
        :class:`~odeion_archive.errors.CancelledError` if cancelled, and
        :class:`~odeion_archive.errors.UsageError` for an option no component
        declares.
        """
        check_options(options, self._registry)
        path = self._store.path_of(name)
        with self._exclusive("drill"):
            report = run_drill(
                name,
                path,
                registry=self._registry,
                data_dir=self._data_dir,
                database_url=self._database_url,
                pg_bin=self._pg_bin,
                keyring=self._keyring(),
                identities=self._identities(None),
                options=options,
                progress=progress,
                cancel=cancel,
            )
            self._checks.record(name, drill_record(report))
        if not report.passed:
            self._notify_failure(
                Failure("drill", report.reason or "failed", report.started_at, archive=name)
            )
        return report

    def _identities(self, given: AgeIdentities | None) -> AgeIdentities | None:
        """``given``, the archiver's identities and the data directory's own identity."""
        return combine(self._given_identities, given, _agekeys.load_identities(self._data_dir))

    def _verify_file(
        self,
        path: Path,
        identities: AgeIdentities | None,
        progress: ProgressCallback,
        cancel: CancelToken | None,
    ) -> VerifyReport:
        """Verify the archive at ``path``, decrypting it where a key opens it."""
        return verify_file(
            path,
            self._registry,
            self._identities(identities),
            required=self._given_identities is not None or identities is not None,
            progress=progress,
            cancel=cancel,
        )

    def open_download(self, name: str) -> IO[bytes]:
        """A binary stream of the archive ``name``."""
        return self._store.open_download(name)

    def import_archive(self, source: IO[bytes] | Path | str) -> ArchiveInfo:
        """Validate and verify an uploaded archive, then add it to the store.

        The upload is staged and verified without the data directory's lock,
        so that other operations are not kept busy by an untrusted file; the
        lock is taken only to publish it. If another operation holds the lock
        then, :class:`~odeion_archive.errors.BusyError` is raised and nothing
        is added.
        """

        def publishing() -> AbstractContextManager[None]:
            return self._exclusive("import")

        keyring = self._keyring()
        if isinstance(source, str | Path):
            path = Path(source)
            if not path.is_file():
                what = (
                    "is a directory"
                    if path.is_dir()
                    else "is not a regular file"
                    if path.exists()
                    else "does not exist"
                )
                raise NotFoundError(f"{path} {what}; give the path of an archive file")
            # A first, bounded read names the user's file in any error about its format.
            ArchiveFile.open(path, self._registry).close()
            with path.open("rb") as stream:
                return self._store.import_file(stream, publishing=publishing, keyring=keyring)
        return self._store.import_file(source, publishing=publishing, keyring=keyring)

    def delete(self, name: str) -> None:
        """Delete the archive ``name`` from the store."""
        with self._exclusive("delete"):
            self._store.delete(name)

    def prune(
        self,
        keep_last: int | None = None,
        *,
        rules: RetentionRules | None = None,
        dry_run: bool = False,
    ) -> builtins.list[str]:
        """Delete the archives that ``rules`` do not keep; returns the names deleted.

        ``keep_last`` alone keeps the newest ``keep_last`` archives; with
        ``rules`` (calendar retention) it is one more rule. Whatever the rules,
        the newest archive holding full_db and the newest that passed a drill
        stay, preferring this server's own archives that no verification found
        damaged (a damaged or foreign archive never takes the place of an intact
        one of this server's). With ``dry_run``, returns the names that would be
        deleted and deletes nothing; :meth:`prune_plan` also says why each other
        archive stays.
        """
        if dry_run:
            return self._store.prune(keep_last, rules=rules, dry_run=True, keyring=self._keyring())
        with self._exclusive("prune"):
            return self._store.prune(keep_last, rules=rules, keyring=self._keyring())

    def prune_plan(self, rules: RetentionRules) -> builtins.tuple[RetentionDecision, ...]:
        """Each archive, newest first, with the rules that keep it (none: prune deletes it)."""
        return self._store.retention(rules, keyring=self._keyring())

    # -- the schedule (the host's scheduler calls these) -----------------------

    def due(self, policy: SchedulePolicy, now: dt.datetime | None = None) -> Due:
        """What ``policy`` makes due at ``now`` (default: the current time), and why.

        Computed from the store's records only; nothing runs. A policy whose
        format or components are not registered raises :class:`UsageError`.
        """
        _due.check_policy(policy, self._registry)
        return _due.compute_due(self.list(), policy, now, self._registry.default_components())

    def run_due(
        self,
        policy: SchedulePolicy,
        now: dt.datetime | None = None,
        *,
        progress: ProgressCallback = null_progress,
        cancel: CancelToken | None = None,
    ) -> RunReport:
        """Run what :meth:`due` lists (backup, verification, drill), then retention.

        A task that fails is in the report (and its failure hook fired) and
        the others still run; retention runs only when every task succeeded.
        A cancellation raises :class:`~odeion_archive.errors.CancelledError`.
        """
        return _due.run_due(self, policy, now, progress, cancel)

    # -- storage targets ---------------------------------------------------------

    def targets(self) -> builtins.list[TargetStatus]:
        """Each configured storage target: reachable or why not, its archives, the last copy."""
        return self._targets.status()

    def target_names(self) -> builtins.tuple[str, ...]:
        """The names of the configured storage targets (reaching none of them)."""
        return tuple(spec.name for spec in self._targets.specs())

    def copy_to(
        self,
        target: str,
        archive: str | Path | None = None,
        *,
        progress: ProgressCallback = null_progress,
        cancel: CancelToken | None = None,
    ) -> builtins.list[CopyResult]:
        """Copy ``archive`` to the storage target ``target``; raises if the copy fails.

        Without ``archive``, every archive of the store that the target holds no
        checked copy of (after an interrupted copy, this sends it again).
        Streams with bounded memory, reports ``"copy"`` progress, retries
        failures that may pass, and counts a copy only once its size and sha256
        read back from the target match.

        An archive whose last verification failed is never sent: named, it
        raises :class:`~odeion_archive.errors.CorruptArchiveError`; without
        ``archive``, it is a result with its ``error`` (saying to verify it
        again, or delete it) and the other archives are still copied.
        """
        self._targets.open(target)  # a bad configuration is an error before any copy
        if archive is not None:
            path = self.resolve(archive)
            return [self._targets.copy(path, target, progress=progress, cancel=cancel)]
        results = []
        for info in reversed(self.list()):
            damaged = self._targets.damaged(info.path)
            if damaged is not None:
                results.append(CopyResult(target, info.name, error=damaged))
            else:
                results.append(
                    self._targets.copy(info.path, target, progress=progress, cancel=cancel)
                )
        return results

    def list_target(self, target: str) -> builtins.list[RemoteArchive]:
        """The archives on ``target``, newest copy first, read with bounded ranged reads."""
        return self._targets.archives(target, self._keyring())

    def fetch(
        self,
        target: str,
        archive: str,
        *,
        progress: ProgressCallback = null_progress,
        cancel: CancelToken | None = None,
    ) -> AbstractContextManager[Path]:
        """The archive ``archive`` of ``target``, staged in the data directory.

        Use it as ``with archiver.fetch("offsite", name) as path:`` and pass
        ``path`` to :meth:`plan`, :meth:`verify` or :meth:`restore`; the staged
        file is removed when the block ends. The bytes are checked as they
        arrive against the record of the checked copy
        (:class:`~odeion_archive.errors.CorruptArchiveError` if they differ).
        """
        return self._targets.fetched(target, archive, progress=progress, cancel=cancel)

    def prune_target(
        self,
        target: str,
        keep_last: int | None = None,
        *,
        rules: RetentionRules | None = None,
        dry_run: bool = False,
    ) -> builtins.list[str]:
        """Delete the archives on ``target`` that ``rules`` (and ``keep_last``) do not keep.

        The rules are those of :meth:`prune`; a copy is dated as the store dates
        its archive, or else by when it reached the target (or its manifest's
        date, if earlier). Returns the names deleted (with ``dry_run``, that would be).
        """
        rules = RetentionRules.combined(rules, keep_last)
        return self._targets.prune(target, rules, self._keyring(), dry_run=dry_run)

    def prune_target_plan(
        self, target: str, rules: RetentionRules
    ) -> builtins.tuple[RetentionDecision, ...]:
        """Each archive on ``target``, newest copy first, with the rules that keep it."""
        return self._targets.retention(target, rules, self._keyring())

    # -- restores --------------------------------------------------------------

    def plan(
        self,
        archive: str | Path,
        mode: str,
        conflict: Conflict = "skip",
        **options: Any,
    ) -> RestorePlan:
        """What restoring ``archive`` in ``mode`` would do; nothing is changed.

        ``options`` are the restore options the components declare; each
        component gets its own (the built-ins: full_db takes ``remap_paths``,
        ``allow_unsafe_dump`` and ``trust_foreign_dump``, the administrator's
        trust in the origin of an archive this server did not make; users_auth
        takes ``acting_user``). An option no component declares is a
        :class:`~odeion_archive.errors.UsageError`. An encrypted archive is
        opened with the archiver's ``identities`` and the data directory's own
        identity (blockers ``key_missing`` and ``key_wrong`` if none does).
        """
        self._check_mode(mode)  # an unknown mode is a usage error, first
        check_options(options, self._registry)
        path = self.resolve(archive)
        plan = plan_restore(
            path,
            RestoreOptions(mode, conflict, options),
            registry=self._registry,
            conninfo=self.database_url(),
            pg_bin=self._pg_bin,
            keyring=self._keyring(),
            identities=self._identities(None),
        )
        return attrs.evolve(plan, warnings=plan.warnings + self._checks.warnings_of(path))

    def restore(
        self,
        archive: str | Path,
        mode: str,
        conflict: Conflict = "skip",
        *,
        progress: ProgressCallback = null_progress,
        cancel: CancelToken | None = None,
        expected: RestorePlan | None = None,
        **options: Any,
    ) -> RestoreResult:
        """Restore ``archive``; the database is unchanged unless it fully succeeds.

        Raises :class:`~odeion_archive.errors.RestoreBlockedError` (with the
        plan) if there are blockers. Pass the plan the administrator reviewed as
        ``expected`` to refuse a restore that would now do something else (the
        database changed since). Afterwards the host must rescan its libraries;
        the ``odeion_archive_restore_finished`` hook fires. ``options`` as for
        :meth:`plan`.
        """
        self._check_mode(mode)
        check_options(options, self._registry)
        with self._exclusive("restore"):
            result = run_restore(
                self.resolve(archive),
                RestoreOptions(mode, conflict, options),
                registry=self._registry,
                conninfo=self.database_url(),
                pg_bin=self._pg_bin,
                progress=progress,
                cancel=cancel,
                expected=expected,
                keyring=self._keyring(),
                identities=self._identities(None),
            )
        self._notify("odeion_archive_restore_finished", result)
        return result

    def _notify(self, hook_name: str, result: BackupResult | RestoreResult) -> None:
        hook = getattr(self._registry.hook, hook_name)
        try:
            hook(result=result)
        except Exception:
            _log.exception("a plugin's %s hook failed (the operation itself succeeded)", hook_name)

    def _notify_failure(self, failure: Failure) -> None:
        """Tell the plugins that a backup, verification or drill failed (once per failure)."""
        try:
            self._registry.hook.odeion_archive_backup_failed(failure=failure)
        except Exception:
            _log.exception("a plugin's odeion_archive_backup_failed hook failed")

    # -- the archive key -------------------------------------------------------

    def _keyring(self) -> _keys.Keyring | None:
        """The data directory's archive keys; ``None`` before anything created one."""
        return _keys.load(self._key_path)

    # -- the age keys ----------------------------------------------------------

    def create_age_identity(self) -> str:
        """Create this server's age identity; return its recipient (public key).

        The identity is ``<data_dir>/age-identity.txt`` (mode 0600), and its
        recipient joins ``<data_dir>/age-recipients.txt``, so that new backups
        are encrypted to it. Export it with :meth:`export_emergency_kit`.
        """
        with DataDirLock(self._data_dir, "age identity"):
            return _agekeys.create_identity(self._data_dir)

    def age_recipients(self) -> builtins.tuple[str, ...]:
        """The recipients of this server's age identity (public keys)."""
        return _agekeys.own_recipients(self._data_dir)

    def export_emergency_kit(self, destination: Path | str | IO[str]) -> builtins.tuple[str, ...]:
        """Write the emergency kit (identity, archive key, instructions); return the recipients.

        ``destination`` is a new file (mode 0600; never written over) or an
        open text stream. Keep the kit offline: it opens every encrypted archive
        of this server.
        """
        return _agekeys.export_kit(
            self._data_dir, _keys.load_or_create(self._key_path), destination
        )

    def import_emergency_kit(self, source: Path | str) -> builtins.tuple[str, ...]:
        """Take the identity and the archive key of an emergency kit; return the recipients.

        Afterwards this data directory opens the archives encrypted to that
        identity and recognises those sealed with that key as its own. New
        backups are not encrypted to it unless it is added to
        ``age-recipients.txt``.
        """
        identities, keyring = _agekeys.read_kit_file(Path(source))
        if keyring is not None:
            self.import_key(io.StringIO(keyring.to_text()))
        with DataDirLock(self._data_dir, "age identity"):
            _agekeys.install_identities(self._data_dir, identities)
        return identities.recipients

    def authenticity(self, archive: str | Path) -> Authenticity:
        """Whether this server made ``archive``: ``own``, ``foreign`` or ``tampered``."""
        with ArchiveFile.open(
            self.resolve(archive), self._registry, keyring=self._keyring()
        ) as opened:
            return opened.authenticity

    def key_ids(self) -> builtins.tuple[str, ...]:
        """The ids of the archive keys this server accepts, the signing key's first.

        Creates the key on first use. A key id is derived from its key and
        reveals nothing of it.
        """
        return _keys.load_or_create(self._key_path).key_ids

    def export_key(self, destination: Path | str | IO[str]) -> str:
        """Write the archive keys to ``destination``; returns the signing key's id.

        ``destination`` is a new file (created with mode 0600; an existing file
        is never written over) or an open text stream. The keys are secret:
        whoever holds them can make archives this server accepts as its own.
        Import them on the new machine with :meth:`import_key`.
        """
        keyring = _keys.load_or_create(self._key_path)
        if isinstance(destination, str | Path):
            _keys.write_new(Path(destination), keyring)
        else:
            destination.write(keyring.to_text())
            destination.flush()
        _log.info("exported the archive key (key id %s)", keyring.key_id)
        return keyring.key_id

    def import_key(self, source: Path | str | IO[str] | IO[bytes]) -> str:
        """Import archive keys that :meth:`export_key` wrote; returns the new signing key's id.

        ``source`` is a file or an open stream. The imported signing key seals
        new archives from now on; the keys this data directory held stay
        accepted, so the archives made with either stay ``own``.
        """
        imported = _keys.read_keyring(source)
        with DataDirLock(self._data_dir, "key import"):
            current = _keys.load(self._key_path)
            keyring = imported if current is None else current.with_imported(imported)
            _keys.save(self._key_path, keyring)
        _log.info(
            "imported the archive key %s; accepted keys: %s",
            keyring.key_id,
            ", ".join(keyring.key_ids),
        )
        return keyring.key_id
