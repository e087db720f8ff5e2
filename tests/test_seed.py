"""Seeding: realistic, deterministic sample data at every schema version."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from psycopg import sql

from odeion_archive._schema import migrate
from odeion_archive.errors import DatabaseError
from odeion_archive.sample import SeedScale, seed

if TYPE_CHECKING:
    from conftest import PgServer

Snapshot = Callable[[str], dict[str, list[tuple[Any, ...]]]]

TABLES = {
    "users",
    "invite_codes",
    "api_tokens",
    "sessions",
    "system_settings",
    "libraries",
    "media_items",
    "watch_history",
}


def _truncate(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        "TRUNCATE users, invite_codes, api_tokens, sessions, system_settings, libraries, "
        "media_items, watch_history RESTART IDENTITY CASCADE"
    )


def test_scales() -> None:
    tiny, demo, bench = SeedScale.tiny(), SeedScale.demo(), SeedScale.benchmark()
    assert tiny.users < 20
    assert tiny.watch_history < 100
    assert 1_000 <= demo.watch_history <= 100_000
    assert (bench.users, bench.media_items, bench.watch_history) == (
        100_000,
        1_000_000,
        10_000_000,
    )
    with pytest.raises(ValueError, match="libraries"):
        SeedScale(
            users=1,
            invite_codes=0,
            api_tokens_per_user=0,
            sessions=0,
            settings=0,
            libraries=0,
            media_items=1,
            watch_history=0,
        )


def test_odeion_db_is_seeded_realistically(odeion_db: str) -> None:
    with psycopg.connect(odeion_db) as conn:

        def one(query: str) -> Any:
            row = conn.execute(query.encode()).fetchone()
            assert row is not None
            return row[0]

        assert one("SELECT max(version) FROM schema_migrations") == 2
        roles = {r for (r,) in conn.execute("SELECT DISTINCT role FROM users")}
        assert roles == {"admin", "user", "guest"}
        assert one("SELECT count(*) FROM users WHERE email IS NULL") >= 1
        assert one("SELECT count(*) FROM users WHERE display_name IS NULL") >= 1
        assert one("SELECT count(*) FROM users WHERE disabled") >= 1
        assert one("SELECT bool_and(password_hash LIKE '$argon2id$v=19$%') FROM users")
        names = [n for (n,) in conn.execute("SELECT display_name FROM users") if n]
        assert any(not n.isascii() for n in names)
        assert one("SELECT count(DISTINCT locale) FROM users") >= 1
        assert one("SELECT count(*) FROM users WHERE preferences <> '{}'") >= 1
        assert one("SELECT count(*) FROM invite_codes WHERE created_by IS NULL") >= 1
        assert one("SELECT count(*) FROM invite_codes WHERE created_by IS NOT NULL") >= 1
        assert one("SELECT count(*) FROM api_tokens") >= 1
        assert one("SELECT count(*) FROM sessions") >= 1
        kinds = {
            k for (k,) in conn.execute("SELECT DISTINCT jsonb_typeof(value) FROM system_settings")
        }
        assert kinds == {"number", "string", "object", "array", "boolean", "null"}
        assert one("SELECT bool_and(root_paths[1] LIKE '/media/%') FROM libraries")
        assert one("SELECT count(DISTINCT kind) FROM libraries") == 5
        assert one(
            "SELECT bool_and(EXISTS (SELECT FROM unnest(l.root_paths) r "
            "WHERE m.path LIKE r || '/%')) FROM media_items m JOIN libraries l "
            "ON l.id = m.library_id"
        )
        assert one("SELECT count(*) FROM watch_history") == SeedScale.tiny().watch_history
        # The identity sequences were moved past the generated ids.
        new_id = one("INSERT INTO users (username, password_hash) VALUES ('new', 'x') RETURNING id")
        assert new_id == SeedScale.tiny().users + 1
        conn.rollback()


def test_v1_database_uses_use_count(odeion_db_v1: str) -> None:
    with psycopg.connect(odeion_db_v1) as conn:
        columns = {
            c
            for (c,) in conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name IN ('users', 'invite_codes')"
            )
        }
        assert "use_count" in columns
        assert "uses" not in columns
        assert "locale" not in columns
        row = conn.execute("SELECT sum(use_count) FROM invite_codes").fetchone()
        assert row is not None
        assert row[0] is not None


@pytest.mark.parametrize("version", [1, 2])
def test_seed_is_deterministic(empty_db: str, db_snapshot: Snapshot, version: int) -> None:
    with psycopg.connect(empty_db, autocommit=True) as conn:
        migrate(conn, version)
        counts = seed(conn, SeedScale.tiny(), seed=0)
        first = db_snapshot(empty_db)
        assert set(counts) == TABLES
        assert {t: len(first[t]) for t in TABLES} == counts
        _truncate(conn)
        assert seed(conn, SeedScale.tiny(), seed=0) == counts
        assert db_snapshot(empty_db) == first
        _truncate(conn)
        seed(conn, SeedScale.tiny(), seed=1)
        other = db_snapshot(empty_db)
        assert other["users"] != first["users"]
        assert other["watch_history"] != first["watch_history"]


def test_seed_refuses_unmigrated_and_non_empty(empty_db: str) -> None:
    with psycopg.connect(empty_db, autocommit=True) as conn:
        with pytest.raises(DatabaseError, match="migrate"):
            seed(conn, SeedScale.tiny())
        migrate(conn)
        seed(conn, SeedScale.tiny())
        with pytest.raises(DatabaseError, match="already has rows"):
            seed(conn, SeedScale.tiny())


def test_seed_in_open_transaction_rolls_back(empty_db: str) -> None:
    with psycopg.connect(empty_db) as conn:
        migrate(conn)
        seed(conn, SeedScale.tiny())
        conn.rollback()
        row = conn.execute("SELECT count(*) FROM users").fetchone()
        assert row == (0,)


def test_demo_scale_timing(pg18: PgServer) -> None:
    """Seed the demo and a medium scale and print the rates (informative, not asserted)."""
    scale = SeedScale(
        users=5_000,
        invite_codes=500,
        api_tokens_per_user=2,
        sessions=5_000,
        settings=60,
        libraries=10,
        media_items=40_000,
        watch_history=200_000,
    )
    name = f"seed_timing_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg18.conninfo, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with psycopg.connect(pg18.database_conninfo(name), autocommit=True) as conn:
            migrate(conn)
            started = time.monotonic()
            seed(conn, SeedScale.demo())
            demo_seconds = time.monotonic() - started
            _truncate(conn)
            started = time.monotonic()
            counts = seed(conn, scale)
            seconds = time.monotonic() - started
    finally:
        with psycopg.connect(pg18.conninfo, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    print(  # noqa: T201
        f"\nseed demo scale: {demo_seconds:.2f} s; medium scale: {sum(counts.values())} rows "
        f"in {seconds:.2f} s ({sum(counts.values()) / seconds:,.0f} rows/s)"
    )
    assert counts["watch_history"] == 200_000
