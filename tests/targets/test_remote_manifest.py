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
