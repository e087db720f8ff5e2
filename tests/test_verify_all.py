"""Scheduled verification: every archive checked, each outcome recorded, bit rot surfaced."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from _hooks import Failures, archiver_with
from _terminal import rot

SCRIPT = Path(sys.executable).with_name("odeion-archive")


def _codes(issues: object) -> list[str]:
    return [issue.code for issue in issues]  # type: ignore[attr-defined]


def test_verify_all_finds_an_archive_damaged_after_it_was_stored(
    module_odeion_db: str, tmp_path: Path
) -> None:
    failures = Failures()
    archiver = archiver_with(tmp_path, module_odeion_db, failures)
    rotting = archiver.create(components=["settings", "full_db"]).archive
    healthy = archiver.create(components=["settings", "full_db"], format="zip").archive

    first = archiver.verify_all()
    assert first.ok
    assert set(first.reports) == {rotting.name, healthy.name}
    assert first.damaged_since_verified == ()
    assert failures.seen == []
    listed = {i.name: i for i in archiver.list()}
    for info in listed.values():
        assert info.last_verification is not None and info.last_verification.passed
        assert info.last_intact_at == info.last_verification.at
        assert info.warnings == ()
    first_verified = listed[rotting.name].last_intact_at

    rot(rotting.path)
    second = archiver.verify_all()
    assert not second.ok
    assert second.damaged_since_verified == (rotting.name,)
    assert not second.reports[rotting.name].ok
    assert second.reports[healthy.name].ok
    assert [(f.operation, f.archive) for f in failures.seen] == [("verification", rotting.name)]
    assert failures.seen[0].reason

    listed = {i.name: i for i in archiver.list()}
    rotted = listed[rotting.name]
    assert _codes(rotted.warnings) == ["damaged_since_verified"]
    assert rotted.last_verification is not None and not rotted.last_verification.passed
    assert rotted.last_intact_at == first_verified  # when it was last known good
    assert first_verified is not None and first_verified < rotted.last_verification.at
    assert listed[healthy.name].warnings == ()
    plan = archiver.plan(rotting.name, "settings")
    assert "damaged_since_verified" in _codes(plan.warnings)
    assert "damaged_since_verified" not in _codes(archiver.plan(healthy.name, "settings").warnings)


def test_an_archive_too_damaged_to_open_is_damaged_and_an_unverified_one_is_not_rot(
    module_odeion_db: str, tmp_path: Path
) -> None:
    failures = Failures()
    archiver = archiver_with(tmp_path, module_odeion_db, failures)
    verified = archiver.create(components=["settings"]).archive
    assert archiver.verify(verified.name).ok  # a single verify of a store archive records it
    never = archiver.create(components=["settings"]).archive
    for info in (verified, never):
        info.path.write_bytes(info.path.read_bytes()[:200])  # truncated: cannot even be opened

    report = archiver.verify_all()
    assert not report.reports[verified.name].ok and not report.reports[never.name].ok
    # Only the archive once found intact has rotted; the other was never known good.
    assert report.damaged_since_verified == (verified.name,)
    assert sorted(f.archive or "" for f in failures.seen) == sorted([verified.name, never.name])
    assert all(f.operation == "verification" for f in failures.seen)


def test_verifying_a_file_outside_the_store_records_nothing(
    module_odeion_db: str, tmp_path: Path
) -> None:
    archiver = archiver_with(tmp_path / "data", module_odeion_db)
    info = archiver.create(components=["settings"]).archive
    copy = tmp_path / "copy.tar.zst"
    copy.write_bytes(info.path.read_bytes())
    assert archiver.verify(copy).ok
    assert archiver.list()[0].last_verification is None
    assert archiver.verify(info.name).ok
    assert archiver.list()[0].last_verification is not None


def test_a_failure_hook_that_raises_changes_nothing_in_verify_all(
    module_odeion_db: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    failures = Failures(raises=True)
    archiver = archiver_with(tmp_path, module_odeion_db, failures)
    info = archiver.create(components=["settings", "full_db"]).archive
    archiver.verify_all()
    rot(info.path)
    with caplog.at_level(logging.ERROR):
        report = archiver.verify_all()
    assert report.damaged_since_verified == (info.name,)
    assert len(failures.seen) == 1
    assert "odeion_archive_backup_failed hook failed" in caplog.text
    assert _codes(archiver.list()[0].warnings) == ["damaged_since_verified"]


def _cli(data_dir: Path, url: str, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ODEION_DATA_DIR": str(data_dir), "ODEION_DATABASE_URL": url}
    done = subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, env=env, check=False, timeout=300
    )
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return done


def test_the_command_line_verifies_every_archive_and_lists_the_damage(
    module_odeion_db: str, tmp_path: Path
) -> None:
    archiver = archiver_with(tmp_path, module_odeion_db)
    info = archiver.create(components=["settings", "full_db"]).archive
    assert _cli(tmp_path, module_odeion_db, "verify", "--all").stdout.strip() == f"{info.name}: ok"
    rot(info.path)
    out = json.loads(_cli(tmp_path, module_odeion_db, "--json", "verify", "--all", code=4).stdout)
    assert out["ok"] is False
    assert out["damaged_since_verified"] == [info.name]
    assert out["archives"][info.name]["problems"]
    text = _cli(tmp_path, module_odeion_db, "verify", "--all", code=4).stdout
    assert f"{info.name}: DAMAGED (DAMAGED since an earlier verification)" in text

    listed = json.loads(_cli(tmp_path, module_odeion_db, "--json", "list").stdout)[0]
    assert listed["last_verification"]["passed"] is False
    assert listed["last_intact_at"] is not None
    assert [w["code"] for w in listed["warnings"]] == ["damaged_since_verified"]
    assert " DAMAGED" in _cli(tmp_path, module_odeion_db, "list").stdout

    usage = _cli(tmp_path, module_odeion_db, "verify", code=2)
    assert "--all" in usage.stderr
    both = _cli(tmp_path, module_odeion_db, "verify", info.name, "--all", code=2)
    assert "not both" in both.stderr
