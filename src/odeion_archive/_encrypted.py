"""Encrypted archives: the layout, writing the members as age files, reading them back.

An encrypted archive is an ordinary zip or tar.zst archive. Each payload member
``<component>/<name>`` is stored as ``<component>/<name>.age``, an age file
that ``age -d -i key.txt`` decrypts by itself. The manifest anyone can read
(``manifest.json`` and ``manifest-tail.json``) says only what a planner needs
to ask for the key: the format, the components and their payload versions, the
time, the versions, the ciphertext members' sizes and sha256, and an
:class:`~odeion_archive._manifest.Encryption` (the recipients' fingerprints,
whether a passphrase opens it). The components' facts and the plaintext
members' sizes and sha256 are in the whole manifest, the age file
``manifest.json.age``. The server's seal covers the readable manifest, which
covers every ciphertext byte, and so everything in the archive.

:class:`Encryptor` is what the :class:`~odeion_archive._builder.ArchiveBuilder`
writes with; :class:`EncryptedArchive` reads an archive with the identities
given, as the planner and the restore read any archive
(:class:`~odeion_archive._planner.ArchiveSource`).
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Callable, Generator, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Self, cast

from odeion_archive import _age, _agestream
from odeion_archive._age import AgeIdentities, AgeRecipients
from odeion_archive._archive import ArchiveFile, _checked, _MemberStream
from odeion_archive._manifest import (
    ENCRYPTED_MANIFEST,
    ENCRYPTED_SINCE,
    ENCRYPTED_SUFFIX,
    IDENTITY_MEMBER,
    ContainerPrefix,
    Encryption,
    Manifest,
    MemberEntry,
)
from odeion_archive._registry import Registry
from odeion_archive._verify import DAMAGED
from odeion_archive.errors import (
    ArchiveInvalidError,
    CorruptArchiveError,
    DecryptionError,
    ManifestError,
    UnsafeArchiveError,
)
from odeion_archive.events import CancelToken, ProgressCallback, ProgressEvent, null_progress
from odeion_archive.interfaces import Authenticity
from odeion_archive.results import Problem, VerifyReport

__all__ = [
    "EncryptedArchive",
    "Encryptor",
    "open_readable",
    "open_source",
    "verify_file",
]


class Encryptor:
    """Encrypts the members of one archive to its recipients (and passphrase)."""

    def __init__(self, recipients: AgeRecipients) -> None:
        self._settings = recipients
        self._keys = recipients.keys()
        self.identity_file: bytes | None = None
        if recipients.passphrase:
            # pyrage's scrypt works on whole byte strings only; see _age.
            module = _age.pyrage()
            own = module.x25519.Identity.generate()
            self._keys.append(own.to_public())
            self.identity_file = bytes(
                module.passphrase.encrypt(f"{own}\n".encode(), recipients.passphrase)
            )

    def encrypt(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """The age file of one member's plaintext, compressed first, in pieces of about 1 MiB."""
        plain = _agestream.compressed(chunks)
        return _agestream.coalesce(_agestream.encrypt_chunks(plain, self._keys))

    def encrypt_manifest(self, manifest: Manifest) -> bytes:
        """The age file of the whole manifest."""
        return _age.encrypt_bytes(manifest.to_json(), self._keys)

    def record(self, members: tuple[MemberEntry, ...]) -> Encryption:
        """The manifest's record of this encryption, with its own members."""
        return Encryption(
            scheme="age",
            recipients=self._settings.fingerprints,
            passphrase=self.identity_file is not None,
            members=members,
            compression="zstd",
        )


def _describe(encryption: Encryption) -> str:
    ways = []
    if encryption.recipients:
        ways.append(f"to the age keys with fingerprints {', '.join(encryption.recipients)}")
    if encryption.passphrase:
        ways.append("with a passphrase")
    return " and ".join(ways) or "with age"


def _missing(encryption: Encryption) -> DecryptionError:
    asks = []
    if encryption.recipients:
        asks.append(
            "the age identity file of one of those keys (the server's identity, or its "
            "emergency kit), with --identity FILE or ODEION_ARCHIVE_IDENTITY_FILE"
        )
    if encryption.passphrase:
        asks.append("the passphrase, with --passphrase-file FILE or ODEION_ARCHIVE_PASSPHRASE_FILE")
    return DecryptionError(
        "key_missing",
        f"the archive is encrypted {_describe(encryption)}, and no key was given to open it; "
        f"give {' or '.join(asks)}",
    )


