"""Interrupts (SIGINT, SIGTERM) and an ended input: what the command line says is true."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from _terminal import on_a_terminal

# Runs the command line with a signal sent to itself at a known point: when the
# progress printer sees ``phase`` (``at`` = "progress"), or as the archiver is
# closed at the end (``at`` = "close"), or as the passphrase is asked for.
_RUNNER = """
import os, signal, sys
from odeion_archive._archiver import Archiver
from odeion_archive._cli import _age, main
from odeion_archive._progress import ProgressPrinter

at, phase, name, *argv = sys.argv[1:]
number = getattr(signal, name)

def kill() -> None:
    os.kill(os.getpid(), number)

if at == "progress":
    shown = ProgressPrinter.__call__

    def call(self, event):
        shown(self, event)
        if event.phase == phase:
            kill()

    ProgressPrinter.__call__ = call
elif at == "close":
    close = Archiver.close

    def closing(self):
        kill()
        close(self)
        print("closed", file=sys.stderr)

    Archiver.close = closing
sys.exit(main(argv))
"""

_SETTING = "(SELECT min(key) FROM system_settings)"


def _setting(url: str) -> str:
    with psycopg.connect(url) as connection:
        row = connection.execute(
            f"SELECT value::text FROM system_settings WHERE key = {_SETTING}"
        ).fetchone()
    assert row is not None
    return str(row[0])


def _change_setting(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            f"UPDATE system_settings SET value = '\"changed\"' WHERE key = {_SETTING}"
        )


def _env(data_dir: Path, url: str) -> dict[str, str]:
    return {**os.environ, "ODEION_DATA_DIR": str(data_dir), "ODEION_DATABASE_URL": url}


def _run(
    env: dict[str, str], *args: str, at: str = "-", phase: str = "-", name: str = "SIGINT"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _RUNNER, at, phase, name, *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=300,
    )


def _error(completed: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in completed.stderr, completed.stderr
    errors = [line for line in completed.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1, completed.stderr
    return errors[0]


@pytest.fixture
def archive(odeion_db: str, tmp_path: Path) -> tuple[dict[str, str], str]:
    """The environment of a data directory, and a settings archive of the database."""
    env = _env(tmp_path / "data", odeion_db)
    created = _run(env, "create", "--components", "settings")
    assert created.returncode == 0, created.stderr
    name = created.stdout.strip()
    _change_setting(odeion_db)
    return env, name


def _restore(archive: tuple[dict[str, str], str], **where: str) -> subprocess.CompletedProcess[str]:
    env, name = archive
    return _run(
        env, "restore", name, "--mode", "settings", "--conflict", "overwrite", "--yes", **where
    )


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM"])
def test_an_interrupt_before_the_commit_changes_nothing_and_says_so(
    archive: tuple[dict[str, str], str], odeion_db: str, name: str
) -> None:
    completed = _restore(archive, at="progress", phase="component", name=name)
    assert completed.returncode == 1
    assert _error(completed).endswith(f"interrupted ({name}); nothing was changed")
    assert _setting(odeion_db) == '"changed"'


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM"])
def test_an_interrupt_after_the_commit_says_the_restore_was_committed(
    archive: tuple[dict[str, str], str], odeion_db: str, name: str
) -> None:
    completed = _restore(archive, at="progress", phase="done", name=name)
    assert completed.returncode == 1
    error = _error(completed)
    assert f"interrupted ({name}) after the restore of {archive[1]} was committed" in error
    assert "nothing was changed" not in error
    assert _setting(odeion_db) != '"changed"'


def test_an_interrupt_while_closing_waits_for_the_close_and_says_what_was_done(
    archive: tuple[dict[str, str], str], odeion_db: str
) -> None:
    completed = _restore(archive, at="close")
    assert completed.returncode == 1
    assert completed.stdout.startswith(f"restored {archive[1]} ")
    assert "closed" in completed.stderr.splitlines()  # the close ran to its end
    error = _error(completed)
    assert f"interrupted (SIGINT) after the restore of {archive[1]} was committed" in error
    assert _setting(odeion_db) != '"changed"'


@pytest.mark.parametrize(("phase", "published"), [("finalize", False), ("done", True)])
def test_an_interrupted_backup_says_whether_it_was_published(
    odeion_db: str, tmp_path: Path, phase: str, published: bool
) -> None:
    env = _env(tmp_path / "data", odeion_db)
    completed = _run(env, "create", "--components", "settings", at="progress", phase=phase)
    assert completed.returncode == 1
    error = _error(completed)
    backups = sorted(p.name for p in (tmp_path / "data" / "backups").iterdir())
    assert not [n for n in backups if "partial" in n]
    archives = [n for n in backups if n.startswith("odeion-backup-")]
    if published:
        assert len(archives) == 1
        assert f"after the backup was created {archives[0]}; it is in the store" in error
    else:
        assert archives == []
        assert error.endswith("interrupted (SIGINT); nothing was changed")


def test_an_interrupt_after_a_prune_says_what_it_deleted(odeion_db: str, tmp_path: Path) -> None:
    env = _env(tmp_path / "data", odeion_db)
    for _ in range(2):
        assert _run(env, "create", "--components", "settings").returncode == 0
    completed = _run(env, "prune", "--keep-last", "1", "--yes", at="close", name="SIGTERM")
    assert completed.returncode == 1
    assert completed.stdout.startswith("deleted odeion-backup-")
    assert _error(completed).endswith("interrupted (SIGTERM) after the prune deleted 1 archive")
    assert len(list((tmp_path / "data" / "backups").glob("odeion-backup-*"))) == 1


def test_an_interrupt_while_closing_after_any_command_says_it_finished(
    odeion_db: str, tmp_path: Path
) -> None:
    env = _env(tmp_path / "data", odeion_db)
    completed = _run(env, "list", at="close", name="SIGTERM")
    assert completed.returncode == 1
    assert _error(completed).endswith("interrupted (SIGTERM) after 'list' finished")


def test_sigterm_at_the_confirmation_ends_the_restore_cleanly(
    archive: tuple[dict[str, str], str], odeion_db: str
) -> None:
    env, name = archive
    seen, code = _on_a_terminal(
        env, ["restore", name, "--mode", "settings", "--conflict", "overwrite"], b"[y/N]"
    )
    assert code == 1, seen
    assert "Traceback" not in seen
    assert "interrupted (SIGTERM); nothing was changed" in seen
    assert _setting(odeion_db) == '"changed"'


@pytest.mark.parametrize(
    "args",
    [
        ("create", "--components", "settings", "--with-passphrase"),
        ("plan", "ARCHIVE", "--mode", "settings", "--ask-passphrase"),
    ],
)
def test_the_end_of_input_at_a_passphrase_prompt_changes_nothing(
    archive: tuple[dict[str, str], str], args: tuple[str, ...]
) -> None:
    env, name = archive
    argv = [name if a == "ARCHIVE" else a for a in args]
    seen, code = _on_a_terminal(env, argv, b"passphrase: ", send=b"\x04")
    assert code == 1, seen
    assert "Traceback" not in seen and "EOFError" not in seen
    assert "no passphrase: the input ended at the prompt (Ctrl-D); nothing was changed" in seen


def _on_a_terminal(
    env: dict[str, str], argv: list[str], prompt: bytes, *, send: bytes | None = None
) -> tuple[str, int]:
    """Run the command line on a pty; at ``prompt``, type ``send`` or else send SIGTERM."""

    def act(process: subprocess.Popen[bytes], terminal: int) -> None:
        if send is None:
            process.send_signal(signal.SIGTERM)
        else:
            os.write(terminal, send)

    seen, code, acted = on_a_terminal(
        [sys.executable, "-m", "odeion_archive", *argv],
        env,
        prompt=prompt,
        act=act,
        stdout_too=True,
        new_session=True,
    )
    assert acted, seen
    return seen, code


def test_an_interrupted_run_due_says_some_tasks_may_have_run(
    odeion_db: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "schedule.toml").write_text('backup_every = "1d"\ncomponents = ["settings"]\n')
    env = _env(data, odeion_db)
    completed = _run(env, "run-due", at="progress", phase="done")
    assert completed.returncode == 1
    assert _error(completed).endswith(
        "interrupted (SIGINT); some of the due tasks may have run; 'due' shows what remains"
    )
    # The backup that ran is in the store: "nothing was changed" would have been untrue.
    assert len(list((data / "backups").glob("odeion-backup-*"))) == 1
