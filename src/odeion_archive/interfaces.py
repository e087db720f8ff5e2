"""The interfaces that format and component plugins implement.

A plugin returns objects that satisfy these protocols from the hooks in
:mod:`odeion_archive.hookspecs`. The built-in zip and tar.zst formats and the
users_auth, settings and full_db components are written against exactly these
interfaces.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import attrs

from odeion_archive._manifest import ContainerPrefix

if TYPE_CHECKING:
    import psycopg

    from odeion_archive._manifest import ComponentEntry, Manifest, MemberEntry
    from odeion_archive._postgres import PgTool
    from odeion_archive.events import CancelToken

__all__ = [
    "ArchiveFormat",
    "ArchiveReader",
    "ArchiveWriter",
    "Authenticity",
    "BackupContext",
    "Component",
    "ComponentPlan",
    "Conflict",
    "ContainerPrefix",
    "DatabaseRestoreContext",
    "Entry",
    "EntryKind",
    "InputChecker",
    "Issue",
    "MemberSource",
    "PlanContext",
    "ReadLimits",
    "RestoreContext",
    "RowCounts",
]

# -- formats ----------------------------------------------------------------

EntryKind = Literal["file", "directory", "symlink", "hardlink", "device", "fifo", "other"]


@attrs.frozen
class Entry:
    """A member as the container describes it, before its data is read.

    ``name`` is the raw name from the container (not yet checked); ``size`` the
    uncompressed size that the container declares.
    """

    name: str
    kind: EntryKind
    size: int


@attrs.frozen
class ReadLimits:
    """Bounds a reader enforces on untrusted archives."""

    #: Most members (manifest members included) an archive may hold.
    max_members: int = 10_000
    #: Largest zstd window a decoder may allocate.
    max_window_bytes: int = 128 * 1024 * 1024
    #: Largest manifest member.
    max_manifest_bytes: int = 512 * 1024
    #: Largest chunk a reader yields.
    chunk_bytes: int = 1024 * 1024


class MemberSource(Protocol):
    """A member met while walking an archive: its entry, and its data once."""

    @property
    def entry(self) -> Entry:
        """The container's description of this member."""
        ...

    def chunks(self) -> Iterator[bytes]:
        """The member's bytes, in chunks of at most ``ReadLimits.chunk_bytes``.

        Must be consumed before the walk advances; a walk that advances
        without consuming skips the data.
        """
        ...


@runtime_checkable
class ArchiveWriter(Protocol):
    """Writes one archive to a sequential binary stream, member after member."""

    def add(
        self, path: str, chunks: Iterable[bytes], *, size: int | None = None
    ) -> ContainerPrefix | None:
        """Write one regular member from an iterable of chunks, streaming.

        ``size`` is the member's size when it is known in advance, ``None``
        otherwise (a pg_dump stream); a member that differs from a given size
        is an error. The writer holds at most a bounded amount of the member in
        memory and does not stage it whole, on disk or in memory, where the
        output stream can seek; on a stream that cannot, it may stage members of
        unknown size.

        Returns the container's bytes through the member, as finally written
        (:class:`ContainerPrefix`), if and only if the format's reader reads
        the member from those bytes alone (whatever follows them); a component
        may record it in its facts, and a restore then checks the member with
        one sha256 over them, without decompressing it. ``None`` otherwise.
        """
        ...

    def close(self) -> None:
        """Write the container's trailer (index, central directory, seal)."""
        ...


