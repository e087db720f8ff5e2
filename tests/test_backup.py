"""Creating backups from real PostgreSQL servers: contents, one instant, failures."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest
import zstandard

from odeion_archive import Archiver, CancelToken, ProgressEvent, Registry
from odeion_archive._archive import ArchiveFile
from odeion_archive._backup import BackupOptions, run_backup
from odeion_archive._manifest import TAIL_MEMBER
from odeion_archive._store import TEMP_PREFIX
from odeion_archive.errors import BackupFailedError, CancelledError, InsufficientSpaceError

COMPONENTS = ("users_auth", "settings", "full_db")
COMBINATIONS = [combo for n in range(1, 4) for combo in itertools.combinations(COMPONENTS, n)]


def members_of(path: Path) -> dict[str, bytes]:
    """Every payload member of an archive, read through the safe walk."""
    with ArchiveFile.open(path, Registry.default(entry_points=False)) as archive:
        return {entry.path: b"".join(chunks) for entry, chunks in archive.walk()}


def jsonl(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def restore_dump(dump: bytes, pg_restore: Path) -> list[str]:
    """The table of contents pg_restore reads from a dump."""
    listing = subprocess.run(
        [str(pg_restore), "-l"], input=dump, capture_output=True, check=True
    ).stdout.decode()
    return [line for line in listing.splitlines() if line and not line.startswith(";")]


@pytest.mark.parametrize("fmt", ["tar.zst", "zip"])
@pytest.mark.parametrize("components", COMBINATIONS, ids="+".join)
def test_every_combination_backs_up_and_reads_back(
    pg_server: Any, odeion_db: str, tmp_path: Path, fmt: str, components: tuple[str, ...]
) -> None:
    archiver = Archiver(tmp_path, database_url=odeion_db, server_version="9.9.9")
    result = archiver.create(components=components, format=fmt)
    info = result.archive

    assert info.format == fmt
    assert info.components == components
    assert archiver.verify(info.name).ok
    assert [i.name for i in archiver.list()] == [info.name]
    manifest = archiver.inspect(info.name)
    assert manifest.server_version == "9.9.9"
    assert manifest.schema_version == 2

    members = members_of(info.path)
    with psycopg.connect(odeion_db) as conn:
        if "users_auth" in components:
            users = jsonl(members["users_auth/users.jsonl"])
            expected = [r[0] for r in conn.execute("SELECT username FROM users ORDER BY id")]
            assert [u["username"] for u in users] == expected
            assert manifest.component("users_auth").facts["rows"]["users"] == len(expected)
            tokens = jsonl(members["users_auth/api_tokens.jsonl"])
            owners = [
                r[0]
                for r in conn.execute(
                    "SELECT u.username FROM api_tokens t JOIN users u ON u.id = t.user_id ORDER BY t.id"
                )
            ]
            assert [t["username"] for t in tokens] == owners
            assert all("id" not in t and "user_id" not in t for t in tokens)
        if "settings" in components:
            settings = jsonl(members["settings/system_settings.jsonl"])
            rows = conn.execute("SELECT key, value FROM system_settings ORDER BY key").fetchall()
            assert [(s["key"], s["value"]) for s in settings] == [tuple(r) for r in rows]
        if "full_db" in components:
            facts = manifest.component("full_db").facts
            assert facts["server_version_num"] // 10000 == pg_server.major
            assert facts["dump_archive_version"].startswith("1.")
            toc = restore_dump(members["full_db/database.dump"], pg_server.bin_dir / "pg_restore")
            assert any("TABLE DATA public watch_history" in line for line in toc)
            assert any("TABLE DATA public sessions" in line for line in toc)


def test_archive_files_and_directory_are_private_whatever_the_umask(
    odeion_db: str, tmp_path: Path
) -> None:
    url = odeion_db
    old = os.umask(0)
    try:
        info = Archiver(tmp_path, database_url=url).create(components=["settings"]).archive
    finally:
        os.umask(old)
    assert (tmp_path / "backups").stat().st_mode & 0o777 == 0o700
    assert info.path.stat().st_mode & 0o777 == 0o600


def test_two_backups_in_the_same_second_get_different_names(odeion_db: str, tmp_path: Path) -> None:
    archiver = Archiver(tmp_path, database_url=odeion_db)
    names = {archiver.create(components=["settings"]).archive.name for _ in range(3)}
    assert len(names) == 3
    assert len(archiver.list()) == 3


def test_progress_reports_phases_and_bytes(odeion_db: str, tmp_path: Path) -> None:
    events: list[ProgressEvent] = []
    Archiver(tmp_path, database_url=odeion_db).create(progress=events.append)
    phases = {e.phase for e in events}
    assert {"snapshot", "component", "finalize", "done"} <= phases
    writes = [e for e in events if e.phase == "write" and e.component == "full_db"]
    assert writes and writes[-1].done > 0 and writes[-1].unit == "bytes"
    assert {e.component for e in events if e.unit == "rows"} >= {"users_auth", "settings"}


# -- one instant ----------------------------------------------------------------


def test_all_components_describe_one_instant_while_a_writer_changes_the_database(
    pg_server: Any, odeion_db: str, tmp_path: Path, empty_db: str
) -> None:
    """A writer adds a user and a setting together in each transaction, all along."""
    stop = threading.Event()
    written = 0

    def writer() -> None:
        nonlocal written
        with psycopg.connect(odeion_db, autocommit=True) as conn:
            for i in itertools.count():
                if stop.is_set():
                    return
                with conn.transaction():
                    conn.execute(
                        "INSERT INTO users (username, password_hash) VALUES (%s, 'x')",
                        (f"writer{i}",),
                    )
                    conn.execute(
                        "INSERT INTO system_settings (key, value) VALUES (%s, '1')",
                        (f"writer{i}",),
                    )
                written = i + 1

    def slow(_event: ProgressEvent) -> None:
        time.sleep(0.02)  # lets the writer commit between every step of the backup

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while written < 5:
            time.sleep(0.01)
        info = Archiver(tmp_path, database_url=odeion_db).create(progress=slow).archive
    finally:
        stop.set()
        thread.join()
    members = members_of(info.path)
    users = {
        u["username"]
        for u in jsonl(members["users_auth/users.jsonl"])
        if u["username"].startswith("writer")
    }
    settings = {
        s["key"]
        for s in jsonl(members["settings/system_settings.jsonl"])
        if s["key"].startswith("writer")
    }
    assert users == settings
    assert 5 <= len(users) < written  # taken mid-way, not before nor after the writer

    # The dump holds exactly the same writer rows.
    dump = tmp_path / "db.dump"
    dump.write_bytes(members["full_db/database.dump"])
    subprocess.run(
        [str(pg_server.bin_dir / "pg_restore"), "--no-owner", "-d", empty_db, str(dump)],
        check=True,
        capture_output=True,
    )
    with psycopg.connect(empty_db) as conn:
        dumped = {
            r[0] for r in conn.execute("SELECT username FROM users WHERE username LIKE 'writer%'")
        }
        dumped_settings = {
            r[0] for r in conn.execute("SELECT key FROM system_settings WHERE key LIKE 'writer%'")
        }
    assert dumped == users == dumped_settings


# -- failures leave nothing listed -----------------------------------------------------


def _big_table(conninfo: str) -> None:
    """Make the dump several megabytes, so that it is still running when interrupted."""
    with psycopg.connect(conninfo) as conn:
        conn.execute(
            "CREATE TABLE plugin_blobs AS SELECT g AS id, repeat(md5(g::text), 200) AS body"
            " FROM generate_series(1, 8000) g"
        )


def _assert_nothing_left(tmp_path: Path, archiver: Archiver, before: list[str]) -> None:
    assert [i.name for i in archiver.list()] == before
    assert not [p for p in (tmp_path / "backups").iterdir() if p.name.startswith(TEMP_PREFIX)]


def _pg_dumps() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if p.name() == "pg_dump"]


def test_a_killed_pg_dump_fails_the_backup_and_lists_nothing(
    odeion_db: str, tmp_path: Path
) -> None:
    _big_table(odeion_db)
    archiver = Archiver(tmp_path, database_url=odeion_db)
    first = archiver.create(components=["settings"]).archive
    killed: list[int] = []

    def kill(event: ProgressEvent) -> None:
        if event.component == "full_db" and event.phase == "write" and not killed:
            for process in _pg_dumps():
                process.send_signal(signal.SIGKILL)
                killed.append(process.pid)

    with pytest.raises(BackupFailedError, match="pg_dump was killed by signal 9"):
        archiver.create(progress=kill)
    assert killed
    _assert_nothing_left(tmp_path, archiver, [first.name])


def test_pg_dump_losing_its_server_fails_with_its_own_words(odeion_db: str, tmp_path: Path) -> None:
    _big_table(odeion_db)
    archiver = Archiver(tmp_path, database_url=odeion_db)
    done: list[Any] = []

    def terminate(event: ProgressEvent) -> None:
        if event.component == "full_db" and event.phase == "write" and not done:
            with psycopg.connect(odeion_db, autocommit=True) as conn:
                done.extend(
                    conn.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE application_name = 'pg_dump'"
                    ).fetchall()
                )

    # pg_dump reports what it saw first: the server's notice, or the closed connection.
    with pytest.raises(
        BackupFailedError,
        # pg_dump's words depend on whether the server's goodbye arrived first.
        match=r"(?s)pg_dump exited with 1: .*(server closed the connection"
        r"|terminating connection due to administrator command)",
    ):
        archiver.create(progress=terminate)
    assert done
    _assert_nothing_left(tmp_path, archiver, [])


def test_pg_dump_refused_by_the_server_fails_with_its_own_words(
    odeion_db: str, tmp_path: Path
) -> None:
    with psycopg.connect(odeion_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE plugin_secret (x int)")
        conn.execute("DROP ROLE IF EXISTS odeion_backup_ro")
        conn.execute("CREATE ROLE odeion_backup_ro LOGIN")
        conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO odeion_backup_ro")
        conn.execute("REVOKE ALL ON plugin_secret FROM odeion_backup_ro")
    url = psycopg.conninfo.make_conninfo(odeion_db, user="odeion_backup_ro")
    archiver = Archiver(tmp_path, database_url=url)
    try:
        with pytest.raises(BackupFailedError, match="permission denied for table plugin_secret"):
            archiver.create()
        _assert_nothing_left(tmp_path, archiver, [])
    finally:
        with psycopg.connect(odeion_db, autocommit=True) as conn:
            conn.execute("DROP OWNED BY odeion_backup_ro")
            conn.execute("DROP ROLE odeion_backup_ro")


def test_cancel_stops_within_a_second_and_lists_nothing(odeion_db: str, tmp_path: Path) -> None:
    _big_table(odeion_db)
    archiver = Archiver(tmp_path, database_url=odeion_db)
    cancel = CancelToken()
    asked: list[float] = []

    def slow(event: ProgressEvent) -> None:
        if event.component == "full_db" and not asked:
            asked.append(time.monotonic())
            cancel.cancel()

    with pytest.raises(CancelledError):
        archiver.create(progress=slow, cancel=cancel)
    assert asked and time.monotonic() - asked[0] < 1.0
    assert not _pg_dumps()
    _assert_nothing_left(tmp_path, archiver, [])


def test_not_enough_space_refuses_before_writing(odeion_db: str, tmp_path: Path) -> None:
    archiver = Archiver(tmp_path, database_url=odeion_db)
    options = BackupOptions(reserve_bytes=2**62)
    with pytest.raises(InsufficientSpaceError, match="not enough free space.*prune old backups"):
        run_backup(odeion_db, archiver.store, archiver.registry, options)
    _assert_nothing_left(tmp_path, archiver, [])


_KILLED_BACKUP = """
import sys, time
from odeion_archive import Archiver
moment = sys.argv[3]
def slow(event):
    if (
        (moment == "export" and event.phase.startswith("export"))
        or (moment == "dump" and event.component == "full_db" and event.phase == "write")
        or event.phase == moment
    ):
        print("at", moment, flush=True)
        time.sleep(30)
