"""Hostile JSON members, built by hand: refused in bounded time, before any lock; and
restores that never give away the acting user's account or the server's id sequences."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import attrs
import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from _jsonarchive import (
    Archive,
    codes,
    execute,
    fresh_database,
    issues,
    plan,
    query,
    restore,
    take_backup,
)
from odeion_archive.errors import ArchiveInvalidError, RestoreFailedError
from odeion_archive.interfaces import Conflict, RowCounts

Snapshot = Callable[[str], dict[str, list[tuple[Any, ...]]]]
STRATEGIES: tuple[Conflict, ...] = ("skip", "overwrite", "rename")
USERS = "users_auth/users.jsonl"
INVITES = "users_auth/invite_codes.jsonl"
SETTINGS = "settings/system_settings.jsonl"


def _message(planned: Any) -> str:
    return " ".join(issue.message for issue in issues(planned))


def _edit_first_line(archive: Archive, path: str, old: bytes, new: bytes) -> Archive:
    first, rest = archive.members[path].split(b"\n", 1)
    assert old in first, first
    return archive.replace(path, first.replace(old, new, 1) + b"\n" + rest)


def _sequences(conninfo: str) -> list[tuple[Any, ...]]:
    return query(
        conninfo, "SELECT sequencename, last_value FROM pg_sequences ORDER BY sequencename"
    )


# -- item 3: blank-line bombs and row counts ----------------------------------------------


@pytest.mark.parametrize(
    ("path", "tail", "message"),
    [
        (USERS, b"\n" * (30 * 1024 * 1024), "line 9 is blank"),
        (USERS, b" \t\r\n", "is blank"),
        (SETTINGS, b"\n" * (8 * 1024 * 1024), "is blank"),
        (INVITES, b'{"code": "extra"}\n' * 200_000, "more than the"),
    ],
    ids=["30-MiB-of-newlines", "whitespace-line", "settings-newlines", "rows-beyond-declared"],
)
def test_members_beyond_their_declared_rows_are_refused_at_once_and_before_any_lock(
    odeion_db: str, db_snapshot: Snapshot, path: str, tail: bytes, message: str
) -> None:
    archive = take_backup(odeion_db)
    genuine = plan(odeion_db, archive, "everything_json", "overwrite")
    bomb = archive.replace(path, archive.members[path] + tail)
    before, sequences = db_snapshot(odeion_db), _sequences(odeion_db)

    started = time.monotonic()
    planned = plan(odeion_db, bomb, "everything_json", "overwrite")
    assert time.monotonic() - started < 5
    assert codes(planned.blockers) == ["archive_invalid"]
    assert message in _message(planned)

    # A session of the server holds the row lock an UPDATE takes: a restore that locked
    # the tables before checking its input would wait for it (and time out).
    slow_locks = make_conninfo(odeion_db, options="-c lock_timeout=10000")
    with psycopg.connect(odeion_db) as server:
        server.execute("LOCK TABLE users, system_settings IN ROW EXCLUSIVE MODE")
        started = time.monotonic()
        with pytest.raises(ArchiveInvalidError, match=message):
            restore(slow_locks, bomb, "everything_json", "overwrite", planned=genuine)
        assert time.monotonic() - started < 5
        server.rollback()
    assert db_snapshot(odeion_db) == before
    assert _sequences(odeion_db) == sequences


def test_members_with_fewer_rows_than_declared_or_no_count_are_refused(odeion_db: str) -> None:
    archive = take_backup(odeion_db)
    lines = archive.members[USERS].splitlines(keepends=True)
    short = archive.replace(USERS, b"".join(lines[:-1]))
    planned = plan(odeion_db, short, "users_auth", "skip")
    assert codes(planned.blockers) == ["archive_invalid"]
    assert f"holds {len(lines) - 1} rows but the manifest records {len(lines)}" in _message(planned)

    entry = archive.manifest.component("users_auth")
    uncounted = {**entry.facts, "rows": {"invite_codes": 1}}

    manifest = attrs.evolve(
        archive.manifest,
        components=tuple(
            attrs.evolve(c, facts=uncounted) if c.name == "users_auth" else c
            for c in archive.manifest.components
        ),
    )
    planned = plan(odeion_db, Archive(manifest, archive.members), "users_auth", "skip")
    assert codes(planned.blockers) == ["archive_invalid"]
    assert "records no row count for 'users'" in _message(planned)


def test_a_genuine_last_line_without_newline_still_restores(odeion_db: str) -> None:
    archive = take_backup(odeion_db)
    trimmed = archive.replace(SETTINGS, archive.members[SETTINGS].rstrip(b"\n"))
    assert codes(plan(odeion_db, trimmed, "settings", "skip").blockers) == []


# -- item 5: integers in JSON rows ------------------------------------------------------------


def _set_field(archive: Archive, path: str, field: str, raw: bytes) -> Archive:
    """The archive with ``field`` of the member's first row set to the JSON text ``raw``."""
    first, rest = archive.members[path].split(b"\n", 1)
    row = json.loads(first)
    assert field in row
    row[field] = "@@VALUE@@"
    edited = json.dumps(row).encode().replace(b'"@@VALUE@@"', raw)
    return archive.replace(path, edited + b"\n" + rest)


