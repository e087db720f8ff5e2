"""Hand-made pg_dump custom-format dumps: a table of contents whose SQL an attacker chose.

A custom-format dump is a header and a table of contents (TOC) whose entries
carry SQL text that ``pg_restore`` prints as it is. An attacker who edits a
dump can put any SQL there; :func:`craft_dump` writes such a dump from
scratch (archive version 1.14, which pg_restore 14 to 18 read), without data
blocks. See :mod:`odeion_archive.components.full_db._dumpfile` for the layout.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

_VERSION = (1, 14, 0)
_INT_SIZE = 4
_OFFSET_SIZE = 8
_FORMAT_CUSTOM = 1
_SECTION_PRE_DATA = 2
_NO_DATA = 3


def _int(value: int) -> bytes:
    return bytes([1 if value < 0 else 0]) + struct.pack("<I", abs(value))


def _str(value: str | bytes | None) -> bytes:
    if value is None:
        return _int(-1)
    data = value.encode() if isinstance(value, str) else value
    return _int(len(data)) + data


def craft_dump(
    entries: Sequence[tuple[str, str | bytes]],
    *,
    database: str = "odeion",
    namespace: str = "public",
) -> bytes:
    """A dump whose TOC holds ``entries`` as ``(desc, definition)``, in order.

    ``namespace`` is every entry's schema ("": none, so pg_restore sets no search_path).
    """
    out = bytearray(b"PGDMP")
    out += bytes([*_VERSION, _INT_SIZE, _OFFSET_SIZE, _FORMAT_CUSTOM])
    out += _int(0)  # compression level: none
    for part in (0, 0, 12, 1, 0, 126, 0):  # 2026-01-01 12:00:00
        out += _int(part)
    out += _str(database) + _str("15.0") + _str("15.0")
    out += _int(len(entries))
    for index, (desc, definition) in enumerate(entries, start=1):
        out += _int(index)  # dump id
        out += _int(0)  # no data dumper
        out += _str("0") + _str("0")  # table oid, oid
        out += _str(f"entry{index}")  # tag
        out += _str(desc)
        out += _int(_SECTION_PRE_DATA)
        out += _str(definition)
        out += _str("") + _str("")  # drop statement, copy statement
        out += _str(namespace) + _str("") + _str("heap")  # namespace, tablespace, access method
        out += _str("")  # owner
        out += _str("false")  # "with oids"
        out += _str(None)  # end of the dependency list
        out += bytes([_NO_DATA]) + bytes(_OFFSET_SIZE)
    return bytes(out)
