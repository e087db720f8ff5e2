"""Whole archives: writing one member after another, and reading one safely.

:class:`ArchiveBuilder` writes an archive through any
:class:`~odeion_archive.interfaces.ArchiveFormat`: the head manifest first, the
members as they are streamed (their size and sha256 computed on the way), and
the tail manifest last.

:class:`ArchiveFile` reads an archive that nothing vouches for. It recognises
the format from the file's first bytes, reads the manifest with a bounded
number of bytes, and refuses, before any member data is handed out, whatever a
safe reader must: unsafe names, links and other non-regular members, duplicate
names, members the manifest does not list or that are missing, sizes that
disagree. Member data is checked against the manifest's size and sha256 as it
streams, and cut off as soon as it exceeds the listed size.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, cast

from odeion_archive import _names
from odeion_archive._blocks import CheckedBlocks
from odeion_archive._builder import ArchiveBuilder
from odeion_archive._digest import BACKGROUND_BYTES, Sha256
from odeion_archive._keys import Keyring, authenticity_of
from odeion_archive._manifest import (
    HEAD_MEMBER,
    MANIFEST_MEMBERS,
    TAIL_MEMBER,
    ComponentEntry,
    ContainerPrefix,
    Encryption,
    Manifest,
    MemberEntry,
)
from odeion_archive._registry import Registry
from odeion_archive._verify import DAMAGED, MemberCheck, diverged
from odeion_archive.errors import (
    ArchiveInvalidError,
    CorruptArchiveError,
    ManifestError,
    UnsafeArchiveError,
)
from odeion_archive.events import CancelToken, ProgressCallback, null_progress
from odeion_archive.formats import guarded_reader
from odeion_archive.interfaces import ArchiveFormat, ArchiveReader, Authenticity, Entry, ReadLimits
from odeion_archive.results import Problem, VerifyReport

__all__ = ["SNIFF_BYTES", "ArchiveBuilder", "ArchiveFile", "verify_archive"]

#: How many leading bytes of a file the formats are recognised from.
SNIFF_BYTES = 4096


# -- reading ---------------------------------------------------------------------


class _FdView(io.RawIOBase):
    """An independent read position on a shared file descriptor (``pread``)."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        self._pos = 0
        #: The file's first bytes as checked: read from here, never from the file.
        self.checked: CheckedBlocks | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            self._pos = offset
        elif whence == os.SEEK_CUR:
            self._pos += offset
        elif self.checked is not None and self.checked.whole:
            self._pos = self.checked.end + offset
        else:
            self._pos = os.fstat(self._fd).st_size + offset
        self._pos = max(self._pos, 0)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        checked = self.checked
        if checked is not None and self._pos < checked.end:
            # As pread: short only at the end (of what was checked, when that is the file).
            size = min(len(view), checked.end - self._pos)
            data = checked.read(self._pos, size)
            while len(data) < size:
                data += checked.read(self._pos + len(data), size - len(data))
        elif checked is not None and checked.whole:
            data = b""
        else:
            data = os.pread(self._fd, len(view), self._pos)
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)


def _collect(chunks: Iterable[bytes], limit: int, what: str) -> bytes:
    parts: list[bytes] = []
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise CorruptArchiveError(f"{what} holds more than {limit} bytes; {DAMAGED}")
        parts.append(chunk)
    return b"".join(parts)


def _checked(
    chunks: Iterable[bytes], expected: MemberEntry, *, hashed: bool = True
) -> Iterator[bytes]:
    """``chunks``, cut off past the listed size, checked against size and sha256 at the end.

    ``hashed=False``: the bytes they are made from were checked instead (the
    archive's bytes through the member, see :meth:`ArchiveFile.open_checked`).
    """
    done = 0
    with Sha256(background=hashed and expected.size >= BACKGROUND_BYTES) as digest:
        for chunk in chunks:
            done += len(chunk)
            if done > expected.size:
                raise CorruptArchiveError(
                    f"member {expected.path!r} holds more than the {expected.size} bytes the "
                    f"manifest lists; {DAMAGED}"
                )
            if hashed:
                digest.update(chunk)
            yield chunk
        if done != expected.size:
            raise CorruptArchiveError(
                f"member {expected.path!r} holds {done} bytes, the manifest lists "
                f"{expected.size}; {DAMAGED}"
            )
        if hashed and digest.hexdigest() != expected.sha256:
            raise CorruptArchiveError(
                f"member {expected.path!r} does not match the sha256 the manifest lists; {DAMAGED}"
            )


