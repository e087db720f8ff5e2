"""Backups copied to each target kind, then planned, verified and restored from there."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from odeion_archive import (
    AgeIdentities,
    AgeRecipients,
    Archiver,
    BackupResult,
    Registry,
    hookimpl,
)
from odeion_archive.errors import CorruptArchiveError, UsageError
from odeion_archive.interfaces import Conflict
from odeion_archive.targets import TargetSpec

Snapshot = Callable[[str], dict[str, list[tuple[Any, ...]]]]

#: The tables each mode restores (full_db: every table).
_SCOPE = {
    "users_auth": {"users", "invite_codes", "api_tokens"},
    "settings": {"system_settings"},
    "everything_json": {"users", "invite_codes", "api_tokens", "system_settings"},
}


def _change(url: str) -> None:
    """Rows changed after the backup: what each restore must bring back."""
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE users SET display_name = 'changed later'")
        conn.execute("UPDATE system_settings SET value = '\"changed\"'")
        conn.execute("DELETE FROM watch_history")


def _changed(url: str, table: str) -> bool:
    query = {
        "users": "SELECT count(*) FROM users WHERE display_name = 'changed later'",
        "system_settings": "SELECT count(*) FROM system_settings WHERE value = '\"changed\"'",
    }[table]
    with psycopg.connect(url) as conn:
        row = conn.execute(query).fetchone()
    return bool(row and row[0])


def _age_key(tmp_path: Path) -> tuple[AgeIdentities, AgeRecipients]:
    """A new age identity in a file (as age-keygen writes it), and its recipient."""
    pyrage = pytest.importorskip("pyrage", reason="the age extra (pyrage) is not installed")
    identity = pyrage.x25519.Identity.generate()
    path = tmp_path / "key.txt"
    path.write_text(f"# public key: {identity.to_public()}\n{identity}\n")
    path.chmod(0o600)
    return AgeIdentities.from_file(path), AgeRecipients.to(str(identity.to_public()))


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
@pytest.mark.parametrize("fmt", ["zip", "tar.zst"])
def test_every_mode_restores_from_a_target(
    module_odeion_db: str,
    db_snapshot: Snapshot,
    tmp_path: Path,
    target_spec: TargetSpec,
    fmt: str,
    encrypted: bool,
) -> None:
    url = module_odeion_db
    identities, recipients = _age_key(tmp_path) if encrypted else (None, None)
    archiver = Archiver(
        tmp_path / "data", database_url=url, targets=[target_spec], identities=identities
    )
    backed_up = db_snapshot(url)
    # Copied after the backup: copy_after_backup.
    result = archiver.create(format=fmt, encryption=recipients)
    [copy] = result.copies
    assert copy.ok and copy.target == target_spec.name
    name = result.archive.name
    archiver.delete(name)  # the server's disk is gone: only the copy remains
    [remote] = archiver.list_target(target_spec.name)
    assert (remote.name, remote.format, remote.authenticity) == (name, fmt, "own")
    assert (remote.manifest.encryption is not None) is encrypted

    for mode in Registry.default().modes():
        _change(url)
        with archiver.fetch(target_spec.name, name) as staged:
            assert archiver.verify(staged).ok
            conflict: Conflict = "skip" if mode == "full_db" else "overwrite"
            plan = archiver.plan(staged, mode, conflict)
            assert plan.can_restore, plan.blockers
            archiver.restore(staged, mode, conflict, expected=plan)
        after = db_snapshot(url)
        if mode == "full_db":
            assert after == backed_up
            continue
        scope = _SCOPE[mode]
        for table in ("users", "system_settings"):
            assert _changed(url, table) == (table not in scope), (mode, table)
        assert after["watch_history"] == []  # outside every JSON mode: left as it was
        for table in scope:
            assert sorted(after[table]) == sorted(backed_up[table]), (mode, table)
    assert not [p for p in archiver.store.directory.iterdir() if p.name.startswith(".partial-")]
    # The database as it was backed up, for the next test of this module.
    with archiver.fetch(target_spec.name, name) as staged:
        archiver.restore(staged, "full_db")
    assert db_snapshot(url) == backed_up


def test_a_copy_damaged_on_the_target_never_changes_the_database(
    module_odeion_db: str, db_snapshot: Snapshot, tmp_path: Path, target_spec: TargetSpec
) -> None:
    url = module_odeion_db
    archiver = Archiver(tmp_path / "data", database_url=url, targets=[target_spec])
    name = archiver.create(components=["settings"]).archive.name
    data = bytearray((archiver.store.directory / name).read_bytes())
    data[len(data) // 2] ^= 0x40
    Registry.default().target_kind(target_spec.kind).open(target_spec).write(name, [bytes(data)])
    _change(url)
    before = db_snapshot(url)
    with pytest.raises(CorruptArchiveError), archiver.fetch(target_spec.name, name) as staged:
        archiver.restore(staged, "settings", "overwrite")
    assert db_snapshot(url) == before


class _Recorder:
    def __init__(self) -> None:
        self.results: list[BackupResult] = []

    @hookimpl
    def odeion_archive_backup_created(self, result: BackupResult) -> None:
        self.results.append(result)


def test_the_backup_created_hook_sees_the_copies(
    module_odeion_db: str, tmp_path: Path, dir_target_spec: TargetSpec
) -> None:
    registry = Registry.default()
    recorder = _Recorder()
    registry.register(recorder, name="recorder")
    unreachable = TargetSpec.directory("usb", tmp_path / "not-mounted")
    archiver = Archiver(
        tmp_path / "data",
        database_url=module_odeion_db,
        registry=registry,
        targets=[dir_target_spec, unreachable],
    )
    result = archiver.create(components=["settings"])
    [seen] = recorder.results
    assert seen == result
    nas, usb = result.copies
    assert nas.ok and nas.archive == result.archive.name
    assert not usb.ok and "does not exist; mount the disk" in (usb.error or "")
    assert result.archive.path.exists()  # a failed copy does not undo the backup
    # create(copy_to=...) copies to the targets named only.
    only = archiver.create(components=["settings"], copy_to=["nas"])
    assert [c.target for c in only.copies] == ["nas"]


def test_a_bad_target_configuration_fails_before_the_backup(
    module_odeion_db: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "targets.toml").write_text('[targets.nas]\nkind = "dir"\n')
    archiver = Archiver(data_dir, database_url=module_odeion_db)
    with pytest.raises(UsageError, match="needs path"):
        archiver.create(components=["settings"])
    (data_dir / "targets.toml").unlink()
    archiver = Archiver(data_dir, database_url=module_odeion_db)
    with pytest.raises(UsageError, match="no storage target named 'nas'"):
        archiver.create(components=["settings"], copy_to=["nas"])
    assert archiver.list() == []
