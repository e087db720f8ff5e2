"""Restoring the JSON components (users_auth alone and with settings) into real databases."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from _jsonarchive import (
    JSON_TABLES,
    MODES,
    REGISTRY,
    Archive,
    codes,
    execute,
    fresh_database,
    issues,
    json_tables,
    plan,
    query,
    restore,
    take_backup,
)
from odeion_archive import Archiver
from odeion_archive.errors import ArchiveInvalidError, RestoreBlockedError, RestoreFailedError
from odeion_archive.interfaces import Conflict, RowCounts

Snapshot = Callable[[str], dict[str, list[tuple[Any, ...]]]]
STRATEGIES: tuple[Conflict, ...] = ("skip", "overwrite", "rename")
USERS_MODES = ("users_auth", "everything_json")


def tables_of(mode: str) -> tuple[str, ...]:
    tables: tuple[str, ...] = ()
    if "users_auth" in MODES[mode]:
        tables += ("users", "invite_codes", "api_tokens")
    if "settings" in MODES[mode]:
        tables += ("system_settings",)
    return tables


def plain_inserts_work(conninfo: str) -> None:
    """The server's next plain INSERTs get ids that do not collide."""
    execute(
        conninfo,
        "INSERT INTO users (username, password_hash) VALUES ('plain-insert', 'x')",
        "INSERT INTO api_tokens (user_id, name, token_hash) "
        "SELECT id, 'plain', 'plain-hash' FROM users WHERE username = 'plain-insert'",
    )


# -- into a fresh database -------------------------------------------------------


@pytest.mark.parametrize("version", [2, 1])
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("conflict", STRATEGIES)
def test_fresh_database_receives_everything(
    request: pytest.FixtureRequest, empty_db: str, version: int, mode: str, conflict: Conflict
) -> None:
    source = request.getfixturevalue("odeion_db" if version == 2 else "odeion_db_v1")
    target = fresh_database(empty_db, version)
    archive = take_backup(source)
    planned = restore(target, archive, mode, conflict)
    got, want = json_tables(target), json_tables(source)
    for table in JSON_TABLES:
        if table in tables_of(mode):
            assert got[table] == want[table], table
            assert planned.counts[table] == RowCounts(insert=len(want[table])), table
        else:
            assert got[table] == [], table
    assert planned.renames.get("users", {}) == {}
    plain_inserts_work(target)


def test_v1_archive_restores_into_v2_database(odeion_db_v1: str, empty_db: str) -> None:
    target = fresh_database(empty_db, 2)
    restore(target, take_backup(odeion_db_v1), "everything_json", "skip")
    source = json_tables(odeion_db_v1)
    got = json_tables(target)
    # The new column takes its default; the renamed one carries the old one's values.
    assert got["users"] == [(*row, "en") for row in source["users"]]
    assert got["invite_codes"] == source["invite_codes"]
    assert query(target, "SELECT sum(uses) FROM invite_codes") == query(
        odeion_db_v1, "SELECT sum(use_count) FROM invite_codes"
    )
    assert got["api_tokens"] == source["api_tokens"]


def test_v2_archive_is_blocked_by_a_v1_database(
    odeion_db: str, empty_db: str, db_snapshot: Snapshot
) -> None:
    target = fresh_database(empty_db, 1)
    archive = take_backup(odeion_db)
    # The planner refuses at the core, once for the archive (not once per component).
    planned = plan(target, archive, "everything_json", "skip")
    assert codes(planned.blockers) == ["schema_too_new"]
    assert "database is at version 1" in planned.blockers[0].message
    before = db_snapshot(target)
    with pytest.raises(RestoreBlockedError, match="schema_too_new"):
        restore(target, archive, "everything_json", "skip", planned=planned)
    assert db_snapshot(target) == before


# -- into the source itself ---------------------------------------------------------


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("conflict", STRATEGIES)
def test_source_itself_is_left_as_it_is(
    odeion_db: str, db_snapshot: Snapshot, mode: str, conflict: Conflict
) -> None:
    archive = take_backup(odeion_db)
    before = db_snapshot(odeion_db)
    planned = restore(odeion_db, archive, mode, conflict)
    assert db_snapshot(odeion_db) == before
    for table in tables_of(mode):
        n = len(before[table])
        expected = RowCounts(overwrite=n) if conflict == "overwrite" else RowCounts(skip=n)
        assert planned.counts[table] == expected, table
    assert planned.renames.get("users", {}) == {}
    assert planned.renames.get("invite_codes", {}) == {}


# -- into a database that overlaps -----------------------------------------------------


