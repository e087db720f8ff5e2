"""Verifications of the store's archives, recorded in the store.

:class:`StoreChecks` verifies an archive and records the outcome when it is an
archive of the store, verifies the whole store (reporting each damaged archive
once through the failure hook), and says what the records hold against an
archive (the ``damaged_since_verified`` warning).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from odeion_archive._failures import copy_failure, verification_failure
from odeion_archive._proving import damaged_since_verified, verification_record
from odeion_archive._registry import Registry
from odeion_archive._store import BackupStore
from odeion_archive.errors import ArchiveError, ArchiveInvalidError, NotFoundError, TargetError
from odeion_archive.events import CancelToken, ProgressCallback
from odeion_archive.interfaces import Issue
from odeion_archive.results import (
    CheckRecord,
    Failure,
    Problem,
    VerifyAllReport,
    VerifyReport,
)

if TYPE_CHECKING:
    from odeion_archive._age import AgeIdentities
    from odeion_archive.targets._service import TargetService

__all__ = ["StoreChecks", "verify_targets"]

_log = logging.getLogger(__name__)

#: Verifies the archive at a path, decrypting it where the identities (or the
#: data directory's own) open it: the archiver's ``_verify_file``.
FileVerifier = Callable[
    [Path, "AgeIdentities | None", ProgressCallback, "CancelToken | None"], VerifyReport
]


def verify_targets(
    targets: TargetService,
    verify_file: FileVerifier,
    notify_failure: Callable[[Failure], None],
    progress: ProgressCallback,
    cancel: CancelToken | None,
) -> tuple[dict[str, dict[str, VerifyReport]], dict[str, str]]:
    """Verify every copy on every configured target: the reports, and the targets not reached.

    Each damaged copy, and each target that cannot be listed, is reported once
    through ``notify_failure``.
    """
    copies: dict[str, dict[str, VerifyReport]] = {}
    unreachable: dict[str, str] = {}
    for spec in targets.specs():
        try:
            copies[spec.name] = targets.verify_copies(
                spec.name,
                lambda path, progress, cancel: verify_file(path, None, progress, cancel),
                progress=progress,
                cancel=cancel,
            )
        except TargetError as exc:
            unreachable[spec.name] = str(exc)
            notify_failure(copy_failure(spec.name, None, error=str(exc)))
            continue
        for name, report in copies[spec.name].items():
            if not report.ok:
                notify_failure(copy_failure(spec.name, name, report.problems))
    return copies, unreachable


class StoreChecks:
    """Verifies archives and keeps the store's record of each outcome."""

    def __init__(
        self,
        store: BackupStore,
        registry: Registry,
        notify_failure: Callable[[Failure], None],
        verify_file: FileVerifier,
    ) -> None:
        self._store = store
        self._registry = registry
        self._notify_failure = notify_failure
        self._verify_file = verify_file

    def name_in_store(self, path: Path) -> str | None:
        """The name of the archive at ``path`` if it lies in the store, else ``None``."""
        if path.parent.resolve() != self._store.directory.resolve():
            return None
        return path.name

    def record(self, name: str, check: CheckRecord) -> None:
        """Record ``check``; a record that cannot be written is logged, not raised."""
        try:
            self._store.record_check(name, check)
        except (ArchiveError, OSError) as exc:
            _log.warning("could not record the %s of %s: %s", check.kind, name, exc)

    def verify(
        self,
        path: Path,
        progress: ProgressCallback,
        cancel: CancelToken | None,
        identities: AgeIdentities | None = None,
    ) -> VerifyReport:
        """Verify the archive at ``path``; record the outcome if it is an archive of the store.

        An archive too damaged to open raises
        :class:`~odeion_archive.errors.ArchiveInvalidError`, and is recorded as damaged.
        """
        at = dt.datetime.now(dt.UTC)
        started = time.monotonic()
        name = self.name_in_store(path)
        try:
            report = self._verify_file(path, identities, progress, cancel)
        except ArchiveInvalidError as exc:
            if name is not None:
                unreadable = VerifyReport((Problem(None, str(exc)),))
                self.record(name, verification_record(unreadable, at, time.monotonic() - started))
            raise
        if name is not None:
            self.record(name, verification_record(report, at, time.monotonic() - started))
        return report

    def verify_all(self, progress: ProgressCallback, cancel: CancelToken | None) -> VerifyAllReport:
        """Verify every archive file of the store, readable or not; see ``Archiver.verify_all``."""
        reports: dict[str, VerifyReport] = {}
        rotted: list[str] = []
        for name in self._store.archive_names():
            if cancel is not None:
                cancel.raise_if_cancelled()
            path = self._store.directory / name
            try:
                report = self.verify(path, progress, cancel)
                failure = None if report.ok else verification_failure(name, report.problems)
            except ArchiveInvalidError as exc:
                report = VerifyReport((Problem(None, str(exc)),))
                failure = verification_failure(name, error=exc)
            except NotFoundError:
                continue  # deleted meanwhile
            reports[name] = report
            if failure is None:
                continue
            if self.warnings_of(path):
                rotted.append(name)
            self._notify_failure(failure)
        return VerifyAllReport(reports=reports, damaged_since_verified=tuple(rotted))

    def warnings_of(self, path: Path) -> tuple[Issue, ...]:
        """What the store's record holds against the archive at ``path`` (it rotted)."""
        name = self.name_in_store(path)
        if name is None:
            return ()
        try:
            record = self._store.record(name)
        except NotFoundError:
            return ()
        if record is None:
            return ()
        return damaged_since_verified(record.last_verification, record.last_intact_at)
