"""The whole job end to end on the embedded PostgreSQL (``odeion-archive demo``).

:func:`run_demo` creates a data directory, loads the Odeion schema with sample
data, backs it up in both formats, verifies the archives, plans and restores
them into fresh databases, and compares the databases table by table.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from odeion_archive import _schema as schema
from odeion_archive._archiver import Archiver
from odeion_archive._postgres import EmbeddedPostgres
from odeion_archive.errors import ArchiveError
from odeion_archive.results import ArchiveInfo
from odeion_archive.sample import compare_databases, load_sample

__all__ = ["run_demo"]


@contextmanager
def _workdir(directory: Path | None) -> Iterator[tuple[Path, bool]]:
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        yield directory, False
        return
    temporary = Path(tempfile.mkdtemp(prefix="odeion-demo-"))
    try:
        yield temporary, True
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def _create_database(admin: str, name: str, owner: str) -> str:
    """A new database that ``owner`` owns (and connects to), as the server's own."""
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        connection.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(owner)
            )
        )
    return make_conninfo(admin, dbname=name, user=owner)


def run_demo(directory: Path | None = None, *, report: Callable[[str], None]) -> bool:
    """Run the whole job on the embedded PostgreSQL; ``report`` receives each line.

    Returns whether every restored database matched its source. Raises
    :class:`~odeion_archive.errors.ArchiveError` if a step fails.
    """
    total = time.monotonic()
    with _workdir(directory) as (workdir, temporary):
        data_dir = workdir / "odeion-data"
        report(f"working in {workdir}" + (" (removed at the end)" if temporary else ""))

        step = _stepper(report)
        done = step("starting the embedded PostgreSQL")
        server = EmbeddedPostgres(data_dir)
        source = server.start()
        try:
            done(f"PostgreSQL running, data in {server.pgdata}")
            done = step("loading the Odeion schema and sample data")
            with psycopg.connect(source) as connection:
                empty = schema.schema_version(connection) == 0
            loaded = (
                ", ".join(f"{n} {t}" for t, n in load_sample(source).items())
                if empty
                else "already loaded"
            )
            done(
                f"schema version {schema.LATEST_SCHEMA_VERSION}; {loaded}; plus a table "
                "'plugin_bookmarks' that only full_db knows"
            )
            archives = _back_up_and_verify(data_dir, source, step)

            admin, owner = server.admin_conninfo, conninfo_to_dict(source)["user"]
            full_target = _create_database(admin, "odeion_restored_full", str(owner))
            json_target = _create_database(admin, "odeion_restored_json", str(owner))
            with psycopg.connect(json_target) as connection:
                schema.migrate(connection)

            same = True
            for target, fmt, mode in (
                (full_target, "tar.zst", "full_db"),
                (json_target, "zip", "everything_json"),
            ):
                ok = _restore_and_compare(
                    data_dir, source, target, archives[fmt], mode, step, report
                )
                same = same and ok
        finally:
            server.stop()
        report(f"demo {'succeeded' if same else 'FAILED'} in {time.monotonic() - total:.1f} s")
        if not temporary:
            report(
                f"its data directory {data_dir} is kept, with sample data and two archives: "
                f"try 'odeion-archive --data-dir {data_dir} list'"
            )
        return same


def _stepper(report: Callable[[str], None]) -> Callable[[str], Callable[[str], None]]:
    """``step(title)`` reports a step's start and returns what reports its end and time."""

    def step(title: str) -> Callable[[str], None]:
        started = time.monotonic()
        report(f"- {title} ...")

        def done(detail: str) -> None:
            report(f"  {detail} ({time.monotonic() - started:.2f} s)")

        return done

    return step


def _back_up_and_verify(
    data_dir: Path, source: str, step: Callable[[str], Callable[[str], None]]
) -> dict[str, ArchiveInfo]:
    """A backup in each built-in format, verified; the archives by format."""
    archives = {}
    with Archiver(data_dir, database_url=source, server_version="demo") as archiver:
        for fmt in ("tar.zst", "zip"):
            done = step(f"backing up users_auth, settings and full_db as {fmt}")
            result = archiver.create(format=fmt)
            archives[fmt] = result.archive
            done(f"{result.archive.name}, {result.archive.size:,} bytes")
        for info in archives.values():
            done = step(f"verifying {info.name}")
            verdict = archiver.verify(info.name)
            if not verdict.ok:
                raise ArchiveError(f"verification of {info.name} failed: {verdict}")
            done(f"{len(info.manifest.members)} members match their sha256")
    return archives


def _restore_and_compare(
    data_dir: Path,
    source: str,
    target: str,
    info: ArchiveInfo,
    mode: str,
    step: Callable[[str], Callable[[str], None]],
    report: Callable[[str], None],
) -> bool:
    """Restore ``info`` in ``mode`` into ``target``; whether it matches ``source``."""
    with Archiver(data_dir, database_url=target) as archiver:
        done = step(f"planning the {mode} restore of the {info.format} archive")
        plan = archiver.plan(info.path, mode, "skip")
        done("can restore" if plan.can_restore else f"blocked: {[b.code for b in plan.blockers]}")
        done = step(f"restoring {mode} into a fresh database")
        restored = archiver.restore(info.path, mode, "skip")
        done(f"database at schema version {restored.schema_version}; libraries to rescan")
    done = step(f"comparing the {mode} restore with the source, table by table")
    # Ids of API tokens are not carried by JSON: they differ between installs.
    comparison = compare_databases(
        source,
        target,
        ignore_columns={} if mode == "full_db" else {"api_tokens": ["id"]},
    )
    wanted = (
        None if mode == "full_db" else {"users", "invite_codes", "api_tokens", "system_settings"}
    )
    checked = [t for t in comparison.tables if wanted is None or t.table in wanted]
    for table in checked:
        report(
            f"    {table.table:<20} {table.rows_a!s:>8} -> {table.rows_b!s:>8}  "
            f"{'same' if table.same else 'DIFFERENT'}"
        )
    ok = all(t.same for t in checked) and (wanted is not None or comparison.sequences_same)
    done("identical" if ok else "DIFFERENT")
    return ok
