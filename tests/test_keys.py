"""The archive key: its file, the seal of a manifest, and the authenticity of archives.

No database is needed: archives are written with the real ArchiveBuilder and
read with the real ArchiveFile.
"""

from __future__ import annotations

import io
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from odeion_archive import Archiver
from odeion_archive._archive import ArchiveBuilder, ArchiveFile
from odeion_archive._keys import (
    KEY_FILE,
    Keyring,
    authenticity_of,
    key_id,
    load,
    load_or_create,
    read_keyring,
    write_new,
)
from odeion_archive._manifest import Manifest
from odeion_archive.errors import BackupFailedError, KeyringError
from odeion_archive.formats.tarzst import TarZstFormat
from odeion_archive.formats.zip import ZipFormat
from odeion_archive.testing import format_registry, head_manifest

REGISTRY = format_registry(ZipFormat(), TarZstFormat())
MEMBERS = {"users_auth": {"users.jsonl": b'{"id":1}\n'}, "settings": {"settings.json": b"{}"}}


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The most permissive umask: files the library creates must still be 0600."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _write(path: Path, keyring: Keyring | None, *, version: tuple[int, int] = (1, 1)) -> Manifest:
    fmt = REGISTRY.format("zip") if path.suffix == ".zip" else REGISTRY.format("tar.zst")
    head = attrs.evolve(head_manifest(fmt, tuple(MEMBERS)), manifest_version=version)
    with path.open("wb") as stream:
        builder = ArchiveBuilder(fmt, stream, head=head, keyring=keyring)
        for component, files in MEMBERS.items():
            for name, data in files.items():
                builder.add_member(component, name, [data])
            builder.set_facts(component, {"rows": {"x": 1}})
        return builder.finish()


def _authenticity(path: Path, keyring: Keyring | None) -> str:
    with ArchiveFile.open(path, REGISTRY, keyring=keyring) as archive:
        return archive.authenticity


# -- the key file ------------------------------------------------------------------


def test_the_key_is_created_once_with_mode_0600_whatever_the_umask(
    tmp_path: Path, open_umask: None
) -> None:
    path = tmp_path / "data" / KEY_FILE
    assert load(path) is None
    first = load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create(path) == first == load(path)
    assert len(first.signing_key) == 32
    exported = tmp_path / "exported.key"
    write_new(exported, first)
    assert stat.S_IMODE(exported.stat().st_mode) == 0o600
    assert read_keyring(exported) == first


