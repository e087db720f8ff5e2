"""Encrypted archives (age) through the Archiver, on real PostgreSQL 18 and 15.

Round trips of every mode in both formats, with X25519 recipients and with a
passphrase; what the readable manifest shows; the planner's key_missing and
key_wrong; tampered ciphertext refused before anything changes; a member
decrypted by the age command-line tool alone.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import zstandard
from psycopg import sql

from odeion_archive import AgeIdentities, AgeRecipients, Archiver
from odeion_archive._manifest import HEAD_MEMBER, TAIL_MEMBER
from odeion_archive._schema import migrate
from odeion_archive.errors import (
    ArchiveError,
    CorruptArchiveError,
    DecryptionError,
    RestoreBlockedError,
)
from odeion_archive.events import ProgressEvent
from odeion_archive.sample import SeedScale, seed

Snapshot = Callable[[str], dict[str, list[tuple[Any, ...]]]]
PASSPHRASE = "correct horse battery staple"
JSON_TABLES = ("users", "invite_codes", "api_tokens", "system_settings")


@pytest.fixture
def databases(request: pytest.FixtureRequest) -> Iterator[Callable[..., str]]:
    """Makes databases on a server (migrated, seeded if asked); drops them afterwards."""
    made: list[tuple[Any, str]] = []

    def make(server: Any, *, seeded: bool = True, seed_value: int = 1) -> str:
        name = f"enc_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(server.conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        made.append((server, name))
        url: str = server.database_conninfo(name)
        with psycopg.connect(url) as conn:
            migrate(conn, 2)
            if seeded:
                seed(conn, SeedScale.tiny(), seed=seed_value)
        return url

    yield make
    for server, name in made:
        with psycopg.connect(server.conninfo, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _keys(tmp_path: Path) -> tuple[Path, str]:
    """A new identity file (as age-keygen writes it) and its recipient."""
    import pyrage

    identity = pyrage.x25519.Identity.generate()
    path = tmp_path / f"key-{uuid.uuid4().hex[:6]}.txt"
    path.write_text(f"# public key: {identity.to_public()}\n{identity}\n")
    path.chmod(0o600)
    return path, str(identity.to_public())


def _encryption(way: str, tmp_path: Path) -> tuple[AgeRecipients, AgeIdentities, Path | None]:
    if way == "x25519":
        key, recipient = _keys(tmp_path)
        return AgeRecipients.to(recipient), AgeIdentities.from_file(key), key
    return (
        AgeRecipients.with_passphrase(PASSPHRASE),
        AgeIdentities.from_passphrase(PASSPHRASE),
        None,
    )


def _users(url: str) -> set[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT username, email, password_hash FROM users").fetchall()
    return {tuple(r) for r in rows}


def _settings(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT key, value FROM system_settings").fetchall()
    return {r[0]: json.dumps(r[1]) for r in rows}


def _readable_manifest(path: Path) -> bytes:
    """The manifest members that anyone can read, as standard tools extract them."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return archive.read(HEAD_MEMBER) + archive.read(TAIL_MEMBER)
    with path.open("rb") as raw, tarfile.open(fileobj=_zstd_reader(raw), mode="r|") as archive:
        found = {}
        for info in archive:
            if info.name in (HEAD_MEMBER, TAIL_MEMBER):
                extracted = archive.extractfile(info)
                assert extracted is not None
                found[info.name] = extracted.read()
        return found[HEAD_MEMBER] + found[TAIL_MEMBER]


def _zstd_reader(raw: Any) -> Any:
    import zstandard

    return zstandard.ZstdDecompressor().stream_reader(raw)


# -- round trips -------------------------------------------------------------------


