"""The Odeion server's schema, as migrations the library can apply.

The Odeion server owns its schema and runs its own migrations; odeion-archive
carries the same migrations as SQL files (package data) so that tests, the demo
and the benchmarks can build a database on a machine that has nothing but this
package. Each applied migration is recorded in ``schema_migrations``; the
highest recorded version is the database's *schema version*.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import attrs
import psycopg
from psycopg.rows import tuple_row

from odeion_archive.errors import DatabaseError

__all__ = [
    "LATEST_SCHEMA_VERSION",
    "Migration",
    "migrate",
    "migrations",
    "schema_version",
]

#: The newest schema version this library knows.
LATEST_SCHEMA_VERSION = 2

# Serialises concurrent migrate() calls on one database (an arbitrary constant key).
_MIGRATION_LOCK_KEY = 0x0DE10_5C4E

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@attrs.frozen
class Migration:
    """One schema migration: its version, its name and its SQL text."""

    version: int
    name: str
    sql: str


def migrations() -> tuple[Migration, ...]:
    """Every migration this library knows, in version order."""
    found: list[Migration] = []
    for entry in resources.files("odeion_archive").joinpath("sql").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is None:
            continue
        found.append(
            Migration(
                version=int(match.group(1)),
                name=match.group(2),
                sql=entry.read_text(encoding="utf-8"),
            )
        )
    found.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in found]
    if versions != list(range(1, LATEST_SCHEMA_VERSION + 1)):
        raise DatabaseError(
            f"the packaged schema migrations are versions {versions}, expected 1 to "
            f"{LATEST_SCHEMA_VERSION}; the installation of odeion-archive is damaged, "
            "reinstall it"
        )
    return tuple(found)


def schema_version(conn: psycopg.Connection[Any]) -> int:
    """The database's schema version: the highest applied migration, 0 if none.

    A database without a ``schema_migrations`` table (a brand-new one) is at
    version 0.
    """
    try:
        with conn.cursor(row_factory=tuple_row) as cur:
            cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
            row = cur.fetchone()
            if row is None or not row[0]:
                return 0
            cur.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
            row = cur.fetchone()
    except psycopg.Error as exc:
        raise DatabaseError(
            f"could not read the schema version of the database: {exc}; check that the "
            "database is reachable and that the user may read schema_migrations"
        ) from exc
    return int(row[0]) if row is not None else 0


def migrate(conn: psycopg.Connection[Any], target: int | None = None) -> int:
    """Apply the migrations the database lacks, up to ``target`` (default: the latest).

    Each migration runs in its own transaction together with its row in
    ``schema_migrations``, so a failing migration leaves the database at the
    previous version; if ``conn`` is already inside a transaction, each
    migration is a savepoint of it and becomes permanent when the caller
    commits. Concurrent calls on one database are serialised with an advisory
    lock. Returns the schema version reached. Migrating down is not
    supported: a ``target`` below the current version changes nothing.
    """
    target = _check_migration(conn, target)
    status = conn.info.transaction_status
    # Outside a transaction each migration commits on its own; inside the caller's
    # transaction each one is a savepoint that becomes permanent with the caller's commit.
    owns_transactions = status == psycopg.pq.TransactionStatus.IDLE
    current = schema_version(conn)
    if owns_transactions:
        _end_read(conn)
    for migration in migrations():
        if migration.version > target:
            break
        if migration.version <= current:
            continue
        try:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK_KEY,))
                # Another process may have applied it while we waited for the lock.
                if schema_version(conn) >= migration.version:
                    continue
                cur.execute(migration.sql.encode("utf-8"))
                cur.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
        except psycopg.Error as exc:
            raise DatabaseError(
                f"schema migration {migration.version} ({migration.name}) failed: {exc}; the "
                f"database was left at schema version {_version_text(conn, current)}. Fix the "
                "cause (permissions, conflicting objects) and run the migration again"
            ) from exc
    reached = schema_version(conn)
    if owns_transactions:
        _end_read(conn)
    return reached


def _check_migration(conn: psycopg.Connection[Any], target: int | None) -> int:
    """The version to migrate to; a target out of range or a failed transaction is an error."""
    if target is None:
        target = LATEST_SCHEMA_VERSION
    if not 0 <= target <= LATEST_SCHEMA_VERSION:
        raise DatabaseError(
            f"cannot migrate to schema version {target}: this odeion-archive knows versions "
            f"0 to {LATEST_SCHEMA_VERSION}; pass a version in that range or upgrade "
            "odeion-archive"
        )
    if conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
        raise DatabaseError(
            "migrate() was given a connection whose transaction failed; roll it back first"
        )
    return target


def _end_read(conn: psycopg.Connection[Any]) -> None:
    """Close the transaction a read opened on a connection that is not in autocommit."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.rollback()


def _version_text(conn: psycopg.Connection[Any], fallback: int) -> str:
    """The schema version as text for a message, or ``fallback`` if it cannot be read."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        return str(fallback)
    try:
        version = schema_version(conn)
        _end_read(conn)
    except Exception:
        return str(fallback)
    return str(version)
