"""The manifest: what an archive holds, as frozen values.

An archive stores its manifest in two members. ``manifest.json`` comes first
and says what the archive is (versions, time, format, components). Facts known
only once a member is written - its size and sha256, a component's row counts -
live in ``manifest-tail.json``, the last member. Readers treat both as one
:class:`Manifest`; :meth:`Manifest.from_parts` joins them.

(Un)structuring and migration of older versions live in one place,
:mod:`odeion_archive._converter`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

import attrs

from odeion_archive.errors import ManifestError

__all__ = [
    "AUTHENTICATED_SINCE",
    "ENCRYPTED_MANIFEST",
    "ENCRYPTED_SINCE",
    "ENCRYPTED_SUFFIX",
    "HEAD_MEMBER",
    "IDENTITY_MEMBER",
    "MANIFEST_MEMBERS",
    "MANIFEST_VERSION",
    "TAIL_MEMBER",
    "Authentication",
    "ComponentEntry",
    "ContainerPrefix",
    "Encryption",
    "Manifest",
    "MemberEntry",
]

#: The manifest version this library writes, as (major, minor). A reader
#: accepts any minor of a major it knows and refuses a newer major.
MANIFEST_VERSION = (1, 2)
#: The first manifest version that may carry an :class:`Authentication` (in the tail).
AUTHENTICATED_SINCE = (1, 1)
#: The first manifest version that may carry an :class:`Encryption` (in the tail).
ENCRYPTED_SINCE = (1, 2)
HEAD_MEMBER = "manifest.json"
TAIL_MEMBER = "manifest-tail.json"
MANIFEST_MEMBERS = frozenset({HEAD_MEMBER, TAIL_MEMBER})
#: Added to the name of each payload member of an encrypted archive.
ENCRYPTED_SUFFIX = ".age"
#: The whole manifest of an encrypted archive, encrypted.
ENCRYPTED_MANIFEST = "manifest.json.age"
#: A passphrase archive's own identity, encrypted with the passphrase.
IDENTITY_MEMBER = "identity.age"

_SHA256 = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[a-z][a-z0-9_.\-]{0,63}")
_KEY_ID = re.compile(r"[0-9a-f]{16,64}")


def _check_sha256(_inst: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not _SHA256.fullmatch(value):
        raise ManifestError(
            f"manifest field {attribute.name!r}: {value!r} is not a lowercase hex sha256"
        )


def _check_non_negative(_inst: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 0:
        raise ManifestError(f"manifest field {attribute.name!r}: {value} is negative")


def _check_name(_inst: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not _NAME.fullmatch(value):
        raise ManifestError(
            f"manifest field {attribute.name!r}: {value!r} is not a valid name "
            "(lowercase letters, digits, '_', '.', '-', starting with a letter)"
        )


def _check_utc(_inst: object, attribute: attrs.Attribute[dt.datetime], value: dt.datetime) -> None:
    if value.tzinfo is None or value.utcoffset() != dt.timedelta(0):
        raise ManifestError(f"manifest field {attribute.name!r}: {value} is not in UTC")


@attrs.frozen
class ContainerPrefix:
    """The container's bytes from its start through one member, as its writer wrote them.

    A format returns it (see :meth:`ArchiveWriter.add
    <odeion_archive.interfaces.ArchiveWriter.add>`) when its reader reads the
    member from these bytes alone: then one sha256 over the stored, compressed
    bytes vouches for the member without decompressing it. The manifest does
    not list it; a component that wants a restore to check a member this way
    records it in its facts (full_db does, for its dump).
    """

    #: The offset just past the member's last byte in the container.
    end: int = attrs.field(validator=_check_non_negative)
    #: sha256 of the container's bytes ``[0, end)``.
    sha256: str = attrs.field(validator=_check_sha256)


@attrs.frozen
class MemberEntry:
    """One file inside the archive: its path, size in bytes and sha256.

    ``prefix``: on the entry of a member just written, the container's bytes
    through it, where the format returns them; not part of the manifest (a
    manifest read back has none, and two entries that differ only in it are
    equal).
    """

    path: str
    size: int = attrs.field(validator=_check_non_negative)
    sha256: str = attrs.field(validator=_check_sha256)
    prefix: ContainerPrefix | None = attrs.field(default=None, eq=False)


@attrs.frozen
class ComponentEntry:
    """One component of an archive: its payload, and the facts a planner needs.

    ``facts`` is JSON data that the component defines (the full_db component
    records PostgreSQL and pg_dump versions, the JSON components row counts).
    """

    name: str = attrs.field(validator=_check_name)
    payload_version: int = attrs.field(validator=_check_non_negative)
    members: tuple[MemberEntry, ...] = ()
    facts: Mapping[str, Any] = attrs.field(factory=dict, hash=False)

    def member(self, path: str) -> MemberEntry:
        """The member at ``path``; :class:`ManifestError` if it is not listed."""
        for member in self.members:
            if member.path == path:
                return member
        raise ManifestError(
            f"component {self.name!r} lists no member {path!r}; the archive is incomplete"
        )


def _check_key_id(_inst: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not _KEY_ID.fullmatch(value):
        raise ManifestError(
            f"manifest field {attribute.name!r}: {value!r} is not a key id (lowercase hex)"
        )


@attrs.frozen
class Authentication:
    """The archive's seal by the server that made it (manifest version 1.1 on).

    ``mac`` is the HMAC-SHA256, under the key ``key_id`` names, of the whole
    manifest without this field (:meth:`Manifest.to_json`). The key id is
    derived from the key; the key itself is never in an archive.
    """

    key_id: str = attrs.field(validator=_check_key_id)
    mac: str = attrs.field(validator=_check_sha256)


def _check_fingerprints(
    _inst: object, attribute: attrs.Attribute[tuple[str, ...]], value: tuple[str, ...]
) -> None:
    for fingerprint in value:
        if not _KEY_ID.fullmatch(fingerprint):
            raise ManifestError(
                f"manifest field {attribute.name!r}: {fingerprint!r} is not a fingerprint "
                "(lowercase hex)"
            )


def _check_scheme(_inst: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value != "age":
        raise ManifestError(
            f"manifest field {attribute.name!r}: the encryption scheme {value!r} is unknown "
            "(this odeion-archive reads 'age'); upgrade odeion-archive"
        )


def _check_compression(
    _inst: object, attribute: attrs.Attribute[str | None], value: str | None
) -> None:
    if value not in (None, "zstd"):
        raise ManifestError(
            f"manifest field {attribute.name!r}: the compression {value!r} is unknown "
            "(this odeion-archive reads 'zstd'); upgrade odeion-archive"
        )


@attrs.frozen
class Encryption:
    """How an encrypted archive is encrypted (manifest version 1.2 on).

    Every payload member of an encrypted archive is an age file, stored under
    its name with ``.age`` added; the manifest a reader sees without the key
    lists only those ciphertexts (no facts). The whole manifest, with the
    plaintext members and the facts, is the age file ``members[0]``
    (``manifest.json.age``). ``recipients`` are fingerprints of the X25519
    recipients (never the keys); with ``passphrase``, ``members[1]``
    (``identity.age``) is the archive's own identity, encrypted with the
    passphrase (age's scrypt). With ``compression`` ``"zstd"``, each payload
    member was compressed (one zstd frame) before it was encrypted, since
    ciphertext does not compress: ``age -d`` then gives the zstd frame, which
    ``zstd -d`` turns into the member.
    """

    scheme: str = attrs.field(validator=_check_scheme)
    recipients: tuple[str, ...] = attrs.field(default=(), validator=_check_fingerprints)
    passphrase: bool = False
    members: tuple[MemberEntry, ...] = ()
    compression: str | None = attrs.field(default=None, validator=_check_compression)


def _check_encrypted_version(manifest: Manifest) -> None:
    if manifest.encryption is not None and manifest.manifest_version < ENCRYPTED_SINCE:
        raise ManifestError(
            f"manifest field 'encryption' appears in a manifest of version "
            f"{manifest.manifest_version[0]}.{manifest.manifest_version[1]}, older than "
            f"{ENCRYPTED_SINCE[0]}.{ENCRYPTED_SINCE[1]}; the archive is damaged or was edited"
        )


@attrs.frozen
class Manifest:
    """Everything an archive says about itself."""

    created_at: dt.datetime = attrs.field(validator=_check_utc)
    library_version: str
    server_version: str
    schema_version: int = attrs.field(validator=_check_non_negative)
    format: str
    components: tuple[ComponentEntry, ...]
    manifest_version: tuple[int, int] = MANIFEST_VERSION
    #: The seal of the server that made the archive; ``None`` if it carries none.
    authentication: Authentication | None = None
    #: How the archive is encrypted; ``None`` if it is not.
    encryption: Encryption | None = None

    def __attrs_post_init__(self) -> None:
        names = [c.name for c in self.components]
        if len(set(names)) != len(names):
            raise ManifestError(f"manifest field 'components': a name appears twice in {names}")
        _check_encrypted_version(self)
        paths = [m.path for m in self.stored_members]
        if len(set(paths)) != len(paths):
            raise ManifestError("manifest field 'members': a path is listed twice")

    # -- named constructors --------------------------------------------------

    @classmethod
    def from_json(cls, data: bytes | str) -> Manifest:
        """Read a whole manifest from one JSON document (as :meth:`to_json` writes)."""
        from odeion_archive import _converter

        return _converter.manifest_from_json(data)

    @classmethod
    def from_parts(cls, head: bytes, tail: bytes) -> Manifest:
        """Join the ``manifest.json`` and ``manifest-tail.json`` members of an archive."""
        from odeion_archive import _converter

        return _converter.manifest_from_parts(head, tail)

    # -- serialization -------------------------------------------------------

    def to_json(self) -> bytes:
        """The whole manifest as one deterministic JSON document."""
        from odeion_archive import _converter

        return _converter.manifest_to_json(self)

    def head_json(self) -> bytes:
        """The ``manifest.json`` member: the manifest without members and facts."""
        from odeion_archive import _converter

        return _converter.manifest_head_json(self)

    def tail_json(self) -> bytes:
        """The ``manifest-tail.json`` member: members and facts per component (and the seal)."""
        from odeion_archive import _converter

        return _converter.manifest_tail_json(self)

    # -- queries -------------------------------------------------------------

    @property
    def component_names(self) -> tuple[str, ...]:
        """The names of the archive's components, in archive order."""
        return tuple(c.name for c in self.components)

    @property
    def members(self) -> tuple[MemberEntry, ...]:
        """Every payload member of every component, in archive order."""
        return tuple(m for c in self.components for m in c.members)

    @property
    def stored_members(self) -> tuple[MemberEntry, ...]:
        """Every member besides the manifest's own: the payload, then the encryption's."""
        extra = () if self.encryption is None else self.encryption.members
        return self.members + extra

    def has_component(self, name: str) -> bool:
        """Whether the archive holds the component ``name``."""
        return name in self.component_names

    def component(self, name: str) -> ComponentEntry:
        """The component ``name``; :class:`ManifestError` if the archive lacks it."""
        for component in self.components:
            if component.name == name:
                return component
        raise ManifestError(
            f"the archive holds no component {name!r} (it holds: "
            f"{', '.join(self.component_names) or 'none'})"
        )

    def member(self, path: str) -> MemberEntry:
        """The member at ``path`` in any component (or of the encryption)."""
        for member in self.stored_members:
            if member.path == path:
                return member
        raise ManifestError(f"the manifest lists no member {path!r}")
