"""Archives of the JSON components in memory, planned and restored by the real host.

:func:`take_backup` runs a real backup (:meth:`Archiver.create`) and keeps the
archive's manifest and members as bytes, so that a test can edit a member
(:meth:`Archive.replace` keeps the manifest's sizes and hashes in step, as a
hostile archive would). :func:`plan` hands the archive in memory to the real
planner (:func:`odeion_archive._planner.plan_source`); :func:`restore` writes it
as a sealed archive file and runs the real restore (:meth:`Archiver.restore`).
Nothing here knows a component, a mode or how plans merge: the registry and
the planner decide.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import attrs
import psycopg

from odeion_archive import Archiver, Registry
from odeion_archive._keys import KEY_FILE, load_or_create
from odeion_archive._planner import RestoreOptions, plan_source
from odeion_archive.interfaces import Authenticity, Conflict, Issue
from odeion_archive.results import RestorePlan
from odeion_archive.testing import (
    ArchiveBuilder,
    ArchiveFile,
    ComponentEntry,
    Manifest,
    MemberEntry,
)

REGISTRY = Registry.default(entry_points=False)
#: The restore modes of the JSON components, as the registry declares them.
MODES: Mapping[str, tuple[str, ...]] = {
    mode: names
    for mode, names in REGISTRY.modes().items()
    if names and set(names) <= {"users_auth", "settings"}
}


@attrs.frozen
class Archive:
    """An archive held in memory (an :class:`~odeion_archive._planner.ArchiveSource`)."""

    manifest: Manifest
    members: Mapping[str, bytes] = attrs.field(hash=False)
    authenticity: Authenticity = "own"

    def open_member(self, path: str) -> IO[bytes]:
        return io.BytesIO(self.members[path])

    def replace(self, path: str, data: bytes) -> Archive:
        """The archive with one member's bytes replaced, its size and sha256 recorded."""
        entry = MemberEntry(path, len(data), hashlib.sha256(data).hexdigest())
        components = tuple(
            attrs.evolve(c, members=tuple(entry if m.path == path else m for m in c.members))
            for c in self.manifest.components
        )
        manifest = attrs.evolve(self.manifest, components=components)
        return Archive(manifest, {**self.members, path: data})

    def write(self, path: Path, data_dir: Path) -> Path:
        """Write the archive to ``path``, sealed with the key of ``data_dir``'s server."""
        head = attrs.evolve(
            self.manifest,
            authentication=None,
            components=tuple(
                ComponentEntry(c.name, c.payload_version) for c in self.manifest.components
            ),
        )
        keyring = load_or_create(data_dir / KEY_FILE)
        with path.open("wb") as stream:
            builder = ArchiveBuilder(
                REGISTRY.format(head.format), stream, head=head, keyring=keyring
            )
            for component in self.manifest.components:
                for member in component.members:
                    name = member.path.removeprefix(f"{component.name}/")
                    builder.add_member(component.name, name, [self.members[member.path]])
                builder.set_facts(component.name, component.facts)
            builder.finish()
        return path


def take_backup(conninfo: str, names: Iterable[str] = ("users_auth", "settings")) -> Archive:
    """A real backup of the components ``names`` of a database, read back into memory."""
    with tempfile.TemporaryDirectory(prefix="odeion-json-") as data_dir:
        archiver = Archiver(data_dir, database_url=conninfo, registry=REGISTRY)
        path = archiver.create(components=list(names)).archive.path
        with ArchiveFile.open(path, REGISTRY) as archive:
            members = {
                member.path: archive.open_member(member.path).read()
                for component in archive.manifest.components
                for member in component.members
            }
            return Archive(archive.manifest, members)


def plan(
    conninfo: str,
    archive: Archive,
    mode: str,
    conflict: Conflict,
    options: Mapping[str, Any] | None = None,
) -> RestorePlan:
    """The real planner's plan of restoring ``archive``; nothing is changed."""
    with psycopg.connect(conninfo) as connection:
        planned = plan_source(
            archive,
            RestoreOptions(mode, conflict, dict(options or {})),
            registry=REGISTRY,
            connection=connection,
            conninfo=conninfo,
        )
        # The connection must still be usable: a plan never leaves it failed.
        connection.execute("SELECT 1")
    return planned


def restore(
    conninfo: str,
    archive: Archive,
    mode: str,
    conflict: Conflict,
    options: Mapping[str, Any] | None = None,
    *,
    planned: RestorePlan | None = None,
) -> RestorePlan:
    """Restore ``archive`` with the real restore, held to ``planned`` (planned first if not given).

    Returns the plan as carried out (the counts and renames the restore made).
    """
    planned = planned or plan(conninfo, archive, mode, conflict, options)
    with tempfile.TemporaryDirectory(prefix="odeion-json-") as directory:
        data_dir = Path(directory)
        path = archive.write(data_dir / "archive", data_dir)
        archiver = Archiver(data_dir, database_url=conninfo, registry=REGISTRY)
        return archiver.restore(path, mode, conflict, expected=planned, **dict(options or {})).plan


def codes(issues: Iterable[Issue]) -> list[str]:
    return [issue.code for issue in issues]


def issues(planned: RestorePlan) -> list[Issue]:
    """The plan's blockers, then its warnings."""
    return [*planned.blockers, *planned.warnings]


# -- databases and their contents ------------------------------------------------

JSON_TABLES = ("users", "invite_codes", "api_tokens", "system_settings")


def fresh_database(conninfo: str, version: int, *, seeded: bool = False) -> str:
    """Migrate the empty database ``conninfo`` to ``version``, seeded like the fixtures if asked."""
    from odeion_archive._schema import migrate
    from odeion_archive.sample import SeedScale, seed

    with psycopg.connect(conninfo) as conn:
        migrate(conn, version)
        if seeded:
            with conn.transaction():
                seed(conn, SeedScale.tiny(), seed=0)
    return conninfo


def execute(conninfo: str, *statements: str | tuple[str, tuple[Any, ...]]) -> None:
    """Run statements in one committed transaction."""
    with psycopg.connect(conninfo) as conn, conn.transaction():
        for statement in statements:
            if isinstance(statement, tuple):
                conn.execute(statement[0].encode(), statement[1])
            else:
                conn.execute(statement.encode())


def query(conninfo: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The rows of one query."""
    with psycopg.connect(conninfo) as conn:
        return [tuple(row) for row in conn.execute(statement.encode(), params).fetchall()]


def json_tables(conninfo: str) -> dict[str, list[tuple[Any, ...]]]:
    """The JSON components' tables, API tokens by owner name (their ids are not carried)."""
    return {
        "users": query(conninfo, "SELECT * FROM users ORDER BY id"),
        "invite_codes": query(conninfo, "SELECT * FROM invite_codes ORDER BY code"),
        "api_tokens": query(
            conninfo,
            "SELECT u.username, t.name, t.token_hash, t.created_at, t.last_used_at "
            "FROM api_tokens t JOIN users u ON u.id = t.user_id ORDER BY 1, 2",
        ),
        "system_settings": query(conninfo, "SELECT * FROM system_settings ORDER BY key"),
    }