@pytest.mark.parametrize(
    ("path", "field", "raw", "message"),
    [
        (USERS, "id", b"1.0", "positive 64-bit integer"),
        (USERS, "id", b"1.5", "positive 64-bit integer"),
        (USERS, "id", b"true", "positive 64-bit integer"),
        (USERS, "id", b'"1"', "positive 64-bit integer"),
        (USERS, "id", b'""', "positive 64-bit integer"),
        (USERS, "id", b"-1", "positive 64-bit integer"),
        (USERS, "id", b"0", "positive 64-bit integer"),
        (USERS, "id", b"[1]", "positive 64-bit integer"),
        (USERS, "id", b"[[[[1]]]]", "positive 64-bit integer"),
        (USERS, "id", b"null", "positive 64-bit integer"),
        (USERS, "id", str(2**63).encode(), "positive 64-bit integer"),
        (USERS, "id", b"9" * 5000, "5000 digits"),
        (USERS, "id", b"1e999", "too large"),
        (USERS, "id", b"NaN", "NaN"),
        (USERS, "id", b"-Infinity", "Infinity"),
        (USERS, "disabled", b"0", "true or false"),
        (INVITES, "uses", b"true", "non-negative 32-bit integer"),
        (INVITES, "uses", str(2**31).encode(), "non-negative 32-bit integer"),
        (INVITES, "max_uses", b"2.5", "positive 32-bit integer"),
        (INVITES, "max_uses", b"0", "positive 32-bit integer"),
    ],
)
def test_integers_in_rows_are_typed_and_range_checked(
    odeion_db: str, db_snapshot: Snapshot, path: str, field: str, raw: bytes, message: str
) -> None:
    hostile = _set_field(take_backup(odeion_db), path, field, raw)
    before = db_snapshot(odeion_db)
    for conflict in STRATEGIES:
        planned = plan(odeion_db, hostile, "users_auth", conflict)
        assert codes(planned.blockers) == ["archive_invalid"], _message(planned)
        assert message in _message(planned)
        assert len(_message(planned)) < 600  # never the whole hostile value
        with pytest.raises(ArchiveInvalidError, match=message):
            restore(odeion_db, hostile, "users_auth", conflict, planned=plan(
                odeion_db, take_backup(odeion_db), "users_auth", conflict
            ))  # fmt: skip
    assert db_snapshot(odeion_db) == before


def test_an_integer_written_with_an_exponent_is_that_integer(odeion_db: str) -> None:
    hostile = _set_field(take_backup(odeion_db), USERS, "id", b"1e0")
    assert codes(plan(odeion_db, hostile, "users_auth", "skip").blockers) == []


# -- item 11: the acting user's account -------------------------------------------------------


def _admin_account(conninfo: str) -> dict[str, list[tuple[Any, ...]]]:
    """Everything that belongs to the account 'admin': its row, tokens, sessions, invites."""
    (admin_id,) = query(conninfo, "SELECT id FROM users WHERE username = 'admin'")[0]
    return {
        table: query(conninfo, f"SELECT * FROM {table} WHERE {column} = %s ORDER BY 1", (admin_id,))
        for table, column in (
            ("users", "id"),
            ("api_tokens", "user_id"),
            ("sessions", "user_id"),
            ("invite_codes", "created_by"),
        )
    }


def _hostile_admin_archive(source: str) -> Archive:
    """An archive whose 'admin' has the attacker's e-mail, password, tokens and invites."""
    execute(
        source,
        "UPDATE users SET email = 'attacker@evil.example', password_hash = 'attacker', "
        "display_name = 'Pwned', preferences = '{\"pwned\": true}', disabled = false "
        "WHERE username = 'admin'",
        "UPDATE api_tokens SET token_hash = 'attacker-' || id "
        "WHERE user_id = (SELECT id FROM users WHERE username = 'admin')",
        "INSERT INTO api_tokens (user_id, name, token_hash) "
        "SELECT id, 'backdoor', 'attacker-backdoor' FROM users WHERE username = 'admin'",
        "UPDATE invite_codes SET role = 'admin', max_uses = NULL, expires_at = NULL "
        "WHERE created_by = (SELECT id FROM users WHERE username = 'admin')",
    )
    return take_backup(source)


