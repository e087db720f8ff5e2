"""A small host for the JSON components: real backups into memory, plans and restores.

:func:`take_backup` runs the components' own ``backup()`` against a database and
keeps the members as bytes; :func:`plan` and :func:`restore` serve those bytes
to ``plan()`` and ``restore()`` the way the restore planner does (a plan on a
connection that is rolled back, a restore of every component in one transaction
that is committed only if all succeed).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any, Literal

import attrs
import psycopg

from odeion_archive._manifest import ComponentEntry, Manifest, MemberEntry
from odeion_archive._schema import schema_version
from odeion_archive.components.settings import SettingsComponent
from odeion_archive.components.users_auth import UsersAuthComponent
from odeion_archive.events import CancelToken
from odeion_archive.interfaces import (
    Authenticity,
    Component,
    ComponentPlan,
    Conflict,
    InputChecker,
    RowCounts,
)

if TYPE_CHECKING:
    from odeion_archive._postgres import PgTool

COMPONENTS: Mapping[str, Component] = {
    "users_auth": UsersAuthComponent(),
    "settings": SettingsComponent(),
}
MODES: Mapping[str, tuple[str, ...]] = {
    "users_auth": ("users_auth",),
    "settings": ("settings",),
    "everything_json": ("users_auth", "settings"),
}


@attrs.frozen
class Archive:
    """A backup held in memory: its manifest and its members' bytes by path."""

    manifest: Manifest
    members: Mapping[str, bytes] = attrs.field(hash=False)

    def replace(self, path: str, data: bytes) -> Archive:
        """The same archive with one member's bytes replaced (the manifest unchanged)."""
        return Archive(self.manifest, {**self.members, path: data})


class _Collector:
    """A BackupContext that keeps the members in memory."""

    def __init__(self, component: str, connection: psycopg.Connection[Any]) -> None:
        self.connection = connection
        self.snapshot = ""
        self.schema_version = schema_version(connection)
        self.cancel = CancelToken()
        self.component = component
        self.members: dict[str, bytes] = {}
        self.entries: list[MemberEntry] = []

    def add_member(
        self, name: str, chunks: Iterable[bytes], *, total: int | None = None
    ) -> MemberEntry:
        data = b"".join(chunks)
        path = f"{self.component}/{name}"
        self.members[path] = data
        entry = MemberEntry(path, len(data), hashlib.sha256(data).hexdigest())
        self.entries.append(entry)
        return entry

    def progress(
        self,
        phase: str,
        done: int,
        total: int | None = None,
        unit: Literal["bytes", "rows", "steps"] = "rows",
    ) -> None:
        pass

    def tool_env(self) -> tuple[str, dict[str, str]]:
        raise NotImplementedError

    def tool(self, name: Literal["pg_dump", "pg_restore", "psql"]) -> PgTool:
        raise NotImplementedError


def take_backup(conninfo: str, names: Iterable[str] = ("users_auth", "settings")) -> Archive:
    """Back up the JSON components ``names`` of a database, in one REPEATABLE READ snapshot."""
    entries: list[ComponentEntry] = []
    members: dict[str, bytes] = {}
    with psycopg.connect(conninfo) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        version = schema_version(conn)
        for name in names:
            component = COMPONENTS[name]
            collector = _Collector(name, conn)
            facts = component.backup(collector)
            members.update(collector.members)
            entries.append(
                ComponentEntry(name, component.payload_version, tuple(collector.entries), facts)
            )
        conn.rollback()
    manifest = Manifest(
        created_at=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        library_version="0.0.0",
        server_version="10.10.0",
        schema_version=version,
        format="zip",
        components=tuple(entries),
    )
    return Archive(manifest, members)


class Context:
    """The PlanContext and RestoreContext of one component."""

    def __init__(
        self,
        archive: Archive,
        name: str,
        connection: psycopg.Connection[Any],
        conflict: Conflict,
        options: Mapping[str, Any],
        plan: ComponentPlan | None = None,
    ) -> None:
        self.manifest = archive.manifest
        self.entry = archive.manifest.component(name)
        self.connection = connection
        self.conflict: Conflict = conflict
        self.schema_version = schema_version(connection)
        self.options = options
        self.authenticity: Authenticity = "own"
        self.plan: ComponentPlan | None = plan
        self.cancel = CancelToken()
        self.events: list[tuple[str, int, int | None]] = []
        self._archive = archive

    def open_member(self, path: str) -> IO[bytes]:
        return io.BytesIO(self._archive.members[path])

    def tool(self, name: Literal["pg_dump", "pg_restore", "psql"]) -> PgTool | None:
        return None

    def tools(self, name: Literal["pg_dump", "pg_restore", "psql"]) -> Sequence[PgTool]:
        return ()

    @property
    def conninfo(self) -> str:
        raise NotImplementedError  # the JSON components work in the given connection

    def tool_env(self) -> tuple[str, dict[str, str]]:
        raise NotImplementedError

    def progress(
        self,
        phase: str,
        done: int,
        total: int | None = None,
        unit: Literal["bytes", "rows", "steps"] = "rows",
    ) -> None:
        self.events.append((phase, done, total))


