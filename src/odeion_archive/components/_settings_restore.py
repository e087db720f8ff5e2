"""Plan and restore of the ``settings`` component (``system_settings``).

Settings are matched by ``key``. ``skip`` keeps existing keys as they are,
``overwrite`` replaces their value and ``updated_at``; ``rename`` cannot apply
to a setting (the server looks settings up by key), so it keeps existing keys
like ``skip`` and says so in a warning. New keys are inserted in every case.
The rows are loaded and checked by :func:`_load` and the decisions made by
:func:`_decide`, both shared by :func:`plan` and :func:`restore`, with the
helpers the users_auth restore uses.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from odeion_archive.components._jsonrestore import (
    check_input,
    counts_of,
    decide_locked,
    expect_rows,
    listing,
    plan_with,
)
from odeion_archive.components._jsonrows import (
    ANY,
    TEXT,
    Progress,
    RowSpec,
    archive_data,
    create_temp,
    drop_temp,
    load_member,
    require_unique,
)
from odeion_archive.interfaces import ComponentPlan, Issue, PlanContext, RestoreContext

__all__ = ["check", "plan", "restore"]

SETTINGS_MEMBER = "settings/system_settings.jsonl"
TABLES = ("system_settings",)

_SETTINGS = RowSpec(required={"key": TEXT, "value": ANY, "updated_at": TEXT})
_TEMP = ("_oa_settings_raw", "_oa_settings")

Cursor = psycopg.Cursor[tuple[Any, ...]]


def plan(context: PlanContext) -> ComponentPlan:
    """Predict what restoring the settings would do; change nothing."""
    return plan_with(context, _load, _decide)


def check(context: RestoreContext) -> None:
    """Load and check the settings before the restore takes any lock."""
    check_input(context, _load)


def restore(context: RestoreContext) -> ComponentPlan:
    """Decide and apply inside the caller's transaction (the caller commits); return it."""
    decided = decide_locked(context, TABLES, _load, _decide, (), loaded="_oa_settings_raw")
    conn = context.connection
    counts = decided.counts["system_settings"]
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO system_settings (key, value, updated_at) "
            "SELECT key, value, updated_at FROM _oa_settings WHERE decision = 'insert' "
            "ORDER BY ord"
        )
        expect_rows(cur, "settings", counts.insert)
        cur.execute(
            "UPDATE system_settings s SET value = t.value, updated_at = t.updated_at "
            "FROM _oa_settings t WHERE t.decision = 'overwrite' AND s.key = t.key"
        )
        expect_rows(cur, "settings", counts.overwrite)
        drop_temp(cur, *_TEMP)
    return decided


def _load(context: PlanContext, progress: Progress | None) -> None:
    """Load and check the settings into ``_oa_settings_raw``."""
    load_member(
        context,
        SETTINGS_MEMBER,
        "_oa_settings_raw",
        _SETTINGS,
        progress,
        rows_of="system_settings",
    )


def _decide(context: PlanContext) -> ComponentPlan:
    """Record per loaded setting what happens to it."""
    with context.connection.cursor(row_factory=tuple_row) as cur:
        with archive_data(SETTINGS_MEMBER):
            create_temp(
                cur,
                "_oa_settings",
                query=sql.SQL(
                    "SELECT ord, doc->>'key' AS key, doc->'value' AS value, "
                    "(doc->>'updated_at')::timestamptz AS updated_at, false AS matched, "
                    "false AS same, "
                    "NULL::text AS decision FROM _oa_settings_raw"
                ),
            )
        drop_temp(cur, "_oa_settings_raw")
        cur.execute("ANALYZE _oa_settings")
        require_unique(cur, "_oa_settings", "key", "key", "a setting key")
        cur.execute(
            "UPDATE _oa_settings t SET matched = true, same = (s.value = t.value) "
            "FROM system_settings s WHERE s.key = t.key"
        )
        existing = "'overwrite'" if context.conflict == "overwrite" else "'skip'"
        cur.execute(
            sql.SQL(
                "UPDATE _oa_settings SET decision = CASE WHEN matched THEN {} ELSE 'insert' END"
            ).format(sql.SQL(existing))
        )
        counts = counts_of(cur, "_oa_settings")
        warnings: list[Issue] = []
        if context.conflict == "rename":
            # Keys whose value equals the archive's lose nothing and need no word.
            cur.execute("SELECT key FROM _oa_settings WHERE matched AND NOT same ORDER BY ord")
            kept = [str(row[0]) for row in cur.fetchall()]
            if kept:
                warnings.append(
                    Issue(
                        "rename_not_applicable",
                        f"the rename strategy does not apply to settings: {len(kept)} "
                        "setting(s) that already exist with another value keep their "
                        f"current value ({listing(kept)}); choose overwrite to replace them",
                    )
                )
        how = {
            "skip": "existing keys are kept",
            "overwrite": "existing keys get the archive's value",
            "rename": "existing keys are kept",
        }[context.conflict]
        step = (
            f"Restore settings ({how}): {counts.insert} added, {counts.overwrite} updated, "
            f"{counts.skip} skipped."
        )
    return ComponentPlan(
        warnings=tuple(warnings),
        steps=(step,),
        counts={"system_settings": counts},
    )
