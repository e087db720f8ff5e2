"""Hostile archives built by hand, through the whole library: the store, the planner, restores.

Each test writes the hostile bytes itself (a genuine backup taken apart and put
together again with one thing changed) and checks that nothing from it reaches
the store or the database, in bounded time.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
import tracemalloc
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from odeion_archive import Archiver, Registry
from odeion_archive._archive import ArchiveBuilder, ArchiveFile
from odeion_archive._manifest import HEAD_MEMBER, TAIL_MEMBER, ComponentEntry, Manifest
from odeion_archive.errors import ArchiveInvalidError, RestoreBlockedError

Snapshot = Callable[[str], dict[str, list[tuple[Any, ...]]]]
REGISTRY = Registry.default(entry_points=False)
FAR_FUTURE = dt.datetime(2999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def odeion18(module_odeion_db: str) -> str:
    """A seeded Odeion database shared by this module's tests (never changed by them)."""
    return module_odeion_db


@pytest.fixture
def archiver(odeion18: str, tmp_path: Path) -> Archiver:
    return Archiver(tmp_path / "data", database_url=odeion18)


def _members(path: Path) -> tuple[Manifest, dict[str, bytes]]:
    with ArchiveFile.open(path, REGISTRY) as archive:
        return archive.manifest, {entry.path: b"".join(chunks) for entry, chunks in archive.walk()}


def _rebuild(
    source: Path,
    target: Path,
    *,
    members: Mapping[str, bytes] | None = None,
    payload_versions: Mapping[str, int] | None = None,
    created_at: dt.datetime | None = None,
) -> Path:
    """``source`` written again with some members, payload versions or its time replaced.

    The archive is sealed correctly (sizes and sha256 match): only its content is hostile.
    """
    manifest, data = _members(source)
    data.update(members or {})
    head = Manifest(
        created_at=created_at or manifest.created_at,
        library_version=manifest.library_version,
        server_version=manifest.server_version,
        schema_version=manifest.schema_version,
        format=manifest.format,
        components=tuple(
            ComponentEntry(c.name, (payload_versions or {}).get(c.name, c.payload_version))
            for c in manifest.components
        ),
    )
    with target.open("wb") as stream:
        builder = ArchiveBuilder(REGISTRY.format(manifest.format), stream, head=head)
        for component in manifest.components:
            for member in component.members:
                name = member.path.split("/", 1)[1]
                builder.add_member(component.name, name, [data[member.path]])
            builder.set_facts(component.name, component.facts)
        builder.finish()
    return target


def _with_raw_tail(source: Path, target: Path, edit: Callable[[str], str]) -> Path:
    """``source`` with its tail manifest's JSON text edited (values JSON cannot build)."""
    manifest, data = _members(source)
    with ArchiveFile.open(source, REGISTRY) as archive:
        tail = archive._manifest_bytes[TAIL_MEMBER].decode()
        head = archive._manifest_bytes[HEAD_MEMBER]
    edited = edit(tail).encode()
    assert edited != tail.encode()
    with target.open("wb") as stream:
        writer = REGISTRY.format(manifest.format).open_writer(stream)
        writer.add(HEAD_MEMBER, [head], size=len(head))
        for member in manifest.members:
            writer.add(member.path, [data[member.path]], size=len(data[member.path]))
        writer.add(TAIL_MEMBER, [edited], size=len(edited))
        writer.close()
    return target


def _codes(issues: Any) -> list[str]:
    return [issue.code for issue in issues]


def _store_files(archiver: Archiver) -> list[str]:
    return sorted(str(p.relative_to(archiver.store.directory)) for p in
                  archiver.store.directory.rglob("*"))  # fmt: skip


# -- item 5: facts of the wrong type or range -------------------------------------------------

_ROWS = '"system_settings":16'


