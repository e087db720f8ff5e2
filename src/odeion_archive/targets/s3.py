"""The ``s3`` target kind: S3-compatible object storage, through obstore.

obstore (the Rust ``object_store`` crate) streams an upload as a multipart
upload, whose object appears only when the upload completes; a failed or
cancelled upload is aborted, so no partial object is ever listed. Reads are
ranged GETs. Each request is retried with exponential backoff by obstore on
errors that may pass (connection lost, 5xx); ``retries`` and ``timeout`` bound
that.

Settings: ``bucket`` (required), ``endpoint`` (default: AWS), ``prefix``,
``region``, ``path_style`` (path-style addressing, for MinIO, Garage, Ceph),
``allow_http`` (plain HTTP, for a server on the local network),
``credentials_file`` (a TOML file of mode 0600 with ``access_key_id``,
``secret_access_key`` and optionally ``session_token``), ``retries``,
``timeout`` (seconds), ``part_size_mib`` and ``concurrency`` (the memory an
upload holds is about their product). Without ``credentials_file``, obstore
reads the usual environment variables (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``). Credentials never appear in
``targets.toml``, in a manifest, in an error message or in a log.

obstore is the ``[s3]`` extra: this module imports it only when an ``s3``
target is opened.
"""

from __future__ import annotations

import datetime as dt
import importlib
import re
import stat
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from odeion_archive.errors import TargetError, UsageError
from odeion_archive.hookspecs import hookimpl
from odeion_archive.targets import RemoteObject, Target, TargetKind, TargetSpec
from odeion_archive.targets._names import check_object_name, check_options
from odeion_archive.targets._s3checks import (
    check_credentials,
    check_endpoint,
    check_word,
    number,
)
from odeion_archive.targets._tomlfile import read_toml

__all__ = ["S3TargetKind", "odeion_archive_targets"]

_OPTIONAL = {
    "endpoint",
    "prefix",
    "region",
    "path_style",
    "allow_http",
    "credentials_file",
    "retries",
    "timeout",
    "part_size_mib",
    "concurrency",
}
_READ_CHUNK = 1024 * 1024
_MESSAGE_LIMIT = 300
_INVALID_KEY = re.compile(r'Error parsing Path "(.*?)": ', re.DOTALL)
_REFUSED = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403 Forbidden")
#: obstore's words for S3's answer to a range past an object's end. Anchored before the
#: status: the URL before it is percent-encoded, so no object name can forge it.
_PAST_THE_END = re.compile(
    r"Generic S3 error: Error performing GET \S+ in \S+ - "
    r"Server returned non-2xx status code: 416 Range Not Satisfiable\b"
)


def _obstore() -> ModuleType:
    try:
        importlib.import_module("obstore.store")
        importlib.import_module("obstore.exceptions")
        return importlib.import_module("obstore")
    except ImportError:
        raise TargetError(
            "s3 targets need obstore, which is not installed; install the extra with "
            "\"pip install 'odeion-archive[s3]'\""
        ) from None


def _credentials(spec: TargetSpec) -> dict[str, str]:
    """The credentials of ``credentials_file``, refusing a file that others may read."""
    named = spec.options.get("credentials_file")
    if named is None:
        return {}
    path = Path(str(named)).expanduser()
    if not path.is_absolute() and spec.base is not None:
        path = spec.base / path
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise UsageError(
                f"the credentials file {path} of target {spec.name!r} may be read by others "
                f"(mode {stat.S_IMODE(mode):04o}); run 'chmod 600 {path}'"
            )
        data = read_toml(path, f"the credentials file of target {spec.name!r},")
    except OSError as exc:
        raise UsageError(
            f"cannot read the credentials file {path} of target {spec.name!r}: "
            f"{exc.strerror or exc}"
        ) from None
    keys = {"access_key_id", "secret_access_key", "session_token"}
    found = {k: v for k, v in data.items() if k in keys and isinstance(v, str) and v}
    if {"access_key_id", "secret_access_key"} - set(found) or set(data) - keys:
        raise UsageError(
            f"the credentials file {path} of target {spec.name!r} must hold access_key_id and "
            "secret_access_key (and optionally session_token), as strings, and nothing else"
        )
    return found


