"""Archives on a target: their manifests read with ranged reads, and fetching one.

A listing never downloads an archive: the formats' readers find the manifest
from the container's own structure (the zip central directory, the tar.zst
index at the end), so :class:`RangedFile` serves them a seekable file whose
reads become ranged reads of a few blocks, counted in ``fetched``.

A fetch streams an archive into the data directory's staging area, checked as
it arrives against the size the target lists and the record of its checked
copy; the staged file is removed when the caller is done with it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, cast

from odeion_archive import _archive
from odeion_archive._archive import SNIFF_BYTES
from odeion_archive._keys import Keyring, authenticity_of
from odeion_archive._manifest import Manifest
from odeion_archive._registry import Registry
from odeion_archive._store import BackupStore
from odeion_archive.errors import (
    ArchiveInvalidError,
    CorruptArchiveError,
    NotFoundError,
)
from odeion_archive.events import CancelToken, ProgressCallback, ProgressEvent
from odeion_archive.interfaces import ReadLimits
from odeion_archive.targets import RemoteArchive, RemoteObject, Target
from odeion_archive.targets._copy import read_sum, sum_name
from odeion_archive.targets._names import is_object_name

__all__ = [
    "BLOCK",
    "RangedFile",
    "archive_objects",
    "archives_on",
    "delete_archives",
    "fetch",
    "read_manifest",
]

_log = logging.getLogger(__name__)

#: The size of one ranged read; reads are whole, aligned blocks.
BLOCK = 64 * 1024
_CACHED_BLOCKS = 16


class RangedFile(io.RawIOBase):
    """A read-only, seekable file over ranged reads of one object of known size."""

    def __init__(self, target: Target, name: str, size: int) -> None:
        super().__init__()
        self._target = target
        self._name = name
        self._size = size
        self._pos = 0
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        #: How many bytes were read from the target so far.
        self.fetched = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        self._pos = max(base + offset, 0)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def _block(self, index: int) -> bytes:
        block = self._blocks.get(index)
        if block is None:
            start = index * BLOCK
            block = self._target.read_range(self._name, start, min(BLOCK, self._size - start))
            self.fetched += len(block)
            self._blocks[index] = block
            if len(self._blocks) > _CACHED_BLOCKS:
                self._blocks.popitem(last=False)
        else:
            self._blocks.move_to_end(index)
        return block

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        filled = 0
        # Whole reads, as a file's: the readers expect every byte they ask for before the end.
        while filled < len(view) and self._pos < self._size:
            index, offset = divmod(self._pos, BLOCK)
            data = self._block(index)[offset : offset + len(view) - filled]
            if not data:
                break
            view[filled : filled + len(data)] = data
            filled += len(data)
            self._pos += len(data)
        return filled


def read_manifest(file: RangedFile, name: str, registry: Registry, limits: ReadLimits) -> Manifest:
    """The manifest of the archive ``file`` holds, as :class:`~odeion_archive._archive.ArchiveFile` reads it."""
    head = file.read(SNIFF_BYTES) or b""
    return _archive.read_manifest(head, cast("IO[bytes]", file), name, registry, limits)[1]


def archive_objects(objects: Iterable[RemoteObject], target: Target) -> list[RemoteObject]:
    """The objects that may be archives: not the records of checked copies (``.`` names),
    nor objects someone else put there under a name no archive has (logged, left alone).
    """
    found = []
    for obj in objects:
        if not is_object_name(obj.name):
            _log.warning("skipping %r on target %s: it is no archive's name", obj.name, target.name)
        elif not obj.name.startswith("."):
            found.append(obj)
    return found


def archives_on(
    target: Target,
    registry: Registry,
    *,
    keyring: Keyring | None = None,
    limits: ReadLimits | None = None,
) -> list[RemoteArchive]:
    """Every readable archive on ``target``, newest copy first; others are logged and left out."""
    limits = ReadLimits() if limits is None else limits
    objects = list(target.list())
    checked = {o.name for o in objects if o.name.startswith(".")}
    found = []
    for obj in archive_objects(objects, target):
        try:
            manifest = read_manifest(
                RangedFile(target, obj.name, obj.size), obj.name, registry, limits
            )
        except ArchiveInvalidError as exc:
            _log.warning("skipping %r on target %s: %s", obj.name, target.name, exc)
            continue
        found.append(
            RemoteArchive(
                target.name,
                obj.name,
                obj.size,
                obj.modified,
                manifest,
                authenticity_of(manifest, keyring),
                sum_name(obj.name) in checked,
            )
        )
    found.sort(key=lambda a: (a.copied_at, a.name), reverse=True)
    return found


def _find(objects: list[RemoteObject], target: Target, name: str) -> RemoteObject:
    """The archive ``name`` among ``objects``; :class:`NotFoundError` if it is not there."""
    for obj in archive_objects(objects, target):
        if obj.name == name:
            return obj
    raise NotFoundError(
        f"no archive named {name!r} on target {target.name!r}; use a name that "
        f"'list --target {target.name}' shows"
    )


@contextlib.contextmanager
def fetch(
    target: Target,
    name: str,
    store: BackupStore,
    *,
    progress: ProgressCallback,
    cancel: CancelToken | None = None,
    listed: Sequence[RemoteObject] | None = None,
) -> Iterator[Path]:
    """The archive ``name`` of ``target``, staged in the data directory while the context lasts.

    ``listed`` is the target's listing if the caller has one (it is read
    otherwise). Raises :class:`~odeion_archive.errors.CorruptArchiveError` if
    the bytes exceed the listed size, or differ from the record of the checked
    copy.
    """
    objects = list(target.list() if listed is None else listed)
    obj = _find(objects, target, name)
    record = read_sum(target, name, (o.name for o in objects))
    expected = obj.size if record is None else record.size
    where = f"the copy of {name} on target {target.name!r}"
    with store.staging() as (temp, stream):
        digest = hashlib.sha256()
        done = 0
        for chunk in target.read(name):
            if cancel is not None:
                cancel.raise_if_cancelled()
            done += len(chunk)
            if done > expected:
                raise CorruptArchiveError(
                    f"{where} holds more than the {expected} bytes it was copied with; it was "
                    "damaged on the target: use another copy"
                )
            digest.update(chunk)
            stream.write(chunk)
            progress(ProgressEvent("fetch", "download", None, done, expected, "bytes"))
        stream.flush()
        os.fsync(stream.fileno())
        if done != expected or (record is not None and digest.hexdigest() != record.sha256):
            raise CorruptArchiveError(
                f"{where} does not match the size and sha256 recorded when it was copied "
                f"({done} bytes read, {expected} recorded); it was damaged on the target: use "
                "another copy"
            )
        yield temp


def delete_archives(target: Target, names: list[str]) -> None:
    """Delete the archives ``names`` from ``target``, each with the record of its checked copy."""
    for name in names:
        target.delete(name)
        target.delete(sum_name(name))