@pytest.mark.parametrize("conflict", STRATEGIES)
@pytest.mark.parametrize("acting", ["admin", "ADMIN", "Admin"])
def test_the_acting_users_whole_account_stays_as_it_is(
    odeion_db: str, empty_db: str, db_snapshot: Snapshot, conflict: Conflict, acting: str
) -> None:
    target = fresh_database(empty_db, 2, seeded=True)
    assert _admin_account(target)["invite_codes"], "the seed gives admin invite codes"
    archive = _hostile_admin_archive(odeion_db)
    account = _admin_account(target)
    options = {"acting_user": acting}
    planned = plan(target, archive, "everything_json", conflict, options)
    assert codes(planned.blockers) == []
    restore(target, archive, "everything_json", conflict, options, planned=planned)
    assert _admin_account(target) == account
    assert (
        query(target, "SELECT count(*) FROM api_tokens WHERE token_hash LIKE 'attacker%%'")
        == [(0,)]
        or conflict == "rename"
    )
    if conflict == "overwrite":
        assert "acting_user_kept" in codes(planned.warnings)
        kept = next(i for i in issues(planned) if i.code == "acting_user_kept")
        assert "different e-mail" in kept.message and "password" in kept.message
        assert "invite code(s) it created keep their current values" in kept.message
        users = planned.counts["users"]
        assert users.skip == 1 and users.overwrite == len(query(target, "SELECT id FROM users")) - 1
    # Without an acting user the overwrite takes the archive's version (that is what it is for).
    if conflict == "overwrite":
        restore(target, archive, "everything_json", "overwrite")
        assert query(target, "SELECT email FROM users WHERE username = 'admin'") == [
            ("attacker@evil.example",)
        ]


@pytest.mark.parametrize("acting", ["nobody", "", "adm\x1b[8min", "admin\u200b"])
def test_an_acting_user_that_matches_no_account_protects_nothing_and_breaks_nothing(
    odeion_db: str, empty_db: str, acting: str
) -> None:
    target = fresh_database(empty_db, 2, seeded=True)
    archive = _hostile_admin_archive(odeion_db)
    planned = plan(target, archive, "users_auth", "overwrite", {"acting_user": acting})
    assert codes(planned.blockers) == []
    assert "acting_user_kept" not in codes(planned.warnings)
    assert planned.counts["users"].overwrite == len(query(target, "SELECT id FROM users"))


# -- item 12: ids that would exhaust a sequence -----------------------------------------------


def _plain_inserts_work(conninfo: str) -> None:
    execute(
        conninfo,
        "INSERT INTO users (username, password_hash) VALUES ('after-restore', 'x')",
        "INSERT INTO api_tokens (user_id, name, token_hash) "
        "SELECT id, 'after', 'after-hash' FROM users WHERE username = 'after-restore'",
    )


@pytest.mark.parametrize("conflict", STRATEGIES)
def test_ids_beyond_2_53_get_new_ids_and_the_sequence_stays_usable(
    odeion_db: str, empty_db: str, conflict: Conflict
) -> None:
    top, kept = 2**63 - 1, 2**53
    execute(
        odeion_db,
        f"INSERT INTO users (id, username, password_hash) VALUES ({top}, 'at-the-end', 'h'), "
        f"({kept}, 'at-the-bound', 'h'), ({2**53 + 1}, 'past-the-bound', 'h')",
        "INSERT INTO api_tokens (user_id, name, token_hash) "
        "SELECT id, 'end', 'end-hash' FROM users WHERE username = 'at-the-end'",
    )
    archive = take_backup(odeion_db)
    target = fresh_database(empty_db, 2, seeded=True)
    planned = plan(target, archive, "users_auth", conflict)
    assert codes(planned.blockers) == []
    assert "ids_renumbered" in codes(planned.warnings)
    message = next(i.message for i in issues(planned) if i.code == "ids_renumbered")
    assert "at-the-end" in message and "past-the-bound" in message
    assert "at-the-bound" not in message
    restore(target, archive, "users_auth", conflict, planned=planned)
    ids = dict(query(target, "SELECT username, id FROM users WHERE username LIKE 'at-%%' "
                     "OR username = 'past-the-bound'"))  # fmt: skip
    # Kept where within the bound; past it, one past every id in use (here: the bound).
    assert ids["at-the-bound"] == kept
    assert sorted([ids["past-the-bound"], ids["at-the-end"]]) == [kept + 1, kept + 2]
    assert query(
        target,
        "SELECT t.name FROM api_tokens t JOIN users u ON u.id = t.user_id "
        "WHERE u.username = 'at-the-end'",
    ) == [("end",)]
    _plain_inserts_work(target)
    (last,) = query(
        target, "SELECT last_value FROM pg_sequences WHERE sequencename = 'users_id_seq'"
    )[0]
    assert last <= kept + 3


