"""The format plugin author's kit: what the built-in zip and tar.zst formats are made of.

A format plugin (see :doc:`plugins`) needs the core's rules for member names,
a seal over the bytes it writes, bounded reads and a strict tar parser. This
module exports them, so that a plugin need not copy them:

Indexed tar
    :class:`IndexedTarWriter` and :class:`IndexedTarReader` are the whole of
    a format that cuts a tar stream into independently compressed frames with
    an index of member offsets (the layout of the built-in tar.zst): a plugin
    says how to make a stored header frame, a data frame and the trailer, and
    how to read the trailer and decompress a range of frames
    (:class:`DecompressedRange` does that for :mod:`lzma`, :mod:`bz2` and
    :mod:`zlib`). The pieces below are what they are made of.
Writing
    :func:`check_member_name` applies the core's member-name rules (and, given
    the set of names written so far, refuses duplicates);
    :func:`sized_pieces` cuts a member's chunks into pieces of at most 1 MiB
    and enforces an announced size; :class:`SealedOutput` writes, counts and
    hashes the archive's bytes and rewrites a header in place (a tar header
    whose size is known only once a streamed member ends: the first write
    after ``mark_rewrite()``, as long) with the seal still right (what it
    reads back to seal is checked against what was written); its
    ``prefix()`` is the :class:`~odeion_archive.interfaces.ContainerPrefix`
    a writer returns from ``add`` where its reader reads members from the
    start; :func:`spooled` stages a member of unknown size for an output that
    cannot seek; :func:`index_json` and :data:`INDEX_FOOTER` write an index of
    member offsets with its sealed footer.
Reading
    :class:`TarReader` and :func:`walk_tar` parse a tar stream from any source
    of decompressed bytes, bounded (pax headers, chunk sizes, member count),
    report each entry's true kind, and refuse a regular member whose mode,
    owner or pax records are not plain; :func:`read_index` reads an index
    bounded and strictly; :func:`sha256_range` recomputes a seal.

What a writer raises
    :class:`~odeion_archive.errors.UnsafeArchiveError` for a name the readers
    would refuse (:func:`check_member_name`);
    :class:`~odeion_archive.errors.BackupFailedError` for a name already
    written, a member that differs from its announced size
    (:func:`sized_pieces`) and a writer used after ``close()``.
What a reader raises
    :class:`~odeion_archive.errors.CorruptArchiveError` for damaged data
    (checksums, truncation, malformed records: the decompressor's own errors
    translated), :class:`~odeion_archive.errors.UnsafeArchiveError` for what
    it refuses (limits exceeded, unsafe names, modes or kinds), and
    :class:`~odeion_archive.errors.ManifestError` from ``read_member`` for a
    member that is absent. The core turns any other exception escaping a
    reader into a :class:`~odeion_archive.errors.CorruptArchiveError` naming
    the format and its module, but a plugin should translate its
    decompressor's errors itself.

Every message about a bad container ends with :data:`ADVICE`.
"""

from __future__ import annotations

from odeion_archive._names import ADVICE, MAX_NAME_BYTES, check_name
from odeion_archive.formats._common import (
    PIECE,
    SealedOutput,
    check_new_name,
    closed_writer,
    sha256_range,
    sized_pieces,
    spooled,
    too_many_members,
)
from odeion_archive.formats._index import FOOTER as INDEX_FOOTER
from odeion_archive.formats._index import Index, index_bound, index_json, read_index
from odeion_archive.formats._indexed_tar import (
    Compressor,
    DecompressedRange,
    IndexedTarReader,
    IndexedTarWriter,
)
from odeion_archive.formats._tar import (
    BLOCK as TAR_BLOCK,
)
from odeion_archive.formats._tar import (
    END_OF_ARCHIVE as TAR_END_OF_ARCHIVE,
)
from odeion_archive.formats._tar import (
    USTAR_MAGIC,
    ByteSource,
    TarMember,
    TarReader,
    tar_header,
    tar_padding,
    walk_tar,
)

__all__ = [
    "ADVICE",
    "INDEX_FOOTER",
    "MAX_NAME_BYTES",
    "PIECE",
    "TAR_BLOCK",
    "TAR_END_OF_ARCHIVE",
    "USTAR_MAGIC",
    "ByteSource",
    "Compressor",
    "DecompressedRange",
    "Index",
    "IndexedTarReader",
    "IndexedTarWriter",
    "SealedOutput",
    "TarMember",
    "TarReader",
    "check_member_name",
    "closed_writer",
    "index_bound",
    "index_json",
    "read_index",
    "sha256_range",
    "sized_pieces",
    "spooled",
    "tar_header",
    "tar_padding",
    "too_many_members",
    "walk_tar",
]


def check_member_name(path: str, written: set[str] | None = None) -> str:
    """Return ``path`` if the core accepts it as a member name, else raise.

    The rules are the readers' (see :mod:`odeion_archive._names`): a plain
    relative path of ASCII letters, digits, ``.``, ``_``, ``-`` and ``+``, at
    most 1024 bytes, no part ending in a dot, no Windows device name. Raises
    :class:`~odeion_archive.errors.UnsafeArchiveError` saying what is wrong.

    With ``written`` (the writer's own set, empty at first), also refuses a
    name equal to one already written once normalised (NFKC, case-folded) with
    :class:`~odeion_archive.errors.BackupFailedError`, and records ``path`` in it.
    """
    if written is None:
        return check_name(path)
    check_new_name(path, written)
    return path
