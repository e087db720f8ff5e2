"""Writing an archive: the head manifest, the members as they stream, the tail manifest.

:class:`ArchiveBuilder` writes an archive through any
:class:`~odeion_archive.interfaces.ArchiveFormat`: the head manifest first, the
members as they are streamed (their size and sha256 computed on the way), and
the tail manifest last.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any

import attrs

from odeion_archive import _names, _safejson
from odeion_archive._keys import Keyring
from odeion_archive._manifest import (
    AUTHENTICATED_SINCE,
    ENCRYPTED_MANIFEST,
    ENCRYPTED_SINCE,
    ENCRYPTED_SUFFIX,
    HEAD_MEMBER,
    IDENTITY_MEMBER,
    TAIL_MEMBER,
    ContainerPrefix,
    Manifest,
    MemberEntry,
)
from odeion_archive.errors import BackupFailedError
from odeion_archive.interfaces import ArchiveFormat

if TYPE_CHECKING:
    from odeion_archive._encrypted import Encryptor

__all__ = ["ArchiveBuilder"]


class ArchiveBuilder:
    """Writes one archive: ``add_member`` for each member, ``set_facts``, then ``finish``.

    ``head`` is the manifest as known before any member is written: its
    components list no members and no facts yet. The head manifest is written
    at once; :meth:`finish` writes the tail manifest and closes the container.
    The builder hands the format's writer one member after another; the writer
    writes sequentially, and may seek back on a seekable stream to complete a
    member's header in place (a stream that cannot seek is written straight
    through). With ``keyring`` (the
    server's archive keys), the tail manifest carries the seal that makes the
    archive this server's own. With ``encryptor``, every member is written as
    an age file (see :mod:`odeion_archive._encrypted`).
    """

    def __init__(
        self,
        fmt: ArchiveFormat,
        stream: IO[bytes],
        *,
        head: Manifest,
        keyring: Keyring | None = None,
        encryptor: Encryptor | None = None,
    ) -> None:
        if head.format != fmt.name:
            raise BackupFailedError(
                f"the manifest names the format {head.format!r} but the archive is written as "
                f"{fmt.name!r}; build the head manifest with format={fmt.name!r}"
            )
        for component in head.components:
            if component.members or component.facts:
                raise BackupFailedError(
                    f"the head manifest already lists members or facts for component "
                    f"{component.name!r}; pass components without them, the builder adds them"
                )
        if keyring is not None and (
            head.manifest_version < AUTHENTICATED_SINCE or head.authentication is not None
        ):
            raise BackupFailedError(
                f"a sealed archive needs a head manifest of version "
                f"{AUTHENTICATED_SINCE[0]}.{AUTHENTICATED_SINCE[1]} or later without "
                "'authentication'; the builder adds the seal"
            )
        if encryptor is not None and head.manifest_version < ENCRYPTED_SINCE:
            raise BackupFailedError(
                f"an encrypted archive needs a head manifest of version "
                f"{ENCRYPTED_SINCE[0]}.{ENCRYPTED_SINCE[1]} or later"
            )
        self._keyring = keyring
        self._encryptor = encryptor
        self._stored: dict[str, list[MemberEntry]] = {c.name: [] for c in head.components}
        self._own: list[MemberEntry] = []
        self._head = head
        self._writer = fmt.open_writer(stream)
        self._members: dict[str, list[MemberEntry]] = {c.name: [] for c in head.components}
        self._facts: dict[str, Mapping[str, Any]] = {}
        self._finished = False
        self._write(HEAD_MEMBER, [head.head_json()], len(head.head_json()))
        if encryptor is not None and encryptor.identity_file is not None:
            self._own.append(self._written(IDENTITY_MEMBER, [encryptor.identity_file]))

    def _write(
        self, path: str, chunks: Iterable[bytes], size: int | None
    ) -> ContainerPrefix | None:
        """Write a member; the container's bytes through it, if the format returns them."""
        prefix = self._writer.add(path, chunks, size=size)
        return prefix if isinstance(prefix, ContainerPrefix) else None

    def _written(self, path: str, chunks: Iterable[bytes]) -> MemberEntry:
        """Write ``chunks`` as the member ``path``; its entry (size and sha256)."""
        digest = hashlib.sha256()
        counted = [0]

        def hashing() -> Iterator[bytes]:
            for chunk in chunks:
                digest.update(chunk)
                counted[0] += len(chunk)
                yield chunk

        prefix = self._write(path, hashing(), None)
        return MemberEntry(path, counted[0], digest.hexdigest(), prefix)

    def add_member(
        self, component: str, name: str, chunks: Iterable[bytes], *, size: int | None = None
    ) -> MemberEntry:
        """Stream the member ``<component>/<name>`` into the archive; return its entry.

        ``size``, when known in advance, lets formats that need it up front
        (tar.zst) stream without spooling; a wrong ``size`` is an error.
        """
        if self._finished:
            raise BackupFailedError(
                f"cannot add {component}/{name}: the archive is finished; add members first"
            )
        if component not in self._members:
            raise BackupFailedError(
                f"component {component!r} is not in the head manifest (it has "
                f"{', '.join(self._members) or 'none'}); add it to the head manifest first"
            )
        path = f"{component}/{name}"
        problem = _names.name_problem(path)
        if problem is not None:
            raise BackupFailedError(
                f"cannot write a member named {path!r}: it {problem}; rename it (member "
                "names are plain relative paths)"
            )
        digest = hashlib.sha256()
        counted = [0]

        def hashing() -> Iterator[bytes]:
            for chunk in chunks:
                digest.update(chunk)
                counted[0] += len(chunk)
                yield chunk

        prefix = None
        if self._encryptor is None:
            prefix = self._write(path, hashing(), size)
        else:
            stored = self._written(path + ENCRYPTED_SUFFIX, self._encryptor.encrypt(hashing()))
            self._stored[component].append(stored)
            prefix = stored.prefix  # the ciphertext's: it decrypts to the member
        entry = MemberEntry(path, counted[0], digest.hexdigest(), prefix)
        self._members[component].append(entry)
        return entry

    def set_facts(self, component: str, facts: Mapping[str, Any]) -> None:
        """Record the facts of ``component`` (JSON data) for the tail manifest."""
        if component not in self._members:
            raise BackupFailedError(
                f"component {component!r} is not in the head manifest; add it there first"
            )
        try:
            _safejson.dumps(facts)
        except (TypeError, ValueError) as exc:
            raise BackupFailedError(
                f"the facts of component {component!r} are not JSON data ({exc}); "
                "return only dicts, lists, strings, finite numbers, booleans and None"
            ) from exc
        self._facts[component] = dict(facts)

    def finish(self) -> Manifest:
        """Write the tail manifest, close the container, and return the whole manifest.

        Of an encrypted archive, the manifest it shows without the key.
        """
        if self._finished:
            raise BackupFailedError("the archive is already finished; build a new one")
        self._finished = True
        components = tuple(
            attrs.evolve(c, members=tuple(self._members[c.name]), facts=self._facts.get(c.name, {}))
            for c in self._head.components
        )
        manifest = attrs.evolve(self._head, components=components)
        if self._encryptor is not None:
            # The whole manifest is encrypted; the readable one lists the ciphertexts only.
            own = self._written(ENCRYPTED_MANIFEST, [self._encryptor.encrypt_manifest(manifest)])
            manifest = attrs.evolve(
                self._head,
                components=tuple(
                    attrs.evolve(c, members=tuple(self._stored[c.name]))
                    for c in self._head.components
                ),
                encryption=self._encryptor.record((own, *self._own)),
            )
        if self._keyring is not None:
            # Seal the manifest exactly as a reader will rebuild it from the two members.
            unsigned = Manifest.from_parts(self._head.head_json(), manifest.tail_json())
            manifest = attrs.evolve(unsigned, authentication=self._keyring.sign(unsigned))
        tail = manifest.tail_json()
        self._write(TAIL_MEMBER, [tail], len(tail))
        self._writer.close()
        return manifest
