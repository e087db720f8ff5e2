"""Restore drills against real PostgreSQL 18 and 15: scratch databases, checks, leftovers."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from _hooks import Failures, archiver_with
from odeion_archive import Archiver, CancelToken, ProgressEvent, _keys
from odeion_archive._archive import ArchiveBuilder, ArchiveFile
from odeion_archive._manifest import ComponentEntry
from odeion_archive._rowcounts import count_rows
from odeion_archive._schema import migrate
from odeion_archive._scratch import DRILL_DIR, PREFIX, clean_leftovers
from odeion_archive.errors import CancelledError
from odeion_archive.sample import SeedScale, seed

SCRIPT = Path(sys.executable).with_name("odeion-archive")
Snapshot = Callable[[str], dict[str, list[tuple[Any, ...]]]]


def _scratch_databases(conninfo: str) -> list[str]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return [
            str(row[0])
            for row in conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", (PREFIX + "%",)
            )
        ]


def _leftovers(data_dir: Path) -> list[str]:
    root = data_dir / DRILL_DIR
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def _rebuilt(
    archiver: Archiver,
    name: str,
    dest: Path,
    facts: Callable[[str, dict[str, Any]], dict[str, Any]],
) -> Path:
    """A copy of a store archive with its facts changed, sealed with this server's key."""
    registry = archiver.registry
    keyring = _keys.load(archiver.data_dir / _keys.KEY_FILE)
    with ArchiveFile.open(archiver.store.path_of(name), registry) as archive:
        manifest = archive.manifest
        head = attrs.evolve(
            manifest,
            components=tuple(
                ComponentEntry(c.name, c.payload_version) for c in manifest.components
            ),
            authentication=None,
        )
        with dest.open("wb") as stream:
            builder = ArchiveBuilder(
                registry.format(manifest.format), stream, head=head, keyring=keyring
            )
            for entry, chunks in archive.walk():
                owner, member = entry.path.split("/", 1)
                builder.add_member(owner, member, chunks)
            for component in manifest.components:
                builder.set_facts(component.name, facts(component.name, dict(component.facts)))
            builder.finish()
    return dest


# -- a drill that passes --------------------------------------------------------------------


def test_a_drill_restores_into_a_scratch_database_and_leaves_the_live_one_alone(
    pg_server: Any, odeion_db: str, tmp_path: Path, db_snapshot: Snapshot
) -> None:
    failures = Failures()
    archiver = archiver_with(tmp_path, odeion_db, failures)
    info = archiver.create().archive
    with psycopg.connect(odeion_db) as conn:
        live_counts = count_rows(conn)
    assert info.manifest.component("full_db").facts["row_counts"] == live_counts
    assert live_counts["public.users"] > 0

    before = db_snapshot(odeion_db)
    events: list[ProgressEvent] = []
    report = archiver.drill(info.name, progress=events.append)
    assert db_snapshot(odeion_db) == before

    assert report.passed, report
    assert report.reason is None
    assert (report.archive, report.mode, report.scratch) == (info.name, "full_db", "database")
    assert report.restore_seconds is not None and report.restore_seconds > 0
    checks = {check.name: check for check in report.checks}
    assert set(checks) == {"schema version", "row counts", "users_auth rows", "settings rows"}
    assert all(check.passed for check in checks.values())
    assert f"{len(live_counts)} tables" in checks["row counts"].detail
    assert {e.phase for e in events if e.operation == "drill"} >= {"scratch", "restore", "check"}
    # The scratch database is gone, and nothing is left for the next operation.
    assert _scratch_databases(pg_server.conninfo) == []
    assert _leftovers(tmp_path) == []
    listed = archiver.list()[0]
    assert listed.last_drill is not None
    assert listed.last_drill.passed
    assert listed.last_drill.seconds == report.restore_seconds
    assert listed.last_drill.at == report.started_at
    assert failures.seen == []


