"""verify --all checks every copy on every configured target, and reports the damage once."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from _archives import make_archive
from _s3 import closed_port, s3_spec

from _hooks import Failures
from odeion_archive import Archiver, Registry
from odeion_archive.targets import RemoteObject, TargetSpec
from odeion_archive.targets._copy import sum_name
from odeion_archive.targets._remote import delete_archives
from odeion_archive.targets.dir import DirTarget

SCRIPT = Path(sys.executable).with_name("odeion-archive")


def _damage(spec: TargetSpec, local: Path) -> None:
    """Flip one byte of the copy of ``local`` on the target, in place."""
    target = Registry.default().target_kind(spec.kind).open(spec)
    damaged = bytearray(local.read_bytes())
    damaged[len(damaged) // 2] ^= 0x01
    target.write(local.name, [bytes(damaged)])


def test_verify_all_verifies_the_copies_on_each_target(
    tmp_path: Path, dir_target_spec: TargetSpec, s3_target_spec: TargetSpec
) -> None:
    failures = Failures()
    registry = Registry.default()
    registry.register(failures, name="failures")
    specs = (dir_target_spec, s3_target_spec)
    archiver = Archiver(
        tmp_path / "data", targets=specs, registry=registry, database_url="postgresql:///unused"
    )
    paths = [make_archive(archiver.store.directory, fmt) for fmt in ("zip", "tar.zst")]
    for spec in specs:
        for path in paths:
            archiver.copy_to(spec.name, path.name)

    report = archiver.verify_all()
    assert report.ok
    assert {t: sorted(c) for t, c in report.targets.items()} == {
        spec.name: sorted(p.name for p in paths) for spec in specs
    }
    assert failures.seen == []
    # Nothing is left in the staging area: each copy was fetched, verified and removed.
    assert [
        p.name for p in archiver.store.directory.iterdir() if p.name.startswith(".partial")
    ] == []

    for spec in specs:
        _damage(spec, paths[1])
    report = archiver.verify_all()
    assert not report.ok
    assert all(r.ok for r in report.reports.values())  # the local archives are intact
    for spec in specs:
        assert report.targets[spec.name][paths[0].name].ok
        [problem] = report.targets[spec.name][paths[1].name].problems
        assert "damaged on the target" in problem.message
    assert sorted(f.archive or "" for f in failures.seen) == sorted(
        f"{spec.name}:{paths[1].name}" for spec in specs
    )
    assert all(f.operation == "verification" and "copy" in f.reason for f in failures.seen)


def test_a_target_that_cannot_be_listed_is_reported_not_skipped(
    tmp_path: Path, credentials_file: Path
) -> None:
    failures = Failures()
    registry = Registry.default()
    registry.register(failures, name="failures")
    gone = s3_spec(
        f"http://127.0.0.1:{closed_port()}", "odeion-x", credentials_file, name="gone", timeout=2
    )
    archiver = Archiver(
        tmp_path / "data", targets=(gone,), registry=registry, database_url="postgresql:///unused"
    )
    make_archive(archiver.store.directory)
    report = archiver.verify_all()
    assert not report.ok
    assert list(report.unreachable) == ["gone"]
    assert [f.archive for f in failures.seen] == [None]
    assert "gone could not be listed" in failures.seen[0].reason


def test_the_command_line_lists_the_copies_it_verified(
    tmp_path: Path, dir_target_spec: TargetSpec
) -> None:
    data = tmp_path / "data"
    archiver = Archiver(data, targets=(dir_target_spec,), database_url="postgresql:///unused")
    path = make_archive(archiver.store.directory)
    archiver.copy_to(dir_target_spec.name, path.name)
    (data / "targets.toml").write_text(
        f'[targets.nas]\nkind = "dir"\npath = "{tmp_path / "nas"}"\n',
        encoding="utf-8",
    )
    command = [str(SCRIPT), "--data-dir", str(data), "--database-url", "postgresql:///unused"]
    done = subprocess.run(
        [*command, "verify", "--all"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{path.name}: ok",
        "target nas: 1 copies",
        f"  {path.name}: ok",
    ]
    _damage(dir_target_spec, path)
    done = subprocess.run(
        [*command, "--json", "verify", "--all"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 4, done.stderr
    out = json.loads(done.stdout)
    assert out["archives"][path.name]["ok"] is True
    assert out["targets"]["nas"][path.name]["ok"] is False
    assert out["unreachable_targets"] == {}


def _three_copies(tmp_path: Path, spec: TargetSpec) -> tuple[Archiver, list[Path]]:
    """An archiver whose three archives (zip and tar.zst) are copied to the target ``spec``."""
    archiver = Archiver(tmp_path / "data", targets=[spec], database_url="postgresql:///unused")
    paths = [make_archive(archiver.store.directory, fmt) for fmt in ("zip", "tar.zst", "zip")]
    for path in paths:
        archiver.copy_to(spec.name, path.name)
    return archiver, paths


def test_verify_all_lists_a_target_once_however_many_copies_it_holds(
    tmp_path: Path, dir_target_spec: TargetSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listing a bucket is a request per thousand objects: once per target, not per copy."""
    archiver, paths = _three_copies(tmp_path, dir_target_spec)
    listings = []
    real_list = DirTarget.list

    def counted(self: DirTarget) -> Sequence[RemoteObject]:
        listings.append(self.name)
        return real_list(self)

    monkeypatch.setattr(DirTarget, "list", counted)
    report = archiver.verify_all()
    assert report.ok
    assert sorted(report.targets[dir_target_spec.name]) == sorted(p.name for p in paths)
    assert listings == [dir_target_spec.name]


def test_verify_all_skips_copies_deleted_while_it_runs_and_rereads_changed_records(
    tmp_path: Path, target_spec: TargetSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The listing is taken once, and a run may take hours: another host's retention deletes
    # copies meanwhile, or a copy's record of its check goes away.
    archiver, paths = _three_copies(tmp_path, target_spec)
    first, *others = sorted(p.name for p in paths)
    kind = type(Registry.default().target_kind(target_spec.kind).open(target_spec))
    real_list = kind.list
    listings: list[list[RemoteObject]] = []

    def list_then_change(self: object) -> Sequence[RemoteObject]:
        objects = list(real_list(self))  # type: ignore[arg-type]
        if not listings:  # right after the run's own listing
            delete_archives(self, others)  # type: ignore[arg-type]
            self.delete(sum_name(first))  # type: ignore[attr-defined]
        listings.append(objects)
        return objects

    monkeypatch.setattr(kind, "list", list_then_change)
    report = archiver.verify_all()
    assert report.unreachable == {}
    assert list(report.targets[target_spec.name]) == [first]
    assert report.targets[target_spec.name][first].ok
    assert report.ok
    assert len(listings) == 2  # listed once more, when the record could not be read
