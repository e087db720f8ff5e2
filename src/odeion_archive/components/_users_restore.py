"""Plan and restore of the ``users_auth`` component.

:func:`_load` loads the archive's rows into temporary tables and checks them in
full: exactly the rows the manifest declares (reading stops at the first line
beyond them), no blank lines, strict JSON, every field typed. Only then does
:func:`_decide` make every decision of a restore: it matches the rows against
the target database and records, per incoming row, what happens to it
(``insert``, ``rename``, ``overwrite``, ``skip``, ``skip_email``,
``skip_conflict``, ``skip_acting``) together with its final key and target id.
:func:`plan` runs both and rolls everything back; :func:`restore` runs them
again inside the restore's transaction (taking its table locks only after the
load), refuses to go on if the outcome differs from the plan, and applies the
decisions with a handful of set-based statements.

Every archive line is parsed strictly in Python (duplicate keys, NaN and deep
nesting refused, fields type-checked) and then handed to PostgreSQL unchanged
with ``COPY``: PostgreSQL parses it again as ``jsonb``, so JSON numbers inside
preferences keep their exact value. Python keeps no row, only the keys of rows
whose new name must be chosen (the rename strategy).
"""

from __future__ import annotations

from psycopg import sql
from psycopg.rows import tuple_row

from odeion_archive.components._jsonrestore import (
    check_input,
    decide_locked,
    expect_rows,
    plan_with,
)
from odeion_archive.components._jsonrows import Cursor, Progress, drop_temp, load_member
from odeion_archive.components._users_decide import (
    _acting_user_id,
    _decide_codes,
    _decide_tokens,
    _decide_users,
)
from odeion_archive.components._users_report import _outcome
from odeion_archive.components._users_tables import (
    _INVITES,
    _TEMP,
    _TOKENS,
    _USERS,
    INVITES_MEMBER,
    RENAME_KEYS,
    TABLES,
    TOKENS_MEMBER,
    USERS_MEMBER,
)
from odeion_archive.errors import RestoreFailedError
from odeion_archive.interfaces import ComponentPlan, PlanContext, RestoreContext

__all__ = ["check", "plan", "restore"]


def plan(context: PlanContext) -> ComponentPlan:
    """Predict what restoring users, invite codes and API tokens would do; change nothing."""
    return plan_with(context, _load, _decide)


def check(context: RestoreContext) -> None:
    """Load and check the three members before the restore takes any lock."""
    check_input(context, _load)


def restore(context: RestoreContext) -> ComponentPlan:
    """Decide and apply inside the caller's transaction (the caller commits).

    Returns what was done; if the host passed the plan it reviewed, refuses to
    do anything other than that plan.
    """
    decided = decide_locked(context, TABLES, _load, _decide, RENAME_KEYS, loaded="_oa_tokens_raw")
    with context.connection.cursor() as cur:
        _apply(cur, context.schema_version, decided)
        drop_temp(cur, *_TEMP)
    return decided


def _load(context: PlanContext, progress: Progress | None) -> None:
    """Load and validate the three members into ``_oa_*_raw`` temporary tables."""
    load_member(context, USERS_MEMBER, "_oa_users_raw", _USERS, progress, rows_of="users")
    load_member(
        context, INVITES_MEMBER, "_oa_codes_raw", _INVITES, progress, rows_of="invite_codes"
    )
    load_member(context, TOKENS_MEMBER, "_oa_tokens_raw", _TOKENS, progress, rows_of="api_tokens")


def _decide(context: PlanContext) -> ComponentPlan:
    """Make every decision of the restore on the loaded rows; temporary tables record them."""
    conflict = context.conflict
    with context.connection.cursor(row_factory=tuple_row) as cur:
        acting = _acting_user_id(cur, context)
        _decide_users(cur, conflict, acting)
        _decide_codes(cur, conflict, acting)
        _decide_tokens(cur)
        drop_temp(cur, "_oa_users_raw", "_oa_codes_raw", "_oa_tokens_raw")
        return _outcome(cur, context)


def _sequence(cur: Cursor, table: str) -> tuple[str, int, bool]:
    """The identity sequence of ``table``: its name, the value it hands out next, and
    whether this role may ``ALTER`` it (it owns it).

    A role without ``SELECT`` on the sequence (``USAGE`` is enough to restore) sees
    only ``pg_sequence_last_value``, which is ``NULL`` until the sequence is first
    used: then the next value is taken to be its start.
    """
    cur.execute(
        "SELECT c.oid::regclass::text, pg_has_role(c.relowner, 'USAGE'), "
        "has_sequence_privilege(c.oid, 'SELECT'), pg_sequence_last_value(c.oid), s.seqstart "
        "FROM pg_class c JOIN pg_sequence s ON s.seqrelid = c.oid "
        "WHERE c.oid = pg_get_serial_sequence(%s, 'id')::regclass",
        (table,),
    )
    row = cur.fetchone()
    if row is None:
        raise RestoreFailedError(f"the table {table} has no id sequence; is it Odeion's schema?")
    name, owned, readable, last, start = row
    if readable:
        cur.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(sql.SQL(name)))
        value, called = cur.fetchone() or (start, False)
        return str(name), int(value) + (1 if called else 0), bool(owned)
    return str(name), int(start) if last is None else int(last) + 1, bool(owned)