@pytest.mark.parametrize(
    "value",
    ["1e999", "[16]", "1" * 5000, "true", '"16"', "16.0", str(2**63), "-16", "null"],
    ids=["1e999", "list", "5000-digits", "true", "string", "float", "2**63", "negative", "null"],
)
def test_hostile_facts_are_refused_at_import_plan_and_restore(
    archiver: Archiver, odeion18: str, db_snapshot: Snapshot, tmp_path: Path, value: str
) -> None:
    genuine = archiver.create(components=["settings"], format="zip").archive
    hostile = _with_raw_tail(
        genuine.path,
        tmp_path / "hostile.zip",
        lambda tail: tail.replace(_ROWS, f'"system_settings":{value}'),
    )
    store, database = _store_files(archiver), db_snapshot(odeion18)
    with pytest.raises(ArchiveInvalidError, match=r"manifest") as caught:
        archiver.import_archive(hostile)
    assert len(str(caught.value)) < 500
    assert _store_files(archiver) == store
    plan = archiver.plan(hostile, "settings", "overwrite")
    assert _codes(plan.blockers) == ["archive_invalid"]
    with pytest.raises(RestoreBlockedError, match="archive_invalid"):
        archiver.restore(hostile, "settings", "overwrite")
    assert db_snapshot(odeion18) == database


def test_library_roots_of_the_wrong_type_are_refused_for_full_db(
    archiver: Archiver, tmp_path: Path
) -> None:
    genuine = archiver.create(components=["full_db"], format="zip").archive
    roots = '"library_roots":' + json.dumps(_library_roots(genuine.path), separators=(",", ":"))
    for value in ("5", '"/media"', "[[1]]", '{"a":1}'):

        def edit(tail: str, value: str = value) -> str:
            return tail.replace(roots, f'"library_roots":{value}')

        hostile = _with_raw_tail(genuine.path, tmp_path / "roots.zip", edit)
        plan = archiver.plan(hostile, "full_db")
        assert _codes(plan.blockers) == ["archive_invalid"], value
        assert "library_roots" in plan.blockers[0].message


def _library_roots(path: Path) -> list[str]:
    manifest, _ = _members(path)
    return list(manifest.component("full_db").facts["library_roots"])


# -- item 6: a payload version newer than the component knows ----------------------------------


@pytest.mark.parametrize("mode", ["settings", "everything_json", "full_db"])
def test_a_newer_payload_version_is_a_blocker_naming_both_versions(
    archiver: Archiver, odeion18: str, db_snapshot: Snapshot, tmp_path: Path, mode: str
) -> None:
    genuine = archiver.create(format="zip").archive
    component = "full_db" if mode == "full_db" else "settings"
    hostile = _rebuild(genuine.path, tmp_path / "new.zip", payload_versions={component: 99})
    before = db_snapshot(odeion18)
    plan = archiver.plan(hostile, mode, "overwrite")
    assert _codes(plan.blockers) == ["component_too_new"]
    message = plan.blockers[0].message
    assert "payload version 99" in message and "up to 1" in message and component in message
    with pytest.raises(RestoreBlockedError, match="component_too_new"):
        archiver.restore(hostile, mode, "overwrite")
    assert db_snapshot(odeion18) == before
    # The genuine archive plans as before.
    assert archiver.plan(genuine.name, mode, "overwrite").blockers == ()


# -- item 3: a blank-line bomb in a sealed tar.zst ----------------------------------------------


def test_a_blank_line_bomb_is_refused_quickly_without_touching_the_database(
    archiver: Archiver, odeion18: str, db_snapshot: Snapshot, tmp_path: Path
) -> None:
    genuine = archiver.create(components=["users_auth", "settings"]).archive
    _, data = _members(genuine.path)
    users = "users_auth/users.jsonl"
    bomb = _rebuild(
        genuine.path,
        tmp_path / "bomb.tar.zst",
        members={users: data[users] + b"\n" * (30 * 1024 * 1024)},
    )
    assert bomb.stat().st_size < 200 * 1024
    before = db_snapshot(odeion18)
    started = time.monotonic()
    tracemalloc.start()
    try:
        plan = archiver.plan(bomb, "everything_json", "overwrite")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 * 1024 * 1024, peak  # the 30 MiB member is never held whole
    assert _codes(plan.blockers) == ["archive_invalid"]
    assert "is blank" in plan.blockers[0].message
    with pytest.raises(ArchiveInvalidError, match="is blank"):
        archiver.restore(bomb, "everything_json", "overwrite")
    # Verifying the seal reads the 30 MiB once; the rows are never parsed past the bomb.
    assert time.monotonic() - started < 10
    assert db_snapshot(odeion18) == before


