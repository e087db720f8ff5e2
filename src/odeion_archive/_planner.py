"""The restore planner: what a restore would do, decided without changing anything.

:func:`plan_restore` is the one place that decides what a restore will do. It
reads the archive's manifest (a bounded read), asks the target database and the
local tools what it needs, lets each component predict its effect (with the
options it declares), and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Literal, Protocol, cast

import attrs
import psycopg

from odeion_archive import _schema as schema
from odeion_archive._age import AgeIdentities
from odeion_archive._archive import ArchiveFile, read_through
from odeion_archive._context import ComponentContext
from odeion_archive._encrypted import open_source
from odeion_archive._keys import Keyring
from odeion_archive._manifest import ContainerPrefix, Manifest
from odeion_archive._postgres import PgTool, connect, server_version_num
from odeion_archive._registry import Registry
from odeion_archive._tools import Toolbox
from odeion_archive.errors import (
    ArchiveInvalidError,
    DecryptionError,
    ManifestTooNewError,
    UnknownComponentError,
    UsageError,
)
from odeion_archive.events import CancelToken, ProgressCallback, null_progress
from odeion_archive.interfaces import (
    Authenticity,
    Component,
    ComponentPlan,
    Conflict,
    Issue,
    RowCounts,
    options_of,
    options_type_of,
)
from odeion_archive.results import RestorePlan

__all__ = [
    "CONFLICTS",
    "ArchiveSource",
    "PlanningContext",
    "RestoreOptions",
    "check_options",
    "components_for",
    "connect",
    "plan_restore",
    "plan_source",
]

CONFLICTS: tuple[Conflict, ...] = ("skip", "overwrite", "rename")


class ArchiveSource(Protocol):
    """What the planner reads of an archive: an open archive file, or one in memory."""

    @property
    def manifest(self) -> Manifest:
        """The archive's manifest."""
        ...

    @property
    def authenticity(self) -> Authenticity:
        """Whether this server made the archive."""
        ...

    def open_member(self, path: str) -> IO[bytes]:
        """A member's bytes, checked against the manifest as they are read."""
        ...


@attrs.frozen
class RestoreOptions:
    """Choices of the host for one restore."""

    mode: str
    conflict: Conflict = "skip"
    #: The options the host passed, by name; each component gets those it declares
    #: (:func:`~odeion_archive.interfaces.options_of`).
    values: Mapping[str, Any] = attrs.field(factory=dict, hash=False)


def check_options(values: Mapping[str, Any], registry: Registry) -> None:
    """Refuse an option no registered component declares (:class:`UsageError`)."""
    known: set[str] = set()
    for component in registry.components().values():
        declared = options_type_of(component)
        if declared is not None:
            known.update(field.name for field in attrs.fields(declared))
    unknown = sorted(set(values) - known)
    if unknown:
        raise UsageError(
            f"unknown restore option {', '.join(map(repr, unknown))}; the components "
            f"take: {', '.join(sorted(known)) or 'none'}"
        )


def components_for(mode: str, registry: Registry) -> tuple[str, ...]:
    """The components a mode restores, as the registry's components declare."""
    modes = registry.modes()
    if mode in modes:
        return modes[mode]
    raise UsageError(f"unknown restore mode {mode!r}; choose one of {', '.join(modes)}")


class PlanningContext(ComponentContext):
    """The Plan- and RestoreContext handed to one component."""

    def __init__(
        self,
        *,
        archive: ArchiveSource,
        component: Component,
        connection: psycopg.Connection[Any],
        options: RestoreOptions,
        schema_version: int,
        toolbox: Toolbox,
        conninfo: str,
        cancel: CancelToken,
        progress: ProgressCallback,
        plan: ComponentPlan | None = None,
    ) -> None:
        entry = archive.manifest.component(component.name)
        super().__init__(
            operation="restore",
            component=entry.name,
            conninfo=conninfo,
            toolbox=toolbox,
            progress=progress,
        )
        self.manifest: Manifest = archive.manifest
        self.entry = entry
        self.connection = connection
        self.conflict: Conflict = options.conflict
        self.schema_version = schema_version
        try:
            self.options = options_of(component, options.values)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"the options of {component.name} are not valid: {exc}") from exc
        self.cancel = cancel
        self.plan = plan
        self.authenticity: Authenticity = archive.authenticity
        self._archive = archive

    def open_member(self, path: str) -> IO[bytes]:
        return self._archive.open_member(path)

    def open_checked(
        self,
        path: str,
        on_bytes: Callable[[int, int], None] | None = None,
        *,
        prefix: ContainerPrefix | None = None,
    ) -> IO[bytes]:
        opener = getattr(self._archive, "open_checked", None)
        if opener is not None:
            return cast("IO[bytes]", opener(path, on_bytes, prefix=prefix))
        # An archive held in memory: nothing can change it between two readings.
        with self._archive.open_member(path) as stream:
            read_through(stream, self._archive.manifest.member(path).size, on_bytes, 1 << 20)
        return self._archive.open_member(path)

    def tool(self, name: Literal["pg_dump", "pg_restore", "psql"]) -> PgTool | None:
        return self._toolbox.find(name)

    def tools(self, name: Literal["pg_dump", "pg_restore", "psql"]) -> Sequence[PgTool]:
        return self._toolbox.all(name)


