"""Frozen values that operations return: archive listings, reports, plans, results."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import attrs

from odeion_archive._manifest import Manifest
from odeion_archive.interfaces import Authenticity, Conflict, Issue, RowCounts
from odeion_archive.targets import CopyResult

__all__ = [
    "ArchiveInfo",
    "BackupResult",
    "CheckRecord",
    "DrillCheck",
    "DrillReport",
    "Failure",
    "Problem",
    "RestorePlan",
    "RestoreResult",
    "VerifyAllReport",
    "VerifyReport",
]


@attrs.frozen
class CheckRecord:
    """The outcome of one check of an archive, as the store records it.

    ``kind``: a ``verification`` (every member against its digests) or a
    ``drill`` (a restore into a scratch database, checked against the archive).
    ``reason`` says why a failed check failed; ``seconds`` is how long it took
    (for a drill: the restore alone, the administrator's real recovery time).
    """

    kind: Literal["verification", "drill"]
    at: dt.datetime
    passed: bool
    reason: str | None = None
    seconds: float | None = None


@attrs.frozen
class Failure:
    """What failed, for the ``odeion_archive_backup_failed`` hook.

    ``operation`` is the kind of work that failed, ``archive`` the archive it
    concerned (``None`` for a backup that produced none), ``reason`` why, in
    words an administrator can act on.
    """

    operation: Literal["backup", "verification", "drill"]
    reason: str
    at: dt.datetime
    archive: str | None = None


@attrs.frozen
class ArchiveInfo:
    """One archive in the backup store, as read from its manifest.

    ``authenticity``: ``own`` if this server made it (its seal checks out),
    ``foreign`` if it came from elsewhere (or predates seals), ``tampered`` if it
    carries this server's key id but changed since.
    """

    name: str
    path: Path
    size: int
    manifest: Manifest = attrs.field(repr=False)
    authenticity: Authenticity = "foreign"
    #: When the archive entered this store (created here, or imported), as the
    #: store recorded it; retention orders by it. ``None`` where not known.
    entered_at: dt.datetime | None = None
    #: What the store noticed about the archive, e.g. ``created_in_future``.
    warnings: tuple[Issue, ...] = ()
    #: The store's record of the archive's last verification and last restore drill.
    last_verification: CheckRecord | None = None
    last_drill: CheckRecord | None = None
    #: When a verification last found the archive intact (``None``: never checked,
    #: or never intact). With a failed ``last_verification``, the archive rotted.
    last_intact_at: dt.datetime | None = None
    #: How the archive entered the store: ``created`` by a backup here, or ``imported``.
    entered_how: Literal["created", "imported"] | None = None

    @property
    def format(self) -> str:
        """The archive's format name."""
        return self.manifest.format

    @property
    def components(self) -> tuple[str, ...]:
        """The components the archive holds."""
        return self.manifest.component_names

    @property
    def created_at(self) -> dt.datetime:
        """When the backup was taken (UTC)."""
        return self.manifest.created_at

    @property
    def server_version(self) -> str:
        """The Odeion server version that took the backup."""
        return self.manifest.server_version

    @property
    def schema_version(self) -> int:
        """The database schema version at backup time."""
        return self.manifest.schema_version


@attrs.frozen
class BackupResult:
    """A finished backup: the archive it added to the store."""

    archive: ArchiveInfo
    seconds: float
    #: The copies to storage targets made after it was published (a failed
    #: copy has its ``error``; the backup itself stays in the store).
    copies: tuple[CopyResult, ...] = ()


@attrs.frozen
class Problem:
    """One problem that verification found; ``member`` is ``None`` for the container."""

    member: str | None
    message: str


@attrs.frozen
class VerifyReport:
    """The outcome of verifying an archive."""

    problems: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the archive is intact."""
        return not self.problems


@attrs.frozen
class RestorePlan:
    """What a restore will do, decided by the planner before anything changes."""

    mode: str
    conflict: Conflict
    components: tuple[str, ...]
    blockers: tuple[Issue, ...] = ()
    warnings: tuple[Issue, ...] = ()
    steps: tuple[str, ...] = ()
    counts: Mapping[str, RowCounts] = attrs.field(factory=dict, hash=False)
    renames: Mapping[str, Mapping[str, str]] = attrs.field(factory=dict, hash=False)
    #: The database's schema version after the restore.
    schema_version: int | None = None
    #: Whether this server made the archive (``None``: the archive could not be read).
    authenticity: Authenticity | None = None

    @property
    def can_restore(self) -> bool:
        """Whether the restore may go ahead (no blockers)."""
        return not self.blockers


@attrs.frozen
class RestoreResult:
    """A committed restore. The host must rescan its libraries afterwards."""

    plan: RestorePlan
    schema_version: int
    seconds: float
    rescan_required: bool = True


@attrs.frozen
class VerifyAllReport:
    """The outcome of verifying every archive in the store, and every copy on the targets.

    ``reports`` has one report per archive, by name; ``damaged_since_verified``
    names the archives that an earlier verification found intact and that are
    damaged now (bit rot, or a change on disk). ``targets`` has, per configured
    storage target, one report per copy there; ``unreachable`` says why a
    target could not be listed.
    """

    reports: Mapping[str, VerifyReport] = attrs.field(factory=dict, hash=False)
    damaged_since_verified: tuple[str, ...] = ()
    targets: Mapping[str, Mapping[str, VerifyReport]] = attrs.field(factory=dict, hash=False)
    unreachable: Mapping[str, str] = attrs.field(factory=dict, hash=False)

    @property
    def ok(self) -> bool:
        """Whether every archive and every copy is intact, and every target was reached."""
        copies = (report for reports in self.targets.values() for report in reports.values())
        return (
            all(report.ok for report in self.reports.values())
            and all(report.ok for report in copies)
            and not self.unreachable
        )


@attrs.frozen
class DrillCheck:
    """One check of a restore drill: its name, whether it passed, and what it found."""

    name: str
    passed: bool
    detail: str


@attrs.frozen
class DrillReport:
    """The outcome of a restore drill: the archive restored into a scratch database, checked.

    ``restore_seconds`` is the time the restore alone took, the administrator's
    real recovery time (``None`` if it did not get that far); ``reason`` says
    why a failed drill failed.
    """

    archive: str
    started_at: dt.datetime
    #: ``full_db`` or the JSON mode the drill restored.
    mode: str
    #: Where the scratch database lived: ``database`` (same server) or ``cluster``.
    scratch: str
    restore_seconds: float | None
    checks: tuple[DrillCheck, ...] = ()
    reason: str | None = None

    @property
    def passed(self) -> bool:
        """Whether the archive restored and every check passed."""
        return self.reason is None and all(check.passed for check in self.checks)
