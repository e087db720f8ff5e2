"""Plan and restore of the ``full_db`` component.

The plan reads the dump's header and table of contents from the first bytes of
the member (never the data), picks a local ``pg_restore`` that reads the dump's
archive version, and refuses a dump with entries that Odeion never uses. The
restore replaces the whole database inside one transaction of ``psql`` fed by
``pg_restore``; see :mod:`odeion_archive._pgrestore`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from odeion_archive import _pgdump, _pgrestore
from odeion_archive.errors import RestoreFailedError
from odeion_archive.interfaces import ComponentPlan, Issue, PlanContext, RestoreContext
from odeion_archive.postgres import PgTool

__all__ = ["plan", "remap_statements", "restore"]

DUMP_MEMBER = "full_db/database.dump"


def _version_text(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


def _choose_pg_restore(
    tools: Sequence[PgTool], dump_version: tuple[int, int, int], target_major: int
) -> PgTool | None:
    """A pg_restore that reads the dump: the target's major if it can, else the newest."""
    able = [t for t in tools if _pgdump.max_archive_version(t.major) >= dump_version]
    same = [t for t in able if t.major == target_major]
    if same:
        return same[0]
    return max(able, key=lambda t: t.major, default=None)


def _target_major(context: PlanContext) -> int:
    row = context.connection.execute("SELECT current_setting('server_version_num')::int").fetchone()
    assert row is not None
    return int(row[0]) // 10000


def _header(context: PlanContext) -> _pgdump.DumpHeader:
    with context.open_member(DUMP_MEMBER) as stream:
        return _pgdump.read_header(stream)


def plan(context: PlanContext) -> ComponentPlan:
    """Whether this server can restore the dump, and what the restore will do."""
    facts = context.entry.facts
    blockers: list[Issue] = []
    warnings: list[Issue] = []
    header = _header(context)
    target_major = _target_major(context)
    tools = context.tools("pg_restore")
    if not tools:
        blockers.append(
            Issue(
                "pg_restore_missing",
                "no pg_restore was found (looked in the embedded PostgreSQL, the configured "
                "directory, PATH and /usr/lib/postgresql/*/bin); install the PostgreSQL "
                "client tools or point --pg-bin at them",
            )
        )
    elif _choose_pg_restore(tools, header.archive_version, target_major) is None:
        found = ", ".join(f"{t.path} ({t.version})" for t in tools)
        blockers.append(
            Issue(
                "pg_restore_too_old",
                f"the dump has archive version {_version_text(header.archive_version)} "
                f"(written by pg_dump {header.pg_dump_version}), which none of the pg_restore "
                f"found can read ({found}); install PostgreSQL client tools of version "
                f"{header.pg_dump_version.split('.')[0]} or newer",
            )
        )
    unsafe = _pgdump.unsafe_entries(header)
    if unsafe:
        listed = "; ".join(unsafe[:5]) + (
            f"; and {len(unsafe) - 5} more" if len(unsafe) > 5 else ""
        )
        if context.options.get("allow_unsafe_dump"):
            warnings.append(
                Issue("dump_unsafe", f"restoring entries Odeion never uses, as allowed: {listed}")
            )
        else:
            blockers.append(
                Issue(
                    "dump_unsafe",
                    f"the dump holds entries that Odeion's schema never uses: {listed}; restore "
                    "it only if you trust its origin, by allowing unsafe dumps explicitly",
                )
            )
    source_num = int(facts.get("server_version_num") or 0)
    if source_num and target_major < source_num // 10000:
        warnings.append(
            Issue(
                "target_server_older",
                f"this PostgreSQL ({target_major}) is older than the one the dump was taken from "
                f"({facts.get('server_version')}); the restore may fail on features the older "
                "server lacks, upgrade PostgreSQL if it does",
            )
        )
    remap: Mapping[str, str] = context.options.get("remap_paths") or {}
    for root in facts.get("library_roots") or ():
        mapped = _remap(str(root), remap)
        if not Path(mapped).exists():
            warnings.append(
                Issue(
                    "library_root_missing",
                    f"the library root {mapped!r} does not exist on this host; its media will "
                    "be missing after the rescan unless you mount it there or remap it "
                    "(--remap-path OLD=NEW)",
                )
            )
    steps = [
        (
            f"replace the whole database with the dump taken from PostgreSQL "
            f"{facts.get('server_version', '?')} (every table, tables added since are dropped)"
        ),
    ]
    steps += [f"move media paths under {old!r} to {new!r}" for old, new in remap.items()]
    steps.append("commit everything in one transaction")
    return ComponentPlan(blockers=tuple(blockers), warnings=tuple(warnings), steps=tuple(steps))


