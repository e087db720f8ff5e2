"""Plan and restore of the ``full_db`` component.

The plan reads the dump's header and table of contents from the first bytes of
the member (never the data), picks a local ``pg_restore`` that reads the dump's
archive version, and refuses a dump with entries that Odeion never uses. The
restore replaces the whole database inside one transaction of ``psql`` fed by
``pg_restore``; see :mod:`odeion_archive.components.full_db._pipeline`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import psycopg
from psycopg import sql

from odeion_archive import _converter
from odeion_archive._foreign import foreign_dump_issue
from odeion_archive._postgres import PgTool
from odeion_archive.components.full_db import _dumpfile, _pipeline, _roles, _tocreview
from odeion_archive.components.full_db._estimate import PHASES, RestoreEstimate
from odeion_archive.errors import RestoreFailedError
from odeion_archive.interfaces import ComponentPlan, DatabaseRestoreContext, Issue, PlanContext

__all__ = ["plan", "remap_statements", "restore"]

DUMP_MEMBER = "full_db/database.dump"


def _version_text(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


def _choose_pg_restore(
    tools: Sequence[PgTool], dump_version: tuple[int, int, int], target_major: int
) -> PgTool | None:
    """A pg_restore that reads the dump: the target's major if it can, else the newest."""
    able = [t for t in tools if _dumpfile.max_archive_version(t.major) >= dump_version]
    same = [t for t in able if t.major == target_major]
    if same:
        return same[0]
    return max(able, key=lambda t: t.major, default=None)


def _target_major(context: PlanContext) -> int:
    row = context.connection.execute("SELECT current_setting('server_version_num')::int").fetchone()
    assert row is not None
    return int(row[0]) // 10000


def _header(context: PlanContext) -> _dumpfile.DumpHeader:
    with context.open_member(DUMP_MEMBER) as stream:
        return _dumpfile.read_header(stream)


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
    blockers_, warnings_ = _unsafe_issues(
        header, allow=bool(context.options.get("allow_unsafe_dump"))
    )
    blockers += blockers_
    warnings += warnings_
    who = _roles.identity(context.connection)
    blockers += _identity_blockers(context, who)
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
        _identity_step(who),
    ]
    steps += [f"move media paths under {old!r} to {new!r}" for old, new in remap.items()]
    steps.append("commit everything in one transaction")
    if context.authenticity == "foreign":
        trusted = bool(context.options.get("trust_foreign_dump"))
        (warnings if trusted else blockers).append(foreign_dump_issue(trusted=trusted))
    return ComponentPlan(blockers=tuple(blockers), warnings=tuple(warnings), steps=tuple(steps))


def _unsafe_issues(header: _dumpfile.DumpHeader, *, allow: bool) -> tuple[list[Issue], list[Issue]]:
    """One ``dump_unsafe`` blocker (or, where allowed, warning) for the entries the guard refuses."""
    unsafe: dict[str, _tocreview.UnsafeEntry] = {}
    for entry in _tocreview.unsafe_entries(header):
        if entry.name not in unsafe or entry.always:
            unsafe[entry.name] = entry  # one reason an entry, the graver one
    never = [entry for entry in unsafe.values() if entry.always]
    allowable = [entry for entry in unsafe.values() if not entry.always]
    if never:
        also = (
            f"; it also holds entries Odeion never uses: {_listed(allowable)}" if allowable else ""
        )
        return [
            Issue(
                "dump_unsafe",
                f"the dump holds what odeion-archive never restores: {_listed(never)}{also}; "
                "the dump is damaged or hostile, use another archive",
            )
        ], []
    if allowable and allow:
        return [], [
            Issue(
                "dump_unsafe",
                f"restoring entries Odeion never uses, as allowed: {_listed(allowable)}",
            )
        ]
    if allowable:
        return [
            Issue(
                "dump_unsafe",
                f"the dump holds entries that Odeion's schema never uses: {_listed(allowable)}; "
                "restore it only if you trust its origin, by allowing unsafe dumps explicitly",
            )
        ], []
    return [], []


