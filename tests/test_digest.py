"""The sha256 of a member, taken inline or in a thread of its own: the same digest."""

from __future__ import annotations

import hashlib
import threading

import pytest

from odeion_archive._digest import Sha256


@pytest.mark.parametrize("background", [False, True])
def test_the_digest_is_that_of_every_chunk_in_order(background: bool) -> None:
    chunks = [bytes([n]) * (n * 1000 + 1) for n in range(64)]
    with Sha256(background=background) as digest:
        for chunk in chunks:
            digest.update(chunk)
        assert digest.hexdigest() == hashlib.sha256(b"".join(chunks)).hexdigest()
        digest.update(b"more")  # a digest read midway goes on
        assert digest.hexdigest() == hashlib.sha256(b"".join([*chunks, b"more"])).hexdigest()


def test_the_thread_ends_with_the_digest() -> None:
    before = {t.name for t in threading.enumerate()}
    with Sha256(background=True) as digest:
        digest.update(b"x" * (1 << 20))
        assert any(t.name.startswith("sha256") for t in threading.enumerate())
    assert {t.name for t in threading.enumerate()} <= before


def test_a_reused_buffer_is_hashed_as_it_was_when_added() -> None:
    buffer = bytearray(1 << 20)
    expected = hashlib.sha256()
    with Sha256(background=True) as digest:
        for n in range(16):
            buffer[:] = bytes([n]) * len(buffer)
            expected.update(buffer)
            digest.update(memoryview(buffer))
            buffer[:] = b"\xff" * len(buffer)  # the caller reuses it at once
        assert digest.hexdigest() == expected.hexdigest()
