"""Archive files for the target tests, written by the core's own writer (no database)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from odeion_archive import Registry
from odeion_archive.testing import ArchiveBuilder, head_manifest, write_archive

_COUNTER = iter(range(10**6))


def make_archive(store: Path, fmt: str = "zip", payload: int = 1 << 20) -> Path:
    """An archive in ``store`` (a data directory's ``backups``) named as the store names them.

    Names sort in the order they were made, as the store's names do.
    """
    format_ = Registry.default(entry_points=False).format(fmt)
    store.mkdir(parents=True, exist_ok=True)
    number = next(_COUNTER)
    path = store / f"odeion-backup-20260102T03{number:04d}Z-{secrets.token_hex(4)}{format_.suffix}"
    with path.open("w+b") as stream:
        write_archive(format_, stream, {"full_db": {"database.dump": os.urandom(payload)}})
    return path


def make_large_archive(store: Path, mebibytes: int) -> Path:
    """A tar.zst archive of ``mebibytes`` MiB of incompressible data, written streaming."""
    format_ = Registry.default(entry_points=False).format("tar.zst")
    store.mkdir(parents=True, exist_ok=True)
    number = next(_COUNTER)
    path = store / f"odeion-backup-20260102T04{number:04d}Z-{secrets.token_hex(4)}{format_.suffix}"
    chunks = (os.urandom(1024 * 1024) for _ in range(mebibytes))
    with path.open("w+b") as stream:
        builder = ArchiveBuilder(format_, stream, head=head_manifest(format_, ("full_db",)))
        builder.add_member("full_db", "database.dump", chunks)
        builder.set_facts("full_db", {"files": 1})
        builder.finish()
    return path
