"""The installed ``odeion-archive`` console script, end to end against real PostgreSQL."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from _terminal import on_a_terminal
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
        "encrypted",
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
        "encrypted",
        "last_verification",
        "last_drill",
        "last_intact_at",
        "warnings",
    }
    assert listed[0]["schema_version"] == 2
    assert listed[0]["last_drill"] is None and listed[0]["warnings"] == []

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
    other = cli.json("create", "--components", "settings")
    cli("delete", created["name"])
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
    pruned = cli.json("prune", "--keep-last", "1", "--yes")
    assert pruned == {"deleted": [other["name"]]}
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


# -- the command line as a new administrator meets it ---------------------


def _one_line_error(completed: subprocess.CompletedProcess[str]) -> str:
    lines = completed.stderr.strip().splitlines()
    assert lines[-1].startswith("odeion-archive: error:"), completed.stderr
    assert "Traceback" not in completed.stderr
    return lines[-1]


def _on_a_terminal(env: dict[str, str], *args: str, answer: bytes | None = None) -> tuple[str, int]:
    """Run the console script with stdin and stderr on a pty; what it drew, and its exit code.

    ``answer`` is typed when the program asks ``[y/N]``.
    """

    def type_answer(_process: subprocess.Popen[bytes], terminal: int) -> None:
        assert answer is not None
        os.write(terminal, answer)

    drawn, code, _answered = on_a_terminal(
        [str(SCRIPT), *args],
        env,
        prompt=b"[y/N]",
        act=None if answer is None else type_answer,
    )
    return drawn, code


def test_an_unusable_data_directory_is_a_one_line_error(cli: Cli, tmp_path: Path) -> None:
    not_a_dir = tmp_path / "a-file"
    not_a_dir.write_text("")
    archive = cli.json("create", "--components", "settings")["path"]
    for command in (("create", "--components", "settings"), ("import", archive)):
        failed = cli("--data-dir", str(not_a_dir), *command, code=2)
        error = _one_line_error(failed)
        assert f"the data directory {not_a_dir} is a file, not a directory" in error
        assert "choose a directory with --data-dir" in error
    if os.geteuid() != 0:  # root may write anywhere
        read_only = tmp_path / "read-only"
        read_only.mkdir(mode=0o500)
        error = _one_line_error(cli("--data-dir", str(read_only), "import", archive, code=1))
        assert "Permission denied" in error


def test_import_of_a_missing_file_or_a_directory(cli: Cli, tmp_path: Path) -> None:
    missing = _one_line_error(cli("import", str(tmp_path / "nowhere.zip"), code=1))
    assert "nowhere.zip does not exist" in missing
    directory = _one_line_error(cli("import", str(tmp_path), code=1))
    assert "is a directory" in directory
    device = _one_line_error(cli("import", os.devnull, code=1))
    assert f"{os.devnull} is not a regular file; give the path of an archive file" in device


@pytest.mark.parametrize(
    "command",
    [
        ("inspect",),
        ("verify",),
        ("plan", "--mode", "settings"),
        ("restore", "--mode", "settings", "--yes"),
    ],
)
def test_a_directory_or_a_device_for_the_archive_says_so(
    cli: Cli, tmp_path: Path, command: tuple[str, ...]
) -> None:
    for path, what in ((tmp_path, "is a directory"), (Path(os.devnull), "is not a regular file")):
        error = _one_line_error(cli(command[0], str(path), *command[1:], code=1))
        assert f"{str(path)!r} {what}; give the path of an archive file" in error
        assert "no such file" not in error


@pytest.mark.parametrize(
    "args", [("--json", "list"), ("list",), ("--json", "inspect", "ARCHIVE"), ("plugins",)]
)
def test_a_closed_stdout_ends_quietly(cli: Cli, args: tuple[str, ...]) -> None:
    name = cli.json("create", "--components", "settings")["name"]
    for _ in range(3):
        process = subprocess.Popen(
            [str(SCRIPT), *(name if a == "ARCHIVE" else a for a in args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=cli.env,
            text=True,
        )
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()  # as `| head` does, before the program writes
        with process.stderr:
            stderr = process.stderr.read()
        assert process.wait(timeout=60) == 0
        assert stderr == ""


def test_unknown_format_or_component_is_a_usage_error(cli: Cli) -> None:
    assert "zip" in _one_line_error(cli("create", "--format", "rar", code=2))
    assert "settings" in _one_line_error(cli("create", "--components", "nothing", code=2))


def test_any_damage_found_by_verify_is_exit_4(cli: Cli) -> None:
    created = Path(cli.json("create", "--components", "settings")["path"])
    store = created.parent
    data = created.read_bytes()
    (store / "truncated.tar.zst").write_bytes(data[: len(data) // 2])
    (store / "not-an-archive.zip").write_bytes(b"hello, world\n" * 100)
    for name in ("truncated.tar.zst", "not-an-archive.zip"):
        report = cli.json("verify", name, code=4)
        assert report["ok"] is False
        assert report["problems"][0]["member"] is None
        assert report["problems"][0]["message"]
        text = cli("verify", name, code=4)
        assert text.stdout.startswith("container: ")


def test_errors_name_the_right_thing(cli: Cli, tmp_path: Path) -> None:
    garbage = tmp_path / "holiday-photos.bin"
    garbage.write_bytes(b"not an archive at all")
    error = _one_line_error(cli("import", str(garbage), code=1))
    assert "holiday-photos.bin" in error and ".partial-" not in error
    for command in (("verify",), ("plan", "--mode", "settings")):
        missing = str(tmp_path / "gone.tar.zst")
        error = _one_line_error(cli(command[0], missing, *command[1:], code=1))
        assert "no such file" in error and "not an archive name" not in error


def test_an_unreachable_database_url_from_the_environment_says_so(tmp_path: Path) -> None:
    unreachable = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"
    bad = Cli(tmp_path / "data", unreachable)
    error = _one_line_error(bad("create", code=1))
    assert "came from the environment variable ODEION_DATABASE_URL" in error
    by_option = bad("--database-url", unreachable, "create", code=1)
    assert "ODEION_DATABASE_URL" not in _one_line_error(by_option)


def test_the_unknown_mode_error_lists_each_mode_once(cli: Cli) -> None:
    error = _one_line_error(cli("plan", "x", "--mode", "everything", code=2))
    modes = error.split("choose one of ")[1].split(", ")
    assert len(modes) == len(set(modes))
    assert {"full_db", "users_auth", "settings", "everything_json"} <= set(modes)


def test_conflict_does_not_apply_to_full_db(cli: Cli) -> None:
    name = cli.json("create", "--components", "settings")["name"]
    for command in ("plan", "restore"):
        failed = cli(
            command,
            name,
            "--mode",
            "full_db",
            "--conflict",
            "overwrite",
            "--yes" if command == "restore" else "--no-verify",
            code=2,
        )
        assert "--conflict applies to the JSON modes only" in _one_line_error(failed)


def test_prune_shows_asks_and_has_a_dry_run(cli: Cli) -> None:
    names = [cli.json("create", "--components", "settings")["name"] for _ in range(3)]
    dry = cli.json("prune", "--keep-last", "1", "--dry-run")
    assert dry == {
        "deleted": [],
        "would_delete": [names[1], names[0]],
        "kept": [{"name": names[2], "reasons": ["keep-last"]}],
    }
    assert cli("prune", "--keep-last", "1", "--dry-run").stdout.splitlines() == [
        f"would delete {names[1]}",
        f"would delete {names[0]}",
        f"keep {names[2]} (keep-last)",
    ]
    refused = cli("prune", "--keep-last", "0", code=2)
    assert "--yes" in _one_line_error(refused)
    assert names[0] in refused.stderr  # what would have been deleted is shown
    drawn, code = _on_a_terminal(cli.env, "prune", "--keep-last", "1", answer=b"n\n")
    assert code == 1 and names[0] in drawn and "[y/N]" in drawn and "nothing was deleted" in drawn
    assert len(cli.json("list")) == 3
    drawn, code = _on_a_terminal(cli.env, "prune", "--keep-last", "1", answer=b"y\n")
    assert code == 0
    assert [a["name"] for a in cli.json("list")] == [names[2]]


def test_restore_with_yes_prints_the_plans_warnings(cli: Cli) -> None:
    name = cli.json("create", "--components", "settings")["name"]
    restored = cli("restore", name, "--mode", "settings", "--conflict", "overwrite", "--yes")
    assert "warning [rescan_required]" in restored.stderr
    as_json = cli("--json", "restore", name, "--mode", "settings", "--yes")
    assert "warning [rescan_required]" in as_json.stderr
    assert json.loads(as_json.stdout)["restored"] is True


def test_plan_checks_the_archive_and_says_so(cli: Cli) -> None:
    created = Path(cli.json("create")["path"])
    intact = cli("plan", created.name, "--mode", "settings")
    assert "integrity: checked" in intact.stdout
    assert cli.json("plan", created.name, "--mode", "settings")["verified"] is True
    data = bytearray(created.read_bytes())
    data[len(data) // 2] ^= 1  # in the full_db dump, which a settings plan does not read
    damaged = created.with_name("damaged-" + created.name)
    damaged.write_bytes(data)
    report = cli.json("plan", damaged.name, "--mode", "settings", code=4)
    assert report["can_restore"] is False and report["verified"] is False and report["problems"]
    assert "damaged" in cli("plan", damaged.name, "--mode", "settings", code=4).stdout
    unchecked = cli("plan", damaged.name, "--mode", "settings", "--no-verify")
    assert "integrity: not checked; the restore checks the archive's seal" in unchecked.stdout
    cli("restore", damaged.name, "--mode", "settings", "--yes", code=1)


def test_importing_an_identical_copy_names_the_archive_it_duplicates(
    cli: Cli, tmp_path: Path
) -> None:
    created = cli.json("create", "--components", "settings")
    copy = tmp_path / "copy.tar.zst"
    copy.write_bytes(Path(created["path"]).read_bytes())
    error = _one_line_error(cli("import", str(copy), code=1))
    assert f"identical copy of the archive {created['name']}" in error
    assert [a["name"] for a in cli.json("list")] == [created["name"]]


def test_verify_on_a_non_terminal_prints_real_figures(cli: Cli) -> None:
    created = cli.json("create", "--components", "users_auth,settings")
    checked = cli("verify", created["name"])
    assert checked.stdout == "ok\n"
    assert "0.0%" not in checked.stderr and "\r" not in checked.stderr
    line = checked.stderr.strip().splitlines()[-1]
    assert line.startswith("verify: ") and "KiB in " in line
    assert cli("--json", "verify", created["name"]).stderr.startswith("verify: ")


def test_on_a_terminal_every_bar_ends_full_and_nothing_says_done(cli: Cli) -> None:
    name = cli.json("create")["name"]
    drawn, code = _on_a_terminal(cli.env, "verify", name)
    assert code == 0
    lines = re.split(r"[\r\n]+", re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", drawn))
    final = [line for line in lines if "verify" in line][-1]
    assert "100.0%" in final
    assert "━" in final and "╺" not in final and "╸" not in final  # a full bar
    assert "done:" not in drawn
    drawn, code = _on_a_terminal(cli.env, "create", "--components", "settings,full_db")
    assert code == 0 and "done:" not in drawn and "created odeion-backup-" in drawn


def _events(printer: ProgressPrinter, now: list[float]) -> None:
    def event(phase: str, done: int, total: int | None, unit: Any, at: float) -> None:
        now[0] = at
        printer(ProgressEvent("restore", phase, "full_db", done=done, total=total, unit=unit))

    printer(ProgressEvent("restore", "component", unit="steps", message="restoring full_db"))
    event("schema", 1, 3, "steps", 0.0)
    event("schema", 3, 3, "steps", 1.0)
    for second in range(11):
        event("data", second * 2**20, 10 * 2**20, "bytes", 1.0 + second)
    event("indexes", 3, 12, "indexes", 12.0)
    event("indexes", 12, 12, "indexes", 20.0)
    printer(ProgressEvent("restore", "done", done=1, total=1))
    printer.finish()


def test_each_phase_has_its_own_bar_and_counted_unit_on_a_terminal() -> None:
    stream, now = io.StringIO(), [0.0]
    _events(ProgressPrinter(stream, tty=True, clock=lambda: now[0]), now)
    screens = stream.getvalue()
    final = screens.split("\r")[-1]
    assert "full_db schema" in final and "full_db data" in final and "full_db indexes" in final
    assert final.count("100.0%") == 3
    assert "10.0 MiB" in final and "12 indexes" in final
    assert "3 of 12 indexes" in screens  # the counted unit while it runs
    assert "1.0 MiB/s" in screens and "left" in screens
    assert "done" not in screens


def test_each_phase_ends_with_its_own_figures_on_a_non_terminal() -> None:
    stream, now = io.StringIO(), [0.0]
    _events(ProgressPrinter(stream, tty=False, interval=5, clock=lambda: now[0]), now)
    assert stream.getvalue().splitlines() == [
        "restoring full_db",
        "full_db schema: 3 in 1.0 s",
        "full_db data: 50.0% 5.0 MiB of 10.0 MiB, 1.0 MiB/s, 0:05 left",
        "full_db data: 10.0 MiB in 10.0 s",
        "full_db indexes: 12 indexes in 8.0 s",
    ]


def test_a_real_full_db_restore_reports_its_phases_in_order(cli: Cli) -> None:
    """Through the console script: each phase ends with its own figures, in order."""
    name = cli.json("create", "--components", "full_db")["name"]
    restored = cli("restore", name, "--mode", "full_db", "--yes")
    lines = [line for line in restored.stderr.splitlines() if line.startswith("full_db ")]
    phases = [line.split(":")[0].removeprefix("full_db ") for line in lines]
    assert list(dict.fromkeys(p for p in phases if p != "restore")) == [
        "checking the dump",
        "schema",
        "data",
        "indexes and constraints",
    ], restored.stderr
    ends = [line for line in lines if not line.startswith("full_db restore:")]
    assert ends[-1].startswith("full_db indexes and constraints: ") and " in " in ends[-1]
    # The work over all phases ends with its own figures, after every phase.
    assert lines[-1].startswith("full_db restore: ") and " in " in lines[-1], restored.stderr


def test_sample_makes_a_data_directory_ready_to_try(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODEION_")}
    data_dir = tmp_path / "try"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SCRIPT), *args], capture_output=True, text=True, env=env, check=False, timeout=300
        )

    loaded = run("sample", "--data-dir", str(data_dir))
    assert loaded.returncode == 0, loaded.stderr
    assert "users" in loaded.stdout and f"--data-dir {data_dir} create" in loaded.stdout
    created = run("--data-dir", str(data_dir), "create", "--json")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["components"] == ["users_auth", "settings", "full_db"]
    again = run("sample", "--data-dir", str(data_dir))
    assert again.returncode == 1 and "already has the Odeion schema" in again.stderr

    empty = run("--data-dir", str(tmp_path / "empty"), "create")
    assert empty.returncode == 1
    assert f"sample --data-dir {tmp_path / 'empty'}" in empty.stderr

    ignored = run("demo", "--data-dir", str(tmp_path / "x"))
    assert ignored.returncode == 2 and "demo --dir DIR" in ignored.stderr
    help_text = run("--help").stdout
    assert "sample --data-dir DIR" in help_text and "demo" in help_text


def test_help_shows_defaults_and_every_argument() -> None:
    def help_of(*args: str) -> str:
        return subprocess.run(
            [str(SCRIPT), *args, "--help"], capture_output=True, text=True, check=True
        ).stdout

    assert "(default: ./odeion-data)" in " ".join(help_of().split())
    assert "keep the N newest archives" in help_of("prune")
    assert "keep the newest archive of each of the last N days" in help_of("prune")
    assert "the archive file to add" in help_of("import")
    assert "the archive's name, as 'list' shows it" in help_of("delete")


def test_list_columns_line_up(cli: Cli) -> None:
    cli.json("create", "--components", "settings", "--format", "zip")
    cli.json("create", "--components", "users_auth,settings")
    lines = cli("list").stdout.splitlines()
    assert lines[0].split() == [
        "NAME",
        "SIZE",
        "FORMAT",
        "COMPONENTS",
        "CREATED",
        "(UTC)",
        "SERVER",
        "SCHEMA",
        "ORIGIN",
        "VERIFIED",
        "DRILLED",
    ]
    for header in ("FORMAT", "COMPONENTS", "CREATED", "SERVER", "ORIGIN", "VERIFIED", "DRILLED"):
        column = lines[0].index(header)
        assert all(line[column - 2 : column] == "  " for line in lines[1:]), lines
    assert {line.index("KiB") for line in lines[1:]} == {lines[0].index("SIZE") + 1}


def test_the_library_does_not_import_rich() -> None:
    code = (
        "import sys, odeion_archive, odeion_archive._archiver;"
        "print(sorted(m for m in sys.modules if m == 'rich' or m.startswith('rich.')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# -- nothing from an archive drives the terminal --------------------

_HOSTILE = "evil\x1b[8m\u202ehidden"
_SHOWN = "evil\\x1b[8m\\u202ehidden"


def test_i10_item8_archive_text_is_escaped_in_list_and_inspect(cli: Cli) -> None:
    cli("--server-version", _HOSTILE, "create", "--components", "settings")
    listed = cli("list").stdout
    assert "\x1b" not in listed and "\u202e" not in listed and _SHOWN in listed
    assert cli.json("list")[0]["server_version"] == _HOSTILE  # --json stays exact
    name = cli.json("list")[0]["name"]
    path = Path(cli.json("list")[0]["path"])
    (path.parent / f"{_HOSTILE}.tar.zst").write_bytes(path.read_bytes())  # a hostile file name
    listed = cli("list").stdout
    assert "\x1b" not in listed and f"{_SHOWN}.tar.zst" in listed
    shown = cli("inspect", name).stdout
    assert "\x1b" not in shown and "\u202e" not in shown
    assert cli.json("inspect", name)["server_version"] == _HOSTILE


def test_i10_item8_usernames_in_plan_warnings_are_escaped(cli: Cli, database: str) -> None:
    import psycopg

    with psycopg.connect(database, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO users (username, password_hash, role) VALUES (%s, 'x', 'admin')",
            (_HOSTILE,),
        )
        try:
            name = cli.json("create", "--components", "users_auth")["name"]
        finally:
            connection.execute("DELETE FROM users WHERE username = %s", (_HOSTILE,))
    plan = cli("plan", name, "--mode", "users_auth")
    assert "admin_accounts_imported" in plan.stdout and _SHOWN in plan.stdout
    assert "\x1b" not in plan.stdout and "\u202e" not in plan.stdout
    warnings = cli.json("plan", name, "--mode", "users_auth")["warnings"]
    assert any("evil" in w["message"] for w in warnings)
    restored = cli("restore", name, "--mode", "users_auth", "--yes")
    assert _SHOWN in restored.stderr and "\x1b" not in restored.stderr
    with psycopg.connect(database, autocommit=True) as connection:
        connection.execute("DELETE FROM users WHERE username = %s", (_HOSTILE,))


def test_restore_flags_are_made_from_the_components_options_classes() -> None:
    """Each field of a component's options class is a flag of plan and restore."""
    from odeion_archive._cli._parser import build_parser, component_option_fields, option_values

    owners = {field.name: owner for field, owner in component_option_fields()}
    assert owners == {
        "acting_user": "users_auth",
        "remap_paths": "full_db",
        "allow_unsafe_dump": "full_db",
        "trust_foreign_dump": "full_db",
    }
    args = build_parser().parse_args(
        [
            "restore",
            "a.tar.zst",
            "--mode",
            "full_db",
            "--remap-path",
            "/old=/new",
            "--remap-path",
            "/a=/b",
            "--trust-foreign-dump",
        ]
    )
    assert option_values(args) == {
        "remap_paths": {"/old": "/new", "/a": "/b"},
        "allow_unsafe_dump": False,
        "trust_foreign_dump": True,
    }
    help_text = subprocess.run(
        [str(SCRIPT), "plan", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "users_auth: the account performing the restore" in help_text
    assert "--remap-path OLD=NEW" in help_text
