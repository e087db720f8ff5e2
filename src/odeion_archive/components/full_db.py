"""The ``full_db`` component: a complete ``pg_dump`` of the database.

Payload version 1, one member ``database.dump``: ``pg_dump --format=custom``
without compression (the archive format compresses; the PostgreSQL builds that
are embedded lack zstd and lz4 anyway), taken in the backup's snapshot and
streamed into the archive as pg_dump writes it. It carries every table,
including those that no other component knows.
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from odeion_archive.components import _full_db_restore
from odeion_archive.errors import BackupFailedError
from odeion_archive.hookspecs import hookimpl
from odeion_archive.interfaces import (
    BackupContext,
    Component,
    ComponentPlan,
    PlanContext,
    RestoreContext,
)

__all__ = ["FullDbComponent", "odeion_archive_components"]

NAME = "full_db"
DUMP = "database.dump"
_CHUNK = 1024 * 1024
_STDERR_LIMIT = 64 * 1024


def _stream_dump(
    command: list[str], env: dict[str, str], context: BackupContext, header: dict[str, Any]
) -> Iterator[bytes]:
    """Run pg_dump and yield its output; fail with its own words if it fails."""
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL, env=env
        )
        finished = threading.Event()

        def watch_cancel() -> None:
            while not finished.is_set():
                if context.cancel.wait(0.1):
                    process.kill()
                    return

        watcher = threading.Thread(target=watch_cancel, name="pg_dump-cancel", daemon=True)
        watcher.start()
        assert process.stdout is not None
        try:
            first = True
            while chunk := process.stdout.read(_CHUNK):
                if first:
                    first = False
                    if chunk[:5] == b"PGDMP" and len(chunk) >= 8:
                        header["archive_version"] = f"{chunk[5]}.{chunk[6]}.{chunk[7]}"
                yield chunk
            code = process.wait()
            context.cancel.raise_if_cancelled()
            if code != 0:
                stderr.seek(0)
                text = stderr.read(_STDERR_LIMIT).decode("utf-8", "replace").strip()
                how = f"was killed by signal {-code}" if code < 0 else f"exited with {code}"
                raise BackupFailedError(
                    f"pg_dump {how}: {text or 'no message'}; nothing was added to the store, "
                    "fix the cause and try again"
                )
        finally:
            finished.set()
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stdout.close()


class FullDbComponent:
    """The whole database, as pg_dump sees it."""

    name = NAME
    payload_version = 1
    restore_scope: Literal["transaction", "database"] = "database"
    #: A full_db restore replaces the whole database: a mode of its own.
    restore_modes = (NAME,)
    in_default_backup = True

    def backup(self, context: BackupContext) -> Mapping[str, Any]:
        """Stream a pg_dump of the snapshot into the archive."""
        connection = context.connection
        row = connection.execute(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int,"
            " pg_database_size(current_database())"
        ).fetchone()
        assert row is not None
        server_version, server_version_num, size = str(row[0]), int(row[1]), int(row[2])
        extensions = {
            str(name): str(version)
            for name, version in connection.execute(
                "SELECT extname, extversion FROM pg_extension ORDER BY extname"
            )
        }
        roots: list[str] = []
        if connection.execute("SELECT to_regclass('libraries') IS NOT NULL").fetchone() == (True,):
            roots = sorted(
                {
                    str(path)
                    for (paths,) in connection.execute("SELECT root_paths FROM libraries")
                    for path in paths or ()
                }
            )
        pg_dump = context.tool("pg_dump")
        conninfo, env = context.tool_env()
        command = [
            str(pg_dump.path),
            "--format=custom",
            "--compress=0",
            f"--snapshot={context.snapshot}",
            "--no-password",
            f"--dbname={conninfo}",
        ]
        header: dict[str, Any] = {}
        context.add_member(DUMP, _stream_dump(command, env, context, header), total=size)
        return {
            "server_version": server_version,
            "server_version_num": server_version_num,
            "pg_dump_version": pg_dump.version,
            "dump_archive_version": header.get("archive_version"),
            "dump_format": "custom",
            "extensions": extensions,
            "database_size": size,
            "library_roots": roots,
            "schema_version": context.schema_version,
        }

    def plan(self, context: PlanContext) -> ComponentPlan:
        """Check that the dump can be restored here, changing nothing."""
        return _full_db_restore.plan(context)

    def restore(self, context: RestoreContext) -> ComponentPlan:
        """Replace the whole database with the dump, atomically."""
        return _full_db_restore.restore(context)


@hookimpl
def odeion_archive_components() -> list[Component]:
    """The full_db component."""
    return [FullDbComponent()]
