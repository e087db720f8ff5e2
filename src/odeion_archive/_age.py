"""age encryption through pyrage: keys, and members encrypted and decrypted as streams.

pyrage (Python bindings of ``rage``, the Rust implementation of age) does all
the cryptography; this module only moves bytes to and from it.

Streaming: ``pyrage.encrypt_io`` and ``pyrage.decrypt_io`` run age's STREAM
(64 KiB chunks) from a reader to a writer (file objects), but each runs to
completion in one call, while an archive writer pulls a member's bytes from an
iterator and a restore reads a member as a stream. So the call runs in a worker
thread: its reader pulls from the source iterator, its writer puts each chunk on
a bounded queue that the caller's iterator drains. Memory stays bounded by the
queue (:data:`QUEUE_CHUNKS` chunks of about 64 KiB) whatever the member's size.

Passphrases: pyrage's passphrase (scrypt) functions take whole byte strings only.
So an archive encrypted with a passphrase is encrypted to an X25519 identity of
its own, generated for that archive, and that identity (a hundred bytes) is
stored encrypted with the passphrase, as the age file ``identity.age``:
``age -d -i identity.age member.age`` asks for the passphrase and opens a member.

Identities (secret keys) never appear in a ``repr``, a log line or an exception
message: errors about identity files name lines, never their content.
"""

from __future__ import annotations

import hashlib
import io
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import IO, Any, cast

import attrs

from odeion_archive.errors import ExtraMissingError, UsageError

__all__ = [
    "COALESCE_BYTES",
    "QUEUE_CHUNKS",
    "AgeIdentities",
    "AgeRecipients",
    "coalesce",
    "decrypt_bytes",
    "decrypt_chunks",
    "encrypt_bytes",
    "encrypt_chunks",
    "fingerprint",
    "new_identity",
    "pyrage",
    "read_key_file",
    "recipient_of",
]

#: How many ciphertext or plaintext chunks (about 64 KiB each) wait between threads.
QUEUE_CHUNKS = 8
#: The size of the pieces of ciphertext handed to an archive writer.
COALESCE_BYTES = 1024 * 1024
_MAX_KEY_FILE = 64 * 1024
_IDENTITY_PREFIX = "AGE-SECRET-KEY-1"
_RECIPIENT_PREFIX = "age1"


def pyrage() -> ModuleType:
    """The pyrage module; :class:`ExtraMissingError` naming the extra if it is missing."""
    try:
        import pyrage as module  # noqa: PLC0415 - an optional dependency, imported on use
    except ImportError as exc:
        raise ExtraMissingError(
            "encrypted archives need the pyrage package, which is not installed; install "
            "the extra: pip install 'odeion-archive[age]'"
        ) from exc
    return cast("ModuleType", module)


def fingerprint(recipient: str) -> str:
    """A short public name of an age recipient, recorded in manifests instead of the key."""
    return hashlib.sha256(b"odeion-archive age recipient\n" + recipient.encode()).hexdigest()[:16]


def _recipient(text: str) -> Any:
    text = text.strip()
    try:
        return pyrage().x25519.Recipient.from_str(text)
    except pyrage().RecipientError:
        raise UsageError(
            f"{text[:80]!r} is not an age X25519 recipient (a public key starting with "
            f"'{_RECIPIENT_PREFIX}'); give the recipient that 'odeion-archive key age-recipient' "
            "or 'age-keygen -y' prints"
        ) from None


def _identity(text: str, where: str) -> Any:
    try:
        return pyrage().x25519.Identity.from_str(text.strip())
    except pyrage().IdentityError:
        raise UsageError(
            f"{where} is not an age X25519 identity ('{_IDENTITY_PREFIX}...'); give a file "
            "that 'odeion-archive key age-new' or 'age-keygen' wrote"
        ) from None


def read_key_file(path: Path, what: str) -> str:
    try:
        with path.open("rb") as stream:
            data = stream.read(_MAX_KEY_FILE + 1)
    except OSError as exc:
        raise UsageError(
            f"cannot read the {what} {path}: {exc.strerror}; check the path and its permissions"
        ) from exc
    if len(data) > _MAX_KEY_FILE:
        raise UsageError(f"the {what} {path} is larger than {_MAX_KEY_FILE} bytes; is it one?")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"the {what} {path} is not UTF-8 text; give a text file") from None


def _key_lines(text: str) -> Iterator[tuple[int, str]]:
    """The non-blank, non-comment lines of an age key file, with their line numbers."""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            yield number, stripped


def new_identity() -> tuple[str, str]:
    """A new X25519 identity and its recipient: ``(identity, recipient)``."""
    identity = pyrage().x25519.Identity.generate()
    return str(identity), str(identity.to_public())


def recipient_of(identity: str) -> str:
    """The recipient (public key) of an identity (secret key)."""
    return str(_identity(identity, "the identity").to_public())


