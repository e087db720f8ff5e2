"""age encryption through pyrage: recipients, identities, and small age files.

pyrage (Python bindings of ``rage``, the Rust implementation of age) does all
the cryptography; this module only moves bytes to and from it.

Members are encrypted and decrypted as streams by
:mod:`odeion_archive._agestream`.

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
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import attrs

from odeion_archive.errors import ExtraMissingError, UsageError

__all__ = [
    "AgeIdentities",
    "AgeRecipients",
    "combine",
    "decrypt_bytes",
    "encrypt_bytes",
    "fingerprint",
    "new_identity",
    "pyrage",
    "read_key_file",
    "recipient_of",
]

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
    def recipients(self) -> tuple[str, ...]:
        """The recipients (public keys) of the identities."""
        return tuple(recipient_of(i) for i in self.identities)

    @property
    def fingerprints(self) -> tuple[str, ...]:
        """The fingerprints of the identities' recipients (public)."""
        return tuple(fingerprint(r) for r in self.recipients)

    def keys(self) -> list[Any]:
        """The identities as pyrage objects."""
        return [_identity(i, "an identity") for i in self.identities]


def combine(*sets: AgeIdentities | None) -> AgeIdentities | None:
    """The identities and passphrases of every set given; ``None`` if none is given."""
    found = [s for s in sets if s is not None]
    if not found:
        return None
    combined = found[0]
    for more in found[1:]:
        combined = combined.combined(more)
    return combined


def encrypt_bytes(data: bytes, recipients: Sequence[Any]) -> bytes:
    """A small age file of ``data`` (a manifest), encrypted to ``recipients``."""
    return bytes(pyrage().encrypt(data, list(recipients)))


def decrypt_bytes(data: bytes, identities: Sequence[Any]) -> bytes:
    """The plaintext of a small age file; pyrage's ``DecryptError`` if none opens it."""
    return bytes(pyrage().decrypt(data, list(identities)))