def _remap(path: str, remap: Mapping[str, str]) -> str:
    for old, new in remap.items():
        if path == old or path.startswith(old.rstrip("/") + "/"):
            return new.rstrip("/") + path[len(old.rstrip("/")) :]
    return path


def remap_statements(remap: Mapping[str, str], connection: psycopg.Connection[Any]) -> list[str]:
    """SQL that moves media roots and item paths from old prefixes to new ones."""
    statements = []
    for old, new in remap.items():
        old_root, new_root = old.rstrip("/"), new.rstrip("/")
        params = {"old": sql.Literal(old_root), "new": sql.Literal(new_root)}
        statements.append(
            sql.SQL(
                "UPDATE public.libraries SET root_paths = ARRAY(SELECT CASE "
                "WHEN p = {old} OR left(p, length({old}) + 1) = {old} || '/' "
                "THEN {new} || substr(p, length({old}) + 1) ELSE p END "
                "FROM unnest(root_paths) WITH ORDINALITY AS r(p, n) ORDER BY n) "
                "WHERE EXISTS (SELECT FROM unnest(root_paths) p "
                "WHERE p = {old} OR left(p, length({old}) + 1) = {old} || '/');"
            )
            .format(**params)
            .as_string(connection)
        )
        statements.append(
            sql.SQL(
                "UPDATE public.media_items SET path = {new} || substr(path, length({old}) + 1) "
                "WHERE path = {old} OR left(path, length({old}) + 1) = {old} || '/';"
            )
            .format(**params)
            .as_string(connection)
        )
    return statements


def restore(context: RestoreContext) -> ComponentPlan:
    """Replace the database with the dump; nothing changes unless all of it succeeds."""
    header = _header(context)
    target_major = _target_major(context)
    tool = _choose_pg_restore(context.tools("pg_restore"), header.archive_version, target_major)
    if tool is None:
        raise RestoreFailedError(
            "no pg_restore that reads this dump was found; plan the restore to see why"
        )
    psql = tool.path.with_name("psql")
    if not psql.exists():
        fallback = context.tool("psql")
        if fallback is None:
            raise RestoreFailedError(
                f"no psql next to {tool.path} nor elsewhere; install the PostgreSQL client tools"
            )
        psql = fallback.path
    conninfo, env = context.tool_env()
    remap: Mapping[str, str] = context.options.get("remap_paths") or {}
    post_sql = remap_statements(remap, context.connection)
    member = context.entry.member(DUMP_MEMBER)
    done = 0

    def on_bytes(count: int) -> None:
        nonlocal done
        done += count
        context.progress("restore", done, member.size, "bytes")

    with context.open_member(DUMP_MEMBER) as stream:
        chunks = iter(lambda: stream.read(1024 * 1024), b"")
        _pgrestore.replace_database(
            conninfo=conninfo,
            env=env,
            pg_restore=tool.path,
            psql=psql,
            dump=chunks,
            post_sql=post_sql,
            allow_unsafe=bool(context.options.get("allow_unsafe_dump")),
            cancel=context.cancel,
            on_bytes=on_bytes,
        )
    return ComponentPlan(steps=("replaced the whole database with the dump",))