class _MemberStream(io.RawIOBase):
    """A readable stream over a checked chunk iterator."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = chunk
        size = min(len(view), len(self._pending))
        view[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
        super().close()


class ArchiveFile:
    """An archive opened for reading, with every safety check of an untrusted file.

    Open one with :meth:`open`. ``path`` is the file, ``format`` its
    :class:`~odeion_archive.interfaces.ArchiveFormat`, ``manifest`` the joined
    manifest and ``size`` the file's size in bytes. ``authenticity`` says
    whether the server whose keyring :meth:`open` was given made the archive
    (``foreign`` without a keyring).
    """

    def __init__(
        self,
        path: Path,
        fd: int,
        fmt: ArchiveFormat,
        manifest: Manifest,
        manifest_bytes: Mapping[str, bytes],
        limits: ReadLimits,
        authenticity: Authenticity = "foreign",
    ) -> None:
        self.path = path
        self.format = fmt
        self.manifest = manifest
        self.authenticity: Authenticity = authenticity
        self.size = os.fstat(fd).st_size
        self._fd: int | None = fd
        self._manifest_bytes = dict(manifest_bytes)
        self._limits = limits

    # -- opening -------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: Path | str,
        registry: Registry,
        *,
        limits: ReadLimits | None = None,
        keyring: Keyring | None = None,
    ) -> ArchiveFile:
        """Open the archive at ``path``: recognise its format and read its manifest.

        ``keyring`` is the server's archive keys, which decide ``authenticity``.
        Raises :class:`~odeion_archive.errors.ArchiveInvalidError` (or one of its
        subclasses) if the file is not a readable archive.
        """
        limits = ReadLimits() if limits is None else limits
        path = Path(path)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise ArchiveInvalidError(
                f"cannot open the archive {path}: {exc.strerror}; check the path and its "
                "permissions"
            ) from exc
        try:
            fmt, manifest, manifest_bytes = read_manifest(
                os.pread(fd, SNIFF_BYTES, 0),
                cast("IO[bytes]", _FdView(fd)),
                path.name,
                registry,
                limits,
            )
        except BaseException:
            os.close(fd)
            raise
        return cls(
            path, fd, fmt, manifest, manifest_bytes, limits, authenticity_of(manifest, keyring)
        )

    @property
    def limits(self) -> ReadLimits:
        """The limits this archive is read with."""
        return self._limits

    # -- the file ------------------------------------------------------------

    def _open_reader(self, view: _FdView | None = None) -> ArchiveReader:
        if self._fd is None:
            raise ArchiveInvalidError(
                f"the archive {self.path} is closed; open it again to read it"
            )
        view = _FdView(self._fd) if view is None else view
        return guarded_reader(self.format, cast("IO[bytes]", view), self._limits)

    def close(self) -> None:
        """Release the file."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- checks --------------------------------------------------------------

    def _expected(self) -> dict[str, int]:
        sizes = {name: len(data) for name, data in self._manifest_bytes.items()}
        sizes.update((m.path, m.size) for m in self.manifest.stored_members)
        return sizes

    def _entries(self, reader: ArchiveReader) -> list[Entry]:
        """The container's listing, which reads no member data."""
        return list(reader.entries())

    def _listing(self, reader: ArchiveReader) -> list[Entry]:
        """Every entry, checked as a whole before any member data is handed out."""
        entries = self._entries(reader)
        errors = self._listing_errors(entries)
        if errors:
            raise errors[0][0]
        return entries

    def _listing_errors(self, entries: list[Entry]) -> list[tuple[ArchiveInvalidError, str | None]]:
        """Everything wrong with the listing, most dangerous first."""
        if len(entries) > self._limits.max_members:
            return [
                (
                    UnsafeArchiveError(
                        f"the archive holds more than {self._limits.max_members} members; refusing it "
                        "(raise ReadLimits.max_members only for an archive you trust)"
                    ),
                    None,
                )
            ]
        errors: list[tuple[ArchiveInvalidError, str | None]] = []
        for entry in entries:
            try:
                _check_entry(entry)
            except UnsafeArchiveError as exc:
                errors.append((exc, entry.name))
        try:
            _names.check_unique(e.name for e in entries)
        except UnsafeArchiveError as exc:
            errors.append((exc, None))
        expected = self._expected()
        errors.extend(
            (
                UnsafeArchiveError(
                    f"member {entry.name!r} is not listed in the manifest; {DAMAGED}"
                ),
                entry.name,
            )
            for entry in entries
            if entry.name not in expected
        )
        for entry in entries:
            if entry.name in expected and entry.size != expected[entry.name]:
                bigger = "larger" if entry.size > expected[entry.name] else "smaller"
                errors.append(
                    (
                        CorruptArchiveError(
                            f"member {entry.name!r} is {bigger} ({entry.size} bytes) than the manifest "
                            f"lists ({expected[entry.name]}); {DAMAGED}"
                        ),
                        entry.name,
                    )
                )
        present = {e.name for e in entries}
        errors.extend(
            (
                CorruptArchiveError(
                    f"member {name!r} is listed in the manifest but missing; {DAMAGED}"
                ),
                name,
            )
            for name in expected
            if name not in present
        )
        return errors

    def _sources(self, reader: ArchiveReader, listing: list[Entry]) -> Iterator[Any]:
        """The reader's walk, checked entry by entry against the listing."""
        position = 0
        for source in reader.walk():
            entry = source.entry
            _check_entry(entry)
            if position >= len(listing) or listing[position] != entry:
                raise diverged(entry)
            position += 1
            yield source
        if position != len(listing):
            raise CorruptArchiveError(
                f"the archive's stream ends before {listing[position].name!r}; {DAMAGED}"
            )

    # -- reading members -----------------------------------------------------

    def walk(self) -> Generator[tuple[MemberEntry, Iterator[bytes]], None, None]:
        """Every payload member, in archive order, with an iterator of its checked bytes.

        The chunks of one member must be consumed before the walk advances. A
        member whose bytes do not match the manifest raises
        :class:`~odeion_archive.errors.CorruptArchiveError` naming it, as soon as
        it exceeds its listed size, or at its end for a size or sha256 mismatch.
        """
        return self._walk()

    def _walk(
        self, checked: CheckedBlocks | None = None, unhashed: str | None = None
    ) -> Generator[tuple[MemberEntry, Iterator[bytes]], None, None]:
        """:meth:`walk`, reading the file through ``checked`` if given.

        ``unhashed``: a member not hashed, as the bytes it is made from were checked.
        """
        if self._fd is None:
            raise ArchiveInvalidError(
                f"the archive {self.path} is closed; open it again to read it"
            )
        view = _FdView(self._fd)
        view.checked = checked
        reader = self._open_reader(view)
        try:
            listing = self._listing(reader)
            for source in self._sources(reader, listing):
                name = source.entry.name
                if name in MANIFEST_MEMBERS:
                    data = _collect(source.chunks(), len(self._manifest_bytes[name]), name)
                    if data != self._manifest_bytes[name]:
                        raise CorruptArchiveError(
                            f"{name} reads differently in the archive's stream; {DAMAGED}"
                        )
                    continue
                expected = self.manifest.member(name)
                yield expected, _checked(source.chunks(), expected, hashed=name != unhashed)
        finally:
            reader.close()

    def read_small_member(self, path: str) -> bytes:
        """The whole of a small member (at most ``max_manifest_bytes``), found without a walk.

        Checked against the manifest's size and sha256, like any member.
        """
        expected = self.manifest.member(path)
        if expected.size > self._limits.max_manifest_bytes:
            raise UnsafeArchiveError(
                f"member {path!r} is listed as {expected.size} bytes, more than the "
                f"{self._limits.max_manifest_bytes} bytes a manifest may have; {DAMAGED}"
            )
        reader = self._open_reader()
        try:
            data = reader.read_member(path, self._limits.max_manifest_bytes)
        finally:
            reader.close()
        return b"".join(_checked([data], expected))

    def open_member(self, path: str) -> IO[bytes]:
        """A readable binary stream of the member ``path``.

        Reading raises :class:`~odeion_archive.errors.CorruptArchiveError` if
        the bytes exceed the listed size, or do not match the listed size and
        sha256 by the time the end is reached.
        """
        return self._open_member(path)

    def _open_member(
        self, path: str, checked: CheckedBlocks | None = None, *, hashed: bool = True
    ) -> IO[bytes]:
        self.manifest.member(path)

        def chunks() -> Iterator[bytes]:
            walk = self._walk(checked, None if hashed else path)
            try:
                for entry, member_chunks in walk:
                    if entry.path == path:
                        yield from member_chunks
                        return
            finally:
                walk.close()

        return cast(
            "IO[bytes]", io.BufferedReader(_MemberStream(chunks()), self._limits.chunk_bytes)
        )

    def open_checked(
        self,
        path: str,
        on_bytes: Callable[[int, int], None] | None = None,
        *,
        prefix: ContainerPrefix | None = None,
        plain: Callable[[IO[bytes]], IO[bytes]] | None = None,
    ) -> IO[bytes]:
        """The member ``path``, checked whole now, then read only as it was checked.

        A restore must know a member is the one the manifest lists before it
        uses any of it (a dump, before its first statement runs), and then
        read it again to use it. Where ``prefix`` is given (what the format
        returned when the member was written, see
        :class:`~odeion_archive.interfaces.ContainerPrefix`) and this server
        sealed the archive, the check is one sha256 over the file's first
        ``prefix.end`` bytes, which the reader makes the member from, and the
        member is never decompressed only to be hashed; else (the prefix of an
        archive made elsewhere is its sender's word) the member is read
        through once against its size and sha256. Either way the stream
        returned reads the file only as the check saw it, block by block, so
        bytes changed since are refused before they are used. ``on_bytes`` is
        called with the bytes checked so far and in all; ``plain`` turns the
        member's stream into the one to check and return (decryption).
        Raises :class:`~odeion_archive.errors.CorruptArchiveError` if the
        member differs, now or as it is read.
        """
        if self._fd is None:
            raise ArchiveInvalidError(
                f"the archive {self.path} is closed; open it again to read it"
            )
        fd = self._fd

        def pread(offset: int, size: int) -> bytes:
            return os.pread(fd, size, offset)

        wrap = plain if plain is not None else (lambda stream: stream)
        if prefix is not None and prefix.end > 0 and self.authenticity == "own":
            checked = None
            if prefix.end <= self.size:
                checked = CheckedBlocks.take(pread, prefix.end, prefix.sha256, on_bytes)
            if checked is None:
                raise _prefix_differs(prefix, path)
            return wrap(self._open_member(path, checked, hashed=False))
        recorded = CheckedBlocks.recording(pread, self.size)
        size = self.manifest.member(path).size
        with wrap(self._open_member(path, recorded)) as first:
            read_through(first, size, on_bytes, self._limits.chunk_bytes)
        return wrap(self._open_member(path, recorded.replay(), hashed=False))

    # -- verification --------------------------------------------------------

    def verify(
        self, progress: ProgressCallback | None = None, cancel: CancelToken | None = None
    ) -> VerifyReport:
        """Check the container and every member against the manifest; report each problem."""
        progress = progress or null_progress
        reader = self._open_reader()
        try:
            problems = [Problem(None, message) for message in reader.container_problems()]
            problems += self._verify_members(reader, progress, cancel)
        finally:
            reader.close()
        return VerifyReport(tuple(problems))

    def check_container(self) -> VerifyReport:
        """Check the container (seal, structure) and its listing, without unpacking members.

        Cheaper than :meth:`verify`: the seal covers every byte of the
        archive, so this notices any damage, while members are checked against
        their sha256 only as they are read.
        """
        reader = self._open_reader()
        try:
            problems = [Problem(None, message) for message in reader.container_problems()]
            try:
                listing = self._entries(reader)
            except ArchiveInvalidError as exc:
                problems.append(Problem(None, str(exc)))
            else:
                problems += [
                    Problem(member, str(error)) for error, member in self._listing_errors(listing)
                ]
        finally:
            reader.close()
        return VerifyReport(tuple(problems))

    def _verify_members(
        self, reader: ArchiveReader, progress: ProgressCallback, cancel: CancelToken | None
    ) -> list[Problem]:
        try:
            listing = self._entries(reader)
        except ArchiveInvalidError as exc:
            return [Problem(None, str(exc))]
        listed = {m.path: m for m in self.manifest.stored_members}
        listed.update(
            (name, MemberEntry(name, len(data), hashlib.sha256(data).hexdigest()))
            for name, data in self._manifest_bytes.items()
        )
        check = MemberCheck(listed, progress, cancel)
        check.problems += [
            Problem(member, str(error)) for error, member in self._listing_errors(listing)
        ]
        return check.run(reader.walk(), listing)