@pytest.mark.parametrize("way", ["x25519", "passphrase"])
@pytest.mark.parametrize("fmt", ["tar.zst", "zip"])
def test_every_mode_round_trips_encrypted(
    pg_server: Any,
    databases: Callable[..., str],
    db_snapshot: Snapshot,
    tmp_path: Path,
    fmt: str,
    way: str,
) -> None:
    source = databases(pg_server)
    expected = db_snapshot(source)
    recipients, identities, _key = _encryption(way, tmp_path)
    info = Archiver(tmp_path, database_url=source).create(format=fmt, encryption=recipients).archive
    readable = info.manifest
    assert readable.encryption is not None
    assert readable.encryption.passphrase == (way == "passphrase")
    assert all(m.path.endswith(".age") for m in readable.members)
    assert all(not c.facts for c in readable.components)

    # Without the key the archive cannot be restored; nothing is decrypted.
    target = databases(pg_server, seed_value=7)
    keyless = Archiver(tmp_path / "elsewhere", database_url=target)
    plan = keyless.plan(info.path, "full_db")
    assert [b.code for b in plan.blockers] == ["key_missing"]

    for mode in ("users_auth", "settings", "everything_json"):
        fresh = databases(pg_server, seeded=False)
        archiver = Archiver(tmp_path / "elsewhere", database_url=fresh, identities=identities)
        plan = archiver.plan(info.path, mode, "overwrite")
        assert plan.can_restore, plan.blockers
        archiver.restore(info.path, mode, "overwrite")
        users = mode in ("users_auth", "everything_json")
        settings = mode in ("settings", "everything_json")
        assert (_users(fresh) == _users(source)) is users
        assert (_settings(fresh) == _settings(source)) is settings

    # The server that made it (its seal makes the dump trusted) restores the whole database.
    archiver = Archiver(tmp_path, database_url=target, identities=identities)
    plan = archiver.plan(info.path, "full_db")
    assert plan.can_restore, plan.blockers
    archiver.restore(info.path, "full_db")
    assert db_snapshot(target) == expected

    report = archiver.verify(info.path)
    assert report.ok, report.problems


def test_the_readable_manifest_reveals_nothing_of_users_or_settings(
    pg18: Any, databases: Callable[..., str], tmp_path: Path
) -> None:
    source = databases(pg18)
    with psycopg.connect(source) as conn:
        conn.execute("UPDATE libraries SET root_paths = ARRAY['/srv/media/secret-movies']")
        secrets = [
            str(value)
            for row in conn.execute("SELECT username, email, password_hash FROM users")
            for value in row
            if value
        ]
        secrets += [
            json.dumps(row[0])
            for row in conn.execute("SELECT value FROM system_settings")
            if len(json.dumps(row[0])) > 6  # not true, false, small numbers
        ]
        assert len(secrets) > 10
    key, recipient = _keys(tmp_path)
    for fmt in ("tar.zst", "zip"):
        info = (
            Archiver(tmp_path, database_url=source)
            .create(format=fmt, encryption=AgeRecipients.to(recipient))
            .archive
        )
        readable = _readable_manifest(info.path)
        assert b"secret-movies" not in readable
        leaked = [s for s in secrets if s.encode() in readable]
        assert not leaked
        assert b"library_roots" not in readable and b"rows" not in readable
        assert recipient.encode() not in readable  # a fingerprint, not the key
        # With the key, the whole manifest has the facts a restore needs.
        whole = Archiver(tmp_path, database_url=source).inspect(
            info.path, identities=AgeIdentities.from_file(key)
        )
        assert whole.component("full_db").facts["library_roots"] == ["/srv/media/secret-movies"]
        assert whole.encryption is None
        raw = info.path.read_bytes()
        assert b"secret-movies" not in raw  # nor anywhere in the file


def test_the_seal_covers_an_encrypted_archive(
    pg18: Any, databases: Callable[..., str], tmp_path: Path
) -> None:
    source = databases(pg18)
    key, recipient = _keys(tmp_path)
    archiver = Archiver(tmp_path, database_url=source, identities=AgeIdentities.from_file(key))
    info = archiver.create(encryption=AgeRecipients.to(recipient)).archive
    assert info.authenticity == "own"
    assert archiver.authenticity(info.name) == "own"
    plan = archiver.plan(info.name, "full_db")
    assert plan.authenticity == "own" and plan.can_restore, plan.blockers


