"""Creating a backup: every component in one snapshot, into one archive.

The backup opens one REPEATABLE READ transaction and exports its snapshot. The
JSON components read through that transaction and ``pg_dump`` joins it with
``--snapshot``, so every component of an archive describes the same instant,
however much the database changes while the backup runs.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs
import psycopg

from odeion_archive import _schema as schema
from odeion_archive._age import AgeRecipients
from odeion_archive._archive import ArchiveBuilder
from odeion_archive._context import ComponentContext
from odeion_archive._encrypted import Encryptor
from odeion_archive._keys import Keyring
from odeion_archive._manifest import ComponentEntry, Manifest, MemberEntry
from odeion_archive._postgres import PgTool, connect, server_version_num
from odeion_archive._registry import Registry
from odeion_archive._store import BackupStore
from odeion_archive._tools import Toolbox
from odeion_archive._version import __version__
from odeion_archive.errors import (
    ArchiveError,
    BackupFailedError,
    InsufficientSpaceError,
)
from odeion_archive.events import CancelToken, ProgressCallback, ProgressEvent, null_progress
from odeion_archive.interfaces import Component
from odeion_archive.results import ArchiveInfo

__all__ = ["DEFAULT_FORMAT", "BackupOptions", "run_backup"]

DEFAULT_FORMAT = "tar.zst"


@attrs.frozen
class BackupOptions:
    """What to back up and how."""

    #: The components to back up; ``None``: those that declare themselves part of a
    #: default backup (:meth:`~odeion_archive.Registry.default_components`).
    components: tuple[str, ...] | None = None
    format: str = DEFAULT_FORMAT
    #: The Odeion server version recorded in the manifest.
    server_version: str = "unknown"
    #: Free space that must remain after a full_db backup, on top of its estimate.
    reserve_bytes: int = 64 * 1024 * 1024


class _Context(ComponentContext):
    """The :class:`~odeion_archive.interfaces.BackupContext` of one component."""

    def __init__(
        self,
        *,
        component: Component,
        connection: psycopg.Connection[Any],
        snapshot: str,
        schema_version: int,
        builder: ArchiveBuilder,
        toolbox: Toolbox,
        conninfo: str,
        cancel: CancelToken,
        progress: ProgressCallback,
    ) -> None:
        super().__init__(
            operation="backup",
            component=component.name,
            conninfo=conninfo,
            toolbox=toolbox,
            progress=progress,
        )
        self.connection = connection
        self.snapshot = snapshot
        self.schema_version = schema_version
        self.cancel = cancel
        self._builder = builder

    def add_member(
        self, name: str, chunks: Iterable[bytes], *, total: int | None = None
    ) -> MemberEntry:
        return self._builder.add_member(self._component_name, name, self._count(chunks, total))

    def _count(self, chunks: Iterable[bytes], total: int | None) -> Iterator[bytes]:
        done = 0
        last = 0.0
        for chunk in chunks:
            self.cancel.raise_if_cancelled()
            done += len(chunk)
            now = time.monotonic()
            if now - last >= 0.2:
                last = now
                self.progress("write", done, total, "bytes")
            yield chunk
        self.progress("write", done, done, "bytes")

    def tool(self, name: Literal["pg_dump", "pg_restore", "psql"]) -> PgTool:
        return self._toolbox.get(name)


def _check_space(connection: psycopg.Connection[Any], directory: Path, reserve: int) -> None:
    """Refuse a full_db backup that would not fit, estimated from the database size."""
    row = connection.execute("SELECT pg_database_size(current_database())").fetchone()
    estimate = int(row[0]) if row else 0
    free = shutil.disk_usage(directory).free
    if free < estimate + reserve:
        raise InsufficientSpaceError(
            f"not enough free space in {directory} for a full_db backup: about "
            f"{(estimate + reserve) // (1024 * 1024)} MiB needed (database size "
            f"{estimate // (1024 * 1024)} MiB plus {reserve // (1024 * 1024)} MiB reserve), "
            f"{free // (1024 * 1024)} MiB free; free some space (prune old backups) and try again"
        )


def _components(registry: Registry, names: Sequence[str] | None) -> list[Component]:
    if names is None:
        names = registry.default_components()
    if not names:
        raise BackupFailedError("no component chosen; choose at least one to back up")
    if len(set(names)) != len(names):
        raise BackupFailedError(f"a component is named twice in {list(names)}")
    return [registry.component(name) for name in names]


def run_backup(
    conninfo: str,
    store: BackupStore,
    registry: Registry,
    options: BackupOptions,
    *,
    pg_bin: Path | None = None,
    progress: ProgressCallback = null_progress,
    cancel: CancelToken | None = None,
    keyring: Keyring | None = None,
    encryption: AgeRecipients | None = None,
) -> ArchiveInfo:
    """Write one archive of ``options.components`` and add it to ``store``.

    ``keyring`` (the server's archive keys) seals the archive as this server's
    own; with ``encryption``, every member is encrypted with age. The caller holds the data directory's lock. Nothing is added to the
    store unless every component succeeded.
    """
    cancel = cancel or CancelToken()
    fmt = registry.format(options.format)
    encryptor = None if encryption is None else Encryptor(encryption)
    components = _components(registry, options.components)

    def emit(phase: str, message: str = "") -> None:
        progress(ProgressEvent(operation="backup", phase=phase, unit="steps", message=message))

    emit("snapshot", "opening a consistent snapshot of the database")
    connection = connect(conninfo)
    with connection:
        connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        connection.read_only = True
        connection.execute("SET LOCAL TimeZone = 'UTC'")
        row = connection.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        snapshot = str(row[0])
        schema_version = schema.schema_version(connection)
        toolbox = Toolbox(server_version_num(connection) // 10000, pg_bin)
        if schema_version == 0:
            needing = [c.name for c in components if c.restore_scope != "database"]
            if needing:
                raise BackupFailedError(
                    f"the database has no Odeion schema, so {', '.join(needing)} cannot be "
                    "exported; point the backup at the Odeion database, or back up full_db only"
                )
        if any(c.restore_scope == "database" for c in components):
            store.ensure()
            _check_space(connection, store.directory, options.reserve_bytes)
        created_at = dt.datetime.now(dt.UTC)
        head = Manifest(
            created_at=created_at,
            library_version=__version__,
            server_version=options.server_version,
            schema_version=schema_version,
            format=fmt.name,
            components=tuple(ComponentEntry(c.name, c.payload_version) for c in components),
        )
        try:
            with store.writing() as (temp, stream):
                builder = ArchiveBuilder(
                    fmt, stream, head=head, keyring=keyring, encryptor=encryptor
                )
                for component in components:
                    cancel.raise_if_cancelled()
                    emit("component", f"backing up {component.name}")
                    context = _Context(
                        component=component,
                        connection=connection,
                        snapshot=snapshot,
                        schema_version=schema_version,
                        builder=builder,
                        toolbox=toolbox,
                        conninfo=conninfo,
                        cancel=cancel,
                        progress=progress,
                    )
                    facts: Mapping[str, Any] = component.backup(context)
                    builder.set_facts(component.name, facts)
                emit("finalize", "writing the manifest and sealing the archive")
                manifest = builder.finish()
        except ArchiveError:
            raise
        except psycopg.Error as exc:
            raise BackupFailedError(
                f"the database failed during the backup: {exc}; nothing was added to the "
                "store, check the server and try again"
            ) from exc
        except OSError as exc:
            raise BackupFailedError(
                f"writing the archive failed: {exc}; nothing was added to the store, "
                "check the backup directory (space, permissions) and try again"
            ) from exc
    name = store.new_name(fmt.suffix, created_at)
    path = store.publish(temp, name)
    emit("done", f"created {name}")
    return ArchiveInfo(
        name=name,
        path=path,
        size=path.stat().st_size,
        manifest=manifest,
        authenticity="foreign" if keyring is None else keyring.authenticity(manifest),
    )