def _prefix_differs(prefix: ContainerPrefix, path: str) -> CorruptArchiveError:
    return CorruptArchiveError(
        f"the first {prefix.end} bytes of the archive (through member {path!r}) differ from "
        f"those its manifest records; {DAMAGED}"
    )


def read_through(
    stream: IO[bytes], size: int, on_bytes: Callable[[int, int], None] | None, chunk: int
) -> None:
    """Read ``stream`` (of ``size`` bytes) to its end, ``chunk`` at a time, reporting progress."""
    done = 0
    while data := stream.read(chunk):
        done += len(data)
        if on_bytes is not None:
            on_bytes(done, size)


def _check_entry(entry: Entry) -> None:
    _names.check_name(entry.name)
    if entry.kind != "file":
        raise UnsafeArchiveError(
            f"member {entry.name!r} is a {entry.kind}; odeion archives hold only regular "
            f"files, so {DAMAGED}"
        )


def read_manifest(
    head: bytes, stream: IO[bytes], name: str, registry: Registry, limits: ReadLimits
) -> tuple[ArchiveFormat, Manifest, dict[str, bytes]]:
    """The format, manifest and manifest members' bytes of the archive ``stream`` holds.

    ``head`` is its first :data:`SNIFF_BYTES`; ``stream`` is read with bounded
    reads only (a local file, or ranged reads of a copy on a storage target).
    """
    fmt = registry.format_of(head)
    if fmt is None:
        known = ", ".join(sorted(registry.formats())) or "none"
        raise ArchiveInvalidError(
            f"{name} is not an archive in any known format (known: {known}); "
            "choose an archive that odeion-archive wrote, or install the plugin of its format"
        )
    reader = guarded_reader(fmt, stream, limits)
    try:
        raw = {
            member: reader.read_member(member, limits.max_manifest_bytes)
            for member in (HEAD_MEMBER, TAIL_MEMBER)
        }
    finally:
        reader.close()
    manifest = Manifest.from_parts(raw[HEAD_MEMBER], raw[TAIL_MEMBER])
    if manifest.format != fmt.name:
        raise ManifestError(
            f"manifest field 'format' says {manifest.format!r} but the file is a "
            f"{fmt.name!r} archive; {DAMAGED}"
        )
    _check_manifest_paths(manifest.components, manifest.encryption)
    return fmt, manifest, raw


