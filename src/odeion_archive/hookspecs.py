"""The hook specifications of odeion-archive: every hook a plugin can implement.

A plugin is a module or object with functions marked by :data:`hookimpl`. It is
found through the ``odeion_archive`` entry-point group, or registered directly
with :meth:`odeion_archive.Registry.register`. The built-in formats and
components use these same hooks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from odeion_archive.interfaces import ArchiveFormat, Component
    from odeion_archive.results import BackupResult, Failure, RestoreResult
    from odeion_archive.targets import TargetKind

__all__ = [
    "PROJECT",
    "hookimpl",
    "hookspec",
    "odeion_archive_backup_created",
    "odeion_archive_backup_failed",
    "odeion_archive_components",
    "odeion_archive_formats",
    "odeion_archive_restore_finished",
    "odeion_archive_targets",
]

#: The pluggy project name, which is also the entry-point group.
PROJECT = "odeion_archive"

hookspec = pluggy.HookspecMarker(PROJECT)
#: Marks a plugin's implementation of a hook.
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def odeion_archive_formats() -> Iterable[ArchiveFormat]:  # type: ignore[empty-body]
    """Return the archive formats this plugin provides.

    Two plugins that provide a format of the same name are an error.
    """


@hookspec
def odeion_archive_components() -> Iterable[Component]:  # type: ignore[empty-body]
    """Return the backup components this plugin provides.

    Two plugins that provide a component of the same name are an error.
    """


@hookspec
def odeion_archive_targets() -> Iterable[TargetKind]:  # type: ignore[empty-body]
    """Return the kinds of storage targets this plugin provides (``dir``, ``s3``, ...).

    Two plugins that provide a target kind of the same name are an error.
    """


@hookspec
def odeion_archive_backup_created(result: BackupResult) -> None:
    """Called after a backup was added to the store (to notify, or copy it elsewhere).

    An exception raised here does not undo the backup; it is logged.
    """


@hookspec
def odeion_archive_restore_finished(result: RestoreResult) -> None:
    """Called after a restore committed; the host should rescan its libraries.

    An exception raised here does not undo the restore; it is logged.
    """


@hookspec
def odeion_archive_backup_failed(failure: Failure) -> None:
    """Called once when a backup, a verification or a restore drill fails.

    ``failure`` says what failed and why, so that the host can tell its
    administrators. An exception raised here is logged and changes nothing.
    """