@runtime_checkable
class ArchiveReader(Protocol):
    """Reads one archive from a seekable binary file, without trusting it."""

    def read_member(self, path: str, max_size: int) -> bytes:
        """The whole of one small member, found without reading the archive through.

        Reads a bounded number of bytes of the file (for the manifest of an
        archive of any size). Raises :class:`~odeion_archive.errors.ManifestError`
        if the member is absent and
        :class:`~odeion_archive.errors.UnsafeArchiveError` if it exceeds ``max_size``.
        """
        ...

    def entries(self) -> list[Entry]:
        """Every entry as the container declares it, reading no member data.

        Must list what :meth:`walk` meets (a walk that meets anything else is
        an error); bounded by ``ReadLimits.max_members``.
        """
        ...

    def walk(self) -> Iterator[MemberSource]:
        """Every entry of the archive, in archive order (links, directories too)."""
        ...

    def container_problems(self) -> list[str]:
        """Check the container itself (structure, seal, checksums) end to end.

        Returns one message per problem; an empty list means the container is
        intact. Detects a flipped bit anywhere and truncation at any offset.
        """
        ...

    def close(self) -> None:
        """Release what the reader holds (not the file, which the caller owns)."""
        ...


@runtime_checkable
class ArchiveFormat(Protocol):
    """An archive container format, such as zip or tar.zst."""

    #: The name users choose the format by, e.g. ``"tar.zst"``.
    name: str
    #: File name suffix of archives in this format, e.g. ``".tar.zst"``.
    suffix: str

    def sniff(self, head: bytes) -> bool:
        """Whether ``head`` (the first bytes of a file, up to 4 KiB) starts this format."""
        ...

    def open_writer(self, stream: IO[bytes]) -> ArchiveWriter:
        """A writer that writes a new archive to ``stream``."""
        ...

    def open_reader(self, file: IO[bytes], limits: ReadLimits) -> ArchiveReader:
        """A reader of the archive in the seekable ``file``."""
        ...


# -- components -------------------------------------------------------------

Conflict = Literal["skip", "overwrite", "rename"]
#: Whether this server made an archive: ``own``, ``foreign`` or ``tampered``.
Authenticity = Literal["own", "foreign", "tampered"]


@attrs.frozen
class Issue:
    """A blocker or a warning of a plan: a stable code and a sentence to act on."""

    code: str
    message: str


@attrs.frozen
class RowCounts:
    """Predicted effect of a JSON restore on one table."""

    insert: int = 0
    skip: int = 0
    overwrite: int = 0
    rename: int = 0


@attrs.frozen
class ComponentPlan:
    """What restoring one component would do, decided without changing anything."""

    blockers: tuple[Issue, ...] = ()
    warnings: tuple[Issue, ...] = ()
    steps: tuple[str, ...] = ()
    counts: Mapping[str, RowCounts] = attrs.field(factory=dict, hash=False)
    #: New usernames and similar, as ``{table: {old: new}}``, for the rename strategy.
    renames: Mapping[str, Mapping[str, str]] = attrs.field(factory=dict, hash=False)


class BackupContext(Protocol):
    """What a component gets to write its part of a backup."""

    #: A connection inside the backup's snapshot (REPEATABLE READ, read only).
    connection: psycopg.Connection[Any]
    #: The exported snapshot id, for tools that join the snapshot (``pg_dump --snapshot``).
    snapshot: str
    #: The database's schema version.
    schema_version: int
    cancel: CancelToken

    def add_member(
        self, name: str, chunks: Iterable[bytes], *, total: int | None = None
    ) -> MemberEntry:
        """Stream a member ``<component>/<name>`` into the archive; returns its entry."""
        ...

    def progress(
        self,
        phase: str,
        done: int,
        total: int | None = None,
        unit: Literal["bytes", "rows", "steps"] = "rows",
    ) -> None:
        """Report progress of this component."""
        ...

    def tool_env(self) -> tuple[str, dict[str, str]]:
        """A connection string without password, and the environment to run a tool with."""
        ...

    def tool(self, name: Literal["pg_dump", "pg_restore", "psql"]) -> PgTool:
        """A PostgreSQL client tool suitable for this server (major at least the server's)."""
        ...

    @property
    def conninfo(self) -> str:
        """The database's connection string, for a second session that joins :attr:`snapshot`."""
        ...


