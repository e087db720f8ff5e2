"""The targets of one archiver: opening them, their state, copies, listings, fetches."""

from __future__ import annotations

import builtins
import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from odeion_archive._archive import ArchiveFile
from odeion_archive._keys import Keyring
from odeion_archive._registry import Registry
from odeion_archive._retention import Candidate, RetentionDecision, RetentionRules, decide
from odeion_archive._store import BackupStore, _sha256
from odeion_archive.errors import (
    ArchiveError,
    ArchiveInvalidError,
    CancelledError,
    CorruptArchiveError,
    NotFoundError,
    TargetError,
    UsageError,
)
from odeion_archive.events import CancelToken, ProgressCallback, null_progress
from odeion_archive.results import Problem, VerifyReport
from odeion_archive.targets import CopyResult, RemoteArchive, Target, TargetSpec, TargetStatus
from odeion_archive.targets._copy import copy_archive, read_sum
from odeion_archive.targets._remote import archive_objects, archives_on, delete_archives, fetch

__all__ = ["TargetService"]

_log = logging.getLogger(__name__)


class TargetService:
    """Opens the configured targets on first use and runs the operations on them."""

    def __init__(
        self,
        specs: Callable[[], Sequence[TargetSpec]],
        registry: Registry,
        store: BackupStore,
        *,
        attempts: int = 3,
        backoff: float = 1.0,
    ) -> None:
        self._load = specs
        self._specs: tuple[TargetSpec, ...] | None = None
        self._registry = registry
        self._store = store
        self._opened: dict[str, Target] = {}
        self._attempts = attempts
        self._backoff = backoff

    def specs(self) -> tuple[TargetSpec, ...]:
        """The configured targets (read once)."""
        if self._specs is None:
            specs = tuple(self._load())
            names = [s.name for s in specs]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise UsageError(f"two targets are named {', '.join(twice)}; rename one")
            self._specs = specs
        return self._specs

    def spec(self, name: str) -> TargetSpec:
        """The target called ``name``; a :class:`UsageError` naming the known ones if none is."""
        for spec in self.specs():
            if spec.name == name:
                return spec
        known = ", ".join(s.name for s in self.specs()) or "none is configured"
        raise UsageError(
            f"no storage target named {name!r} (known: {known}); configure it in targets.toml "
            "in the data directory"
        )

    def open(self, name: str) -> Target:
        """The opened target ``name``."""
        if name not in self._opened:
            spec = self.spec(name)
            self._opened[name] = self._registry.target_kind(spec.kind).open(spec)
        return self._opened[name]

    def status(self) -> builtins.list[TargetStatus]:
        """Each configured target: reachable or why not, its archives, the last copy."""
        states = []
        for spec in self.specs():
            try:
                target = self.open(spec.name)
                where = target.describe()
                archives = archive_objects(target.list(), target)
            except ArchiveError as exc:
                states.append(
                    TargetStatus(
                        spec.name,
                        spec.kind,
                        "",
                        False,
                        error=str(exc),
                        copy_after_backup=spec.copy_after_backup,
                    )
                )
                continue
            last = max((o.modified for o in archives), default=None)
            states.append(
                TargetStatus(
                    spec.name,
                    spec.kind,
                    where,
                    True,
                    len(archives),
                    last,
                    copy_after_backup=spec.copy_after_backup,
                )
            )
        return states

    def copy(
        self,
        path: Path,
        name: str,
        *,
        progress: ProgressCallback = null_progress,
        cancel: CancelToken | None = None,
        skip_copied: bool = True,
    ) -> CopyResult:
        """Copy the archive at ``path`` to the target ``name``; raises if it fails.

        With ``skip_copied``, an archive whose checked copy (same size and
        sha256 recorded) is on the target already is not sent again. An archive
        of the store whose last verification failed is refused
        (:class:`CorruptArchiveError`, see :meth:`damaged`) before anything is
        sent: its copy would be checked against its damaged bytes, and could
        replace a good copy on the target.
        """
        target = self.open(name)
        if path.name.startswith("."):
            raise UsageError(
                f"{path.name!r} starts with '.', as the records of checked copies on a target "
                "do; rename the archive before copying it"
            )
        damaged = self.damaged(path)
        if damaged is not None:
            raise CorruptArchiveError(damaged)
        if path.resolve().parent != self._store.directory.resolve():
            # Only an archive goes to a target: a file from elsewhere that is none (a
            # mistyped path, a configuration file) is refused before any byte leaves.
            with ArchiveFile.open(path, self._registry):
                pass
        if skip_copied:
            present = {o.name: o.size for o in target.list()}
            record = read_sum(target, path.name, present)
            if (
                record is not None
                and present.get(path.name) == record.size == path.stat().st_size
                and _sha256(path) == record.sha256
            ):
                return CopyResult(name, path.name, record.size, record.sha256, skipped=True)
        return copy_archive(
            path,
            target,
            progress=progress,
            cancel=cancel,
            attempts=self._attempts,
            backoff=self._backoff,
        )

    def damaged(self, path: Path) -> str | None:
        """Why the archive at ``path`` is not copied: the store found it damaged.

        ``None`` unless it is an archive of the store whose last verification
        failed (a file from elsewhere has no record: it is checked as it is read).
        """
        if path.resolve().parent != self._store.directory.resolve():
            return None
        record = self._store.record(path.name)
        check = record.last_verification if record is not None else None
        if check is None or check.passed:
            return None
        return (
            f"{path.name} is damaged: its verification on {check.at:%Y-%m-%d %H:%M} UTC failed "
            f"({check.reason or 'damaged'}); it is not copied, so that no damaged copy replaces "
            f"a good one. Verify it again ('odeion-archive verify {path.name}'): if it passes, "
            "copy it; if not, delete it and keep the copies of the other archives"
        )

    def copy_each(
        self,
        path: Path,
        names: Sequence[str],
        *,
        progress: ProgressCallback = null_progress,
        cancel: CancelToken | None = None,
    ) -> tuple[CopyResult, ...]:
        """Copy to each of ``names``; a failure is a result with its ``error`` (and logged)."""
        results = []
        for name in names:
            try:
                results.append(self.copy(path, name, progress=progress, cancel=cancel))
            except CancelledError:
                results.append(
                    CopyResult(name, path.name, error="cancelled; copy it later with 'copy'")
                )
                break
            except ArchiveError as exc:
                _log.error("the copy of %s to target %s failed: %s", path.name, name, exc)
                results.append(CopyResult(name, path.name, error=str(exc)))
        return tuple(results)

    def after_backup(self) -> tuple[str, ...]:
        """The targets each new backup is copied to."""
        return tuple(s.name for s in self.specs() if s.copy_after_backup)

    def archives(self, name: str, keyring: Keyring | None) -> builtins.list[RemoteArchive]:
        """The archives on the target ``name``, newest copy first."""
        return archives_on(self.open(name), self._registry, keyring=keyring)

    @contextlib.contextmanager
    def fetched(
        self,
        name: str,
        archive: str,
        *,
        progress: ProgressCallback = null_progress,
        cancel: CancelToken | None = None,
    ) -> Iterator[Path]:
        """The archive ``archive`` of the target ``name``, staged while the context lasts."""
        with fetch(self.open(name), archive, self._store, progress=progress, cancel=cancel) as path:
            yield path

    def verify_copies(
        self,
        name: str,
        verify_file: Callable[[Path, ProgressCallback, CancelToken | None], VerifyReport],
        *,
        progress: ProgressCallback = null_progress,
        cancel: CancelToken | None = None,
    ) -> dict[str, VerifyReport]:
        """Verify every archive on the target ``name``, by name.

        Each is fetched into the staging area (checked against the record of its
        checked copy as it arrives), verified by ``verify_file`` as an archive of
        the store is (decrypted where a key opens it), and removed;
        one archive at a time, so the staging area holds at most one. A target
        that cannot be listed raises :class:`~odeion_archive.errors.TargetError`.
        """
        reports: dict[str, VerifyReport] = {}
        target = self.open(name)
        listed = list(target.list())  # once: each fetch finds its object and record there

        def verified(archive: str) -> VerifyReport | None:
            try:
                with fetch(
                    target, archive, self._store, progress=progress, cancel=cancel, listed=listed
                ) as path:
                    return verify_file(path, progress, cancel)
            except NotFoundError:
                return None  # deleted meanwhile
            except ArchiveInvalidError as exc:
                return VerifyReport((Problem(None, str(exc)),))

        for obj in archive_objects(listed, target):
            try:
                report = verified(obj.name)
            except TargetError:
                # A run can take hours: a copy that fails to read is looked for in a new
                # listing. One deleted meanwhile (another host's retention) is skipped; one
                # whose record went or came is fetched once more, with what is there now.
                listed = list(target.list())
                if all(o.name != obj.name for o in listed):
                    continue
                report = verified(obj.name)
            if report is not None:
                reports[obj.name] = report
        return reports

    def retention(
        self, name: str, rules: RetentionRules, keyring: Keyring | None
    ) -> tuple[RetentionDecision, ...]:
        """What ``rules`` keep of the archives on the target ``name``, and why.

        The same rules as in the store. A copy of an archive the store holds is
        dated as the store dates it (when it entered the store); any other copy
        by when it reached the target, or by its manifest's date if that is
        earlier (copies made together today of a month of backups are a month
        of backups, not one day's). A drill passed by the store's archive of the
        same name counts, unless a verification since found that archive
        damaged. A copy's origin is read from its own manifest (with
        ``keyring``): the safety nets prefer this server's copies to those of
        another server sharing the target. A verification of the store's archive
        says nothing of the copy's bytes, so no copy counts as damaged here
        (``verify --target`` checks them).
        """
        in_store = {info.name: Candidate.of(info) for info in self._store.list(keyring=keyring)}
        drilled = {name for name, candidate in in_store.items() if candidate.drill_passed}
        candidates = [
            Candidate(
                name=archive.name,
                entered_at=(
                    in_store[archive.name].entered_at
                    if archive.name in in_store
                    else min(archive.copied_at, archive.manifest.created_at)
                ),
                holds_full_db="full_db" in archive.manifest.component_names,
                drill_passed=archive.name in drilled,
                future_dated=archive.name in in_store and in_store[archive.name].future_dated,
                authenticity=archive.authenticity,
            )
            for archive in self.archives(name, keyring)
        ]
        return decide(candidates, rules)

    def prune(
        self, name: str, rules: RetentionRules, keyring: Keyring | None, *, dry_run: bool = False
    ) -> builtins.list[str]:
        """Delete from the target ``name`` the archives that ``rules`` do not keep."""
        doomed = [d.name for d in self.retention(name, rules, keyring) if not d.keep]
        if not dry_run:
            delete_archives(self.open(name), doomed)
        return doomed