class Overlap:
    """A copy of the source that diverged: the cases every strategy must handle.

    ``changed``: same username, another password (a real conflict); ``gone``:
    deleted in the target (its id is free again); ``email``: deleted, and its
    e-mail now belongs to another account; a user named ``<changed>-restored``
    already exists; one invite code changed, one deleted; one setting changed,
    one deleted, one added.
    """

    def __init__(self, source: str, target: str) -> None:
        self.archive = take_backup(source)
        self.source = json_tables(source)
        picks = query(
            source,
            "SELECT id, username, email FROM users WHERE id > 1 AND email IS NOT NULL "
            "AND role <> 'admin' ORDER BY id LIMIT 3",
        )
        (self.changed_id, self.changed, self.changed_email), gone, email = picks
        self.gone_id, self.gone = gone[0], gone[1]
        self.email_id, self.email, self.taken_email = email
        codes = [row[0] for row in query(source, "SELECT code FROM invite_codes ORDER BY code")]
        self.code_changed, self.code_gone = codes[0], codes[1]
        execute(
            target,
            (
                "UPDATE users SET password_hash = 'changed', display_name = 'Changed' WHERE id = %s",
                (self.changed_id,),
            ),
            ("DELETE FROM users WHERE id IN (%s, %s)", (self.gone_id, self.email_id)),
            (
                "INSERT INTO users (username, email, password_hash) VALUES ('squatter', %s, 'h')",
                (self.taken_email,),
            ),
            (
                "INSERT INTO users (username, password_hash) VALUES (%s, 'other')",
                (f"{self.changed}-restored",),
            ),
            (
                "UPDATE invite_codes SET role = 'guest', max_uses = 99 WHERE code = %s",
                (self.code_changed,),
            ),
            ("DELETE FROM invite_codes WHERE code = %s", (self.code_gone,)),
            "UPDATE system_settings SET value = '\"Changed\"' WHERE key = 'server.name'",
            "DELETE FROM system_settings WHERE key = 'ui.theme'",
            "INSERT INTO system_settings (key, value) VALUES ('target.only', '1')",
        )
        self.target = target

    def tokens_of(self, username: str) -> list[tuple[Any, ...]]:
        return [row for row in self.source["api_tokens"] if row[0] == username]

    def attached(self, user_id: int) -> list[tuple[Any, ...]]:
        """The rows of other tables that belong to a user."""
        return [
            (table, *row)
            for table in ("api_tokens", "sessions", "watch_history")
            for row in query(
                self.target,
                f"SELECT * FROM {table} WHERE user_id = %s ORDER BY 1",
                (user_id,),
            )
        ]


@pytest.fixture
def overlap(odeion_db: str, empty_db: str) -> Overlap:
    return Overlap(odeion_db, fresh_database(empty_db, 2, seeded=True))


def rowset(rows: list[tuple[Any, ...]]) -> set[str]:
    """Rows as a set (JSON values are dicts, so each row by its repr)."""
    return {repr(row) for row in rows}


def _rows_by_key(rows: list[tuple[Any, ...]], key: int = 0) -> dict[Any, tuple[Any, ...]]:
    return {row[key]: row for row in rows}


@pytest.mark.parametrize("mode", USERS_MODES)
def test_overlap_skip_keeps_existing_rows_byte_identical(
    overlap: Overlap, db_snapshot: Snapshot, mode: str
) -> None:
    before = db_snapshot(overlap.target)
    planned = restore(overlap.target, overlap.archive, mode, "skip")
    after = db_snapshot(overlap.target)
    for table in ("users", "invite_codes", "sessions", "watch_history", "api_tokens"):
        assert rowset(before[table]) <= rowset(after[table]), table
    users = after["users"]
    added = [row for row in users if row not in before["users"]]
    assert [row[1] for row in added] == [overlap.gone]
    assert added[0] == _rows_by_key(overlap.source["users"])[overlap.gone_id]  # id kept
    assert planned.counts["users"] == RowCounts(insert=1, skip=7)
    assert planned.counts["invite_codes"] == RowCounts(insert=1, skip=4)
    # Only the tokens of the inserted user are added.
    new_tokens = len(after["api_tokens"]) - len(before["api_tokens"])
    assert new_tokens == len(overlap.tokens_of(overlap.gone)) == planned.counts["api_tokens"].insert
    assert "email_conflict" in codes(planned.warnings)
    assert any(overlap.email in i.message for i in issues(planned) if i.code == "email_conflict")
    if mode == "everything_json":
        assert planned.counts["system_settings"] == RowCounts(insert=1, skip=15)
        settings = _rows_by_key(after["system_settings"])
        assert settings["server.name"][1] == "Changed"
        assert "ui.theme" in settings
        assert "target.only" in settings
    plain_inserts_work(overlap.target)


