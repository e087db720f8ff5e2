"""The restore that carries out a plan.

:func:`run_restore` plans again (:mod:`odeion_archive._planner`), refuses a
plan with blockers, and carries the plan out: the components of the
transaction scope inside one transaction, a component of the database scope
(``full_db``) by replacing the database atomically in a session of its own.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import attrs
import psycopg

from odeion_archive import _schema as schema
from odeion_archive._age import AgeIdentities
from odeion_archive._archive import ArchiveFile
from odeion_archive._encrypted import open_source
from odeion_archive._keys import Keyring
from odeion_archive._planner import (
    CONFLICTS,
    PlanningContext,
    RestoreOptions,
    check_options,
    components_for,
    plan_restore,
)
from odeion_archive._postgres import connect, server_version_num
from odeion_archive._registry import Registry
from odeion_archive._tools import Toolbox
from odeion_archive.errors import (
    ArchiveError,
    CorruptArchiveError,
    RestoreBlockedError,
    RestoreFailedError,
    UsageError,
)
from odeion_archive.events import CancelToken, ProgressCallback, ProgressEvent, null_progress
from odeion_archive.interfaces import (
    ComponentPlan,
    InputChecker,
    Issue,
)
from odeion_archive.results import RestorePlan, RestoreResult

__all__ = [
    "CONFLICTS",
    "RestoreOptions",
    "blocked_reason",
    "check_options",
    "components_for",
    "plan_restore",
    "run_restore",
]


def run_restore(
    path: Path,
    options: RestoreOptions,
    *,
    registry: Registry,
    conninfo: str,
    pg_bin: Path | None = None,
    progress: ProgressCallback = null_progress,
    cancel: CancelToken | None = None,
    expected: RestorePlan | None = None,
    keyring: Keyring | None = None,
    identities: AgeIdentities | None = None,
) -> RestoreResult:
    """Check, then restore; the database is unchanged unless it all succeeds.

    The checks that need no per-row work run first (blockers refuse the
    restore); the components then decide and apply inside one transaction. With
    ``expected`` (the plan the host showed), a restore whose decisions differ
    from it is refused: the database changed since.

    The caller holds the data directory's lock.
    """
    cancel = cancel or CancelToken()
    started = time.monotonic()
    if expected is not None and (expected.mode, expected.conflict) != (
        options.mode,
        options.conflict,
    ):
        raise UsageError(
            f"the plan given is for mode {expected.mode!r} with {expected.conflict!r}, not "
            f"{options.mode!r} with {options.conflict!r}; plan the restore you mean to run"
        )
    checked = plan_restore(
        path,
        options,
        registry=registry,
        conninfo=conninfo,
        pg_bin=pg_bin,
        row_decisions=False,
        keyring=keyring,
        identities=identities,
    )
    if not checked.can_restore:
        raise RestoreBlockedError(blocked_reason(checked.blockers), checked)
    components = [registry.component(name) for name in checked.components]
    done: list[ComponentPlan] = []
    with (
        open_source(ArchiveFile.open(path, registry, keyring=keyring), identities) as archive,
        connect(conninfo) as connection,
    ):
        if archive.authenticity != checked.authenticity:
            raise CorruptArchiveError(
                f"the archive was {checked.authenticity} when planned and is "
                f"{archive.authenticity} now: the file changed; nothing was changed, "
                "plan again"
            )
        # A damaged archive must not change the database in any mode, even where the
        # damage lies in a member this mode does not use: the container's seal covers
        # every byte. The members used are checked against their sha256 as they stream.
        report = archive.check_container()
        if not report.ok:
            details = "; ".join(
                f"{p.member or 'container'}: {p.message}" for p in report.problems[:3]
            )
            raise CorruptArchiveError(
                f"the archive is damaged ({details}); nothing was changed, restore from an "
                "intact copy"
            )
        toolbox = Toolbox(server_version_num(connection) // 10000, pg_bin)
        target_schema = schema.schema_version(connection)
        connection.rollback()
        try:
            with connection.transaction():
                reviewed = (
                    None
                    if expected is None
                    else ComponentPlan(
                        warnings=expected.warnings, counts=expected.counts, renames=expected.renames
                    )
                )
                contexts = [
                    PlanningContext(
                        archive=archive,
                        component=component,
                        connection=connection,
                        options=options,
                        schema_version=target_schema,
                        toolbox=toolbox,
                        conninfo=conninfo,
                        cancel=cancel,
                        progress=progress,
                        plan=reviewed,
                    )
                    for component in components
                ]
                # Every component's input is checked before any component locks a table.
                for component, context in zip(components, contexts, strict=True):
                    if isinstance(component, InputChecker):
                        component.check_input(context)
                for component, context in zip(components, contexts, strict=True):
                    cancel.raise_if_cancelled()
                    progress(
                        ProgressEvent(
                            operation="restore",
                            phase="component",
                            component=component.name,
                            unit="steps",
                            message=f"restoring {component.name}",
                        )
                    )
                    done.append(component.restore(context))
                    cancel.raise_if_cancelled()
        except ArchiveError:
            raise
        except psycopg.Error as exc:
            raise RestoreFailedError(
                f"the restore failed and was rolled back, the database is unchanged: {exc}"
            ) from exc
        progress(ProgressEvent(operation="restore", phase="done"))
        connection.rollback()
        schema_after = schema.schema_version(connection)
        connection.rollback()
    carried_out = attrs.evolve(
        checked,
        warnings=_merge_issues(checked.warnings, *(p.warnings for p in done)),
        steps=checked.steps
        + tuple(step for p in done for step in p.steps if step not in checked.steps),
        counts={**checked.counts, **{t: c for p in done for t, c in p.counts.items()}},
        renames={**checked.renames, **{t: r for p in done for t, r in p.renames.items()}},
        schema_version=schema_after,
    )
    return RestoreResult(
        plan=carried_out, schema_version=schema_after, seconds=time.monotonic() - started
    )


def blocked_reason(blockers: Sequence[Issue]) -> str:
    """Why a restore cannot run: each blocker with its code."""
    return "the archive cannot be restored: " + "; ".join(
        f"[{b.code}] {b.message}" for b in blockers
    )


def _merge_issues(*groups: tuple[Issue, ...]) -> tuple[Issue, ...]:
    merged: list[Issue] = []
    for group in groups:
        merged.extend(issue for issue in group if issue not in merged)
    return tuple(merged)
