"""The backup store: listing, download, import of uploads, delete, prune, the lock, hooks."""

from __future__ import annotations

import datetime as dt
import io
import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest

from odeion_archive import (
    Archiver,
    BackupResult,
    CheckRecord,
    Registry,
    RestoreResult,
    hookimpl,
)
from odeion_archive._archive import ArchiveFile
from odeion_archive._lock import DataDirLock
from odeion_archive._store import RECORDS_DIR, TEMP_PREFIX
from odeion_archive.errors import ArchiveInvalidError, BusyError, NotFoundError, RestoreBlockedError
from odeion_archive.formats.zip import ZipFormat
from odeion_archive.testing import write_archive


@pytest.fixture(scope="module")
def odeion18(module_odeion_db: str) -> str:
    """A seeded Odeion database shared by this module's tests."""
    return module_odeion_db


@pytest.fixture
def archiver(odeion18: str, tmp_path: Path) -> Archiver:
    return Archiver(tmp_path / "data", database_url=odeion18)


def _store_files(archiver: Archiver) -> list[str]:
    """The files of the store (not its directory of entry records); none before the first."""
    if not archiver.store.directory.exists():
        return []
    return sorted(p.name for p in archiver.store.directory.iterdir() if p.name != RECORDS_DIR)


def test_list_is_newest_first_from_the_manifests_not_the_names(archiver: Archiver) -> None:
    first = archiver.create(components=["settings"]).archive
    second = archiver.create(components=["settings"], format="zip").archive
    # Swap the names: the order must still follow the manifests' times.
    directory = archiver.store.directory
    (directory / first.name).rename(directory / "zzz-old")
    (directory / second.name).rename(directory / "aaa-new")
    listed = archiver.list()
    assert [i.name for i in listed] == ["aaa-new", "zzz-old"]
    assert listed[0].format == "zip"  # recognised from its bytes, whatever the name
    assert listed[0].created_at > listed[1].created_at

    assert archiver.prune(1) == ["zzz-old"]
    assert [i.name for i in archiver.list()] == ["aaa-new"]


def test_list_skips_files_that_are_not_archives(archiver: Archiver) -> None:
    info = archiver.create(components=["settings"]).archive
    (archiver.store.directory / "notes.txt").write_text("not an archive")
    assert [i.name for i in archiver.list()] == [info.name]


def test_download_streams_the_archive_bytes(archiver: Archiver) -> None:
    info = archiver.create(components=["settings"]).archive
    with archiver.open_download(info.name) as stream:
        assert stream.read() == info.path.read_bytes()
    with pytest.raises(NotFoundError, match="use a name that 'list' shows"):
        archiver.open_download("../etc/passwd")


def test_delete_removes_one_archive(archiver: Archiver) -> None:
    keep = archiver.create(components=["settings"]).archive
    gone = archiver.create(components=["settings"]).archive
    archiver.delete(gone.name)
    assert [i.name for i in archiver.list()] == [keep.name]
    with pytest.raises(NotFoundError):
        archiver.delete(gone.name)