def test_the_row_counts_are_taken_in_the_backups_snapshot(
    module_odeion_db: str, tmp_path: Path
) -> None:
    """Rows written after the snapshot, before full_db runs, are neither dumped nor counted."""
    archiver = archiver_with(tmp_path, module_odeion_db)
    with psycopg.connect(module_odeion_db) as conn:
        before = count_rows(conn)
    written: list[int] = []

    def write_meanwhile(event: ProgressEvent) -> None:
        # The snapshot is taken; full_db has not started (neither pg_dump nor the counts).
        if event.phase == "component" and "full_db" in event.message and not written:
            with psycopg.connect(module_odeion_db, autocommit=True) as conn:
                for n in range(5):
                    conn.execute(
                        "INSERT INTO system_settings (key, value) VALUES (%s, '1')",
                        (f"drill.meanwhile.{n}",),
                    )
            written.append(5)

    try:
        info = archiver.create(components=["full_db"], progress=write_meanwhile).archive
        assert written
        with psycopg.connect(module_odeion_db) as conn:
            assert count_rows(conn)["public.system_settings"] == (
                before["public.system_settings"] + 5
            )
        assert info.manifest.component("full_db").facts["row_counts"] == before
        report = archiver.drill(info.name)
        assert report.passed, report
    finally:
        with psycopg.connect(module_odeion_db, autocommit=True) as conn:
            conn.execute("DELETE FROM system_settings WHERE key LIKE 'drill.meanwhile.%'")


def test_an_archive_without_full_db_is_drilled_through_the_json_restore(
    module_odeion_db: str, tmp_path: Path
) -> None:
    archiver = archiver_with(tmp_path, module_odeion_db)
    info = archiver.create(components=["users_auth", "settings"]).archive
    report = archiver.drill(info.name)
    assert report.passed, report
    assert report.mode == "everything_json"
    assert {check.name for check in report.checks} == {
        "schema version",
        "users_auth rows",
        "settings rows",
    }
    users = next(check for check in report.checks if check.name == "users_auth rows")
    assert "users " in users.detail
    assert _scratch_databases(module_odeion_db) == []


def test_an_archive_made_before_row_counts_says_not_recorded(
    module_odeion_db: str, tmp_path: Path
) -> None:
    archiver = archiver_with(tmp_path, module_odeion_db)
    info = archiver.create(components=["full_db"]).archive

    def without_counts(component: str, facts: dict[str, Any]) -> dict[str, Any]:
        facts.pop("row_counts", None)
        return facts

    old = _rebuilt(archiver, info.name, tmp_path / "old.tar.zst", without_counts)
    archiver.delete(info.name)
    name = archiver.import_archive(old).name
    report = archiver.drill(name)
    assert report.passed, report
    counts = next(check for check in report.checks if check.name == "row counts")
    assert counts.passed
    assert counts.detail.startswith("not recorded")


# -- drills that fail, and say why ---------------------------------------------------------


def test_a_drill_whose_counts_differ_fails_names_the_table_and_fires_the_hook_once(
    pg_server: Any, odeion_db: str, tmp_path: Path
) -> None:
    failures = Failures()
    archiver = archiver_with(tmp_path, odeion_db, failures)
    info = archiver.create().archive

    def more_users(component: str, facts: dict[str, Any]) -> dict[str, Any]:
        if component == "full_db":
            counts = dict(facts["row_counts"])
            counts["public.users"] += 3
            counts["public.no_such_table"] = 1
            facts["row_counts"] = counts
        return facts

    altered = _rebuilt(archiver, info.name, tmp_path / "altered.tar.zst", more_users)
    archiver.delete(info.name)
    name = archiver.import_archive(altered).name
    assert archiver.authenticity(name) == "own"

    report = archiver.drill(name)
    assert not report.passed
    counts = next(check for check in report.checks if check.name == "row counts")
    assert not counts.passed
    assert "public.users has" in counts.detail and "expected" in counts.detail
    assert "public.no_such_table is missing" in counts.detail
    assert report.reason is not None and report.reason.startswith("row counts: ")
    assert [c.name for c in report.checks if not c.passed] == ["row counts"]
    assert report.restore_seconds is not None  # the restore itself worked

    assert len(failures.seen) == 1
    failure = failures.seen[0]
    assert (failure.operation, failure.archive, failure.reason) == ("drill", name, report.reason)
    record = archiver.list()[0].last_drill
    assert record is not None and not record.passed and record.reason == report.reason
    assert _scratch_databases(pg_server.conninfo) == []
    assert _leftovers(tmp_path) == []


