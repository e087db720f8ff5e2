"""The command line with storage targets, end to end: the console script, real PostgreSQL and S3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from _s3 import ACCESS_KEY, SECRET_KEY, S3Server
from moto import settings as moto_settings

from odeion_archive import Registry
from odeion_archive.targets import TargetSpec

SCRIPT = Path(sys.executable).with_name("odeion-archive")
Snapshot = Callable[[str], dict[str, list[tuple[Any, ...]]]]


class Cli:
    def __init__(self, data_dir: Path, url: str, **env: str) -> None:
        self.env = {
            **os.environ,
            "ODEION_DATA_DIR": str(data_dir),
            "ODEION_DATABASE_URL": url,
            **env,
        }

    def __call__(self, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        completed = subprocess.run(
            [str(SCRIPT), *args],
            capture_output=True,
            text=True,
            env=self.env,
            stdin=subprocess.DEVNULL,
            check=False,
            timeout=300,
        )
        assert completed.returncode == code, (
            completed.returncode,
            completed.stdout,
            completed.stderr,
        )
        assert "Traceback" not in completed.stderr
        assert SECRET_KEY not in completed.stdout + completed.stderr
        return completed

    def json(self, *args: str, code: int = 0) -> Any:
        return json.loads(self("--json", *args, code=code).stdout)


def _configure(data_dir: Path, server: S3Server, bucket: str, credentials: Path | None) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "nas").mkdir()
    creds = f'credentials_file = "{credentials}"\n' if credentials else ""
    (data_dir / "targets.toml").write_text(
        f"""
[targets.nas]
kind = "dir"
path = "nas"

[targets.offsite]
kind = "s3"
endpoint = "{server.endpoint}"
bucket = "{bucket}"
prefix = "server-1"
path_style = true
allow_http = true
retries = 1
timeout = 10
{creds}"""
    )


@pytest.fixture
def cli(
    tmp_path: Path, module_odeion_db: str, running_s3: S3Server, bucket: str, credentials_file: Path
) -> Cli:
    data_dir = tmp_path / "data"
    _configure(data_dir, running_s3, bucket, credentials_file)
    return Cli(data_dir, module_odeion_db)


def test_targets_copies_and_listings(cli: Cli) -> None:
    states = cli.json("targets")
    assert [(s["name"], s["kind"], s["reachable"], s["archives"]) for s in states] == [
        ("nas", "dir", True, 0),
        ("offsite", "s3", True, 0),
    ]
    created = cli.json("create", "--components", "settings")
    assert [(c["target"], c["ok"]) for c in created["copies"]] == [("nas", True), ("offsite", True)]
    name = created["name"]
    assert cli("copy", name, "--to", "offsite").stdout.strip() == (
        f"{name} is on offsite already (checked copy)"
    )
    [listed] = cli.json("list", "--target", "offsite")
    assert (listed["name"], listed["checked"], listed["authenticity"]) == (name, True, "own")
    table = cli("list", "--target", "nas").stdout
    assert name in table and "CHECKED" in table
    assert "reachable" in cli("targets").stdout
    assert cli("verify", "--target", "offsite", name).stdout.strip() == "ok"
    second = cli.json("create", "--components", "settings", "--copy-to", "nas")
    assert [c["target"] for c in second["copies"]] == ["nas"]
    assert cli.json("prune", "--target", "nas", "--keep-last", "1", "--yes")["deleted"] == [name]
    assert [a["name"] for a in cli.json("list", "--target", "nas")] == [second["name"]]


def test_restore_from_a_target_and_refusal_of_a_damaged_copy(
    cli: Cli, module_odeion_db: str, db_snapshot: Snapshot, tmp_path: Path
) -> None:
    name = cli.json("create", "--components", "settings")["name"]
    cli("delete", name)
    with psycopg.connect(module_odeion_db) as conn:
        conn.execute("UPDATE system_settings SET value = '\"changed\"'")
    restored = cli(
        "restore",
        "--target",
        "offsite",
        name,
        "--mode",
        "settings",
        "--conflict",
        "overwrite",
        "--yes",
    )
    assert restored.stdout.startswith(f"restored offsite:{name} (settings)")
    with psycopg.connect(module_odeion_db) as conn:
        row = conn.execute(
            "SELECT count(*) FROM system_settings WHERE value = '\"changed\"'"
        ).fetchone()
    assert row == (0,)

    spec = TargetSpec.directory("nas", tmp_path / "data" / "nas")
    target = Registry.default().target_kind("dir").open(spec)
    data = bytearray(b"".join(target.read(name)))
    data[len(data) // 2] ^= 0x01
    target.write(name, [bytes(data)])
    verified = cli("verify", "--target", "nas", name, code=4)
    assert "damaged on the target" in verified.stdout
    cli("plan", "--target", "nas", name, "--mode", "settings", code=4)
    with psycopg.connect(module_odeion_db) as conn:
        conn.execute("UPDATE system_settings SET value = '\"changed\"'")
    before = db_snapshot(module_odeion_db)
    refused = cli("restore", "--target", "nas", name, "--mode", "settings", "--yes", code=1)
    assert "damaged on the target" in refused.stderr
    assert db_snapshot(module_odeion_db) == before


def test_credentials_from_the_environment(
    tmp_path: Path, module_odeion_db: str, running_s3: S3Server, bucket: str
) -> None:
    data_dir = tmp_path / "data"
    _configure(data_dir, running_s3, bucket, None)
    cli = Cli(
        data_dir,
        module_odeion_db,
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
    )
    created = cli.json("create", "--components", "settings")
    assert all(c["ok"] for c in created["copies"])


def test_wrong_credentials_and_a_missing_bucket_exit_1_with_a_clear_error(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, running_s3: S3Server
) -> None:
    name = cli.json("create", "--components", "settings", "--copy-to", "nas")["name"]
    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # moto checks keys
    refused = cli("copy", name, "--to", "offsite", code=1)
    assert "refused the credentials" in refused.stderr
    failed_create = cli("create", "--components", "settings", code=1)
    assert "copy of" in failed_create.stdout and "FAILED" in failed_create.stdout
    assert "is in the store; copy it later" in failed_create.stderr
    monkeypatch.undo()

    config = tmp_path / "data" / "targets.toml"
    config.write_text(config.read_text().replace('bucket = "', 'bucket = "missing-'))
    missing = cli("copy", name, "--to", "offsite", code=1)
    assert "does not exist; create it" in missing.stderr
    assert not cli.json("targets")[1]["reachable"]
    cli("copy", name, "--to", "elsewhere", code=2)