def test_restored_ids_within_the_bound_are_kept(odeion_db: str, empty_db: str) -> None:
    archive = take_backup(odeion_db)
    target = fresh_database(empty_db, 2)
    planned = restore(target, archive, "users_auth", "skip")
    assert "ids_renumbered" not in codes(planned.warnings)
    assert query(target, "SELECT id FROM users ORDER BY id") == query(
        odeion_db, "SELECT id FROM users ORDER BY id"
    )
    assert planned.counts["users"] == RowCounts(insert=len(query(odeion_db, "SELECT 1 FROM users")))


# -- invite codes that make administrators ----------------------------------------------------


@pytest.mark.parametrize(
    ("conflict", "named"),
    [
        ("skip", ["WELCOME-ADMIN"]),
        ("overwrite", ["WELCOME-ADMIN", "TEAM", "LAPSED"]),
        ("rename", ["WELCOME-ADMIN", "TEAM-restored", "LAPSED-restored"]),
    ],
)
def test_invite_codes_that_make_administrators_are_named_when_added_or_widened(
    odeion_db: str, empty_db: str, conflict: Conflict, named: list[str]
) -> None:
    # An archive can hand out a code that signs anyone up as an administrator, turn
    # an existing code into one, or bring an expired admin code back to life.
    target = fresh_database(empty_db, 2, seeded=True)
    added = (
        "INSERT INTO invite_codes (code, role, max_uses, expires_at) VALUES "
        "('WELCOME-ADMIN', 'admin', NULL, NULL), ('TEAM', 'admin', NULL, NULL), "
        "('LAPSED', 'admin', 3, '2999-01-01')"
    )
    staff = (
        "INSERT INTO invite_codes (code, role, max_uses, expires_at, created_at) "
        "VALUES ('STAFF', 'admin', 2, '2999-01-01', '2024-01-01')"
    )
    execute(odeion_db, added, staff)
    execute(
        target,
        "INSERT INTO invite_codes (code, role, max_uses, expires_at) VALUES "
        "('TEAM', 'user', 5, NULL), ('LAPSED', 'admin', 3, '2000-01-01')",
        staff,
    )
    archive = take_backup(odeion_db)
    planned = plan(target, archive, "users_auth", conflict)
    (warning,) = [i for i in planned.warnings if i.code == "admin_invites_imported"]
    assert f"adds or changes {len(named)} invite code(s)" in warning.message
    for code in named:
        assert code in warning.message
    assert "WELCOME-ADMIN (unlimited uses, never expires)" in warning.message
    assert "STAFF" not in warning.message  # the same admin code as the server's own
    if conflict == "overwrite":
        assert "LAPSED (3 uses, expires 2999-01-01)" in warning.message
    # Once restored, the same archive changes nothing and names nothing.
    restore(target, archive, "users_auth", "overwrite")
    again = plan(target, archive, "users_auth", conflict)
    assert "admin_invites_imported" not in codes(again.warnings)


# -- sequences: moved only by a restore that commits ------------------------------------------


def test_a_restore_that_fails_after_adding_users_leaves_every_sequence_where_it_was(
    odeion_db: str, empty_db: str, db_snapshot: Snapshot
) -> None:
    # setval and nextval are never rolled back: a restore that used them and then
    # failed left the id sequences moved, up to 2^53 with an archive that asks.
    execute(
        odeion_db,
        f"INSERT INTO users (id, username, password_hash) VALUES ({2**53}, 'far-away', 'h')",
        "INSERT INTO api_tokens (user_id, name, token_hash) "
        "SELECT id, 'far', 'far-hash' FROM users WHERE username = 'far-away'",
    )
    archive = take_backup(odeion_db)
    target = fresh_database(empty_db, 2, seeded=True)
    planned = plan(target, archive, "everything_json", "rename")
    assert planned.counts["users"].insert >= 1 and planned.counts["api_tokens"].insert >= 1
    # The settings change after the plan: the restore adds the users and tokens, then
    # refuses the settings and rolls everything back.
    execute(
        target, "DELETE FROM system_settings WHERE key = (SELECT min(key) FROM system_settings)"
    )
    before, sequences = db_snapshot(target), _sequences(target)
    with pytest.raises(RestoreFailedError, match="changed since"):
        restore(target, archive, "everything_json", "rename", planned=planned)
    assert db_snapshot(target) == before
    assert _sequences(target) == sequences
    # The same restore, planned again, commits and moves them.
    restore(target, archive, "everything_json", "rename")
    assert query(target, "SELECT id FROM users WHERE username = 'far-away'") == [(2**53,)]
    _plain_inserts_work(target)


