"""The ``full_db`` component: a complete ``pg_dump`` of the database.

Payload version 1, one member ``database.dump``: ``pg_dump --format=custom``
without compression (the archive format compresses; the PostgreSQL builds that
are embedded lack zstd and lz4 anyway), taken in the backup's snapshot and
streamed into the archive as pg_dump writes it. It carries every table,
including those that no other component knows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs

from odeion_archive._converter import converter
from odeion_archive.components.full_db._counts import counted_in_snapshot
from odeion_archive.components.full_db._dump import stream_dump
from odeion_archive.hookspecs import hookimpl
from odeion_archive.interfaces import (
    BackupContext,
    Component,
    ComponentPlan,
    DatabaseRestoreContext,
    PlanContext,
)

__all__ = ["FullDbComponent", "FullDbOptions", "odeion_archive_components"]

NAME = "full_db"
DUMP = "database.dump"


@attrs.frozen
class FullDbOptions:
    """The restore options of full_db."""

    #: Old media root -> new media root, applied in the restore's transaction.
    remap_paths: Mapping[str, str] = attrs.field(
        factory=dict,
        converter=dict,
        hash=False,
        metadata={
            "flag": "--remap-path",
            "metavar": "OLD=NEW",
            "help": "move media roots from OLD to NEW (repeat for several)",
        },
    )
    #: Restore a dump with entries that Odeion never uses (event triggers...).
    allow_unsafe_dump: bool = attrs.field(
        default=False, metadata={"help": "restore dump entries Odeion never uses"}
    )
    #: Replay the dump of an archive this server did not make (its SQL runs as the
    #: database owner): the administrator trusts the archive's origin.
    trust_foreign_dump: bool = attrs.field(
        default=False,
        metadata={
            "help": "replay the dump of an archive this server did not make (its SQL runs as "
            "the database owner); only for archives whose origin you trust"
        },
    )


class FullDbComponent:
    """The whole database, as pg_dump sees it."""

    name = NAME
    payload_version = 1
    restore_scope: Literal["transaction", "database"] = "database"
    #: A full_db restore replaces the whole database: a mode of its own.
    restore_modes = (NAME,)
    in_default_backup = True
    options_type = FullDbOptions

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
        # Every table's row count, in the snapshot, while pg_dump streams (for restore drills).
        with counted_in_snapshot(context.conninfo, context.snapshot) as row_counts:
            dump = context.add_member(DUMP, stream_dump(command, env, context, header), total=size)
        # Where the format says which bytes of the archive hold the dump, a restore checks
        # those (compressed) bytes before any of its SQL runs instead of decompressing it.
        prefix = {} if dump.prefix is None else {"dump_prefix": converter.unstructure(dump.prefix)}
        return {
            **prefix,
            "server_version": server_version,
            "server_version_num": server_version_num,
            "pg_dump_version": pg_dump.version,
            "dump_archive_version": header.get("archive_version"),
            "dump_format": "custom",
            "extensions": extensions,
            "database_size": size,
            "library_roots": roots,
            "schema_version": context.schema_version,
            "row_counts": row_counts,
        }

    def plan(self, context: PlanContext) -> ComponentPlan:
        """Check that the dump can be restored here, changing nothing."""
        # Imported here: the restore's SQL guard loads PostgreSQL's parser (pglast),
        # a fixed cost that a backup does not need to pay.
        from odeion_archive.components.full_db import _restore  # noqa: PLC0415

        return _restore.plan(context)

    def restore(self, context: DatabaseRestoreContext) -> ComponentPlan:
        """Replace the whole database with the dump, atomically."""
        from odeion_archive.components.full_db import _restore  # noqa: PLC0415

        return _restore.restore(context)


@hookimpl
def odeion_archive_components() -> list[Component]:
    """The full_db component."""
    return [FullDbComponent()]