# -- keys ---------------------------------------------------------------------------


def test_key_missing_and_key_wrong_say_what_to_do(
    pg18: Any, databases: Callable[..., str], tmp_path: Path
) -> None:
    source = databases(pg18)
    _key, recipient = _keys(tmp_path)
    other, _ = _keys(tmp_path)
    info = (
        Archiver(tmp_path, database_url=source)
        .create(encryption=AgeRecipients.with_passphrase(PASSPHRASE, recipient))
        .archive
    )
    plan = Archiver(tmp_path, database_url=source).plan(info.name, "everything_json")
    (missing,) = plan.blockers
    assert missing.code == "key_missing"
    assert "--identity" in missing.message and "passphrase" in missing.message

    for wrong in (AgeIdentities.from_file(other), AgeIdentities.from_passphrase("not it")):
        archiver = Archiver(tmp_path, database_url=source, identities=wrong)
        plan = archiver.plan(info.name, "everything_json")
        (blocker,) = plan.blockers
        assert blocker.code == "key_wrong"
        assert "none of the keys given opens it" in blocker.message
        with pytest.raises(RestoreBlockedError):
            archiver.restore(info.name, "everything_json")
        with pytest.raises(DecryptionError) as caught:
            archiver.verify(info.name)
        assert caught.value.code == "key_wrong"
    # Either the identity or the passphrase opens it.
    for right in (AgeIdentities.from_file(_key), AgeIdentities.from_passphrase(PASSPHRASE)):
        plan = Archiver(tmp_path, database_url=source, identities=right).plan(
            info.name, "everything_json", "overwrite"
        )
        assert plan.can_restore, plan.blockers


def test_verify_without_the_key_checks_ciphertexts_and_with_it_plaintexts(
    pg18: Any, databases: Callable[..., str], tmp_path: Path
) -> None:
    source = databases(pg18)
    key, recipient = _keys(tmp_path)
    archiver = Archiver(tmp_path, database_url=source)
    info = archiver.create(encryption=AgeRecipients.to(recipient)).archive
    assert archiver.verify(info.name).ok
    assert archiver.inspect(info.name).encryption is not None  # the readable manifest
    keyed = Archiver(tmp_path, database_url=source, identities=AgeIdentities.from_file(key))
    events: list[str] = []
    report = keyed.verify(info.name, progress=lambda e: events.append(e.phase))
    assert report.ok
    assert "decrypt" in events  # the plaintexts were read and checked


@pytest.mark.parametrize("fmt", ["tar.zst", "zip"])
@pytest.mark.parametrize("mode", ["full_db", "users_auth", "settings"])
def test_tampered_ciphertext_is_refused_before_anything_changes(
    pg18: Any,
    databases: Callable[..., str],
    db_snapshot: Snapshot,
    tmp_path: Path,
    fmt: str,
    mode: str,
) -> None:
    source = databases(pg18)
    key, recipient = _keys(tmp_path)
    identities = AgeIdentities.from_file(key)
    info = (
        Archiver(tmp_path, database_url=source)
        .create(format=fmt, encryption=AgeRecipients.to(recipient))
        .archive
    )
    whole = Archiver(tmp_path, database_url=source, identities=identities).inspect(info.name)
    member = whole.component(mode).members[-1].path + ".age"
    # Flip one byte inside the member's ciphertext.
    data = bytearray(info.path.read_bytes())
    data[_inside(info.path, fmt, member)] ^= 0x01
    broken = tmp_path / f"broken.{fmt}"
    broken.write_bytes(bytes(data))

    target = databases(pg18, seed_value=5)
    before = db_snapshot(target)
    archiver = Archiver(tmp_path, database_url=target, identities=identities)
    assert not archiver.verify(broken).ok
    plan = archiver.plan(broken, mode, "overwrite")
    if fmt == "zip" or mode == "full_db":
        # The damage lies in a member the plan reads (a tar.zst's middle is the dump's).
        assert [b.code for b in plan.blockers] == ["archive_invalid"]
        assert "damaged" in plan.blockers[0].message
    with pytest.raises(ArchiveError):
        archiver.restore(broken, mode, "overwrite")
    assert db_snapshot(target) == before