def _listed(entries: Sequence[_tocreview.UnsafeEntry]) -> str:
    more = f"; and {len(entries) - 5} more" if len(entries) > 5 else ""
    return "; ".join(str(entry) for entry in entries[:5]) + more


def _identity_blockers(context: PlanContext, who: _roles.RestoreIdentity) -> list[Issue]:
    """Whether the dump's SQL can run as the database's owner, and safely for this archive."""
    if who.via is None:
        return [
            Issue(
                "not_database_owner",
                f"the database URL connects as {who.session.name!r}, which is neither the owner "
                f"of the database ({who.owner.name!r}) nor a member of it, so it cannot replace "
                f"the database; connect as {who.owner.name!r} (or as a superuser) and plan again",
            )
        ]
    foreign = context.authenticity != "own"
    if foreign and who.powerful:
        return [
            Issue(
                "owner_too_powerful",
                "this archive was not made by this server, and its dump's SQL would run with "
                f"powers beyond the database: {who.powers_text()}; a foreign dump is only "
                "restored by a plain role that owns the database: make one own it (for example "
                f"CREATE ROLE odeion_owner LOGIN; ALTER DATABASE <name> OWNER TO odeion_owner), "
                "connect as it or as a superuser, and plan again",
            )
        ]
    return []


def _identity_step(who: _roles.RestoreIdentity) -> str:
    how = {
        "owner": "the role the database URL connects as",
        "login_role": "through a temporary login role that can act as nothing else",
        "set_role": "by SET ROLE from the role the database URL connects as",
        None: "",
    }[who.via]
    return f"run the dump's SQL as the database's owner {who.owner.describe()}, {how}"


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


def restore(context: DatabaseRestoreContext) -> ComponentPlan:
    """Replace the database with the dump; nothing changes unless all of it succeeds."""
    header = _header(context)
    target_major = _target_major(context)
    tool = _choose_pg_restore(context.tools("pg_restore"), header.archive_version, target_major)
    if tool is None:
        raise RestoreFailedError(
            "no pg_restore that reads this dump was found; plan the restore to see why"
        )
    who = _roles.identity(context.connection)
    refused = _identity_blockers(context, who)
    if refused:
        raise RestoreFailedError(f"{refused[0].message}; the database was not changed")
    _, env = context.tool_env()  # pg_restore reads the dump from stdin: no connection
    remap: Mapping[str, str] = context.options.get("remap_paths") or {}
    post_sql = remap_statements(remap, context.connection)
    member = context.entry.member(DUMP_MEMBER)
    phases = _Phases(context, header, member.size)
    with _checked_dump(context, member.size, phases) as stream:
        chunks = iter(lambda: stream.read(1024 * 1024), b"")
        _pipeline.replace_database(
            conninfo=context.conninfo,
            who=who,
            env=env,
            pg_restore=tool.path,
            dump=chunks,
            post_sql=post_sql,
            allow_unsafe=bool(context.options.get("allow_unsafe_dump")),
            cancel=context.cancel,
            on_bytes=phases.on_bytes,
            on_statement=phases.on_statement,
        )
    phases.done()
    return ComponentPlan(
        steps=(
            "replaced the whole database with the dump",
            f"ran the dump's SQL as the database's owner {who.owner.name}",
        )
    )


