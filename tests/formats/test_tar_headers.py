"""tar headers: pax records for long and non-ASCII names and for sizes past 8 GiB."""

from __future__ import annotations

import io
import tarfile

import pytest

from odeion_archive.formats._tar import TarReader, tar_header
from odeion_archive.interfaces import Entry, ReadLimits


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("users_auth/users.jsonl", 12),
        ("full_db/" + "n" * 150 + ".dump", 0),
        ("settings/r\u00e9glages.json", 512),
        ("full_db/database.dump", 8**11 - 1),
        ("full_db/database.dump", 3 * 2**33 + 5),  # beyond the 11 octal digits of ustar
    ],
)
def test_headers_read_back_in_tarfile_and_in_our_parser(name: str, size: int) -> None:
    header = tar_header(name, size)
    assert len(header) % 512 == 0
    with tarfile.open(fileobj=io.BytesIO(header), mode="r|") as archive:
        info = archive.next()
        assert info is not None
        assert (info.name, info.size, info.mode, info.mtime) == (name, size, 0o644, 0)
    parsed = TarReader(io.BytesIO(header), ReadLimits()).next_entry()
    assert parsed is not None
    assert parsed[0] == Entry(name, "file", size)
    assert parsed[1] == size + (-size % 512)


def test_short_names_need_no_pax_header() -> None:
    assert len(tar_header("users_auth/users.jsonl", 1)) == 512
    assert len(tar_header("full_db/" + "n" * 150, 1)) > 512
