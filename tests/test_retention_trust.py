"""Retention's safety nets on real backups: a damaged or foreign full_db never shields itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from _hooks import archiver_with
from _terminal import rot
from odeion_archive import RetentionRules, SchedulePolicy
from odeion_archive.targets import TargetSpec

SCRIPT = Path(sys.executable).with_name("odeion-archive")


def _cli(data_dir: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ODEION_DATA_DIR": str(data_dir), "ODEION_DATABASE_URL": url}
    done = subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, env=env, check=False, timeout=300
    )
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return done


def test_a_damaged_full_db_never_takes_the_place_of_the_intact_one(
    module_odeion_db: str, tmp_path: Path
) -> None:
    """Before, the damaged newer full_db stayed as "last full_db" and the intact one went."""
    archiver = archiver_with(tmp_path / "data", module_odeion_db)
    intact = archiver.create(components=["settings", "full_db"]).archive
    rotten = archiver.create(components=["settings", "full_db"]).archive
    settings = archiver.create(components=["settings"]).archive
    rot(rotten.path)
    assert archiver.verify_all().damaged_since_verified == ()  # never verified intact before
    assert not archiver.verify_all().reports[rotten.name].ok

    dry = _cli(archiver.data_dir, module_odeion_db, "prune", "--keep-last", "1", "--dry-run")
    assert dry.stdout.splitlines() == [
        f"would delete {rotten.name}",
        f"keep {settings.name} (keep-last)",
        f"keep {intact.name} (last full_db)",
    ]
    as_json = json.loads(
        _cli(
            archiver.data_dir, module_odeion_db, "--json", "prune", "--keep-last", "1", "--dry-run"
        ).stdout
    )
    assert {k["name"]: k["reasons"] for k in as_json["kept"]} == {
        settings.name: ["keep-last"],
        intact.name: ["last full_db"],
    }

    report = archiver.run_due(SchedulePolicy(retention=RetentionRules(keep_last=1)))
    assert report.pruned == (rotten.name,)
    assert {info.name for info in archiver.list()} == {settings.name, intact.name}


def test_a_foreign_full_db_never_takes_the_place_of_this_servers(
    module_odeion_db: str, tmp_path: Path
) -> None:
    """Before, keep-last 1 kept only the imported archive, which restores only when trusted."""
    nas = tmp_path / "nas"
    nas.mkdir()
    targets = [TargetSpec.directory("nas", nas)]
    archiver = archiver_with(tmp_path / "data", module_odeion_db, targets=targets)
    other = archiver_with(tmp_path / "other", module_odeion_db, targets=targets)
    older = archiver.create(components=["settings", "full_db"]).archive
    own = archiver.create(components=["settings", "full_db"]).archive
    theirs = other.create(components=["settings", "full_db"]).archive  # copied to nas too
    imported = archiver.import_archive(theirs.path)
    assert imported.authenticity == "foreign" and own.authenticity == "own"

    # On a target another server shares, its newer copy never shields itself in our place.
    on_nas = {d.name: d.reasons for d in archiver.prune_target_plan("nas", RetentionRules(0))}
    assert on_nas == {theirs.name: (), own.name: ("last full_db",), older.name: ()}

    plan = {d.name: d.reasons for d in archiver.prune_plan(RetentionRules(keep_last=1))}
    assert plan == {imported.name: ("keep-last",), own.name: ("last full_db",), older.name: ()}
    dry = _cli(archiver.data_dir, module_odeion_db, "prune", "--keep-last", "1", "--dry-run")
    assert dry.stdout.splitlines()[0] == f"would delete {older.name}"
    assert archiver.prune(keep_last=1) == [older.name]
    # Without the rule keeping it, the imported archive goes before this server's.
    assert archiver.prune(keep_last=0) == [imported.name]
    assert [info.name for info in archiver.list()] == [own.name]
