"""Atomic whole-database replacement from a streamed dump, on real PostgreSQL 15 and 18."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from odeion_archive.components.full_db import _roles as _pgroles
from odeion_archive.components.full_db._pipeline import replace_database
from odeion_archive.components.full_db._script import ScriptReader, _Sink
from odeion_archive.errors import (
    CancelledError,
    DatabaseError,
    RestoreFailedError,
    UnsafeArchiveError,
)
from odeion_archive.events import CancelToken

if TYPE_CHECKING:
    from conftest import PgServer

CHUNK = 64 * 1024
Snapshot = dict[str, Any]


def pg_dump(server: PgServer, conninfo: str) -> bytes:
    return subprocess.run(
        [
            str(server.bin_dir / "pg_dump"),
            "--format=custom",
            "--compress=0",
            f"--dbname={conninfo}",
        ],
        capture_output=True,
        check=True,
    ).stdout


def chunks(data: bytes, size: int = CHUNK) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def who(conninfo: str) -> _pgroles.RestoreIdentity:
    with psycopg.connect(conninfo) as conn:
        return _pgroles.identity(conn)


def restore(server: PgServer, conninfo: str, data: bytes, **kwargs: Any) -> None:
    replace_database(
        conninfo=conninfo,
        who=who(conninfo),
        env=dict(os.environ),
        pg_restore=server.bin_dir / "pg_restore",
        dump=chunks(data),
        **kwargs,
    )


def state(conninfo: str) -> Snapshot:
    """Every table's rows, sequences' values, indexes, constraints and schemas."""
    with psycopg.connect(conninfo) as conn:
        tables = [
            f"{schema}.{name}"
            for schema, name in conn.execute(
                "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname !~ '^pg_' "
                "AND n.nspname <> 'information_schema' ORDER BY 1, 2"
            )
        ]
        rows = {
            table: sorted(
                (
                    str(row)
                    for row in conn.execute(
                        sql.SQL("SELECT t::text FROM {} t").format(
                            sql.Identifier(*table.split("."))
                        )
                    )
                ),
            )
            for table in tables
        }
        return {
            "rows": rows,
            "sequences": conn.execute(
                "SELECT schemaname, sequencename, last_value FROM pg_sequences ORDER BY 1, 2"
            ).fetchall(),
            "indexes": conn.execute(
                "SELECT schemaname, indexname, indexdef FROM pg_indexes "
                "WHERE schemaname !~ '^pg_' AND schemaname <> 'information_schema' ORDER BY 1, 2"
            ).fetchall(),
            "constraints": conn.execute(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
                "FROM pg_constraint WHERE connamespace::regnamespace::text !~ '^pg_' "
                # PostgreSQL 18 records NOT NULL as constraints, 15 as column flags.
                "AND contype <> 'n' "
                "AND connamespace::regnamespace::text <> 'information_schema' ORDER BY 1, 2"
            ).fetchall(),
            "schemas": conn.execute(
                "SELECT nspname, nspowner::regrole::text, nspacl::text FROM pg_namespace "
                "WHERE nspname !~ '^pg_' AND nspname <> 'information_schema' ORDER BY 1"
            ).fetchall(),
        }


def add_extras(conninfo: str) -> None:
    """A table no component knows, with a sequence, an index and a check."""
    with psycopg.connect(conninfo) as conn:
        conn.execute(
            "CREATE SCHEMA plugin;"
            "CREATE TABLE plugin.notes (id bigserial PRIMARY KEY, note text NOT NULL "
            "CHECK (note <> ''), body text);"
            "CREATE INDEX notes_note ON plugin.notes (lower(note));"
            "CREATE SEQUENCE plugin.counter START 100;"
            "SELECT nextval('plugin.counter'), nextval('plugin.counter');"
            "INSERT INTO plugin.notes (note, body) SELECT 'n' || g, E'tab\\there\\nline \\\\. '"
            "|| g FROM generate_series(1, 3000) g;"
            "INSERT INTO plugin.notes (note, body) VALUES ('dot', E'\\\\.'), ('nul', NULL);"
        )


def mutate(conninfo: str) -> None:
    """Changes made 'after the backup'."""
    with psycopg.connect(conninfo) as conn:
        conn.execute(
            "CREATE TABLE later (x int); INSERT INTO later VALUES (1);"
            "DELETE FROM plugin.notes WHERE id % 2 = 0;"
            "UPDATE users SET display_name = 'changed';"
            "SELECT nextval('plugin.counter');"
            "DROP INDEX plugin.notes_note;"
            "CREATE SCHEMA afterwards; CREATE TABLE afterwards.t (y int)"
        )


def test_replace_brings_back_the_source_exactly(
    pg_server: PgServer, odeion_db: str, empty_db: str
) -> None:
    add_extras(odeion_db)
    source = state(odeion_db)
    data = pg_dump(pg_server, odeion_db)
    fed: list[int] = []
    restore(pg_server, empty_db, data, on_bytes=fed.append)
    assert sum(fed) == len(data)
    assert state(empty_db) == source
    mutate(empty_db)
    assert state(empty_db) != source
    restore(pg_server, empty_db, data)
    after = state(empty_db)
    assert after == source
    assert "public.later" not in after["rows"]
    assert "afterwards.t" not in after["rows"]


def test_post_sql_runs_in_the_same_transaction(
    pg_server: PgServer, odeion_db: str, empty_db: str
) -> None:
    data = pg_dump(pg_server, odeion_db)
    restore(
        pg_server,
        empty_db,
        data,
        post_sql=["UPDATE libraries SET name = name || '!'", "CREATE TABLE marker (m int)"],
    )
    with psycopg.connect(empty_db) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM libraries")]
        assert names
        assert all(name.endswith("!") for name in names)
        assert conn.execute("SELECT to_regclass('marker') IS NOT NULL").fetchone() == (True,)


@pytest.fixture
def owner_db(pg_server: PgServer) -> Iterator[str]:
    """A database owned by a new non-superuser role; its conninfo as that role."""
    suffix = uuid.uuid4().hex[:10]
    role, dbname = f"owner_{suffix}", f"owned_{suffix}"
    with psycopg.connect(pg_server.conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(dbname), sql.Identifier(role)
            )
        )
    params = conninfo_to_dict(pg_server.conninfo)
    params.pop("password", None)
    try:
        yield make_conninfo("", **{**params, "dbname": dbname, "user": role})
    finally:
        with psycopg.connect(pg_server.conninfo, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_non_superuser_owner_replaces_its_database(
    pg_server: PgServer, odeion_db: str, owner_db: str
) -> None:
    add_extras(odeion_db)
    with psycopg.connect(odeion_db) as conn:
        # A trusted extension, where the server has one.
        row = conn.execute(
            "SELECT name FROM pg_available_extensions WHERE name IN ('citext', 'pgcrypto', "
            "'pg_trgm', 'hstore') ORDER BY name LIMIT 1"
        ).fetchone()
        if row is not None:
            conn.execute(sql.SQL("CREATE EXTENSION {}").format(sql.Identifier(row[0])))
    source = state(odeion_db)
    data = pg_dump(pg_server, odeion_db)
    with psycopg.connect(owner_db) as conn:
        assert conn.execute(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone() == (False,)
        conn.execute("CREATE TABLE mine (a int)")
    public_before = state(owner_db)["schemas"]
    restore(pg_server, owner_db, data)
    after = state(owner_db)
    assert after["rows"] == source["rows"]
    assert after["sequences"] == source["sequences"]
    assert after["indexes"] == source["indexes"]
    assert after["constraints"] == source["constraints"]
    # public keeps the owner and privileges it had.
    assert [s for s in after["schemas"] if s[0] == "public"] == public_before
    restore(pg_server, owner_db, data)
    assert state(owner_db)["rows"] == source["rows"]


def _prepared_target(pg_server: PgServer, odeion_db: str, empty_db: str) -> tuple[bytes, Snapshot]:
    add_extras(odeion_db)
    data = pg_dump(pg_server, odeion_db)
    restore(pg_server, empty_db, data)
    mutate(empty_db)
    return data, state(empty_db)


def test_failures_leave_the_target_as_it_was(
    pg_server: PgServer, odeion_db: str, empty_db: str
) -> None:
    data, before = _prepared_target(pg_server, odeion_db, empty_db)
    # A dump cut in the middle of its data.
    with pytest.raises(RestoreFailedError, match="pg_restore"):
        restore(pg_server, empty_db, data[: len(data) * 2 // 3])
    assert state(empty_db) == before
    # The caller's statements fail: the server's own words are reported.
    with pytest.raises(RestoreFailedError, match="no_such_table"):
        restore(pg_server, empty_db, data, post_sql=["UPDATE no_such_table SET x = 1"])
    assert state(empty_db) == before

    # The dump stream fails, or the final check refuses.
    def broken() -> Iterator[bytes]:
        yield data[:CHUNK]
        raise OSError("disk on fire")

    with pytest.raises(RestoreFailedError, match="disk on fire"):
        replace_database(
            conninfo=empty_db,
            who=who(empty_db),
            env=dict(os.environ),
            pg_restore=pg_server.bin_dir / "pg_restore",
            dump=broken(),
        )
    assert state(empty_db) == before

    def refuse() -> None:
        raise RestoreFailedError("checksum mismatch; use another archive")

    with pytest.raises(RestoreFailedError, match="checksum"):
        restore(pg_server, empty_db, data, final_check=refuse)
    assert state(empty_db) == before
    # A wrong connection: the connection's message.
    with pytest.raises(DatabaseError, match="no_such_db_x"):
        replace_database(
            conninfo=make_conninfo(empty_db, dbname="no_such_db_x"),
            who=who(empty_db),
            env=dict(os.environ),
            pg_restore=pg_server.bin_dir / "pg_restore",
            dump=chunks(data),
        )


def test_cancel_stops_within_a_second_and_rolls_back(
    pg_server: PgServer, odeion_db: str, empty_db: str
) -> None:
    data, before = _prepared_target(pg_server, odeion_db, empty_db)
    token = CancelToken()

    def slow() -> Iterator[bytes]:
        for index, chunk in enumerate(chunks(data, 4096)):
            if index == 3:
                token.cancel()
            time.sleep(0.01)
            yield chunk

    started = time.monotonic()
    with pytest.raises(CancelledError):
        replace_database(
            conninfo=empty_db,
            who=who(empty_db),
            env=dict(os.environ),
            pg_restore=pg_server.bin_dir / "pg_restore",
            dump=slow(),
            cancel=token,
        )
    assert time.monotonic() - started < 2
    assert state(empty_db) == before


_KILL_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    import psycopg
    from odeion_archive.components.full_db import _roles as _pgroles
    from odeion_archive.components.full_db._pipeline import replace_database
    conninfo, bin_dir, dump_path, marker, moment = sys.argv[1:6]
    data = Path(dump_path).read_bytes()

    def chunks():
        for index, start in enumerate(range(0, len(data), 4096)):
            if moment == "data" and start > len(data) // 2:
                Path(marker).write_text("here")
                time.sleep(60)
            yield data[start:start + 4096]

    def final_check():
        Path(marker).write_text("here")
        time.sleep(60)

    with psycopg.connect(conninfo) as conn:
        who = _pgroles.identity(conn)
    replace_database(conninfo=conninfo, who=who, env=dict(os.environ),
                     pg_restore=Path(bin_dir) / "pg_restore",
                     dump=chunks(), post_sql=["UPDATE users SET display_name = 'x'"],
                     final_check=final_check)
    """
)