class PlanContext(Protocol):
    """What a component gets to plan its restore (read-only)."""

    manifest: Manifest
    entry: ComponentEntry
    #: A connection to the target database; the planner rolls back whatever happens.
    connection: psycopg.Connection[Any]
    conflict: Conflict
    #: The target database's schema version.
    schema_version: int
    #: The restore options of this component: the fields of its ``options_type``
    #: (see :func:`options_of`), or every option the host passed if it declares none.
    options: Mapping[str, Any]
    #: Whether this server made the archive: ``own`` (its MAC checks out under a key
    #: of this server), ``foreign`` (no MAC, or another server's key) or ``tampered``
    #: (the planner blocks those before any component sees them).
    authenticity: Authenticity

    def open_member(self, path: str) -> IO[bytes]:
        """A member's bytes, checked against its size and sha256 as they are read."""
        ...

    def tool(self, name: Literal["pg_dump", "pg_restore", "psql"]) -> PgTool | None:
        """A local client tool suited to the target server, or ``None`` if none is found."""
        ...

    def tools(self, name: Literal["pg_dump", "pg_restore", "psql"]) -> Sequence[PgTool]:
        """Every local client tool of that name, whatever its version."""
        ...


class DatabaseRestoreContext(PlanContext, Protocol):
    """What a ``restore_scope="database"`` component gets to replace the whole database.

    It makes no promise of a transaction: the component replaces the database
    in a session of its own (:attr:`conninfo`), atomically, and ``connection``
    serves only to look at the target (roles, settings) before it does.
    """

    #: The plan the host reviewed, if it passed one: the restore must do exactly
    #: that or refuse. Its counts and renames are those of the whole plan, its
    #: warnings every warning the host was shown. ``None``: decide now.
    plan: ComponentPlan | None
    cancel: CancelToken

    @property
    def conninfo(self) -> str:
        """The database's connection string, for the session the component opens."""
        ...

    def progress(
        self,
        phase: str,
        done: int,
        total: int | None = None,
        unit: Literal["bytes", "rows", "steps"] = "rows",
    ) -> None:
        """Report progress of this component."""
        ...

    def tool_env(self) -> tuple[str, dict[str, str]]:
        """A connection string without password, and the environment to run a tool with."""
        ...

    def open_checked(
        self,
        path: str,
        on_bytes: Callable[[int, int], None] | None = None,
        *,
        prefix: ContainerPrefix | None = None,
    ) -> IO[bytes]:
        """The member ``path``, checked whole before this returns, then read only as it was.

        For a member whose bytes must be known before any is used (a dump,
        before its first statement runs). The check reads the member through
        once against its size and sha256; with a ``prefix`` (what the format
        returned when the member was written: the component recorded it in its
        facts, see :class:`ContainerPrefix`) and an archive this server sealed,
        it is one sha256 over the archive's stored bytes through the member
        instead, and the member is never decompressed only to be hashed. The
        stream returned reads the archive only as the check saw it: bytes
        changed since (whoever can write the file while a restore runs) are
        refused before they are used. ``on_bytes`` is called with the bytes
        checked so far and in all. Raises
        :class:`~odeion_archive.errors.CorruptArchiveError` if the member
        differs, now or as it is read.
        """
        ...


class RestoreContext(PlanContext, Protocol):
    """What a ``restore_scope="transaction"`` component gets to restore.

    ``connection`` is inside the restore's single transaction, shared with the
    other such components: the component changes the database through it, and
    raises to roll everything back.
    """

    #: The plan the host reviewed, if it passed one: the restore must do exactly
    #: that or refuse. Its counts and renames are those of the whole plan, its
    #: warnings every warning the host was shown. ``None``: decide now, inside the transaction.
    plan: ComponentPlan | None
    cancel: CancelToken

    def progress(
        self,
        phase: str,
        done: int,
        total: int | None = None,
        unit: Literal["bytes", "rows", "steps"] = "rows",
    ) -> None:
        """Report progress of this component."""
        ...

    def tool_env(self) -> tuple[str, dict[str, str]]:
        """A connection string without password, and the environment to run a tool with."""
        ...


