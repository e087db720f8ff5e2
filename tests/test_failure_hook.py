"""The failure hook: once per failed backup or damaged archive, through the library and the CLI."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg import sql

from _stores import at, move_entry
from odeion_archive import Archiver, CancelToken, Failure, Registry, hookimpl
from odeion_archive._store import RECORDS_DIR
from odeion_archive.errors import (
    ArchiveInvalidError,
    CancelledError,
    DatabaseError,
    ToolNotFoundError,
)

if TYPE_CHECKING:
    from conftest import PgServer

SCRIPT = Path(sys.executable).with_name("odeion-archive")


class _Recorder:
    def __init__(self) -> None:
        self.failures: list[Failure] = []

    @hookimpl
    def odeion_archive_backup_failed(self, failure: Failure) -> None:
        self.failures.append(failure)


def _archiver(data_dir: Path, url: str, *plugins: object, pg_bin: Path | None = None) -> Archiver:
    registry = Registry.default(entry_points=False)
    for index, plugin in enumerate(plugins):
        registry.register(plugin, name=f"host-{index}")
    return Archiver(data_dir, database_url=url, registry=registry, pg_bin=pg_bin)


def _drop(server: PgServer, conninfo: str) -> None:
    name = psycopg.conninfo.conninfo_to_dict(conninfo)["dbname"]
    with psycopg.connect(server.conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(str(name))))


def _store_files(archiver: Archiver) -> list[str]:
    directory = archiver.store.directory
    if not directory.exists():
        return []
    return sorted(p.name for p in directory.iterdir() if p.name != RECORDS_DIR)


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


# -- backups ---------------------------------------------------------------------------------


def test_a_backup_of_a_dropped_database_fires_the_hook_once(
    pg_server: PgServer, odeion_db: str, tmp_path: Path
) -> None:
    recorder = _Recorder()
    archiver = _archiver(tmp_path / "data", odeion_db, recorder)
    archiver.create(components=["settings"])
    assert recorder.failures == []  # a backup that works notifies nothing
    _drop(pg_server, odeion_db)
    before = _store_files(archiver)
    with pytest.raises(DatabaseError) as raised:
        archiver.create()
    [failure] = recorder.failures
    assert failure.operation == "backup" and failure.archive is None
    assert failure.reason.startswith("the backup failed (DatabaseError): ")
    assert " ".join(str(raised.value).split()) in failure.reason
    assert _store_files(archiver) == before  # nothing half-written is left


def test_a_backup_whose_pg_dump_is_missing_fires_the_hook_once(
    odeion_db: str, tmp_path: Path
) -> None:
    recorder = _Recorder()
    no_tools = tmp_path / "no-tools"
    no_tools.mkdir()
    archiver = _archiver(tmp_path / "data", odeion_db, recorder, pg_bin=no_tools)
    with pytest.raises(ToolNotFoundError):
        archiver.create(components=["settings", "full_db"])
    [failure] = recorder.failures
    assert failure.reason.startswith("the backup of settings, full_db failed (ToolNotFoundError)")
    assert "pg_dump" in failure.reason
    assert _store_files(archiver) == []


def test_a_cancelled_backup_is_the_users_choice_and_notifies_nothing(
    odeion_db: str, tmp_path: Path
) -> None:
    recorder = _Recorder()
    archiver = _archiver(tmp_path / "data", odeion_db, recorder)
    token = CancelToken()
    token.cancel()
    with pytest.raises(CancelledError):
        archiver.create(cancel=token)
    assert recorder.failures == []


def test_a_failing_hook_is_logged_and_changes_nothing(
    pg_server: PgServer, odeion_db: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        @hookimpl
        def odeion_archive_backup_failed(self, failure: Failure) -> None:
            raise RuntimeError("the mail server is down")

    archiver = _archiver(tmp_path / "data", odeion_db, Broken())
    _drop(pg_server, odeion_db)
    with (
        caplog.at_level(logging.ERROR, logger="odeion_archive"),
        pytest.raises(DatabaseError),  # the backup's own error, not the hook's
    ):
        archiver.create(components=["settings"])
    assert "odeion_archive_backup_failed hook failed" in caplog.text
    assert "the mail server is down" in caplog.text


# -- verification ----------------------------------------------------------------------------


def test_damage_found_in_a_store_archive_fires_the_hook_once(
    odeion_db: str, tmp_path: Path
) -> None:
    recorder = _Recorder()
    archiver = _archiver(tmp_path / "data", odeion_db, recorder)
    info = archiver.create(components=["users_auth", "settings"], format="zip").archive
    assert archiver.verify(info.name).ok
    outside = tmp_path / "copy.zip"
    shutil.copy(info.path, outside)
    assert recorder.failures == []

    _flip_a_byte(info.path)
    report = archiver.verify(info.name)
    assert not report.ok
    [failure] = recorder.failures
    assert failure.operation == "verification" and failure.archive == info.name
    assert failure.reason.startswith(f"the archive {info.name} is damaged, ")
    assert report.problems[0].message in failure.reason
    assert failure.reason.endswith("; restore from another archive")

    # A damaged file outside the store is the caller's to judge: reported, not notified.
    _flip_a_byte(outside)
    assert not archiver.verify(outside).ok
    assert len(recorder.failures) == 1

    # An archive of the store too damaged to open also counts, once.
    info.path.write_bytes(b"PK\x03\x04" + os.urandom(500))
    with pytest.raises(ArchiveInvalidError):
        archiver.verify(info.name)
    assert len(recorder.failures) == 2
    assert "cannot be read" in recorder.failures[1].reason


# -- the command line, with the hook in an installed plugin ---------------------------------


PLUGIN = """\
import json
import os

