"""Encryption through the installed console script, on real PostgreSQL 18.

The age keys of a data directory (key age-new, age-recipient, emergency-kit),
the day the server is gone (a new data directory takes the kit and restores),
create --encrypt-to and --with-passphrase, --identity and the environment
variables, identities that never reach the output, and the extra's error when
pyrage is missing.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from odeion_archive._schema import migrate
from odeion_archive.sample import SeedScale, seed

SCRIPT = Path(sys.executable).with_name("odeion-archive")
PASSPHRASE = "a long passphrase for the tests"


class Cli:
    """The console script with one data directory and database."""

    def __init__(self, data_dir: Path, url: str, **env: str) -> None:
        self.data_dir = data_dir
        self.env = {
            **os.environ,
            "ODEION_DATA_DIR": str(data_dir),
            "ODEION_DATABASE_URL": url,
            **env,
        }
        for name in ("ODEION_ARCHIVE_IDENTITY_FILE", "ODEION_ARCHIVE_PASSPHRASE_FILE"):
            if name not in env:
                self.env.pop(name, None)

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
        assert completed.returncode == code, (completed.returncode, completed.stderr)
        assert "Traceback" not in completed.stderr
        return completed

    def json(self, *args: str, code: int = 0) -> Any:
        return json.loads(self("--json", *args, code=code).stdout)


@pytest.fixture
def database(pg18: Any) -> Iterator[str]:
    name = f"enc_cli_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg18.conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url: str = pg18.database_conninfo(name)
    with psycopg.connect(url) as conn:
        migrate(conn, 2)
        seed(conn, SeedScale.tiny(), seed=3)
    yield url
    with psycopg.connect(pg18.conninfo, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _users(url: str) -> set[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return {tuple(r) for r in conn.execute("SELECT username, email FROM users")}


def _secret_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.startswith("AGE-SECRET-KEY-")]


def test_the_day_the_server_is_gone(database: str, tmp_path: Path) -> None:
    old = Cli(tmp_path / "old", database)
    recipient = old.json("key", "age-new")["recipient"]
    assert recipient.startswith("age1")
    identity = tmp_path / "old" / "age-identity.txt"
    assert stat.S_IMODE(identity.stat().st_mode) == 0o600
    assert old.json("key", "age-recipient")["recipients"] == [recipient]
    old("key", "age-new", code=2)  # never replaces the identity

    # New backups are encrypted to it by default; the server opens them itself.
    created = old.json("create", "--format", "zip")
    assert created["encrypted"] is True
    name = created["name"]
    assert old.json("verify", name)["ok"]
    assert old.json("inspect", name)["components"][0]["facts"]  # decrypted with its identity

    kit = tmp_path / "kit.txt"
    old("key", "emergency-kit", str(kit))
    assert stat.S_IMODE(kit.stat().st_mode) == 0o600
    text = kit.read_text()
    assert "odeion-archive keyring 1" in text and "age -d -i" in text
    assert _secret_lines(kit) == _secret_lines(identity)
    old("key", "emergency-kit", str(kit), code=1)  # never written over

    # The server is gone: a new data directory, an empty database.
    archive = tmp_path / "old" / "backups" / name
    moved = tmp_path / name
    moved.write_bytes(archive.read_bytes())
    with psycopg.connect(database) as conn:
        conn.execute("DELETE FROM api_tokens")
        conn.execute("DELETE FROM invite_codes")
        conn.execute("DELETE FROM users")
    new = Cli(tmp_path / "new", database)
    plan = new.json("plan", str(moved), "--mode", "full_db", code=3)
    assert [b["code"] for b in plan["blockers"]] == ["key_missing"]
    assert "--identity" in plan["blockers"][0]["message"]
    # --identity with the kit opens it (foreign: the seal is not this server's yet) ...
    plan = new.json("plan", str(moved), "--mode", "users_auth", "--identity", str(kit))
    assert plan["can_restore"] and plan["authenticity"] == "foreign"
    # ... and importing the kit makes the old archives this server's own.
    imported = new.json("key", "import", str(kit))
    assert imported["recipients"] == [recipient]
    plan = new.json("plan", str(moved), "--mode", "full_db")
    assert plan["can_restore"] and plan["authenticity"] == "own"
    new("restore", str(moved), "--mode", "full_db", "--yes")
    assert len(_users(database)) > 0


def test_create_encrypt_to_and_identity_from_the_environment(database: str, tmp_path: Path) -> None:
    import pyrage

    identity = pyrage.x25519.Identity.generate()
    key = tmp_path / "key.txt"
    key.write_text(f"{identity}\n")
    cli = Cli(tmp_path / "data", database)
    created = cli.json("create", "--encrypt-to", str(identity.to_public()))
    name = created["name"]
    secret = str(identity)

    without = cli("plan", name, "--mode", "users_auth", code=3)
    assert "key_missing" in without.stdout + without.stderr
    verify = cli.json("verify", name)  # the ciphertexts only
    assert verify["ok"]
    keyed = Cli(tmp_path / "data", database, ODEION_ARCHIVE_IDENTITY_FILE=str(key))
    plan = keyed("plan", name, "--mode", "users_auth", "--conflict", "overwrite")
    assert secret not in plan.stdout + plan.stderr
    assert keyed.json("verify", name)["ok"]
    wrong = tmp_path / "wrong.txt"
    wrong.write_text(f"{pyrage.x25519.Identity.generate()}\n")
    blocked = cli.json("plan", name, "--mode", "users_auth", "--identity", str(wrong), code=3)
    assert [b["code"] for b in blocked["blockers"]] == ["key_wrong"]
    failed = cli("verify", name, "--identity", str(wrong), code=1)
    assert "none of the keys given opens it" in failed.stderr
    # Not a recipient: a usage error that says what one looks like.
    bad = cli("create", "--encrypt-to", "not-a-key", code=2)
    assert "age1" in bad.stderr


def test_passphrase_from_a_file_or_the_environment(database: str, tmp_path: Path) -> None:
    phrase = tmp_path / "phrase.txt"
    phrase.write_text(PASSPHRASE + "\n")
    cli = Cli(tmp_path / "data", database)
    name = cli.json("create", "--components", "settings", "--passphrase-file", str(phrase))["name"]
    manifest = cli.json("inspect", name)
    assert manifest["encryption"]["passphrase"] is True
    assert PASSPHRASE not in json.dumps(manifest)
    cli("plan", name, "--mode", "settings", code=3)
    plan = cli.json("plan", name, "--mode", "settings", "--passphrase-file", str(phrase))
    assert plan["can_restore"]
    from_env = Cli(tmp_path / "data", database, ODEION_ARCHIVE_PASSPHRASE_FILE=str(phrase))
    from_env("restore", name, "--mode", "settings", "--conflict", "overwrite", "--yes")
    # No terminal to ask on: a clear usage error.
    asked = cli("create", "--with-passphrase", code=2)
    assert "--passphrase-file" in asked.stderr


def test_a_missing_pyrage_names_the_extra(database: str, tmp_path: Path) -> None:
    """Simulates an install without the [age] extra: pyrage cannot be imported."""
    code = (
        "import sys; sys.modules['pyrage'] = None\n"
        "from odeion_archive._cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    env = {**os.environ, "ODEION_DATA_DIR": str(tmp_path), "ODEION_DATABASE_URL": database}
    completed = subprocess.run(
        [sys.executable, "-c", code, "create", "--encrypt-to", "age1" + "q" * 58],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert completed.returncode == 1, completed.stderr
    assert "pip install 'odeion-archive[age]'" in completed.stderr
    assert "Traceback" not in completed.stderr
    # Plain backups do not need it.
    completed = subprocess.run(
        [sys.executable, "-c", code, "--json", "create", "--components", "settings"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr


def _on_a_terminal(cli: Cli, args: list[str], answers: list[str]) -> tuple[int, str]:
    """Run the console script on a pseudo-terminal, typing each answer when asked."""
    import pty
    import select

    pid, fd = pty.fork()
    if pid == 0:  # the child: the console script, with the pty as its terminal
        os.execve(str(SCRIPT), [str(SCRIPT), *args], cli.env)
    output = b""
    pending = list(answers)
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], 30)
            if not ready:
                os.kill(pid, 9)
                output += b"\n(no answer within 30 s: killed)"
                break
            try:
                data = os.read(fd, 4096)
            except OSError:
                break
            if not data:
                break
            output += data
            asked = output.count(b"passphrase: ") + output.count(b"again: ")
            while pending and asked > len(answers) - len(pending):
                os.write(fd, pending.pop(0).encode() + b"\n")
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def test_the_passphrase_asked_on_the_terminal(database: str, tmp_path: Path) -> None:
    cli = Cli(tmp_path / "data", database)
    code, output = _on_a_terminal(
        cli,
        ["create", "--components", "settings", "--with-passphrase"],
        [PASSPHRASE, PASSPHRASE],
    )
    assert code == 0, output
    assert PASSPHRASE not in output  # not echoed
    (name,) = [a["name"] for a in cli.json("list")]
    assert cli.json("inspect", name)["encryption"]["passphrase"] is True
    code, output = _on_a_terminal(
        cli, ["plan", name, "--mode", "settings", "--ask-passphrase", "--no-verify"], [PASSPHRASE]
    )
    assert code == 0, output
    code, output = _on_a_terminal(
        cli, ["create", "--with-passphrase"], [PASSPHRASE, PASSPHRASE + " but other"]
    )
    assert code == 2 and "the two passphrases differ" in output