# -- item 7: created_at in the future ----------------------------------------------------------


def test_an_archive_dated_in_the_future_never_outlives_genuine_backups(
    archiver: Archiver, tmp_path: Path
) -> None:
    older = archiver.create(components=["settings"]).archive
    newer = archiver.create(components=["settings"]).archive
    hostile = _rebuild(older.path, tmp_path / "future.tar.zst", created_at=FAR_FUTURE)
    imported = archiver.import_archive(hostile)
    assert _codes(imported.warnings) == ["created_in_future"]
    assert "2999-12-31" in imported.warnings[0].message
    assert imported.created_at == FAR_FUTURE  # what it claims, shown as such
    assert imported.entered_at is not None
    assert imported.entered_at < dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    assert "2999" not in imported.name  # never named after a time to come

    listed = archiver.list()
    assert [i.name for i in listed] == [newer.name, older.name, imported.name]
    assert _codes(listed[-1].warnings) == ["created_in_future"]
    assert all(not i.warnings for i in listed[:-1])
    assert archiver.prune(1) == [older.name, imported.name]
    assert [i.name for i in archiver.list()] == [newer.name]


def test_retention_follows_the_order_archives_entered_the_store(
    archiver: Archiver, tmp_path: Path
) -> None:
    first = archiver.create(components=["settings"]).archive
    # An identical copy would be refused as a duplicate: the upload claims an older time.
    upload = _rebuild(
        first.path,
        tmp_path / "upload.tar.zst",
        created_at=first.created_at - dt.timedelta(days=1),
    )
    second = archiver.create(components=["settings"]).archive
    # Imported last: it entered the store last, whatever time its manifest states.
    imported = archiver.import_archive(upload)
    assert not imported.warnings
    assert [i.name for i in archiver.list()] == [imported.name, second.name, first.name]
    records = archiver.store.directory / ".entered"
    assert json.loads((records / imported.name).read_text())["how"] == "imported"
    assert json.loads((records / first.name).read_text())["how"] == "created"


def test_the_order_survives_a_copy_of_the_data_directory_without_file_times(
    archiver: Archiver, odeion18: str, tmp_path: Path
) -> None:
    archiver.create(components=["settings"])
    archiver.import_archive(
        _rebuild(archiver.list()[0].path, tmp_path / "future.tar.zst", created_at=FAR_FUTURE)
    )
    newest = archiver.create(components=["settings"]).archive
    order = [i.name for i in archiver.list()]
    assert order[0] == newest.name
    # cp -r: new modification times, in whatever order the copy goes.
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "data", copy, copy_function=shutil.copyfile)
    for path in sorted((copy / "backups").iterdir(), reverse=True):
        path.touch()
    copied = Archiver(copy, database_url=odeion18)
    assert [i.name for i in copied.list()] == order
    assert _codes(copied.list()[-1].warnings) == ["created_in_future"]


def test_an_archive_without_a_record_is_dated_by_its_file_at_the_latest(
    archiver: Archiver, tmp_path: Path
) -> None:
    genuine = archiver.create(components=["settings"]).archive
    hostile = _rebuild(genuine.path, tmp_path / "future.tar.zst", created_at=FAR_FUTURE)
    imported = archiver.import_archive(hostile)
    # An older store had no records (or the file was renamed): the file time bounds it.
    for record in (archiver.store.directory / ".entered").iterdir():
        record.unlink()
    listed = archiver.list()
    assert [i.name for i in listed] == [genuine.name, imported.name]
    assert _codes(listed[1].warnings) == ["created_in_future"]
    # The earlier of its stated time and its file's (a coarse clock: either may be first).
    modified = dt.datetime.fromtimestamp(genuine.path.stat().st_mtime, dt.UTC)
    assert listed[0].entered_at == min(genuine.created_at, modified)
    # A damaged record counts as none.
    (archiver.store.directory / ".entered").mkdir(exist_ok=True)
    (archiver.store.directory / ".entered" / genuine.name).write_bytes(b"\x00" * 10_000)
    assert [i.name for i in archiver.list()] == [genuine.name, imported.name]
