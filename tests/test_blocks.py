"""An archive file read a second time only as it was when checked."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from odeion_archive._blocks import BLOCK_BYTES, CheckedBlocks
from odeion_archive.errors import CorruptArchiveError


def _file(size: int) -> bytearray:
    return bytearray(hashlib.shake_128(b"a file").digest(size))


def _reader(data: bytearray) -> Callable[[int, int], bytes]:
    def read(offset: int, size: int) -> bytes:
        return bytes(data[offset : offset + min(size, 100_000)])  # short reads, as pread may

    return read


_SIZE = 2 * BLOCK_BYTES + 12345


def test_checked_bytes_are_given_in_any_order_and_size() -> None:
    data = _file(_SIZE + 500)
    end = _SIZE
    checked = CheckedBlocks.take(_reader(data), end, hashlib.sha256(data[:end]).hexdigest())
    assert checked is not None
    assert checked.end == end
    for offset, size in [(end - 10, 10), (0, 64), (BLOCK_BYTES - 3, 10), (5, BLOCK_BYTES)]:
        got = checked.read(offset, size)
        assert got == data[offset : offset + len(got)]
        # Never past a block's end, never nothing.
        assert 0 < len(got) <= min(size, BLOCK_BYTES - offset % BLOCK_BYTES)
    assert checked.read(BLOCK_BYTES - 3, 10) == data[BLOCK_BYTES - 3 : BLOCK_BYTES]


def test_bytes_that_differ_or_end_early_are_not_checked() -> None:
    data = _file(_SIZE)
    right = hashlib.sha256(data).hexdigest()
    assert CheckedBlocks.take(_reader(data), _SIZE, "0" * 64) is None
    assert CheckedBlocks.take(_reader(data[:-1]), _SIZE, right) is None
    progress: list[tuple[int, int]] = []
    taken = CheckedBlocks.take(_reader(data), _SIZE, right, lambda d, t: progress.append((d, t)))
    assert taken is not None
    assert progress[-1] == (_SIZE, _SIZE)
    assert [d for d, _ in progress] == sorted({d for d, _ in progress})


@pytest.mark.parametrize("where", [0, BLOCK_BYTES - 1, BLOCK_BYTES, _SIZE - 1])
def test_a_byte_changed_after_the_check_is_never_given(where: int) -> None:
    data = _file(_SIZE)
    checked = CheckedBlocks.take(_reader(data), _SIZE, hashlib.sha256(data).hexdigest())
    assert checked is not None
    block = where // BLOCK_BYTES
    other = (block + 1) % 3
    assert (
        checked.read(other * BLOCK_BYTES, 1) == data[other * BLOCK_BYTES : other * BLOCK_BYTES + 1]
    )
    data[where] ^= 0x01
    # The block read before the change is still served as checked...
    assert checked.read(other * BLOCK_BYTES, 1) == bytes([data[other * BLOCK_BYTES]])
    # ...and the changed one is refused, wherever in it the read starts.
    with pytest.raises(CorruptArchiveError, match="changed since they were checked"):
        checked.read(block * BLOCK_BYTES + (where % BLOCK_BYTES) // 2, 1)


def test_a_file_cut_short_after_the_check_is_refused() -> None:
    data = _file(_SIZE)
    checked = CheckedBlocks.take(_reader(data), _SIZE, hashlib.sha256(data).hexdigest())
    assert checked is not None
    del data[_SIZE - 10 :]
    with pytest.raises(CorruptArchiveError, match="changed since they were checked"):
        checked.read(_SIZE - 20, 5)


def test_memory_is_one_digest_per_block() -> None:
    data = _file(_SIZE)
    checked = CheckedBlocks.take(_reader(data), _SIZE, hashlib.sha256(data).hexdigest())
    assert checked is not None
    assert len(checked._digests) == 3
    assert all(len(d) == 32 for d in checked._digests.values())


def test_a_recording_serves_again_only_the_blocks_read_and_as_they_were() -> None:
    data = _file(_SIZE)
    recorded = CheckedBlocks.recording(_reader(data), _SIZE)
    assert recorded.whole
    assert recorded.read(_SIZE - 5, 100) == data[_SIZE - 5 :]
    assert recorded.read(10, 5) == data[10:15]
    replay = recorded.replay()
    assert replay.read(12, 3) == data[12:15]
    assert replay.read(_SIZE - 3, 3) == data[_SIZE - 3 :]
    # The middle block was never read by the check: it is not read unchecked.
    with pytest.raises(CorruptArchiveError, match="not read when it was checked"):
        replay.read(BLOCK_BYTES + 7, 1)
    data[3] ^= 0xFF
    with pytest.raises(CorruptArchiveError, match="changed since they were checked"):
        replay.read(0, 1)


def test_a_recording_notices_a_block_that_changes_while_it_is_read() -> None:
    data = _file(_SIZE)
    recorded = CheckedBlocks.recording(_reader(data), _SIZE)
    assert recorded.read(0, 1) == data[:1]
    assert recorded.read(BLOCK_BYTES, 1) == data[BLOCK_BYTES : BLOCK_BYTES + 1]
    data[1] ^= 0xFF
    with pytest.raises(CorruptArchiveError, match="changed since they were checked"):
        recorded.read(0, 2)
