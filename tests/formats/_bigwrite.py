"""Child process: stream one large generated member into an archive on stdout.

Prints ``<peak rss bytes> <seconds>`` to stderr. Run as
``python _bigwrite.py <format> <level> <mebibytes> <give-size> [<output file>]``;
without an output file the archive goes to stdout.
"""

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import attrs

from odeion_archive._archive import ArchiveBuilder
from odeion_archive._manifest import ENCRYPTED_SINCE
from odeion_archive.formats.tarzst import TarZstFormat
from odeion_archive.formats.zip import ZipFormat
from odeion_archive.testing import head_manifest, peak_rss

MIB = 1024 * 1024


def generated(mebibytes: int) -> Iterator[bytes]:
    """Text-like, compressible, different in every chunk: JSON lines with counters.

    With ``BIGWRITE_RANDOM`` set: random bytes, which do not compress at all
    (stored blobs, artwork), where compressors hold the most memory.
    """
    if os.environ.get("BIGWRITE_RANDOM"):
        for _ in range(mebibytes):
            yield os.urandom(MIB)
        return
    lines = b"".join(
        b'{"id":%08d,"path":"/media/films/title-%08d.mkv","plays":%d}\n' % (i, i * 7, i % 13)
        for i in range(16_000)
    )
    block = (lines * (MIB // len(lines) + 1))[:MIB]
    for number in range(mebibytes):
        yield b"%08d" % number + block[8:]


def main() -> None:
    name, level, mebibytes, give_size = (
        sys.argv[1],
        int(sys.argv[2]),
        int(sys.argv[3]),
        sys.argv[4] == "1",
    )
    fmt = ZipFormat(level) if name == "zip" else TarZstFormat(level or None)
    start = time.perf_counter()
    out = Path(sys.argv[5]).open("w+b") if len(sys.argv) > 5 else sys.stdout.buffer  # noqa: SIM115
    head = head_manifest(fmt, ("full_db",))
    encryptor = None
    if recipient := os.environ.get("BIGWRITE_ENCRYPT_TO"):  # encrypted with age to it
        from odeion_archive._age import AgeRecipients
        from odeion_archive._encrypted import Encryptor

        encryptor = Encryptor(AgeRecipients.to(recipient))
        head = attrs.evolve(head, manifest_version=ENCRYPTED_SINCE)
    builder = ArchiveBuilder(fmt, out, head=head, encryptor=encryptor)
    builder.add_member(
        "full_db",
        "database.dump",
        generated(mebibytes),
        size=mebibytes * MIB if give_size else None,
    )
    builder.finish()
    out.flush()
    seconds = time.perf_counter() - start
    rss = peak_rss()
    sys.stderr.write(f"{rss} {seconds}\n")


if __name__ == "__main__":
    main()
