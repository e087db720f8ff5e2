"""The packaged Odeion schema and its migrations, against real PostgreSQL servers."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from odeion_archive._schema import LATEST_SCHEMA_VERSION, migrate, migrations, schema_version
from odeion_archive.errors import DatabaseError

# column -> (data_type, nullable) at the latest schema version
EXPECTED_COLUMNS: dict[str, dict[str, tuple[str, bool]]] = {
    "schema_migrations": {
        "version": ("integer", False),
        "name": ("text", False),
        "applied_at": ("timestamp with time zone", False),
    },
    "users": {
        "id": ("bigint", False),
        "username": ("text", False),
        "email": ("text", True),
        "display_name": ("text", True),
        "password_hash": ("text", False),
        "role": ("text", False),
        "disabled": ("boolean", False),
        "preferences": ("jsonb", False),
        "created_at": ("timestamp with time zone", False),
        "last_login_at": ("timestamp with time zone", True),
        "locale": ("text", False),
    },
    "invite_codes": {
        "code": ("text", False),
        "created_by": ("bigint", True),
        "role": ("text", False),
        "max_uses": ("integer", True),
        "uses": ("integer", False),
        "expires_at": ("timestamp with time zone", True),
        "created_at": ("timestamp with time zone", False),
    },
    "api_tokens": {
        "id": ("bigint", False),
        "user_id": ("bigint", False),
        "name": ("text", False),
        "token_hash": ("text", False),
        "created_at": ("timestamp with time zone", False),
        "last_used_at": ("timestamp with time zone", True),
    },
    "sessions": {
        "token_hash": ("text", False),
        "user_id": ("bigint", False),
        "expires_at": ("timestamp with time zone", False),
    },
    "system_settings": {
        "key": ("text", False),
        "value": ("jsonb", False),
        "updated_at": ("timestamp with time zone", False),
    },
    "libraries": {
        "id": ("bigint", False),
        "name": ("text", False),
        "kind": ("text", False),
        "root_paths": ("ARRAY", False),
        "created_at": ("timestamp with time zone", False),
    },
    "media_items": {
        "id": ("bigint", False),
        "library_id": ("bigint", False),
        "path": ("text", False),
        "title": ("text", False),
        "duration_ms": ("bigint", True),
        "metadata": ("jsonb", False),
        "added_at": ("timestamp with time zone", False),
    },
    "watch_history": {
        "id": ("bigint", False),
        "user_id": ("bigint", False),
        "media_item_id": ("bigint", False),
        "position_ms": ("bigint", False),
        "completed": ("boolean", False),
        "watched_at": ("timestamp with time zone", False),
    },
}

IDENTITY_COLUMNS = {
    ("users", "id"),
    ("api_tokens", "id"),
    ("libraries", "id"),
    ("media_items", "id"),
    ("watch_history", "id"),
}

# (table, constraint type, columns, referenced table, on delete)
EXPECTED_CONSTRAINTS = {
    ("schema_migrations", "p", ("version",), None, None),
    ("users", "p", ("id",), None, None),
    ("users", "c", ("role",), None, None),
    ("invite_codes", "p", ("code",), None, None),
    ("invite_codes", "f", ("created_by",), "users", "n"),
    ("invite_codes", "c", ("role",), None, None),
    ("invite_codes", "c", ("max_uses",), None, None),
    ("api_tokens", "p", ("id",), None, None),
    ("api_tokens", "f", ("user_id",), "users", "c"),
    ("api_tokens", "u", ("token_hash",), None, None),
    ("api_tokens", "u", ("user_id", "name"), None, None),
    ("sessions", "p", ("token_hash",), None, None),
    ("sessions", "f", ("user_id",), "users", "c"),
    ("system_settings", "p", ("key",), None, None),
    ("libraries", "p", ("id",), None, None),
    ("libraries", "u", ("name",), None, None),
    ("libraries", "c", ("kind",), None, None),
    ("media_items", "p", ("id",), None, None),
    ("media_items", "f", ("library_id",), "libraries", "c"),
    ("media_items", "u", ("path",), None, None),
    ("watch_history", "p", ("id",), None, None),
    ("watch_history", "f", ("user_id",), "users", "c"),
    ("watch_history", "f", ("media_item_id",), "media_items", "c"),
}


def _columns(conn: psycopg.Connection[Any]) -> dict[str, dict[str, tuple[str, bool]]]:
    result: dict[str, dict[str, tuple[str, bool]]] = {}
    for table, column, data_type, nullable in conn.execute(
        "SELECT table_name, column_name, data_type, is_nullable = 'YES' "
        "FROM information_schema.columns WHERE table_schema = 'public' "
        "ORDER BY table_name, ordinal_position"
    ):
        result.setdefault(table, {})[column] = (data_type, nullable)
    return result


def _constraints(conn: psycopg.Connection[Any]) -> set[tuple[Any, ...]]:
    rows = conn.execute(
        "SELECT c.conrelid::regclass::text, c.contype, "
        "  array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, o) "
        "        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n "
        "        ORDER BY k.o)::text[], "
        "  CASE WHEN c.contype = 'f' THEN c.confrelid::regclass::text END, "
        "  CASE WHEN c.contype = 'f' THEN c.confdeltype::text END "
        "FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
        "WHERE n.nspname = 'public' AND c.contype IN ('p', 'u', 'f', 'c')"
    ).fetchall()
    return {(t, k, tuple(cols), ref, action) for t, k, cols, ref, action in rows}


def test_packaged_migrations() -> None:
    found = migrations()
    assert [(m.version, m.name) for m in found] == [(1, "initial"), (2, "user_locale_invite_uses")]
    assert LATEST_SCHEMA_VERSION == 2
    assert "CREATE TABLE users" in found[0].sql


def test_empty_database_is_version_0(empty_db: str) -> None:
    with psycopg.connect(empty_db) as conn:
        assert schema_version(conn) == 0


def test_migrate_builds_the_documented_schema(empty_db: str) -> None:
    with psycopg.connect(empty_db) as conn:
        assert migrate(conn) == LATEST_SCHEMA_VERSION
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert _columns(conn) == EXPECTED_COLUMNS
        identity = set(
            conn.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = 'public' AND is_identity = 'YES' "
                "AND identity_generation = 'BY DEFAULT'"
            ).fetchall()
        )
        assert identity == IDENTITY_COLUMNS
        assert _constraints(conn) == EXPECTED_CONSTRAINTS
        indexes: dict[str, str] = dict(
            conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
            ).fetchall()
        )
        assert "UNIQUE" in indexes["users_username_key"]
        assert "lower(username)" in indexes["users_username_key"]
        assert "lower(email)" in indexes["users_email_key"]
        assert "WHERE (email IS NOT NULL)" in indexes["users_email_key"]
        assert "(user_id, watched_at DESC)" in indexes["watch_history_user_id_watched_at_idx"]
        defaults: dict[str, str] = dict(
            conn.execute(
                "SELECT table_name || '.' || column_name, column_default "
                "FROM information_schema.columns WHERE table_schema = 'public' "
                "AND column_default IS NOT NULL"
            ).fetchall()
        )
        assert defaults["users.role"] == "'user'::text"
        assert defaults["users.locale"] == "'en'::text"
        assert defaults["users.preferences"] == "'{}'::jsonb"
        assert defaults["invite_codes.uses"] == "0"
        assert defaults["watch_history.position_ms"] == "0"


def test_checks_reject_bad_values(empty_db: str) -> None:
    with psycopg.connect(empty_db, autocommit=True) as conn:
        migrate(conn)
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "INSERT INTO users (username, password_hash, role) VALUES ('a', 'x', 'root')"
            )
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "INSERT INTO users (username, password_hash) VALUES ('Ann', 'x'), ('ann', 'y')"
            )
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("INSERT INTO invite_codes (code, max_uses) VALUES ('c', 0)")
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "INSERT INTO libraries (name, kind, root_paths) VALUES ('x', 'games', '{}')"
            )


def test_migrate_is_idempotent(empty_db: str) -> None:
    with psycopg.connect(empty_db) as conn:
        assert migrate(conn) == 2
        assert migrate(conn) == 2
        assert schema_version(conn) == 2
        rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY 1").fetchall()
        assert rows == [(1, "initial"), (2, "user_locale_invite_uses")]


def test_migrate_in_autocommit(empty_db: str) -> None:
    with psycopg.connect(empty_db, autocommit=True) as conn:
        assert migrate(conn, 1) == 1
        assert migrate(conn) == 2


def test_v1_to_v2_renames_use_count_and_adds_locale(empty_db: str) -> None:
    with psycopg.connect(empty_db) as conn:
        assert migrate(conn, 1) == 1
        assert schema_version(conn) == 1
        columns = _columns(conn)
        assert "use_count" in columns["invite_codes"]
        assert "uses" not in columns["invite_codes"]
        assert "locale" not in columns["users"]
        with conn.transaction():
            conn.execute("INSERT INTO users (id, username, password_hash) VALUES (7, 'ann', 'h')")
            conn.execute(
                "INSERT INTO invite_codes (code, created_by, use_count) VALUES ('abc', 7, 3)"
            )
        assert migrate(conn) == 2
        assert conn.execute("SELECT locale FROM users WHERE id = 7").fetchone() == ("en",)
        assert conn.execute("SELECT uses FROM invite_codes").fetchone() == (3,)
        assert "use_count" not in _columns(conn)["invite_codes"]


def test_migrate_target_0_and_lower_target_change_nothing(empty_db: str) -> None:
    with psycopg.connect(empty_db) as conn:
        assert migrate(conn, 0) == 0
        assert schema_version(conn) == 0
        conn.rollback()
        assert migrate(conn) == 2
        assert migrate(conn, 1) == 2


def test_migrate_refuses_unknown_target_and_failed_transaction(empty_db: str) -> None:
    with psycopg.connect(empty_db) as conn:
        with pytest.raises(DatabaseError, match="upgrade odeion-archive"):
            migrate(conn, LATEST_SCHEMA_VERSION + 1)
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("SELECT 1 / 0")
        with pytest.raises(DatabaseError, match="roll it back"):
            migrate(conn)
        conn.rollback()
        assert schema_version(conn) == 0


def test_migrate_inside_a_transaction_joins_it(empty_db: str) -> None:
    with psycopg.connect(empty_db) as conn:
        conn.execute("SELECT 1")
        assert migrate(conn) == 2
        conn.rollback()
        assert schema_version(conn) == 0
        conn.rollback()
        conn.execute("SELECT 1")
        assert migrate(conn, 1) == 1
        conn.commit()
        assert schema_version(conn) == 1


def test_failed_migration_leaves_previous_version(empty_db: str) -> None:
    with psycopg.connect(empty_db) as conn:
        migrate(conn, 1)
        # A conflicting object makes migration 2 fail.
        with conn.transaction():
            conn.execute("ALTER TABLE users ADD COLUMN locale text")
        with pytest.raises(DatabaseError, match="migration 2") as info:
            migrate(conn)
        assert "schema version 1" in str(info.value)
        conn.rollback()
        assert schema_version(conn) == 1
        assert "use_count" in _columns(conn)["invite_codes"]
