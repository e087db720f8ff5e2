"""Stores of archives dated through the store's own records, for schedule and retention tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Literal

import attrs

from odeion_archive import Archiver
from odeion_archive._store import EntryRecord
from odeion_archive.formats.zip import ZipFormat
from odeion_archive.testing import write_archive

#: Before every date the tests give their archives: none counts as dated in the future.
LONG_AGO = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


def at(text: str) -> dt.datetime:
    """A UTC moment from ``2026-11-30T21:00``."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def put_archive(
    archiver: Archiver,
    entered_at: dt.datetime,
    components: Sequence[str] = ("settings",),
    *,
    how: Literal["created", "imported"] = "created",
    name: str | None = None,
) -> str:
    """A small archive in the store that entered it at ``entered_at`` (the store's record).

    Its bytes differ from every other's; its manifest says it was made at ``LONG_AGO``.
    """
    store = archiver.store
    store.ensure()
    name = name or store.new_name(".zip", entered_at)
    members = {
        c: {f"{c}.jsonl": f'{{"at":"{entered_at.isoformat()}"}}\n'.encode()} for c in components
    }
    with (store.directory / name).open("xb") as stream:
        write_archive(ZipFormat(), stream, members, created_at=LONG_AGO)
    store._write_record(name, EntryRecord(entered_at, how))
    return name


def move_entry(archiver: Archiver, name: str, entered_at: dt.datetime) -> None:
    """Say, in the store's record, that ``name`` entered the store at ``entered_at``."""
    record = archiver.store._read_record(name)
    assert record is not None
    archiver.store._write_record(name, attrs.evolve(record, entered_at=entered_at))
