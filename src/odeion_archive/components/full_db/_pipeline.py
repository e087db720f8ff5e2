"""Replace a whole database with a custom-format dump, atomically and under guard.

The dump arrives as an iterator of byte chunks (out of an archive; it is never
written to disk as a whole). ``pg_restore`` turns it into SQL, and this module
runs that SQL itself, statement by statement, on one connection::

    dump chunks --(writer thread)--> pg_restore --(script reader)--> server
                                                  judge each statement
                                                  COPY data via cursor.copy()

No ``psql`` is involved, so nothing can read the SQL differently from the
judge: each statement is parsed by PostgreSQL's own parser (see
:mod:`odeion_archive.components.full_db._sqlguard`), the text judged is sent as one statement of
the extended query protocol (which refuses a second statement), and COPY data
travels in COPY messages that the server never reads as SQL. After every
statement the settings that decide how the server reads SQL text
(``standard_conforming_strings``, ``client_encoding``), which the server
reports on change, are checked: a function that changed them stops the restore.

The session acts as the database's owner without powers (see
:mod:`odeion_archive.components.full_db._roles`). Before the dump's SQL, every non-system schema
of the target is dropped (objects created after the backup go with them) and
``public`` re-created as a fresh database has it. The transaction is committed
only once pg_restore exited 0, the dump stream ended cleanly and the caller's
final check passed. If anything fails, the operation is cancelled or this
process dies (even by ``kill -9``), the transaction is rolled back: the
database stays as it was.
"""

from __future__ import annotations

import contextlib
import fcntl
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any, Final

import psycopg

from odeion_archive.components.full_db import _roles, _sqlguard
from odeion_archive.components.full_db._process import (
    cancel_watch,
    exit_text,
    stderr_tail,
)
from odeion_archive.components.full_db._script import ScriptReader, _Sink
from odeion_archive.errors import (
    ArchiveError,
    CancelledError,
    RestoreFailedError,
    UnsafeArchiveError,
)
from odeion_archive.events import CancelToken

__all__ = ["ScriptReader", "replace_database"]

_PIPE_CHUNK: Final = 1024 * 1024
_STDERR_LIMIT: Final = 16 * 1024
# Drops every schema but the system ones (with all they hold, objects created
# after the backup included), removes large objects, and re-creates public with
# the owner and privileges it had, as a fresh database would have it.
_PREAMBLE: Final = """DO $odeion_archive$
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
$odeion_archive$"""


class _PgRestore:
    """pg_restore, fed the dump by a thread, its SQL read by this one."""

    def __init__(self, pg_restore: Path, env: dict[str, str], stderr: IO[bytes]) -> None:
        try:
            self.process = subprocess.Popen(
                [str(pg_restore), "--no-owner", "--no-privileges", "--exit-on-error", "-f", "-"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
            )
        except OSError as exc:
            raise RestoreFailedError(
                f"pg_restore ({pg_restore}) could not be started: {exc}; install the PostgreSQL "
                "client programs or point odeion-archive at them; the database was not changed"
            ) from exc
        for pipe in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError, AttributeError):
                # 1 MiB pipes (Linux): the script is read in large pieces, and each
                # side runs ahead of the other by more than 64 KiB.
                fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_CHUNK)  # type: ignore[union-attr]
        self.feed_error: BaseException | None = None
        self.feed_done = False
        self.stop = threading.Event()

    def kill(self) -> None:
        self.stop.set()
        if self.process.poll() is None:
            self.process.kill()

    def reap(self) -> None:
        self.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def feed(self, dump: Iterable[bytes], on_bytes: Callable[[int], None] | None) -> None:
        """Write the dump to pg_restore (in a thread); read it to its end in any case."""
        stdin = self.process.stdin
        assert stdin is not None
        reading = True
        try:
            for chunk in dump:
                if self.stop.is_set():
                    return
                if chunk and reading:
                    try:
                        stdin.write(chunk)
                    except (BrokenPipeError, ConnectionResetError):
                        # pg_restore stopped reading: its exit code tells whether it
                        # failed. The rest is still read, so the source checks it is whole.
                        reading = False
                if on_bytes is not None:
                    on_bytes(len(chunk))
            if reading:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    stdin.flush()
            self.feed_done = True
        except BaseException as exc:
            self.feed_error = exc
            self.kill()
        finally:
            with contextlib.suppress(OSError):
                stdin.close()

    def feed_failure(self) -> ArchiveError | None:
        """The failure to read the dump, if any: the cause of whatever failed after it."""
        error = self.feed_error
        if error is None or isinstance(error, ArchiveError):
            return error
        failure = RestoreFailedError(
            f"reading the database dump failed: {error}; the database was left as it was, "
            "check the archive and restore again"
        )
        failure.__cause__ = error
        return failure


def _cancel(pipeline: _PgRestore, conn: Any) -> None:
    """Stop pg_restore and the statement the server runs."""
    pipeline.kill()
    with contextlib.suppress(Exception):
        conn.cancel_safe()


