"""Plans agree with restores over randomly mixed conflicts, for every strategy.

A source of a few hundred users, invite codes, API tokens and settings is
restored into a copy of itself that diverged at random (changed passwords,
deleted accounts, e-mails taken by other accounts, names already taken by a
``-restored`` copy, changed and deleted invite codes, deleted tokens, token
hashes held by other users' tokens, changed and deleted settings). Whatever the
mix, the restore does exactly what the plan announced.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from _jsonarchive import JSON_TABLES, execute, fresh_database, plan, query, restore, take_backup
from odeion_archive.interfaces import Conflict

Snapshot = Callable[[str], dict[str, list[tuple[Any, ...]]]]

_KEYS = {
    "users": "lower(username)",
    "invite_codes": "code",
    "api_tokens": "user_id::text || '/' || name",
    "system_settings": "key",
}


def _grow(source: str) -> None:
    """More users, tokens and invite codes than the tiny seed has."""
    execute(
        source,
        "INSERT INTO users (username, email, password_hash, role, created_at) "
        "SELECT 'm' || g, CASE WHEN g % 4 <> 0 THEN 'm' || g || '@example.org' END, "
        "'hash-' || g, CASE WHEN g % 10 = 0 THEN 'admin' ELSE 'user' END, "
        "timestamptz '2024-01-01' + g * interval '1 hour' FROM generate_series(1, 240) g",
        "INSERT INTO api_tokens (user_id, name, token_hash) "
        "SELECT u.id, 'token-' || t, 'th-' || u.id || '-' || t FROM users u "
        "CROSS JOIN generate_series(1, 2) t WHERE u.username LIKE 'm%'",
        "INSERT INTO invite_codes (code, created_by, role, created_at) "
        "SELECT 'MIX-' || g, (SELECT id FROM users WHERE username = 'm' || g), 'user', "
        "timestamptz '2024-02-01' FROM generate_series(1, 80) g",
    )


Statement = str | tuple[str, tuple[Any, ...]]

_SQUAT = (
    "INSERT INTO users (username, password_hash) "
    "SELECT username || '-restored', 'squat' FROM users WHERE id = %s"
)
# The account keeps its e-mail under another name: the archive's account finds
# no namesake, and its e-mail taken.
_TAKE_EMAIL = "UPDATE users SET username = 'taker-' || id, password_hash = 'taker' WHERE id = %s"


def _diverge_users(target: str, rng: random.Random) -> list[Statement]:
    users = query(target, "SELECT id FROM users WHERE username LIKE 'm%%' ORDER BY id")
    statements: list[Statement] = []
    for (user,) in users:
        roll = rng.random()
        if roll < 0.2:
            statements.append(("UPDATE users SET password_hash = 'changed' WHERE id = %s", (user,)))
        if 0.15 <= roll < 0.2:
            statements.append((_SQUAT, (user,)))
        elif 0.2 <= roll < 0.3:
            statements.append(("DELETE FROM users WHERE id = %s", (user,)))
        elif 0.3 <= roll < 0.35:
            statements.append((_TAKE_EMAIL, (user,)))
    return statements


def _diverge_tokens(target: str, rng: random.Random) -> list[Statement]:
    tokens = query(target, "SELECT id, user_id, token_hash FROM api_tokens ORDER BY id")
    statements: list[Statement] = []
    used: set[int] = set()
    for token, owner, _ in tokens:
        roll = rng.random()
        if token in used or roll >= 0.15:
            continue
        if roll < 0.1:
            used.add(token)
            statements.append(("DELETE FROM api_tokens WHERE id = %s", (token,)))
            continue
        # This token takes the hash of another user's token, which gets a new one.
        other = next((t for t in tokens if t[1] != owner and t[0] not in used), None)
        if other is not None:
            used.update((token, other[0]))
            statements.append(
                ("UPDATE api_tokens SET token_hash = 'moved-' || id WHERE id = %s", (other[0],))
            )
            statements.append(
                ("UPDATE api_tokens SET token_hash = %s WHERE id = %s", (other[2], token))
            )
    return statements


def _diverge_keyed(target: str, rng: random.Random, table: str, change: str) -> list[Statement]:
    """Change (``change``, one parameter: the key) or delete some rows of a table keyed by text."""
    key = _KEYS[table]
    statements: list[Statement] = []
    for (value,) in query(target, f"SELECT {key} FROM {table} ORDER BY 1"):
        roll = rng.random()
        if roll < 0.2:
            statements.append((change, (value,)))
        elif roll < 0.3:
            statements.append((f"DELETE FROM {table} WHERE {key} = %s", (value,)))
    return statements


def _diverge(target: str, rng: random.Random) -> None:
    """Random conflicts of every kind in ``target``, a copy of the source."""
    statements = [
        *_diverge_users(target, rng),
        *_diverge_tokens(target, rng),
        *_diverge_keyed(
            target, rng, "invite_codes", "UPDATE invite_codes SET role = 'guest' WHERE code = %s"
        ),
        *_diverge_keyed(
            target, rng, "system_settings", "UPDATE system_settings SET value = '7' WHERE key = %s"
        ),
    ]
    for statement in statements:
        execute(target, statement)


def _by_key(conninfo: str, table: str) -> dict[str, tuple[Any, ...]]:
    rows = query(conninfo, f"SELECT {_KEYS[table]}, * FROM {table}")
    return {str(row[0]): tuple(repr(value) for value in row[1:]) for row in rows}


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("conflict", ["skip", "overwrite", "rename"])
def test_the_restore_does_what_the_plan_announced(
    odeion_db: str, empty_db: str, seed: int, conflict: Conflict
) -> None:
    _grow(odeion_db)
    archive = take_backup(odeion_db)
    target = fresh_database(empty_db, 2)
    restore(target, archive, "everything_json", "skip")
    _diverge(target, random.Random(seed))
    before = {table: _by_key(target, table) for table in JSON_TABLES}

    planned = plan(target, archive, "everything_json", conflict)
    assert planned.blockers == ()
    done = restore(target, archive, "everything_json", conflict, planned=planned)
    after = {table: _by_key(target, table) for table in JSON_TABLES}

    assert done.counts == planned.counts
    assert done.renames == planned.renames
    declared = archive.manifest
    for table in JSON_TABLES:
        counts = planned.counts[table]
        rows = next(c.facts["rows"][table] for c in declared.components if table in c.facts["rows"])
        assert counts.insert + counts.overwrite + counts.rename + counts.skip == rows, table
        assert len(after[table]) - len(before[table]) == counts.insert + counts.rename, table
        assert before.keys() <= after.keys()
        changed = [key for key in before[table] if before[table][key] != after[table][key]]
        assert len(changed) <= counts.overwrite, table
        if conflict != "overwrite":
            assert changed == [], table
    for table in ("users", "invite_codes"):
        new_names = planned.renames.get(table, {}).values()
        key = str.lower if table == "users" else str
        assert all(key(name) not in before[table] for name in new_names), table
        assert all(key(name) in after[table] for name in new_names), table
    if conflict == "rename":
        assert planned.counts["users"].rename > 0
        assert planned.renames["users"]
    if conflict == "overwrite":
        assert planned.counts["users"].overwrite > 0

    # Restored once, nothing of the archive is missing any more. (API tokens
    # are left out: a token skipped because another token held its hash may find
    # that hash free after the other token was overwritten with its own.)
    again = plan(target, archive, "everything_json", conflict)
    for table in ("users", "invite_codes", "system_settings"):
        assert again.counts[table].insert == again.counts[table].rename == 0, table