def _inside(path: Path, fmt: str, member: str) -> int:
    """An offset in the middle of ``member``'s stored bytes."""
    if fmt == "zip":
        data = path.read_bytes()
        with zipfile.ZipFile(path) as archive:
            entry = archive.getinfo(member)
        local = entry.header_offset
        name_length = int.from_bytes(data[local + 26 : local + 28], "little")
        extra_length = int.from_bytes(data[local + 28 : local + 30], "little")
        return local + 30 + name_length + extra_length + entry.compress_size // 2
    return path.stat().st_size // 2  # tar.zst: the compressed stream holds the ciphertext


@pytest.mark.parametrize("fmt", ["tar.zst", "zip"])
def test_ciphertext_changed_after_its_check_is_never_decrypted(
    pg18: Any,
    databases: Callable[..., str],
    db_snapshot: Snapshot,
    tmp_path: Path,
    fmt: str,
) -> None:
    """A full_db restore streams the ciphertext it checked, whoever writes the file meanwhile.

    The moment the check has read the dump, one byte of its ciphertext is
    changed in place (the restore's open descriptor sees it): the stream
    refuses the block before decrypting it, and the database is unchanged.
    """
    source = databases(pg18)
    key, recipient = _keys(tmp_path)
    identities = AgeIdentities.from_file(key)
    archiver = Archiver(tmp_path, database_url=source, identities=identities)
    info = archiver.create(format=fmt, encryption=AgeRecipients.to(recipient)).archive
    offset = _inside(info.path, fmt, "full_db/database.dump.age")
    target = databases(pg18, seed_value=5)
    before = db_snapshot(target)
    changed: list[int] = []

    def progress(event: ProgressEvent) -> None:
        if event.phase == "checking the dump" and event.done == event.total and not changed:
            with info.path.open("r+b") as stream:
                stream.seek(offset)
                byte = stream.read(1)[0]
                stream.seek(offset)
                stream.write(bytes([byte ^ 0x01]))
            changed.append(offset)

    restorer = Archiver(tmp_path, database_url=target, identities=identities)
    with pytest.raises(CorruptArchiveError, match="changed since they were checked"):
        restorer.restore(info.path, "full_db", progress=progress)
    assert changed
    assert db_snapshot(target) == before


# -- the age command-line tool ----------------------------------------------------------


@pytest.mark.skipif(
    shutil.which("age") is None, reason="the age command-line tool is not installed"
)
@pytest.mark.parametrize("fmt", ["tar.zst", "zip"])
def test_age_decrypts_a_member_extracted_with_standard_tools(
    pg18: Any, databases: Callable[..., str], tmp_path: Path, fmt: str
) -> None:
    source = databases(pg18)
    key, recipient = _keys(tmp_path)
    archiver = Archiver(tmp_path, database_url=source, identities=AgeIdentities.from_file(key))
    info = archiver.create(
        components=["settings"], format=fmt, encryption=AgeRecipients.to(recipient)
    ).archive
    out = tmp_path / "out"
    out.mkdir()
    if fmt == "zip":
        subprocess.run(["unzip", "-q", str(info.path), "-d", str(out)], check=True)
    else:
        subprocess.run(["tar", "--zstd", "-xf", str(info.path), "-C", str(out)], check=True)
    whole = archiver.inspect(info.name)
    assert info.manifest.encryption is not None
    assert info.manifest.encryption.compression == "zstd"
    for member in whole.members:
        # age decrypts the member by itself; what it gives is one zstd frame, which
        # the zstd tool (or any zstd library) turns into the member.
        frame = subprocess.run(
            ["age", "-d", "-i", str(key), str(out / (member.path + ".age"))],
            check=True,
            capture_output=True,
        ).stdout
        plain = zstandard.ZstdDecompressor().decompressobj().decompress(frame)
        assert len(plain) == member.size
        assert hashlib.sha256(plain).hexdigest() == member.sha256
    manifest = subprocess.run(
        ["age", "-d", "-i", str(key), str(out / "manifest.json.age")],
        check=True,
        capture_output=True,
    ).stdout
    assert json.loads(manifest)["components"][0]["name"] == "settings"