def replace_database(
    *,
    conninfo: str,
    who: _roles.RestoreIdentity,
    env: dict[str, str],
    pg_restore: Path,
    dump: Iterable[bytes],
    post_sql: Sequence[str] = (),
    allow_unsafe: bool = False,
    cancel: CancelToken | None = None,
    on_bytes: Callable[[int], None] | None = None,
    on_statement: Callable[[_sqlguard.Statement], None] | None = None,
    final_check: Callable[[], None] | None = None,
) -> None:
    """Replace the whole database of ``conninfo`` with the custom-format ``dump``, atomically.

    ``who`` says how the session acts as the database's owner (see
    :func:`odeion_archive.components.full_db._roles.identity`). ``env`` is pg_restore's
    environment. ``post_sql`` runs after the dump, in the same transaction.
    ``final_check`` is called once the dump stream is exhausted and pg_restore
    succeeded, before ``COMMIT``: raising there (an archive checksum mismatch,
    say) leaves the database unchanged. ``on_bytes`` is called with the size of
    each chunk handed to pg_restore, ``on_statement`` with each statement run.

    Raises :class:`~odeion_archive.errors.RestoreFailedError` with the server's
    or pg_restore's own words, :class:`~odeion_archive.errors.UnsafeArchiveError`
    when the guard refuses a statement,
    :class:`~odeion_archive.errors.CancelledError` when ``cancel`` is set, and
    whatever ``dump`` or ``final_check`` raise. In every case the database is
    left as it was.
    """
    with (
        _roles.restore_session(conninfo, who) as conn,
        tempfile.TemporaryFile() as restore_err,
    ):
        sink = _Sink(conn)
        conn.execute("SET client_encoding TO 'UTF8'")
        conn.execute("SET standard_conforming_strings TO on")
        conn.execute(_PREAMBLE)
        sink.check_session()
        reader = ScriptReader(sink, allow_unsafe=allow_unsafe, on_statement=on_statement)
        pipeline = _PgRestore(pg_restore, env, restore_err)
        writer = threading.Thread(
            target=pipeline.feed, args=(dump, on_bytes), name="pg_restore-feed", daemon=True
        )
        try:
            writer.start()
            with cancel_watch(cancel, lambda: _cancel(pipeline, conn), name="pg_restore-cancel"):
                _replay(pipeline, reader)
                code = pipeline.process.wait()
                if code == 0:
                    writer.join()  # the rest of the stream, if pg_restore did not need it
                _check_finished(pipeline, code, cancel, restore_err)
                reader.finish()
                if final_check is not None:
                    final_check()
                if post_sql:
                    # The dump emptied search_path; the caller's statements run with the
                    # session's own (RESET ALL would also reset the role).
                    conn.execute("RESET search_path")
                for statement in post_sql:
                    conn.execute(statement)
                sink.check_shared()
                conn.commit()
        except BaseException as exc:
            pipeline.kill()
            # Closing the session is the one way out of every state (a COPY in
            # progress included): the server rolls the transaction back.
            conn.close()
            failure = _failure(exc, pipeline, cancel, restore_err)
            if failure is exc:
                raise
            raise failure from exc
        finally:
            pipeline.reap()
            writer.join(timeout=1.0)


def _replay(pipeline: _PgRestore, reader: ScriptReader) -> None:
    source = pipeline.process.stdout
    assert source is not None
    read = source.read1  # type: ignore[attr-defined]
    while chunk := read(_PIPE_CHUNK):
        reader.feed(chunk)


def _check_finished(
    pipeline: _PgRestore, code: int, cancel: CancelToken | None, restore_err: IO[bytes]
) -> None:
    if cancel is not None:
        cancel.raise_if_cancelled()
    feed_failure = pipeline.feed_failure()
    if feed_failure is not None:
        raise feed_failure
    if code != 0:
        text = stderr_tail(restore_err, _STDERR_LIMIT)
        raise RestoreFailedError(
            f"the restore failed: pg_restore {exit_text(code)}: {text or 'no message'}; the "
            "database was left as it was, check that the archive is complete and that this "
            "pg_restore reads its dump"
        )
    if not pipeline.feed_done:
        raise RestoreFailedError(
            "the database dump was not read to its end; the database was left as it was, "
            "restore again"
        )


def _failure(
    exc: BaseException, pipeline: _PgRestore, cancel: CancelToken | None, restore_err: IO[bytes]
) -> BaseException:
    """The error to report: the root cause, in the library's own terms."""
    if cancel is not None and cancel.cancelled:
        if isinstance(exc, CancelledError):
            return exc
        return CancelledError("the restore was cancelled; the database was left as it was")
    feed_failure = pipeline.feed_failure()
    if feed_failure is not None and not isinstance(exc, UnsafeArchiveError):
        return feed_failure
    if isinstance(exc, psycopg.Error):
        code = pipeline.process.poll()
        detail = ""
        if code not in (None, 0):
            detail = f" (pg_restore {exit_text(code)}: {stderr_tail(restore_err, _STDERR_LIMIT) or 'no message'})"
        return RestoreFailedError(
            f"the restore failed: {str(exc).strip()}{detail}; the database was left as it was "
            "(the transaction was rolled back), fix the cause and restore again"
        )
    return exc
