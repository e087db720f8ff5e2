"""A users_auth decision as a plan: row counts, blockers, warnings and steps."""

from __future__ import annotations

from collections.abc import Mapping

from psycopg import sql

from odeion_archive.components._jsonrestore import _LISTED, archive_schema, counts_of, listing
from odeion_archive.components._jsonrows import MAX_RESTORED_ID, Cursor
from odeion_archive.interfaces import ComponentPlan, Issue, PlanContext, RowCounts


def _outcome(cur: Cursor, context: PlanContext) -> ComponentPlan:
    """The plan: counts, new names, warnings, blockers and steps from the recorded decisions."""
    counts = {
        "users": counts_of(cur, "_oa_users"),
        "invite_codes": counts_of(cur, "_oa_codes"),
        "api_tokens": counts_of(cur, "_oa_tokens"),
    }
    cur.execute(
        "SELECT username, final_username, email, final_email FROM _oa_users "
        "WHERE decision = 'rename' ORDER BY ord"
    )
    user_names: dict[str, str] = {}
    user_emails: dict[str, str] = {}
    for username, final_username, email, final_email in cur.fetchall():
        if final_username != username:
            user_names[username] = final_username
        if final_email != email:
            user_emails[email] = final_email
    cur.execute("SELECT code, final_code FROM _oa_codes WHERE decision = 'rename' ORDER BY ord")
    renames: dict[str, Mapping[str, str]] = {
        "users": user_names,
        "invite_codes": {str(code): str(new) for code, new in cur.fetchall()},
    }
    if user_emails:
        renames["users.email"] = user_emails
    blockers = _blockers(cur)
    warnings = [
        *_kept_and_renumbered(cur),
        *_warnings(cur, user_emails, context.schema_version),
    ]
    steps = _steps(counts, context)
    return ComponentPlan(
        blockers=tuple(blockers),
        warnings=tuple(warnings),
        steps=tuple(steps),
        counts=counts,
        renames=renames,
    )


def _blockers(cur: Cursor) -> list[Issue]:
    blockers: list[Issue] = []
    cur.execute(
        "SELECT (SELECT count(*) FROM users WHERE role = 'admin' AND NOT disabled), "
        "(SELECT count(*) FROM users u LEFT JOIN _oa_users t "
        " ON t.target_id = u.id AND t.decision = 'overwrite' "
        " WHERE u.role = 'admin' AND NOT u.disabled AND t.ord IS NULL) "
        "+ (SELECT count(*) FROM _oa_users WHERE decision IN ('insert', 'rename', 'overwrite') "
        " AND role = 'admin' AND NOT disabled)"
    )
    row = cur.fetchone()
    assert row is not None
    before, after = int(row[0]), int(row[1])
    if before > 0 and after == 0:
        blockers.append(
            Issue(
                "no_admin_left",
                "after this restore no enabled administrator account would remain, so "
                "nobody could manage the server; choose the skip or rename strategy, or "
                "restore an archive that holds an enabled administrator",
            )
        )
    return blockers


_ACCOUNT_COLUMNS = (
    ("username", "username"),
    ("email", "e-mail"),
    ("display_name", "display name"),
    ("password_hash", "password"),
    ("role", "role"),
    ("disabled", "disabled flag"),
    ("preferences", "preferences"),
    ("created_at", "creation time"),
    ("last_login_at", "last login"),
)


_ACTING_DIFFERENCES = sql.SQL(
    "SELECT array_remove(ARRAY[{}], NULL), "
    "(SELECT count(*) FROM _oa_tokens k WHERE k.lowner = t.lname) "
    "FROM _oa_users t JOIN users u ON u.id = t.match_id WHERE t.decision = 'skip_acting'"
).format(
    sql.SQL(", ").join(
        sql.SQL("CASE WHEN {} IS DISTINCT FROM {} THEN {} END").format(
            sql.Identifier("t", column), sql.Identifier("u", column), sql.Literal(shown)
        )
        for column, shown in _ACCOUNT_COLUMNS
    )
)


def _kept_and_renumbered(cur: Cursor) -> list[Issue]:
    """Warnings for the acting user's account kept as it is, and for user ids given anew."""
    warnings: list[Issue] = []
    cur.execute(_ACTING_DIFFERENCES)
    row = cur.fetchone()
    differs, tokens = ([], 0) if row is None else (list(row[0]), int(row[1]))
    cur.execute("SELECT count(*) FROM _oa_codes WHERE decision = 'skip_acting'")
    codes = cur.fetchone()
    kept_codes = 0 if codes is None else int(codes[0])
    if row is not None or kept_codes:
        warnings.append(
            Issue(
                "acting_user_kept",
                "the account performing this restore stays exactly as it is (every column, "
                "its API tokens, sessions and the invite codes it created): "
                + (
                    "the archive's version of it"
                    + (f" (different {', '.join(differs)})" if differs else "")
                    + f" is not applied and its {tokens} API token(s) in the archive are not "
                    "added or changed; "
                    if row is not None
                    else ""
                )
                + f"{kept_codes} invite code(s) it created keep their current values. An "
                "archive never changes the account that restores it; to restore this "
                "account from the archive, restore while signed in as another administrator",
            )
        )
    cur.execute(
        "SELECT username, id, target_id FROM _oa_users WHERE id > %s "
        "AND decision IN ('insert', 'rename') ORDER BY ord",
        (MAX_RESTORED_ID,),
    )
    renumbered = [f"{name} ({old} -> {new})" for name, old, new in cur.fetchall()]
    if renumbered:
        warnings.append(
            Issue(
                "ids_renumbered",
                f"{len(renumbered)} user(s) of the archive have ids above {MAX_RESTORED_ID} "
                f"(2^53) and get new ids ({listing(renumbered)}); keeping such ids would move "
                "the id sequence towards its end until the server could create no more "
                "accounts. Users are matched by name, so nothing depends on their old ids",
            )
        )
    return warnings


