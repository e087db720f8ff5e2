"""The round trip through the entry point only: back up, list, verify, plan and restore.

Nothing here registers the plugin by hand: the installed package's entry point
must bring ``tar.gz`` into :meth:`Registry.default`, which ``Archiver`` uses.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from odeion_archive import Archiver, Registry
from odeion_archive.sample import SeedScale, migrate, seed

NewDatabase = Callable[[], str]
COMPARED = ("users", "system_settings")


def _rows(url: str, table: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        query = sql.SQL("SELECT * FROM {} ORDER BY 1").format(sql.Identifier(table))
        return list(conn.execute(query).fetchall())


def _migrated(url: str) -> str:
    with psycopg.connect(url) as conn:
        migrate(conn)
        conn.commit()
    return url


def test_the_entry_point_provides_tar_gz() -> None:
    registry = Registry.default()
    provided = {(p.name, p.plugin) for p in registry.provided() if p.kind == "format"}
    assert ("tar.gz", "targz") in provided
    assert registry.load_failures == ()
    assert registry.format("tar.gz").suffix == ".tar.gz"


@pytest.fixture(scope="module")
def backup(odeion_server: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A tar.gz backup of a seeded database: the data directory and the archive's name."""
    with psycopg.connect(odeion_server) as conn:
        migrate(conn)
        conn.commit()
        seed(conn, SeedScale.tiny())
        conn.commit()
    data_dir = tmp_path_factory.mktemp("odeion-data")
    with Archiver(data_dir, database_url=odeion_server) as archiver:
        result = archiver.create(format="tar.gz")
    return data_dir, result.archive.name


def test_backup_is_listed_verified_and_readable_by_tar(
    backup: tuple[Path, str], odeion_server: str
) -> None:
    data_dir, name = backup
    assert name.endswith(".tar.gz")
    with Archiver(data_dir, database_url=odeion_server) as archiver:
        listed = {info.name: info for info in archiver.list()}
        assert name in listed
        assert listed[name].manifest.format == "tar.gz"
        report = archiver.verify(name)
        assert report.ok, report.problems
        path = archiver.resolve(name)
    subprocess.run(["gzip", "-t", str(path)], check=True)
    listing = subprocess.run(
        ["tar", "-tzf", str(path)], check=True, capture_output=True, text=True
    ).stdout.split()
    assert listing[0] == "manifest.json"
    assert listing[-1] == "manifest-tail.json"
    for member in (
        "users_auth/users.jsonl",
        "settings/system_settings.jsonl",
        "full_db/database.dump",
    ):
        assert member in listing


def test_everything_json_restores_into_a_fresh_database(
    backup: tuple[Path, str], odeion_server: str, new_database: NewDatabase
) -> None:
    data_dir, name = backup
    target = _migrated(new_database())
    with Archiver(data_dir, database_url=target) as archiver:
        plan = archiver.plan(name, "everything_json", "skip")
        assert plan.can_restore, plan.blockers
        archiver.restore(name, "everything_json", "skip")
    for table in COMPARED:
        assert _rows(target, table) == _rows(odeion_server, table), table


def test_full_db_restores_into_an_empty_database(
    backup: tuple[Path, str], odeion_server: str, new_database: NewDatabase
) -> None:
    data_dir, name = backup
    target = new_database()
    with Archiver(data_dir, database_url=target) as archiver:
        plan = archiver.plan(name, "full_db")
        assert plan.can_restore, plan.blockers
        archiver.restore(name, "full_db")
    for table in (*COMPARED, "media_items", "watch_history"):
        assert _rows(target, table) == _rows(odeion_server, table), table
