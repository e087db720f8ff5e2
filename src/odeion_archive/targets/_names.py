"""Checks shared by the target kinds: object names and settings."""

from __future__ import annotations

from collections.abc import Set as AbstractSet

from odeion_archive.errors import UsageError
from odeion_archive.targets import TargetSpec

__all__ = ["SECRET_SETTINGS", "check_object_name", "check_options", "is_object_name"]

#: Settings that would put a secret into targets.toml; refused there.
SECRET_SETTINGS = frozenset(
    {"access_key_id", "secret_access_key", "session_token", "password", "secret", "token"}
)
_MAX_NAME = 255


def is_object_name(name: str) -> bool:
    """Whether ``name`` is one flat, ordinary file name."""
    return not (
        not name
        or len(name) > _MAX_NAME
        or name in (".", "..")
        or any(c in name for c in "/\\\0")
        or not name.isprintable()
    )


def check_object_name(name: str) -> None:
    """Refuse a name that is not one flat, ordinary file name."""
    if not is_object_name(name):
        raise UsageError(f"{name!r} is not an archive name; use a name that 'list' shows")


def check_options(
    spec: TargetSpec, *, required: AbstractSet[str], optional: AbstractSet[str]
) -> None:
    """Refuse missing, unknown or secret settings of a target, naming each."""
    secret = sorted(SECRET_SETTINGS & set(spec.options))
    if secret:
        raise UsageError(
            f"target {spec.name!r}: the settings hold credentials ({', '.join(secret)}); "
            "remove them, and put them in a file of mode 0600 named by 'credentials_file' "
            "or in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
        )
    missing = sorted(required - set(spec.options))
    if missing:
        raise UsageError(f"target {spec.name!r} ({spec.kind}) needs {', '.join(missing)}")
    unknown = sorted(set(spec.options) - required - optional)
    if unknown:
        known = ", ".join(sorted(required | optional))
        raise UsageError(
            f"target {spec.name!r} ({spec.kind}): unknown setting {', '.join(unknown)} "
            f"(known: {known})"
        )
