"""A copy on a target is judged by the same manifest checks as a file in the store."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import attrs
import pytest

from odeion_archive import Archiver, Registry
from odeion_archive._archive import ArchiveBuilder, ArchiveFile
from odeion_archive._manifest import ComponentEntry, Manifest, MemberEntry
from odeion_archive.errors import ManifestError
from odeion_archive.formats.zip import ZipFormat
from odeion_archive.targets import TargetSpec

pyrage = pytest.importorskip("pyrage", reason="the age extra (pyrage) is not installed")


@pytest.mark.parametrize("bad", ["../escape.age", "manifest.json", "a/b.age"])
def test_an_encryption_member_with_a_hostile_name_is_refused_locally_and_on_a_target(
    tmp_path: Path, bad: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from odeion_archive._age import AgeRecipients
    from odeion_archive._encrypted import Encryptor

    real_record = Encryptor.record

    def hostile(self: Encryptor, members: tuple[MemberEntry, ...]) -> object:
        renamed = (attrs.evolve(members[0], path=bad), *members[1:])
        return real_record(self, renamed)

    monkeypatch.setattr(Encryptor, "record", hostile)
    nas = tmp_path / "nas"
    nas.mkdir()
    path = nas / "odeion-backup-20260102T030405Z-0a1b2c3d.zip"
    head = Manifest(
        created_at=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        library_version="1",
        server_version="1",
        schema_version=2,
        format="zip",
        components=(ComponentEntry("settings", 1),),
    )
    encryptor = Encryptor(AgeRecipients.to(str(pyrage.x25519.Identity.generate().to_public())))
    with path.open("wb") as stream:
        builder = ArchiveBuilder(ZipFormat(), stream, head=head, encryptor=encryptor)
        builder.add_member("settings", "system_settings.jsonl", [b'{"key":"a"}\n'])
        builder.finish()

    with pytest.raises(ManifestError, match="encryption"):
        ArchiveFile.open(path, Registry.default())
    archiver = Archiver(
        tmp_path / "data",
        targets=[TargetSpec.directory("nas", nas)],
        database_url="postgresql:///unused",
    )
    with caplog.at_level(logging.WARNING):
        assert archiver.list_target("nas") == []
    assert "encryption" in caplog.text


def test_verify_all_decrypts_a_copy_on_a_target_where_a_key_opens_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the key, a copy's plaintexts are checked too, as an archive of the store is."""
    from odeion_archive import AgeIdentities
    from odeion_archive._age import AgeRecipients
    from odeion_archive._encrypted import Encryptor

    real = Encryptor.encrypt_manifest

    def lie(self: Encryptor, manifest: Manifest) -> bytes:
        # The encrypted manifest gives the member a sha256 its plaintext does not have:
        # only a reader that decrypts can see it.
        entry = attrs.evolve(manifest.components[0].members[0], sha256="f" * 64)
        component = attrs.evolve(manifest.components[0], members=(entry,))
        return real(self, attrs.evolve(manifest, components=(component,)))

    monkeypatch.setattr(Encryptor, "encrypt_manifest", lie)
    identity = pyrage.x25519.Identity.generate()
    key = tmp_path / "key.txt"
    key.write_text(f"{identity}\n")
    nas = tmp_path / "nas"
    nas.mkdir()
    path = nas / "odeion-backup-20260102T030405Z-0a1b2c3d.zip"
    head = Manifest(
        created_at=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        library_version="1",
        server_version="1",
        schema_version=2,
        format="zip",
        components=(ComponentEntry("settings", 1),),
    )
    encryptor = Encryptor(AgeRecipients.to(str(identity.to_public())))
    with path.open("wb") as stream:
        builder = ArchiveBuilder(ZipFormat(), stream, head=head, encryptor=encryptor)
        builder.add_member("settings", "system_settings.jsonl", [b'{"key":"a"}\n'])
        builder.finish()

    targets = [TargetSpec.directory("nas", nas)]
    without = Archiver(tmp_path / "a", targets=targets, database_url="postgresql:///unused")
    assert without.verify_all().targets["nas"][path.name].ok  # the ciphertexts are whole
    with_key = Archiver(
        tmp_path / "b",
        targets=targets,
        identities=AgeIdentities.from_file(key),
        database_url="postgresql:///unused",
    )
    report = with_key.verify_all().targets["nas"][path.name]
    assert not report.ok
    assert any("sha256" in problem.message for problem in report.problems)
