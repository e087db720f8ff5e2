"""Planning and restoring archives through the Archiver, on real PostgreSQL servers.

The component-level semantics of skip / overwrite / rename are tested in
tests/components; here every mode, strategy and format goes through the whole
path (backup, store, plan, restore) on PostgreSQL 18, 15, and from 15 to 18.
"""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from odeion_archive import Archiver, Registry, RestoreResult, hookimpl
from odeion_archive._archive import ArchiveBuilder
from odeion_archive._manifest import ComponentEntry, Manifest
from odeion_archive._schema import migrate
from odeion_archive.errors import ArchiveError, RestoreBlockedError, RestoreFailedError
from odeion_archive.events import ProgressEvent
from odeion_archive.interfaces import Conflict
from odeion_archive.sample import SeedScale, seed

Snapshot = Callable[[str], dict[str, list[tuple[Any, ...]]]]
JSON_TABLES = ("users", "invite_codes", "api_tokens", "system_settings")


def _new_database(server: Any, *, schema: int | None = None, seeded: bool = False) -> str:
    name = f"restore_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server.conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url: str = server.database_conninfo(name)
    if schema is not None:
        with psycopg.connect(url) as conn:
            migrate(conn, schema)
            if seeded:
                seed(conn, SeedScale.tiny(), seed=1)
    return url


@pytest.fixture
def databases(request: pytest.FixtureRequest) -> Iterator[Callable[..., str]]:
    """Makes databases on a server; drops them all afterwards."""
    made: list[tuple[Any, str]] = []

    def make(server: Any, **kwargs: Any) -> str:
        url = _new_database(server, **kwargs)
        made.append((server, url))
        return url

    yield make
    for server, url in made:
        name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
        with psycopg.connect(server.conninfo, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(str(name)))
            )