def test_a_dump_the_target_server_refuses_fails_the_drill_with_the_servers_words(
    pg18: Any, pg15: Any, module_odeion_db: str, tmp_path: Path
) -> None:
    """An archive taken on PostgreSQL 18, drilled where the database is on PostgreSQL 15."""
    failures = Failures()
    made = archiver_with(tmp_path, module_odeion_db).create(components=["full_db"]).archive
    target = f"drill_target_{os.getpid()}"
    with psycopg.connect(pg15.conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target)))
    try:
        on15 = archiver_with(tmp_path, pg15.database_conninfo(target), failures)
        report = on15.drill(made.name)
        assert not report.passed
        assert report.restore_seconds is None  # the restore failed
        assert report.reason is not None
        # pg_dump 18 sets a parameter that PostgreSQL 15 does not know: the server's own words.
        assert 'unrecognized configuration parameter "transaction_timeout"' in report.reason
        assert [f.operation for f in failures.seen] == ["drill"]
        assert _scratch_databases(pg15.conninfo) == []
        assert _leftovers(tmp_path) == []
    finally:
        with psycopg.connect(pg15.conninfo, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(target))
            )


def test_a_hook_that_raises_is_logged_and_changes_nothing(
    module_odeion_db: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    failures = Failures(raises=True)
    archiver = archiver_with(tmp_path, module_odeion_db, failures)
    info = archiver.create(components=["settings"]).archive

    def wrong(component: str, facts: dict[str, Any]) -> dict[str, Any]:
        return {**facts, "rows": {"system_settings": 999_999}}

    name = archiver.import_archive(_rebuilt(archiver, info.name, tmp_path / "w.zip", wrong)).name
    with caplog.at_level(logging.ERROR):
        report = archiver.drill(name)
    assert not report.passed
    assert len(failures.seen) == 1
    assert "odeion_archive_backup_failed hook failed" in caplog.text
    record = next(i for i in archiver.list() if i.name == name).last_drill
    assert record is not None and record.reason == report.reason


# -- the scratch database is dropped however the drill ends ------------------------------


def test_a_cancelled_drill_drops_its_scratch_database(
    module_odeion_db: str, tmp_path: Path
) -> None:
    archiver = archiver_with(tmp_path, module_odeion_db)
    info = archiver.create(components=["full_db"]).archive
    cancel = CancelToken()
    seen: list[str] = []

    def cancel_mid_restore(event: ProgressEvent) -> None:
        if event.operation == "restore" and event.component == "full_db":
            seen.extend(_scratch_databases(module_odeion_db))
            cancel.cancel()

    with pytest.raises(CancelledError):
        archiver.drill(info.name, progress=cancel_mid_restore, cancel=cancel)
    assert seen  # it was cancelled while the scratch database existed
    assert _scratch_databases(module_odeion_db) == []
    assert _leftovers(tmp_path) == []
    assert archiver.list()[0].last_drill is None  # a cancelled drill records nothing


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_a_drill_killed_with_kill_9_leaves_no_scratch_database_after_the_next_operation(
    pg18: Any, tmp_path: Path
) -> None:
    live = f"drill_kill_{os.getpid()}"
    with psycopg.connect(pg18.conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(live)))
    url = pg18.database_conninfo(live)
    try:
        with psycopg.connect(url) as conn:
            migrate(conn)
            seed(
                conn,
                SeedScale(
                    users=1_000,
                    invite_codes=100,
                    api_tokens_per_user=2,
                    sessions=1_000,
                    settings=20,
                    libraries=4,
                    media_items=100_000,
                    watch_history=1_000_000,
                ),
                seed=1,
            )
        archiver = archiver_with(tmp_path, url)
        name = archiver.create(components=["full_db"]).archive.name
        env = {**os.environ, "ODEION_DATA_DIR": str(tmp_path), "ODEION_DATABASE_URL": url}
        errors = tmp_path / "drill.stderr"
        with errors.open("wb") as stderr:
            process = subprocess.Popen(
                [str(SCRIPT), "drill", name], env=env, stdout=subprocess.DEVNULL, stderr=stderr
            )

        def restoring() -> bool:
            if process.poll() is not None:
                pytest.fail(f"the drill ended before it was killed: {errors.read_text()}")
            return _scratch_databases(pg18.conninfo) != []

        try:
            # Mid-drill: the scratch database exists (the restore into it takes about a second).
            _wait_for(restoring, "the drill's scratch database")
            assert process.poll() is None  # still restoring
            process.send_signal(signal.SIGKILL)
            process.wait()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert _scratch_databases(pg18.conninfo) != []  # killed: nothing could drop it
        assert _leftovers(tmp_path) != []
        archiver.prune(keep_last=5)  # the next operation that takes the lock
        assert _scratch_databases(pg18.conninfo) == []
        assert _leftovers(tmp_path) == []
    finally:
        with psycopg.connect(pg18.conninfo, autocommit=True) as conn:
            for db in [live, *_scratch_databases(pg18.conninfo)]:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db))
                )