@attrs.frozen
class Plan:
    """The plans of the components of one mode, as the planner merges them."""

    parts: Mapping[str, ComponentPlan] = attrs.field(hash=False)

    @property
    def counts(self) -> dict[str, RowCounts]:
        return {t: c for part in self.parts.values() for t, c in part.counts.items()}

    @property
    def renames(self) -> dict[str, Mapping[str, str]]:
        return {t: r for part in self.parts.values() for t, r in part.renames.items()}

    @property
    def blockers(self) -> list[str]:
        return [b.code for part in self.parts.values() for b in part.blockers]

    @property
    def warnings(self) -> list[str]:
        return [w.code for part in self.parts.values() for w in part.warnings]

    def issues(self) -> list[Any]:
        return [i for part in self.parts.values() for i in (*part.blockers, *part.warnings)]


def plan(
    conninfo: str,
    archive: Archive,
    mode: str,
    conflict: Conflict,
    options: Mapping[str, Any] | None = None,
) -> Plan:
    """Plan every component of ``mode`` on one connection, then roll back."""
    with psycopg.connect(conninfo) as conn:
        parts = {
            name: COMPONENTS[name].plan(Context(archive, name, conn, conflict, options or {}))
            for name in MODES[mode]
        }
        # The connection must still be usable: a plan never leaves it failed.
        conn.execute("SELECT 1")
        conn.rollback()
    return Plan(parts)


def restore(
    conninfo: str,
    archive: Archive,
    mode: str,
    conflict: Conflict,
    options: Mapping[str, Any] | None = None,
    *,
    planned: Plan | None = None,
    before_restore: Callable[[], None] | None = None,
) -> Plan:
    """Plan (unless ``planned``), refuse blockers, then restore in one committed transaction."""
    planned = planned or plan(conninfo, archive, mode, conflict, options)
    assert not planned.blockers, planned.issues()
    if before_restore is not None:
        before_restore()
    merged = ComponentPlan(counts=planned.counts, renames=planned.renames)
    with psycopg.connect(conninfo) as conn, conn.transaction():
        contexts = {
            name: Context(archive, name, conn, conflict, options or {}, merged)
            for name in MODES[mode]
        }
        # As the restore does: every component's input is checked before any lock.
        for name, context in contexts.items():
            component = COMPONENTS[name]
            if isinstance(component, InputChecker):
                component.check_input(context)
        for name, context in contexts.items():
            COMPONENTS[name].restore(context)
    return planned


# -- databases and their contents ------------------------------------------------

JSON_TABLES = ("users", "invite_codes", "api_tokens", "system_settings")


def fresh_database(conninfo: str, version: int, *, seeded: bool = False) -> str:
    """Migrate the empty database ``conninfo`` to ``version``, seeded like the fixtures if asked."""
    from odeion_archive._schema import migrate
    from odeion_archive.sample import SeedScale, seed

    with psycopg.connect(conninfo) as conn:
        migrate(conn, version)
        if seeded:
            with conn.transaction():
                seed(conn, SeedScale.tiny(), seed=0)
    return conninfo


def execute(conninfo: str, *statements: str | tuple[str, tuple[Any, ...]]) -> None:
    """Run statements in one committed transaction."""
    with psycopg.connect(conninfo) as conn, conn.transaction():
        for statement in statements:
            if isinstance(statement, tuple):
                conn.execute(statement[0].encode(), statement[1])
            else:
                conn.execute(statement.encode())


def query(conninfo: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The rows of one query."""
    with psycopg.connect(conninfo) as conn:
        return [tuple(row) for row in conn.execute(statement.encode(), params).fetchall()]


def json_tables(conninfo: str) -> dict[str, list[tuple[Any, ...]]]:
    """The JSON components' tables, API tokens by owner name (their ids are not carried)."""
    return {
        "users": query(conninfo, "SELECT * FROM users ORDER BY id"),
        "invite_codes": query(conninfo, "SELECT * FROM invite_codes ORDER BY code"),
        "api_tokens": query(
            conninfo,
            "SELECT u.username, t.name, t.token_hash, t.created_at, t.last_used_at "
            "FROM api_tokens t JOIN users u ON u.id = t.user_id ORDER BY 1, 2",
        ),
        "system_settings": query(conninfo, "SELECT * FROM system_settings ORDER BY key"),
    }