@pytest.mark.parametrize("moment", ["data", "before_commit"])
def test_kill_9_leaves_the_target_unchanged(
    pg_server: PgServer, odeion_db: str, empty_db: str, tmp_path: Path, moment: str
) -> None:
    data, before = _prepared_target(pg_server, odeion_db, empty_db)
    dump_path = tmp_path / "db.dump"
    dump_path.write_bytes(data)
    marker = tmp_path / "marker"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _KILL_SCRIPT,
            empty_db,
            str(pg_server.bin_dir),
            str(dump_path),
            str(marker),
            moment,
        ],
    )
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert process.poll() is None, "the restore ended before the kill"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(0.3)  # let the server work through what it was given
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert state(empty_db) == before


def test_guard_refuses_an_event_trigger_from_a_real_dump(
    pg_server: PgServer, odeion_db: str, empty_db: str
) -> None:
    data, before = _prepared_target(pg_server, odeion_db, empty_db)
    with psycopg.connect(odeion_db) as conn:
        conn.execute(
            "CREATE FUNCTION note_ddl() RETURNS event_trigger LANGUAGE plpgsql "
            "AS $$BEGIN RAISE NOTICE 'ddl'; END$$;"
            "CREATE EVENT TRIGGER note_ddl ON ddl_command_start EXECUTE FUNCTION note_ddl()"
        )
    data = pg_dump(pg_server, odeion_db)
    with pytest.raises(UnsafeArchiveError, match="event trigger"):
        restore(pg_server, empty_db, data)
    assert state(empty_db) == before
    # Not even when unsafe dumps are allowed: an event trigger reaches beyond the restore.
    with pytest.raises(UnsafeArchiveError, match="event trigger"):
        restore(pg_server, empty_db, data, allow_unsafe=True)
    assert state(empty_db) == before
    with psycopg.connect(empty_db) as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_event_trigger WHERE evtname = 'note_ddl'"
        ).fetchone() == (0,)


