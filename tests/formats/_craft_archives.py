"""Hand-made hostile archives, written without the library's own writer checks."""

from __future__ import annotations

import hashlib
import io
import stat
import struct
import tarfile
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import attrs
import zstandard

from odeion_archive import _safejson
from odeion_archive._manifest import HEAD_MEMBER, TAIL_MEMBER, ComponentEntry, Manifest, MemberEntry
from odeion_archive.formats import _index as indexmod
from odeion_archive.formats import _tarzst_frames as tarzst
from odeion_archive.formats import _zip_records as zipmod
from odeion_archive.testing import FIXED_TIME


def manifest_for(fmt_name: str, files: dict[str, bytes]) -> Manifest:
    """A manifest listing ``files`` (``component/name`` paths) with their sizes and sha256."""
    components: dict[str, list[MemberEntry]] = {}
    for path, data in files.items():
        components.setdefault(path.split("/", 1)[0], []).append(
            MemberEntry(path, len(data), hashlib.sha256(data).hexdigest())
        )
    return Manifest(
        created_at=FIXED_TIME,
        library_version="1.0.0",
        server_version="10.10.0",
        schema_version=1,
        format=fmt_name,
        components=tuple(
            ComponentEntry(name, 1, tuple(members)) for name, members in components.items()
        ),
    )


def with_sizes(manifest: Manifest, sizes: dict[str, int]) -> Manifest:
    """``manifest`` with some members' sizes replaced."""
    return attrs.evolve(
        manifest,
        components=tuple(
            attrs.evolve(
                c, members=tuple(attrs.evolve(m, size=sizes.get(m.path, m.size)) for m in c.members)
            )
            for c in manifest.components
        ),
    )


def craft_zip(
    path: Path, manifest: Manifest, entries: Sequence[tuple[zipfile.ZipInfo | str, bytes]]
) -> None:
    """A zip written by :mod:`zipfile`: head manifest, ``entries``, tail manifest."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are the point of some tests
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(HEAD_MEMBER, manifest.head_json())
            for info, data in entries:
                archive.writestr(info, data)
            archive.writestr(TAIL_MEMBER, manifest.tail_json())


def tar_info(
    name: str, size: int = 0, kind: bytes = tarfile.REGTYPE, **pax: str
) -> tarfile.TarInfo:
    """A tar header; ``pax`` records override what the ustar fields say."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = kind
    info.mode = 0o644
    info.pax_headers = pax
    if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
        info.linkname = "/etc/passwd"
    return info


def _tar_bytes(info: tarfile.TarInfo, data: bytes) -> bytes:
    return info.tobuf(format=tarfile.PAX_FORMAT) + data + bytes(-len(data) % 512)


def _member_frame(
    info: tarfile.TarInfo,
    data: bytes,
    compressor: zstandard.ZstdCompressor,
) -> bytes:
    return compressor.compress(_tar_bytes(info, data))


def craft_tarzst(
    path: Path,
    manifest: Manifest,
    entries: Sequence[tuple[tarfile.TarInfo, bytes]],
    *,
    window_log: int | None = None,
    hidden: Sequence[tuple[tarfile.TarInfo, bytes]] = (),
) -> None:
    """A tar.zst in the library's layout (frames, end frame, index) around ``entries``.

    ``window_log`` compresses the entries with that zstd window. ``hidden``
    entries go into the frame of the last entry, where the index cannot see them.
    """
    normal = zstandard.ZstdCompressor(level=3, write_checksum=True, write_content_size=False)
    special = (
        normal
        if window_log is None
        else zstandard.ZstdCompressor(
            compression_params=zstandard.ZstdCompressionParameters(
                window_log=window_log, write_checksum=True, write_content_size=False
            )
        )
    )
    out = io.BytesIO()
    index: list[list[object]] = []
    head, tail = manifest.head_json(), manifest.tail_json()
    index.append([HEAD_MEMBER, out.tell()])
    out.write(_member_frame(tar_info(HEAD_MEMBER, len(head)), head, normal))
    for number, (info, data) in enumerate(entries):
        name = info.pax_headers.get("path", info.name) + ("/" if info.isdir() else "")
        index.append([name, out.tell()])
        frame = _tar_bytes(info, data)
        if number == len(entries) - 1:
            frame += b"".join(_tar_bytes(i, d) for i, d in hidden)
        streaming = special.compressobj()  # size unknown: the frame declares its window
        out.write(streaming.compress(frame) + streaming.flush())
    index.append([TAIL_MEMBER, out.tell()])
    out.write(_member_frame(tar_info(TAIL_MEMBER, len(tail)), tail, normal))
    end = out.tell()
    out.write(normal.compress(bytes(1024)))
    seal = hashlib.sha256(out.getvalue()).digest()
    raw_index = _safejson.dumps({"end": end, "members": index})
    footer = indexmod.FOOTER.pack(
        hashlib.sha256(raw_index).digest(), seal, len(raw_index), tarzst.FOOTER_MAGIC
    )
    out.write(tarzst.SKIPPABLE.pack(tarzst.SKIPPABLE_MAGIC, len(raw_index) + len(footer)))
    out.write(raw_index + footer)
    path.write_bytes(out.getvalue())


