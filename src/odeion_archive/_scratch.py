"""Scratch databases for restore drills, and the removal of those a killed drill left.

A drill restores into a database nobody uses: a new database named
``odeion_drill_<hex>`` on the server itself when the role may create databases
(``CREATEDB`` or superuser), otherwise a temporary embedded PostgreSQL cluster in
``<data_dir>/.drills/odeion_drill_<hex>``. Either is dropped when the drill ends,
however it ends.

A drill killed outright (kill -9) cannot drop anything; it leaves a marker in
``<data_dir>/.drills`` before it creates anything: ``<name>.database`` for a
database (its content names the server, without password), the cluster's own
directory (holding the file ``DRILL``) for a cluster. Drills run under the data
directory's lock, so whatever the next operation that takes the lock finds
there is a leftover: :func:`clean_leftovers` drops the database or stops the
cluster's server and removes its directory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from odeion_archive._os import process_alive
from odeion_archive._postgres import EmbeddedPostgres
from odeion_archive.errors import DatabaseError

__all__ = [
    "DRILL_DIR",
    "PREFIX",
    "can_create_databases",
    "clean_leftovers",
    "scratch_cluster",
    "scratch_database",
]

_log = logging.getLogger(__name__)

#: The directory (inside the data directory) of drills' scratch clusters and markers.
DRILL_DIR = ".drills"
#: Every scratch database and cluster is named with this prefix and a random tag.
PREFIX = "odeion_drill_"
_DATABASE_MARKER = ".database"
_CLUSTER_MARKER = "DRILL"
_STOP_WAIT_SECONDS = 15.0


#: The names drills give their scratch databases and clusters; cleanup touches no other.
_NAME = re.compile(re.escape(PREFIX) + "[0-9a-f]{12}")


def _new_name() -> str:
    return f"{PREFIX}{secrets.token_hex(6)}"


def _root(data_dir: Path) -> Path:
    root = data_dir / DRILL_DIR
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    return root


def _write_durably(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())


def can_create_databases(conninfo: str) -> bool:
    """Whether the role of ``conninfo`` may create databases (CREATEDB or superuser)."""
    try:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            row = connection.execute(
                "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
    except psycopg.Error as exc:
        raise DatabaseError(
            f"cannot connect to the database: {exc}; check the database URL and that "
            "PostgreSQL is running"
        ) from exc
    return bool(row and row[0])


def _server_conninfo(conninfo: str) -> str:
    """``conninfo`` without its password (for a marker file on disk)."""
    params = conninfo_to_dict(conninfo)
    params.pop("password", None)
    return make_conninfo("", **params)


def _drop_database(conninfo: str, name: str) -> None:
    """Drop the database ``name`` of the server of ``conninfo``, whoever is connected to it."""
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextlib.contextmanager
def scratch_database(data_dir: Path, conninfo: str) -> Iterator[str]:
    """A new, empty database on the server of ``conninfo``; yields its connection string.

    It is created like the database of ``conninfo`` (encoding, collation), from
    ``template0``, and dropped when the block ends.
    """
    name = _new_name()
    marker = _root(data_dir) / f"{name}{_DATABASE_MARKER}"
    _write_durably(marker, _server_conninfo(conninfo))
    try:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            row = connection.execute(
                "SELECT pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database "
                "WHERE datname = current_database()"
            ).fetchone()
            assert row is not None
            connection.execute(
                sql.SQL(
                    "CREATE DATABASE {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}"
                ).format(sql.Identifier(name), *(sql.Literal(str(value)) for value in row))
            )
    except psycopg.Error as exc:
        marker.unlink(missing_ok=True)
        raise DatabaseError(
            f"could not create the scratch database {name!r} for the drill: {exc}"
        ) from exc
    try:
        yield make_conninfo(conninfo, dbname=name)
    finally:
        try:
            _drop_database(conninfo, name)
        except psycopg.Error as exc:
            _log.warning(
                "could not drop the scratch database %s (%s); the next operation will try again",
                name,
                exc,
            )
        else:
            marker.unlink(missing_ok=True)


@contextlib.contextmanager
def scratch_cluster(data_dir: Path) -> Iterator[str]:
    """A temporary embedded PostgreSQL cluster; yields its database's connection string.

    The database belongs to a plain role, as the data directory's own embedded
    database does. The server is stopped and its directory removed when the
    block ends.
    """
    directory = _root(data_dir) / _new_name()
    directory.mkdir(mode=0o700)
    _write_durably(directory / _CLUSTER_MARKER, f"{os.getpid()}\n")
    server = EmbeddedPostgres(directory)
    try:
        yield server.start()
    finally:
        try:
            server.stop()
        finally:
            _remove_cluster(directory)


def _postmaster_pid(pgdata: Path) -> int | None:
    """The pid of the server running on ``pgdata`` (from postmaster.pid), if it still runs."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text(encoding="utf-8").split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    pid = abs(pid)  # negative: a standalone backend (initdb's bootstrap)
    if not process_alive(pid):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return pid  # no /proc: trust postmaster.pid
    return pid if str(pgdata.resolve()).encode() in cmdline else None


