"""odeion-archive: the backup and restore engine of the Odeion media server.

The host's entry point is :class:`Archiver`; plugin authors implement the
protocols of :mod:`odeion_archive.interfaces` and the hooks of
:mod:`odeion_archive.hookspecs`. Importing this package has no side effects: no
plugin is loaded until a :class:`Registry` is built.
"""

from odeion_archive._version import __version__
from odeion_archive.archive import ArchiveBuilder, ArchiveFile
from odeion_archive.archiver import Archiver
from odeion_archive.backup import DEFAULT_FORMAT
from odeion_archive.errors import (
    ArchiveError,
    ArchiveInvalidError,
    BackupFailedError,
    BusyError,
    CancelledError,
    CorruptArchiveError,
    DatabaseError,
    DuplicateArchiveError,
    InsufficientSpaceError,
    KeyringError,
    ManifestError,
    ManifestTooNewError,
    NotFoundError,
    PluginError,
    RestoreBlockedError,
    RestoreFailedError,
    ToolNotFoundError,
    UnknownComponentError,
    UnknownFormatError,
    UnsafeArchiveError,
)
from odeion_archive.events import CancelToken, ProgressCallback, ProgressEvent
from odeion_archive.hookspecs import hookimpl
from odeion_archive.interfaces import (
    ArchiveFormat,
    ArchiveReader,
    ArchiveWriter,
    Authenticity,
    BackupContext,
    Component,
    ComponentPlan,
    Conflict,
    Entry,
    Issue,
    PlanContext,
    ReadLimits,
    RestoreContext,
    RowCounts,
)
from odeion_archive.manifest import Authentication, ComponentEntry, Manifest, MemberEntry
from odeion_archive.postgres import EmbeddedPostgres, PgTool
from odeion_archive.registry import Registry
from odeion_archive.restore import CONFLICTS
from odeion_archive.results import (
    ArchiveInfo,
    BackupResult,
    Problem,
    RestorePlan,
    RestoreResult,
    VerifyReport,
)

__all__ = [
    "CONFLICTS",
    "DEFAULT_FORMAT",
    "ArchiveBuilder",
    "ArchiveError",
    "ArchiveFile",
    "ArchiveFormat",
    "ArchiveInfo",
    "ArchiveInvalidError",
    "ArchiveReader",
    "ArchiveWriter",
    "Archiver",
    "Authentication",
    "Authenticity",
    "BackupContext",
    "BackupFailedError",
    "BackupResult",
    "BusyError",
    "CancelToken",
    "CancelledError",
    "Component",
    "ComponentEntry",
    "ComponentPlan",
    "Conflict",
    "CorruptArchiveError",
    "DatabaseError",
    "DuplicateArchiveError",
    "EmbeddedPostgres",
    "Entry",
    "InsufficientSpaceError",
    "Issue",
    "KeyringError",
    "Manifest",
    "ManifestError",
    "ManifestTooNewError",
    "MemberEntry",
    "NotFoundError",
    "PgTool",
    "PlanContext",
    "PluginError",
    "Problem",
    "ProgressCallback",
    "ProgressEvent",
    "ReadLimits",
    "Registry",
    "RestoreBlockedError",
    "RestoreContext",
    "RestoreFailedError",
    "RestorePlan",
    "RestoreResult",
    "RowCounts",
    "ToolNotFoundError",
    "UnknownComponentError",
    "UnknownFormatError",
    "UnsafeArchiveError",
    "VerifyReport",
    "__version__",
    "hookimpl",
]
