"""The JSON-restore engine that both JSON components (users_auth, settings) share.

:func:`plan_with` loads a component's rows and decides, then rolls back;
:func:`check_input` and :func:`decide_locked` do the same inside the restore's
transaction (the table locks taken only after the load), and
:func:`check_against_plan` refuses an outcome that differs from the reviewed plan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from odeion_archive.components._jsonrows import Cursor, Progress
from odeion_archive.errors import (
    ArchiveInvalidError,
    CorruptArchiveError,
    DatabaseError,
    RestoreBlockedError,
    RestoreFailedError,
)
from odeion_archive.interfaces import ComponentPlan, Issue, PlanContext, RestoreContext, RowCounts

__all__ = [
    "Decide",
    "Load",
    "archive_schema",
    "check_against_plan",
    "check_input",
    "counts_of",
    "decide_locked",
    "expect_rows",
    "listing",
    "plan_with",
    "schema_blockers",
]


#: How many names a warning lists before it says "and N more".
_LISTED = 10


#: The memory each sort or hash of the decisions may use. PostgreSQL's default
#: (4 MB) sends the sorts and hashes over 100,000 rows to disk; raised for the
#: restore's own statements only, never lowered.
WORK_MEM = "64MB"


@contextmanager
def working_memory(connection: psycopg.Connection[Any]) -> Iterator[None]:
    """Give the statements inside at least :data:`WORK_MEM` of ``work_mem``.

    The previous value comes back when the block ends normally; after an error
    the caller's transaction (or savepoint) is rolled back, and the setting with it.
    """
    row = connection.execute(
        "SELECT current_setting('work_mem'), set_config('work_mem', "
        "greatest(pg_size_bytes(current_setting('work_mem')), pg_size_bytes(%s)) / 1024 "
        "|| 'kB', true)",
        (WORK_MEM,),
    ).fetchone()
    assert row is not None
    yield
    connection.execute("SELECT set_config('work_mem', %s, true)", (row[0],))


def archive_schema(context: PlanContext) -> int:
    """The schema version the component's rows were exported at."""
    version = context.entry.facts.get("schema_version", context.manifest.schema_version)
    if type(version) is not int or version < 1:
        raise CorruptArchiveError(
            f"the manifest records the schema version {version!r:.40} for the component "
            f"{context.entry.name!r}, which is not a version; use another archive"
        )
    return version


def schema_blockers(context: PlanContext) -> tuple[Issue, ...]:
    """Blockers that come from the schema versions of the archive and the database."""
    if context.schema_version < 1:
        return (
            Issue(
                "schema_missing",
                "this database has no Odeion schema yet; start the Odeion server once so it "
                "creates its tables, then restore again",
            ),
        )
    version = archive_schema(context)
    if version > context.schema_version:
        return (
            Issue(
                "schema_too_new",
                f"the {context.entry.name} rows were taken at schema version {version}, but "
                f"this database is at version {context.schema_version}; upgrade the Odeion "
                "server (which migrates its database) before restoring",
            ),
        )
    return ()


def listing(names: Sequence[str], total: int | None = None) -> str:
    """``a, b, c and 7 more``: a short list of names for a message."""
    total = len(names) if total is None else total
    shown = ", ".join(repr(name) for name in names[:_LISTED])
    rest = total - min(len(names), _LISTED)
    return f"{shown} and {rest} more" if rest > 0 else shown


def counts_of(cur: Cursor, table: str) -> RowCounts:
    """The decisions recorded in a temporary table, as row counts."""
    cur.execute(
        sql.SQL("SELECT decision, count(*) FROM {} GROUP BY decision").format(sql.Identifier(table))
    )
    found = {str(decision): int(n) for decision, n in cur.fetchall()}
    return RowCounts(
        insert=found.pop("insert", 0),
        overwrite=found.pop("overwrite", 0),
        rename=found.pop("rename", 0),
        skip=sum(found.values()),
    )


#: Loads (parses and checks) a component's members into temporary tables.
Load = Callable[[PlanContext, Progress | None], None]


#: Makes a component's decisions on the loaded rows.
Decide = Callable[[PlanContext], ComponentPlan]


