"""Encrypted archives are proven like any other: drills and verify --all open them with a key."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from odeion_archive import AgeIdentities, AgeRecipients, Archiver
from odeion_archive._schema import migrate
from odeion_archive.sample import SeedScale, seed

pyrage = pytest.importorskip("pyrage", reason="the age extra (pyrage) is not installed")


def _keys(tmp_path: Path) -> tuple[Path, str]:
    identity = pyrage.x25519.Identity.generate()
    path = tmp_path / f"key-{uuid.uuid4().hex[:6]}.txt"
    path.write_text(f"# public key: {identity.to_public()}\n{identity}\n")
    path.chmod(0o600)
    return path, str(identity.to_public())


def test_an_encrypted_archive_is_drilled_with_the_key_and_refused_without(
    module_odeion_db: str, tmp_path: Path
) -> None:
    key, recipient = _keys(tmp_path)
    data = tmp_path / "data"
    made = Archiver(data, database_url=module_odeion_db).create(
        components=["settings", "full_db"], encryption=AgeRecipients.to(recipient)
    )
    name = made.archive.name

    # Without the key (only the data directory's own identity, which is not a recipient).
    without = Archiver(data, database_url=module_odeion_db).drill(name)
    assert not without.passed
    assert without.reason is not None and "key" in without.reason

    with_key = Archiver(
        data, database_url=module_odeion_db, identities=AgeIdentities.from_file(key)
    ).drill(name)
    assert with_key.passed, with_key.reason
    # The row counts were read from the whole (encrypted) manifest, not skipped.
    counts = [c for c in with_key.checks if "row" in c.name or "count" in c.name]
    assert counts and all(c.passed for c in counts)
    assert all("not recorded" not in c.detail for c in counts)


def test_verify_all_checks_the_ciphertexts_without_the_key_and_finds_damage(
    module_odeion_db: str, tmp_path: Path
) -> None:
    _key, recipient = _keys(tmp_path)
    archiver = Archiver(tmp_path / "data", database_url=module_odeion_db)
    info = archiver.create(
        components=["settings"], format="zip", encryption=AgeRecipients.to(recipient)
    ).archive
    assert archiver.verify_all().ok
    data = bytearray(info.path.read_bytes())
    data[len(data) // 3] ^= 0x01
    info.path.write_bytes(bytes(data))
    report = archiver.verify_all()
    assert not report.reports[info.name].ok
    assert report.damaged_since_verified == (info.name,)


@pytest.fixture(scope="module")
def larger_db(pg18: Any) -> Iterator[str]:
    """A database whose dump is a few MiB, so that compression shows."""
    name = f"enc_size_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg18.conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url: str = pg18.database_conninfo(name)
    with psycopg.connect(url) as conn:
        migrate(conn)
        scale = SeedScale(
            users=2_000,
            invite_codes=100,
            api_tokens_per_user=1,
            sessions=1_000,
            settings=20,
            libraries=2,
            media_items=20_000,
            watch_history=60_000,
        )
        seed(conn, scale, seed=3)
    yield url
    with psycopg.connect(pg18.conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.mark.parametrize("fmt", ["tar.zst", "zip"])
def test_an_encrypted_backup_is_compressed_like_a_plain_one(
    larger_db: str, tmp_path: Path, fmt: str
) -> None:
    _key, recipient = _keys(tmp_path)
    archiver = Archiver(tmp_path / "data", database_url=larger_db)
    plain = archiver.create(format=fmt).archive
    encrypted = archiver.create(format=fmt, encryption=AgeRecipients.to(recipient)).archive
    content = sum(m.size for m in archiver.inspect(plain.name).members)
    assert content > 2 << 20
    assert plain.size < content // 2  # the data compresses
    # Ciphertext does not compress: the members were compressed before they were encrypted.
    assert encrypted.size < plain.size * 1.25 + 16 * 1024