def test_pg15_dump_into_pg18(pg15: PgServer, pg18: PgServer) -> None:
    names = {server.name: f"x15_{uuid.uuid4().hex[:8]}" for server in (pg15, pg18)}
    for server in (pg15, pg18):
        with psycopg.connect(server.conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(names[server.name])))
    try:
        source = pg15.database_conninfo(names["pg15"])
        target = pg18.database_conninfo(names["pg18"])
        with psycopg.connect(source) as conn:
            conn.execute("CREATE TABLE users (id int PRIMARY KEY, name text)")
        add_extras(source)
        with psycopg.connect(target) as conn:
            conn.execute("CREATE TABLE later (x int)")
        restore(pg18, target, pg_dump(pg15, source))
        assert state(target) == state(source)
    finally:
        for server in (pg15, pg18):
            with psycopg.connect(server.conninfo, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(names[server.name])
                    )
                )


# -- the script reader on its own, against a real session ------------------------------


@pytest.fixture
def scratch(pg18: PgServer) -> Iterator[psycopg.Connection[Any]]:
    """A session on a new database of PostgreSQL 18; everything is rolled back."""
    name = f"scratch_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg18.conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with psycopg.connect(pg18.database_conninfo(name)) as conn:
            conn.execute('CREATE TABLE public.t (a text, "b;c" int)')
            conn.execute("CREATE SEQUENCE public.s")
            yield conn
            conn.rollback()
    finally:
        with psycopg.connect(pg18.conninfo, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def read_all(
    conn: psycopg.Connection[Any], text: bytes, step: int = 7, *, allow_unsafe: bool = False
) -> list[str]:
    """Feed ``text`` in pieces of ``step`` bytes; return the kinds of statements run."""
    kinds: list[str] = []
    reader = ScriptReader(
        _Sink(conn), allow_unsafe=allow_unsafe, on_statement=lambda s: kinds.append(s.kind)
    )
    for start in range(0, len(text), step):
        reader.feed(text[start : start + step])
    reader.finish()
    return kinds


SAFE_SQL = b"""\\restrict abcDEF123
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
CREATE FUNCTION public.f() RETURNS text LANGUAGE plpgsql
    AS $_$BEGIN RETURN 'COMMIT; ALTER SYSTEM'; END$_$;
CREATE FUNCTION public.g(a int) RETURNS int LANGUAGE sql
BEGIN ATOMIC
 SELECT CASE WHEN a > 1 THEN 1 ELSE 2 END;
 SELECT a;
END;
CREATE TABLE public.u (a text DEFAULT E'it\\'s; COMMIT', "b;c" int); -- COMMIT;
/* nested /* COMMIT; */ */
COPY public.t (a, "b;c") FROM stdin;
COMMIT;\t1
\\\\.\t2
\\.
SELECT pg_catalog.setval('public.s', 3, true);
CREATE EXTENSION IF NOT EXISTS plpgsql WITH SCHEMA pg_catalog;
\\unrestrict abcDEF123
"""


@pytest.mark.parametrize("step", [1, 5, 64, 1 << 20])
def test_reader_runs_pg_restore_sql(scratch: psycopg.Connection[Any], step: int) -> None:
    kinds = read_all(scratch, SAFE_SQL, step)
    assert kinds == [
        "VariableSetStmt",
        "SelectStmt",
        "CreateFunctionStmt",
        "CreateFunctionStmt",
        "CreateStmt",
        "CopyStmt",
        "SelectStmt",
        "CreateExtensionStmt",
    ]
    rows = scratch.execute('SELECT a, "b;c" FROM public.t').fetchall()
    assert rows == [("COMMIT;", 1), ("\\.", 2)]
    assert scratch.execute("SELECT public.f(), public.g(2)").fetchone() == (
        "COMMIT; ALTER SYSTEM",
        2,  # the body's last statement
    )


# COPY data whose lines hold many backslashes (escapes, NULLs, "\\." and a
# backslash before a dot inside a line): more than the reader looks at one by one
# before it falls back to a plain search for the end of the data.
_BACKSLASH_ROWS = [(f"r{i} \\. \t tab \\ and \\.", i) for i in range(90)] + [(None, 90)]
BACKSLASH_SQL = (
    b'COPY public.t (a, "b;c") FROM stdin;\n'
    + b"".join(f"r{i} \\\\. \\t tab \\\\ and \\\\.\t{i}\n".encode() for i in range(90))
    + b"\\N\t90\n\\.\nSELECT pg_catalog.setval('public.s', 3, true);\n"
)


@pytest.mark.parametrize("step", [1, 3, 64, 700, 1 << 20])
def test_reader_finds_the_end_of_copy_data_among_many_backslashes(
    scratch: psycopg.Connection[Any], step: int
) -> None:
    assert read_all(scratch, BACKSLASH_SQL, step) == ["CopyStmt", "SelectStmt"]
    rows = scratch.execute('SELECT a, "b;c" FROM public.t ORDER BY 2').fetchall()
    assert rows == _BACKSLASH_ROWS


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (b"CREATE LANGUAGE plperlu;\n", "plperlu"),
        (b"CREATE SERVER s FOREIGN DATA WRAPPER w;\n", "SERVER"),
        (b"CREATE FUNCTION f() RETURNS int LANGUAGE c AS 'x', 'y';\n", "language c"),
        (b"CREATE EXTENSION dblink;\n", "not a trusted"),
        (b"GRANT ALL ON t TO PUBLIC;\n", "GRANT"),
        (b"DO $$BEGIN END$$;\n", "DO"),
        (b"INSERT INTO public.t SELECT 'x', 1;\n", "INSERT"),
        (b"VALUES (1);\n", "SELECT"),
        (b"WITH x AS (SELECT 1) SELECT * FROM x;\n", "SELECT"),
        (b"CREATE TABLE public.v AS SELECT 1 AS a;\n", "CREATE TABLE AS"),
        (b"SELECT pg_catalog.set_config('search_path', '', false), now();\n", "SELECT"),
        (
            b"CREATE FUNCTION public.d() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1';\n",
            "SECURITY DEFINER",
        ),
    ],
)
def test_reader_refuses_what_odeion_never_uses(
    scratch: psycopg.Connection[Any], text: bytes, reason: str
) -> None:
    with pytest.raises(UnsafeArchiveError, match=reason):
        read_all(scratch, text)