Archiver(sys.argv[1], database_url=sys.argv[2]).create(progress=slow)
"""


@pytest.mark.parametrize("moment", ["export", "dump", "finalize", "done"])
def test_kill_9_at_any_moment_of_a_backup_lists_nothing_partial_and_frees_the_lock(
    odeion_db: str, tmp_path: Path, moment: str
) -> None:
    _big_table(odeion_db)
    archiver = Archiver(tmp_path, database_url=odeion_db)
    first = archiver.create(components=["users_auth"]).archive
    before = first.path.read_bytes()
    process = subprocess.Popen(
        [sys.executable, "-c", _KILLED_BACKUP, str(tmp_path), odeion_db, moment],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == f"at {moment}"
    leftovers = [p for p in (tmp_path / "backups").iterdir() if p.name.startswith(TEMP_PREFIX)]
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stdout.close()

    listed = archiver.list()
    assert first.path.read_bytes() == before
    if moment == "done":
        # Killed after the archive got its name: it is whole.
        assert not leftovers
        assert len(listed) == 2
        assert archiver.verify(listed[0].name).ok
    else:
        assert leftovers  # it was writing its temporary archive
        assert [i.name for i in listed] == [first.name]
    # The next operation gets the lock (the dead holder's is gone) and cleans up.
    second = archiver.create(components=["settings"]).archive
    assert archiver.list()[0].name == second.name
    assert not [p for p in (tmp_path / "backups").iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_json_components_need_the_odeion_schema(empty_db: str, tmp_path: Path) -> None:
    archiver = Archiver(tmp_path, database_url=empty_db)
    with pytest.raises(BackupFailedError, match="no Odeion schema"):
        archiver.create(components=["settings"])
    # A database without Odeion's schema can still be dumped whole.
    assert archiver.create(components=["full_db"]).archive.components == ("full_db",)


def test_the_dump_streams_into_a_tar_zst_archive_without_staging(
    odeion_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pg_dump's output has no size in advance; it must still not be spooled anywhere."""

    def no_spooling(*args: object, **kwargs: object) -> None:
        raise AssertionError("a member was spooled")

    monkeypatch.setattr(tempfile, "SpooledTemporaryFile", no_spooling)
    info = Archiver(tmp_path, database_url=odeion_db).create(format="tar.zst").archive
    assert Archiver(tmp_path, database_url=odeion_db).verify(info.name).ok


