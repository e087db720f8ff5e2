"""The installed ``odeion-archive`` console script, end to end against real PostgreSQL."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from odeion_archive._lock import DataDirLock
from odeion_archive._progress import ProgressPrinter
from odeion_archive.events import ProgressEvent

SCRIPT = Path(sys.executable).with_name("odeion-archive")


@pytest.fixture(scope="module")
def database(module_odeion_db: str) -> str:
    """A seeded Odeion database shared by this module's tests."""
    return module_odeion_db


class Cli:
    """Runs the console script with a data directory and database from the environment."""

    def __init__(self, data_dir: Path, url: str) -> None:
        self.env = {**os.environ, "ODEION_DATA_DIR": str(data_dir), "ODEION_DATABASE_URL": url}

    def __call__(
        self, *args: str, code: int = 0, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        completed = subprocess.run(
            [str(SCRIPT), *args],
            capture_output=True,
            text=True,
            env=self.env,
            stdin=kwargs.pop("stdin", subprocess.DEVNULL),
            check=False,
            timeout=300,
            **kwargs,
        )
        assert completed.returncode == code, (
            completed.returncode,
            completed.stdout,
            completed.stderr,
        )
        assert ("Traceback" in completed.stderr) == ("--debug" in args and code != 0)
        return completed

    def json(self, *args: str, code: int = 0) -> Any:
        completed = self("--json", *args, code=code)
        return json.loads(completed.stdout)


@pytest.fixture
def cli(database: str, tmp_path: Path) -> Cli:
    return Cli(tmp_path / "data", database)


def test_the_console_script_is_installed() -> None:
    assert SCRIPT.is_file()
    module = subprocess.run(
        [sys.executable, "-m", "odeion_archive", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert module.stdout.startswith("odeion-archive ")


def test_create_list_inspect_verify(cli: Cli) -> None:
    created = cli.json("create")
    assert set(created) == {
        "name",
        "path",
        "format",
        "size",
        "components",
        "created_at",
        "authenticity",
    }
    assert created["format"] == "tar.zst"
    assert created["components"] == ["users_auth", "settings", "full_db"]
    zipped = cli.json("create", "--components", "users_auth,settings", "--format", "zip")
    assert zipped["format"] == "zip"

    listed = cli.json("list")
    assert [a["name"] for a in listed] == [zipped["name"], created["name"]]
    assert set(listed[0]) == {
        "name",
        "path",
        "format",
        "size",
        "components",
        "created_at",
        "server_version",
        "schema_version",
        "authenticity",
    }
    assert listed[0]["schema_version"] == 2

    manifest = cli.json("inspect", created["name"])
    assert manifest["format"] == "tar.zst"
    assert [c["name"] for c in manifest["components"]] == ["users_auth", "settings", "full_db"]
    assert cli.json("verify", created["path"]) == {"ok": True, "problems": []}


def test_verify_reports_damage_with_exit_code_4(cli: Cli, tmp_path: Path) -> None:
    created = cli.json("create", "--components", "settings")
    damaged = tmp_path / "damaged.tar.zst"
    data = bytearray(Path(created["path"]).read_bytes())
    data[len(data) // 2] ^= 1
    damaged.write_bytes(data)
    report = cli.json("verify", str(damaged), code=4)
    assert report["ok"] is False and report["problems"]
    assert {"member", "message"} == set(report["problems"][0])


def test_plan_and_restore(cli: Cli) -> None:
    created = cli.json("create", "--components", "users_auth,settings")
    plan = cli.json("plan", created["name"], "--mode", "everything_json")
    assert plan["can_restore"] is True
    assert set(plan) >= {"can_restore", "blockers", "warnings", "steps", "counts"}
    assert plan["counts"]["users"]["skip"] > 0
    assert "rescan_required" in [w["code"] for w in plan["warnings"]]

    blocked = cli.json("plan", created["name"], "--mode", "full_db", code=3)
    assert [b["code"] for b in blocked["blockers"]] == ["component_missing"]

    restored = cli.json(
        "restore", created["name"], "--mode", "settings", "--conflict", "overwrite", "--yes"
    )
    assert restored["restored"] is True
    assert restored["rescan_required"] is True
    assert restored["schema_version"] == 2

    refused = cli("restore", created["name"], "--mode", "settings", code=2)
    assert "--yes" in refused.stderr
    cli("restore", created["name"], "--mode", "full_db", "--yes", code=3)


def test_restore_asks_for_confirmation_on_a_terminal(cli: Cli) -> None:
    created = cli.json("create", "--components", "settings")
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [str(SCRIPT), "restore", created["name"], "--mode", "settings"],
        stdin=secondary,
        stdout=subprocess.PIPE,
        stderr=secondary,
        env=cli.env,
        text=True,
    )
    os.close(secondary)
    seen = b""
    deadline = time.monotonic() + 60
    while b"[y/N]" not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 1)
        if ready:
            seen += os.read(primary, 4096)
    assert b"[y/N]" in seen
    os.write(primary, b"y\n")
    stdout, _ = process.communicate(timeout=60)
    os.close(primary)
    assert process.returncode == 0
    assert "restored" in stdout


def test_import_delete_prune(cli: Cli, tmp_path: Path) -> None:
    created = cli.json("create", "--components", "settings")
    upload = tmp_path / "upload"
    upload.write_bytes(Path(created["path"]).read_bytes())
    imported = cli("import", str(upload)).stdout.strip()
    assert imported and imported != created["name"]
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"not an archive at all")
    failed = cli("import", str(garbage), code=1)
    assert failed.stderr.startswith("odeion-archive: error:")
    assert len(failed.stderr.strip().splitlines()) == 1

    assert len(cli.json("list")) == 2
    cli("delete", imported)
    cli("delete", imported, code=1)
    cli.json("create", "--components", "settings")
    pruned = cli.json("prune", "--keep-last", "1")
    assert pruned == {"deleted": [created["name"]]}
    assert len(cli.json("list")) == 1


def test_plugins_lists_formats_and_components(cli: Cli) -> None:
    plugins = cli.json("plugins")["plugins"]
    assert {(p["kind"], p["name"]) for p in plugins} >= {
        ("format", "zip"),
        ("format", "tar.zst"),
        ("component", "users_auth"),
        ("component", "settings"),
        ("component", "full_db"),
    }
    assert all(
        p["plugin"].startswith("odeion_archive.")
        for p in plugins
        if p["name"] in {"zip", "tar.zst", "users_auth", "settings", "full_db"}
    )


def test_usage_errors_exit_2(cli: Cli) -> None:
    cli("frobnicate", code=2)
    cli("plan", "x", "--mode", "everything", code=2)
    cli("prune", code=2)


def test_busy_exits_5(cli: Cli, tmp_path: Path) -> None:
    with DataDirLock(tmp_path / "data", "restore"):
        busy = cli("create", code=5)
    assert "busy" in busy.stderr


def test_failures_exit_1_with_a_short_message(cli: Cli, tmp_path: Path) -> None:
    bad = Cli(tmp_path / "data", "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    failed = bad("create", code=1)
    error = failed.stderr[failed.stderr.index("odeion-archive: error:") :]
    assert "cannot connect to the database" in error
    assert "check the database URL" in error
    assert len(error.strip().splitlines()) == 1
    debug = bad("--debug", "create", code=1)
    assert "cannot connect" in debug.stderr  # and a traceback, checked by Cli


def test_progress_goes_to_stderr_and_stdout_holds_only_the_result(cli: Cli) -> None:
    completed = cli("--json", "create")
    json.loads(completed.stdout)
    assert "backing up full_db" in completed.stderr


def test_progress_bar_on_a_terminal_shows_rate_and_time_left() -> None:
    stream = io.StringIO()
    now = [0.0]
    printer = ProgressPrinter(stream, tty=True, clock=lambda: now[0])
    printer(
        ProgressEvent(
            operation="backup", phase="write", component="full_db", done=0, total=100 * 2**20
        )
    )
    now[0] = 10.0
    printer(
        ProgressEvent(
            operation="backup",
            phase="write",
            component="full_db",
            done=50 * 2**20,
            total=100 * 2**20,
        )
    )
    printer.finish()
    last = stream.getvalue().split("\r")[-1]
    assert "50.0%" in last and "5.0 MiB/s" in last and "0:10 left" in last


def test_progress_without_a_terminal_is_plain_lines() -> None:
    stream = io.StringIO()
    now = [0.0]
    printer = ProgressPrinter(stream, tty=False, interval=5, clock=lambda: now[0])
    for second in range(12):
        now[0] = float(second)
        printer(
            ProgressEvent(
                operation="backup",
                phase="write",
                component="full_db",
                done=second * 2**20,
                total=None,
            )
        )
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert len(lines) == 3  # at 0, 5 and 10 seconds
    assert lines[-1].startswith("full_db write: 10.0 MiB")


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    started = time.monotonic()
    completed = subprocess.run(
        [str(SCRIPT), "demo", "--dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr + completed.stdout
    assert "demo succeeded" in completed.stdout
    assert "identical" in completed.stdout
    assert time.monotonic() - started < 120


def test_server_version_and_pg_bin_options_and_environment(cli: Cli, tmp_path: Path) -> None:
    cli.json("--server-version", "10.4.2", "create", "--components", "settings")
    assert cli.json("list")[0]["server_version"] == "10.4.2"
    cli.env["ODEION_SERVER_VERSION"] = "10.5.0"
    cli.json("create", "--components", "settings")
    assert cli.json("list")[0]["server_version"] == "10.5.0"

    no_tools = tmp_path / "no-tools"
    no_tools.mkdir()
    failed = cli("--pg-bin", str(no_tools), "create", "--components", "full_db", code=1)
    assert "pg_dump" in failed.stderr
    cli.env["ODEION_PG_BIN"] = str(no_tools)
    assert "pg_dump" in cli("create", "--components", "full_db", code=1).stderr
