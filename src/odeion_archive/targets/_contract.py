"""The contract every storage target passes (:func:`odeion_archive.testing.check_target`)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator

from odeion_archive.errors import CancelledError, UsageError
from odeion_archive.targets import Target

__all__ = ["TargetContractError", "check_target"]


class TargetContractError(AssertionError):
    """A target broke the contract; the message says which promise."""


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise TargetContractError(message)


def _listed(target: Target) -> dict[str, int]:
    return {o.name: o.size for o in target.list()}


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _interrupted(data: bytes, after: int, error: BaseException) -> Iterator[bytes]:
    yield from _chunks(data[:after], 64 * 1024)
    raise error


def check_target(target: Target, *, large: int = 12 * 1024 * 1024 + 12345) -> None:
    """Check that ``target`` keeps every promise of the protocol; raise if not.

    Writes, reads and deletes a few objects named ``contract-<random>-...``
    (removed at the end): round trips of a small and a ``large`` object sent in
    chunks, ranged reads, replacement, an interrupted write and a cancelled one
    (no object may be listed after either), deletion, and the refusal of names
    that are not flat file names.
    """
    tag = f"contract-{secrets.token_hex(4)}"
    small, big, broken, cancelled = (f"{tag}-{n}" for n in ("small", "big", "broken", "cancelled"))
    data = secrets.token_bytes(large)
    try:
        target.write(small, [b"hello, ", b"target"])
        _expect(_listed(target).get(small) == 13, "a written object is listed with its size")
        _expect(b"".join(target.read(small)) == b"hello, target", "read returns what was written")
        _expect(target.read_range(small, 7, 3) == b"tar", "read_range returns the range asked")
        _expect(target.read_range(small, 10, 100) == b"get", "read_range stops at the end")
        _expect(target.read_range(small, 13, 10) == b"", "read_range at the end returns nothing")
        _expect(target.read_range(small, 99, 10) == b"", "read_range past the end returns nothing")

        target.write(big, _chunks(data, 1024 * 1024 + 7))
        _expect(_listed(target).get(big) == large, "a large object is listed whole")
        digest = hashlib.sha256()
        for chunk in target.read(big):
            _expect(len(chunk) <= 16 * 1024 * 1024, "read yields chunks of bounded size")
            digest.update(chunk)
        _expect(digest.digest() == hashlib.sha256(data).digest(), "a large object reads back")
        middle = large // 2
        _expect(
            target.read_range(big, middle, 4096) == data[middle : middle + 4096],
            "read_range of a large object returns its bytes",
        )

        target.write(small, [b"replaced"])
        _expect(b"".join(target.read(small)) == b"replaced", "a write replaces an object")

        before = _listed(target)
        failure = RuntimeError("the source failed")
        try:
            target.write(broken, _interrupted(data, large // 2, failure))
        except RuntimeError as exc:
            _expect(exc is failure, "the source's exception reaches the caller unchanged")
        else:
            raise TargetContractError("a write whose source failed must fail")
        try:
            target.write(cancelled, _interrupted(data, large // 3, CancelledError("cancelled")))
        except CancelledError:
            pass
        else:
            raise TargetContractError("a cancelled write must raise CancelledError")
        after = _listed(target)
        _expect(
            broken not in after and cancelled not in after and after == before,
            "an interrupted write leaves no object listed",
        )

        target.delete(small)
        target.delete(small)  # absent: nothing happens
        _expect(small not in _listed(target), "a deleted object is no longer listed")
        for bad in ("a/b", "..", "", "x\0y"):
            try:
                target.write(bad, [b"x"])
            except UsageError:
                continue
            raise TargetContractError(f"the name {bad!r} must be refused")
    finally:
        for name in (small, big, broken, cancelled):
            target.delete(name)
