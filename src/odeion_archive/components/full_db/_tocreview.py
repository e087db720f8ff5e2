"""The entries of a dump's table of contents that a restore refuses, judged before it runs.

The planner reads the table of contents (see
:mod:`~odeion_archive.components.full_db._dumpfile`) and reports here, before
anything runs, what the SQL guard would refuse: entries of kinds Odeion never
uses, and every definition the guard judges unsafe.
"""

from __future__ import annotations

from typing import Final

import attrs

from odeion_archive.components.full_db import _sqlguard
from odeion_archive.components.full_db._dumpfile import DumpHeader, TocEntry
from odeion_archive.components.full_db._sqlrules import TRUSTED_EXTENSIONS

__all__ = ["UnsafeEntry", "unsafe_entries"]

_DANGEROUS_DESCS: Final = {
    "EVENT TRIGGER": "an event trigger",
    "FOREIGN DATA WRAPPER": "a foreign data wrapper",
    "SERVER": "a foreign server",
    "USER MAPPING": "a user mapping",
    "FOREIGN TABLE": "a foreign table",
    "ROLE": "a role",
    "SUBSCRIPTION": "a subscription (it connects to another server)",
    "ACCESS METHOD": "an access method",
    "TEXT SEARCH PARSER": "a text search parser (C functions)",
    "TEXT SEARCH TEMPLATE": "a text search template (C functions)",
    "TABLESPACE": "a tablespace",
}


def _standard_database_entry(entry: TocEntry, header: DumpHeader) -> bool:
    defn = entry.defn.strip()
    return (
        entry.tag == header.database_name
        and defn.upper().startswith("CREATE DATABASE ")
        and defn.count(";") == 1
        and defn.endswith(";")
    )


@attrs.frozen
class UnsafeEntry:
    """A TOC entry that a restore refuses; ``always``: even when unsafe dumps are allowed."""

    name: str
    reason: str
    always: bool

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}"


def unsafe_entries(header: DumpHeader) -> list[UnsafeEntry]:
    """The entries of ``header`` that a restore would refuse, and why.

    Entries of kinds Odeion never uses (event triggers, foreign data wrappers,
    servers, user mappings, roles, subscriptions, languages other than
    plpgsql, extensions that are not trusted, DATABASE entries other than
    pg_dump's own), and every definition and COPY statement that the SQL guard
    (:mod:`odeion_archive.components.full_db._sqlguard`, PostgreSQL's own parser) refuses. Linear
    in the size of the TOC.
    """
    found: list[UnsafeEntry] = []
    databases = 0
    for entry in header.entries:
        name = f"{entry.desc} {entry.namespace + '.' if entry.namespace else ''}{entry.tag}"
        name = name[:200]
        if entry.desc in _DANGEROUS_DESCS:
            found.append(UnsafeEntry(name, _DANGEROUS_DESCS[entry.desc], always=False))
        elif entry.desc == "PROCEDURAL LANGUAGE" and entry.tag != "plpgsql":
            found.append(UnsafeEntry(name, "a procedural language other than plpgsql", False))
        elif entry.desc == "EXTENSION" and entry.tag not in TRUSTED_EXTENSIONS:
            found.append(UnsafeEntry(name, "an extension that is not a trusted one", False))
        if entry.desc == "DATABASE":
            databases += 1
            if databases > 1 or not _standard_database_entry(entry, header):
                found.append(
                    UnsafeEntry(name, "a DATABASE entry that pg_dump does not write", True)
                )
            continue
        for text in (entry.defn, entry.copy_stmt):
            refusal = _sqlguard.refusal_of(text) if text.strip() else None
            if refusal is not None:
                found.append(UnsafeEntry(name, refusal.reason, refusal.always))
    return found
