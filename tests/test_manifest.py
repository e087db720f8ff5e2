"""The manifest: JSON round trips, migration chain, refusals with the field named."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from odeion_archive import _converter
from odeion_archive._manifest import (
    MANIFEST_VERSION,
    TAIL_MEMBER,
    ComponentEntry,
    Manifest,
    MemberEntry,
)
from odeion_archive.errors import ManifestError, ManifestTooNewError

SHA = "ab" * 32


def _manifest() -> Manifest:
    return Manifest(
        created_at=dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC),
        library_version="1.2.3",
        server_version="10.10.0",
        schema_version=4,
        format="zip",
        components=(
            ComponentEntry(
                "users_auth",
                1,
                (MemberEntry("users_auth/users.jsonl", 10, SHA),),
                {"rows": {"users": 3}},
            ),
            ComponentEntry(
                "full_db", 2, (MemberEntry("full_db/database.dump", 99, SHA),), {"pg_dump": "18.0"}
            ),
        ),
    )


def _raw(data: bytes) -> dict[str, Any]:
    raw = json.loads(data)
    assert isinstance(raw, dict)
    return raw


def test_whole_and_split_manifests_round_trip() -> None:
    manifest = _manifest()
    assert Manifest.from_json(manifest.to_json()) == manifest
    assert Manifest.from_parts(manifest.head_json(), manifest.tail_json()) == manifest
    head = _raw(manifest.head_json())
    assert head["tail"] == TAIL_MEMBER
    assert all("members" not in c and "facts" not in c for c in head["components"])
    assert head["created_at"] == "2026-03-04T05:06:07Z"
    assert head["manifest_version"] == f"{MANIFEST_VERSION[0]}.{MANIFEST_VERSION[1]}"


def test_serialisation_is_deterministic() -> None:
    assert _manifest().to_json() == _manifest().to_json()
    keys = list(_raw(_manifest().to_json()))
    assert keys == sorted(keys)


def test_any_minor_version_of_the_current_major_is_read() -> None:
    raw = _raw(_manifest().to_json())
    raw["manifest_version"] = f"{MANIFEST_VERSION[0]}.{MANIFEST_VERSION[1] + 7}"
    assert Manifest.from_json(json.dumps(raw)).manifest_version == (
        MANIFEST_VERSION[0],
        MANIFEST_VERSION[1] + 7,
    )


def test_newer_major_is_refused_naming_both_versions() -> None:
    raw = _raw(_manifest().to_json())
    raw["manifest_version"] = f"{MANIFEST_VERSION[0] + 1}.0"
    with pytest.raises(ManifestTooNewError) as caught:
        Manifest.from_json(json.dumps(raw))
    message = str(caught.value)
    assert f"version {MANIFEST_VERSION[0] + 1}" in message
    assert f"up to {MANIFEST_VERSION[0]}" in message
    assert "upgrade" in message
    assert (caught.value.found, caught.value.supported) == (
        MANIFEST_VERSION[0] + 1,
        MANIFEST_VERSION[0],
    )


def test_the_migration_chain_brings_old_majors_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pretend the library is at major 3; data of major 1 goes through 1->2 and 2->3.
    monkeypatch.setattr(_converter, "MANIFEST_VERSION", (3, 0))
    steps: list[int] = []

    def one_to_two(raw: dict[str, Any]) -> dict[str, Any]:
        steps.append(1)
        raw["server"] = raw.pop("server_version_old")
        return {**raw, "manifest_version": "2.0"}

    def two_to_three(raw: dict[str, Any]) -> dict[str, Any]:
        steps.append(2)
        server = raw.pop("server")
        return {**raw, "server_version": server, "manifest_version": "3.1"}

    old = {"manifest_version": "1.4", "server_version_old": "9.0.0"}
    migrated = _converter.migrate(old, {1: one_to_two, 2: two_to_three})
    assert steps == [1, 2]
    assert migrated == {"manifest_version": "3.1", "server_version": "9.0.0"}
    assert old == {"manifest_version": "1.4", "server_version_old": "9.0.0"}  # not mutated
    assert _converter.migrate({"manifest_version": "3.0"}, {}) == {"manifest_version": "3.0"}
    with pytest.raises(ManifestError, match="no migration from manifest version 2"):
        _converter.migrate({"manifest_version": "2.0"}, {1: one_to_two})
    with pytest.raises(ManifestTooNewError):
        _converter.migrate({"manifest_version": "4.0"}, {})


def test_the_default_chain_is_used_when_none_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_converter, "MANIFEST_VERSION", (2, 0))
    monkeypatch.setitem(
        _converter.MIGRATIONS, 1, lambda raw: {**raw, "manifest_version": "2.0", "moved": True}
    )
    assert _converter.migrate({"manifest_version": "1.0"}) == {
        "manifest_version": "2.0",
        "moved": True,
    }


@pytest.mark.parametrize(
    ("version", "message"),
    [("one", "manifest_version"), ("0.9", "major version 0"), (1.0, "manifest_version")],
)
def test_bad_versions_are_refused(version: object, message: str) -> None:
    raw = _raw(_manifest().to_json())
    raw["manifest_version"] = version
    with pytest.raises(ManifestError, match=message):
        Manifest.from_json(json.dumps(raw))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda raw: raw.pop("schema_version"), "schema_version"),
        (lambda raw: raw.update(schema_version="four"), "schema_version"),
        (lambda raw: raw.update(schema_version=-1), "schema_version"),
        (lambda raw: raw.update(created_at="2026-03-04T05:06:07"), "created_at"),
        (lambda raw: raw["components"][0]["members"][0].update(sha256="XYZ"), "sha256"),
        (lambda raw: raw["components"][0]["members"][0].update(size=-5), "size"),
        (lambda raw: raw["components"][0].update(name="Bad Name"), "name"),
        (lambda raw: raw["components"].append(raw["components"][0]), "components"),
        (lambda raw: raw.pop("manifest_version"), "manifest_version"),
    ],
)
def test_malformed_manifest_names_the_field(change: Any, field: str) -> None:
    raw = _raw(_manifest().to_json())
    change(raw)
    with pytest.raises(ManifestError, match=field):
        Manifest.from_json(json.dumps(raw))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b'{"a":1,"a":2}', "appears twice"),
        (b'{"a":NaN}', "NaN"),
        (b'{"a":Infinity}', "Infinity"),
        (b'{"a":' + b"[" * 100 + b"]" * 100 + b"}", "nested deeper"),
        (b"[1,2]", "JSON object"),
        (b"\xff\xfe", "UTF-8"),
        (b'{"a":', "invalid JSON"),
    ],
)
def test_hostile_json_is_refused(text: bytes, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        Manifest.from_json(text)


def test_from_parts_refuses_parts_that_do_not_belong_together() -> None:
    manifest = _manifest()
    head, tail = manifest.head_json(), manifest.tail_json()
    other_version = _raw(tail)
    other_version["manifest_version"] = "1.9"
    with pytest.raises(ManifestError, match="disagree on 'manifest_version'"):
        Manifest.from_parts(head, json.dumps(other_version).encode())
    missing = _raw(tail)
    missing["components"] = missing["components"][:1]
    with pytest.raises(ManifestError, match="no entry for component 'full_db'"):
        Manifest.from_parts(head, json.dumps(missing).encode())
    extra = _raw(tail)
    extra["components"].append({"name": "settings", "members": [], "facts": {}})
    with pytest.raises(ManifestError, match="settings"):
        Manifest.from_parts(head, json.dumps(extra).encode())
    nameless = _raw(tail)
    del nameless["components"][0]["name"]
    with pytest.raises(ManifestError, match="'name'"):
        Manifest.from_parts(head, json.dumps(nameless).encode())
    with pytest.raises(ManifestError, match="twice"):
        Manifest.from_parts(head, tail[:-1] + b',"components":[]}')


def test_lookups_name_what_is_missing() -> None:
    manifest = _manifest()
    assert manifest.component_names == ("users_auth", "full_db")
    assert manifest.has_component("full_db")
    assert not manifest.has_component("settings")
    assert manifest.member("full_db/database.dump").size == 99
    with pytest.raises(ManifestError, match="settings"):
        manifest.component("settings")
    with pytest.raises(ManifestError, match="full_db/x"):
        manifest.member("full_db/x")
    with pytest.raises(ManifestError, match="incomplete"):
        manifest.component("users_auth").member("users_auth/other.jsonl")


# -- hostile values: every fact typed and range-checked --------------------------------

_HUGE = "1" * 5000


def _hostile(path: tuple[Any, ...], value: str) -> bytes:
    """The manifest with the JSON text ``value`` placed at ``path``, built by hand."""
    raw: Any = _raw(_manifest().to_json())
    raw["components"][1]["facts"] = {
        "server_version": "18.1",
        "server_version_num": 180001,
        "library_roots": ["/media"],
        "database_size": 1,
    }
    raw["components"][0]["facts"] = {"rows": {"users": 3}, "schema_version": 2}
    target = raw
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = "@@VALUE@@"
    return json.dumps(raw).replace('"@@VALUE@@"', value).encode()


_FULL_DB_FACTS = ("components", 1, "facts")
_USERS_FACTS = ("components", 0, "facts")


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("schema_version",), "1e999", "too large to be represented"),
        (("schema_version",), "[1]", "expected an integer, found an array"),
        (("schema_version",), _HUGE, "5000 digits"),
        (("schema_version",), '"2"', "found a string"),
        (("schema_version",), "true", "found a boolean"),
        (("schema_version",), "2.0", "fraction or exponent"),
        (("schema_version",), str(2**63), "outside the 64-bit range"),
        (("schema_version",), "null", "expected an integer"),
        (("server_version",), "5", "expected a string"),
        (("created_at",), '"0001-01-01T00:00:00+01:00"', "years 1 to 9999"),
        (("components", 0, "payload_version"), "true", "found a boolean"),
        (("components", 0, "members", 0, "size"), str(2**64), "64-bit"),
        (("components", 0, "facts"), "[1]", "expected an object"),
        (("manifest_version",), f'"{_HUGE}.0"', "manifest_version"),
        ((*_FULL_DB_FACTS, "library_roots"), "5", "library_roots"),
        ((*_FULL_DB_FACTS, "library_roots"), '"/media"', "expected an array"),
        ((*_FULL_DB_FACTS, "library_roots"), "[[1]]", "library_roots[0]"),
        ((*_FULL_DB_FACTS, "server_version_num"), "1e999", "too large"),
        ((*_FULL_DB_FACTS, "server_version_num"), '"180001"', "server_version_num"),
        ((*_FULL_DB_FACTS, "server_version_num"), "-1", "zero or more"),
        ((*_FULL_DB_FACTS, "database_size"), _HUGE, "digits"),
        ((*_FULL_DB_FACTS, "extensions"), '["plpgsql"]', "extensions"),
        ((*_FULL_DB_FACTS, "server_version"), "18", "server_version"),
        ((*_FULL_DB_FACTS, "row_counts"), "[1]", "row_counts"),
        ((*_FULL_DB_FACTS, "row_counts"), '{"public.users": "3"}', "row_counts['public.users']"),
        ((*_FULL_DB_FACTS, "row_counts"), '{"public.users": -1}', "zero or more"),
        ((*_USERS_FACTS, "rows"), "[1]", "rows"),
        ((*_USERS_FACTS, "rows", "users"), "true", "rows['users']"),
        ((*_USERS_FACTS, "rows", "users"), '"3"', "rows['users']"),
        ((*_USERS_FACTS, "rows", "users"), "-1", "zero or more"),
        ((*_USERS_FACTS, "rows", "users"), "3.5", "rows['users']"),
        ((*_USERS_FACTS, "rows", "users"), str(2**63), "64-bit"),
        ((*_USERS_FACTS, "schema_version"), "NaN", "NaN"),
        ((*_USERS_FACTS, "schema_version"), "-1", "zero or more"),
    ],
)
def test_facts_of_the_wrong_type_or_range_are_manifest_errors(
    path: tuple[Any, ...], value: str, message: str
) -> None:
    data = _hostile(path, value)
    with pytest.raises(ManifestError) as caught:
        Manifest.from_json(data)
    assert message in str(caught.value)
    assert len(str(caught.value)) < 500  # never the whole hostile value


def test_genuine_facts_pass_and_are_typed() -> None:
    manifest = Manifest.from_json(_hostile(("components", 0, "facts", "rows", "users"), "3"))
    users = _converter.component_facts(manifest.component("users_auth"))
    assert users == _converter.JsonComponentFacts(rows={"users": 3}, schema_version=2)
    full_db = _converter.component_facts(manifest.component("full_db"))
    assert isinstance(full_db, _converter.FullDbFacts)
    assert full_db.library_roots == ("/media",)
    assert full_db.server_version_num == 180001
    # Facts the model does not know are kept (later minor versions may add some).
    assert manifest.component("full_db").facts["database_size"] == 1


def test_a_bound_integer_at_the_edges_of_int64() -> None:
    for value, ok in ((2**63 - 1, True), (2**63, False), (0, True)):
        data = _hostile(("components", 0, "facts", "rows", "users"), str(value))
        if ok:
            assert Manifest.from_json(data).component("users_auth").facts["rows"]["users"] == value
        else:
            with pytest.raises(ManifestError, match="64-bit"):
                Manifest.from_json(data)