def _remove_cluster(directory: Path) -> None:
    """Stop a scratch cluster's server if it still runs (immediate shutdown), then remove it."""
    pgdata = directory / "pgdata"
    pid = _postmaster_pid(pgdata)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGQUIT)
        deadline = time.monotonic() + _STOP_WAIT_SECONDS
        while process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if process_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    shutil.rmtree(directory, ignore_errors=True)
    if directory.exists():
        raise DatabaseError(f"could not remove the drill's scratch cluster {directory}")


def clean_leftovers(data_dir: Path, conninfo: str | None) -> list[str]:
    """Remove the scratch databases and clusters of drills that were killed; their names.

    ``conninfo`` connects to the server a scratch database was made on (the
    data directory's database URL); a leftover database of another server, or
    one that cannot be dropped now, is kept for the next try (and logged).
    The caller holds the data directory's lock.
    """
    root = data_dir / DRILL_DIR
    if not root.is_dir():
        return []
    removed: list[str] = []
    for path in sorted(root.iterdir()):
        if not _NAME.fullmatch(path.name.removesuffix(_DATABASE_MARKER)):
            continue  # no name a drill gives: never dropped, whatever a marker says
        if path.is_symlink() or (path.is_dir() and not _is_drill_cluster(path)):
            # Not made by a drill: never followed, stopped or removed.
            _log.warning(
                "%s is not a drill's scratch cluster (a symbolic link, or a directory without "
                "its %s file); it is left alone: remove it yourself if it is not needed",
                path,
                _CLUSTER_MARKER,
            )
            continue
        if path.is_dir():
            _remove_cluster(path)
            removed.append(path.name)
        elif path.name.endswith(_DATABASE_MARKER):
            name = path.name.removesuffix(_DATABASE_MARKER)
            if _drop_leftover_database(path, name, conninfo):
                removed.append(name)
    return removed


def _is_drill_cluster(directory: Path) -> bool:
    """Whether ``directory`` is a drill's cluster: its marker, or empty (killed before it)."""
    marker = directory / _CLUSTER_MARKER
    if marker.is_file() and not marker.is_symlink():
        return True
    return not any(directory.iterdir())


def _drop_leftover_database(marker: Path, name: str, conninfo: str | None) -> bool:
    try:
        recorded = marker.read_text(encoding="utf-8").strip()
    except OSError:
        return False
    if conninfo is None or (recorded and recorded != _server_conninfo(conninfo)):
        _log.warning(
            "the scratch database %s of a killed drill lives on another server (%s); "
            "drop it there (DROP DATABASE %s)",
            name,
            recorded,
            name,
        )
        return False
    try:
        _drop_database(conninfo, name)
    except psycopg.Error as exc:
        _log.warning("could not drop the scratch database %s of a killed drill: %s", name, exc)
        return False
    marker.unlink(missing_ok=True)
    return True
