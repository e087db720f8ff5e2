"""What happens to each incoming user, invite code and token: insert, rename, overwrite or skip."""

from __future__ import annotations

from psycopg import sql

from odeion_archive.components._jsonrestore import listing
from odeion_archive.components._jsonrows import (
    MAX_RESTORED_ID,
    Cursor,
    analyze,
    archive_data,
    create_temp,
    drop_temp,
    require_unique,
)
from odeion_archive.components._users_names import Probe, _rename_users, resolve_names, suffixed
from odeion_archive.components._users_tables import INVITES_MEMBER, TOKENS_MEMBER, USERS_MEMBER
from odeion_archive.errors import CorruptArchiveError
from odeion_archive.interfaces import PlanContext


def _acting_user_id(cur: Cursor, context: PlanContext) -> int | None:
    """The id of the account performing the restore (matched ignoring case), if it exists."""
    acting = context.options.get("acting_user")
    if not isinstance(acting, str) or not acting:
        return None
    cur.execute("SELECT id FROM users WHERE lower(username) = lower(%s)", (acting,))
    row = cur.fetchone()
    return None if row is None else int(row[0])


_USER_DECISIONS = {
    "skip": (
        "CASE WHEN match_id IS NOT NULL THEN 'skip' "
        "WHEN email_holder IS NOT NULL THEN 'skip_email' ELSE 'insert' END"
    ),
    "overwrite": (
        "CASE WHEN match_id IS NOT NULL AND email_holder IS NOT NULL "
        "AND email_holder <> match_id THEN 'skip_email' "
        "WHEN match_id IS NOT NULL THEN 'overwrite' "
        "WHEN email_holder IS NOT NULL THEN 'skip_email' ELSE 'insert' END"
    ),
    # Rows left NULL need new names, chosen in Python.
    "rename": (
        "CASE WHEN match_id IS NULL AND email_holder IS NULL THEN 'insert' "
        "WHEN match_id IS NOT NULL AND match_same THEN 'skip' END"
    ),
}


#: The incoming users' fields, each read out of its jsonb once. ``OFFSET 0`` keeps
#: PostgreSQL from pulling the subquery up into the joins above it, which would
#: extract (and cast) a field again at every place that uses it.
_TYPED_USERS = (
    "SELECT r.ord, (r.doc->>'id')::bigint AS id, r.doc->>'username' AS username, "
    "lower(r.doc->>'username') AS lname, r.doc->>'email' AS email, "
    "lower(r.doc->>'email') AS lemail, r.doc->>'display_name' AS display_name, "
    "r.doc->>'password_hash' AS password_hash, r.doc->>'role' AS role, "
    "(r.doc->'disabled')::boolean AS disabled, r.doc->'preferences' AS preferences, "
    "(r.doc->>'created_at')::timestamptz AS created_at, "
    "(r.doc->>'last_login_at')::timestamptz AS last_login_at, r.doc->>'locale' AS locale "
    "FROM _oa_users_raw r OFFSET 0"
)


