"""Every registered format keeps the contract that odeion_archive.testing checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from odeion_archive._registry import Registry
from odeion_archive.formats.zip import ZipFormat
from odeion_archive.interfaces import ArchiveFormat
from odeion_archive.testing import check_format


def test_both_builtin_formats_are_registered(registry: Registry) -> None:
    assert sorted(registry.formats()) == ["tar.zst", "zip"]


@pytest.mark.parametrize("name", ["tar.zst", "zip"])
def test_builtin_format_keeps_the_contract(name: str, registry: Registry, tmp_path: Path) -> None:
    check_format(registry.formats()[name], tmp_path)


class _LaxZip(ZipFormat):
    """A zip format whose reader never reports container problems."""

    def open_reader(self, file, limits):  # type: ignore[no-untyped-def]
        reader = super().open_reader(file, limits)
        reader.container_problems = list  # type: ignore[method-assign]
        return reader


class _SeekingZip(ZipFormat):
    """A zip format whose writer asks for the stream position."""

    def open_writer(self, stream):  # type: ignore[no-untyped-def]
        stream.tell()
        return super().open_writer(stream)


@pytest.mark.parametrize(
    ("broken", "complaint"),
    [(_LaxZip(), "flipped bit"), (_SeekingZip(), "must not seek")],
)
def test_check_format_catches_a_broken_format(
    broken: ArchiveFormat, complaint: str, tmp_path: Path
) -> None:
    with pytest.raises(AssertionError, match=complaint):
        check_format(broken, tmp_path)