def plan_with(context: PlanContext, load: Load, decide: Decide) -> ComponentPlan:
    """Run ``load`` then ``decide`` in a transaction (or savepoint) that is always rolled back.

    The archive's rows are checked in full before any query reads the target's tables.
    """
    blockers = schema_blockers(context)
    if blockers:
        return ComponentPlan(blockers=blockers)
    try:
        with (
            context.connection.transaction(force_rollback=True),
            working_memory(context.connection),
        ):
            load(context, None)
            return decide(context)
    except ArchiveInvalidError as exc:
        return ComponentPlan(blockers=(Issue("archive_invalid", str(exc)),))
    except psycopg.Error as exc:
        raise DatabaseError(
            f"planning the restore of {context.entry.name} failed: {exc}; check that the "
            "database is reachable and that its schema is the Odeion schema"
        ) from exc


def check_against_plan(
    context: RestoreContext,
    decided: ComponentPlan,
    tables: Sequence[str],
    rename_keys: Sequence[str],
) -> None:
    """Refuse to go on unless the decisions made now are the ones the plan announced."""
    if decided.blockers:
        raise RestoreBlockedError(
            f"the restore of {context.entry.name} is blocked: "
            + "; ".join(f"[{b.code}] {b.message}" for b in decided.blockers),
            decided,
        )
    planned = context.plan
    if planned is None:
        return
    differences = [
        f"{table}: planned {planned.counts.get(table)}, now {decided.counts.get(table)}"
        for table in tables
        if planned.counts.get(table) != decided.counts.get(table)
    ]
    differences += [
        f"new names of {key}"
        for key in rename_keys
        if dict(planned.renames.get(key, {})) != dict(decided.renames.get(key, {}))
    ]
    # A warning the reviewed plan did not show (an invite code that became an admin
    # code in between, an account that became an administrator) is a difference too.
    differences += [
        f"a new warning [{w.code}] {w.message}"
        for w in decided.warnings
        if w not in planned.warnings
    ]
    if differences:
        raise RestoreFailedError(
            f"the database changed since the restore of {context.entry.name} was planned "
            f"({'; '.join(differences)}); nothing was changed, plan the restore again and "
            "review the new plan"
        )


def check_input(context: RestoreContext, load: Load) -> None:
    """Load and check a component's members in the restore's transaction, taking no lock.

    The temporary tables filled here serve :func:`decide_locked` later in the
    same transaction.
    """
    blockers = schema_blockers(context)
    if blockers:
        raise RestoreBlockedError(
            "; ".join(f"[{b.code}] {b.message}" for b in blockers), ComponentPlan(blockers=blockers)
        )

    def report(phase: str, done: int, total: int | None) -> None:
        context.progress(phase, done, total, "rows")

    with working_memory(context.connection):
        load(context, report)


def _is_loaded(context: PlanContext, table: str) -> bool:
    row = context.connection.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (f"pg_temp.{table}",)
    ).fetchone()
    return row is not None and bool(row[0])


def decide_locked(
    context: RestoreContext,
    tables: Sequence[str],
    load: Load,
    decide: Decide,
    rename_keys: Sequence[str],
    *,
    loaded: str,
) -> ComponentPlan:
    """Check the archive's rows, lock ``tables``, decide and hold it to the reviewed plan.

    The members are loaded and checked in full (bounded by the rows the manifest
    declares) before the lock, here unless :func:`check_input` did it already
    (the temporary table ``loaded`` then exists): a damaged or hostile member
    never holds a lock.
    """
    if not _is_loaded(context, loaded):
        check_input(context, load)
    with context.connection.cursor() as cur:
        # Nothing else may write these tables between the decisions and their application.
        cur.execute(
            sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(
                sql.SQL(", ").join(sql.Identifier(table) for table in tables)
            )
        )

    with working_memory(context.connection):
        decided = decide(context)
    check_against_plan(context, decided, tables, rename_keys)
    context.cancel.raise_if_cancelled()
    return decided


def expect_rows(cur: Cursor, what: str, expected: int, *, at_most: bool = False) -> None:
    """Make sure the last statement changed the rows the decisions predicted.

    ``at_most``: for updates that leave rows alone which already hold the new values.
    """
    if cur.rowcount > expected or (cur.rowcount < expected and not at_most):
        raise RestoreFailedError(
            f"restoring {what} changed {cur.rowcount} rows instead of the {expected} planned; "
            "the restore was rolled back, plan it again"
        )
