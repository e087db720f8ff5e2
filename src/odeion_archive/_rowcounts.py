"""Every table's row count, in one statement: what full_db records and a drill checks.

It lives in the core (not in the full_db component) so that a drill can count
the rows of a restored database without importing any component.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

__all__ = ["TABLES_QUERY", "count_rows"]

#: The tables pg_dump dumps the data of: ordinary tables outside the system schemas,
#: not members of an extension. Keyed ``schema.name``.
TABLES_QUERY = """
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2
"""


def count_rows(connection: psycopg.Connection[Any]) -> dict[str, int]:
    """``{"schema.table": rows}`` of every table pg_dump dumps, in one statement."""
    tables = [(str(s), str(n)) for s, n in connection.execute(TABLES_QUERY).fetchall()]
    if not tables:
        return {}
    query = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT {}, count(*) FROM {}").format(
            sql.Literal(f"{schema}.{name}"), sql.Identifier(schema, name)
        )
        for schema, name in tables
    )
    return {str(key): int(count) for key, count in connection.execute(query).fetchall()}
