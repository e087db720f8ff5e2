"""Hand-made hostile archives, written without the library's own writer checks."""

from __future__ import annotations

import hashlib
import io
import tarfile
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import attrs
import zstandard

from odeion_archive import _safejson
from odeion_archive.formats import tarzst
from odeion_archive.manifest import HEAD_MEMBER, TAIL_MEMBER, ComponentEntry, Manifest, MemberEntry
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
    footer = tarzst._FOOTER.pack(
        hashlib.sha256(raw_index).digest(), seal, len(raw_index), tarzst.FOOTER_MAGIC
    )
    out.write(tarzst._SKIPPABLE.pack(tarzst._SKIPPABLE_MAGIC, len(raw_index) + len(footer)))
    out.write(raw_index + footer)
    path.write_bytes(out.getvalue())
