"""The archive key of a data directory: sealing this server's archives and recognising them.

The data directory holds a secret key (``<data_dir>/archive.key``, mode 0600,
created on first use). Every archive this server writes carries, in its tail
manifest, an :class:`~odeion_archive._manifest.Authentication`: the id of the
key (derived from it, not the key) and the HMAC-SHA256 of the whole manifest
without that field. The manifest lists every member's sha256, which the readers
check as members stream, so a valid MAC proves that this server made the
archive and that nothing in it changed since.

A :class:`Keyring` has one signing key and any number of other accepted keys
(the keys of the server's earlier machines, kept when a key is imported).
:func:`authenticity_of` is the one place that decides whether an archive is
``own``, ``foreign`` or ``tampered``.

The key never appears in an archive, a manifest, a log line, an exception
message or a command line: :class:`Keyring` does not show its keys in its
``repr``, and errors about key files name lines, never their content.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import stat
from pathlib import Path
from typing import IO

import attrs

from odeion_archive._manifest import Authentication, Manifest
from odeion_archive._os import fsync_dir
from odeion_archive.errors import KeyringError
from odeion_archive.interfaces import Authenticity

__all__ = [
    "KEY_BYTES",
    "KEY_FILE",
    "Keyring",
    "authenticity_of",
    "key_id",
    "load",
    "load_or_create",
    "read_keyring",
    "save",
    "write_new",
]

_log = logging.getLogger(__name__)

#: The key file's name in the data directory.
KEY_FILE = "archive.key"
#: The length of a key in bytes.
KEY_BYTES = 32
_FILE_MODE = 0o600
_HEADER = "odeion-archive keyring 1"
_MAX_TEXT = 64 * 1024
_ROLES = ("signing", "accepted")
_COMMENT = (
    "# The archive key of an odeion-archive data directory. SECRET: whoever holds\n"
    "# this file can make archives that the server accepts as its own. Keep it\n"
    "# mode 0600; move it with 'odeion-archive key export' and 'key import'.\n"
)


def key_id(key: bytes) -> str:
    """The public id of ``key``: derived from it, and telling nothing about it."""
    return hmac.new(key, b"odeion-archive key id", hashlib.sha256).hexdigest()[:32]


def _mac(key: bytes, manifest: Manifest) -> str:
    unsigned = attrs.evolve(manifest, authentication=None)
    return hmac.new(key, unsigned.to_json(), hashlib.sha256).hexdigest()


def _check_key(_inst: object, _attribute: object, value: bytes) -> None:
    if not isinstance(value, bytes) or len(value) != KEY_BYTES:
        raise KeyringError(f"an archive key must be {KEY_BYTES} bytes")


def _check_keys(inst: object, attribute: object, value: tuple[bytes, ...]) -> None:
    for key in value:
        _check_key(inst, attribute, key)


@attrs.frozen(repr=False)
class Keyring:
    """The keys of one server: ``signing_key`` seals new archives, all of them are accepted."""

    signing_key: bytes = attrs.field(validator=_check_key)
    accepted_keys: tuple[bytes, ...] = attrs.field(default=(), validator=_check_keys)

    def __repr__(self) -> str:
        return f"Keyring(key_ids={self.key_ids!r})"

    @classmethod
    def generate(cls) -> Keyring:
        """A keyring with a new random signing key."""
        return cls(secrets.token_bytes(KEY_BYTES))

    @property
    def key_id(self) -> str:
        """The id of the signing key."""
        return key_id(self.signing_key)

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The ids of every accepted key, the signing key's first."""
        return tuple(key_id(key) for key in self._keys())

    def _keys(self) -> tuple[bytes, ...]:
        return (self.signing_key, *(k for k in self.accepted_keys if k != self.signing_key))

    def _key(self, wanted: str) -> bytes | None:
        for key in self._keys():
            if hmac.compare_digest(key_id(key), wanted):
                return key
        return None

    def sign(self, manifest: Manifest) -> Authentication:
        """The seal of ``manifest`` (its ``authentication`` field is ignored)."""
        return Authentication(self.key_id, _mac(self.signing_key, manifest))

    def authenticity(self, manifest: Manifest) -> Authenticity:
        """Whether this server made the archive of ``manifest``; see :func:`authenticity_of`."""
        return authenticity_of(manifest, self)

    def with_imported(self, imported: Keyring) -> Keyring:
        """``imported``'s signing key signs from now on; every key of both stays accepted."""
        others = [*imported.accepted_keys, *self._keys()]
        kept: list[bytes] = []
        for key in others:
            if key != imported.signing_key and key not in kept:
                kept.append(key)
        return Keyring(imported.signing_key, tuple(kept))

    # -- the text format -------------------------------------------------------

    def to_text(self) -> str:
        """The keyring in its self-describing text format (secret!)."""
        lines = [_HEADER, _COMMENT.rstrip("\n")]
        lines += [
            f"{role} {key_id(key)} {base64.urlsafe_b64encode(key).decode('ascii')}"
            for role, key in zip(
                ("signing", *("accepted",) * (len(self._keys()) - 1)), self._keys(), strict=True
            )
        ]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_text(cls, text: str, *, what: str = "the key file") -> Keyring:
        """Read the text format; errors name lines, never their content."""
        lines = [
            (number, line.strip())
            for number, line in enumerate(text.splitlines(), start=1)
            if line.strip() and not line.lstrip().startswith("#")
        ]
        if not lines or lines[0][1] != _HEADER:
            raise KeyringError(
                f"{what} is not an odeion-archive key file (its first line must be "
                f"{_HEADER!r}); choose a file that 'odeion-archive key export' wrote"
            )
        signing: list[bytes] = []
        accepted: list[bytes] = []
        for number, line in lines[1:]:
            fields = line.split()
            if len(fields) != 3 or fields[0] not in _ROLES:
                raise KeyringError(
                    f"{what}, line {number}: expected 'signing|accepted KEY-ID KEY'; "
                    "the file is damaged, export the key again"
                )
            role, wanted_id, encoded = fields
            try:
                key = base64.urlsafe_b64decode(encoded.encode("ascii"))
            except (binascii.Error, UnicodeEncodeError, ValueError):
                key = b""
            if len(key) != KEY_BYTES or key_id(key) != wanted_id:
                raise KeyringError(
                    f"{what}, line {number}: the key does not match its key id; "
                    "the file is damaged, export the key again"
                )
            (signing if role == "signing" else accepted).append(key)
        if len(signing) != 1:
            raise KeyringError(
                f"{what} names {len(signing)} signing keys, not one; "
                "the file is damaged, export the key again"
            )
        return cls(signing[0], tuple(accepted))