@pytest.mark.parametrize("mode", USERS_MODES)
def test_overlap_overwrite_updates_in_place(
    overlap: Overlap, db_snapshot: Snapshot, mode: str
) -> None:
    attached_before = overlap.attached(overlap.changed_id)
    assert attached_before
    before = db_snapshot(overlap.target)
    planned = restore(overlap.target, overlap.archive, mode, "overwrite")
    after = db_snapshot(overlap.target)
    users = _rows_by_key(after["users"])
    source_users = _rows_by_key(overlap.source["users"])
    # Same id, the archive's values; history, tokens and sessions still attached.
    assert users[overlap.changed_id] == source_users[overlap.changed_id]
    assert overlap.attached(overlap.changed_id) == attached_before
    for user_id, row in source_users.items():
        if user_id != overlap.email_id:
            assert users[user_id] == row
    assert overlap.email_id not in users  # its e-mail is taken by another account
    squatter = next(row for row in after["users"] if row[1] == "squatter")
    assert squatter in before["users"]
    assert planned.counts["users"] == RowCounts(insert=1, overwrite=6, skip=1)
    assert planned.counts["invite_codes"] == RowCounts(insert=1, overwrite=4)
    code = _rows_by_key(after["invite_codes"])[overlap.code_changed]
    source_code = _rows_by_key(overlap.source["invite_codes"])[overlap.code_changed]
    assert code[2:] == source_code[2:]
    # The creator by name: the same id, or none if that user was not restored.
    assert code[1] == (None if source_code[1] == overlap.email_id else source_code[1])
    if mode == "everything_json":
        assert planned.counts["system_settings"] == RowCounts(insert=1, overwrite=15)
        settings = _rows_by_key(after["system_settings"])
        assert settings["server.name"][1] == "Odeion"
        assert "target.only" in settings
    plain_inserts_work(overlap.target)


@pytest.mark.parametrize("mode", USERS_MODES)
def test_overlap_rename_adds_deterministic_unique_names(
    overlap: Overlap, db_snapshot: Snapshot, mode: str
) -> None:
    before = db_snapshot(overlap.target)
    planned = restore(overlap.target, overlap.archive, mode, "rename")
    after = db_snapshot(overlap.target)
    # Nothing that existed changes.
    for table in ("users", "invite_codes", "api_tokens", "system_settings"):
        assert rowset(before[table]) <= rowset(after[table]), table
    new_name = f"{overlap.changed}-restored-2"  # "-restored" is taken
    local, _, domain = overlap.changed_email.rpartition("@")
    new_email = f"{local}+restored@{domain}"
    assert planned.renames["users"] == {overlap.changed: new_name}
    assert planned.renames["users.email"] == {
        overlap.changed_email: new_email,
        overlap.taken_email: "{}+restored@{}".format(*overlap.taken_email.rsplit("@", 1)),
    }
    code = overlap.code_changed
    assert planned.renames["invite_codes"] == {code: f"{code}-restored"}
    source_users = _rows_by_key(overlap.source["users"])
    added = {row[1]: row for row in after["users"] if row not in before["users"]}
    assert set(added) == {new_name, overlap.gone, overlap.email}
    copy = added[new_name]
    original = source_users[overlap.changed_id]
    assert copy[0] > max(row[0] for row in before["users"])  # its old id was taken
    assert copy[2:] == (new_email, *original[3:])
    assert added[overlap.gone] == source_users[overlap.gone_id]
    assert added[overlap.email][2].endswith("+restored@" + overlap.taken_email.rsplit("@", 1)[1])
    assert planned.counts["users"] == RowCounts(insert=1, rename=2, skip=5)
    assert planned.counts["invite_codes"] == RowCounts(insert=1, rename=1, skip=3)
    # The copy's tokens would repeat the original's hashes: skipped with a warning.
    assert "token_conflict" in codes(planned.warnings)
    assert "admin_accounts_imported" not in codes(planned.warnings)
    if mode == "everything_json":
        assert planned.counts["system_settings"] == RowCounts(insert=1, skip=15)
        assert "rename_not_applicable" in codes(planned.warnings)
    plain_inserts_work(overlap.target)


