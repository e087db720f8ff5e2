"""A member checked whole, then read only as it was checked, whoever writes the file meanwhile.

``ArchiveFile.open_checked`` is what a full_db restore streams its dump
from; these tests change the file at the moment the check has read the
member (from its progress callback), as someone who can write the backup
directory would between the check and the use.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from odeion_archive._archive import ArchiveFile
from odeion_archive._builder import ArchiveBuilder
from odeion_archive._keys import Keyring
from odeion_archive._manifest import ContainerPrefix
from odeion_archive._registry import Registry
from odeion_archive.errors import CorruptArchiveError
from odeion_archive.testing import head_manifest

MEMBER = "full_db/database.dump"


def _payload(tag: bytes) -> bytes:
    """3 MiB and more of hard-to-compress bytes: the member spans several blocks."""
    return b"".join(hashlib.sha256(tag + b"%d" % i).digest() for i in range(100_000))


def _archive(
    path: Path, fmt: str, data: bytes, keyring: Keyring | None = None
) -> ContainerPrefix | None:
    """Write an archive of ``fmt`` holding ``data`` as the dump; return its prefix."""
    registry = Registry.default()
    with path.open("wb") as stream:
        builder = ArchiveBuilder(
            registry.format(fmt),
            stream,
            head=head_manifest(registry.format(fmt), ("full_db",)),
            keyring=keyring,
        )
        entry = builder.add_member("full_db", "database.dump", [data], size=len(data))
        builder.set_facts("full_db", {})
        builder.finish()
    return entry.prefix


def _at_the_end(change: Callable[[], None]) -> Callable[[int, int], None]:
    """A progress callback that runs ``change`` once, when the check has read everything."""
    done: list[bool] = []

    def on_bytes(checked: int, total: int) -> None:
        if checked == total and not done:
            done.append(True)
            change()

    return on_bytes


def _flip(path: Path, offset: int) -> Callable[[], None]:
    def change() -> None:
        with path.open("r+b") as stream:
            stream.seek(offset)
            byte = stream.read(1)[0]
            stream.seek(offset)
            stream.write(bytes([byte ^ 0x01]))

    return change


def _open(path: Path, keyring: Keyring | None = None) -> ArchiveFile:
    return ArchiveFile.open(path, Registry.default(), keyring=keyring)


@pytest.mark.parametrize("fmt", ["tar.zst", "zip"])
@pytest.mark.parametrize("own", [True, False], ids=["own", "foreign"])
def test_an_intact_member_reads_as_written(tmp_path: Path, fmt: str, own: bool) -> None:
    keyring = Keyring.generate() if own else None
    data = _payload(b"genuine")
    prefix = _archive(tmp_path / "a", fmt, data, keyring)
    assert (prefix is not None) == (fmt == "tar.zst")
    seen: list[tuple[int, int]] = []
    with _open(tmp_path / "a", keyring) as archive:
        assert archive.authenticity == ("own" if own else "foreign")
        with archive.open_checked(MEMBER, lambda d, t: seen.append((d, t)), prefix=prefix) as s:
            assert s.read() == data
    assert seen
    assert seen[-1][0] == seen[-1][1]


@pytest.mark.parametrize("fmt", ["tar.zst", "zip"])
@pytest.mark.parametrize("own", [True, False], ids=["own", "foreign"])
@pytest.mark.parametrize("where", [0.1, 0.5, 0.9])
def test_a_byte_changed_after_the_check_is_never_used(
    tmp_path: Path, fmt: str, own: bool, where: float
) -> None:
    keyring = Keyring.generate() if own else None
    path = tmp_path / "a"
    prefix = _archive(path, fmt, _payload(b"genuine"), keyring)
    change = _flip(path, int(path.stat().st_size * where))
    with (
        _open(path, keyring) as archive,
        pytest.raises(CorruptArchiveError, match="changed since they were checked"),
        archive.open_checked(MEMBER, _at_the_end(change), prefix=prefix) as stream,
    ):
        stream.read()


@pytest.mark.parametrize("fmt", ["tar.zst", "zip"])
@pytest.mark.parametrize("own", [True, False], ids=["own", "foreign"])
def test_another_archive_appended_after_the_check_is_never_read(
    tmp_path: Path, fmt: str, own: bool
) -> None:
    """A zip reader finds its members from the file's end: a whole hostile archive appended
    after the check would hold the last directory."""
    keyring = Keyring.generate() if own else None
    data = _payload(b"genuine")
    path = tmp_path / "a"
    prefix = _archive(path, fmt, data, keyring)
    _archive(tmp_path / "hostile", fmt, _payload(b"hostile"), keyring)
    hostile = (tmp_path / "hostile").read_bytes()

    def append() -> None:
        with path.open("ab") as stream:
            stream.write(hostile)

    with (
        _open(path, keyring) as archive,
        archive.open_checked(MEMBER, _at_the_end(append), prefix=prefix) as stream,
    ):
        assert stream.read() == data
    assert path.stat().st_size > len(hostile)


@pytest.mark.parametrize("fmt", ["tar.zst", "zip"])
def test_a_file_cut_short_after_the_check_is_refused(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "a"
    _archive(path, fmt, _payload(b"genuine"))

    def cut() -> None:
        with path.open("r+b") as stream:
            stream.truncate(path.stat().st_size // 2)

    with (
        _open(path) as archive,
        pytest.raises(CorruptArchiveError),
        archive.open_checked(MEMBER, _at_the_end(cut)) as stream,
    ):
        stream.read()


def test_a_foreign_archive_is_read_through_whatever_prefix_it_is_given(tmp_path: Path) -> None:
    """Only this server's seal makes a prefix worth checking instead of the member."""
    data = _payload(b"genuine")
    path = tmp_path / "a"
    _archive(path, "tar.zst", data)
    bogus = ContainerPrefix(1, "0" * 64)
    with _open(path) as archive, archive.open_checked(MEMBER, prefix=bogus) as stream:
        assert stream.read() == data
    with _open(path, Keyring.generate()) as archive:
        assert archive.authenticity == "foreign"
        with archive.open_checked(MEMBER, prefix=bogus) as stream:
            assert stream.read() == data


def test_an_own_archive_whose_bytes_differ_from_its_prefix_is_refused_before_any_is_read(
    tmp_path: Path,
) -> None:
    keyring = Keyring.generate()
    path = tmp_path / "a"
    prefix = _archive(path, "tar.zst", _payload(b"genuine"), keyring)
    assert prefix is not None
    with _open(path, keyring) as archive:
        for wrong in (
            ContainerPrefix(prefix.end, "0" * 64),
            ContainerPrefix(archive.size + 1, prefix.sha256),
        ):
            with pytest.raises(CorruptArchiveError, match="through member"):
                archive.open_checked(MEMBER, prefix=wrong)
