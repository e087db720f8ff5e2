"""JSON Lines members, streamed out of PostgreSQL.

Export runs ``COPY (SELECT <json>) TO STDOUT`` so PostgreSQL builds the JSON and
Python only passes bytes along: rows never sit in memory all at once. COPY's
text format escapes a backslash as two; JSON built by PostgreSQL holds no raw
tab, newline or carriage return (they are escaped inside JSON strings), so undoing
that one escape gives back the JSON text exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from psycopg import sql

__all__ = ["BATCH_BYTES", "MAX_LINE_BYTES", "export_lines"]

BATCH_BYTES = 1024 * 1024
#: Longest JSON line accepted from an archive.
MAX_LINE_BYTES = 16 * 1024 * 1024


def export_lines(
    connection: psycopg.Connection[Any],
    query: sql.Composable,
    on_rows: Callable[[int], None],
) -> Iterator[bytes]:
    """Stream the single JSON column of ``query`` as JSON Lines, in ~1 MiB chunks.

    ``on_rows`` is called with the running row count after every chunk.
    """
    statement = sql.SQL("COPY ({}) TO STDOUT").format(query)
    rows = 0
    pending = bytearray()
    carry = b""
    with connection.cursor() as cursor, cursor.copy(statement) as copy:
        for data in copy:
            chunk = carry + bytes(data)
            # A chunk that ends inside a doubled backslash keeps its last byte back.
            trailing = len(chunk) - len(chunk.rstrip(b"\\"))
            if trailing % 2:
                chunk, carry = chunk[:-1], b"\\"
            else:
                carry = b""
            pending += chunk.replace(b"\\\\", b"\\")
            if len(pending) >= BATCH_BYTES:
                rows += pending.count(b"\n")
                on_rows(rows)
                yield bytes(pending)
                pending.clear()
    pending += carry
    if pending:
        rows += pending.count(b"\n")
        yield bytes(pending)
    on_rows(rows)