@pytest.mark.parametrize("conflict", STRATEGIES)
def test_restoring_twice_equals_restoring_once(
    overlap: Overlap, db_snapshot: Snapshot, conflict: Conflict
) -> None:
    restore(overlap.target, overlap.archive, "everything_json", conflict)
    once = db_snapshot(overlap.target)
    again = restore(overlap.target, overlap.archive, "everything_json", conflict)
    assert db_snapshot(overlap.target) == once
    for table in JSON_TABLES:
        assert again.counts[table].insert == again.counts[table].rename == 0, table
    assert again.renames["users"] == {}


def test_plan_counts_are_what_the_restore_did(overlap: Overlap, db_snapshot: Snapshot) -> None:
    for conflict in STRATEGIES:
        before = db_snapshot(overlap.target)
        planned = restore(overlap.target, overlap.archive, "everything_json", conflict)
        after = db_snapshot(overlap.target)
        for table in JSON_TABLES:
            counts = planned.counts[table]
            added = len(after[table]) - len(before[table])
            assert added == counts.insert + counts.rename, (conflict, table)
            changed = len(rowset(before[table]) - rowset(after[table]))
            assert changed <= counts.overwrite, (conflict, table)


def test_rename_avoids_names_of_incoming_rows(odeion_db: str, empty_db: str) -> None:
    target = fresh_database(empty_db, 2, seeded=True)
    (name,) = query(odeion_db, "SELECT username FROM users WHERE id = 2")[0]
    execute(
        odeion_db,
        (f"INSERT INTO users (username, password_hash) VALUES ('{name}-RESTORED', 'p')", ()),
    )
    execute(target, "UPDATE users SET password_hash = 'other' WHERE id = 2")
    archive = take_backup(odeion_db)
    planned = restore(target, archive, "users_auth", "rename")
    assert planned.renames["users"] == {name: f"{name}-restored-2"}
    assert planned.counts["users"] == RowCounts(insert=1, rename=1, skip=7)


# -- blockers ------------------------------------------------------------------------


def test_overwriting_the_acting_user_keeps_the_account(odeion_db: str, empty_db: str) -> None:
    target = fresh_database(empty_db, 2, seeded=True)
    execute(target, "UPDATE users SET password_hash = 'new-password' WHERE username = 'admin'")
    archive = take_backup(odeion_db)
    options = {"acting_user": "ADMIN"}
    planned = plan(target, archive, "users_auth", "overwrite", options)
    assert codes(planned.blockers) == []
    kept = [i.message for i in issues(planned) if i.code == "acting_user_kept"]
    assert len(kept) == 1 and "different password" in kept[0]
    assert "acting_user_kept" not in codes(
        plan(target, archive, "users_auth", "skip", options).warnings
    )
    assert "acting_user_kept" not in codes(
        plan(target, archive, "users_auth", "overwrite", {}).warnings
    )
    # (The whole account, tokens and invites included: see test_hostile_rows.py.)


def test_losing_the_last_enabled_admin_is_blocked(odeion_db: str, empty_db: str) -> None:
    target = fresh_database(empty_db, 2, seeded=True)
    execute(odeion_db, "UPDATE users SET disabled = true WHERE role = 'admin'")
    archive = take_backup(odeion_db)
    planned = plan(target, archive, "everything_json", "overwrite")
    assert codes(planned.blockers) == ["no_admin_left"]
    assert codes(plan(target, archive, "everything_json", "skip").blockers) == []
    assert codes(plan(target, archive, "everything_json", "rename").blockers) == []


def test_a_database_changed_since_the_plan_is_refused(
    odeion_db: str, empty_db: str, db_snapshot: Snapshot
) -> None:
    target = fresh_database(empty_db, 2)
    archive = take_backup(odeion_db)
    planned = plan(target, archive, "users_auth", "skip")
    execute(target, "INSERT INTO users (username, password_hash) VALUES ('admin', 'x')")
    before = db_snapshot(target)
    with pytest.raises(RestoreFailedError, match="plan the restore again"):
        restore(target, archive, "users_auth", "skip", planned=planned)
    assert db_snapshot(target) == before


# -- failures -----------------------------------------------------------------------------