# -- zip containers laid out by hand ---------------------------------------------------


@attrs.frozen
class RawZipMember:
    """One member of a hand-laid zip: its local header fields and the bytes after it.

    ``data`` is what follows the local header up to the next member (compressed
    data, a data descriptor...); ``central`` overrides fields of the central
    directory entry (``offset``, ``name``, ``crc``, ``csize``, ``usize``,
    ``flags``, ``method``, ``extra``, ``comment``, ``mode``).
    """

    name: bytes
    data: bytes
    crc: int
    csize: int
    usize: int
    flags: int = 0x800
    method: int = 8
    local_extra: bytes = b""
    central: dict[str, object] = attrs.field(factory=dict)


def deflated(data: bytes) -> bytes:
    """``data`` as one raw deflate stream."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def plain_zip_member(name: str, data: bytes) -> RawZipMember:
    """A deflated member with its sizes and CRC-32 in the local header (no descriptor)."""
    packed = deflated(data)
    return RawZipMember(name.encode(), packed, zlib.crc32(data), len(packed), len(data))


def local_header(member: RawZipMember) -> bytes:
    """The local header of ``member``, as :mod:`odeion_archive.formats.zip` lays it out."""
    return (
        zipmod.LOCAL.pack(
            zipmod.LOCAL_SIG,
            20,
            member.flags,
            member.method,
            0,
            zipmod.DOS_DATE,
            member.crc,
            member.csize,
            member.usize,
            len(member.name),
            len(member.local_extra),
        )
        + member.name
        + member.local_extra
    )


def raw_zip(path: Path, members: Sequence[RawZipMember], *, stray: bytes = b"") -> None:
    """A sealed zip64 archive of ``members`` laid out exactly as given.

    Local headers and data follow one another; the central directory (each
    entry at its local header's offset unless overridden), the zip64 end
    records and the sealed end record follow, as the library's writer makes
    them. ``stray`` bytes go between the last member and the directory.
    """
    out = io.BytesIO()
    entries: list[bytes] = []
    for member in members:
        offset = out.tell()
        out.write(local_header(member) + member.data)
        fields: dict[str, object] = {
            "offset": offset,
            "name": member.name,
            "crc": member.crc,
            "csize": member.csize,
            "usize": member.usize,
            "flags": member.flags,
            "extra": b"",
            "comment": b"",
            "mode": stat.S_IFREG | 0o644,
        }
        fields.update(member.central)
        name, extra, comment = fields["name"], fields["extra"], fields["comment"]
        assert isinstance(name, bytes)
        assert isinstance(extra, bytes)
        assert isinstance(comment, bytes)
        entries.append(
            zipmod.CENTRAL.pack(
                zipmod.CENTRAL_SIG,
                zipmod.MADE_BY,
                20,
                fields["flags"],
                fields.get("method", member.method),
                0,
                zipmod.DOS_DATE,
                fields["crc"],
                fields["csize"],
                fields["usize"],
                len(name),
                len(extra),
                len(comment),
                0,
                0,
                int(fields["mode"]) << 16,  # type: ignore[call-overload]
                fields["offset"],
            )
            + name
            + extra
            + comment
        )
    out.write(stray)
    central = b"".join(entries)
    cd_offset = out.tell()
    out.write(central)
    count = len(members)
    eocd64_offset = out.tell()
    out.write(
        zipmod.EOCD64.pack(
            zipmod.EOCD64_SIG,
            zipmod.EOCD64.size - 12,
            zipmod.MADE_BY,
            45,
            0,
            0,
            count,
            count,
            len(central),
            cd_offset,
        )
    )
    out.write(zipmod.LOCATOR.pack(zipmod.LOCATOR_SIG, 0, eocd64_offset, 1))
    seal = zipmod.SEAL_PREFIX + hashlib.sha256(out.getvalue()).hexdigest().encode()
    out.write(
        zipmod.EOCD.pack(
            zipmod.EOCD_SIG,
            0,
            0,
            count,
            count,
            len(central),
            cd_offset,
            len(seal),
        )
        + seal
    )
    path.write_bytes(out.getvalue())


def manifest_members(manifest: Manifest) -> tuple[RawZipMember, RawZipMember]:
    """The head and tail manifest members of ``manifest``."""
    return (
        plain_zip_member(HEAD_MEMBER, manifest.head_json()),
        plain_zip_member(TAIL_MEMBER, manifest.tail_json()),
    )


def overlapping_zip(path: Path, copies: int, zeros: int) -> Manifest:
    """The "better zip bomb" (Fifield, 2019): ``copies`` members that share one kernel.

    One deflate stream of ``zeros`` zero bytes (the kernel) ends the last
    member. Each earlier member's data starts right after its own local header
    with a stored deflate block that quotes the next member's local header, so
    its data runs on through every later header into the same kernel. Every
    member has a correct CRC-32, sizes and sha256 in its header, in the central
    directory and in the manifest, and the archive carries a correct seal: only
    the layout betrays it. Returns the manifest, which lists ``copies`` members
    of more than ``zeros`` bytes each.
    """
    kernel = deflated(bytes(zeros))
    members: list[RawZipMember] = []
    entries: list[MemberEntry] = []
    later_headers = b""  # what each member decompresses to before the zeros
    later_data = kernel  # what each member's compressed data is
    quote = b""
    for number in reversed(range(copies)):
        name = f"users_auth/part{number:03d}.jsonl".encode()
        crc = zlib.crc32(bytes(zeros), zlib.crc32(later_headers))
        digest = hashlib.sha256(later_headers)
        digest.update(bytes(zeros))
        usize = len(later_headers) + zeros
        # In the file, a member's header is followed only by the quote of the next
        # header (or, for the last member, the kernel): the rest is shared.
        member = RawZipMember(name, quote or kernel, crc, len(later_data), usize)
        members.insert(0, member)
        entries.insert(0, MemberEntry(name.decode(), usize, digest.hexdigest()))
        header = local_header(member)
        quote = b"\x00" + struct.pack("<HH", len(header), len(header) ^ 0xFFFF)  # stored block
        later_headers = header + later_headers
        later_data = quote + header + later_data
    manifest = Manifest(
        created_at=FIXED_TIME,
        library_version="1.0.0",
        server_version="10.10.0",
        schema_version=1,
        format="zip",
        components=(ComponentEntry("users_auth", 1, tuple(entries)),),
    )
    head, tail = manifest_members(manifest)
    raw_zip(path, [head, *members, tail])
    return manifest


def reindexed_tarzst(path: Path, archive: bytes, index: bytes) -> None:
    """The tar.zst ``archive`` with its index replaced by ``index`` (checksum and seal kept right)."""
    _index_sha, seal, length, magic = indexmod.FOOTER.unpack(archive[-indexmod.FOOTER.size :])
    frame_start = len(archive) - indexmod.FOOTER.size - length - tarzst.SKIPPABLE.size
    footer = indexmod.FOOTER.pack(hashlib.sha256(index).digest(), seal, len(index), magic)
    path.write_bytes(
        archive[:frame_start]
        + tarzst.SKIPPABLE.pack(tarzst.SKIPPABLE_MAGIC, len(index) + len(footer))
        + index
        + footer
    )
