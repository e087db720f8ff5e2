"""Rows of a JSON Lines member into a temporary table, checked in full.

Every archive line is parsed strictly in Python (duplicate keys, NaN and deep
nesting refused, fields type-checked) and then handed to PostgreSQL unchanged
with ``COPY``: PostgreSQL parses it again as ``jsonb``, so JSON numbers inside
preferences keep their exact value. Shared by both JSON components.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any, NoReturn

import psycopg
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

from odeion_archive import _converter, _safejson
from odeion_archive.components._jsonfields import (
    ANY,
    BOOL,
    COUNT,
    ID,
    OBJECT,
    OPT_POSITIVE,
    OPT_TEXT,
    ROLE,
    TEXT,
    Field,
    RowSpec,
)
from odeion_archive.components._jsonl import BATCH_BYTES, MAX_LINE_BYTES
from odeion_archive.errors import CorruptArchiveError
from odeion_archive.interfaces import PlanContext

__all__ = [
    "ANY",
    "BOOL",
    "COUNT",
    "ID",
    "MAX_RESTORED_ID",
    "OBJECT",
    "OPT_POSITIVE",
    "OPT_TEXT",
    "ROLE",
    "TEXT",
    "Cursor",
    "Field",
    "Progress",
    "RowSpec",
    "analyze",
    "archive_data",
    "create_temp",
    "declared_rows",
    "drop_temp",
    "duplicates",
    "load_member",
    "require_unique",
    "validate_raw",
]


#: The highest id a restored row keeps. Ids above it get a new id: an archive must
#: not move an id sequence towards its end (the server could create no more rows).
MAX_RESTORED_ID = 2**53


Cursor = psycopg.Cursor[tuple[Any, ...]]


Progress = Callable[[str, int, int | None], None]


def validate_raw(cur: Cursor, table: str, spec: RowSpec, path: str) -> None:
    """Raise :class:`CorruptArchiveError` for the first loaded line that breaks ``spec``."""
    cur.execute(
        sql.SQL(
            "SELECT ord, problem FROM (SELECT ord, {} AS problem FROM {}) AS p "
            "WHERE problem IS NOT NULL ORDER BY ord LIMIT 1"
        ).format(spec.problem(), sql.Identifier(table))
    )
    row = cur.fetchone()
    if row is not None:
        raise CorruptArchiveError(
            f"{path} line {row[0]}: the row {row[1]}; the archive is damaged or was edited, "
            "use another archive"
        )


def _chunks(stream: IO[bytes], what: str) -> Iterator[list[bytes]]:
    """The lines of a member, newline removed, in lists of about :data:`BATCH_BYTES`.

    Only whole lines are handed out; a line longer than :data:`MAX_LINE_BYTES`
    is refused before it is handed out, as soon as that many of its bytes are read.
    """
    number = 0
    pending = bytearray()
    while data := stream.read(BATCH_BYTES):
        cut = data.rfind(b"\n")
        if cut < 0:
            pending += data
            if len(pending) > MAX_LINE_BYTES:
                _too_long(what, number + 1)
            continue
        pending += data[:cut]
        lines = bytes(pending).split(b"\n")
        pending = bytearray(data[cut + 1 :])
        if max(map(len, lines)) > MAX_LINE_BYTES:
            _too_long(
                what, number + 1 + next(i for i, x in enumerate(lines) if len(x) > MAX_LINE_BYTES)
            )
        number += len(lines)
        yield lines
    if pending:
        yield [bytes(pending)]


def _too_long(what: str, number: int) -> NoReturn:
    raise CorruptArchiveError(
        f"{what}: line {number} is longer than {MAX_LINE_BYTES} bytes; the archive "
        "is damaged or not from odeion-archive, use another archive"
    )


def _copy_text(data: bytes) -> bytes:
    """Lines of JSON as rows of COPY's text format: one field each, newlines kept."""
    return data.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\r", b"\\r")


@contextmanager
def archive_data(what: str) -> Iterator[None]:
    """Turn PostgreSQL's refusal of a value from the archive into an archive error."""
    try:
        yield
    except psycopg.errors.DataError as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CorruptArchiveError(
            f"{what}: PostgreSQL refuses a value of the archive ({detail}); the archive is "
            "damaged or was edited, use another archive"
        ) from None


def create_temp(
    cur: Cursor,
    name: str,
    *,
    columns: sql.Composable | None = None,
    query: sql.Composable | None = None,
) -> None:
    """(Re)create the temporary table ``name`` from ``columns`` or from a ``query``.

    The table disappears with the transaction at the latest.
    """
    ident = sql.Identifier(name)
    cur.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(ident))
    if query is not None:
        cur.execute(sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS {}").format(ident, query))
    else:
        cur.execute(sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(ident, columns))


def drop_temp(cur: Cursor, *names: str) -> None:
    """Drop temporary tables of this module."""
    for name in names:
        cur.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(sql.Identifier(name)))


def declared_rows(context: PlanContext, table: str, path: str) -> int:
    """The number of rows of ``table`` the manifest declares for the member ``path``."""
    facts = _converter.component_facts(context.entry)
    rows = facts.rows if isinstance(facts, _converter.JsonComponentFacts) else None
    if rows is None or table not in rows:
        raise CorruptArchiveError(
            f"{path}: the manifest records no row count for {table!r} (facts 'rows'); the "
            "archive is incomplete or not from odeion-archive, use another archive"
        )
    return rows[table]