@pytest.mark.parametrize(
    "text",
    [
        b"COMMIT;\n",
        b"SELECT 1; END;\n",
        b"\\! touch /tmp/owned\n",
        b"SELECT 1 \\g |sh\n",
        b"\\restrict abc\n\\connect other\n",
        b"CREATE FUNCTION f() RETURNS int LANGUAGE sql SET search_path = begin RETURN 1; END;\n",
        (
            b"CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT begin FROM t;"
            b" END; COMMIT; END;\n"
        ),
        b"SET standard_conforming_strings = off;\n",
        b"SELECT pg_catalog.set_config('standard_conforming_strings', 'off', false);\n",
        b"SET client_encoding = 'SJIS';\n",
        b"SELECT set_config('client_encoding', 'SJIS', false);\n",
        b"RESET ALL;\n",
        b"RESET ROLE;\n",
        b"SET ROLE postgres;\n",
        b"SET SESSION AUTHORIZATION postgres;\n",
        b"COPY t FROM stdin; SELECT 1;\n1\n\\.\n",
        b"SELECT 'unterminated;\n",
        b"COPY t FROM stdin;\n1\n",
        b"CREATE TABLE t (a int)\n",
        b"COPY public.t FROM PROGRAM 'id';\n",
        b"COPY public.t TO '/tmp/x';\n",
        b"copy (select 1) to program 'id';\n",
        b"COPY (SELECT 1) TO/**/PROGRAM 'id';\n",
        b"ALTER SYSTEM SET work_mem = '1GB';\n",
        b"CREATE ROLE evil SUPERUSER;\n",
        b"CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION f();\n",
        b"SELECT pg_catalog.pg_read_file('/etc/passwd');\n",
        b"SELECT \"pg_read_file\"('/etc/passwd');\n",
        b"SELECT lo_import('/etc/passwd');\n",
        b"SELECT lo_export(1, '/tmp/x');\n",
        b"EXPLAIN ANALYZE SELECT pg_read_file('/etc/passwd');\n",
        b"PREPARE p AS SELECT 1;\n",
        b"EXECUTE p;\n",
        b"CREATE TABLE public.w (a text DEFAULT pg_read_file('/etc/passwd'));\n",
        b"CREATE VIEW public.x AS SELECT query_to_xml('SELECT 1', true, true, '');\n",
        b"CREATE FUNCTION public.h() RETURNS void LANGUAGE plpgsql AS $$BEGIN COPY public.t TO PROGRAM 'id'; END$$;\n",
        b"CREATE FUNCTION public.h() RETURNS void LANGUAGE plpgsql AS $$BEGIN EXECUTE 'RESET ROLE'; END$$;\n",
        b"\xff\xfe;\n",
        b"SELECT pg_catalog.setval('public.s', 1, true);\x00 COPY (SELECT 1) TO PROGRAM 'id';\n",
    ],
)
def test_reader_always_refuses_what_escapes_the_restore(
    scratch: psycopg.Connection[Any], text: bytes
) -> None:
    with pytest.raises(UnsafeArchiveError):
        read_all(scratch, text, allow_unsafe=True)