@runtime_checkable
class Component(Protocol):
    """A part of the database that a backup can carry and a restore bring back.

    Two attributes are optional (:func:`restore_modes_of` and
    :func:`in_default_backup` read them, with their defaults):

    ``restore_modes`` (``tuple[str, ...]``, default ``(name,)``)
        The restore modes this component takes part in. A mode restores every
        component that names it, together (``everything_json`` is the mode of
        both ``users_auth`` and ``settings``).
    ``in_default_backup`` (``bool``, default ``False``)
        Whether a backup that names no components carries this one.
    ``options_type`` (an attrs class, default ``None``)
        The restore options the component takes, as the fields of a frozen attrs
        class with defaults (:func:`options_of` builds one from the host's
        values). The component's contexts then carry exactly these options;
        without it, every option the host passed.
    """

    #: The name users choose the component by, e.g. ``"users_auth"``.
    name: str
    #: Version of the member layout this component writes.
    payload_version: int
    #: ``"transaction"``: restored inside the restore's single transaction, with
    #: other such components. ``"database"``: replaces the whole database, alone.
    restore_scope: Literal["transaction", "database"]

    def backup(self, context: BackupContext) -> Mapping[str, Any]:
        """Write the component's members; return its facts for the manifest."""
        ...

    def plan(self, context: PlanContext) -> ComponentPlan:
        """Decide what a restore of this component would do, changing nothing."""
        ...

    def restore(self, context: Any) -> ComponentPlan:
        """Restore; return what was done. Raise to leave the database as it was.

        ``context`` is a :class:`RestoreContext` (inside the restore's
        transaction) for ``restore_scope="transaction"``, a
        :class:`DatabaseRestoreContext` for ``"database"``. Decisions are made
        again now; if ``context.plan`` is given and they differ from it, refuse
        (the database changed since).
        """
        ...


@runtime_checkable
class InputChecker(Protocol):
    """A component that checks its whole input before a restore takes any lock.

    Optional. The restore calls :meth:`check_input` of every such component,
    inside the restore's transaction and before any component's
    :meth:`Component.restore`, with the context it then passes to ``restore``.
    """

    def check_input(self, context: RestoreContext) -> None:
        """Read and check the component's members without locking the target's tables.

        Raise an :class:`~odeion_archive.errors.ArchiveInvalidError` for bad
        input; anything prepared here (temporary tables) may serve ``restore``.
        """
        ...


def restore_modes_of(component: Component) -> tuple[str, ...]:
    """The restore modes ``component`` declares (``(component.name,)`` if it declares none)."""
    modes = getattr(component, "restore_modes", None)
    return (component.name,) if modes is None else tuple(str(m) for m in modes)


def options_type_of(component: Component) -> type | None:
    """The attrs class of the restore options ``component`` declares, or ``None``."""
    declared = getattr(component, "options_type", None)
    return declared if isinstance(declared, type) and attrs.has(declared) else None


def options_of(component: Component, values: Mapping[str, Any]) -> Mapping[str, Any]:
    """The options ``component`` gets from the host's ``values``.

    With an ``options_type``: its fields, each from ``values`` or its default,
    checked by building the class (a ``TypeError`` or ``ValueError`` for a bad
    value). Without one: ``values`` as they are.
    """
    declared = options_type_of(component)
    if declared is None:
        return dict(values)
    names = [field.name for field in attrs.fields(declared)]
    return attrs.asdict(declared(**{n: values[n] for n in names if n in values}), recurse=False)


def in_default_backup(component: Component) -> bool:
    """Whether ``component`` declares itself part of a default backup (``False`` if silent)."""
    return bool(getattr(component, "in_default_backup", False))


def member_path(component: str, name: str) -> str:
    """The archive path of member ``name`` of ``component``."""
    return f"{component}/{name}"


__all__ += [
    "in_default_backup",
    "member_path",
    "options_of",
    "options_type_of",
    "restore_modes_of",
]