@pytest.mark.parametrize("grants", ["USAGE, SELECT, UPDATE", "USAGE, UPDATE"])
def test_a_role_that_does_not_own_the_sequences_still_restores(
    odeion_db: str, empty_db: str, grants: str
) -> None:
    # A role with the rights to write the tables but not to alter their sequences
    # moves them with setval.
    archive = take_backup(odeion_db)
    target = fresh_database(empty_db, 2, seeded=True)
    role = f"writer_{uuid.uuid4().hex[:8]}"
    tables = "users, invite_codes, api_tokens, system_settings"
    execute(
        target,
        f"CREATE ROLE {role} LOGIN",
        f"GRANT SELECT, INSERT, UPDATE ON {tables} TO {role}",
        f"GRANT {grants} ON ALL SEQUENCES IN SCHEMA public TO {role}",
        f"GRANT SELECT ON schema_migrations TO {role}",
    )
    try:
        writer = make_conninfo(target, user=role, password=None)
        # Sequences behind the ids the restore brings back: they must be moved.
        execute(
            target,
            "DELETE FROM users WHERE id > 5 AND username <> 'admin'",
            "ALTER SEQUENCE users_id_seq RESTART WITH 6",
            "ALTER SEQUENCE api_tokens_id_seq RESTART WITH 1",
        )
        restore(writer, archive, "users_auth", "skip")
        moved = query(
            target,
            "SELECT sequencename, last_value FROM pg_sequences "
            "WHERE sequencename IN ('users_id_seq', 'api_tokens_id_seq') ORDER BY 1",
        )
        tops = query(target, "SELECT (SELECT max(id) FROM api_tokens), (SELECT max(id) FROM users)")
        assert [last for _name, last in moved] == list(tops[0])
        _plain_inserts_work(target)
    finally:
        execute(target, f"DROP OWNED BY {role}", f"DROP ROLE {role}")


def test_an_admin_code_used_up_here_and_fresh_in_the_archive_is_named(
    odeion_db: str, empty_db: str
) -> None:
    # The overwrite takes the archive's count of uses: a code used up here could sign
    # up another administrator.
    target = fresh_database(empty_db, 2, seeded=True)
    staff = (
        "INSERT INTO invite_codes (code, role, max_uses, uses, expires_at, created_at) "
        "VALUES ('STAFF', 'admin', 1, {}, '2999-01-01', '2024-01-01')"
    )
    execute(odeion_db, staff.format(0))
    execute(target, staff.format(1))
    archive = take_backup(odeion_db)
    planned = plan(target, archive, "users_auth", "overwrite")
    (warning,) = [i for i in planned.warnings if i.code == "admin_invites_imported"]
    assert "STAFF (1 uses, expires 2999-01-01)" in warning.message
    execute(odeion_db, "UPDATE invite_codes SET uses = 1 WHERE code = 'STAFF'")
    again = plan(target, take_backup(odeion_db), "users_auth", "overwrite")
    assert "admin_invites_imported" not in codes(again.warnings)


def test_a_code_that_becomes_an_admin_code_after_the_plan_stops_the_restore(
    odeion_db: str, empty_db: str, db_snapshot: Snapshot
) -> None:
    # The reviewed plan named no admin code; the restore must not grant one it did
    # not show, even though it would add and change as many rows as planned.
    target = fresh_database(empty_db, 2, seeded=True)
    staff = (
        "INSERT INTO invite_codes (code, role, max_uses, uses, expires_at, created_at) "
        "VALUES ('STAFF', 'admin', 5, 0, NULL, '2024-01-01')"
    )
    execute(odeion_db, staff)
    execute(target, staff)
    archive = take_backup(odeion_db)
    planned = plan(target, archive, "users_auth", "overwrite")
    assert "admin_invites_imported" not in codes(planned.warnings)
    execute(target, "UPDATE invite_codes SET role = 'user' WHERE code = 'STAFF'")
    before = db_snapshot(target)
    with pytest.raises(RestoreFailedError, match=r"a new warning \[admin_invites_imported\]"):
        restore(target, archive, "users_auth", "overwrite", planned=planned)
    assert db_snapshot(target) == before
