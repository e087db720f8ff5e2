"""The exceptions of odeion-archive.

Every exception the library raises on purpose derives from :class:`ArchiveError`.
Each message says what went wrong and what to do about it, so that a host can
show ``str(error)`` to an administrator as it is.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ArchiveError",
    "ArchiveInvalidError",
    "BackupFailedError",
    "BusyError",
    "CancelledError",
    "CorruptArchiveError",
    "DatabaseError",
    "DecryptionError",
    "DuplicateArchiveError",
    "ExtraMissingError",
    "InsufficientSpaceError",
    "KeyringError",
    "ManifestError",
    "ManifestTooNewError",
    "NotFoundError",
    "PluginError",
    "RestoreBlockedError",
    "RestoreFailedError",
    "TargetError",
    "ToolNotFoundError",
    "UnknownComponentError",
    "UnknownFormatError",
    "UnsafeArchiveError",
    "UsageError",
]


class ArchiveError(Exception):
    """Base class of every error that odeion-archive raises on purpose."""


class UsageError(ArchiveError, ValueError):
    """The caller asked for something that cannot be: an unknown mode, a negative count...

    It is a :class:`ValueError` too, for callers that catch misuse that way.
    """


# -- archives ---------------------------------------------------------------


class ArchiveInvalidError(ArchiveError):
    """The archive cannot be used: it is unreadable, unsafe or corrupt."""


class UnsafeArchiveError(ArchiveInvalidError):
    """The archive holds something a safe reader refuses (a path escape, a link, a bomb...)."""


class CorruptArchiveError(ArchiveInvalidError):
    """The archive's bytes do not match what its manifest and container promise."""


class ManifestError(ArchiveInvalidError):
    """The manifest is missing or malformed; the message names the offending field."""


class ManifestTooNewError(ArchiveInvalidError):
    """The manifest was written by a newer, incompatible version of odeion-archive."""

    def __init__(self, found: int, supported: int) -> None:
        self.found = found
        self.supported = supported
        super().__init__(
            f"the archive's manifest has version {found}, but this odeion-archive reads "
            f"manifest versions up to {supported}; upgrade odeion-archive to read this archive"
        )


# -- plugins ----------------------------------------------------------------


class PluginError(ArchiveError):
    """A plugin could not be loaded, or two plugins claim the same name."""


class UnknownFormatError(PluginError, LookupError):
    """No registered plugin provides the requested archive format."""


class UnknownComponentError(PluginError, LookupError):
    """No registered plugin provides the requested component."""


# -- the database and its tools ---------------------------------------------


class DatabaseError(ArchiveError):
    """The database could not be reached or answered with an error."""


class ToolNotFoundError(ArchiveError):
    """No suitable PostgreSQL client tool (pg_dump, pg_restore) was found."""


# -- operations -------------------------------------------------------------


class NotFoundError(ArchiveError, LookupError):
    """The named archive is not in the backup store."""


class DuplicateArchiveError(ArchiveError):
    """The archive being imported is an identical copy of one already in the store."""

    def __init__(self, existing: str) -> None:
        #: The name of the archive in the store that the file duplicates.
        self.existing = existing
        super().__init__(
            f"the file is an identical copy of the archive {existing} already in the store; "
            "nothing was imported (use that name)"
        )


class BusyError(ArchiveError):
    """Another backup or restore holds the data directory."""


class CancelledError(ArchiveError):
    """The operation was cancelled through its cancellation token."""


class InsufficientSpaceError(ArchiveError):
    """The backup directory lacks the free space the backup needs."""


class BackupFailedError(ArchiveError):
    """A backup failed; nothing was added to the store."""


class RestoreFailedError(ArchiveError):
    """A restore failed; the database was left as it was before."""


class RestoreBlockedError(ArchiveError):
    """The restore plan has blockers; nothing was changed."""

    def __init__(self, message: str, plan: Any) -> None:
        #: The plan that has the blockers: the :class:`~odeion_archive.RestorePlan` of
        #: the whole restore, or the :class:`~odeion_archive.ComponentPlan` of one
        #: component (this module imports neither, so that it stays a leaf).
        self.plan = plan
        super().__init__(message)


class KeyringError(ArchiveError):
    """The archive key of the data directory, or a key file, cannot be used.

    Its message never holds key material.
    """


# -- storage targets --------------------------------------------------------


class TargetError(ArchiveError):
    """A storage target could not be used: unreachable, refused, misconfigured, or missing.

    ``transient`` is true for a failure that may pass when tried again (a
    connection lost, a server error); the copy retries those. Its message never
    holds credentials.
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        #: Whether trying again later may succeed.
        self.transient = transient
        super().__init__(message)


class ExtraMissingError(ArchiveError, ImportError):
    """An optional feature needs a dependency that is not installed (an extra)."""


class DecryptionError(ArchiveError):
    """An encrypted archive cannot be opened with the identities given.

    ``code`` is the planner's blocker code: ``key_missing`` (no identity or
    passphrase given) or ``key_wrong`` (none of them opens the archive).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