def test_a_key_file_readable_by_others_is_restricted_again(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE
    keyring = load_or_create(path)
    path.chmod(0o644)
    assert load(path) == keyring
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_export_never_overwrites_a_file(tmp_path: Path) -> None:
    target = tmp_path / "exists"
    target.write_text("precious")
    with pytest.raises(KeyringError, match="already exists"):
        write_new(target, Keyring.generate())
    assert target.read_text() == "precious"


def test_the_key_id_is_derived_from_the_key_and_is_not_the_key() -> None:
    keyring = Keyring(bytes(range(32)))
    assert keyring.key_id == key_id(bytes(range(32)))
    assert keyring.key_id != Keyring(bytes(32)).key_id
    assert bytes(range(32)).hex()[:32] != keyring.key_id
    assert keyring.signing_key.hex() not in repr(keyring)
    assert keyring.key_id in repr(keyring)


# -- the seal and the authenticity of archives ---------------------------------------


@pytest.mark.parametrize("suffix", [".zip", ".tar.zst"])
def test_an_archive_made_here_is_own_and_never_holds_the_key(tmp_path: Path, suffix: str) -> None:
    keyring = Keyring.generate()
    path = tmp_path / f"archive{suffix}"
    manifest = _write(path, keyring)
    assert manifest.manifest_version == (1, 1)
    assert manifest.authentication is not None
    assert manifest.authentication.key_id == keyring.key_id
    assert _authenticity(path, keyring) == "own"
    with ArchiveFile.open(path, REGISTRY, keyring=keyring) as archive:
        assert archive.manifest == manifest
        assert archive.verify().ok
    key = keyring.signing_key
    for data in (manifest.to_json(), manifest.head_json(), manifest.tail_json(), path.read_bytes()):
        assert key not in data
        assert key.hex().encode() not in data


def test_the_mac_is_hmac_sha256_over_the_manifest_without_its_seal() -> None:
    import hashlib
    import hmac

    keyring = Keyring(bytes(range(32)))
    manifest = head_manifest(ZipFormat(), ("settings",))
    seal = keyring.sign(manifest)
    expected = hmac.new(bytes(range(32)), manifest.to_json(), hashlib.sha256).hexdigest()
    assert seal.mac == expected
    sealed = attrs.evolve(manifest, authentication=seal)
    assert keyring.sign(sealed) == seal  # the seal itself is not sealed
    assert authenticity_of(sealed, keyring) == "own"


def test_a_flipped_byte_in_the_manifest_is_tampered(tmp_path: Path) -> None:
    keyring = Keyring.generate()
    manifest = _write(tmp_path / "archive.zip", keyring)
    tail = manifest.tail_json()
    assert b'"x":1' in tail
    edited = Manifest.from_parts(manifest.head_json(), tail.replace(b'"x":1', b'"x":2'))
    assert edited.authentication == manifest.authentication
    assert authenticity_of(edited, keyring) == "tampered"
    # Each field of the manifest is covered: a member's sha256, a header field...
    member = manifest.components[0].members[0]
    other_sha = attrs.evolve(
        manifest,
        components=(
            attrs.evolve(manifest.components[0], members=(attrs.evolve(member, sha256="0" * 64),)),
            *manifest.components[1:],
        ),
    )
    assert authenticity_of(other_sha, keyring) == "tampered"
    assert authenticity_of(attrs.evolve(manifest, schema_version=99), keyring) == "tampered"
    # ... and a seal whose MAC was edited.
    assert manifest.authentication is not None
    forged = attrs.evolve(
        manifest, authentication=attrs.evolve(manifest.authentication, mac="f" * 64)
    )
    assert authenticity_of(forged, keyring) == "tampered"


def test_another_servers_key_no_seal_and_version_1_0_are_foreign(tmp_path: Path) -> None:
    here, elsewhere = Keyring.generate(), Keyring.generate()
    theirs = tmp_path / "theirs.tar.zst"
    _write(theirs, elsewhere)
    assert _authenticity(theirs, here) == "foreign"
    assert _authenticity(theirs, elsewhere) == "own"
    unsealed = tmp_path / "unsealed.tar.zst"
    assert _write(unsealed, None).authentication is None
    assert _authenticity(unsealed, here) == "foreign"
    old = tmp_path / "old.zip"
    assert _write(old, None, version=(1, 0)).manifest_version == (1, 0)
    assert _authenticity(old, here) == "foreign"
    assert _authenticity(theirs, None) == "foreign"  # a server that holds no key yet


def test_a_sealed_archive_needs_manifest_version_1_1(tmp_path: Path) -> None:
    with pytest.raises(BackupFailedError, match=r"1\.1"):
        _write(tmp_path / "old.zip", Keyring.generate(), version=(1, 0))


def test_imported_keys_sign_and_the_old_ones_stay_accepted(tmp_path: Path) -> None:
    old, new = Keyring.generate(), Keyring.generate()
    before = tmp_path / "before.zip"
    _write(before, old)
    merged = old.with_imported(new)
    assert merged.signing_key == new.signing_key
    assert merged.key_ids == (new.key_id, old.key_id)
    after = tmp_path / "after.zip"
    _write(after, merged)
    assert _authenticity(before, merged) == "own"
    assert _authenticity(after, merged) == "own"
    assert _authenticity(after, old) == "foreign"
    assert merged.with_imported(new) == merged  # importing twice changes nothing
    assert Keyring.from_text(merged.to_text()) == merged


# -- the key never leaks ---------------------------------------------------------------


def _damaged(text: str) -> list[str]:
    """Variants of a key file, each damaged in one way."""
    lines = text.splitlines()
    key_line = next(i for i, line in enumerate(lines) if line.startswith("signing "))
    role, ident, key = lines[key_line].split()
    variants = [
        [*lines[:key_line], f"{role} {ident} {key[:-4]}AAA=", *lines[key_line + 1 :]],
        [*lines[:key_line], f"{role} {'0' * 32} {key}", *lines[key_line + 1 :]],
        [*lines[:key_line], f"signer {ident} {key}", *lines[key_line + 1 :]],
        [*lines[:key_line], f"{role} {ident} {key} extra", *lines[key_line + 1 :]],
        [*lines, f"{role} {ident} {key}"],
        [f"{role} {ident} {key}"],
    ]
    return ["\n".join(v) + "\n" for v in variants]


def test_errors_about_key_files_never_show_the_key(tmp_path: Path) -> None:
    keyring = Keyring.generate()
    encoded = keyring.to_text().splitlines()[-1].split()[-1]
    for number, text in enumerate(_damaged(keyring.to_text())):
        path = tmp_path / f"damaged-{number}"
        path.write_text(text)
        with pytest.raises(KeyringError) as raised:
            read_keyring(path)
        message = str(raised.value)
        assert encoded[:8] not in message
        assert keyring.signing_key.hex()[:8] not in message
        with pytest.raises(KeyringError):
            read_keyring(io.StringIO(text))
    with pytest.raises(KeyringError, match="not ASCII"):
        read_keyring(io.BytesIO(b"\xff\xfe"))
    with pytest.raises(KeyringError, match="larger"):
        read_keyring(io.BytesIO(b"#" * (65 * 1024)))


def test_the_archiver_moves_keys_and_logs_only_key_ids(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, open_umask: None
) -> None:
    caplog.set_level(logging.DEBUG, logger="odeion_archive")
    old_server, new_server = Archiver(tmp_path / "a"), Archiver(tmp_path / "b")
    old_ids = old_server.key_ids()
    new_own = new_server.key_ids()
    exported = tmp_path / "moving.key"
    assert old_server.export_key(exported) == old_ids[0]
    assert stat.S_IMODE(exported.stat().st_mode) == 0o600
    with pytest.raises(KeyringError, match="already exists"):
        old_server.export_key(exported)
    assert new_server.import_key(exported) == old_ids[0]
    assert new_server.key_ids() == (old_ids[0], new_own[0])
    stream = io.StringIO()
    new_server.export_key(stream)
    third = Archiver(tmp_path / "c")
    third.import_key(io.BytesIO(stream.getvalue().encode()))
    assert third.key_ids() == new_server.key_ids()  # a fresh server takes the whole keyring
    key_file = tmp_path / "b" / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    held = read_keyring(key_file)
    secrets = [held.signing_key, *held.accepted_keys]
    assert caplog.records
    for record in caplog.records:
        text = record.getMessage()
        for key in secrets:
            assert key.hex() not in text
            assert Keyring(key).to_text().splitlines()[-1].split()[-1] not in text
    assert old_ids[0] in caplog.text
