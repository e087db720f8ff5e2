"""Serialization in one place: the cattrs converter and the manifest migrations.

Raw dictionaries of older manifest versions go through a chain of small
functions (:data:`MIGRATIONS`), each taking the data of one major version to the
next, before the converter structures them into :class:`Manifest`.

The converter is strict, because what it structures comes from archives: an
``int`` must be a JSON integer within the 64-bit range (never a boolean, a
float or a string of digits), a ``str`` a JSON string, a tuple a JSON array and
a mapping a JSON object. The facts of the built-in components have typed models
(:data:`FACT_MODELS`), checked whenever a manifest is read; anything wrong is a
:class:`~odeion_archive.errors.ManifestError` naming the field.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, get_args, get_origin

import attrs
import cattrs
from cattrs.cols import homogenous_tuple_structure_factory, is_mapping, mapping_structure_factory
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from odeion_archive import _safejson
from odeion_archive._duration import Duration
from odeion_archive._manifest import (
    HEAD_MEMBER,
    MANIFEST_VERSION,
    TAIL_MEMBER,
    ComponentEntry,
    ContainerPrefix,
    Manifest,
    MemberEntry,
)
from odeion_archive.errors import (
    ManifestError,
    ManifestTooNewError,
    UnsafeArchiveError,
    UsageError,
)

__all__ = [
    "FACT_MODELS",
    "INT64_MAX",
    "INT64_MIN",
    "MIGRATIONS",
    "FullDbFacts",
    "JsonComponentFacts",
    "component_facts",
    "converter",
    "manifest_from_json",
    "manifest_from_parts",
    "manifest_head_json",
    "manifest_tail_json",
    "manifest_to_json",
    "migrate",
    "structure_config",
]

RawManifest = dict[str, Any]
Migration = Callable[[RawManifest], RawManifest]

#: ``MIGRATIONS[n]`` turns the raw data of manifest major version ``n`` into
#: major version ``n + 1``. Version 1 is the first released version, so the chain
#: is empty; a future version 2 adds ``MIGRATIONS[1]``.
MIGRATIONS: dict[int, Migration] = {}

converter = cattrs.Converter(forbid_extra_keys=False, detailed_validation=True)

#: The range of every integer read from an archive (PostgreSQL's bigint).
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def _kind(value: Any) -> str:
    """What a JSON value is, for messages."""
    kinds = {
        bool: "a boolean",
        int: "an integer",
        float: "a number with a fraction or exponent",
        str: "a string",
        list: "an array",
        dict: "an object",
    }
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _structure_int(value: Any, _type: type) -> int:
    if type(value) is not int:
        raise TypeError(f"expected an integer, found {_kind(value)} ({value!r:.40})")
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"the integer {value!r:.40} lies outside the 64-bit range")
    return value


def _structure_str(value: Any, _type: type) -> str:
    if type(value) is not str:
        raise TypeError(f"expected a string, found {_kind(value)} ({value!r:.40})")
    return value


def _structure_bool(value: Any, _type: type) -> bool:
    if type(value) is not bool:
        raise TypeError(f"expected a boolean, found {_kind(value)} ({value!r:.40})")
    return value


def _structure_float(value: Any, _type: type) -> float:
    if type(value) not in (int, float):
        raise TypeError(f"expected a number, found {_kind(value)} ({value!r:.40})")
    return float(value)


def _is_homogeneous_tuple(type_: Any) -> bool:
    args = get_args(type_)
    return get_origin(type_) is tuple and len(args) == 2 and args[1] is Ellipsis


def _json_array_factory(type_: Any, conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    inner = homogenous_tuple_structure_factory(type_, conv)

    def structure(value: Any, target: Any) -> Any:
        if type(value) is not list:
            raise TypeError(f"expected an array, found {_kind(value)}")
        return inner(value, target)

    return structure


def _json_object_factory(type_: Any, conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    inner = mapping_structure_factory(type_, conv)

    def structure(value: Any, target: Any) -> Any:
        if type(value) is not dict:
            raise TypeError(f"expected an object, found {_kind(value)}")
        return inner(value, target)

    return structure


converter.register_structure_hook(int, _structure_int)
converter.register_structure_hook(bool, _structure_bool)
converter.register_structure_hook(str, _structure_str)
converter.register_structure_hook(float, _structure_float)
converter.register_structure_hook_factory(_is_homogeneous_tuple, _json_array_factory)
converter.register_structure_hook_factory(is_mapping, _json_object_factory)


def _structure_datetime(value: Any, _type: type) -> dt.datetime:
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO 8601 string, got {_kind(value)}")
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone; expected UTC ('Z')")
    try:
        return parsed.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError(f"{value!r} lies outside the years 1 to 9999 in UTC") from None


def _unstructure_datetime(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _structure_version(value: Any, _type: type) -> tuple[int, int]:
    return _parse_version(value)


converter.register_structure_hook(dt.datetime, _structure_datetime)
converter.register_unstructure_hook(dt.datetime, _unstructure_datetime)
converter.register_structure_hook_func(lambda t: t == tuple[int, int], _structure_version)
converter.register_unstructure_hook_func(lambda t: t == tuple[int, int], lambda v: f"{v[0]}.{v[1]}")


_VERSION = re.compile(r"([0-9]{1,9})\.([0-9]{1,9})")


def _parse_version(value: Any) -> tuple[int, int]:
    if isinstance(value, str):
        match = _VERSION.fullmatch(value)
        if match:
            return int(match.group(1)), int(match.group(2))
    raise ManifestError(
        f"manifest field 'manifest_version': {value!r:.40} is not a version such as \"1.0\""
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


# -- the facts of the built-in components ----------------------------------------


def _non_negative(_inst: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and value < 0:
        raise ValueError(f"{attribute.name} is {value}, expected zero or more")


def _row_counts(_inst: object, _attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        for table, count in value.items():
            if count < 0:
                raise ValueError(f"the row count of {table!r} is {count}, expected zero or more")


@attrs.frozen
class JsonComponentFacts:
    """The facts of the JSON components (``users_auth``, ``settings``).

    ``rows``: the number of rows (JSON lines) exported per table; a restore
    refuses a member that holds more or fewer. ``schema_version``: the schema
    the rows were exported at. Every fact is optional in the model (old
    archives and other writers may lack one); a component that needs a fact
    refuses an archive without it.
    """

    rows: Mapping[str, int] | None = attrs.field(default=None, validator=_row_counts)
    schema_version: int | None = attrs.field(default=None, validator=_non_negative)


@attrs.frozen
class FullDbFacts:
    """The facts of the ``full_db`` component, as its backup records them."""

    server_version: str | None = None
    server_version_num: int | None = attrs.field(default=None, validator=_non_negative)
    pg_dump_version: str | None = None
    dump_archive_version: str | None = None
    dump_format: str | None = None
    extensions: Mapping[str, str] | None = None
    database_size: int | None = attrs.field(default=None, validator=_non_negative)
    library_roots: tuple[str, ...] | None = None
    schema_version: int | None = attrs.field(default=None, validator=_non_negative)
    #: Every table's row count (``schema.table``), taken in the backup's snapshot.
    row_counts: Mapping[str, int] | None = attrs.field(default=None, validator=_row_counts)
    #: The archive's bytes through the dump, where the format returned them.
    dump_prefix: ContainerPrefix | None = None


#: The model of the facts of each built-in component. Facts of other components
#: are any JSON object.
FACT_MODELS: Mapping[str, type[JsonComponentFacts | FullDbFacts]] = {
    "users_auth": JsonComponentFacts,
    "settings": JsonComponentFacts,
    "full_db": FullDbFacts,
}


def _describe(exc: BaseException, type_: Any) -> str:
    """One problem of a field: our own hooks' words, else cattrs' description."""
    if isinstance(exc, (TypeError, ValueError)) and str(exc) and not isinstance(exc, KeyError):
        return str(exc)
    return cattrs.v.format_exception(exc, type_)


def _malformed(exc: Exception, path: str) -> ManifestError:
    if isinstance(exc, ManifestError):
        return exc
    if isinstance(exc, cattrs.BaseValidationError):
        detail = "; ".join(cattrs.transform_error(exc, path=path, format_exception=_describe))
    else:
        detail = str(exc)
    return ManifestError(
        f"the manifest is malformed: {detail}; the archive is damaged or was edited, "
        "use another archive"
    )


def _structure_facts(name: str, facts: Mapping[str, Any], path: str) -> Any:
    model = FACT_MODELS.get(name)
    if model is None:
        return None
    try:
        return converter.structure(facts, model)
    except Exception as exc:  # whatever the data provokes is the archive's fault
        raise _malformed(exc, path) from None


def component_facts(entry: ComponentEntry) -> Any:
    """The typed facts of a built-in component (see :data:`FACT_MODELS`).

    Raises :class:`ManifestError` if they do not fit the model; ``None`` for a
    component without a model.
    """
    return _structure_facts(entry.name, entry.facts, f"manifest.components[{entry.name}].facts")


def _structure(raw: RawManifest) -> Manifest:
    raw = migrate(raw)
    try:
        manifest = converter.structure(raw, Manifest)
    except Exception as exc:  # whatever the data provokes is the archive's fault
        raise _malformed(exc, "manifest") from None
    for index, component in enumerate(manifest.components):
        _structure_facts(component.name, component.facts, f"manifest.components[{index}].facts")
    return manifest


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


# A member's ``prefix`` is what a writer returned, never part of the manifest: a
# manifest's JSON (which its seal covers) holds the same fields in every version.
converter.register_unstructure_hook(
    MemberEntry, make_dict_unstructure_fn(MemberEntry, converter, prefix=override(omit=True))
)
converter.register_structure_hook(
    MemberEntry, make_dict_structure_fn(MemberEntry, converter, prefix=override(omit=True))
)


def _unstructure(manifest: Manifest) -> RawManifest:
    """The raw manifest; ``authentication`` and ``encryption`` appear only when set.

    So that a manifest of an older version reads back to the very same JSON,
    which its seal covers.
    """
    raw: RawManifest = converter.unstructure(manifest)
    for optional in ("authentication", "encryption"):
        if raw.get(optional) is None:
            raw.pop(optional, None)
    return raw


def manifest_to_json(manifest: Manifest) -> bytes:
    """Unstructure a manifest into one deterministic JSON document."""
    return _safejson.dumps(_unstructure(manifest))


def manifest_head_json(manifest: Manifest) -> bytes:
    """The ``manifest.json`` member: the manifest without members, facts and seal."""
    raw = _unstructure(manifest)
    raw.pop("authentication", None)  # written before the members: the seal is in the tail
    raw.pop("encryption", None)  # as are the encrypted manifest's digests
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
    for optional in ("encryption", "authentication"):
        if optional in raw:
            tail[optional] = raw[optional]
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
    return _structure({**raw_head, **_from_tail_only(raw_tail), "components": joined})


def _from_tail_only(raw_tail: RawManifest) -> RawManifest:
    """The seal and the encryption, which are read from the tail only (never the head)."""
    return {
        optional: raw_tail.get(optional)
        for optional in ("authentication", "encryption")
        if optional in raw_tail
    }


__all__ += ["ComponentEntry", "MemberEntry"]


# -- configuration files (the schedule) --------------------------------------------

_T = TypeVar("_T")


def _structure_duration(value: Any, _type: type) -> Duration:
    if type(value) is not str:
        raise TypeError(f'expected a duration such as "7d", found {_kind(value)}')
    return Duration.parse(value)


converter.register_structure_hook(Duration, _structure_duration)
converter.register_unstructure_hook(Duration, str)
#: An administrator's file: a key no field has is a typo to point out, not to ignore.
_config_converter = converter.copy(forbid_extra_keys=True)


def structure_config(raw: Mapping[str, Any], type_: type[_T], what: str) -> _T:
    """The data of the configuration file ``what`` as ``type_``.

    Any flaw (an unknown key, a wrong type, a bad value) is a
    :class:`~odeion_archive.errors.UsageError` naming the file and the field.
    """
    try:
        return _config_converter.structure(raw, type_)
    except Exception as exc:  # whatever the file provokes is the file's fault
        problems = (
            cattrs.transform_error(exc, path="", format_exception=_describe)
            if isinstance(exc, cattrs.BaseValidationError)
            else [str(exc)]
        )
        raise UsageError(f"{what}: {'; '.join(map(_where, problems))}; correct it") from None


def _where(problem: str) -> str:
    """``message @ .retention.keep_daily`` as ``retention.keep_daily: message``."""
    message, _, path = problem.rpartition(" @ ")
    if not message:
        return problem
    return f"{path.lstrip('.') or 'the top level'}: {message}"
