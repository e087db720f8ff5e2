"""Replace a whole database with a custom-format dump, atomically.

The dump arrives as an iterator of byte chunks (out of an archive; it is never
written to disk as a whole). ``pg_restore`` turns it into SQL on its standard
output, and ``psql`` runs that SQL in one transaction::

    dump chunks --(writer thread)--> pg_restore --(pump + guard)--> psql --> server

Before the SQL of the dump, psql receives ``BEGIN`` and a block that drops every
non-system schema of the target (objects created after the backup go with
them) and re-creates ``public`` with its owner and privileges. After it, and
only once pg_restore exited 0, the dump stream ended cleanly and the caller's
final check passed, psql receives the caller's extra statements and
``COMMIT``. If anything fails, the operation is cancelled or this process dies
(even by ``kill -9``), psql's input ends without ``COMMIT`` and the server
rolls the transaction back: the database stays as it was.

While pumping, :class:`SqlGuard` follows the SQL the way psql splits it (quotes,
dollar quotes, comments, parentheses, ``BEGIN ATOMIC`` bodies) and skips COPY
data with ``bytes.find``. It always refuses what would break the single
transaction or escape psql (transaction control, psql meta-commands other than
pg_restore's own ``\\restrict``/``\\unrestrict``, a stream that ends inside a
statement), and refuses unless allowed statements Odeion's schema never needs:
COPY to or from a program or a server file, ALTER SYSTEM, roles, event
triggers, languages, foreign data wrappers, servers and user mappings,
subscriptions, databases and tablespaces, untrusted extensions, functions in
languages other than sql and plpgsql, privilege changes, ``DO``/``CALL`` and
``SELECT`` of functions other than the ones pg_restore itself calls.

The guard is defence in depth, not a sandbox: functions from the dump may run
during the restore (in index expressions, constraints, materialized views).
Restore dumps of unknown origin as the database owner, not as a superuser.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Final

from odeion_archive._pgdump import TRUSTED_EXTENSIONS
from odeion_archive.errors import (
    ArchiveError,
    CancelledError,
    RestoreFailedError,
    UnsafeArchiveError,
)
from odeion_archive.events import CancelToken

__all__ = ["SqlGuard", "replace_database"]

_PIPE_CHUNK: Final = 1024 * 1024
_STDERR_LIMIT: Final = 16 * 1024
_MAX_LINE: Final = 64 * 1024 * 1024
_HEAD_TOKENS: Final = 48
_TOKEN_TEXT: Final = 200

# -- the guard ------------------------------------------------------------------

_TOKEN = re.compile(
    rb"""
    (?P<ws>[ \t\n\r\f\v]+)
    | (?P<ident>[A-Za-z_\x80-\xff][A-Za-z0-9_$\x80-\xff]*)
    | (?P<num>[0-9]+)
    | (?P<dollar>\$(?:[A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*)?\$)
    | (?P<lc>--)
    | (?P<bc>/\*)
    | (?P<sq>')
    | (?P<dq>")
    | (?P<semi>;)
    | (?P<lp>\()
    | (?P<rp>\))
    | (?P<bs>\\)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_META_ALLOWED = re.compile(rb"\\(?:un)?restrict[ \t]+[A-Za-z0-9]+[ \t]*\r?\n\Z")
_BLOCK_COMMENT = re.compile(rb"/\*|\*/")
_ESCAPE_STRING_END = re.compile(rb"\\.|'", re.DOTALL)

_TRANSACTION_WORDS: Final = frozenset(
    {"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE"}
)
_SAFE_LANGUAGES: Final = frozenset({"SQL", "PLPGSQL"})
#: Functions that pg_restore's own SQL calls with SELECT.
_RESTORE_FUNCTIONS: Final = frozenset(
    {
        "SET_CONFIG",
        "SETVAL",
        "LO_CREATE",
        "LO_OPEN",
        "LOWRITE",
        "LO_CLOSE",
        "LO_UNLINK",
        "PG_RESTORE_RELATION_STATS",
        "PG_RESTORE_ATTRIBUTE_STATS",
        "PG_CLEAR_RELATION_STATS",
        "PG_CLEAR_ATTRIBUTE_STATS",
    }
)
_UNSAFE_CREATE: Final = {
    ("EVENT", "TRIGGER"): "an event trigger",
    ("FOREIGN", "DATA"): "a foreign data wrapper",
    ("SERVER",): "a foreign server",
    ("USER", "MAPPING"): "a user mapping",
    ("FOREIGN", "TABLE"): "a foreign table",
    ("SUBSCRIPTION",): "a subscription",
    ("DATABASE",): "a database",
    ("TABLESPACE",): "a tablespace",
    ("ACCESS", "METHOD"): "an access method",
    ("TEXT", "SEARCH", "PARSER"): "a text search parser",
    ("TEXT", "SEARCH", "TEMPLATE"): "a text search template",
}


class _Piece:
    """What the guard keeps of one statement as the server will see it."""

    __slots__ = ("head", "languages", "tail")

    def __init__(self) -> None:
        self.head: list[str] = []
        self.tail: collections.deque[str] = collections.deque(maxlen=3)
        self.languages: list[str] = []

    def add(self, token: str) -> None:
        if len(self.head) < _HEAD_TOKENS:
            self.head.append(token)
        self.tail.append(token)


def _words(piece: _Piece) -> list[str]:
    return piece.head


def _starts(words: Sequence[str], *prefix: str) -> bool:
    return tuple(words[: len(prefix)]) == prefix


def _classify(piece: _Piece) -> tuple[str, bool] | None:
    """Why a statement is refused and whether allowing unsafe dumps may pass it."""
    w = _words(piece)
    if not w:
        return None
    first = w[0]
    if first in _TRANSACTION_WORDS or _starts(w, "PREPARE", "TRANSACTION"):
        return "transaction control, which would break the restore's single transaction", True
    if first == "COPY":
        if list(piece.tail)[-2:] == ["FROM", "STDIN"]:
            return None
        return "COPY other than COPY ... FROM stdin (a program or a server file)", False
    if first in ("SET", "RESET"):
        rest = w[2:] if len(w) > 1 and w[1] in ("SESSION", "LOCAL") else w[1:]
        if rest[:1] == ["STANDARD_CONFORMING_STRINGS"]:
            value = [t for t in rest[1:] if t not in ("=", "TO")][:1]
            if value not in (["ON"], ["'on'"], ["TRUE"], ["'true'"]):
                return "standard_conforming_strings other than on", True
            return None
        if rest[:1] in (["ROLE"], ["AUTHORIZATION"]) or rest[:2] == ["SESSION", "AUTHORIZATION"]:
            return "a change of the current role", False
        return None
    if _starts(w, "ALTER", "SYSTEM"):
        return "ALTER SYSTEM", False
    if first == "LOAD":
        return "LOAD of a server library", False
    if first in ("DO", "CALL"):
        return f"{first}, which runs code during the restore", False
    if first in ("GRANT", "REVOKE") or _starts(w, "ALTER", "DEFAULT", "PRIVILEGES"):
        return "a privilege change (the restore runs without privileges)", False
    if first == "IMPORT":
        return "IMPORT FOREIGN SCHEMA", False
    if first in ("CREATE", "ALTER", "DROP"):
        rest = w[1:]
        if rest[:2] == ["OR", "REPLACE"]:
            rest = rest[2:]
        if rest[:1] in (["ROLE"], ["GROUP"]) or (rest[:1] == ["USER"] and rest[1:2] != ["MAPPING"]):
            return "a role change", False
        for prefix, what in _UNSAFE_CREATE.items():
            if tuple(rest[: len(prefix)]) == prefix:
                return what, False
        kind = [t for t in rest[:3] if t not in ("TRUSTED", "PROCEDURAL")][:1]
        if kind == ["LANGUAGE"]:
            return "a procedural language", False
        if first == "CREATE" and rest[:1] == ["EXTENSION"]:
            names = [t for t in rest[1:5] if t not in ("IF", "NOT", "EXISTS")][:1]
            name = names[0].strip('"').lower() if names else ""
            if name not in TRUSTED_EXTENSIONS:
                return f"the extension {name!r}, which is not a trusted extension", False
        if rest[:1] in (["FUNCTION"], ["PROCEDURE"], ["AGGREGATE"]):
            unsafe = [lang for lang in piece.languages if lang not in _SAFE_LANGUAGES]
            if unsafe:
                return f"a function in the language {unsafe[0].lower()}", False
        return None
    if first == "SELECT":
        rest = w[1:]
        if rest[:2] == ["*", "FROM"]:
            rest = rest[2:]
        if len(rest) >= 4 and rest[:2] == ["PG_CATALOG", "."] and rest[3] == "(":
            if rest[2] in _RESTORE_FUNCTIONS:
                return None
            return f"SELECT of the function {rest[2].lower()}", False
        return "a SELECT that pg_restore does not write", False
    return None


class SqlGuard:
    """Follows the SQL that pg_restore writes and refuses forbidden statements.

    Feed it the stream with :meth:`feed`; call :meth:`finish` at its end.
    Both raise :class:`~odeion_archive.errors.UnsafeArchiveError` naming the
    statement. ``allow_unsafe`` passes the statements Odeion's schema never
    needs, but never those that would break the single transaction or run psql
    meta-commands.
    """

    def __init__(self, *, allow_unsafe: bool = False) -> None:
        self._allow_unsafe = allow_unsafe
        self._buffer = bytearray()
        self._line_no = 1
        self._state = "normal"  # normal, sq, esq, dq, dollar, bc, copy, after_copy
        self._dollar_tag = b""
        self._comment_depth = 0
        self._copy_line_start = True
        self._refused: str | None = None
        self._string = bytearray()
        self._new_statement()

    # statement state ------------------------------------------------------

    def _new_statement(self) -> None:
        self._paren = 0
        self._psql_begin = 0
        self._idents = 0
        self._marks: list[str] = []
        self._routine = False
        self._server_depth = 0
        self._pending_begin = False
        self._after_language = False
        self._piece = _Piece()
        self._pieces = 0
        self._statement_empty = True
        self._copy_pending = False

    def _refuse(self, what: str, always: bool) -> None:
        if always or not self._allow_unsafe:
            excerpt = " ".join(self._piece.head[:12])
            self._refused = (
                f"the database dump holds {what} (near line {self._line_no}: {excerpt[:160]!r})"
            )
            hint = (
                "; odeion-archive never restores this, the dump is damaged or hostile"
                if always
                else "; Odeion's schema never uses this, restore the dump only if you trust its "
                "origin, by allowing unsafe dumps explicitly"
            )
            raise UnsafeArchiveError(self._refused + hint)

    def _token(self, token: str) -> None:
        self._statement_empty = False
        if self._after_language:
            self._after_language = False
            if self._paren == 0 and self._server_depth == 0:
                self._piece.languages.append(token.strip('"').upper())
        self._piece.add(token)

    def _ident(self, raw: bytes) -> None:
        upper = raw.decode("utf-8", "replace").upper()
        if self._pending_begin:
            self._pending_begin = False
            if upper == "ATOMIC" and self._server_depth == 0:
                self._server_depth = 1
                self._token(upper)
                return
        self._token(upper)
        if upper == "LANGUAGE":
            self._after_language = True
        # psql's heuristic for CREATE [OR REPLACE] FUNCTION|PROCEDURE ... BEGIN ... END
        if self._idents < 4:
            letter = (
                upper[0].lower()
                if upper in ("CREATE", "FUNCTION", "PROCEDURE", "OR", "REPLACE")
                else ""
            )
            self._marks.append(letter)
            marks = self._marks + [""] * 4
            self._routine = marks[0] == "c" and (
                marks[1] in ("f", "p") or (marks[1:3] == ["o", "r"] and marks[3] in ("f", "p"))
            )
        self._idents += 1
        if upper == "CASE" and self._server_depth > 0:
            self._server_depth += 1
        elif upper == "END" and self._server_depth > 0:
            self._server_depth -= 1
        if self._routine and self._paren == 0:
            if upper == "BEGIN":
                self._psql_begin += 1
                self._pending_begin = True
            elif upper == "CASE" and self._psql_begin >= 1:
                self._psql_begin += 1
            elif upper == "END" and self._psql_begin > 0:
                self._psql_begin -= 1

    def _semicolon(self) -> None:
        if self._paren > 0:
            self._token(";")
            return
        if self._server_depth > 0:
            if self._psql_begin == 0:
                self._refuse("a routine body that psql and the server would end apart", True)
            self._token(";")
            return
        self._pieces += 1
        verdict = _classify(self._piece)
        if verdict is not None:
            self._refuse(*verdict)
        is_copy = self._piece.head[:1] == ["COPY"] and list(self._piece.tail)[-2:] == [
            "FROM",
            "STDIN",
        ]
        if self._psql_begin > 0:
            self._refuse("statements that psql and the server would split apart", True)
        if is_copy and self._pieces != 1:
            self._refuse("a COPY hidden inside another statement", True)
        self._new_statement()
        if is_copy:
            self._state = "after_copy"

    # lexing ---------------------------------------------------------------

    def feed(self, data: bytes) -> bytes:
        """Inspect the next bytes of the stream; return those inspected so far.

        Bytes are returned (to pass on to psql) only once judged: the end of
        an unfinished line is held back until the rest of the line arrives.
        """
        if self._refused is not None:
            raise UnsafeArchiveError(self._refused)
        self._buffer += data
        return self._run(final=False)

    def finish(self) -> bytes:
        """Check that the stream ended between statements; return the bytes held back."""
        if self._refused is not None:
            raise UnsafeArchiveError(self._refused)
        rest = self._run(final=True)
        if self._state != "normal" or not self._statement_empty or self._buffer.strip():
            where = {
                "copy": "inside COPY data",
                "after_copy": "right after a COPY statement",
                "normal": "inside a statement",
            }.get(self._state, "inside a quoted string or comment")
            self._refused = f"the SQL of the database dump ends {where} (line {self._line_no})"
            raise UnsafeArchiveError(
                self._refused + "; the dump is truncated or damaged, use another archive"
            )
        return rest

    def _run(self, *, final: bool) -> bytes:
        data = bytes(self._buffer)
        pos = 0
        while True:
            if self._state == "copy":
                pos, done = self._scan_copy(data, pos, final=final)
                if not done:
                    break
                continue
            # Everything but COPY data is lexed by whole lines.
            limit = len(data) if final else data.rfind(b"\n", pos) + 1
            if limit <= pos:
                if len(data) - pos > _MAX_LINE:
                    self._refused = f"a line longer than {_MAX_LINE} bytes in the database dump"
                    raise UnsafeArchiveError(self._refused + "; the dump is damaged or hostile")
                break
            pos = self._lex(data, pos, limit)
            if self._state != "copy":
                break
        self._line_no += data.count(b"\n", 0, pos)
        del self._buffer[:pos]
        return data[:pos]

    def _scan_copy(self, data: bytes, pos: int, *, final: bool) -> tuple[int, bool]:
        """Skip COPY data up to its ``\\.`` line; (new position, whether it ended)."""
        while True:
            if self._copy_line_start:
                rest = data[pos : pos + 4]
                if rest.startswith((b"\\.\n", b"\\.\r\n")):
                    self._state = "normal"
                    self._copy_line_start = True
                    return pos + (3 if rest.startswith(b"\\.\n") else 4), True
                if (
                    not final
                    and len(rest) < 4
                    and (b"\\.\r\n".startswith(rest) or (b"\\.\n".startswith(rest)))
                ):
                    return pos, False
                self._copy_line_start = False
            found = data.find(b"\n\\.", pos)
            if found < 0:
                return max(pos, len(data) - 2), False
            pos = found + 1
            self._copy_line_start = True

    def _lex(self, data: bytes, pos: int, limit: int) -> int:
        token_at = _TOKEN.match
        while pos < limit:
            state = self._state
            if state == "normal":
                match = token_at(data, pos, limit)
                assert match is not None
                kind = match.lastgroup
                end = match.end()
                if kind == "ws":
                    pass
                elif kind == "ident":
                    if data[pos:end] in (b"E", b"e") and data[end : end + 1] == b"'":
                        self._token("'")
                        self._state = "esq"
                        end += 1
                    else:
                        self._ident(data[pos:end])
                elif kind == "semi":
                    self._semicolon()
                    if self._state == "after_copy":
                        pos = end
                        continue
                elif kind == "lp":
                    self._paren += 1
                    self._token("(")
                elif kind == "rp":
                    self._paren = max(0, self._paren - 1)
                    self._token(")")
                elif kind == "lc":
                    newline = data.find(b"\n", end, limit)
                    end = limit if newline < 0 else newline + 1
                elif kind == "bc":
                    self._state = "bc"
                    self._comment_depth = 1
                elif kind in ("sq", "dq"):
                    self._state = kind
                    self._string = bytearray()
                elif kind == "dollar":
                    self._token("$")
                    self._state = "dollar"
                    self._dollar_tag = data[pos:end]
                elif kind == "bs":
                    newline = data.find(b"\n", pos, limit)
                    end = limit if newline < 0 else newline + 1
                    line = data[pos:end]
                    if not self._statement_empty or not _META_ALLOWED.match(line):
                        text = line.decode("utf-8", "replace").strip()[:80]
                        self._piece.head[:] = [text]
                        self._refuse("a psql meta-command", True)
                else:
                    self._token(match.group().decode("utf-8", "replace"))
                pos = end
            elif state == "after_copy":
                newline = data.find(b"\n", pos, limit)
                end = limit if newline < 0 else newline + 1
                if data[pos:end].strip():
                    self._refuse("statements after a COPY on the same line", True)
                if newline >= 0:
                    self._state = "copy"
                    self._copy_line_start = True
                    return end
                pos = end
            elif state in ("sq", "dq"):
                quote = b"'" if state == "sq" else b'"'
                found = data.find(quote, pos, limit)
                if len(self._string) < _TOKEN_TEXT:
                    self._string += data[pos : limit if found < 0 else found + 1]
                if found < 0:
                    pos = limit
                elif data[found + 1 : found + 2] == quote:
                    pos = found + 2
                else:
                    self._close_string(quote)
                    pos = found + 1
            elif state == "esq":
                match = _ESCAPE_STRING_END.search(data, pos, limit)
                if match is None:
                    pos = limit
                elif match.group() != b"'":
                    pos = match.end()
                elif data[match.end() : match.end() + 1] == b"'":
                    pos = match.end() + 1
                else:
                    self._state = "normal"
                    pos = match.end()
            elif state == "dollar":
                found = data.find(self._dollar_tag, pos, limit)
                if found < 0:
                    pos = limit
                else:
                    self._state = "normal"
                    pos = found + len(self._dollar_tag)
            else:  # block comment, nested
                match = _BLOCK_COMMENT.search(data, pos, limit)
                if match is None:
                    pos = limit
                else:
                    self._comment_depth += 1 if match.group() == b"/*" else -1
                    if self._comment_depth == 0:
                        self._state = "normal"
                    pos = match.end()
        return pos

    def _close_string(self, quote: bytes) -> None:
        text = bytes(self._string[:_TOKEN_TEXT]).rstrip(quote).decode("utf-8", "replace")
        self._state = "normal"
        self._token(f"'{text}'" if quote == b"'" else f'"{text}"')


# -- the restore ------------------------------------------------------------------

# Drops every schema but the system ones (with all they hold, objects created
# after the backup included), removes large objects, and re-creates public with
# the owner and privileges it had, as a fresh database would have it.
_PREAMBLE: Final = b"""SET client_min_messages = warning;
SET statement_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
BEGIN;
DO $odeion_archive$
DECLARE
    schema_name name;
    public_owner regrole;
    public_acl aclitem[];
    had_public boolean;
    grant_row record;
BEGIN
    SELECT n.nspowner::regrole, n.nspacl, true INTO public_owner, public_acl, had_public
        FROM pg_catalog.pg_namespace n WHERE n.nspname = 'public';
    FOR schema_name IN
        SELECT n.nspname FROM pg_catalog.pg_namespace n
        WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
        ORDER BY n.nspname
    LOOP
        EXECUTE pg_catalog.format('DROP SCHEMA %I CASCADE', schema_name);
    END LOOP;
    PERFORM pg_catalog.lo_unlink(m.oid) FROM pg_catalog.pg_largeobject_metadata m;
    IF public_owner IS NULL THEN
        public_owner := COALESCE(pg_catalog.to_regrole('pg_database_owner'),
                                 CURRENT_USER::regrole);
    END IF;
    EXECUTE pg_catalog.format('CREATE SCHEMA public AUTHORIZATION %s', public_owner);
    IF had_public IS NULL THEN
        GRANT USAGE ON SCHEMA public TO PUBLIC;
    END IF;
    FOR grant_row IN
        SELECT a.grantee, a.privilege_type, a.is_grantable
        FROM pg_catalog.aclexplode(public_acl) a WHERE a.grantee <> public_owner
    LOOP
        EXECUTE pg_catalog.format(
            'GRANT %s ON SCHEMA public TO %s%s',
            grant_row.privilege_type,
            CASE WHEN grant_row.grantee = 0 THEN 'PUBLIC'
                 ELSE grant_row.grantee::regrole::text END,
            CASE WHEN grant_row.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
END
$odeion_archive$;
"""


class _Pipeline:
    """pg_restore feeding psql through this process, and what went wrong."""

    def __init__(
        self,
        *,
        conninfo: str,
        env: Mapping[str, str],
        pg_restore: Path,
        psql: Path,
        restore_err: IO[bytes],
        psql_err: IO[bytes],
    ) -> None:
        psql_command = [str(psql), "-X", "-q", "-w", "-v", "ON_ERROR_STOP=1", "--no-psqlrc"]
        if conninfo:
            psql_command += ["-d", conninfo]
        environment = dict(env)
        try:
            self.psql = subprocess.Popen(
                psql_command,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=psql_err,
                env=environment,
            )
        except OSError as exc:
            raise RestoreFailedError(
                f"psql ({psql}) could not be started: {exc}; install the PostgreSQL client "
                "programs or point odeion-archive at them; the database was not changed"
            ) from exc
        try:
            self.restore = subprocess.Popen(
                [str(pg_restore), "--no-owner", "--no-privileges", "--exit-on-error", "-f", "-"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=restore_err,
                env=environment,
            )
        except OSError as exc:
            self.psql.kill()
            self.psql.wait()
            raise RestoreFailedError(
                f"pg_restore ({pg_restore}) could not be started: {exc}; install the PostgreSQL "
                "client programs or point odeion-archive at them; the database was not changed"
            ) from exc
        self.feed_error: BaseException | None = None
        self.feed_done = False
        self.stop = threading.Event()

    def kill(self) -> None:
        """Stop both programs at once; psql's transaction is rolled back."""
        self.stop.set()
        for process in (self.psql, self.restore):
            if process.poll() is None:
                process.kill()

    def reap(self) -> None:
        for process in (self.psql, self.restore):
            if process.poll() is None:
                process.kill()
            process.wait()
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()


def _tail(stream: IO[bytes]) -> str:
    stream.flush()
    size = stream.seek(0, os.SEEK_END)
    stream.seek(max(0, size - _STDERR_LIMIT))
    return stream.read().decode("utf-8", "replace").strip()


def _exit_text(code: int) -> str:
    return f"was killed by signal {-code}" if code < 0 else f"exited with {code}"


def _feed_dump(
    pipeline: _Pipeline,
    dump: Iterable[bytes],
    on_bytes: Callable[[int], None] | None,
) -> None:
    stdin = pipeline.restore.stdin
    assert stdin is not None
    reading = True
    try:
        for chunk in dump:
            if pipeline.stop.is_set():
                return
            if chunk and reading:
                try:
                    stdin.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    # pg_restore stopped reading: its exit code tells whether it
                    # failed. The rest of the stream is still read to its end, so
                    # that the source can check it is whole.
                    reading = False
            if on_bytes is not None:
                on_bytes(len(chunk))
        if reading:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                stdin.flush()
        pipeline.feed_done = True
    except BaseException as exc:
        pipeline.feed_error = exc
        pipeline.kill()
    finally:
        with contextlib.suppress(OSError):
            stdin.close()


def _watch_cancel(pipeline: _Pipeline, cancel: CancelToken, finished: threading.Event) -> None:
    while not finished.is_set():
        if cancel.wait(0.1):
            pipeline.kill()
            return


def _statement_bytes(statement: str) -> bytes:
    text = statement.strip()
    if not text.endswith(";"):
        text += ";"
    return text.encode("utf-8") + b"\n"


def replace_database(
    *,
    conninfo: str,
    env: Mapping[str, str],
    pg_restore: Path,
    psql: Path,
    dump: Iterable[bytes],
    post_sql: Sequence[str] = (),
    allow_unsafe: bool = False,
    cancel: CancelToken | None = None,
    on_bytes: Callable[[int], None] | None = None,
    final_check: Callable[[], None] | None = None,
) -> None:
    """Replace the whole database of ``conninfo`` with the custom-format ``dump``, atomically.

    ``conninfo`` must not carry a password; ``env`` is the programs'
    environment (``PGPASSWORD`` and the like). ``post_sql`` runs after the
    dump, in the same transaction, with the session's own settings
    (``search_path`` included). ``final_check`` is called once the dump
    stream is exhausted and pg_restore succeeded, before ``COMMIT``: raising
    there (an archive checksum mismatch, say) leaves the database unchanged.
    ``on_bytes`` is called with the size of each chunk handed to pg_restore.

    Raises :class:`~odeion_archive.errors.RestoreFailedError` with psql's or
    pg_restore's own words, :class:`~odeion_archive.errors.UnsafeArchiveError`
    when the guard refuses a statement, :class:`~odeion_archive.errors.CancelledError`
    when ``cancel`` is set, and whatever ``dump`` or ``final_check`` raise. In
    every case the database is left as it was.
    """
    guard = SqlGuard(allow_unsafe=allow_unsafe)
    with tempfile.TemporaryFile() as restore_err, tempfile.TemporaryFile() as psql_err:
        pipeline = _Pipeline(
            conninfo=conninfo,
            env=env,
            pg_restore=pg_restore,
            psql=psql,
            restore_err=restore_err,
            psql_err=psql_err,
        )
        finished = threading.Event()
        writer = threading.Thread(
            target=_feed_dump,
            args=(pipeline, dump, on_bytes),
            name="pg_restore-feed",
            daemon=True,
        )
        watcher = None
        if cancel is not None:
            watcher = threading.Thread(
                target=_watch_cancel,
                args=(pipeline, cancel, finished),
                name="pg_restore-cancel",
                daemon=True,
            )
        try:
            writer.start()
            if watcher is not None:
                watcher.start()
            _pump(pipeline, guard)
            _finish(pipeline, guard, post_sql, cancel, final_check, restore_err, writer)
        except _PsqlGoneError:
            with contextlib.suppress(subprocess.TimeoutExpired):
                pipeline.psql.wait(timeout=5)
            pipeline.kill()
            failure = _feed_failure(pipeline) or _psql_failure(pipeline, psql_err)
            if cancel is not None and cancel.cancelled:
                raise CancelledError(
                    "the restore was cancelled; the database was left as it was"
                ) from failure
            raise failure from None
        except BaseException as exc:
            pipeline.kill()
            if cancel is not None and cancel.cancelled and not isinstance(exc, CancelledError):
                raise CancelledError(
                    "the restore was cancelled; the database was left as it was"
                ) from exc
            raise
        finally:
            finished.set()
            pipeline.reap()
            writer.join(timeout=1.0)


class _PsqlGoneError(Exception):
    """psql stopped reading its input (it failed, or was killed)."""


def _feed_failure(pipeline: _Pipeline) -> ArchiveError | None:
    """The failure of reading the dump, if it failed: the cause of everything after it.

    When the dump cannot be read, the pipeline is stopped at once, and psql and
    pg_restore then fail too; their failure is only a consequence.
    """
    error = pipeline.feed_error
    if error is None:
        return None
    if isinstance(error, ArchiveError):
        return error
    failure = RestoreFailedError(
        f"reading the database dump failed: {error}; the database was left as it was, "
        "check the archive and restore again"
    )
    failure.__cause__ = error
    return failure


def _psql_failure(pipeline: _Pipeline, psql_err: IO[bytes]) -> RestoreFailedError:
    code = pipeline.psql.wait()
    text = _tail(psql_err)
    return RestoreFailedError(
        f"the restore failed: psql {_exit_text(code)}: {text or 'no message'}; the database "
        "was left as it was (the transaction was rolled back), fix the cause and restore again"
    )


def _write(pipeline: _Pipeline, data: bytes) -> None:
    stdin = pipeline.psql.stdin
    assert stdin is not None
    try:
        stdin.write(data)
    except (BrokenPipeError, ConnectionResetError, ValueError) as exc:
        raise _PsqlGoneError from exc


def _pump(pipeline: _Pipeline, guard: SqlGuard) -> None:
    source = pipeline.restore.stdout
    assert source is not None
    _write(pipeline, _PREAMBLE)
    read = source.read1  # type: ignore[attr-defined]
    while chunk := read(_PIPE_CHUNK):
        passed = guard.feed(chunk)
        if passed:
            _write(pipeline, passed)


def _finish(
    pipeline: _Pipeline,
    guard: SqlGuard,
    post_sql: Sequence[str],
    cancel: CancelToken | None,
    final_check: Callable[[], None] | None,
    restore_err: IO[bytes],
    writer: threading.Thread,
) -> None:
    code = pipeline.restore.wait()
    if code == 0:
        writer.join()  # the rest of the stream, if pg_restore did not need it
    if cancel is not None:
        cancel.raise_if_cancelled()
    feed_failure = _feed_failure(pipeline)
    if feed_failure is not None:
        raise feed_failure
    if code != 0:
        text = _tail(restore_err)
        raise RestoreFailedError(
            f"the restore failed: pg_restore {_exit_text(code)}: {text or 'no message'}; the "
            "database was left as it was, check that the archive is complete and that this "
            "pg_restore reads its dump"
        )
    if not pipeline.feed_done:
        raise RestoreFailedError(
            "the database dump was not read to its end; the database was left as it was, "
            "restore again"
        )
    rest = guard.finish()
    if rest:
        _write(pipeline, rest)
    if final_check is not None:
        final_check()
    if post_sql:
        # The dump's SQL emptied search_path and changed other settings; the
        # caller's statements run with the session's own.
        _write(pipeline, b"RESET ALL;\n")
    for statement in post_sql:
        _write(pipeline, _statement_bytes(statement))
    _write(pipeline, b"COMMIT;\n")
    stdin = pipeline.psql.stdin
    assert stdin is not None
    try:
        stdin.close()
    except (BrokenPipeError, ConnectionResetError) as exc:
        raise _PsqlGoneError from exc
    if pipeline.psql.wait() != 0:
        raise _PsqlGoneError