def authenticity_of(manifest: Manifest, keyring: Keyring | None) -> Authenticity:
    """Whether this server (``keyring``; ``None``: it holds no key yet) made the archive.

    ``own``: a MAC that checks out under a key of ``keyring``. ``tampered``: the
    id of a key of ``keyring`` with a MAC that does not match, so the manifest
    changed after this server sealed it. ``foreign``: no MAC (an archive from
    elsewhere, or one made before archives were sealed) or another server's key.
    """
    seal = manifest.authentication
    if seal is None or keyring is None:
        return "foreign"
    key = keyring._key(seal.key_id)  # noqa: SLF001 - the one place that decides
    if key is None:
        return "foreign"
    return "own" if hmac.compare_digest(_mac(key, manifest), seal.mac) else "tampered"


# -- files -------------------------------------------------------------------------


def read_keyring(source: Path | str | IO[str] | IO[bytes], *, what: str | None = None) -> Keyring:
    """Read a key file (a path, or an open text or binary stream)."""
    if isinstance(source, str | Path):
        what = what or f"the key file {source}"
        try:
            with Path(source).open("rb") as stream:
                data: str | bytes = stream.read(_MAX_TEXT + 1)
        except OSError as exc:
            raise KeyringError(
                f"cannot read {what}: {exc.strerror}; check the path and its permissions"
            ) from exc
    else:
        what = what or "the key given"
        data = source.read(_MAX_TEXT + 1)
    if len(data) > _MAX_TEXT:
        raise KeyringError(f"{what} is larger than {_MAX_TEXT} bytes; it is not a key file")
    if isinstance(data, bytes):
        try:
            data = data.decode("ascii")
        except UnicodeDecodeError:
            raise KeyringError(
                f"{what} is not an odeion-archive key file (it is not ASCII text)"
            ) from None
    return Keyring.from_text(data, what=what)


def _write_fd(fd: int, keyring: Keyring) -> None:
    os.fchmod(fd, _FILE_MODE)  # whatever the umask
    with os.fdopen(fd, "w", encoding="ascii") as stream:
        stream.write(keyring.to_text())
        stream.flush()
        os.fsync(stream.fileno())


def write_new(path: Path, keyring: Keyring) -> None:
    """Write ``keyring`` to a new file at ``path`` (mode 0600); never overwrite one."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, _FILE_MODE)
    except FileExistsError:
        raise KeyringError(
            f"{path} already exists; the key is never written over a file, name a new one"
        ) from None
    except OSError as exc:
        raise KeyringError(f"cannot create {path}: {exc.strerror}; check the directory") from exc
    try:
        _write_fd(fd, keyring)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def save(path: Path, keyring: Keyring) -> None:
    """Replace the key file at ``path`` with ``keyring`` atomically (mode 0600)."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    write_new(temp, keyring)
    try:
        temp.replace(path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def load(path: Path) -> Keyring | None:
    """The keyring in the key file at ``path``; ``None`` if there is none yet."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if stat.S_IMODE(mode) & 0o077:
        _log.warning(
            "the archive key file %s could be read by other users; restricting it to mode 0600",
            path,
        )
        with contextlib.suppress(OSError):
            path.chmod(_FILE_MODE)
    return read_keyring(path, what=f"the archive key file {path}")


def load_or_create(path: Path) -> Keyring:
    """The keyring at ``path``, created with a new random key on first use."""
    found = load(path)
    if found is not None:
        return found
    path.parent.mkdir(parents=True, exist_ok=True)
    keyring = Keyring.generate()
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    write_new(temp, keyring)
    try:
        os.link(temp, path)  # never replaces a key another process created meanwhile
    except FileExistsError:
        found = load(path)
        assert found is not None
        return found
    finally:
        temp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    _log.info("created the archive key of %s (key id %s)", path.parent, keyring.key_id)
    return keyring