@pytest.mark.parametrize("fmt", ["tar.zst", "zip"])
def test_a_full_db_backup_records_the_archive_bytes_that_hold_its_dump(
    odeion_db: str, tmp_path: Path, fmt: str
) -> None:
    """tar.zst reads a member from the bytes before its end: their sha256 checks the dump.

    zip finds members through its central directory, written last: it records none.
    """
    archiver = Archiver(tmp_path, database_url=odeion_db)
    info = archiver.create(components=["full_db"], format=fmt).archive
    facts = archiver.inspect(info.name).component("full_db").facts
    if fmt == "zip":
        assert "dump_prefix" not in facts
        return
    prefix = facts["dump_prefix"]
    data = info.path.read_bytes()
    # Member entries keep the fields every release knows: a release that drops unknown
    # fields before it checks the seal over the manifest still finds it intact.
    with ArchiveFile.open(info.path, Registry.default()) as archive:
        tail = json.loads(archive._manifest_bytes[TAIL_MEMBER])
    assert {key for c in tail["components"] for m in c["members"] for key in m} == {
        "path",
        "size",
        "sha256",
    }
    assert 0 < prefix["end"] < len(data)
    assert hashlib.sha256(data[: prefix["end"]]).hexdigest() == prefix["sha256"]
    # Those bytes alone, decompressed as the tar stream they begin, hold the whole dump.
    dump = archiver.inspect(info.name).member("full_db/database.dump")
    stream = zstandard.ZstdDecompressor().stream_reader(
        io.BytesIO(data[: prefix["end"]]), read_across_frames=True
    )
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        found = next(m for m in tar if m.name == dump.path)
        extracted = tar.extractfile(found)
        assert extracted is not None
        assert hashlib.sha256(extracted.read()).hexdigest() == dump.sha256


