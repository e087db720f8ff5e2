"""age streams: members encrypted and decrypted with bounded memory.

``pyrage.encrypt_io`` and ``pyrage.decrypt_io`` run age's STREAM
(64 KiB chunks) from a reader to a writer (file objects), but each runs to
completion in one call, while an archive writer pulls a member's bytes from an
iterator and a restore reads a member as a stream. So the call runs in a worker
thread: its reader pulls from the source iterator, its writer puts each chunk on
a bounded queue that the caller's iterator drains. Memory stays bounded by the
queue (:data:`QUEUE_CHUNKS` chunks of about 64 KiB) whatever the member's size.
"""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, Any, cast

import zstandard

from odeion_archive._age import pyrage
from odeion_archive._zstd import dump_parameters

__all__ = [
    "COALESCE_BYTES",
    "QUEUE_CHUNKS",
    "coalesce",
    "decrypt_chunks",
    "encrypt_chunks",
]

#: How many ciphertext or plaintext chunks (about 64 KiB each) wait between threads.
QUEUE_CHUNKS = 8
#: The size of the pieces of ciphertext handed to an archive writer.
COALESCE_BYTES = 1024 * 1024

_END = object()


class _IterReader(io.RawIOBase):
    """A readable stream over an iterator of chunks, for pyrage's worker thread."""

    def __init__(self, chunks: Iterator[bytes], stop: threading.Event) -> None:
        super().__init__()
        self._chunks = chunks
        self._stop = stop
        self._pending = memoryview(b"")
        #: What the source iterator raised, re-raised as is in the caller's thread.
        self.error: BaseException | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._pending:
            if self._stop.is_set():
                raise OSError("the reading side stopped")
            try:
                chunk = next(self._chunks, None)
            except BaseException as exc:
                self.error = exc
                raise OSError("the source of the bytes failed") from exc
            if chunk is None:
                return 0
            self._pending = memoryview(chunk).cast("B")
        size = min(len(view), len(self._pending))
        view[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


class _QueueWriter(io.RawIOBase):
    """A writable stream that hands each write to the caller's thread."""

    def __init__(self, chunks: queue.Queue[object], stop: threading.Event) -> None:
        super().__init__()
        self._queue = chunks
        self._stop = stop

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        if chunk and not _put(self._queue, chunk, self._stop):
            raise OSError("the reading side stopped")
        return len(chunk)


def _put(chunks: queue.Queue[object], item: object, stop: threading.Event) -> bool:
    """Put ``item`` unless the consumer stopped; whether it was put."""
    while not stop.is_set():
        try:
            chunks.put(item, timeout=0.1)
        except queue.Full:
            continue
        return True
    return False


def _pump(
    call: Callable[[IO[bytes], IO[bytes]], None],
    chunks: Iterable[bytes],
    failed: Callable[[Exception], BaseException],
) -> Iterator[bytes]:
    """Run ``call(reader, writer)`` in a worker thread; yield what it writes.

    An exception of the source iterator is re-raised as it is; one of pyrage
    goes through ``failed``. Closing the iterator early stops the worker.
    """
    pending: queue.Queue[object] = queue.Queue(maxsize=QUEUE_CHUNKS)
    stop = threading.Event()
    reader = _IterReader(iter(chunks), stop)
    writer = _QueueWriter(pending, stop)
    failure: list[Exception] = []

    def work() -> None:
        try:
            call(reader, writer)  # type: ignore[arg-type]
        except Exception as exc:
            failure.append(exc)
        finally:
            _put(pending, _END, stop)

    worker = threading.Thread(target=work, name="odeion-archive-age", daemon=True)
    worker.start()
    try:
        while True:
            item = pending.get()
            if item is _END:
                break
            assert isinstance(item, bytes)
            yield item
    finally:
        stop.set()
        worker.join()
    if reader.error is not None:
        raise reader.error
    if failure:
        raise failed(failure[0]) from failure[0]


def _failure(what: str) -> Callable[[Exception], BaseException]:
    def failed(exc: Exception) -> BaseException:
        return OSError(f"{what} failed: {exc}")

    return failed


def encrypt_chunks(
    chunks: Iterable[bytes],
    recipients: Sequence[Any],
    failed: Callable[[Exception], BaseException] | None = None,
) -> Iterator[bytes]:
    """The age file of the plaintext ``chunks``, encrypted to ``recipients``, as chunks."""
    module = pyrage()
    failed = failed or _failure("age encryption")

    def call(reader: IO[bytes], writer: IO[bytes]) -> None:
        module.encrypt_io(reader, writer, list(recipients))

    return _pump(call, chunks, failed)


def decrypt_chunks(
    chunks: Iterable[bytes],
    identities: Sequence[Any],
    failed: Callable[[Exception], BaseException] | None = None,
) -> Iterator[bytes]:
    """The plaintext of the age file ``chunks``, decrypted with ``identities``, as chunks."""
    module = pyrage()
    failed = failed or _failure("age decryption")

    def call(reader: IO[bytes], writer: IO[bytes]) -> None:
        module.decrypt_io(reader, writer, list(identities))

    return _pump(call, chunks, failed)


def coalesce(chunks: Iterable[bytes], size: int = COALESCE_BYTES) -> Iterator[bytes]:
    """``chunks`` joined into pieces of at least ``size`` bytes (the last may be smaller).

    age writes 64 KiB chunks; handed to a multi-threaded zstd compressor one by
    one, they make it hold more input in flight than the larger chunks of an
    unencrypted member do.
    """
    pending: list[bytes] = []
    held = 0
    for chunk in chunks:
        pending.append(chunk)
        held += len(chunk)
        if held >= size:
            yield b"".join(pending)
            pending, held = [], 0
    if pending:
        yield b"".join(pending)


#: The members of an encrypted archive are compressed before they are encrypted
#: (ciphertext does not compress), as one zstd frame: double-fast matching with
#: a 4 MiB window, the settings measured for the tar.zst format (no larger than
#: level 1 for about its CPU); age authenticates the frame, so it carries no
#: checksum of its own. In the calling thread: age and the outer format run in
#: threads of their own, and a second multi-threaded zstd context would double
#: the buffers held (over 200 MiB).
_COMPRESSION = dump_parameters(threads=0, write_checksum=False)
#: The largest zstd window a member may ask for when it is decompressed (128 MiB).
_MAX_WINDOW = 1 << 27


def compressed(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """``chunks`` as one zstd frame, in pieces (before they are encrypted)."""
    frame = zstandard.ZstdCompressor(compression_params=_COMPRESSION).compressobj()
    for chunk in chunks:
        if out := frame.compress(chunk):
            yield out
    yield frame.flush()


def decompressed(
    chunks: Iterable[bytes], failed: Callable[[Exception], BaseException]
) -> Iterator[bytes]:
    """The plaintext of the zstd frame ``chunks``, in pieces of at most 1 MiB.

    Reading through a bounded ``read`` keeps a small frame that claims a huge
    plaintext from expanding in memory; the caller checks the plaintext's size
    against the manifest as it goes.
    """
    source = _IterReader(iter(chunks), threading.Event())
    dctx = zstandard.ZstdDecompressor(max_window_size=_MAX_WINDOW)
    stream = cast("IO[bytes]", source)
    with dctx.stream_reader(stream, read_size=64 * 1024, closefd=False) as reader:
        while True:
            try:
                out = reader.read(COALESCE_BYTES)
            except zstandard.ZstdError as exc:
                raise failed(OSError(f"its zstd frame is damaged: {exc}")) from None
            except OSError:
                if source.error is not None:
                    raise source.error from None
                raise
            if not out:
                return
            yield out
