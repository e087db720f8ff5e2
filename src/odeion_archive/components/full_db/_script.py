"""Reading pg_restore's SQL script and sending it to the server, statement by statement.

:class:`ScriptReader` splits the script pg_restore writes into statements, has
each judged by the SQL guard (:mod:`._sqlguard`) and sent as one statement of
the simple protocol, and streams ``COPY`` data through ``cursor.copy()``;
``_Sink`` is the session it writes to, checked after every statement.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

import psycopg
from pglast.parser import ParseError

from odeion_archive.components.full_db import _sqlguard
from odeion_archive.errors import (
    UnsafeArchiveError,
)

__all__ = ["MAX_STATEMENT", "ScriptReader"]

#: Candidates for the end of COPY data looked at one by one before a plain search.
_CANDIDATES: Final = 64

#: The longest statement accepted (a function body, a long comment).
MAX_STATEMENT: Final = 64 * 1024 * 1024
#: pg_restore's own psql meta-commands, the only lines of its script not sent to the server.
_META_ALLOWED: Final = re.compile(rb"\\(?:un)?restrict[ \t]+[A-Za-z0-9]+[ \t]*\r?\n\Z")
_COPY_LINE: Final = re.compile(rb"\s*COPY\s.*\sFROM\s+stdin\s*;\s*\Z", re.IGNORECASE | re.DOTALL)
#: How many times a statement may be parsed at a COPY-looking line before its
#: growth alone decides (a hostile script must not make parsing quadratic).
_FORCED_ATTEMPTS: Final = 8
#: What the server must report for these while the dump's SQL runs.
_READING: Final = {"standard_conforming_strings": "on", "client_encoding": "UTF8"}
# The shared catalogs this transaction changed; pg_shdepend only records who owns
# the objects restored.
_SHARED_CHANGES: Final = """
SELECT c.relname FROM pg_catalog.pg_stat_xact_sys_tables s
JOIN pg_catalog.pg_class c ON c.oid = s.relid
WHERE c.relisshared AND c.relname <> 'pg_shdepend'
  AND s.n_tup_ins + s.n_tup_upd + s.n_tup_del > 0
ORDER BY 1
"""


class _Sink:
    """Where the script's statements and COPY data go: the restore session."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        self._cursor = conn.cursor()
        self._copy: Any = None
        self._copy_context: Any = None
        self._superuser = conn.info.parameter_status("is_superuser")

    def execute(self, text: str) -> None:
        # binary=True makes psycopg use the extended query protocol, in which the
        # server refuses a message that holds more than one statement.
        self._cursor.execute(text.encode(), binary=True)
        self.check_session()

    def begin_copy(self, text: str) -> None:
        self._copy_context = self._cursor.copy(text.encode())
        self._copy = self._copy_context.__enter__()

    def copy_data(self, data: bytes | memoryview) -> None:
        self._copy.write(data)

    def end_copy(self) -> None:
        context, self._copy, self._copy_context = self._copy_context, None, None
        context.__exit__(None, None, None)
        self.check_session()

    def check_shared(self) -> None:
        """Stop if the transaction changed anything the database shares with the cluster.

        A role may always change itself and its own database (its password,
        settings, the database's connection limit and privileges...), and
        privilege cannot stop a dump's functions from doing so as the owner.
        Those changes land in the shared catalogs; the server counts this
        transaction's changes to every catalog, so any is found before COMMIT.
        """
        changed = [str(row[0]) for row in self._conn.execute(_SHARED_CHANGES)]
        if changed:
            raise UnsafeArchiveError(
                "the database dump changed what lies outside the database "
                f"({', '.join(changed)}: roles, their passwords or settings, or the "
                "database's own settings or privileges) while it was restored; the restore "
                "was stopped and the database left as it was: the dump is hostile"
            )

    def check_session(self) -> None:
        """Stop if anything changed how the server reads SQL text, or who runs it."""
        info = self._conn.info
        for name, expected in _READING.items():
            value = info.parameter_status(name)
            if value is not None and value.upper().replace("-", "") != expected.upper():
                raise UnsafeArchiveError(
                    f"the database dump changed {name} to {value!r} while it was restored "
                    "(a function of the dump did); the restore was stopped and the database "
                    "left as it was: the dump is hostile, use another archive"
                )
        if info.parameter_status("is_superuser") != self._superuser:
            raise UnsafeArchiveError(
                "the database dump changed the session's role while it was restored; the "
                "restore was stopped and the database left as it was: the dump is hostile"
            )