def _corrupt_last_line(archive: Archive, path: str) -> Archive:
    lines = archive.members[path].splitlines(keepends=True)
    lines[-1] = lines[-1][: len(lines[-1]) // 2] + b"\n"
    return archive.replace(path, b"".join(lines))


@pytest.mark.parametrize(
    ("mode", "path"),
    [
        ("users_auth", "users_auth/api_tokens.jsonl"),
        ("everything_json", "settings/system_settings.jsonl"),
    ],
)
@pytest.mark.parametrize("conflict", ["overwrite", "rename"])
def test_a_failure_midway_leaves_the_database_unchanged(
    overlap: Overlap, db_snapshot: Snapshot, mode: str, path: str, conflict: Conflict
) -> None:
    planned = plan(overlap.target, overlap.archive, mode, conflict)
    broken = _corrupt_last_line(overlap.archive, path)
    before = db_snapshot(overlap.target)
    with pytest.raises(ArchiveInvalidError, match="invalid JSON"):
        restore(overlap.target, broken, mode, conflict, planned=planned)
    assert db_snapshot(overlap.target) == before


def _repeat_line(archive: Archive, path: str) -> Archive:
    """Line 2 in place of line 3: a row twice, the row count unchanged."""
    lines = archive.members[path].splitlines(keepends=True)
    lines[2] = lines[1]
    return archive.replace(path, b"".join(lines))


def _edit_first_line(archive: Archive, path: str, old: bytes, new: bytes) -> Archive:
    first, rest = archive.members[path].split(b"\n", 1)
    assert old in first
    return archive.replace(path, first.replace(old, new, 1) + b"\n" + rest)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda a: _repeat_line(a, "users_auth/users.jsonl"), "more than once"),
        (
            lambda a: _edit_first_line(
                a, "users_auth/users.jsonl", b'"role": "admin"', b'"role": "root"'
            ),
            "admin, user or guest",
        ),
        (
            lambda a: _edit_first_line(
                a, "users_auth/users.jsonl", b'"created_at": "', b'"created_at": "yesterday'
            ),
            "PostgreSQL refuses",
        ),
        (
            lambda a: _edit_first_line(
                a,
                "users_auth/users.jsonl",
                b'"disabled": false',
                b'"disabled": false, "disabled": true',
            ),
            "appears twice",
        ),
        (
            lambda a: _edit_first_line(
                a, "users_auth/invite_codes.jsonl", b"{", b'{"extra": NaN, '
            ),
            "NaN",
        ),
        (
            lambda a: _edit_first_line(a, "users_auth/api_tokens.jsonl", b"{", b'{"extra": 1, '),
            "unknown field",
        ),
    ],
    ids=["duplicate-user", "bad-role", "bad-time", "duplicate-key", "nan", "unknown-field"],
)
def test_invalid_archives_are_blockers_not_crashes(
    odeion_db: str, edit: Callable[[Archive], Archive], message: str
) -> None:
    archive = edit(take_backup(odeion_db))
    planned = plan(odeion_db, archive, "everything_json", "skip")
    assert codes(planned.blockers) == ["archive_invalid"]
    assert message in issues(planned)[0].message
    # The settings were still planned on the same connection.
    assert planned.counts["system_settings"] == RowCounts(skip=16)


# -- the planner on an archive in memory and on its file ------------------------------


def test_the_planner_plans_an_archive_in_memory_as_its_file(
    odeion_db: str, empty_db: str, tmp_path: Path
) -> None:
    archive = take_backup(odeion_db)
    target = fresh_database(empty_db, 2)
    options = {"acting_user": "admin"}
    in_memory = plan(target, archive, "everything_json", "overwrite", options)
    assert in_memory.can_restore, in_memory.blockers
    assert in_memory.components == ("users_auth", "settings")
    path = archive.write(tmp_path / "archive", tmp_path)
    archiver = Archiver(tmp_path, database_url=target, registry=REGISTRY)
    on_file = archiver.plan(path, "everything_json", "overwrite", **options)
    assert on_file.authenticity == in_memory.authenticity == "own"
    assert on_file == in_memory
    assert "rescan_required" in codes(in_memory.warnings)


def test_databases_whose_client_encoding_is_latin1_keep_their_text(
    odeion_db: str, empty_db: str
) -> None:
    # COPY reads and writes in the session's client encoding: with a database whose
    # default is LATIN1, a restore stored 'Zoë' as 'ZoÃ«', and a backup could not
    # write text LATIN1 lacks.
    names = {"Zoë": "user-zoe", "日本語": "user-nihongo"}
    for display, username in names.items():
        execute(
            odeion_db,
            (
                "INSERT INTO users (username, password_hash, display_name) VALUES (%s, 'h', %s)",
                (username, display),
            ),
        )
    target = fresh_database(empty_db, 2)
    for url in (odeion_db, target):
        (database,) = query(url, "SELECT current_database()")[0]
        execute(url, f"ALTER DATABASE \"{database}\" SET client_encoding = 'LATIN1'")
    archive = take_backup(odeion_db)
    restore(target, archive, "users_auth", "skip")
    stored = query(
        target,
        "SELECT username, convert_to(display_name, 'UTF8') FROM users WHERE username LIKE 'user-%%'",
    )
    assert {bytes(raw).decode(): username for username, raw in stored} == names