# -- the scrypt work an identity.age asks for ----------------------------------------------


def _scrypt_line(rewrite: Callable[[bytes, bytes], bytes]) -> Callable[[bytes], bytes]:
    """Rewrites the ``-> scrypt SALT FACTOR`` line of an identity.age as it is written."""

    def edit(encrypted: bytes) -> bytes:
        head, line, rest = encrypted.split(b"\n", 2)
        marker, kind, salt, factor = line.split(b" ")
        assert (marker, kind) == (b"->", b"scrypt")
        return b"\n".join([head, rewrite(salt, factor), rest])

    return edit


def _armored(encrypted: bytes) -> bytes:
    import base64

    return b"-----BEGIN AGE ENCRYPTED FILE-----\n%s\n-----END AGE ENCRYPTED FILE-----\n" % (
        base64.encodebytes(encrypted).strip()
    )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_scrypt_line(lambda s, _f: b"-> scrypt " + s + b" 22"), "work factor of 2^22 (4096 MiB"),
        (_scrypt_line(lambda s, _f: b"-> scrypt " + s + b" 63"), "work factor of 2^63"),
        (_scrypt_line(lambda s, _f: b"-> scrypt " + s + b" 023"), "without a valid work factor"),
        (_scrypt_line(lambda s, _f: b"-> scrypt " + s + b" 9" * 500), "without a valid work"),
        (_scrypt_line(lambda s, _f: b"-> scrypt " + s), "without a valid work factor"),
        (_armored, "not an age file in binary form"),
    ],
    ids=["2^22", "2^63", "leading-zero", "500-digits", "no-factor", "armored"],
)
def test_an_identity_asking_for_too_much_scrypt_work_is_refused_before_scrypt_runs(
    pg18: Any,
    databases: Callable[..., str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    edit: Callable[[bytes], bytes],
    message: str,
) -> None:
    # An own archive whose identity.age asks for more work than the library ever
    # writes: 2^23 made pyrage allocate 8 GiB, and abort the process without it.
    import pyrage

    source = databases(pg18)
    write = pyrage.passphrase.encrypt
    monkeypatch.setattr(
        pyrage.passphrase, "encrypt", lambda data, phrase: edit(bytes(write(data, phrase)))
    )
    archiver = Archiver(tmp_path, database_url=source)
    info = archiver.create(encryption=AgeRecipients.with_passphrase(PASSPHRASE)).archive
    monkeypatch.setattr(pyrage.passphrase, "encrypt", write)

    def never(_data: bytes, _phrase: str) -> bytes:
        raise AssertionError("scrypt ran on a hostile identity.age")

    monkeypatch.setattr(pyrage.passphrase, "decrypt", never)
    opened = Archiver(
        tmp_path, database_url=source, identities=AgeIdentities.from_passphrase(PASSPHRASE)
    )
    (blocker,) = opened.plan(info.name, "settings", "overwrite").blockers
    assert blocker.code == "archive_invalid"
    assert message in blocker.message
    report = opened.verify(info.name)
    assert not report.ok
    assert any(message in problem.message for problem in report.problems), report.problems


@pytest.mark.parametrize(
    ("memory", "limit"),
    [(64 << 30, 21), (4 << 30, 21), (2 << 30, 20), (1 << 30, 19), (256 << 20, 18)],
)
def test_the_work_factor_accepted_leaves_half_the_memory(
    monkeypatch: pytest.MonkeyPatch, memory: int, limit: int
) -> None:
    import os

    from odeion_archive import _encrypted

    sizes = {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": memory // 4096}
    monkeypatch.setattr(os, "sysconf", sizes.__getitem__)
    assert _encrypted._work_factor_limit() == limit