def _blocked(options: RestoreOptions, components: tuple[str, ...], issue: Issue) -> RestorePlan:
    return RestorePlan(
        mode=options.mode, conflict=options.conflict, components=components, blockers=(issue,)
    )


def plan_restore(
    path: Path,
    options: RestoreOptions,
    *,
    registry: Registry,
    conninfo: str,
    pg_bin: Path | None = None,
    row_decisions: bool = True,
    keyring: Keyring | None = None,
    identities: AgeIdentities | None = None,
) -> RestorePlan:
    """Decide whether and how the archive at ``path`` restores; change nothing.

    With ``row_decisions`` false, components restored inside the transaction
    (the JSON ones) are not asked for their per-row predictions: the restore
    makes those decisions itself, once, inside its transaction. ``keyring`` (the
    server's archive keys) tells this server's archives from others;
    ``identities`` open an encrypted archive (blockers ``key_missing`` and
    ``key_wrong`` if they do not).
    """
    names = components_for(options.mode, registry)
    if options.conflict not in CONFLICTS:
        raise UsageError(
            f"unknown conflict strategy {options.conflict!r}; choose one of {CONFLICTS}"
        )
    try:
        archive = open_source(ArchiveFile.open(path, registry, keyring=keyring), identities)
    except ManifestTooNewError as exc:
        return _blocked(options, names, Issue("manifest_too_new", str(exc)))
    except DecryptionError as exc:
        return _blocked(options, names, Issue(exc.code, str(exc)))
    except ArchiveInvalidError as exc:
        return _blocked(
            options, names, Issue("archive_invalid", f"{exc} (the archive cannot be used)")
        )
    with archive, connect(conninfo) as connection:
        return plan_source(
            archive,
            options,
            registry=registry,
            connection=connection,
            conninfo=conninfo,
            pg_bin=pg_bin,
            row_decisions=row_decisions,
        )


def plan_source(
    source: ArchiveSource,
    options: RestoreOptions,
    *,
    registry: Registry,
    connection: psycopg.Connection[Any],
    conninfo: str,
    pg_bin: Path | None = None,
    row_decisions: bool = True,
) -> RestorePlan:
    """Plan the restore of an archive already open (any :class:`ArchiveSource`); change nothing.

    ``connection`` is rolled back whatever happens. :func:`plan_restore` opens
    the archive file and calls this; a test or a host with an archive of its
    own (in memory, say) calls it directly.
    """
    names = components_for(options.mode, registry)
    try:
        return _plan(
            source,
            names,
            options,
            registry,
            connection,
            conninfo,
            pg_bin,
            row_decisions=row_decisions,
        )
    finally:
        connection.rollback()