# -- a role that cannot create databases drills in a cluster of its own --------------------


@contextlib.contextmanager
def _role_database(pg18: Any, *, createdb: bool) -> Iterator[str]:
    """A seeded database owned by a plain role (with or without CREATEDB), as that role."""
    role = f"drill_role_{os.getpid()}_{int(createdb)}"
    name = f"drill_role_db_{os.getpid()}_{int(createdb)}"
    power = "CREATEDB" if createdb else "NOCREATEDB"
    with psycopg.connect(pg18.conninfo, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER {}").format(
                sql.Identifier(role), sql.SQL(power)
            )
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(role)
            )
        )
    try:
        with psycopg.connect(pg18.database_conninfo(name)) as conn:
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
            migrate(conn)
            seed(conn, SeedScale.tiny(), seed=2)
        yield psycopg.conninfo.make_conninfo(pg18.database_conninfo(name), user=role)
    finally:
        with psycopg.connect(pg18.conninfo, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture
def plain_role_db(pg18: Any) -> Iterator[str]:
    """A seeded database owned by a role without CREATEDB; its conninfo (as that role)."""
    with _role_database(pg18, createdb=False) as url:
        yield url


def test_a_role_with_createdb_drills_in_a_database_of_its_own_on_the_server(
    pg18: Any, tmp_path: Path
) -> None:
    with _role_database(pg18, createdb=True) as url:
        archiver = archiver_with(tmp_path, url)
        info = archiver.create().archive
        report = archiver.drill(info.name)
        assert report.passed, report
        assert report.scratch == "database"
        assert _scratch_databases(pg18.conninfo) == []


@pytest.fixture
def cluster_dir() -> Iterator[Path]:
    """A data directory for drills in a cluster, outside pytest's base directory.

    The cluster runs as a system user of its own when the tests run as root; a
    concurrent pytest session makes its base directory private (mode 0700) again,
    which would cut that user off from a cluster inside it.
    """
    directory = Path(tempfile.mkdtemp(prefix="odeion-drill-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_a_role_without_createdb_drills_in_a_temporary_cluster(
    pg18: Any, plain_role_db: str, cluster_dir: Path, db_snapshot: Snapshot
) -> None:
    tmp_path = cluster_dir
    archiver = archiver_with(tmp_path, plain_role_db)
    info = archiver.create().archive
    before = db_snapshot(plain_role_db)
    clusters: list[str] = []

    def watch(event: ProgressEvent) -> None:
        if event.operation == "restore":
            clusters.extend(_leftovers(tmp_path))

    report = archiver.drill(info.name, progress=watch)
    assert report.passed, report
    assert report.scratch == "cluster"
    assert clusters and all(name.startswith(PREFIX) for name in clusters)
    assert db_snapshot(plain_role_db) == before
    assert _leftovers(tmp_path) == []
    assert _scratch_databases(pg18.conninfo) == []


def test_a_cluster_left_by_a_killed_drill_is_stopped_and_removed(
    plain_role_db: str, cluster_dir: Path
) -> None:
    """A killed drill's cluster (its server still running) goes with the next operation."""
    tmp_path = cluster_dir
    archiver = archiver_with(tmp_path, plain_role_db)
    name = archiver.create(components=["full_db"]).archive.name
    env = {**os.environ, "ODEION_DATA_DIR": str(tmp_path), "ODEION_DATABASE_URL": plain_role_db}
    process = subprocess.Popen(
        [str(SCRIPT), "drill", name], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    servers: list[int] = []

    def ready() -> bool:
        for directory in _leftovers(tmp_path):
            try:
                lines = (tmp_path / DRILL_DIR / directory / "pgdata" / "postmaster.pid").read_text()
            except OSError:
                continue
            fields = lines.split("\n")
            # A running server (not initdb's bootstrap backend, whose pid is negative).
            if len(fields) > 7 and fields[7].strip() == "ready" and int(fields[0]) > 0:
                servers.append(int(fields[0]))
                return True
        return False

    try:
        _wait_for(ready, "the drill's cluster to start")
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert len(_leftovers(tmp_path)) == 1
    postmaster = servers[0]
    assert _running(postmaster)  # the killed drill's server outlived it
    archiver.delete(name)  # the next operation that takes the lock
    assert _leftovers(tmp_path) == []
    assert not _running(postmaster)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


# -- the command line ----------------------------------------------------------------------


def _cli(data_dir: Path, url: str, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ODEION_DATA_DIR": str(data_dir), "ODEION_DATABASE_URL": url}
    done = subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, env=env, check=False, timeout=300
    )
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return done


def test_the_command_line_drills_and_lists_the_outcome(
    module_odeion_db: str, tmp_path: Path
) -> None:
    import json

    archiver = archiver_with(tmp_path, module_odeion_db)
    name = archiver.create(components=["users_auth", "settings", "full_db"]).archive.name
    out = json.loads(_cli(tmp_path, module_odeion_db, "--json", "drill", name).stdout)
    assert out["passed"] is True and out["archive"] == name and out["mode"] == "full_db"
    assert {c["name"] for c in out["checks"]} >= {"row counts", "schema version"}
    assert out["restore_seconds"] > 0

    text = _cli(tmp_path, module_odeion_db, "drill", name).stdout
    assert "passed" in text and "row counts" in text

    listed = json.loads(_cli(tmp_path, module_odeion_db, "--json", "list").stdout)[0]
    assert listed["last_drill"]["passed"] is True
    assert listed["last_verification"] is None
    table = _cli(tmp_path, module_odeion_db, "list").stdout
    assert "DRILLED" in table and "VERIFIED" in table

    def wrong(component: str, facts: dict[str, Any]) -> dict[str, Any]:
        return {**facts, "rows": {"system_settings": 999_999}} if component == "settings" else facts

    bad = archiver.import_archive(_rebuilt(archiver, name, tmp_path / "bad.tar.zst", wrong)).name
    failed = _cli(tmp_path, module_odeion_db, "drill", bad, code=4)
    assert "FAILED" in failed.stdout and "system_settings" in failed.stdout


def test_drilling_an_unknown_archive_is_a_clear_error(
    module_odeion_db: str, tmp_path: Path
) -> None:
    done = _cli(tmp_path, module_odeion_db, "drill", "no-such-archive", code=1)
    assert "no-such-archive" in done.stderr


def test_a_damaged_or_foreign_archive_fails_the_drill_and_says_why(
    module_odeion_db: str, tmp_path: Path
) -> None:
    failures = Failures()
    archiver = archiver_with(tmp_path / "data", module_odeion_db, failures)
    info = archiver.create(components=["settings", "full_db"]).archive
    elsewhere = archiver_with(tmp_path / "other", module_odeion_db, failures)
    foreign = elsewhere.import_archive(info.path).name
    with info.path.open("r+b") as stream:  # one byte flipped in the middle of the dump
        stream.seek(info.size // 2)
        byte = stream.read(1)
        stream.seek(info.size // 2)
        stream.write(bytes([byte[0] ^ 0x40]))

    damaged = archiver.drill(info.name)
    assert not damaged.passed
    assert damaged.reason is not None and "damaged" in damaged.reason
    # An archive this server did not make: its dump's SQL is not replayed, in a drill either.
    refused = elsewhere.drill(foreign)
    assert not refused.passed
    assert refused.reason is not None and "[foreign_dump]" in refused.reason
    info.path.write_bytes(info.path.read_bytes()[:300])  # truncated: cannot even be opened
    unreadable = archiver.drill(info.name)
    assert not unreadable.passed and unreadable.reason
    assert unreadable.restore_seconds is None
    record = archiver.store.record(info.name)
    assert record is not None and record.last_drill is not None
    assert record.last_drill.reason == unreadable.reason
    assert [(f.operation, f.archive) for f in failures.seen] == [
        ("drill", info.name),
        ("drill", foreign),
        ("drill", info.name),
    ]
    assert _scratch_databases(module_odeion_db) == []


def test_cleanup_never_follows_stops_or_removes_what_no_drill_made(tmp_path: Path) -> None:
    """A directory or link named like a drill's cluster, but not one, is left alone."""
    data_dir = tmp_path / "data"
    root = data_dir / DRILL_DIR
    root.mkdir(parents=True)
    # A PostgreSQL server's data directory elsewhere, with a live "postmaster" on it.
    elsewhere = tmp_path / "production"
    pgdata = elsewhere / "pgdata"
    pgdata.mkdir(parents=True)
    (pgdata / "PG_VERSION").write_text("18\n")
    server = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", str(pgdata.resolve())]
    )
    try:
        (pgdata / "postmaster.pid").write_text(f"{server.pid}\n{pgdata}\n")
        (root / f"{PREFIX}link").symlink_to(elsewhere, target_is_directory=True)
        mine = root / f"{PREFIX}mine"
        mine.mkdir()
        (mine / "notes.txt").write_text("kept")
        killed_early = root / f"{PREFIX}0123456789ab"
        killed_early.mkdir()  # a drill killed between mkdir and its marker
        assert clean_leftovers(data_dir, None) == [killed_early.name]
        time.sleep(0.2)
        assert server.poll() is None, "the cleanup stopped a server no drill started"
        assert (pgdata / "PG_VERSION").is_file()
        assert (root / f"{PREFIX}link").is_symlink()
        assert (mine / "notes.txt").read_text() == "kept"
    finally:
        server.kill()
        server.wait()


def test_cleanup_never_drops_a_database_whose_name_no_drill_gives(
    odeion_db: str, tmp_path: Path
) -> None:
    """A user's own database named odeion_drill_... stays, even with a marker naming it."""
    data_dir = tmp_path / "data"
    root = data_dir / DRILL_DIR
    root.mkdir(parents=True)
    mine = f"{PREFIX}reports"
    with psycopg.connect(odeion_db, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(mine)))
    try:
        server = make_conninfo(
            "", **{k: v for k, v in conninfo_to_dict(odeion_db).items() if k != "password"}
        )
        (root / f"{mine}.database").write_text(server)
        killed = f"{PREFIX}0123456789ab"
        (root / f"{killed}.database").write_text(server)  # a killed drill's, before CREATE
        assert clean_leftovers(data_dir, odeion_db) == [killed]
        assert mine in _scratch_databases(odeion_db)
        assert (root / f"{mine}.database").is_file()
    finally:
        with psycopg.connect(odeion_db, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(mine)))
