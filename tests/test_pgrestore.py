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

from odeion_archive._pgrestore import SqlGuard, replace_database
from odeion_archive.errors import CancelledError, RestoreFailedError, UnsafeArchiveError
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


def restore(server: PgServer, conninfo: str, data: bytes, **kwargs: Any) -> None:
    replace_database(
        conninfo=conninfo,
        env=dict(os.environ),
        pg_restore=server.bin_dir / "pg_restore",
        psql=server.bin_dir / "psql",
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
    # The caller's statements fail: psql's own words are reported.
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
            env=dict(os.environ),
            pg_restore=pg_server.bin_dir / "pg_restore",
            psql=pg_server.bin_dir / "psql",
            dump=broken(),
        )
    assert state(empty_db) == before

    def refuse() -> None:
        raise RestoreFailedError("checksum mismatch; use another archive")

    with pytest.raises(RestoreFailedError, match="checksum"):
        restore(pg_server, empty_db, data, final_check=refuse)
    assert state(empty_db) == before
    # A wrong connection: psql's message.
    with pytest.raises(RestoreFailedError, match="psql"):
        restore(pg_server, make_conninfo(empty_db, dbname="no_such_db_x"), data)


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
            env=dict(os.environ),
            pg_restore=pg_server.bin_dir / "pg_restore",
            psql=pg_server.bin_dir / "psql",
            dump=slow(),
            cancel=token,
        )
    assert time.monotonic() - started < 2
    assert state(empty_db) == before


_KILL_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from odeion_archive._pgrestore import replace_database
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

    replace_database(conninfo=conninfo, env=dict(os.environ),
                     pg_restore=Path(bin_dir) / "pg_restore", psql=Path(bin_dir) / "psql",
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
        time.sleep(0.3)  # let psql work through what it was given
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
    restore(pg_server, empty_db, data, allow_unsafe=True)  # a superuser may, when allowed
    with psycopg.connect(empty_db) as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_event_trigger WHERE evtname = 'note_ddl'"
        ).fetchone() == (1,)
        conn.execute("DROP EVENT TRIGGER note_ddl")


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


# -- the guard on its own ---------------------------------------------------------


def guard_all(text: bytes, step: int = 7, *, allow_unsafe: bool = False) -> bytes:
    guard = SqlGuard(allow_unsafe=allow_unsafe)
    passed = b"".join(guard.feed(text[i : i + step]) for i in range(0, len(text), step))
    return passed + guard.finish()


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
CREATE TABLE public.t (a text DEFAULT E'it\\'s; COMMIT', "b;c" int); -- COMMIT;
/* nested /* COMMIT; */ */
COPY public.t (a, "b;c") FROM stdin;
COMMIT;\t1
\\\\.\tALTER SYSTEM
\\.
SELECT pg_catalog.setval('public.s', 3, true);
CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA public;
\\unrestrict abcDEF123
"""


@pytest.mark.parametrize("step", [1, 5, 64, 1 << 20])
def test_guard_passes_pg_restore_sql_unchanged(step: int) -> None:
    assert guard_all(SAFE_SQL, step) == SAFE_SQL


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (b"COPY public.t FROM PROGRAM 'id';\n", "COPY other than"),
        (b"COPY public.t TO '/tmp/x';\n", "COPY other than"),
        (b"copy (select 1) to program 'id';\n", "COPY other than"),
        (b"ALTER SYSTEM SET work_mem = '1GB';\n", "ALTER SYSTEM"),
        (b"CREATE ROLE evil SUPERUSER;\n", "role"),
        (b"CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION f();\n", "event trigger"),
        (b"CREATE LANGUAGE plperlu;\n", "language"),
        (b"CREATE SERVER s FOREIGN DATA WRAPPER w;\n", "foreign server"),
        (b"CREATE FUNCTION f() RETURNS int LANGUAGE c AS 'x', 'y';\n", "language c"),
        (b"CREATE EXTENSION dblink;\n", "not a trusted"),
        (b"SELECT pg_catalog.pg_read_file('/etc/passwd');\n", "pg_read_file"),
        (b"GRANT ALL ON t TO PUBLIC;\n", "privilege"),
        (b"DO $$BEGIN END$$;\n", "DO"),
    ],
)
def test_guard_refuses_dangerous_statements(text: bytes, reason: str) -> None:
    with pytest.raises(UnsafeArchiveError, match=reason):
        guard_all(text)
    assert guard_all(text, allow_unsafe=True) == text


@pytest.mark.parametrize(
    "text",
    [
        b"COMMIT;\n",
        b"SELECT 1; END;\n",
        b"\\! touch /tmp/owned\n",
        b"SELECT 1 \\g |sh\n",
        b"\\restrict abc\n\\connect other\n",
        (b"CREATE FUNCTION f() RETURNS int LANGUAGE sql SET search_path = begin RETURN 1; END;\n"),
        (
            b"CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT begin FROM t;"
            b" END; COMMIT; END;\n"
        ),
        b"SET standard_conforming_strings = off;\n",
        b"COPY t FROM stdin; SELECT 1;\n1\n\\.\n",
        b"SELECT 'unterminated;\n",
        b"COPY t FROM stdin;\n1\n",
        b"CREATE TABLE t (a int)\n",
    ],
)
def test_guard_always_refuses_what_breaks_the_transaction(text: bytes) -> None:
    with pytest.raises(UnsafeArchiveError):
        guard_all(text, allow_unsafe=True)


def test_guard_holds_back_an_unfinished_line() -> None:
    guard = SqlGuard()
    assert guard.feed(b"SELECT pg_catalog.set_config('a', 'b', false);\nCOMM") == (
        b"SELECT pg_catalog.set_config('a', 'b', false);\n"
    )
    with pytest.raises(UnsafeArchiveError):
        guard.feed(b"IT;\n")


def test_guard_crlf_copy_terminator() -> None:
    text = b"COPY t (a) FROM stdin;\n1\n\\.\r\nCOMMIT;\n"
    with pytest.raises(UnsafeArchiveError, match="transaction"):
        guard_all(text, 3)


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