def _plan(
    archive: ArchiveSource,
    names: tuple[str, ...],
    options: RestoreOptions,
    registry: Registry,
    connection: psycopg.Connection[Any],
    conninfo: str,
    pg_bin: Path | None,
    *,
    row_decisions: bool,
) -> RestorePlan:
    manifest = archive.manifest
    blockers: list[Issue] = []
    warnings: list[Issue] = []
    steps: list[str] = []
    counts: dict[str, RowCounts] = {}
    renames: dict[str, Mapping[str, str]] = {}

    components = _lookup_components(names, options, manifest, registry, blockers)
    target_schema = schema.schema_version(connection)
    database_scope = any(c.restore_scope == "database" for c in components)
    blockers.extend(_schema_blockers(manifest.schema_version, target_schema, database_scope))
    if archive.authenticity == "tampered":
        blockers.append(_tampered_issue(manifest))

    toolbox = Toolbox(server_version_num(connection) // 10000, pg_bin)
    if blockers:
        return RestorePlan(
            mode=options.mode,
            conflict=options.conflict,
            components=names,
            blockers=tuple(blockers),
            warnings=(_rescan_warning(),),
            authenticity=archive.authenticity,
        )
    for component in components:
        if not row_decisions and component.restore_scope == "transaction":
            continue
        context = PlanningContext(
            archive=archive,
            component=component,
            connection=connection,
            options=options,
            schema_version=target_schema,
            toolbox=toolbox,
            conninfo=conninfo,
            cancel=CancelToken(),
            progress=null_progress,
        )
        try:
            part = component.plan(context)
        except ArchiveInvalidError as exc:
            part = ComponentPlan(blockers=(Issue("archive_invalid", str(exc)),))
        blockers.extend(part.blockers)
        warnings.extend(part.warnings)
        steps.extend(part.steps)
        counts.update(part.counts)
        renames.update(part.renames)
    if archive.authenticity == "foreign":
        _foreign_issues(components, warnings)
    warnings.append(_rescan_warning())
    return RestorePlan(
        mode=options.mode,
        conflict=options.conflict,
        components=names,
        blockers=tuple(blockers),
        warnings=tuple(warnings),
        steps=tuple(steps),
        counts=counts,
        renames=renames,
        schema_version=manifest.schema_version if database_scope else target_schema,
        authenticity=archive.authenticity,
    )


def _lookup_components(
    names: tuple[str, ...],
    options: RestoreOptions,
    manifest: Manifest,
    registry: Registry,
    blockers: list[Issue],
) -> list[Component]:
    """The components of the mode; what the archive or the registry lacks goes to ``blockers``."""
    held = ", ".join(manifest.component_names) or "nothing"
    blockers.extend(
        Issue(
            "component_missing",
            f"the mode {options.mode!r} needs the component {name!r}, which this archive "
            f"does not hold (it holds: {held}); choose a mode that matches the archive, or "
            "another archive",
        )
        for name in names
        if not manifest.has_component(name)
    )
    components: list[Component] = []
    for name in names:
        try:
            components.append(registry.component(name))
        except UnknownComponentError as exc:
            blockers.append(Issue("component_missing", str(exc)))
    blockers.extend(
        Issue(
            "component_too_new",
            f"the archive's {component.name} component has payload version {found}, but this "
            f"odeion-archive restores {component.name} payload versions up to "
            f"{component.payload_version}; upgrade odeion-archive to restore it",
        )
        for component in components
        if manifest.has_component(component.name)
        and (found := manifest.component(component.name).payload_version)
        > component.payload_version
    )

    return components


def _schema_blockers(archived: int, target_schema: int, database_scope: bool) -> list[Issue]:
    """What the archive's and the target's schema versions forbid."""
    found: list[Issue] = []
    if archived > schema.LATEST_SCHEMA_VERSION:
        found.append(
            Issue(
                "schema_too_new",
                f"the archive was taken at schema version {archived}, newer than "
                f"this odeion-archive knows ({schema.LATEST_SCHEMA_VERSION}); upgrade the Odeion "
                "server (and odeion-archive) first",
            )
        )
    elif not database_scope and target_schema == 0:
        found.append(
            Issue(
                "schema_missing",
                "this database has no Odeion schema yet; start the Odeion server once so it "
                "creates its tables, or restore the full_db component",
            )
        )
    elif not database_scope and archived > target_schema:
        found.append(
            Issue(
                "schema_too_new",
                f"the archive was taken at schema version {archived}, but this "
                f"database is at version {target_schema}; upgrade the Odeion server (which "
                "migrates its database) before restoring",
            )
        )
    return found


def _tampered_issue(manifest: Manifest) -> Issue:
    key = manifest.authentication.key_id if manifest.authentication else "?"
    return Issue(
        "archive_tampered",
        f"the archive carries the seal of this server's key {key}, but its manifest does "
        "not match the seal: it was changed after this server made it; do not restore it, "
        "use another archive (and find out where this copy has been)",
    )


def _foreign_issues(components: Sequence[Component], warnings: list[Issue]) -> None:
    """The warning of restoring rows of an archive this server did not make.

    A component that replaces the whole database judges such an archive itself
    (its plan sees ``context.authenticity``).
    """
    origin = (
        "this archive was not made by this server: it carries no seal of this server's "
        "keys (it came from another server or an upload, or was made before archives "
        "were sealed)"
    )
    if any(c.restore_scope != "database" for c in components):
        warnings.append(
            Issue(
                "foreign_archive",
                f"{origin}; its data is validated row by row before anything is written",
            )
        )


def _rescan_warning() -> Issue:
    return Issue(
        "rescan_required",
        "after the restore the server must rescan its libraries so that the database "
        "matches the media files on disk",
    )