from odeion_archive import hookimpl


@hookimpl
def odeion_archive_backup_failed(failure):
    with open(os.environ["ODEION_TEST_FAILURES"], "a") as log:
        log.write(json.dumps({"operation": failure.operation, "archive": failure.archive,
                              "reason": failure.reason}) + "\\n")
"""


@pytest.fixture
def notifier(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An installed plugin (an entry point) that appends each failure to a file."""
    site = tmp_path / "site"
    info = site / "fake_odeion_notifier-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fake-odeion-notifier\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text("[odeion_archive]\nnotifier = fake_odeion_notifier\n")
    (site / "fake_odeion_notifier.py").write_text(textwrap.dedent(PLUGIN))
    log = tmp_path / "failures.jsonl"
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "ODEION_TEST_FAILURES": str(log),
        "ODEION_DATA_DIR": str(tmp_path / "data"),
    }
    return env, log


def _run(env: dict[str, str], url: str, *args: str, code: int) -> str:
    done = subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env={**env, "ODEION_DATABASE_URL": url},
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=300,
    )
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return done.stderr


def _logged(log: Path) -> list[dict[str, str | None]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_the_command_line_fires_the_hook_once_per_failure(
    pg_server: PgServer, odeion_db: str, tmp_path: Path, notifier: tuple[dict[str, str], Path]
) -> None:
    env, log = notifier
    _run(env, odeion_db, "create", "--components", "settings", code=0)
    assert _logged(log) == []
    name = Archiver(tmp_path / "data").list()[0].name
    _drop(pg_server, odeion_db)

    error = _run(env, odeion_db, "create", code=1)
    assert "error:" in error
    assert [(f["operation"], f["archive"]) for f in _logged(log)] == [("backup", None)]

    (tmp_path / "data" / "schedule.toml").write_text('backup_every = "1h"\n')
    move_entry(Archiver(tmp_path / "data"), name, at("2026-01-01T00:00"))  # a backup is due
    _run(env, odeion_db, "run-due", code=1)
    assert [f["operation"] for f in _logged(log)] == ["backup", "backup"]

    _flip_a_byte(tmp_path / "data" / "backups" / name)
    _run(env, odeion_db, "verify", name, code=4)
    logged = _logged(log)
    assert len(logged) == 3
    assert logged[2]["operation"] == "verification" and logged[2]["archive"] == name