def _checked_dump(context: DatabaseRestoreContext, size: int, phases: _Phases) -> IO[bytes]:
    """The dump, checked whole against the manifest before any of its SQL runs.

    The members' digests are what the manifest (and this server's seal over
    it) vouch for; a dump whose bytes were replaced must be refused before
    pg_restore hands a single statement of it to the server, not at the end,
    and the dump streamed must be the one checked
    (:meth:`~odeion_archive.interfaces.DatabaseRestoreContext.open_checked`).
    Where this server's backup recorded the archive's bytes through the dump
    (facts ``dump_prefix``: tar.zst), one sha256 over those stored bytes is
    that check: they are the bytes this server wrote, and the reader makes the
    dump from them alone. Else the dump is read through against its sha256.
    """

    def checked(done: int, total: int) -> None:
        """Report ``done`` of ``total`` bytes checked, in bytes of the dump."""
        context.cancel.raise_if_cancelled()
        share = size * done // total if total else size
        context.progress("checking the dump", min(share, size), size, "bytes")
        phases.overall("checking the dump", min(share, size))

    prefix = None
    # Only this server's seal makes the recorded bytes worth checking instead of the dump.
    if context.authenticity == "own":
        facts = _converter.component_facts(context.entry)
        prefix = facts.dump_prefix if isinstance(facts, _converter.FullDbFacts) else None
    stream = context.open_checked(DUMP_MEMBER, checked, prefix=prefix)
    phases.overall("checking the dump", size, end=True)
    return stream


#: Statements of the post-data section: built after the data.
_POST_DATA_KINDS = frozenset(
    {"IndexStmt", "AlterTableStmt", "CreateTrigStmt", "RefreshMatViewStmt", "CreateStatsStmt"}
)


class _Phases:
    """Restore progress by phase: schema (counted), data (bytes), indexes and constraints.

    A phase's total is known from the dump's table of contents (entries of the
    pre- and post-data sections; the bytes of the dump for the data); a phase
    that ends is reported complete, at what it actually did. Each report is
    followed by one of phase ``"restore"``: the work done over all the phases,
    weighed by :class:`~._estimate.RestoreEstimate`, so that a time left holds
    through the index phase.
    """

    def __init__(
        self, context: DatabaseRestoreContext, header: _dumpfile.DumpHeader, size: int
    ) -> None:
        self._context = context
        self._totals = {
            "schema": sum(1 for e in header.entries if e.section == "PRE_DATA"),
            "data": size,
            "indexes and constraints": sum(1 for e in header.entries if e.section == "POST_DATA"),
        }
        self._phase = "schema"
        self._done = dict.fromkeys(self._totals, 0)
        self._estimate = RestoreEstimate(
            size, self._totals["schema"], self._totals["indexes and constraints"]
        )

    def overall(self, phase: str, done: int, *, end: bool = False) -> None:
        """Report the work done over all the phases, ``phase`` having done ``done``."""
        estimate = self._estimate
        estimate.advance(phase, done)
        if end:
            estimate.end(phase)
        self._context.progress("restore", estimate.done, estimate.total, "bytes")

    def _report(self, phase: str, *, final: bool = False) -> None:
        done = self._done[phase]
        total = done if final else max(self._totals[phase], done)
        self._context.progress(phase, done, total, "bytes" if phase == "data" else "steps")
        self.overall(phase, done, end=final)

    def _enter(self, phase: str) -> None:
        if phase != self._phase:
            if self._phase == "data":
                self._done["data"] = max(self._done["data"], self._totals["data"])
            self._report(self._phase, final=True)
            self._phase = phase

    def on_statement(self, statement: Any) -> None:
        kind = statement.kind
        if statement.copy_from_stdin:
            self._enter("data")
        elif self._phase == "data" and kind in _POST_DATA_KINDS:
            self._enter("indexes and constraints")
        if self._phase == "data" or kind in ("VariableSetStmt", "SelectStmt"):
            return
        self._done[self._phase] += 1
        self._report(self._phase)

    def on_bytes(self, count: int) -> None:
        self._done["data"] = min(self._done["data"] + count, self._totals["data"])
        if self._phase == "data":
            self._report("data")

    def done(self) -> None:
        self._report(self._phase, final=True)
        for phase in PHASES:
            self._estimate.end(phase)
        self.overall(self._phase, self._done[self._phase])