def _copy_lines(
    copy: psycopg.Copy,
    stream: IO[bytes],
    path: str,
    expected: int,
    spec: RowSpec,
    on_batch: Callable[[int], None],
) -> tuple[int, bool]:
    """Parse the lines of ``stream`` strictly and write them to ``copy``, one per row.

    Every line is a row: a blank line is invalid data, and reading stops at the
    first line beyond ``expected`` (the rows the manifest declares). Returns the
    number of rows and whether Python vouched for every line's fields
    (:meth:`RowSpec.surely_fits`). ``on_batch`` is called with the rows written
    so far after every batch.
    """
    rows = 0
    sure = True
    parse = _safejson.loads_many
    for lines in _chunks(stream, path):
        for line in lines:
            rows += 1
            if not line.strip():
                raise CorruptArchiveError(
                    f"{path}: line {rows} is blank; every line of a JSON Lines member is one "
                    "row, so the archive is damaged or was edited, use another archive"
                )
            if rows > expected:
                raise CorruptArchiveError(
                    f"{path}: holds more than the {expected} rows the manifest records (line "
                    f"{rows} is one too many); the archive is damaged or was edited, use another "
                    "archive"
                )
            value = parse(line, what=f"{path} line {rows}")
            if type(value) is not dict:
                raise CorruptArchiveError(
                    f"{path} line {rows}: not a JSON object; the archive is damaged, use "
                    "another archive"
                )
            if sure:
                sure = spec.surely_fits(value)
        copy.write(_copy_text(b"\n".join([*lines, b""])))
        on_batch(rows)
    if rows != expected:
        raise CorruptArchiveError(
            f"{path}: holds {rows} rows but the manifest records {expected}; the "
            "archive is incomplete or was edited, use another archive"
        )
    return rows, sure


def load_member(
    context: PlanContext,
    path: str,
    table: str,
    spec: RowSpec,
    progress: Progress | None = None,
    *,
    rows_of: str,
) -> int:
    """Parse the JSON Lines member ``path`` strictly into ``table (ord, doc jsonb)``.

    ``ord`` is the line number. The member must hold exactly the rows the
    manifest records for the table ``rows_of``; reading stops at the first line
    beyond them. The fields are checked against ``spec`` in Python, and in SQL
    (:func:`validate_raw`) unless Python vouched for every line. Returns the
    number of rows. Raises :class:`ArchiveInvalidError` for the first line that
    is not valid.
    """
    expected = declared_rows(context, rows_of, path)
    cancel = getattr(context, "cancel", None)

    def on_batch(rows: int) -> None:
        if cancel is not None:
            cancel.raise_if_cancelled()
        if progress is not None:
            progress(f"read {path}", rows, expected)

    with context.connection.cursor() as cur:
        # ord, the line number: COPY adds the rows in the order of the lines.
        create_temp(
            cur,
            table,
            columns=sql.SQL("ord bigint GENERATED ALWAYS AS IDENTITY, doc jsonb NOT NULL"),
        )
        statement = sql.SQL("COPY {} (doc) FROM STDIN").format(sql.Identifier(table))
        with (
            archive_data(path),
            context.open_member(path) as stream,
            cur.copy(statement, writer=QueuedLibpqWriter(cur)) as copy,
        ):
            rows, sure = _copy_lines(copy, stream, path, expected, spec, on_batch)
        # The row count, for the planner's estimates of the joins on this table.
        analyze(cur, table, "ord", target=1)
        if not sure:
            validate_raw(cur, table, spec, path)
    if progress is not None:
        progress(f"read {path}", rows, rows)
    return rows


def analyze(cur: Cursor, table: str, *columns: str, target: int) -> None:
    """``ANALYZE`` the ``columns`` of a temporary table from a sample of ``300 * target`` rows.

    The joins on these tables need the row count and whether a key repeats, not a
    histogram: a target of 1 samples 300 rows where the default (100) samples 30,000,
    and finds the row count as well (it is extrapolated from the pages sampled).
    """
    ident = sql.Identifier(table)
    cur.execute(
        sql.SQL("ALTER TABLE {} {}").format(
            ident,
            sql.SQL(", ").join(
                sql.SQL("ALTER COLUMN {} SET STATISTICS {}").format(
                    sql.Identifier(column), sql.Literal(target)
                )
                for column in columns
            ),
        )
    )
    cur.execute(
        sql.SQL("ANALYZE {} ({})").format(ident, sql.SQL(", ").join(map(sql.Identifier, columns)))
    )


def duplicates(cur: Cursor, table: str, key: str, shown: str, where: str = "true") -> list[str]:
    """Up to three examples of keys that occur more than once in a temporary table."""
    cur.execute(
        sql.SQL(
            "SELECT min({shown}) FROM {table} WHERE {where} GROUP BY {key} "
            "HAVING count(*) > 1 ORDER BY 1 LIMIT 3"
        ).format(
            shown=sql.SQL(shown),
            table=sql.Identifier(table),
            where=sql.SQL(where),
            key=sql.SQL(key),
        )
    )
    return [str(row[0]) for row in cur.fetchall()]


def require_unique(
    cur: Cursor, table: str, key: str, shown: str, what: str, where: str = "true"
) -> None:
    """Raise :class:`CorruptArchiveError` if ``key`` repeats in the loaded rows."""
    found = duplicates(cur, table, key, shown, where)
    if found:
        raise CorruptArchiveError(
            f"the archive holds {what} more than once ({', '.join(map(repr, found))}); a "
            "database cannot hold such rows, so the archive is damaged or was edited, use "
            "another archive"
        )
