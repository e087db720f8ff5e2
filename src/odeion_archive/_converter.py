"""Serialization in one place: the cattrs converter and the manifest migrations.

Raw dictionaries of older manifest versions go through a chain of small
functions (:data:`MIGRATIONS`), each taking the data of one major version to the
next, before the converter structures them into :class:`Manifest`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import cattrs

from odeion_archive import _safejson
from odeion_archive.errors import ManifestError, ManifestTooNewError, UnsafeArchiveError
from odeion_archive.manifest import (
    HEAD_MEMBER,
    MANIFEST_VERSION,
    TAIL_MEMBER,
    ComponentEntry,
    Manifest,
    MemberEntry,
)

__all__ = [
    "MIGRATIONS",
    "converter",
    "manifest_from_json",
    "manifest_from_parts",
    "manifest_head_json",
    "manifest_tail_json",
    "manifest_to_json",
    "migrate",
]

RawManifest = dict[str, Any]
Migration = Callable[[RawManifest], RawManifest]

#: ``MIGRATIONS[n]`` turns the raw data of manifest major version ``n`` into
#: major version ``n + 1``. Version 1 is the first released version, so the chain
#: is empty; a future version 2 adds ``MIGRATIONS[1]``.
MIGRATIONS: dict[int, Migration] = {}

converter = cattrs.Converter(forbid_extra_keys=False, detailed_validation=True)


def _structure_datetime(value: Any, _type: type) -> dt.datetime:
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO 8601 string, got {type(value).__name__}")
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone; expected UTC ('Z')")
    return parsed.astimezone(dt.UTC)


def _unstructure_datetime(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _structure_version(value: Any, _type: type) -> tuple[int, int]:
    return _parse_version(value)


converter.register_structure_hook(dt.datetime, _structure_datetime)
converter.register_unstructure_hook(dt.datetime, _unstructure_datetime)
converter.register_structure_hook_func(lambda t: t == tuple[int, int], _structure_version)
converter.register_unstructure_hook_func(lambda t: t == tuple[int, int], lambda v: f"{v[0]}.{v[1]}")


def _parse_version(value: Any) -> tuple[int, int]:
    if isinstance(value, str):
        major, sep, minor = value.partition(".")
        if sep and major.isdigit() and minor.isdigit():
            return int(major), int(minor)
    raise ManifestError(
        f"manifest field 'manifest_version': {value!r} is not a version such as \"1.0\""
    )


def migrate(raw: RawManifest, chain: Mapping[int, Migration] | None = None) -> RawManifest:
    """Bring raw manifest data of any known major version to the current one."""
    chain = MIGRATIONS if chain is None else chain
    if not isinstance(raw, dict):
        raise ManifestError("the manifest is not a JSON object")
    if "manifest_version" not in raw:
        raise ManifestError("manifest field 'manifest_version' is missing")
    major, _minor = _parse_version(raw["manifest_version"])
    current = MANIFEST_VERSION[0]
    if major > current:
        raise ManifestTooNewError(major, current)
    if major < 1:
        raise ManifestError(f"manifest field 'manifest_version': major version {major} is unknown")
    while major < current:
        step = chain.get(major)
        if step is None:
            raise ManifestError(f"no migration from manifest version {major} is known")
        raw = step(dict(raw))
        major, _minor = _parse_version(raw["manifest_version"])
    return raw


def _structure(raw: RawManifest) -> Manifest:
    raw = migrate(raw)
    try:
        return converter.structure(raw, Manifest)
    except ManifestError:
        raise
    except cattrs.BaseValidationError as exc:
        detail = "; ".join(cattrs.transform_error(exc, path="manifest"))
        raise ManifestError(f"the manifest is malformed: {detail}") from None
    except (TypeError, ValueError, KeyError) as exc:
        raise ManifestError(f"the manifest is malformed: {exc}") from None


def _load(data: bytes | str, what: str) -> RawManifest:
    try:
        raw = _safejson.loads(data, what=what)
    except UnsafeArchiveError as exc:
        raise ManifestError(str(exc)) from None
    if not isinstance(raw, dict):
        raise ManifestError(f"{what}: expected a JSON object")
    return raw


def manifest_from_json(data: bytes | str) -> Manifest:
    """Structure one whole-manifest document."""
    return _structure(_load(data, "manifest"))


def _unstructure(manifest: Manifest) -> RawManifest:
    """The raw manifest; ``authentication`` appears only when there is one (1.0 stays 1.0)."""
    raw: RawManifest = converter.unstructure(manifest)
    if raw.get("authentication") is None:
        raw.pop("authentication", None)
    return raw


def manifest_to_json(manifest: Manifest) -> bytes:
    """Unstructure a manifest into one deterministic JSON document."""
    return _safejson.dumps(_unstructure(manifest))


def manifest_head_json(manifest: Manifest) -> bytes:
    """The ``manifest.json`` member: the manifest without members, facts and seal."""
    raw = _unstructure(manifest)
    raw.pop("authentication", None)  # written before the members: the seal is in the tail
    for component in raw["components"]:
        del component["members"]
        del component["facts"]
    raw["tail"] = TAIL_MEMBER
    return _safejson.dumps(raw)


def manifest_tail_json(manifest: Manifest) -> bytes:
    """The ``manifest-tail.json`` member: members and facts per component, and the seal."""
    raw = _unstructure(manifest)
    tail: RawManifest = {
        "manifest_version": raw["manifest_version"],
        "components": [
            {"name": c["name"], "members": c["members"], "facts": c["facts"]}
            for c in raw["components"]
        ],
    }
    if "authentication" in raw:
        tail["authentication"] = raw["authentication"]
    return _safejson.dumps(tail)


def manifest_from_parts(head: bytes, tail: bytes) -> Manifest:
    """Join the head and tail members of an archive into one manifest."""
    raw_head = _load(head, HEAD_MEMBER)
    raw_tail = _load(tail, TAIL_MEMBER)
    if raw_head.get("manifest_version") != raw_tail.get("manifest_version"):
        raise ManifestError(
            f"{HEAD_MEMBER} and {TAIL_MEMBER} disagree on 'manifest_version' "
            f"({raw_head.get('manifest_version')!r} and {raw_tail.get('manifest_version')!r}); "
            "the archive was assembled from two archives or damaged"
        )
    raw_head = migrate(raw_head)
    raw_tail = migrate(raw_tail)
    components = raw_head.get("components")
    tail_components = raw_tail.get("components")
    if not isinstance(components, list) or not isinstance(tail_components, list):
        raise ManifestError("manifest field 'components' must be a list in head and tail")
    by_name: dict[str, dict[str, Any]] = {}
    for entry in tail_components:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ManifestError(f"{TAIL_MEMBER}: every component needs a 'name'")
        by_name[entry["name"]] = entry
    joined = []
    for component in components:
        if not isinstance(component, dict):
            raise ManifestError("manifest field 'components': every entry must be an object")
        extra = by_name.pop(str(component.get("name")), None)
        if extra is None:
            raise ManifestError(
                f"{TAIL_MEMBER} has no entry for component {component.get('name')!r}; "
                "the archive is incomplete"
            )
        joined.append(
            {**component, "members": extra.get("members", []), "facts": extra.get("facts", {})}
        )
    if by_name:
        raise ManifestError(
            f"{TAIL_MEMBER} names components that {HEAD_MEMBER} does not: {sorted(by_name)}"
        )
    raw_head.pop("tail", None)
    raw_head.pop("authentication", None)  # the seal is read from the tail only
    if "authentication" in raw_tail:
        raw_head["authentication"] = raw_tail["authentication"]
    return _structure({**raw_head, "components": joined})


__all__ += ["ComponentEntry", "MemberEntry"]