def _decide_users(cur: Cursor, conflict: str, acting: int | None) -> None:
    """``_oa_users``: typed incoming users, what they match and what happens to them.

    The account performing the restore (``acting``) is never overwritten: its
    row is kept as it is (``skip_acting``), and so are its API tokens, which
    follow their owner. An archive id above :data:`MAX_RESTORED_ID` is never
    given to a new row: it gets a new id like one whose id is taken.
    """
    with archive_data(USERS_MEMBER):
        create_temp(
            cur,
            "_oa_users",
            query=sql.SQL(
                "SELECT d.*, CASE WHEN d.decision IN ('skip', 'overwrite', 'skip_email') "
                " THEN d.match_id WHEN d.decision = 'insert' AND d.id_free THEN d.id END AS target_id "
                "FROM (SELECT m.*, {decision} AS decision, m.username AS final_username, "
                " m.email AS final_email FROM ("
                "  SELECT r.*, u.id AS match_id, "
                "  coalesce(u.password_hash = r.password_hash "
                "   AND u.created_at = r.created_at, false) AS match_same, "
                "  e.id AS email_holder, k.id IS NULL AND r.id <= {max_id} AS id_free "
                "  FROM ({typed}) AS r "
                "  LEFT JOIN users u ON lower(u.username) = r.lname "
                "  LEFT JOIN users e ON e.email IS NOT NULL AND lower(e.email) = r.lemail "
                "  LEFT JOIN users k ON k.id = r.id"
                " ) AS m) AS d"
            ).format(
                typed=sql.SQL(_TYPED_USERS),
                decision=sql.SQL(_USER_DECISIONS[conflict]),
                max_id=sql.Literal(MAX_RESTORED_ID),
            ),
        )
    if acting is not None:
        cur.execute(
            "UPDATE _oa_users SET decision = 'skip_acting' "
            "WHERE decision = 'overwrite' AND match_id = %s",
            (acting,),
        )
    require_unique(cur, "_oa_users", "lname", "username", "a username (ignoring case)")
    require_unique(cur, "_oa_users", "id", "id::text", "a user id")
    require_unique(
        cur,
        "_oa_users",
        "lemail",
        "email",
        "an e-mail address (ignoring case)",
        "lemail IS NOT NULL",
    )
    # The name probes, invite codes and tokens join on these keys: give the
    # planner their statistics (hash joins on unique keys, not sorts).
    analyze(cur, "_oa_users", "ord", "lname", "lemail", target=10)
    if conflict == "rename":
        _rename_users(cur)
    # New rows keep their archive id where it is free, else get one past every id in use.
    cur.execute(
        "UPDATE _oa_users SET target_id = id "
        "WHERE decision = 'rename' AND target_id IS NULL AND id_free"
    )
    cur.execute(
        "UPDATE _oa_users t SET target_id = n.new_id FROM ("
        " SELECT ord, b.base + row_number() OVER (ORDER BY ord) AS new_id"
        " FROM _oa_users, (SELECT greatest((SELECT coalesce(max(id), 0) FROM users),"
        "  (SELECT coalesce(max(target_id), 0) FROM _oa_users)) AS base) AS b"
        " WHERE decision IN ('insert', 'rename') AND target_id IS NULL) AS n "
        "WHERE t.ord = n.ord"
    )


def _decide_codes(cur: Cursor, conflict: str, acting: int | None) -> None:
    """``_oa_codes``: typed incoming invite codes, their creator as restored, their fate.

    Invite codes that the account performing the restore created are kept as
    they are (``skip_acting``).
    """
    decision = {
        "skip": "CASE WHEN matched THEN 'skip' ELSE 'insert' END",
        "overwrite": "CASE WHEN matched THEN 'overwrite' ELSE 'insert' END",
        "rename": "CASE WHEN NOT matched THEN 'insert' WHEN match_same THEN 'skip' END",
    }[conflict]
    # The creator is the incoming user's row as restored, else a namesake in the target.
    with archive_data(INVITES_MEMBER):
        create_temp(
            cur,
            "_oa_codes",
            query=sql.SQL(
                "SELECT c.*, {decision} AS decision, c.code AS final_code FROM ("
                " SELECT r.ord, r.doc->>'code' AS code, r.doc->>'created_by' AS created_by, "
                " r.doc->>'role' AS role, (r.doc->>'max_uses')::integer AS max_uses, "
                " (r.doc->>'uses')::integer AS uses, "
                " (r.doc->>'expires_at')::timestamptz AS expires_at, "
                " (r.doc->>'created_at')::timestamptz AS created_at, "
                " CASE WHEN ou.ord IS NOT NULL THEN ou.target_id ELSE tu.id END AS creator_id, "
                " i.code IS NOT NULL AS matched, "
                " coalesce(i.created_at = (r.doc->>'created_at')::timestamptz "
                "  AND i.role = r.doc->>'role' "
                "  AND i.max_uses IS NOT DISTINCT FROM (r.doc->>'max_uses')::integer "
                "  AND i.expires_at IS NOT DISTINCT FROM (r.doc->>'expires_at')::timestamptz, "
                "  false) AS match_same "
                " FROM _oa_codes_raw r "
                " LEFT JOIN _oa_users ou ON ou.lname = lower(r.doc->>'created_by') "
                " LEFT JOIN users tu ON lower(tu.username) = lower(r.doc->>'created_by') "
                " LEFT JOIN invite_codes i ON i.code = r.doc->>'code'"
                ") AS c"
            ).format(decision=sql.SQL(decision)),
        )
    require_unique(cur, "_oa_codes", "code", "code", "an invite code")
    if acting is not None:
        cur.execute(
            "UPDATE _oa_codes t SET decision = 'skip_acting' FROM invite_codes i "
            "WHERE t.decision = 'overwrite' AND i.code = t.code AND i.created_by = %s",
            (acting,),
        )
    if conflict == "rename":
        analyze(cur, "_oa_codes", "ord", "code", target=10)
    if conflict != "rename":
        return
    cur.execute("SELECT ord, code FROM _oa_codes WHERE decision IS NULL ORDER BY ord")
    pending = [(int(number), str(code)) for number, code in cur.fetchall()]
    if not pending:
        return

    def probe_code(ords: list[int], codes: list[str]) -> list[Probe]:
        cur.execute(
            "SELECT c.code, i.code IS NOT NULL, "
            "coalesce(i.created_at = t.created_at AND i.role = t.role "
            "AND i.max_uses IS NOT DISTINCT FROM t.max_uses "
            "AND i.expires_at IS NOT DISTINCT FROM t.expires_at, false), "
            "EXISTS (SELECT FROM _oa_codes x WHERE x.code = c.code) "
            "FROM unnest(%s::bigint[], %s::text[]) WITH ORDINALITY AS c(ord, code, n) "
            "JOIN _oa_codes t ON t.ord = c.ord "
            "LEFT JOIN invite_codes i ON i.code = c.code ORDER BY c.n",
            (ords, codes),
        )
        return [
            Probe(norm=norm, existing=existing, identical=same, incoming=incoming)
            for norm, existing, same, incoming in cur.fetchall()
        ]

    codes, copies = resolve_names(pending, suffixed, probe_code)
    create_temp(cur, "_oa_decided", columns=sql.SQL("ord bigint, decision text, final_code text"))
    with cur.copy("COPY _oa_decided (ord, decision, final_code) FROM STDIN") as copy:
        for number, code in pending:
            if number in copies:
                copy.write_row((number, "skip", code))
            else:
                copy.write_row((number, "rename", codes[number]))
    cur.execute(
        "UPDATE _oa_codes t SET decision = d.decision, final_code = d.final_code "
        "FROM _oa_decided d WHERE d.ord = t.ord"
    )
    drop_temp(cur, "_oa_decided")


