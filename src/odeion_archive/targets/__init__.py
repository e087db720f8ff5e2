"""Storage targets: places off the server where copies of archives are kept.

A target *kind* (:class:`TargetKind`) is the third kind of plugin, next to
formats and components: a plugin returns kinds from the
``odeion_archive_targets`` hook, and the registry refuses two kinds of one
name. The built-in kinds are ``dir`` (a mounted directory: a NAS, a USB disk)
and ``s3`` (S3-compatible object storage, through the ``[s3]`` extra).

A configured target is a :class:`TargetSpec` (read from
``<data_dir>/targets.toml``, or passed by the host); its kind opens it into a
:class:`Target`, which stores flat named objects. Every target shares one
contract (:func:`odeion_archive.testing.check_target` checks it): an object
appears whole or not at all, and names starting with ``.`` are the engine's
own records, never archives.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import attrs

from odeion_archive._manifest import Manifest
from odeion_archive.interfaces import Authenticity

__all__ = [
    "CopyResult",
    "RemoteArchive",
    "RemoteObject",
    "Target",
    "TargetKind",
    "TargetSpec",
    "TargetStatus",
]


@attrs.frozen
class RemoteObject:
    """A whole object on a target: its name, size in bytes, and when it was written."""

    name: str
    size: int
    modified: dt.datetime


@attrs.frozen
class TargetSpec:
    """One configured target: its name, its kind, and the kind's settings.

    ``options`` never hold credentials (an S3 target reads them from the
    environment or from a file of mode 0600 that ``credentials_file`` names).
    ``base`` is the directory relative paths in ``options`` are relative to
    (the data directory, for ``targets.toml``). With ``copy_after_backup``,
    every new backup is copied there as soon as it is published.
    """

    name: str
    kind: str
    options: Mapping[str, Any] = attrs.field(factory=dict, hash=False)
    copy_after_backup: bool = True
    base: Path | None = None

    @classmethod
    def directory(
        cls, name: str, path: Path | str, *, copy_after_backup: bool = True
    ) -> TargetSpec:
        """A ``dir`` target: a mounted directory that must exist."""
        return cls(name, "dir", {"path": str(path)}, copy_after_backup)

    @classmethod
    def s3(
        cls,
        name: str,
        *,
        bucket: str,
        endpoint: str | None = None,
        prefix: str = "",
        region: str = "us-east-1",
        path_style: bool = False,
        allow_http: bool = False,
        credentials_file: Path | str | None = None,
        copy_after_backup: bool = True,
        **more: Any,
    ) -> TargetSpec:
        """An ``s3`` target; credentials come from the environment or ``credentials_file``."""
        options: dict[str, Any] = {
            "bucket": bucket,
            "prefix": prefix,
            "region": region,
            "path_style": path_style,
            "allow_http": allow_http,
            **more,
        }
        if endpoint is not None:
            options["endpoint"] = endpoint
        if credentials_file is not None:
            options["credentials_file"] = str(credentials_file)
        return cls(name, "s3", options, copy_after_backup)


@runtime_checkable
class Target(Protocol):
    """An opened storage target: flat named objects, each written whole or not at all."""

    @property
    def name(self) -> str:
        """The configured name of the target."""
        ...

    def describe(self) -> str:
        """Where the target is, for people (``s3://bucket/prefix at URL``); no secrets."""
        ...

    def list(self) -> Sequence[RemoteObject]:
        """Every whole object (records starting with ``.`` included); none being written."""
        ...

    def read_range(self, name: str, start: int, length: int) -> bytes:
        """``length`` bytes of the object ``name`` from ``start``: fewer at its end, none past it.

        An object shorter than its listing said (replaced since) thus reads short,
        which the archive readers report as a damaged archive.
        """
        ...

    def read(self, name: str) -> Iterator[bytes]:
        """The bytes of the object ``name``, streamed in chunks of at most a few MiB."""
        ...

    def write(self, name: str, chunks: Iterable[bytes]) -> None:
        """Store ``chunks`` as the object ``name``, replacing any object of that name.

        Streams with bounded memory. The object appears only once all of it is
        stored: an exception raised by ``chunks`` (a cancel) or a failure leaves
        no object of that name, and no partial object listed.
        """
        ...

    def delete(self, name: str) -> None:
        """Delete the object ``name`` (nothing if it is absent)."""
        ...


@runtime_checkable
class TargetKind(Protocol):
    """A kind of storage target that a plugin provides (``dir``, ``s3``, ...)."""

    @property
    def name(self) -> str:
        """The name that ``kind = ...`` in ``targets.toml`` refers to."""
        ...

    def open(self, spec: TargetSpec) -> Target:
        """The target ``spec`` describes; :class:`~odeion_archive.errors.TargetError` if bad.

        Opening checks the settings only; reaching the target is left to the
        first operation.
        """
        ...


@attrs.frozen
class CopyResult:
    """One archive copied to one target, or the reason it was not.

    ``error`` is ``None`` when the copy is on the target, checked (its size and
    sha256 read back); ``skipped`` when an identical copy was there already.
    An archive refused because its last verification failed has the
    ``error`` that says so, and nothing was sent.
    """

    target: str
    archive: str
    size: int = 0
    sha256: str = ""
    attempts: int = 0
    seconds: float = 0.0
    skipped: bool = False
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the target holds a checked copy of the archive."""
        return self.error is None


@attrs.frozen
class TargetStatus:
    """A configured target's state: reachable or why not, how many archives, the last copy."""

    name: str
    kind: str
    where: str
    reachable: bool
    archives: int = 0
    last_copy: dt.datetime | None = None
    error: str | None = None
    copy_after_backup: bool = True


@attrs.frozen
class RemoteArchive:
    """An archive on a target, as read from its manifest with bounded ranged reads.

    ``checked`` is true when the copy carries the record of its checked upload
    (its size and sha256), against which a fetch checks it.
    """

    target: str
    name: str
    size: int
    copied_at: dt.datetime
    manifest: Manifest = attrs.field(repr=False)
    authenticity: Authenticity = "foreign"
    checked: bool = False

    @property
    def format(self) -> str:
        """The archive's format name."""
        return self.manifest.format

    @property
    def created_at(self) -> dt.datetime:
        """When the backup was taken (UTC)."""
        return self.manifest.created_at

    @property
    def components(self) -> tuple[str, ...]:
        """The components the archive holds."""
        return self.manifest.component_names