@attrs.frozen
class AgeRecipients:
    """Whom a new archive is encrypted to: age X25519 recipients, a passphrase, or both.

    Make one with :meth:`to`, :meth:`from_file` (an age recipients file: one
    ``age1...`` per line, ``#`` comments) or :meth:`with_passphrase`. The
    passphrase never shows in the ``repr``.
    """

    recipients: tuple[str, ...] = ()
    passphrase: str | None = attrs.field(default=None, repr=False)

    def __attrs_post_init__(self) -> None:
        for recipient in self.recipients:
            _recipient(recipient)
        if not self.recipients and not self.passphrase:
            raise UsageError(
                "encryption needs at least one recipient or a passphrase; give "
                "--encrypt-to RECIPIENT or a passphrase"
            )
        if len(set(self.recipients)) != len(self.recipients):
            raise UsageError("a recipient is given twice; give each recipient once")

    @classmethod
    def to(cls, *recipients: str) -> AgeRecipients:
        """Encrypt to these recipients (``age1...`` public keys)."""
        return cls(tuple(r.strip() for r in recipients))

    @classmethod
    def from_file(cls, path: Path | str) -> AgeRecipients:
        """The recipients listed in an age recipients file."""
        text = read_key_file(Path(path), "recipients file")
        return cls(tuple(line for _number, line in _key_lines(text)))

    @classmethod
    def with_passphrase(cls, passphrase: str, *recipients: str) -> AgeRecipients:
        """Encrypt with a passphrase (age's scrypt), and to ``recipients`` if any."""
        if not passphrase:
            raise UsageError("the passphrase is empty; give a passphrase")
        return cls(tuple(r.strip() for r in recipients), passphrase)

    @property
    def fingerprints(self) -> tuple[str, ...]:
        """The public fingerprints of the recipients, for the manifest."""
        return tuple(fingerprint(r) for r in self.recipients)

    def keys(self) -> list[Any]:
        """The recipients as pyrage objects."""
        return [_recipient(r) for r in self.recipients]


@attrs.frozen
class AgeIdentities:
    """What opens encrypted archives: age X25519 identities, and a passphrase.

    Make one with :meth:`from_file` (an age identity file, as ``age-keygen``,
    ``odeion-archive key age-new`` or an emergency kit hold), :meth:`from_text`
    or :meth:`from_passphrase`; combine them with :meth:`combined`. Identities
    are secret: the ``repr`` shows only how many there are.
    """

    identities: tuple[str, ...] = attrs.field(default=(), repr=False)
    passphrase: str | None = attrs.field(default=None, repr=False)

    def __repr__(self) -> str:
        phrase = ", a passphrase" if self.passphrase else ""
        return f"AgeIdentities({len(self.identities)} identities{phrase})"

    @classmethod
    def from_text(cls, text: str, *, what: str = "the identity text") -> AgeIdentities:
        """The identities in the text of an age identity file."""
        found = []
        for number, line in _key_lines(text):
            if line.upper().startswith(_IDENTITY_PREFIX):
                _identity(line, f"line {number} of {what}")
                found.append(line)
        if not found:
            raise UsageError(
                f"{what} holds no age identity (a line starting with '{_IDENTITY_PREFIX}'); "
                "give the file that 'odeion-archive key age-new' wrote, or the emergency kit"
            )
        return cls(tuple(found))

    @classmethod
    def from_file(cls, path: Path | str) -> AgeIdentities:
        """The identities in an age identity file (or an emergency kit)."""
        path = Path(path)
        return cls.from_text(read_key_file(path, "identity file"), what=f"the file {path}")

    @classmethod
    def from_passphrase(cls, passphrase: str) -> AgeIdentities:
        """The passphrase of archives encrypted with one."""
        if not passphrase:
            raise UsageError("the passphrase is empty; give the archive's passphrase")
        return cls((), passphrase)

    def combined(self, other: AgeIdentities) -> AgeIdentities:
        """These identities and ``other``'s; ``other``'s passphrase wins if both have one."""
        return AgeIdentities(
            self.identities + other.identities, other.passphrase or self.passphrase
        )

    @property
    def fingerprints(self) -> tuple[str, ...]:
        """The fingerprints of the identities' recipients (public)."""
        return tuple(fingerprint(recipient_of(i)) for i in self.identities)

    def keys(self) -> list[Any]:
        """The identities as pyrage objects."""
        return [_identity(i, "an identity") for i in self.identities]


# -- streams ---------------------------------------------------------------------

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


def encrypt_bytes(data: bytes, recipients: Sequence[Any]) -> bytes:
    """A small age file of ``data`` (a manifest), encrypted to ``recipients``."""
    return bytes(pyrage().encrypt(data, list(recipients)))


def decrypt_bytes(data: bytes, identities: Sequence[Any]) -> bytes:
    """The plaintext of a small age file; pyrage's ``DecryptError`` if none opens it."""
    return bytes(pyrage().decrypt(data, list(identities)))