_MEASURED_BACKUP = """
import sys
from odeion_archive import Archiver
# zip: no compression worker threads, whose buffers would blur the measure
Archiver(sys.argv[1], database_url=sys.argv[2]).create(components=["users_auth"], format="zip")
from odeion_archive.testing import peak_rss
print(peak_rss())
"""


def test_users_are_exported_by_streaming_not_held_in_memory(pg18: Any, tmp_path: Path) -> None:
    """Ten times the users, about the same peak memory of the backing-up process."""
    from odeion_archive._schema import migrate
    from odeion_archive.sample import SeedScale, seed

    peaks = []
    for users in (20_000, 200_000):
        name = f"stream_{users}"
        with psycopg.connect(pg18.conninfo, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name}")
        url = pg18.database_conninfo(name)
        try:
            with psycopg.connect(url) as conn:
                migrate(conn)
                seed(
                    conn,
                    SeedScale(
                        users=users,
                        invite_codes=users // 10,
                        api_tokens_per_user=2,
                        sessions=0,
                        settings=10,
                        libraries=0,
                        media_items=0,
                        watch_history=0,
                    ),
                )
            done = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    _MEASURED_BACKUP,
                    str(tmp_path / name),
                    url,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            peaks.append(int(done.stdout.split()[-1]))
            archive = next(
                p for p in (tmp_path / name / "backups").iterdir() if not p.name.startswith(".")
            )
            assert archive.stat().st_size > users * 20  # the users really are in there
        finally:
            with psycopg.connect(pg18.conninfo, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    small, large = peaks
    # 180,000 more users are tens of megabytes of JSON; the peak may not grow with them.
    assert large - small < 16 * 1024 * 1024, peaks


def test_a_full_db_backup_does_not_load_the_restores_sql_parser(
    module_odeion_db: str, tmp_path: Path
) -> None:
    """The SQL guard's parser (pglast) is a fixed cost of restores only, not of backups."""
    script = (
        "import sys\n"
        "from odeion_archive import Archiver\n"
        "info = Archiver(sys.argv[1], database_url=sys.argv[2]).create(components=['full_db'])\n"
        "assert info.archive.size > 0\n"
        "print('pglast' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), module_odeion_db],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "False", done.stderr