def _change_after_backup(url: str) -> None:
    """What happens on the server after the backup: new rows, changed rows, a new table."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "UPDATE users SET display_name = 'changed later' WHERE id = (SELECT min(id) FROM users)"
        )
        conn.execute("INSERT INTO users (username, password_hash) VALUES ('latecomer', 'x')")
        conn.execute(
            "UPDATE system_settings SET value = '\"changed\"' WHERE key = (SELECT min(key) FROM system_settings)"
        )
        conn.execute("INSERT INTO system_settings (key, value) VALUES ('late.setting', '1')")
        conn.execute("CREATE TABLE created_after_backup (id int)")
        conn.execute(
            "INSERT INTO watch_history (user_id, media_item_id) SELECT min(u.id), min(m.id) FROM users u, media_items m"
        )


def _with_plugin_table(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE plugin_notes (id bigserial PRIMARY KEY, body text NOT NULL)")
        conn.execute("CREATE INDEX plugin_notes_body ON plugin_notes (body)")
        conn.execute(
            "INSERT INTO plugin_notes (body) SELECT 'note ' || g FROM generate_series(1, 50) g"
        )


def _sequences(url: str) -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        return dict(
            conn.execute(
                "SELECT schemaname || '.' || sequencename, last_value FROM pg_sequences"
            ).fetchall()
        )


def _indexes(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        return [
            tuple(r)
            for r in conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"
            )
        ]


# -- full_db ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["tar.zst", "zip"])
@pytest.mark.parametrize("route", ["pg18", "pg15", "pg15-to-pg18"])
def test_full_db_restore_brings_back_the_source_exactly(
    request: pytest.FixtureRequest,
    databases: Callable[..., str],
    db_snapshot: Snapshot,
    tmp_path: Path,
    route: str,
    fmt: str,
) -> None:
    source_server = request.getfixturevalue(route.split("-", maxsplit=1)[0])
    target_server = request.getfixturevalue(route.rsplit("-", maxsplit=1)[-1])
    source = databases(source_server, schema=2, seeded=True)
    _with_plugin_table(source)
    expected = db_snapshot(source)
    expected_sequences, expected_indexes = _sequences(source), _indexes(source)

    info = Archiver(tmp_path, database_url=source).create(format=fmt).archive
    # The target is the source, changed since the backup (the admin panel case) ...
    target = source
    if route == "pg15-to-pg18":
        # ... or another server's database with other content (a move to a new host).
        target = databases(target_server, schema=2, seeded=True)
    _change_after_backup(target)

    archiver = Archiver(tmp_path, database_url=target)
    plan = archiver.plan(info.name, "full_db")
    assert plan.can_restore, plan.blockers
    result = archiver.restore(info.name, "full_db")

    assert db_snapshot(target) == expected  # every table, plugin's included; later table gone
    assert _sequences(target) == expected_sequences
    assert _indexes(target) == expected_indexes
    assert result.schema_version == 2 and result.rescan_required


@pytest.mark.parametrize("schema", [1, 2])
@pytest.mark.parametrize(("fmt", "via"), [("tar.zst", "owner_url"), ("zip", "superuser_url")])
def test_full_db_restore_as_the_non_superuser_owner_without_opt_in(
    pg_server: Any,
    databases: Callable[..., str],
    db_snapshot: Snapshot,
    tmp_path: Path,
    schema: int,
    fmt: str,
    via: str,
) -> None:
    """Genuine archives restore exactly, owned by the plain owner, with progress by phase."""
    source = databases(pg_server, schema=schema, seeded=True)
    archiver = Archiver(tmp_path, database_url=source)
    info = archiver.create(components=["full_db"], format=fmt).archive
    target = databases(pg_server)
    name = psycopg.conninfo.conninfo_to_dict(target)["dbname"]
    role = f"owner_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server.conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(str(name)), sql.Identifier(role)
            )
        )
    url = psycopg.conninfo.make_conninfo(target, user=role) if via == "owner_url" else target
    events: list[ProgressEvent] = []
    try:
        restorer = Archiver(tmp_path, database_url=url)
        plan = restorer.plan(info.name, "full_db")
        assert plan.can_restore, plan.blockers
        assert info.authenticity == "own"
        restorer.restore(info.name, "full_db", progress=events.append)
        assert db_snapshot(target) == db_snapshot(source)
        with psycopg.connect(target) as conn:
            owners = conn.execute(
                "SELECT DISTINCT relowner::regrole::text FROM pg_class "
                "WHERE relnamespace = 'public'::regnamespace"
            ).fetchall()
            leftovers = conn.execute(
                "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'odeion\\_archive\\_restore\\_%'"
            ).fetchone()
        assert owners == [(role,)]
        assert leftovers == (0,)  # the temporary login role, if one was used, is gone
        # Progress by phase, each phase ending complete.
        ours = [e for e in events if e.component == "full_db" and e.total is not None]
        phases = [e.phase for e in ours if e.phase != "restore"]
        expected = ["checking the dump", "schema", "data", "indexes and constraints"]
        assert list(dict.fromkeys(phases)) == expected
        for phase in expected:
            last = [e for e in events if e.phase == phase][-1]
            assert last.total is not None
            assert last.done == last.total > 0
        # The work over all phases: one fixed total, never going backwards, ending whole,
        # and the index phase still ahead when the data is all loaded.
        overall = [(e.done, e.total) for e in ours if e.phase == "restore"]
        assert len({total for _, total in overall}) == 1
        assert [done for done, _ in overall] == sorted(done for done, _ in overall)
        assert overall[-1][0] == overall[-1][1]
        first_index = next(i for i, e in enumerate(ours) if e.phase == "indexes and constraints")
        at_indexes = [e for e in ours[:first_index] if e.phase == "restore"][-1]
        assert at_indexes.total is not None
        assert at_indexes.done < 0.9 * at_indexes.total
    finally:
        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        with psycopg.connect(pg_server.conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(str(name))))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_full_db_restore_remaps_media_paths_in_the_same_transaction(
    pg18: Any, databases: Callable[..., str], tmp_path: Path
) -> None:
    source = databases(pg18, schema=2, seeded=True)
    with psycopg.connect(source) as conn:
        roots = sorted(
            {p for (paths,) in conn.execute("SELECT root_paths FROM libraries") for p in paths}
        )
        items = conn.execute("SELECT count(*) FROM media_items").fetchone()
    old = roots[0]
    new_root = tmp_path / "moved"
    new_root.mkdir()
    archiver = Archiver(tmp_path, database_url=source)
    info = archiver.create(components=["full_db"]).archive

    before = archiver.plan(info.name, "full_db")
    assert any(w.code == "library_root_missing" and old in w.message for w in before.warnings)
    plan = archiver.plan(info.name, "full_db", remap_paths={old: str(new_root)})
    assert not any(
        w.code == "library_root_missing" and str(new_root) in w.message for w in plan.warnings
    )
    archiver.restore(info.name, "full_db", remap_paths={old: str(new_root)})
    with psycopg.connect(source) as conn:
        now_roots = {
            p for (paths,) in conn.execute("SELECT root_paths FROM libraries") for p in paths
        }
        moved = conn.execute(
            "SELECT count(*) FROM media_items WHERE path LIKE %s", (f"{new_root}/%",)
        ).fetchone()
        stale = conn.execute(
            "SELECT count(*) FROM media_items WHERE path LIKE %s", (f"{old}/%",)
        ).fetchone()
        after = conn.execute("SELECT count(*) FROM media_items").fetchone()
    assert str(new_root) in now_roots and old not in now_roots
    assert moved is not None and moved[0] > 0
    assert stale == (0,)
    assert after == items


# -- JSON modes -----------------------------------------------------------------------

JSON_CASES = [
    (mode, conflict, fmt)
    for mode in ("users_auth", "settings", "everything_json")
    for conflict in ("skip", "overwrite", "rename")
    for fmt in ("tar.zst", "zip")
]


def _rows(url: str, table: str, key: str) -> dict[str, tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        cursor = conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)))
        names = [c.name for c in cursor.description or ()]
        return {str(row[names.index(key)]).lower(): tuple(row) for row in cursor}


@pytest.mark.parametrize(("mode", "conflict", "fmt"), JSON_CASES)
@pytest.mark.parametrize("route", ["pg18", "pg15", "pg15-to-pg18"])
def test_json_restore_modes_and_strategies(
    request: pytest.FixtureRequest,
    databases: Callable[..., str],
    db_snapshot: Snapshot,
    tmp_path: Path,
    route: str,
    mode: str,
    conflict: Conflict,
    fmt: str,
) -> None:
    source_server = request.getfixturevalue(route.split("-", maxsplit=1)[0])
    target_server = request.getfixturevalue(route.rsplit("-", maxsplit=1)[-1])
    source = databases(source_server, schema=2, seeded=True)
    archived = db_snapshot(source)
    info = (
        Archiver(tmp_path, database_url=source)
        .create(components=["users_auth", "settings"], format=fmt)
        .archive
    )
    target = databases(target_server, schema=2, seeded=True) if route == "pg15-to-pg18" else source
    _change_after_backup(target)
    before = db_snapshot(target)
    users_before = _rows(target, "users", "username")
    settings_before = _rows(target, "system_settings", "key")

    archiver = Archiver(tmp_path, database_url=target)
    plan = archiver.plan(info.name, mode, conflict)
    assert plan.can_restore, plan.blockers
    archiver.restore(info.name, mode, conflict)
    after = db_snapshot(target)

    touched = {
        "users_auth": {"users", "invite_codes", "api_tokens"},
        "settings": {"system_settings"},
    }
    in_scope = set().union(*(touched[c] for c in plan.components))
    for table in after:
        if table not in in_scope:
            assert after[table] == before[table], f"{table} changed outside the mode's scope"
    users_after = _rows(target, "users", "username")
    settings_after = _rows(target, "system_settings", "key")
    archived_users = {str(r[1]).lower() for r in archived["users"]}
    archived_keys = {str(r[0]) for r in archived["system_settings"]}

    if "users" in in_scope:
        assert archived_users <= set(users_after)  # every archived account is there
        for name, row in users_before.items():  # existing users keep their ids
            assert users_after[name][0] == row[0]
        if conflict == "skip":
            assert all(users_after[n] == r for n, r in users_before.items())
        if conflict == "rename":
            assert all(users_after[n] == r for n, r in users_before.items())
            renamed = plan.renames.get("users", {})
            assert all(new.lower() in users_after for new in renamed.values())
        if conflict == "overwrite":
            changed = next(n for n, r in users_before.items() if r[3] == "changed later")
            assert users_after[changed][3] != "changed later"
    if "system_settings" in in_scope:
        assert archived_keys <= set(settings_after)
        if conflict in ("skip", "rename"):
            assert all(settings_after[k] == r for k, r in settings_before.items())
        else:
            archived_values = {str(r[0]): r[1] for r in archived["system_settings"]}
            assert all(settings_after[k][1] == v for k, v in archived_values.items())
    # Running the same restore again changes nothing more.
    archiver.restore(info.name, mode, conflict)
    assert db_snapshot(target) == after


@pytest.mark.parametrize("version", [1, 2])
def test_json_restore_into_a_fresh_install(
    pg_server: Any, databases: Callable[..., str], tmp_path: Path, version: int
) -> None:
    source = databases(pg_server, schema=version, seeded=True)
    info = (
        Archiver(tmp_path, database_url=source)
        .create(components=["users_auth", "settings"])
        .archive
    )
    fresh = databases(pg_server, schema=2)
    result = Archiver(tmp_path, database_url=fresh).restore(info.name, "everything_json")
    assert result.schema_version == 2
    for table, key in (("users", "username"), ("system_settings", "key")):
        assert set(_rows(fresh, table, key)) == set(_rows(source, table, key))
    with psycopg.connect(fresh) as conn:
        # The server's next plain INSERTs do not collide with restored ids.
        user = conn.execute(
            "INSERT INTO users (username, password_hash) VALUES ('new', 'x') RETURNING id"
        ).fetchone()
        conn.execute(
            "INSERT INTO api_tokens (user_id, name, token_hash) VALUES (%s, 'n', 'h')", user
        )
        locale = conn.execute("SELECT DISTINCT locale FROM users").fetchall()
    if version == 1:
        assert locale == [("en",)]  # a v1 archive gives every account the default locale


# -- blockers and warnings ------------------------------------------------------------


def _codes(issues: Any) -> list[str]:
    return [issue.code for issue in issues]


def test_blocker_archive_invalid(odeion_db: str, tmp_path: Path) -> None:
    archiver = Archiver(tmp_path, database_url=odeion_db)
    info = archiver.create(components=["settings"]).archive
    broken = tmp_path / "broken.tar.zst"
    broken.write_bytes(info.path.read_bytes()[:-100])
    plan = archiver.plan(broken, "settings")
    assert _codes(plan.blockers) == ["archive_invalid"]
    assert not plan.can_restore
    with pytest.raises(RestoreBlockedError, match="archive_invalid"):
        archiver.restore(broken, "settings")


def _handmade(path: Path, manifest: Manifest, members: dict[tuple[str, str], bytes]) -> Path:
    registry = Registry.default(entry_points=False)
    with path.open("wb") as stream:
        builder = ArchiveBuilder(registry.format(manifest.format), stream, head=manifest)
        for (component_name, name), data in members.items():
            builder.add_member(component_name, name, [data])
        for component in manifest.components:
            builder.set_facts(
                component.name, {"rows": {}, "schema_version": manifest.schema_version}
            )
        builder.finish()
    return path


def _manifest(**changes: Any) -> Manifest:
    fields: dict[str, Any] = {
        "created_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        "library_version": "0.1.0",
        "server_version": "test",
        "schema_version": 2,
        "format": "tar.zst",
        "components": (ComponentEntry("settings", 1),),
    }
    fields.update(changes)
    return Manifest(**fields)


def test_blocker_manifest_too_new(odeion_db: str, tmp_path: Path) -> None:
    path = _handmade(
        tmp_path / "new.tar.zst",
        _manifest(manifest_version=(2, 0)),
        {("settings", "system_settings.jsonl"): b""},
    )
    plan = Archiver(tmp_path, database_url=odeion_db).plan(path, "settings")
    assert _codes(plan.blockers) == ["manifest_too_new"]
    assert "2" in plan.blockers[0].message and "1" in plan.blockers[0].message


def test_blocker_component_missing(odeion_db: str, tmp_path: Path) -> None:
    archiver = Archiver(tmp_path, database_url=odeion_db)
    info = archiver.create(components=["settings"]).archive
    for mode in ("users_auth", "everything_json", "full_db"):
        assert "component_missing" in _codes(archiver.plan(info.name, mode).blockers)


def test_blocker_schema_too_new(pg18: Any, databases: Callable[..., str], tmp_path: Path) -> None:
    v2 = databases(pg18, schema=2, seeded=True)
    v1 = databases(pg18, schema=1)
    info = Archiver(tmp_path, database_url=v2).create(components=["users_auth"]).archive
    plan = Archiver(tmp_path, database_url=v1).plan(info.name, "users_auth")
    assert _codes(plan.blockers) == ["schema_too_new"]
    assert "version 2" in plan.blockers[0].message and "version 1" in plan.blockers[0].message
    # An archive newer than the library knows is refused even for full_db.
    future = _handmade(
        tmp_path / "future.tar.zst",
        _manifest(schema_version=99),
        {("settings", "system_settings.jsonl"): b""},
    )
    assert _codes(Archiver(tmp_path, database_url=v2).plan(future, "settings").blockers) == [
        "schema_too_new"
    ]


def test_blocker_schema_missing(empty_db: str, odeion_db: str, tmp_path: Path) -> None:
    info = Archiver(tmp_path, database_url=odeion_db).create(components=["settings"]).archive
    plan = Archiver(tmp_path, database_url=empty_db).plan(info.name, "settings")
    assert _codes(plan.blockers) == ["schema_missing"]


def test_blockers_pg_restore_missing_and_too_old(
    pg18: Any, pg15: Any, databases: Callable[..., str], tmp_path: Path
) -> None:
    source = databases(pg18, schema=2, seeded=True)
    info = Archiver(tmp_path, database_url=source).create(components=["full_db"]).archive
    empty_bin = tmp_path / "no-tools"
    empty_bin.mkdir()
    missing = Archiver(tmp_path, database_url=source, pg_bin=empty_bin).plan(info.name, "full_db")
    assert "pg_restore_missing" in _codes(missing.blockers)
    old_tools = Archiver(tmp_path, database_url=databases(pg15), pg_bin=pg15.bin_dir)
    too_old = old_tools.plan(info.path, "full_db")
    assert "pg_restore_too_old" in _codes(too_old.blockers)
    assert "1.16" in next(b.message for b in too_old.blockers if b.code == "pg_restore_too_old")


def test_warning_target_server_older(
    pg18: Any, pg15: Any, databases: Callable[..., str], tmp_path: Path
) -> None:
    source = databases(pg18, schema=2, seeded=True)
    info = Archiver(tmp_path, database_url=source).create(components=["full_db"]).archive
    plan = Archiver(tmp_path, database_url=databases(pg15)).plan(info.path, "full_db")
    assert "target_server_older" in _codes(plan.warnings)


def test_blocker_dump_unsafe_unless_allowed(
    pg18: Any, databases: Callable[..., str], db_snapshot: Snapshot, tmp_path: Path
) -> None:
    source = databases(pg18, schema=2, seeded=True)
    with psycopg.connect(source) as conn:
        conn.execute(
            "CREATE FUNCTION odeion_audit() RETURNS event_trigger LANGUAGE plpgsql "
            "AS $$ BEGIN END $$"
        )
        conn.execute(
            "CREATE EVENT TRIGGER odeion_audit ON ddl_command_start EXECUTE FUNCTION odeion_audit()"
        )
    archiver = Archiver(tmp_path, database_url=source)
    info = archiver.create(components=["full_db"]).archive
    target = databases(pg18, schema=2, seeded=True)
    before = db_snapshot(target)
    restorer = Archiver(tmp_path, database_url=target)
    plan = restorer.plan(info.name, "full_db")
    assert _codes(plan.blockers) == ["dump_unsafe"]
    assert "EVENT TRIGGER" in plan.blockers[0].message.upper()
    with pytest.raises(RestoreBlockedError):
        restorer.restore(info.name, "full_db")
    assert db_snapshot(target) == before
    # An event trigger reaches beyond the database: never restored, even when allowed.
    still = restorer.plan(info.name, "full_db", allow_unsafe_dump=True)
    assert _codes(still.blockers) == ["dump_unsafe"]
    assert "never restores" in still.blockers[0].message
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("DROP EVENT TRIGGER odeion_audit")
        # A SECURITY DEFINER function is only unusual: restored when allowed.
        conn.execute(
            "CREATE FUNCTION odeion_definer() RETURNS int LANGUAGE sql SECURITY DEFINER "
            "AS 'SELECT 1'"
        )
    info = archiver.create(components=["full_db"]).archive
    plan = restorer.plan(info.name, "full_db")
    assert _codes(plan.blockers) == ["dump_unsafe"]
    assert "SECURITY DEFINER" in plan.blockers[0].message
    allowed = restorer.plan(info.name, "full_db", allow_unsafe_dump=True)
    assert allowed.can_restore and "dump_unsafe" in _codes(allowed.warnings)
    restorer.restore(info.name, "full_db", allow_unsafe_dump=True)
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT odeion_definer()").fetchone() == (1,)


def test_every_plan_warns_that_a_rescan_is_required(odeion_db: str, tmp_path: Path) -> None:
    archiver = Archiver(tmp_path, database_url=odeion_db)
    info = archiver.create().archive
    for mode in ("full_db", "users_auth", "settings", "everything_json"):
        assert "rescan_required" in _codes(archiver.plan(info.name, mode).warnings)


# -- nothing changes unless the restore succeeds ---------------------------------------


@pytest.mark.parametrize("mode", ["full_db", "users_auth", "settings", "everything_json"])
@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_corrupt_archive_never_changes_the_database(
    pg18: Any,
    databases: Callable[..., str],
    db_snapshot: Snapshot,
    tmp_path: Path,
    mode: str,
    damage: str,
) -> None:
    source = databases(pg18, schema=2, seeded=True)
    archiver = Archiver(tmp_path, database_url=source)
    info = archiver.create().archive
    manifest = archiver.inspect(info.name)
    target = databases(pg18, schema=2, seeded=True)
    _change_after_backup(target)
    before = db_snapshot(target)
    data = bytearray(info.path.read_bytes())
    member = manifest.component(
        "full_db" if mode == "full_db" else "settings" if mode == "settings" else "users_auth"
    ).members[-1]
    # Damage the payload in the middle of the archive, or cut the archive short.
    if damage == "flip":
        data[len(data) // 2] ^= 0x04
    else:
        del data[len(data) * 3 // 4 :]
    broken = tmp_path / f"broken-{member.path.replace('/', '_')}"
    broken.write_bytes(data)
    with pytest.raises(ArchiveError):
        Archiver(tmp_path, database_url=target).restore(broken, mode, "overwrite")
    assert db_snapshot(target) == before


_KILLED_RESTORE = """
import sys, time
from odeion_archive import Archiver
def slow(event):
    if event.operation == "restore" and event.phase != "component":
        print("restoring", flush=True)
        time.sleep(30)
