"""The cost of encryption: one large member written plain and encrypted with age.

Writes an archive of one synthetic member (``--gib`` GiB of incompressible
bytes, as a compressed pg_dump is) through the archive builder, in each format,
plain and encrypted to an X25519 recipient, then reads the encrypted one back
decrypted. Each run is a child process, so that its peak memory (RSS) is its
own. Prints seconds, the ratio to the plain run and the peak RSS; asserts
nothing: the numbers are for people to read.

    python benchmarks/bench_age.py --gib 10
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pyrage

_CHILD = r"""
import datetime as dt, hashlib, json, os, sys, time
args = json.loads(sys.argv[1])
from odeion_archive.testing import peak_rss
from odeion_archive import Registry
from odeion_archive._age import AgeIdentities, AgeRecipients
from odeion_archive._archive import ArchiveBuilder, ArchiveFile
from odeion_archive._encrypted import EncryptedArchive, Encryptor
from odeion_archive._manifest import ComponentEntry, Manifest

registry = Registry.default(entry_points=False)
fmt = registry.format(args["format"])
size = int(args["gib"] * 2**30)
# Incompressible, reused; in pieces of 1 MiB, as full_db reads pg_dump's output.
block = hashlib.shake_256(b"odeion").digest(2**20)

def chunks():
    done = 0
    while done < size:
        piece = block[: min(len(block), size - done)]
        done += len(piece)
        yield piece

started = time.perf_counter()
if args["op"] == "write":
    head = Manifest(created_at=dt.datetime.now(dt.UTC), library_version="bench",
                    server_version="bench", schema_version=2, format=fmt.name,
                    components=(ComponentEntry("full_db", 1),))
    encryptor = Encryptor(AgeRecipients.to(args["recipient"])) if args["encrypted"] else None
    with open(args["path"], "wb") as stream:
        builder = ArchiveBuilder(fmt, stream, head=head, encryptor=encryptor)
        builder.add_member("full_db", "database.dump", chunks())
        builder.finish()
        stream.flush()
        os.fsync(stream.fileno())
else:
    archive = ArchiveFile.open(args["path"], registry)
    source = (EncryptedArchive.open(archive, AgeIdentities.from_text(args["identity"]))
              if args["encrypted"] else archive)
    with source, source.open_member("full_db/database.dump") as member:
        while member.read(1 << 20):
            pass
print(json.dumps({"seconds": time.perf_counter() - started, "rss": peak_rss()}))
"""


def _child(**args: Any) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(args)],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(completed.stderr)
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gib", type=float, default=1.0, help="the member's size in GiB")
    parser.add_argument("--formats", default="tar.zst,zip")
    parser.add_argument("--workdir", type=Path, default=None)
    options = parser.parse_args()

    identity = pyrage.x25519.Identity.generate()
    keys = {"identity": str(identity), "recipient": str(identity.to_public())}
    with tempfile.TemporaryDirectory(dir=options.workdir) as work:
        for fmt in options.formats.split(","):
            path = str(Path(work) / f"bench.{fmt}")
            common = {"format": fmt, "gib": options.gib, "path": path, **keys}
            plain = _child(op="write", encrypted=False, **common)
            plain_read = _child(op="read", encrypted=False, **common)
            encrypted = _child(op="write", encrypted=True, **common)
            encrypted_read = _child(op="read", encrypted=True, **common)
            for name, base, run in (
                ("write", plain, encrypted),
                ("read", plain_read, encrypted_read),
            ):
                print(
                    f"{fmt:8} {name:5} {options.gib:g} GiB: plain {base['seconds']:.1f} s "
                    f"({base['rss'] / 2**20:.0f} MiB RSS), encrypted {run['seconds']:.1f} s "
                    f"({run['rss'] / 2**20:.0f} MiB RSS), ratio {run['seconds'] / base['seconds']:.2f}"
                )


if __name__ == "__main__":
    main()
