"""Copying an archive to a target: streamed, read back and checked, retried.

The upload streams the local file in chunks of 1 MiB (hashing it on the way),
so memory stays bounded whatever the archive's size; the target makes the
object appear only whole. The copy counts only once the object read back from
the target has the local file's size and sha256; then a small record of both,
``.sha256-<archive>``, is written next to it, which a later fetch checks the
bytes against as they arrive. A failure that may pass (``transient``) is tried
again after a pause that doubles each time; a cancel stops at the next chunk
and leaves no object.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import attrs

from odeion_archive import _converter, _safejson
from odeion_archive.errors import TargetError
from odeion_archive.events import CancelToken, ProgressCallback, ProgressEvent
from odeion_archive.targets import CopyResult, Target

__all__ = ["SUM_PREFIX", "SumRecord", "copy_archive", "read_sum", "sum_name"]

_log = logging.getLogger(__name__)

#: Records of checked copies are named this plus the archive's name.
SUM_PREFIX = ".sha256-"
_CHUNK = 1024 * 1024
_SUM_LIMIT = 4096


@attrs.frozen
class SumRecord:
    """What a checked copy of an archive holds: its size and sha256."""

    size: int
    sha256: str


def sum_name(archive: str) -> str:
    """The name of the record of ``archive``'s checked copy."""
    return SUM_PREFIX + archive


def read_sum(target: Target, archive: str, listed: Iterable[str]) -> SumRecord | None:
    """The record of ``archive``'s checked copy; ``None`` if ``listed`` lacks it, or it is damaged.

    A target that cannot be read raises :class:`~odeion_archive.errors.TargetError`.
    """
    if sum_name(archive) not in set(listed):
        return None
    data = target.read_range(sum_name(archive), 0, _SUM_LIMIT)
    try:
        return _converter.converter.structure(
            _safejson.loads(data, what=sum_name(archive)), SumRecord
        )
    except Exception as exc:  # a damaged record only loses the check it allowed
        _log.warning(
            "ignoring the damaged record %s on target %s: %s", sum_name(archive), target.name, exc
        )
        return None


class _Upload:
    """The chunks of a local file, hashed and reported as they go out."""

    def __init__(
        self, path: Path, size: int, progress: ProgressCallback, cancel: CancelToken | None
    ) -> None:
        self._path = path
        self._size = size
        self._progress = progress
        self._cancel = cancel
        self.digest = hashlib.sha256()
        self.done = 0

    def chunks(self) -> Iterator[bytes]:
        with self._path.open("rb") as stream:
            while chunk := stream.read(_CHUNK):
                if self._cancel is not None:
                    self._cancel.raise_if_cancelled()
                self.digest.update(chunk)
                self.done += len(chunk)
                self._progress(
                    ProgressEvent("copy", "upload", None, self.done, self._size, "bytes")
                )
                yield chunk


def _read_back(
    target: Target,
    name: str,
    size: int,
    progress: ProgressCallback,
    cancel: CancelToken | None,
) -> tuple[int, str]:
    digest = hashlib.sha256()
    done = 0
    for chunk in target.read(name):
        if cancel is not None:
            cancel.raise_if_cancelled()
        done += len(chunk)
        digest.update(chunk)
        progress(ProgressEvent("copy", "check", None, done, size, "bytes"))
    return done, digest.hexdigest()


def _copy_once(
    path: Path, target: Target, progress: ProgressCallback, cancel: CancelToken | None
) -> tuple[int, str]:
    name = path.name
    size = path.stat().st_size
    upload = _Upload(path, size, progress, cancel)
    target.write(name, upload.chunks())
    if upload.done != size:
        target.delete(name)
        raise TargetError(
            f"{name} changed while it was copied ({upload.done} bytes sent, {size} expected); "
            "copy it again",
            transient=True,
        )
    local = upload.digest.hexdigest()
    remote_size, remote = _read_back(target, name, size, progress, cancel)
    if (remote_size, remote) != (size, local):
        target.delete(name)
        raise TargetError(
            f"the copy of {name} on target {target.name!r} reads back differently "
            f"({remote_size} bytes, sha256 {remote[:12]}...; sent {size} bytes, {local[:12]}...); "
            "it was removed",
            transient=True,
        )
    record = _safejson.dumps(_converter.converter.unstructure(SumRecord(size, local)))
    target.write(sum_name(name), [record])
    return size, local


def copy_archive(
    path: Path,
    target: Target,
    *,
    progress: ProgressCallback,
    cancel: CancelToken | None = None,
    attempts: int = 3,
    backoff: float = 1.0,
) -> CopyResult:
    """Copy the archive at ``path`` to ``target`` under its name; raise on failure.

    Tries ``attempts`` times in all while the failure is ``transient``, pausing
    ``backoff`` seconds, then twice that, and so on.
    """
    started = time.monotonic()
    for attempt in range(1, attempts + 1):
        try:
            size, digest = _copy_once(path, target, progress, cancel)
        except TargetError as exc:
            if not exc.transient or attempt == attempts:
                raise
            pause = backoff * 2 ** (attempt - 1)
            _log.warning(
                "copy of %s to %s failed (attempt %d of %d), trying again in %.1f s: %s",
                path.name,
                target.name,
                attempt,
                attempts,
                pause,
                exc,
            )
            if cancel is not None and cancel.wait(pause):
                cancel.raise_if_cancelled()
            elif cancel is None:
                time.sleep(pause)
            continue
        return CopyResult(
            target.name,
            path.name,
            size=size,
            sha256=digest,
            attempts=attempt,
            seconds=time.monotonic() - started,
        )
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
