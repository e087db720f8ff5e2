"""The golden archives of manifest versions 1.0, 1.1 and 1.2 read with the current code."""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from odeion_archive._archive import ArchiveFile
from odeion_archive._keys import Keyring
from odeion_archive.formats.tarzst import TarZstFormat
from odeion_archive.formats.zip import ZipFormat
from odeion_archive.testing import format_registry

HERE = Path(__file__).parent


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_golden", HERE / "make_golden.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCRIPT = _load_script()
REGISTRY = format_registry(ZipFormat(), TarZstFormat())
FILES = {"zip": "archive.zip", "tar.zst": "archive.tar.zst"}
VERSIONS = {"1.0": (1, 0), "1.1": (1, 1)}


@pytest.mark.parametrize("version", sorted(VERSIONS))
@pytest.mark.parametrize("fmt_name", sorted(FILES))
def test_golden_archive_reads_as_written(fmt_name: str, version: str) -> None:
    path = SCRIPT.DIRS[VERSIONS[version]] / FILES[fmt_name]
    with ArchiveFile.open(path, REGISTRY) as archive:
        manifest = archive.manifest
        assert archive.format.name == fmt_name
        assert manifest.manifest_version == VERSIONS[version]
        assert manifest.created_at == dt.datetime(2026, 1, 15, 12, 30, tzinfo=dt.UTC)
        assert (manifest.library_version, manifest.server_version, manifest.schema_version) == (
            "1.0.0",
            "10.10.3",
            7,
        )
        assert manifest.format == fmt_name
        assert manifest.component_names == ("users_auth", "settings")
        assert manifest.component("users_auth").facts == {"rows": {"users": 2, "sessions": 0}}
        assert manifest.component("settings").payload_version == 1
        assert [m.path for m in manifest.members] == [
            "users_auth/users.jsonl",
            "users_auth/sessions.jsonl",
            "settings/settings.json",
            "settings/libraries.jsonl",
        ]
        users = manifest.member("users_auth/users.jsonl")
        assert (users.size, users.sha256) == (
            87,
            "adea4d966fbaad90e3633738e37b0018ec291c669dce8e108fad2f6cb154e8c7",
        )
        walked = {entry.path: b"".join(chunks) for entry, chunks in archive.walk()}
        assert archive.verify().ok
    expected = {f"{c}/{n}": d for c, files in SCRIPT.MEMBERS.items() for n, d in files.items()}
    assert walked == expected
    assert walked["users_auth/users.jsonl"].splitlines()[1] == (
        '{"id":2,"username":"béla","is_admin":false}'.encode()
    )
    for member_path, data in walked.items():
        assert manifest.member(member_path).sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("version", sorted(VERSIONS))
@pytest.mark.parametrize("fmt", [ZipFormat(), SCRIPT.GoldenTarZst()], ids=lambda f: f.name)
def test_make_golden_reproduces_the_committed_bytes(
    fmt: ZipFormat | TarZstFormat, version: str
) -> None:
    directory = SCRIPT.DIRS[VERSIONS[version]]
    recorded = json.loads((directory / "versions.json").read_text())
    if recorded != SCRIPT.versions():
        pytest.skip(
            f"compression libraries differ from the golden ones: {SCRIPT.versions()} "
            f"here, {recorded} recorded; deflate and zstd output may differ"
        )
    assert SCRIPT.build(fmt, VERSIONS[version]) == (directory / FILES[fmt.name]).read_bytes()


@pytest.mark.parametrize("fmt_name", sorted(FILES))
def test_golden_authenticity(fmt_name: str) -> None:
    """1.1 archives are sealed: own under the test key, foreign under any other; 1.0 never own."""
    test_key, other = Keyring(SCRIPT.TEST_KEY), Keyring(bytes(32))
    sealed = SCRIPT.DIRS[(1, 1)] / FILES[fmt_name]
    with ArchiveFile.open(sealed, REGISTRY, keyring=test_key) as archive:
        assert archive.authenticity == "own"
        seal = archive.manifest.authentication
        assert seal is not None and seal.key_id == test_key.key_id
        assert SCRIPT.TEST_KEY not in sealed.read_bytes()
    for keyring in (other, None):
        with ArchiveFile.open(sealed, REGISTRY, keyring=keyring) as archive:
            assert archive.authenticity == "foreign"
    with ArchiveFile.open(SCRIPT.DIRS[(1, 0)] / FILES[fmt_name], REGISTRY, keyring=test_key) as old:
        assert old.manifest.authentication is None
        assert old.authenticity == "foreign"


@pytest.mark.parametrize("fmt_name", sorted(FILES))
def test_encrypted_golden_archive_reads_with_its_key(fmt_name: str) -> None:
    """1.2: the committed encrypted archive opens with the identity or the passphrase."""
    from odeion_archive._age import AgeIdentities
    from odeion_archive._encrypted import EncryptedArchive
    from odeion_archive.errors import DecryptionError

    path = SCRIPT.ENCRYPTED_DIR / FILES[fmt_name]
    expected = {f"{c}/{n}": d for c, files in SCRIPT.MEMBERS.items() for n, d in files.items()}
    for keys in (
        AgeIdentities.from_text(SCRIPT.TEST_IDENTITY),
        AgeIdentities.from_passphrase(SCRIPT.TEST_PASSPHRASE),
    ):
        archive = ArchiveFile.open(path, REGISTRY, keyring=Keyring(SCRIPT.TEST_KEY))
        readable = archive.manifest
        assert readable.manifest_version == (1, 2)
        assert readable.encryption is not None and readable.encryption.passphrase
        assert [m.path for m in readable.members] == [f"{p}.age" for p in expected]
        assert readable.component("users_auth").facts == {}
        with EncryptedArchive.open(archive, keys) as opened:
            assert opened.authenticity == "own"
            manifest = opened.manifest
            assert manifest.component("users_auth").facts == {"rows": {"users": 2, "sessions": 0}}
            assert manifest.created_at == dt.datetime(2026, 1, 15, 12, 30, tzinfo=dt.UTC)
            walked = {entry.path: b"".join(chunks) for entry, chunks in opened.walk()}
            assert opened.verify().ok
        assert walked == expected
    with ArchiveFile.open(path, REGISTRY) as archive, pytest.raises(DecryptionError) as caught:
        EncryptedArchive.open(archive, AgeIdentities.from_passphrase("not the passphrase"))
    assert caught.value.code == "key_wrong"