def _wrong(encryption: Encryption, given: AgeIdentities) -> DecryptionError:
    yours = ", ".join(given.fingerprints) or "none"
    phrase = " and the passphrase given" if given.passphrase else ""
    return DecryptionError(
        "key_wrong",
        f"the archive is encrypted {_describe(encryption)}, but none of the keys given opens it "
        f"(the identities given have the fingerprints {yours}{phrase}); give the identity "
        "of one of its recipients (the emergency kit of the server that made it), or the "
        "right passphrase",
    )


#: The highest scrypt work factor (log2 of N) an ``identity.age`` may ask for: 2^21
#: needs 2 GiB of memory and some 5 seconds. rage, which writes the file, calibrates
#: the factor to about a second on the machine that makes the archive (17 to 20 on
#: common hardware); the reference age refuses more than 2^22.
MAX_WORK_FACTOR = 21


def _work_factor_limit() -> int:
    """:data:`MAX_WORK_FACTOR`, or less where scrypt would take over half the memory."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return MAX_WORK_FACTOR
    limit = MAX_WORK_FACTOR
    while limit > 18 and _scrypt_memory(limit) > memory // 2:
        limit -= 1
    return limit


def _scrypt_memory(work_factor: int) -> int:
    """Bytes scrypt needs at ``work_factor`` with age's parameters (r = 8): 128 * r * N."""
    return 1024 << work_factor


def _check_work_factor(data: bytes) -> None:
    """Refuse an ``identity.age`` whose scrypt work would exhaust this machine.

    pyrage runs scrypt before it checks the header's MAC, at any work factor up to
    4 above what it would choose itself (2^23, 8 GiB, on a machine that chooses
    2^19), and it aborts the process when the memory cannot be had; nor does it
    show the header. So the header is read here, by hand: the library writes it
    in age's binary form, which starts with a version line and whose stanzas are
    lines ``-> scrypt SALT FACTOR`` (the armored form is refused).
    """
    version, _, rest = data.partition(b"\n")
    if version != b"age-encryption.org/v1":
        raise CorruptArchiveError(f"{IDENTITY_MEMBER} is not an age file in binary form; {DAMAGED}")
    limit = _work_factor_limit()
    for line in rest.split(b"\n"):
        if line.startswith(b"---"):
            return
        fields = line.split(b" ")
        if fields[:2] != [b"->", b"scrypt"]:
            continue
        factor = fields[3] if len(fields) == 4 else b""
        if not (factor.isdigit() and len(factor) <= 2 and not factor.startswith(b"0")):
            raise CorruptArchiveError(
                f"{IDENTITY_MEMBER} has a scrypt stanza without a valid work factor; {DAMAGED}"
            )
        if int(factor) > limit:
            bound = (
                f"2^{limit}"
                if limit == MAX_WORK_FACTOR
                else f"2^{limit}, half its memory (restore it on a machine with more memory if "
                "it is genuine)"
            )
            raise UnsafeArchiveError(
                f"{IDENTITY_MEMBER} asks scrypt for a work factor of 2^{int(factor)} "
                f"({_scrypt_memory(int(factor)) >> 20} MiB of memory), and this machine "
                f"accepts at most {bound}; the library asks for about a second of work on the "
                "machine that makes an archive, so the archive was crafted or damaged: use "
                "another archive"
            )


@functools.lru_cache(maxsize=8)
def _unwrap(data: bytes, passphrase: str) -> str | None:
    """The identity in ``identity.age``, or ``None`` if the passphrase does not open it.

    age's scrypt takes about a second by design; a plan, its restore and the
    verification before it open the same archive, so the result is kept for
    the process (keyed by the encrypted bytes, which the manifest's sha256 has
    checked).
    """
    _check_work_factor(data)
    module = _age.pyrage()
    try:
        return bytes(module.passphrase.decrypt(data, passphrase)).decode()
    except module.DecryptError:
        return None
    except UnicodeDecodeError:
        raise CorruptArchiveError(f"{IDENTITY_MEMBER} is not an identity; {DAMAGED}") from None


def _check_same(outer: Manifest, inner: Manifest) -> None:
    """The whole manifest must describe the archive the readable one describes."""
    fields = ("created_at", "library_version", "server_version", "schema_version", "format")
    differs = [f for f in fields if getattr(outer, f) != getattr(inner, f)]
    if inner.encryption is not None or inner.authentication is not None:
        differs.append("encryption")
    if [(c.name, c.payload_version) for c in outer.components] != [
        (c.name, c.payload_version) for c in inner.components
    ]:
        differs.append("components")
    if [m.path for m in outer.members] != [m.path + ENCRYPTED_SUFFIX for m in inner.members]:
        differs.append("members")
    if differs:
        raise CorruptArchiveError(
            f"the encrypted manifest and the readable one disagree on {', '.join(differs)}: "
            f"the archive was assembled from two archives or damaged; {DAMAGED}"
        )


