"""Checks of an ``s3`` target's settings before obstore sees them.

obstore (the Rust ``object_store`` crate) does not refuse an endpoint that is
no URL, or a region or a key that cannot stand in an HTTP header: it panics at
the first request, with a ``PanicException`` that derives from
``BaseException`` and so passes every ``except Exception``. Each such value is
refused here, as a :class:`~odeion_archive.errors.UsageError` that names the
setting (never a credential's value).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping

from odeion_archive.errors import UsageError
from odeion_archive.targets import TargetSpec

__all__ = ["check_credentials", "check_endpoint", "check_word", "number"]

#: What may stand in a header or a host name: printable ASCII without spaces.
_WORD = re.compile(r"[\x21-\x7e]+")
#: Upper bounds of the numeric settings (a day; S3's largest part; plenty).
_MAXIMA = {"timeout": 86_400, "retries": 100, "part_size_mib": 5 * 1024, "concurrency": 64}


def check_endpoint(spec: TargetSpec, endpoint: str) -> None:
    """Refuse an endpoint that is no ``http(s)://host[:port]`` URL."""
    try:
        parts = urllib.parse.urlsplit(endpoint)
        usable = (
            _WORD.fullmatch(endpoint) is not None
            and parts.scheme in ("http", "https")
            and bool(parts.hostname)
            and (parts.port is None or parts.port > 0)
        )
    except ValueError:  # a port that is no number, or out of range
        usable = False
    if not usable:
        raise UsageError(
            f"target {spec.name!r}: endpoint {endpoint!r:.80} is not a URL such as "
            "https://s3.example.com or http://nas.local:9000; fix it in targets.toml"
        )


def check_word(spec: TargetSpec, key: str, value: str) -> None:
    """Refuse a setting (bucket, region) that holds spaces, control characters or non-ASCII."""
    if not _WORD.fullmatch(value):
        raise UsageError(
            f"target {spec.name!r}: {key} {value!r:.80} may hold only printable ASCII "
            "characters without spaces; fix it in targets.toml"
        )


def check_credentials(spec: TargetSpec, credentials: Mapping[str, str]) -> None:
    """Refuse a credential that cannot be sent (its value is never shown)."""
    bad = sorted(key for key, value in credentials.items() if not _WORD.fullmatch(value))
    if bad:
        raise UsageError(
            f"the credentials file of target {spec.name!r}: {', '.join(bad)} may hold only "
            "printable ASCII characters without spaces or line breaks; copy the key again"
        )


def number(spec: TargetSpec, key: str, default: int, minimum: int = 1) -> int:
    """The whole-number setting ``key``, between ``minimum`` and its upper bound."""
    value = spec.options.get(key, default)
    maximum = _MAXIMA[key]
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise UsageError(
            f"target {spec.name!r}: {key} must be a whole number from {minimum} to {maximum}"
        )
    return value
