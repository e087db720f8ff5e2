"""The ``settings`` component: server-wide settings (``system_settings``).

Payload version 1, one JSON Lines member ``system_settings.jsonl`` with
``key``, ``value`` (any JSON) and ``updated_at`` per line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from psycopg import sql

from odeion_archive.components import _settings_restore
from odeion_archive.components._jsonl import export_lines
from odeion_archive.hookspecs import hookimpl
from odeion_archive.interfaces import (
    BackupContext,
    Component,
    ComponentPlan,
    PlanContext,
    RestoreContext,
)

__all__ = ["SettingsComponent", "odeion_archive_components"]

NAME = "settings"
SETTINGS = "system_settings.jsonl"

_QUERY = sql.SQL(
    "SELECT jsonb_build_object('key', s.key, 'value', s.value, "
    "'updated_at', s.updated_at)::text FROM system_settings s ORDER BY s.key"
)


class SettingsComponent:
    """Server-wide settings as versioned JSON."""

    name = NAME
    payload_version = 1
    restore_scope: Literal["transaction", "database"] = "transaction"
    #: Restored alone, or with the users in ``everything_json``.
    restore_modes = (NAME, "everything_json")
    in_default_backup = True

    def backup(self, context: BackupContext) -> Mapping[str, Any]:
        """Stream the settings into the archive."""
        rows = 0

        def count(n: int) -> None:
            nonlocal rows
            rows = n
            context.progress("export system_settings", n, unit="rows")

        context.add_member(SETTINGS, export_lines(context.connection, _QUERY, count))
        return {"rows": {"system_settings": rows}, "schema_version": context.schema_version}

    def plan(self, context: PlanContext) -> ComponentPlan:
        """Decide, per incoming setting, whether it is inserted, skipped or overwritten."""
        return _settings_restore.plan(context)

    def check_input(self, context: RestoreContext) -> None:
        """Load and check the members in the restore's transaction, before any lock."""
        _settings_restore.check(context)

    def restore(self, context: RestoreContext) -> ComponentPlan:
        """Carry out the plan inside the restore's transaction."""
        return _settings_restore.restore(context)


@hookimpl
def odeion_archive_components() -> list[Component]:
    """The settings component."""
    return [SettingsComponent()]