Archiver(sys.argv[1], database_url=sys.argv[2]).restore(sys.argv[3], sys.argv[4], "overwrite",
                                                        progress=slow)
"""


@pytest.mark.parametrize("mode", ["full_db", "everything_json"])
def test_kill_9_during_a_restore_leaves_the_database_as_it_was(
    pg18: Any, databases: Callable[..., str], db_snapshot: Snapshot, tmp_path: Path, mode: str
) -> None:
    source = databases(pg18, schema=2, seeded=True)
    info = Archiver(tmp_path, database_url=source).create().archive
    target = databases(pg18, schema=2, seeded=True)
    _change_after_backup(target)
    before = db_snapshot(target)
    process = subprocess.Popen(
        [sys.executable, "-c", _KILLED_RESTORE, str(tmp_path), target, info.name, mode],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "restoring"
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stdout.close()
    # The server notices the dead client and rolls its transaction back.
    with psycopg.connect(target) as conn:
        for _ in range(100):
            busy = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid()"
            ).fetchone()
            if busy == (0,):
                break
            conn.execute("SELECT pg_sleep(0.1)")
    assert db_snapshot(target) == before


# -- after the restore ------------------------------------------------------------------


def test_the_after_restore_hook_fires_with_the_result(odeion_db: str, tmp_path: Path) -> None:
    seen: list[RestoreResult] = []

    class Host:
        @hookimpl
        def odeion_archive_restore_finished(self, result: RestoreResult) -> None:
            seen.append(result)

    registry = Registry.default(entry_points=False)
    registry.register(Host(), name="host")
    archiver = Archiver(tmp_path, database_url=odeion_db, registry=registry)
    info = archiver.create(components=["settings"]).archive
    result = archiver.restore(info.name, "settings", "overwrite")
    assert seen == [result]
    assert result.rescan_required and result.schema_version == 2


def test_a_restore_refuses_to_differ_from_the_plan_the_host_reviewed(
    odeion_db: str, db_snapshot: Snapshot, tmp_path: Path
) -> None:
    archiver = Archiver(tmp_path, database_url=odeion_db)
    info = archiver.create(components=["users_auth"]).archive
    with psycopg.connect(odeion_db) as conn:
        conn.execute("DELETE FROM api_tokens")
        conn.execute("DELETE FROM invite_codes")
        conn.execute(
            "DELETE FROM users WHERE id IN (SELECT id FROM users ORDER BY id DESC LIMIT 2)"
        )
    reviewed = archiver.plan(info.name, "users_auth", "skip")
    assert reviewed.counts["users"].insert == 2
    with psycopg.connect(odeion_db) as conn:  # meanwhile, someone adds an account back
        conn.execute("INSERT INTO users (username, password_hash) VALUES ('someone-else', 'x')")
    before = db_snapshot(odeion_db)
    # Nothing changed in what the plan covers: the reviewed plan is carried out.
    result = archiver.restore(info.name, "users_auth", "skip", expected=reviewed)
    assert result.plan.counts["users"] == reviewed.counts["users"]
    assert db_snapshot(odeion_db) != before
    # Now the database differs from what was reviewed: refused, nothing changed.
    with psycopg.connect(odeion_db) as conn:
        conn.execute("DELETE FROM api_tokens")
        conn.execute("DELETE FROM invite_codes")
        conn.execute(
            "DELETE FROM users WHERE id = (SELECT max(id) FROM users WHERE username"
            " <> 'someone-else')"
        )
    before = db_snapshot(odeion_db)
    with pytest.raises(RestoreFailedError, match="plan the restore again"):
        archiver.restore(info.name, "users_auth", "skip", expected=reviewed)
    assert db_snapshot(odeion_db) == before
