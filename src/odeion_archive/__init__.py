"""odeion-archive: the backup and restore engine of the Odeion media server.

The host's entry point is :class:`Archiver`; plugin authors implement the
protocols of :mod:`odeion_archive.interfaces` and the hooks of
:mod:`odeion_archive.hookspecs`, and check their plugins with
:mod:`odeion_archive.testing`. The errors are in :mod:`odeion_archive.errors`
(``from odeion_archive import errors``; every one derives from
``errors.ArchiveError``). Importing this package has no side effects: no
plugin is loaded until a :class:`Registry` is built.

Modules whose names start with an underscore are internal.
"""

from typing import Any

from odeion_archive import errors
from odeion_archive._age import AgeIdentities, AgeRecipients
from odeion_archive._archiver import Archiver
from odeion_archive._duration import Duration
from odeion_archive._registry import Registry
from odeion_archive._restore import CONFLICTS
from odeion_archive._retention import RetentionDecision, RetentionRules
from odeion_archive._schedule import Due, DueTask, RunReport, SchedulePolicy, TaskOutcome
from odeion_archive._version import __version__
from odeion_archive.events import CancelToken, ProgressCallback, ProgressEvent
from odeion_archive.hookspecs import hookimpl
from odeion_archive.interfaces import (
    ArchiveFormat,
    ArchiveReader,
    ArchiveWriter,
    Component,
    ComponentPlan,
    Entry,
    Issue,
    ReadLimits,
    RowCounts,
)
from odeion_archive.results import (
    ArchiveInfo,
    BackupResult,
    CheckRecord,
    Failure,
    Problem,
    RestorePlan,
    RestoreResult,
    VerifyReport,
)

__all__ = [
    "CONFLICTS",
    "AgeIdentities",
    "AgeRecipients",
    "ArchiveFormat",
    "ArchiveInfo",
    "ArchiveReader",
    "ArchiveWriter",
    "Archiver",
    "BackupResult",
    "CancelToken",
    "CheckRecord",
    "Component",
    "ComponentPlan",
    "Due",
    "DueTask",
    "Duration",
    "Entry",
    "Failure",
    "Issue",
    "Problem",
    "ProgressCallback",
    "ProgressEvent",
    "ReadLimits",
    "Registry",
    "RestorePlan",
    "RestoreResult",
    "RetentionDecision",
    "RetentionRules",
    "RowCounts",
    "RunReport",
    "SchedulePolicy",
    "TaskOutcome",
    "VerifyReport",
    "__version__",
    "errors",
    "hookimpl",
    "testing",
]


def __getattr__(name: str) -> Any:
    """``odeion_archive.testing`` on first use: the runtime path does not import it."""
    if name == "testing":
        import importlib  # noqa: PLC0415

        return importlib.import_module("odeion_archive.testing")
    raise AttributeError(f"module 'odeion_archive' has no attribute {name!r}")