def _check_manifest_paths(
    components: Iterable[ComponentEntry], encryption: Encryption | None = None
) -> None:
    paths = list(MANIFEST_MEMBERS)
    for member in () if encryption is None else encryption.members:
        # The encryption's own members (the encrypted manifest) lie at the top level.
        try:
            _names.check_name(member.path)
        except UnsafeArchiveError as exc:
            raise ManifestError(f"manifest field 'encryption': {exc}") from None
        if "/" in member.path or member.path in MANIFEST_MEMBERS:
            raise ManifestError(
                f"manifest field 'encryption': {member.path!r} is not a top-level member; {DAMAGED}"
            )
        paths.append(member.path)
    for component in components:
        for member in component.members:
            try:
                _names.check_name(member.path)
            except UnsafeArchiveError as exc:
                raise ManifestError(f"manifest field 'members': {exc}") from None
            if not member.path.startswith(component.name + "/") or member.path in MANIFEST_MEMBERS:
                raise ManifestError(
                    f"manifest field 'members': {member.path!r} lies outside its component "
                    f"{component.name!r}; {DAMAGED}"
                )
            paths.append(member.path)
    try:
        _names.check_unique(paths)
    except UnsafeArchiveError as exc:
        raise ManifestError(f"manifest field 'members': {exc}") from None


def verify_archive(
    path: Path | str,
    registry: Registry,
    *,
    limits: ReadLimits | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> VerifyReport:
    """Verify the archive at ``path``; an archive that cannot even be opened is one problem."""
    try:
        archive = ArchiveFile.open(path, registry, limits=limits)
    except ArchiveInvalidError as exc:
        return VerifyReport((Problem(None, str(exc)),))
    with archive:
        return archive.verify(progress, cancel)