class EncryptedArchive:
    """An encrypted archive opened with its key: the whole manifest, plaintext members.

    ``manifest`` is the whole manifest (with facts and the plaintext members);
    ``readable`` the manifest anyone can read; ``authenticity`` the seal's
    verdict on the archive, as for any archive.
    """

    def __init__(self, outer: ArchiveFile, manifest: Manifest, identities: list[Any]) -> None:
        self.archive = outer
        self.manifest = manifest
        self._identities = identities

    @property
    def readable(self) -> Manifest:
        """The manifest that the archive shows without the key."""
        return self.archive.manifest

    @property
    def authenticity(self) -> Authenticity:
        """Whether this server made the archive (its seal covers the ciphertext)."""
        return self.archive.authenticity

    @classmethod
    def open(cls, outer: ArchiveFile, keys: AgeIdentities | None) -> EncryptedArchive:
        """Decrypt the whole manifest of ``outer``.

        Raises :class:`~odeion_archive.errors.DecryptionError` (``key_missing``,
        ``key_wrong``) if ``keys`` cannot open it, and
        :class:`~odeion_archive.errors.ArchiveInvalidError` if it is damaged.
        """
        readable = outer.manifest
        encryption = readable.encryption
        if encryption is None:
            raise ArchiveInvalidError(f"{outer.path.name} is not encrypted; read it as it is")
        if readable.manifest_version < ENCRYPTED_SINCE:
            raise ManifestError(
                "manifest field 'encryption' appears in a manifest older than version "
                f"{ENCRYPTED_SINCE[0]}.{ENCRYPTED_SINCE[1]}; {DAMAGED}"
            )
        expected = 2 if encryption.passphrase else 1
        if [m.path for m in encryption.members] != [ENCRYPTED_MANIFEST, IDENTITY_MEMBER][:expected]:
            raise ManifestError(
                f"manifest field 'encryption': the members must be "
                f"{[ENCRYPTED_MANIFEST, IDENTITY_MEMBER][:expected]}; {DAMAGED}"
            )
        if keys is None or (not keys.identities and not keys.passphrase):
            raise _missing(encryption)
        identities = keys.keys()
        if encryption.passphrase and keys.passphrase:
            own = cls._passphrase_identity(outer, keys.passphrase)
            if own is not None:
                identities.append(own)
        if not identities:
            raise _wrong(encryption, keys)
        sealed = outer.read_small_member(ENCRYPTED_MANIFEST)
        module = _age.pyrage()
        try:
            plain = _age.decrypt_bytes(sealed, identities)
        except module.DecryptError as exc:
            # pyrage has one exception for all failures; its message tells a key that
            # opens no recipient stanza from damage.
            if "no matching keys" in str(exc).lower():
                raise _wrong(encryption, keys) from None
            raise CorruptArchiveError(
                f"{ENCRYPTED_MANIFEST} cannot be decrypted ({exc}); {DAMAGED}"
            ) from None
        manifest = Manifest.from_json(plain)
        _check_same(readable, manifest)
        return cls(outer, manifest, identities)

    @staticmethod
    def _passphrase_identity(outer: ArchiveFile, passphrase: str) -> Any:
        """The archive's own identity, or ``None`` if the passphrase does not open it."""
        text = _unwrap(outer.read_small_member(IDENTITY_MEMBER), passphrase)
        if text is None:
            return None
        module = _age.pyrage()
        try:
            return module.x25519.Identity.from_str(text.strip())
        except module.IdentityError:
            raise CorruptArchiveError(f"{IDENTITY_MEMBER} is not an identity; {DAMAGED}") from None

    # -- reading -------------------------------------------------------------

    def _decrypted(self, chunks: Iterable[bytes], expected: MemberEntry) -> Iterator[bytes]:
        module = _age.pyrage()

        def failed(exc: Exception) -> BaseException:
            if isinstance(exc, module.DecryptError | OSError):
                return CorruptArchiveError(
                    f"member {expected.path + ENCRYPTED_SUFFIX!r} cannot be decrypted ({exc}); {DAMAGED}"
                )
            return exc

        plain = _agestream.decrypt_chunks(chunks, self._identities, failed)
        encryption = self.archive.manifest.encryption
        if encryption is not None and encryption.compression == "zstd":
            plain = _agestream.decompressed(plain, failed)
        return _checked(plain, expected)

    def open_member(self, path: str) -> IO[bytes]:
        """A readable stream of the plaintext of member ``path``, checked as it is read.

        The ciphertext is checked against the readable manifest, the plaintext
        against the whole one; a mismatch raises
        :class:`~odeion_archive.errors.CorruptArchiveError`.
        """
        return self._plaintext(path, self.archive.open_member(path + ENCRYPTED_SUFFIX))

    def open_checked(
        self,
        path: str,
        on_bytes: Callable[[int, int], None] | None = None,
        *,
        prefix: ContainerPrefix | None = None,
    ) -> IO[bytes]:
        """The plaintext of ``path``, checked whole now, then read only as it was checked.

        See :meth:`ArchiveFile.open_checked`: the prefix of an encrypted member
        covers its ciphertext; the plaintext is checked against its sha256 as
        it is decrypted.
        """
        return self.archive.open_checked(
            path + ENCRYPTED_SUFFIX,
            on_bytes,
            prefix=prefix,
            plain=lambda cipher: self._plaintext(path, cipher),
        )

    def _plaintext(self, path: str, cipher: IO[bytes]) -> IO[bytes]:
        expected = self.manifest.member(path)

        def chunks() -> Iterator[bytes]:
            with cipher:
                yield from self._decrypted(iter(lambda: cipher.read(64 * 1024), b""), expected)

        return cast("IO[bytes]", io.BufferedReader(_MemberStream(chunks()), 64 * 1024))

    def walk(self) -> Generator[tuple[MemberEntry, Iterator[bytes]], None, None]:
        """Every payload member, with an iterator of its decrypted, checked bytes."""
        walk = self.archive.walk()
        try:
            for cipher, chunks in walk:
                if "/" not in cipher.path:
                    for _chunk in chunks:  # the encryption's own members, checked as read
                        pass
                    continue
                # _check_same made every payload member '<plaintext path>.age'.
                entry = self.manifest.member(cipher.path.removesuffix(ENCRYPTED_SUFFIX))
                yield entry, self._decrypted(chunks, entry)
        finally:
            walk.close()

    def check_container(self) -> VerifyReport:
        """The container and the ciphertexts' listing (see :meth:`ArchiveFile.check_container`)."""
        return self.archive.check_container()

    def verify(
        self, progress: ProgressCallback | None = None, cancel: CancelToken | None = None
    ) -> VerifyReport:
        """The container and every ciphertext, then every decrypted member's size and sha256."""
        progress = progress or null_progress
        report = self.archive.verify(progress, cancel)
        if not report.ok:
            return report
        problems: list[Problem] = []
        try:
            for entry, chunks in self.walk():
                if cancel is not None:
                    cancel.raise_if_cancelled()
                progress(
                    ProgressEvent(
                        operation="verify",
                        phase="decrypt",
                        unit="bytes",
                        total=entry.size,
                        message=f"decrypting {entry.path}",
                    )
                )
                try:
                    for _chunk in chunks:
                        pass
                except ArchiveInvalidError as exc:
                    problems.append(Problem(entry.path, str(exc)))
        except ArchiveInvalidError as exc:
            problems.append(Problem(None, str(exc)))
        return VerifyReport(tuple(problems))

    def close(self) -> None:
        """Release the file."""
        self.archive.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def open_source(archive: ArchiveFile, keys: AgeIdentities | None) -> ArchiveFile | EncryptedArchive:
    """``archive`` as the planner and the restore read it: decrypted if it is encrypted.

    On an error the archive is closed.
    """
    if archive.manifest.encryption is None:
        return archive
    try:
        return EncryptedArchive.open(archive, keys)
    except BaseException:
        archive.close()
        raise


