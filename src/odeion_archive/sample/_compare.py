"""Two databases compared table by table: row counts, a digest of every row, sequences."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import attrs
import psycopg
from psycopg import sql

__all__ = ["DatabaseComparison", "TableComparison", "compare_databases", "table_digests"]


@attrs.frozen
class TableComparison:
    """One table in two databases: its row counts and whether the rows are equal."""

    table: str
    rows_a: int | None
    rows_b: int | None
    same: bool


@attrs.frozen
class DatabaseComparison:
    """Every user table and sequence of two databases, compared."""

    tables: tuple[TableComparison, ...]
    sequences_same: bool

    @property
    def same(self) -> bool:
        """Whether both databases hold the same tables, rows and sequence positions."""
        return self.sequences_same and all(t.same for t in self.tables)

    def differing(self) -> list[str]:
        """The tables that differ."""
        return [t.table for t in self.tables if not t.same]


def table_digests(
    conninfo: str, ignore: Mapping[str, Collection[str]] | None = None
) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent digest of every table, computed by the server.

    ``ignore`` leaves columns out per table. Two databases (or one database at
    two moments) hold the same rows where the digests are equal.
    """
    ignore = ignore or {}
    digests: dict[str, tuple[int, str]] = {}
    with psycopg.connect(conninfo) as connection:
        tables = connection.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2"
        ).fetchall()
        for namespace, name in tables:
            key = name if namespace == "public" else f"{namespace}.{name}"
            dropped = sql.SQL("").join(
                sql.SQL(" - {}").format(sql.Literal(column)) for column in ignore.get(key, ())
            )
            query = sql.SQL(
                "SELECT count(*), coalesce(md5(string_agg(r, E'\\n' ORDER BY r)), '')"
                " FROM (SELECT (to_jsonb(t){})::text AS r FROM {} t) rows"
            ).format(dropped, sql.Identifier(namespace, name))
            row = connection.execute(query).fetchone()
            assert row is not None
            digests[key] = (int(row[0]), str(row[1]))
    return digests


def _sequences(conninfo: str) -> dict[str, Any]:
    with psycopg.connect(conninfo) as connection:
        return {
            f"{schema_name}.{name}": value
            for schema_name, name, value in connection.execute(
                "SELECT schemaname, sequencename, last_value FROM pg_sequences ORDER BY 1, 2"
            )
        }


def compare_databases(
    a: str, b: str, *, ignore_columns: Mapping[str, Collection[str]] | None = None
) -> DatabaseComparison:
    """Compare every table (rows, as a server-side digest) and sequence of two databases.

    ``ignore_columns`` leaves columns out of the comparison per table, such as
    ids that legitimately differ between installs.
    """
    ignore = ignore_columns or {}
    left, right = table_digests(a, ignore), table_digests(b, ignore)
    tables = tuple(
        TableComparison(
            table=name,
            rows_a=left[name][0] if name in left else None,
            rows_b=right[name][0] if name in right else None,
            same=left.get(name) == right.get(name),
        )
        for name in sorted(left.keys() | right.keys())
    )
    return DatabaseComparison(tables=tables, sequences_same=_sequences(a) == _sequences(b))