def test_reader_crlf_copy_terminator(scratch: psycopg.Connection[Any]) -> None:
    text = b"COPY public.t (a) FROM stdin;\n1\n\\.\r\nCOMMIT;\n"
    with pytest.raises(UnsafeArchiveError, match="transaction"):
        read_all(scratch, text, 3)


def test_reader_parses_a_hostile_script_in_linear_time(scratch: psycopg.Connection[Any]) -> None:
    """An unterminated quote followed by many lines ending in ';' is not parsed line by line."""
    lines = b"x FROM stdin;\n" * 200_000
    started = time.monotonic()
    with pytest.raises(UnsafeArchiveError):
        read_all(scratch, b"COMMENT ON TABLE public.t IS 'open;\n" + lines, 1 << 16)
    assert time.monotonic() - started < 30  # quadratic work would take hours


# -- speed, reported only ---------------------------------------------------------


def test_report_speed_against_pg_restore(
    pg18: PgServer, capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest
) -> None:
    names = [f"speed_{uuid.uuid4().hex[:8]}" for _ in range(3)]
    with psycopg.connect(pg18.conninfo, autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    source, ours, theirs = (pg18.database_conninfo(name) for name in names)
    try:
        with psycopg.connect(source) as conn:
            conn.execute(
                "CREATE TABLE items (id bigint PRIMARY KEY, path text NOT NULL, "
                "meta jsonb NOT NULL, added timestamptz NOT NULL DEFAULT now());"
                "INSERT INTO items (id, path, meta) SELECT g, '/media/' || md5(g::text), "
                "jsonb_build_object('n', g) FROM generate_series(1, 1000000) g;"
                "CREATE INDEX items_path ON items (path)"
            )
        data = pg_dump(pg18, source)
        timer: Callable[[], float] = time.perf_counter
        started = timer()
        restore(pg18, ours, data)
        ours_seconds = timer() - started
        started = timer()
        subprocess.run(
            [
                str(pg18.bin_dir / "pg_restore"),
                "--no-owner",
                "--no-privileges",
                "--single-transaction",
                "--exit-on-error",
                f"--dbname={theirs}",
            ],
            input=data,
            check=True,
            capture_output=True,
        )
        theirs_seconds = timer() - started
        with capsys.disabled():
            print(  # noqa: T201 - the measurement is reported, not asserted
                f"\n[speed] {len(data) / 1e6:.0f} MB dump, 1M rows: replace_database "
                f"{ours_seconds:.2f} s, pg_restore --single-transaction {theirs_seconds:.2f} s, "
                f"ratio {ours_seconds / theirs_seconds:.2f}"
            )
    finally:
        with psycopg.connect(pg18.conninfo, autocommit=True) as conn:
            for name in names:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