class ScriptReader:
    """Reads the SQL script that pg_restore writes and hands it to the server.

    Lines are gathered into statements; a statement is parsed (and judged)
    when a line ends with ``;``. Parsing again after a failed attempt waits
    until the statement has doubled, so a hostile script costs linear time.
    ``COPY ... FROM stdin`` switches to data, which goes to the server as it
    arrives, up to the line ``\\.``.
    """

    def __init__(
        self,
        sink: _Sink,
        *,
        allow_unsafe: bool = False,
        on_statement: Callable[[_sqlguard.Statement], None] | None = None,
        on_data: Callable[[int], None] | None = None,
    ) -> None:
        self._sink = sink
        self._allow_unsafe = allow_unsafe
        self._on_statement = on_statement
        self._on_data = on_data
        self._buffer = bytearray()
        self._sql = bytearray()
        self._has_code = False
        self._next_try = 0
        self._forced = 0
        self._error: str | None = None
        self._copying = False
        self._line_start = True
        self._line_no = 0

    def feed(self, data: bytes) -> None:
        """Take the next bytes of pg_restore's output."""
        self._buffer += data
        self._run(final=False)

    def finish(self) -> None:
        """The script ended: it must end between statements."""
        self._run(final=True)
        if self._copying:
            raise self._refuse("the SQL of the database dump ends inside COPY data", True)
        if self._has_code:
            # pg_restore ends every statement with ';' at the end of a line.
            detail = (
                f" that PostgreSQL's parser does not accept ({self._error})" if self._error else ""
            )
            raise self._refuse(
                f"the SQL of the database dump ends inside a statement{detail}", True
            )

    # -- lines ---------------------------------------------------------------

    def _run(self, *, final: bool) -> None:
        buffer = self._buffer
        pos = 0
        while pos < len(buffer):
            if self._copying:
                pos, ended = self._copy_data(buffer, pos, final=final)
                if not ended:
                    break
                continue
            end = buffer.find(b"\n", pos)
            if end < 0:
                if not final:
                    break
                end = len(buffer) - 1
            self._line(bytes(buffer[pos : end + 1]))
            pos = end + 1
        del buffer[:pos]

    def _line(self, line: bytes) -> None:
        self._line_no += 1
        if not self._has_code and line.startswith(b"\\"):
            if not _META_ALLOWED.match(line):
                raise self._refuse("a psql meta-command", True)
            self._sql.clear()
            return
        self._sql += line
        stripped = line.strip()
        if stripped and not (not self._has_code and stripped.startswith(b"--")):
            self._has_code = True
        if len(self._sql) > MAX_STATEMENT:
            raise self._refuse(f"a statement longer than {MAX_STATEMENT // 2**20} MiB", True)
        if not self._has_code or not stripped.endswith(b";"):
            return
        if _COPY_LINE.match(line) and self._forced < _FORCED_ATTEMPTS:
            self._forced += 1
            self._attempt(forced=True)
        elif len(self._sql) >= self._next_try:
            self._attempt(forced=False)

    def _attempt(self, *, forced: bool) -> None:
        try:
            text = self._sql.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self._refuse(f"SQL that is not UTF-8 text ({exc})", True) from exc
        try:
            statements = _sqlguard.parse(text)
        except _sqlguard.UnjudgeableError as exc:
            raise self._refuse(str(exc), True) from exc
        except ParseError as exc:
            self._error = str(exc)
            if not forced:
                self._next_try = 2 * len(self._sql)
            return
        self._sql.clear()
        self._has_code = False
        self._next_try = 0
        self._forced = 0
        self._error = None
        for index, statement in enumerate(statements):  # judge all before running any
            refusal = statement.refusal
            if refusal is not None and (refusal.always or not self._allow_unsafe):
                raise self._refuse(refusal.reason, refusal.always, statement.text)
            if statement.copy_from_stdin and index != len(statements) - 1:
                raise self._refuse("a COPY followed by another statement", True, statement.text)
        for statement in statements:
            self._run_statement(statement)

    def _run_statement(self, statement: _sqlguard.Statement) -> None:
        if self._on_statement is not None:
            self._on_statement(statement)
        if statement.copy_from_stdin:
            self._sink.begin_copy(statement.text)
            self._copying = True
            self._line_start = True
        else:
            self._sink.execute(statement.text)

    # -- COPY data -------------------------------------------------------------

    def _copy_data(self, buffer: bytearray, pos: int, *, final: bool) -> tuple[int, bool]:
        """Pass data lines on until the line ``\\.``; return where reading stopped and if it ended."""
        while pos < len(buffer):
            if self._line_start:
                head = bytes(buffer[pos : pos + 4])
                for terminator in (b"\\.\n", b"\\.\r\n"):
                    if head.startswith(terminator) or (final and head == terminator.rstrip()):
                        self._sink.end_copy()
                        self._copying = False
                        self._line_no += 1
                        return min(pos + len(terminator), len(buffer)), True
                if not final and (b"\\.\r\n".startswith(head) or b"\\.\n".startswith(head)):
                    return pos, False  # the line may still become the terminator
            stop = _terminator_line(buffer, pos)
            if stop < 0:
                last = buffer.rfind(b"\n", pos)
                stop = len(buffer) - 1 if last < 0 else last
            self._send(buffer, pos, stop + 1)
            self._line_start = buffer[stop : stop + 1] == b"\n"
            pos = stop + 1
        return pos, False

    def _send(self, buffer: bytearray, start: int, end: int) -> None:
        """Send ``buffer[start:end]`` as COPY data, without copying it on the way."""
        self._line_no += buffer.count(b"\n", start, end)
        # The view is released before the buffer changes; psycopg keeps no reference
        # to it (libpq copies the data), or releasing it fails loudly.
        with memoryview(buffer) as view, view[start:end] as data:
            self._sink.copy_data(data)
        if self._on_data is not None:
            self._on_data(end - start)

    def _refuse(self, what: str, always: bool, text: str | None = None) -> UnsafeArchiveError:
        excerpt = " ".join(
            (text if text is not None else self._sql.decode("utf-8", "replace")).split()
        )[:160]
        hint = (
            "odeion-archive never restores this: the dump is damaged or hostile"
            if always
            else "Odeion's schema never uses this; restore the dump only if you trust its "
            "origin, by allowing unsafe dumps explicitly"
        )
        return UnsafeArchiveError(
            f"the database dump holds {what} (near line {self._line_no}: {excerpt!r}); {hint}; "
            "the database was left as it was"
        )


def _terminator_line(buffer: bytearray, pos: int) -> int:
    """Where in ``buffer[pos:]`` a line starting ``\\.`` begins (its newline), or -1.

    Looks for the rarer backslash first (``find`` skips through data with
    ``memchr``), then at the bytes around it; data full of backslashes
    falls back to a search for the three bytes, so the time stays linear
    whatever the data. A backslash ending the buffer after a newline counts:
    the caller waits for the rest of the line.
    """
    found = buffer.find(b"\\", pos + 1)
    for _ in range(_CANDIDATES):
        if found < 0:
            return -1
        if buffer[found - 1] == 0x0A and (found + 1 == len(buffer) or buffer[found + 1] == 0x2E):
            return found - 1
        found = buffer.find(b"\\", found + 1)
    return -1 if found < 0 else buffer.find(b"\n\\.", found - 1)