def _warnings(cur: Cursor, user_emails: Mapping[str, str], schema_version: int) -> list[Issue]:
    warnings: list[Issue] = []
    cur.execute(
        "SELECT final_username FROM _oa_users WHERE role = 'admin' "
        "AND decision IN ('insert', 'rename', 'overwrite') ORDER BY ord"
    )
    admins = [str(row[0]) for row in cur.fetchall()]
    if admins:
        warnings.append(
            Issue(
                "admin_accounts_imported",
                f"the restore adds or updates {len(admins)} administrator account(s) "
                f"({listing(admins)}); check that each of them should have full control of "
                "the server",
            )
        )
    warnings.extend(_admin_invites(cur, schema_version))
    cur.execute(
        "SELECT t.username, u.username FROM _oa_users t JOIN users u ON u.id = t.email_holder "
        "WHERE t.decision = 'skip_email' ORDER BY t.ord"
    )
    skipped = [f"{mine} (e-mail used by {theirs})" for mine, theirs in cur.fetchall()]
    if skipped:
        warnings.append(
            Issue(
                "email_conflict",
                f"{len(skipped)} user(s) of the archive are skipped because another account "
                f"already uses their e-mail address: {', '.join(skipped[:_LISTED])}"
                f"{f' and {len(skipped) - _LISTED} more' if len(skipped) > _LISTED else ''}; "
                "change the e-mail of the existing account or use the rename strategy to "
                "restore them",
            )
        )
    if user_emails:
        warnings.append(
            Issue(
                "email_conflict",
                f"{len(user_emails)} restored user(s) get a new e-mail address because the "
                f"old one is in use ({listing([f'{a} -> {b}' for a, b in user_emails.items()])})"
                "; tell them their new address or correct it after the restore",
            )
        )
    cur.execute(
        "SELECT username || '/' || name FROM _oa_tokens WHERE decision = 'skip_conflict' "
        "ORDER BY ord"
    )
    tokens = [str(row[0]) for row in cur.fetchall()]
    if tokens:
        warnings.append(
            Issue(
                "token_conflict",
                f"{len(tokens)} API token(s) are skipped because another token already has "
                f"the same hash ({listing(tokens)}); their owners must create new tokens",
            )
        )
    return warnings


def _admin_invites(cur: Cursor, schema_version: int) -> list[Issue]:
    """The warning for invite codes that the restore adds or widens and that make admins.

    Such a code signs up anyone who has it as an administrator: an archive must
    not hand one out unnoticed, nor turn an existing code into one, nor let an
    expired or used-up one live again (a later expiry, more uses allowed, fewer
    uses counted).
    """
    cur.execute(
        sql.SQL(
            "SELECT t.final_code, t.max_uses, t.expires_at FROM _oa_codes t "
            "LEFT JOIN invite_codes i ON i.code = t.code "
            "WHERE t.role = 'admin' AND (t.decision IN ('insert', 'rename') OR "
            "(t.decision = 'overwrite' AND ((i.role, i.max_uses, i.expires_at) "
            "IS DISTINCT FROM (t.role, t.max_uses, t.expires_at) "
            "OR (t.max_uses IS NOT NULL AND t.uses < i.{uses})))) ORDER BY t.ord"
        ).format(uses=sql.Identifier("uses" if schema_version >= 2 else "use_count"))
    )
    found = [
        f"{code} ({'unlimited uses' if uses is None else f'{uses} uses'}, "
        f"{'never expires' if expires is None else f'expires {expires:%Y-%m-%d}'})"
        for code, uses, expires in cur.fetchall()
    ]
    if not found:
        return []
    return [
        Issue(
            "admin_invites_imported",
            f"the restore adds or changes {len(found)} invite code(s) that sign up whoever "
            f"holds them as an administrator ({listing(found)}); check that each of them "
            "should exist, or delete it after the restore",
        )
    ]


def _steps(counts: Mapping[str, RowCounts], context: PlanContext) -> list[str]:
    how = {
        "skip": "existing ones are kept as they are",
        "overwrite": "existing ones are updated in place",
        "rename": "conflicting ones are added under new names",
    }[context.conflict]
    steps = []
    for table, label in (
        ("users", "users"),
        ("invite_codes", "invite codes"),
        ("api_tokens", "API tokens"),
    ):
        c = counts[table]
        steps.append(
            f"Restore {label} ({how}): {c.insert} added, {c.overwrite} updated, "
            f"{c.rename} added under a new name, {c.skip} skipped."
        )
    if archive_schema(context) < context.schema_version:
        steps.append(
            f"Convert the rows from schema version {archive_schema(context)} to "
            f"{context.schema_version} (new columns take their defaults)."
        )
    steps.append("Move the id sequences of users and API tokens past the highest id.")
    return steps
