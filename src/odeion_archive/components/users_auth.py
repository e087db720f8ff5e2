"""The ``users_auth`` component: accounts, password hashes, invite codes, API tokens.

Payload version 1, three JSON Lines members:

``users.jsonl``
    ``id``, ``username``, ``email``, ``display_name``, ``password_hash``, ``role``,
    ``disabled``, ``preferences``, ``created_at``, ``last_login_at`` and, from schema
    version 2 on, ``locale``.
``invite_codes.jsonl``
    ``code``, ``created_by`` (a username, or null), ``role``, ``max_uses``, ``uses``,
    ``expires_at``, ``created_at``.
``api_tokens.jsonl``
    ``username``, ``name``, ``token_hash``, ``created_at``, ``last_used_at``.

References between rows are carried by username, never by numeric id, since ids
differ between installs. Login sessions are never carried.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs
from psycopg import sql

from odeion_archive.components import _users_restore
from odeion_archive.components._jsonl import export_lines
from odeion_archive.hookspecs import hookimpl
from odeion_archive.interfaces import (
    BackupContext,
    Component,
    ComponentPlan,
    PlanContext,
    RestoreContext,
)

__all__ = ["UsersAuthComponent", "UsersAuthOptions", "odeion_archive_components"]

NAME = "users_auth"
USERS = "users.jsonl"
INVITES = "invite_codes.jsonl"
TOKENS = "api_tokens.jsonl"


def _users_query(schema_version: int) -> sql.Composable:
    locale = sql.SQL(", 'locale', u.locale") if schema_version >= 2 else sql.SQL("")
    return sql.SQL(
        "SELECT jsonb_build_object("
        "'id', u.id, 'username', u.username, 'email', u.email, "
        "'display_name', u.display_name, 'password_hash', u.password_hash, "
        "'role', u.role, 'disabled', u.disabled, 'preferences', u.preferences, "
        "'created_at', u.created_at, 'last_login_at', u.last_login_at{})::text "
        "FROM users u ORDER BY u.id"
    ).format(locale)


def _invites_query(schema_version: int) -> sql.Composable:
    uses = sql.Identifier("uses" if schema_version >= 2 else "use_count")
    return sql.SQL(
        "SELECT jsonb_build_object("
        "'code', i.code, 'created_by', u.username, 'role', i.role, "
        "'max_uses', i.max_uses, 'uses', i.{}, 'expires_at', i.expires_at, "
        "'created_at', i.created_at)::text "
        "FROM invite_codes i LEFT JOIN users u ON u.id = i.created_by ORDER BY i.code"
    ).format(uses)


_TOKENS_QUERY = sql.SQL(
    "SELECT jsonb_build_object("
    "'username', u.username, 'name', t.name, 'token_hash', t.token_hash, "
    "'created_at', t.created_at, 'last_used_at', t.last_used_at)::text "
    "FROM api_tokens t JOIN users u ON u.id = t.user_id ORDER BY t.id"
)


@attrs.frozen
class UsersAuthOptions:
    """The restore options of users_auth."""

    #: Username of the account performing the restore: never overwritten or renamed.
    acting_user: str | None = attrs.field(
        default=None,
        metadata={"metavar": "NAME", "help": "the account performing the restore (kept as it is)"},
    )


class UsersAuthComponent:
    """Accounts and credentials as versioned JSON."""

    name = NAME
    payload_version = 1
    restore_scope: Literal["transaction", "database"] = "transaction"
    #: Restored alone, or with the settings in ``everything_json``.
    restore_modes = (NAME, "everything_json")
    in_default_backup = True
    options_type = UsersAuthOptions

    def backup(self, context: BackupContext) -> Mapping[str, Any]:
        """Stream users, invite codes and API tokens into the archive."""
        rows: dict[str, int] = {}
        members = (
            ("users", USERS, _users_query(context.schema_version)),
            ("invite_codes", INVITES, _invites_query(context.schema_version)),
            ("api_tokens", TOKENS, _TOKENS_QUERY),
        )
        for table, member, query in members:

            def count(n: int, table: str = table) -> None:
                rows[table] = n
                context.progress(f"export {table}", n, unit="rows")

            context.add_member(member, export_lines(context.connection, query, count))
        return {"rows": rows, "schema_version": context.schema_version}

    def plan(self, context: PlanContext) -> ComponentPlan:
        """Decide, per incoming row, whether it is inserted, skipped, overwritten or renamed."""
        return _users_restore.plan(context)

    def check_input(self, context: RestoreContext) -> None:
        """Load and check the members in the restore's transaction, before any lock."""
        _users_restore.check(context)

    def restore(self, context: RestoreContext) -> ComponentPlan:
        """Carry out the plan inside the restore's transaction."""
        return _users_restore.restore(context)


@hookimpl
def odeion_archive_components() -> list[Component]:
    """The users_auth component."""
    return [UsersAuthComponent()]