class S3Target:
    """Objects under a prefix of one bucket."""

    def __init__(self, spec: TargetSpec) -> None:
        check_options(spec, required={"bucket"}, optional=_OPTIONAL)
        obstore = _obstore()
        options = spec.options
        self._name = spec.name
        self._bucket = str(options["bucket"])
        self._prefix = str(options.get("prefix", "")).strip("/")
        self._endpoint = str(options.get("endpoint", "https://s3.amazonaws.com"))
        self._part = number(spec, "part_size_mib", 8) * 1024 * 1024
        self._concurrency = number(spec, "concurrency", 2)
        if self._endpoint.startswith("http://") and not options.get("allow_http", False):
            raise UsageError(
                f"target {spec.name!r}: the endpoint {self._endpoint} is plain HTTP; use https, "
                "or set allow_http = true for a server on this machine or a trusted network"
            )
        check_endpoint(spec, self._endpoint)
        region = str(options.get("region", "us-east-1"))
        check_word(spec, "region", region)
        check_word(spec, "bucket", self._bucket)
        credentials = _credentials(spec)
        check_credentials(spec, credentials)
        self._secrets = tuple(credentials.values())
        config: dict[str, Any] = {
            "region": region,
            "virtual_hosted_style_request": not options.get("path_style", False),
            **credentials,
        }
        if "endpoint" in options:
            config["endpoint"] = self._endpoint
        timeout = dt.timedelta(seconds=number(spec, "timeout", 60))
        self._obstore = obstore
        self._store = obstore.store.S3Store(
            self._bucket,
            prefix=self._prefix or None,
            config=config,
            client_options={
                "allow_http": bool(options.get("allow_http", False)),
                "connect_timeout": dt.timedelta(seconds=10),
                "timeout": timeout,
            },
            retry_config={
                "max_retries": number(spec, "retries", 3, minimum=0),
                "retry_timeout": timeout,
                "backoff": {
                    "init_backoff": dt.timedelta(milliseconds=200),
                    "max_backoff": dt.timedelta(seconds=5),
                    "base": 2,
                },
            },
        )

    @property
    def name(self) -> str:
        return self._name

    def describe(self) -> str:
        where = f"s3://{self._bucket}/{self._prefix}".rstrip("/")
        return f"{where} at {self._endpoint}"

    def _error(self, exc: Exception, doing: str) -> TargetError:
        text = " ".join(str(exc).split())
        for secret in self._secrets:
            text = text.replace(secret, "***")
        short = text[:_MESSAGE_LIMIT] + ("..." if len(text) > _MESSAGE_LIMIT else "")
        where = f"target {self._name!r} ({self.describe()})"
        exceptions = self._obstore.exceptions
        if "NoSuchBucket" in text:
            return TargetError(
                f"the bucket {self._bucket!r} of {where} does not exist; create it, or fix "
                "'bucket' in targets.toml"
            )
        if isinstance(
            exc, exceptions.PermissionDeniedError | exceptions.UnauthenticatedError
        ) or any(code in text for code in _REFUSED):
            return TargetError(
                f"{where} refused the credentials (could not {doing}); check its "
                "credentials_file, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and the "
                "bucket's permissions"
            )
        if isinstance(exc, FileNotFoundError | exceptions.NotFoundError):
            return TargetError(f"{where} has no object to {doing}: {short}")
        invalid = _INVALID_KEY.search(str(exc))
        if invalid is not None:
            # obstore fails the whole listing on one key it cannot parse; trying again is vain.
            return TargetError(
                f"{where}: could not {doing}: the bucket holds an object named "
                f"{invalid.group(1)!r} (a control character or an empty or '.' part in its "
                "name), which no archive has and which the S3 client cannot list; rename or "
                "remove that object"
            )
        return TargetError(f"{where}: could not {doing}: {short}", transient=True)

    def list(self) -> Sequence[RemoteObject]:
        try:
            return [
                RemoteObject(meta["path"], meta["size"], meta["last_modified"])
                for batch in self._obstore.list(self._store)
                for meta in batch
                if "/" not in meta["path"]
            ]
        except (self._obstore.exceptions.BaseError, OSError) as exc:
            raise self._error(exc, "list the archives") from None

    def read_range(self, name: str, start: int, length: int) -> bytes:
        check_object_name(name)
        try:
            return bytes(self._obstore.get_range(self._store, name, start=start, length=length))
        except (self._obstore.exceptions.BaseError, OSError) as exc:
            if isinstance(exc, self._obstore.exceptions.GenericError) and _PAST_THE_END.match(
                str(exc)
            ):
                return b""  # S3 answers a range that starts at or past the end with 416
            raise self._error(exc, f"read {name}") from None

    def read(self, name: str) -> Iterator[bytes]:
        check_object_name(name)
        try:
            result = self._obstore.get(self._store, name)
            for chunk in result.stream(min_chunk_size=_READ_CHUNK):
                yield bytes(chunk)
        except (self._obstore.exceptions.BaseError, OSError) as exc:
            raise self._error(exc, f"read {name}") from None

    def write(self, name: str, chunks: Iterable[bytes]) -> None:
        check_object_name(name)
        try:
            # A multipart upload holds about part size x concurrency bytes at a time.
            self._obstore.put(
                self._store,
                name,
                iter(chunks),
                use_multipart=True,
                chunk_size=self._part,
                max_concurrency=self._concurrency,
            )
        except (self._obstore.exceptions.BaseError, OSError) as exc:
            raise self._error(exc, f"write {name}") from None

    def delete(self, name: str) -> None:
        check_object_name(name)
        try:
            self._obstore.delete(self._store, name)
        except FileNotFoundError:
            return
        except (self._obstore.exceptions.BaseError, OSError) as exc:
            raise self._error(exc, f"delete {name}") from None


class S3TargetKind:
    """Opens ``s3`` targets."""

    name = "s3"

    def open(self, spec: TargetSpec) -> Target:
        return S3Target(spec)


@hookimpl
def odeion_archive_targets() -> list[TargetKind]:
    """The built-in ``s3`` target kind."""
    return [S3TargetKind()]