def _decide_tokens(cur: Cursor) -> None:
    """``_oa_tokens``: typed incoming API tokens, their owner as restored, their fate.

    Tokens follow their owner: a skipped user gets no tokens added. A token whose
    hash another token already holds cannot be added (token_hash is unique).
    """
    with archive_data(TOKENS_MEMBER):
        create_temp(
            cur,
            "_oa_tokens",
            query=sql.SQL(
                "SELECT t.*, CASE WHEN owner_decision IS NULL THEN 'orphan' "
                " WHEN owner_decision NOT IN ('insert', 'rename', 'overwrite') THEN 'skip' "
                " WHEN hash_holder IS NOT NULL AND hash_holder IS DISTINCT FROM match_id "
                " THEN 'skip_conflict' "
                " WHEN match_id IS NOT NULL THEN 'overwrite' ELSE 'insert' END AS decision FROM ("
                " SELECT r.*, ou.decision AS owner_decision, ou.target_id AS owner_id, "
                " m.id AS match_id, h.id AS hash_holder "
                " FROM (SELECT r.ord, r.doc->>'username' AS username, "
                "  lower(r.doc->>'username') AS lowner, r.doc->>'name' AS name, "
                "  r.doc->>'token_hash' AS token_hash, "
                "  (r.doc->>'created_at')::timestamptz AS created_at, "
                "  (r.doc->>'last_used_at')::timestamptz AS last_used_at "
                "  FROM _oa_tokens_raw r OFFSET 0) AS r "  # fields read once (see _TYPED_USERS)
                " LEFT JOIN _oa_users ou ON ou.lname = r.lowner "
                " LEFT JOIN api_tokens m ON ou.decision = 'overwrite' AND m.user_id = ou.target_id "
                "  AND m.name = r.name "
                " LEFT JOIN api_tokens h ON h.token_hash = r.token_hash"
                ") AS t"
            ),
        )
    require_unique(
        cur,
        "_oa_tokens",
        "lowner, name",
        "username || '/' || name",
        "an API token name of one user",
    )
    require_unique(cur, "_oa_tokens", "token_hash", "username || '/' || name", "an API token hash")
    cur.execute(
        "SELECT username || '/' || name FROM _oa_tokens WHERE decision = 'orphan' "
        "ORDER BY ord LIMIT 3"
    )
    orphans = [str(row[0]) for row in cur.fetchall()]
    if orphans:
        raise CorruptArchiveError(
            f"{TOKENS_MEMBER}: API tokens of users the archive does not hold "
            f"({listing(orphans)}); the archive is damaged or was edited, use another archive"
        )