def test_import_adds_a_verified_upload(archiver: Archiver, tmp_path: Path) -> None:
    info = archiver.create(components=["users_auth", "settings"]).archive
    upload = tmp_path / "upload.bin"
    shutil.copy(info.path, upload)
    archiver.delete(info.name)

    imported = archiver.import_archive(io.BytesIO(upload.read_bytes()))
    assert [i.name for i in archiver.list()] == [imported.name]
    assert imported.path.read_bytes() == upload.read_bytes()
    assert imported.path.stat().st_mode & 0o777 == 0o600
    assert archiver.verify(imported.name).ok


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage"])
def test_a_rejected_upload_leaves_nothing_behind(
    archiver: Archiver, tmp_path: Path, damage: str
) -> None:
    info = archiver.create(components=["users_auth", "settings"]).archive
    data = bytearray(info.path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x10
    elif damage == "truncate":
        del data[len(data) * 2 // 3 :]
    else:
        data = bytearray(b"PK\x03\x04" + os.urandom(2000))
    before = _store_files(archiver)
    with pytest.raises(ArchiveInvalidError):
        archiver.import_archive(io.BytesIO(bytes(data)))
    assert _store_files(archiver) == before


def test_prune_keeps_the_newest(archiver: Archiver) -> None:
    names = [archiver.create(components=["settings"]).archive.name for _ in range(4)]
    assert sorted(archiver.prune(2)) == sorted(names[:2])
    assert [i.name for i in archiver.list()] == names[:1:-1]
    assert archiver.prune(5) == []


def test_a_second_operation_during_one_is_busy(archiver: Archiver) -> None:
    with DataDirLock(archiver.data_dir, "backup"), pytest.raises(BusyError, match="busy.*backup"):
        archiver.create(components=["settings"])
    with DataDirLock(archiver.data_dir, "backup"), pytest.raises(BusyError):
        archiver.restore("whatever.tar.zst", "settings")
    archiver.create(components=["settings"])  # free again


_HOLD_LOCK = """
import sys, time
from pathlib import Path
from odeion_archive._lock import DataDirLock
lock = DataDirLock(Path(sys.argv[1]), "backup")
lock.acquire()
print("locked", flush=True)
time.sleep(60)
"""


def test_a_lock_held_by_another_process_is_busy_until_it_dies(archiver: Archiver) -> None:
    archiver.data_dir.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(archiver.data_dir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(BusyError, match=f"pid {holder.pid}"):
            archiver.create(components=["settings"])
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    archiver.create(components=["settings"])  # recovered automatically


def test_leftovers_of_an_interrupted_backup_are_cleaned_on_the_next_start(
    archiver: Archiver,
) -> None:
    archiver.store.ensure()
    leftover = archiver.store.directory / f"{TEMP_PREFIX}12345-deadbeef"
    leftover.write_bytes(b"half an archive")
    assert archiver.list() == []
    archiver.create(components=["settings"])
    assert not leftover.exists()


class _Recorder:
    def __init__(self) -> None:
        self.backups: list[BackupResult] = []
        self.restores: list[RestoreResult] = []

    @hookimpl
    def odeion_archive_backup_created(self, result: BackupResult) -> None:
        self.backups.append(result)

    @hookimpl
    def odeion_archive_restore_finished(self, result: RestoreResult) -> None:
        self.restores.append(result)


def test_hosts_observe_finished_backups_through_a_hook(odeion18: str, tmp_path: Path) -> None:
    registry = Registry.default(entry_points=False)
    recorder = _Recorder()
    registry.register(recorder, name="host")
    archiver = Archiver(tmp_path, database_url=odeion18, registry=registry)
    result = archiver.create(components=["settings"])
    assert recorder.backups == [result]


def test_a_failing_hook_does_not_undo_the_backup(odeion18: str, tmp_path: Path) -> None:
    class Broken:
        @hookimpl
        def odeion_archive_backup_created(self, result: BackupResult) -> None:
            raise RuntimeError("notification service down")

    registry = Registry.default(entry_points=False)
    registry.register(Broken(), name="broken")
    archiver = Archiver(tmp_path, database_url=odeion18, registry=registry)
    info = archiver.create(components=["settings"]).archive
    assert [i.name for i in archiver.list()] == [info.name]


def test_without_a_database_url_the_embedded_postgresql_is_used(tmp_path: Path) -> None:
    data_dir = tmp_path / "odeion-data"
    with Archiver(data_dir) as archiver:
        info = archiver.create(components=["full_db"]).archive
        assert archiver.verify(info.name).ok
        pgdata = data_dir / "pgdata"
        assert (pgdata / "PG_VERSION").read_text().strip() == "18"
        assert (pgdata / "postmaster.pid").exists()
        assert info.manifest.component("full_db").facts["server_version_num"] // 10000 == 18
    # Stopped cleanly when the archiver is closed.
    assert not (pgdata / "postmaster.pid").exists()


# -- import stages and verifies an upload without the data directory's lock -------------


@pytest.fixture
def offline(tmp_path: Path) -> Archiver:
    """An archiver whose operations here never reach the database."""
    return Archiver(tmp_path / "data", database_url="postgresql://nobody@invalid.invalid/none")


def _upload(tmp_path: Path) -> bytes:
    stream = io.BytesIO()
    write_archive(ZipFormat(), stream, {"users_auth": {"users.jsonl": b'{"id":1}\n' * 100}})
    return stream.getvalue()


def test_import_verifies_the_upload_without_holding_the_lock(
    offline: Archiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[list[str]] = []
    real_verify = ArchiveFile.verify

    def verify_while_others_work(archive: ArchiveFile, *args: Any, **kwargs: Any) -> Any:
        # Another operation runs meanwhile: it is not busy, and its leftover cleanup
        # keeps the staging file of the import in progress.
        assert offline.prune(10) == []
        with DataDirLock(offline.data_dir, "backup"):
            assert offline.store.clean_leftovers() == []
        seen.append(_store_files(offline))
        assert archive.path.exists()
        return real_verify(archive, *args, **kwargs)

    monkeypatch.setattr(ArchiveFile, "verify", verify_while_others_work)
    imported = offline.import_archive(io.BytesIO(_upload(tmp_path)))
    assert len(seen) == 1
    assert len(seen[0]) == 1
    assert seen[0][0].startswith(TEMP_PREFIX)  # staged in the store, hidden, never listed
    assert _store_files(offline) == [imported.name]
    assert [i.name for i in offline.list()] == [imported.name]


def test_a_hostile_upload_is_refused_without_taking_the_lock(
    offline: Archiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(Path(__file__).parent / "formats")
    from _craft_archives import overlapping_zip  # a helper of the format tests

    bomb = tmp_path / "bomb.zip"
    overlapping_zip(bomb, copies=64, zeros=1024 * 1024)
    with (
        DataDirLock(offline.data_dir, "backup"),
        pytest.raises(ArchiveInvalidError, match="overlaps"),
    ):
        offline.import_archive(bomb)  # refused, not "busy": the lock was never needed
    assert _store_files(offline) == []


def test_an_upload_that_cannot_be_published_leaves_nothing(
    offline: Archiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_verify = ArchiveFile.verify
    holder: list[DataDirLock] = []

    def verify_then_lock(archive: ArchiveFile, *args: Any, **kwargs: Any) -> Any:
        holder.append(DataDirLock(offline.data_dir, "backup"))
        holder[0].acquire()  # a backup starts while the upload is being verified
        return real_verify(archive, *args, **kwargs)

    monkeypatch.setattr(ArchiveFile, "verify", verify_then_lock)
    try:
        with pytest.raises(BusyError, match="busy.*backup"):
            offline.import_archive(io.BytesIO(_upload(tmp_path)))
    finally:
        holder[0].release()
    assert _store_files(offline) == []
    monkeypatch.undo()
    imported = offline.import_archive(io.BytesIO(_upload(tmp_path)))  # free again
    assert _store_files(offline) == [imported.name]


def test_a_staging_file_is_kept_while_held_and_cleaned_once_its_importer_is_gone(
    offline: Archiver,
) -> None:
    store = offline.store
    with store.staging() as (temp, stream):
        stream.write(b"half an upload")
        assert store.clean_leftovers() == []
        assert temp.exists()
        # What a killed importer leaves: the same file without its flock.
        leftover = temp.with_name(temp.name + "-dead")
        os.link(temp, leftover)
    assert not temp.exists()
    assert store.clean_leftovers() == [leftover.name]
    assert _store_files(offline) == []


def test_every_operation_refuses_overlapping_zip_entries_up_front(
    offline: Archiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """inspect, verify, import, plan and restore: refused, nothing inflated, nothing stored."""
    monkeypatch.syspath_prepend(Path(__file__).parent / "formats")
    from _craft_archives import overlapping_zip  # a helper of the format tests

    bomb = tmp_path / "bomb.zip"
    overlapping_zip(bomb, copies=64, zeros=4 * 1024 * 1024)  # 256 MiB declared
    inflated = [0]
    real_decompressobj = zlib.decompressobj

    class Counting:
        def __init__(self, *args: Any) -> None:
            self._inner = real_decompressobj(*args)

        def decompress(self, data: bytes, max_length: int = 0) -> bytes:
            out = self._inner.decompress(data, max_length)
            inflated[0] += len(out)
            return out

        def __getattr__(self, name: str) -> Any:
            return getattr(self._inner, name)

    monkeypatch.setattr(zlib, "decompressobj", Counting)
    overlaps = "overlaps the previous one"
    with pytest.raises(ArchiveInvalidError, match=overlaps):
        offline.inspect(bomb)
    with pytest.raises(ArchiveInvalidError, match=overlaps):
        offline.verify(bomb)
    with pytest.raises(ArchiveInvalidError, match=overlaps):
        offline.import_archive(bomb)
    plan = offline.plan(bomb, "users_auth")
    assert not plan.can_restore
    assert [b.code for b in plan.blockers] == ["archive_invalid"]
    assert overlaps in plan.blockers[0].message
    with pytest.raises(RestoreBlockedError, match=overlaps):
        offline.restore(bomb, "users_auth")
    assert inflated[0] == 0
    assert _store_files(offline) == []


# -- the store remembers each archive's last verification and drill ---------------------


def test_the_store_records_the_last_check_of_each_kind(offline: Archiver, tmp_path: Path) -> None:
    name = offline.import_archive(io.BytesIO(_upload(tmp_path))).name
    assert offline.list()[0].last_verification is None
    day = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    offline.store.record_check(name, CheckRecord("verification", day, passed=True))
    offline.store.record_check(name, CheckRecord("drill", day, passed=True, seconds=3.5))
    later = day + dt.timedelta(days=1)
    offline.store.record_check(
        name, CheckRecord("verification", later, passed=False, reason="x" * 5000)
    )
    info = offline.list()[0]
    assert info.last_verification is not None
    assert info.last_verification.passed is False
    assert info.last_verification.at == later
    assert info.last_verification.reason is not None
    assert len(info.last_verification.reason) == 2000  # a long reason is cut, the record kept
    assert info.last_intact_at == day  # it was intact before: it rotted since
    assert info.last_drill == CheckRecord("drill", day, passed=True, seconds=3.5)
    with pytest.raises(NotFoundError):
        offline.store.record_check("no-such-archive", CheckRecord("drill", day, passed=True))


def test_a_check_of_an_archive_without_a_record_keeps_its_assumed_entry(
    offline: Archiver, tmp_path: Path
) -> None:
    name = offline.import_archive(io.BytesIO(_upload(tmp_path))).name
    before = offline.list()[0].entered_at
    (offline.store.directory / RECORDS_DIR / name).unlink()
    assumed = offline.list()[0].entered_at
    offline.store.record_check(name, CheckRecord("verification", dt.datetime.now(dt.UTC), True))
    info = offline.list()[0]
    assert info.entered_at == assumed
    assert assumed is not None and before is not None and assumed <= before + dt.timedelta(1)
    assert info.last_intact_at is not None
