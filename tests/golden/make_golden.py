"""Write the golden archives of manifest versions 1.0, 1.1 and 1.2.

``tests/golden/v1`` holds manifest version 1.0 archives (no seal);
``tests/golden/v1.1`` the same content as 1.1 archives sealed with the fixed
:data:`TEST_KEY`. Run ``python tests/golden/make_golden.py`` to (re)write them.
The archives are committed: the tests read them with the current code, and
check that this script still produces the same bytes with the zlib and zstd
versions recorded in ``versions.json``.

``tests/golden/v1.2`` holds the same content as 1.2 archives, sealed and
encrypted with age to the fixed :data:`TEST_IDENTITY` and with the passphrase
:data:`TEST_PASSPHRASE`. age encrypts with random keys, so these bytes cannot be
reproduced: the script writes them only where they are missing, and the tests
read the committed ones.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import sys
import zlib
from pathlib import Path

import zstandard

from odeion_archive._age import AgeRecipients
from odeion_archive._archive import ArchiveBuilder
from odeion_archive._encrypted import Encryptor
from odeion_archive._keys import Keyring
from odeion_archive._manifest import ComponentEntry, Manifest
from odeion_archive.formats.tarzst import TarZstFormat
from odeion_archive.formats.zip import ZipFormat
from odeion_archive.interfaces import ArchiveFormat

HERE = Path(__file__).parent / "v1"
#: The directory of each manifest version's golden archives.
DIRS = {(1, 0): HERE, (1, 1): Path(__file__).parent / "v1.1"}
#: The fixed key that seals the 1.1 golden archives; a test key, never a server's.
TEST_KEY = bytes(range(32))
#: The directory of the encrypted (1.2) golden archives.
ENCRYPTED_DIR = Path(__file__).parent / "v1.2"
#: The age identity the 1.2 golden archives are encrypted to; a test key, never a server's.
TEST_IDENTITY = "AGE-SECRET-KEY-1D4SHVS979MGJPNGY49QXH2L2NWDHF2SUZYQEVVH2VVM5EZK75QPQHRHMW5"
TEST_RECIPIENT = "age1eaqnptk37g70h88xppmrp2en94uaxgugvsefa9pt92tug6wwrdjqs0t3ra"
#: The passphrase that opens the 1.2 golden archives too.
TEST_PASSPHRASE = "golden archive passphrase"
CREATED_AT = dt.datetime(2026, 1, 15, 12, 30, 0, tzinfo=dt.UTC)
MEMBERS: dict[str, dict[str, bytes]] = {
    "users_auth": {
        "users.jsonl": (
            b'{"id":1,"username":"ana","is_admin":true}\n'
            b'{"id":2,"username":"b\xc3\xa9la","is_admin":false}\n'
        ),
        "sessions.jsonl": b"",
    },
    "settings": {
        "settings.json": b'{"language":"fr","theme":"dark","transcoding":{"threads":4}}\n',
        "libraries.jsonl": b'{"id":1,"name":"Films","path":"/media/films"}\n' * 3,
    },
}
FACTS = {
    "users_auth": {"rows": {"users": 2, "sessions": 0}},
    "settings": {"rows": {"settings": 1, "libraries": 3}},
}
FILES = {"zip": "archive.zip", "tar.zst": "archive.tar.zst"}


class GoldenTarZst(TarZstFormat):
    """tar.zst with the zstd parameters the golden archives were written with.

    They were the default until the default became double-fast matching; an
    archive written either way reads the same, and the golden bytes stay those
    of archives written by earlier releases.
    """

    def _parameters(self) -> zstandard.ZstdCompressionParameters:
        return zstandard.ZstdCompressionParameters(
            strategy=zstandard.STRATEGY_LAZY2,
            window_log=21,
            chain_log=19,
            hash_log=20,
            search_log=3,
            min_match=6,
            target_length=8,
            threads=self.threads,
            write_checksum=True,
            write_content_size=False,
        )


def versions() -> dict[str, str]:
    """The compression libraries whose output the golden bytes depend on."""
    return {
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
        "zstd": ".".join(str(part) for part in zstandard.ZSTD_VERSION),
    }


def build(
    fmt: ArchiveFormat, version: tuple[int, int] = (1, 0), *, encrypted: bool = False
) -> bytes:
    """The golden archive in ``fmt`` of manifest ``version`` (1.1 is sealed with TEST_KEY).

    ``encrypted``: encrypted to TEST_IDENTITY and TEST_PASSPHRASE (version 1.2).
    """
    head = Manifest(
        created_at=CREATED_AT,
        library_version="1.0.0",
        server_version="10.10.3",
        schema_version=7,
        format=fmt.name,
        components=tuple(ComponentEntry(name, 1) for name in MEMBERS),
        manifest_version=version,
    )
    stream = io.BytesIO()
    keyring = Keyring(TEST_KEY) if version >= (1, 1) else None
    encryptor = (
        Encryptor(AgeRecipients.with_passphrase(TEST_PASSPHRASE, TEST_RECIPIENT))
        if encrypted
        else None
    )
    builder = ArchiveBuilder(fmt, stream, head=head, keyring=keyring, encryptor=encryptor)
    for component, files in MEMBERS.items():
        for name, data in files.items():
            builder.add_member(component, name, [data[:20], data[20:]])
        builder.set_facts(component, FACTS[component])
    builder.finish()
    return stream.getvalue()


def main() -> None:
    """Write the archives and the library versions next to them."""
    for version, directory in DIRS.items():
        directory.mkdir(exist_ok=True)
        for fmt in (ZipFormat(), GoldenTarZst()):
            (directory / FILES[fmt.name]).write_bytes(build(fmt, version))
        (directory / "versions.json").write_text(
            json.dumps(versions(), indent=2, sort_keys=True) + "\n"
        )
        sys.stdout.write(f"wrote the golden archives to {directory}\n")
    ENCRYPTED_DIR.mkdir(exist_ok=True)
    for encrypted_fmt in (ZipFormat(), TarZstFormat()):
        path = ENCRYPTED_DIR / FILES[encrypted_fmt.name]
        if not path.exists():
            path.write_bytes(build(encrypted_fmt, (1, 2), encrypted=True))
            sys.stdout.write(f"wrote the encrypted golden archive {path}\n")


if __name__ == "__main__":
    main()