def open_readable(
    path: Path, registry: Registry, keys: AgeIdentities | None, *, required: bool
) -> ArchiveFile | EncryptedArchive:
    """The archive at ``path``, decrypted if ``keys`` open it.

    With ``required`` (keys the caller gave, not only the data directory's),
    keys that do not open it raise :class:`~odeion_archive.errors.DecryptionError`;
    without, the archive is returned as it reads without the key.
    """
    opened = ArchiveFile.open(path, registry)
    if opened.manifest.encryption is None:
        return opened
    try:
        return EncryptedArchive.open(opened, keys)
    except DecryptionError:
        if required:
            opened.close()
            raise
        return opened
    except BaseException:
        opened.close()
        raise


def verify_file(
    path: Path,
    registry: Registry,
    keys: AgeIdentities | None,
    *,
    required: bool,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> VerifyReport:
    """Verify the archive at ``path``, its plaintexts too if ``keys`` open it."""
    try:
        opened = open_readable(path, registry, keys, required=required)
    except DecryptionError:
        raise
    except ArchiveInvalidError as exc:
        # What keeps the whole manifest from being decrypted is a problem of the
        # archive; the readable part is still checked, to name the damage.
        with ArchiveFile.open(path, registry) as readable:
            report = readable.verify(progress=progress, cancel=cancel)
        return VerifyReport((*report.problems, Problem(None, str(exc))))
    with opened:
        return opened.verify(progress=progress, cancel=cancel)