def _move_sequence(cur: Cursor, table: str) -> None:
    """Make the identity sequence of ``table`` hand out ids above every id in use.

    ``ALTER SEQUENCE ... RESTART`` is transactional: a restore that fails or is
    killed before its ``COMMIT`` leaves the sequence where it was. ``setval``
    (which is not) serves only a role that does not own the sequence.
    """
    name, upcoming, owned = _sequence(cur, table)
    cur.execute(sql.SQL("SELECT coalesce(max(id), 0) FROM {}").format(sql.Identifier(table)))
    top = int((cur.fetchone() or (0,))[0])
    if top < upcoming:
        return
    if owned:
        cur.execute(
            sql.SQL("ALTER SEQUENCE {} RESTART WITH {}").format(sql.SQL(name), sql.Literal(top + 1))
        )
    else:
        cur.execute("SELECT setval(%s::regclass, %s)", (name, top))


def _apply(cur: Cursor, schema_version: int, decided: ComponentPlan) -> None:
    users = decided.counts["users"]
    codes = decided.counts["invite_codes"]
    tokens = decided.counts["api_tokens"]
    columns = (
        "id, username, email, display_name, password_hash, role, disabled, preferences, "
        "created_at, last_login_at"
    )
    values = (
        "target_id, final_username, final_email, display_name, password_hash, role, "
        "disabled, preferences, created_at, last_login_at"
    )
    inserted = 0
    if schema_version >= 2:
        cur.execute(
            sql.SQL(
                "INSERT INTO users ({}, locale) SELECT {}, locale FROM _oa_users "
                "WHERE decision IN ('insert', 'rename') AND locale IS NOT NULL"
            ).format(sql.SQL(columns), sql.SQL(values))
        )
        inserted += cur.rowcount
    # Rows without a locale (archives of schema version 1) take the column's default.
    where = " AND locale IS NULL" if schema_version >= 2 else ""
    cur.execute(
        sql.SQL(
            "INSERT INTO users ({}) SELECT {} FROM _oa_users "
            "WHERE decision IN ('insert', 'rename'){}"
        ).format(sql.SQL(columns), sql.SQL(values), sql.SQL(where))
    )
    inserted += cur.rowcount
    if inserted != users.insert + users.rename:
        raise RestoreFailedError(
            f"restoring users added {inserted} rows instead of the "
            f"{users.insert + users.rename} planned; the restore was rolled back, plan it again"
        )
    # Updated in place: the id stays, so history, tokens and sessions stay attached.
    # Rows already equal to the archive's are left alone (no new row versions).
    names = [
        "username",
        "email",
        "display_name",
        "password_hash",
        "role",
        "disabled",
        "preferences",
        "created_at",
        "last_login_at",
    ]
    theirs: list[sql.Composable] = [sql.Identifier("t", name) for name in names]
    if schema_version >= 2:
        names.append("locale")
        theirs.append(sql.SQL("coalesce(t.locale, u.locale)"))
    new_values = sql.SQL(", ").join(theirs)
    cur.execute(
        sql.SQL(
            "UPDATE users u SET ({columns}) = ({new}) FROM _oa_users t "
            "WHERE t.decision = 'overwrite' AND u.id = t.target_id "
            "AND ({old}) IS DISTINCT FROM ({new})"
        ).format(
            columns=sql.SQL(", ").join(sql.Identifier(name) for name in names),
            old=sql.SQL(", ").join(sql.Identifier("u", name) for name in names),
            new=new_values,
        )
    )
    expect_rows(cur, "users", users.overwrite, at_most=True)
    _move_sequence(cur, "users")

    uses = sql.Identifier("uses" if schema_version >= 2 else "use_count")
    cur.execute(
        sql.SQL(
            "INSERT INTO invite_codes (code, created_by, role, max_uses, {}, expires_at, "
            "created_at) SELECT final_code, creator_id, role, max_uses, uses, expires_at, "
            "created_at FROM _oa_codes WHERE decision IN ('insert', 'rename')"
        ).format(uses)
    )
    expect_rows(cur, "invite codes", codes.insert + codes.rename)
    cur.execute(
        sql.SQL(
            "UPDATE invite_codes i SET created_by = t.creator_id, role = t.role, "
            "max_uses = t.max_uses, {uses} = t.uses, expires_at = t.expires_at, "
            "created_at = t.created_at FROM _oa_codes t "
            "WHERE t.decision = 'overwrite' AND i.code = t.code AND "
            "(i.created_by, i.role, i.max_uses, i.{uses}, i.expires_at, i.created_at) "
            "IS DISTINCT FROM (t.creator_id, t.role, t.max_uses, t.uses, t.expires_at, "
            "t.created_at)"
        ).format(uses=uses)
    )
    expect_rows(cur, "invite codes", codes.overwrite, at_most=True)

    # New tokens get ids past every id in use and every id the sequence handed out,
    # in archive order, without calling the sequence (nextval is never rolled back).
    _name, upcoming, _owned = _sequence(cur, "api_tokens")
    cur.execute(
        "INSERT INTO api_tokens (id, user_id, name, token_hash, created_at, last_used_at) "
        "SELECT b.base + row_number() OVER (ORDER BY t.ord), t.owner_id, t.name, "
        "t.token_hash, t.created_at, t.last_used_at FROM _oa_tokens t, "
        "(SELECT greatest((SELECT coalesce(max(id), 0) FROM api_tokens), %s) AS base) AS b "
        "WHERE t.decision = 'insert' ORDER BY t.ord",
        (upcoming - 1,),
    )
    expect_rows(cur, "API tokens", tokens.insert)
    cur.execute(
        "UPDATE api_tokens a SET token_hash = t.token_hash, created_at = t.created_at, "
        "last_used_at = t.last_used_at FROM _oa_tokens t "
        "WHERE t.decision = 'overwrite' AND a.id = t.match_id AND "
        "(a.token_hash, a.created_at, a.last_used_at) "
        "IS DISTINCT FROM (t.token_hash, t.created_at, t.last_used_at)"
    )
    expect_rows(cur, "API tokens", tokens.overwrite, at_most=True)
    _move_sequence(cur, "api_tokens")
