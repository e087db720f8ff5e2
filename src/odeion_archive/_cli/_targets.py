"""The command line's storage targets: ``targets``, ``copy``, and ``--target`` on the others."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from odeion_archive._cli._output import Column, _problem_lines, _problems_json, _say, table_lines
from odeion_archive._cli._parser import EXIT_FAILED, EXIT_OK
from odeion_archive._progress import amount
from odeion_archive.errors import ArchiveInvalidError
from odeion_archive.results import Problem
from odeion_archive.targets import CopyResult, RemoteArchive, TargetStatus

if TYPE_CHECKING:
    from odeion_archive._cli._commands import _Run

__all__ = [
    "REMOTE_COLUMNS",
    "copy_json",
    "copy_lines",
    "remote",
    "remote_json",
    "run_copy",
    "run_list",
    "run_targets",
]

#: The columns of ``list --target``.
REMOTE_COLUMNS: tuple[Column, ...] = (
    Column("NAME", lambda a: a.name),
    Column("SIZE", lambda a: amount(a.size, "bytes"), right=True),
    Column("FORMAT", lambda a: a.format),
    Column("COMPONENTS", lambda a: ",".join(a.components)),
    Column("CREATED (UTC)", lambda a: f"{a.created_at:%Y-%m-%d %H:%M:%S}"),
    Column("COPIED (UTC)", lambda a: f"{a.copied_at:%Y-%m-%d %H:%M:%S}"),
    Column("CHECKED", lambda a: "yes" if a.checked else "no"),
    Column("ORIGIN", lambda a: a.authenticity),
)

_STATUS_COLUMNS: tuple[Column, ...] = (
    Column("NAME", lambda s: s.name),
    Column("KIND", lambda s: s.kind),
    Column("STATE", lambda s: "reachable" if s.reachable else "UNREACHABLE"),
    Column("ARCHIVES", lambda s: str(s.archives) if s.reachable else "-", right=True),
    Column("LAST COPY (UTC)", lambda s: f"{s.last_copy:%Y-%m-%d %H:%M:%S}" if s.last_copy else "-"),
    Column("AFTER BACKUP", lambda s: "copy" if s.copy_after_backup else "-"),
    Column("WHERE", lambda s: s.where or s.error or ""),
)


def _status_json(status: TargetStatus) -> dict[str, Any]:
    return {
        "name": status.name,
        "kind": status.kind,
        "where": status.where,
        "reachable": status.reachable,
        "archives": status.archives,
        "last_copy": status.last_copy.isoformat() if status.last_copy else None,
        "copy_after_backup": status.copy_after_backup,
        "error": status.error,
    }


def copy_json(result: CopyResult) -> dict[str, Any]:
    """A copy's outcome for ``--json``."""
    return {
        "target": result.target,
        "archive": result.archive,
        "ok": result.ok,
        "skipped": result.skipped,
        "size": result.size,
        "sha256": result.sha256,
        "attempts": result.attempts,
        "seconds": round(result.seconds, 3),
        "error": result.error,
    }


def copy_lines(results: Sequence[CopyResult]) -> list[str]:
    """A copy's outcome for people."""
    lines = []
    for r in results:
        if r.error is not None:
            lines.append(f"copy of {r.archive} to {r.target} FAILED: {r.error}")
        elif r.skipped:
            lines.append(f"{r.archive} is on {r.target} already (checked copy)")
        else:
            lines.append(
                f"copied {r.archive} to {r.target} ({amount(r.size, 'bytes')}, sha256 checked, "
                f"{r.seconds:.1f} s)"
            )
    return lines


def remote_json(archive: RemoteArchive) -> dict[str, Any]:
    """An archive on a target for ``--json``."""
    return {
        "target": archive.target,
        "name": archive.name,
        "size": archive.size,
        "format": archive.format,
        "components": list(archive.components),
        "created_at": archive.created_at.isoformat().replace("+00:00", "Z"),
        "copied_at": archive.copied_at.isoformat().replace("+00:00", "Z"),
        "checked": archive.checked,
        "authenticity": archive.authenticity,
    }


def run_targets(run: _Run) -> int:
    """``targets``: each configured target and its state."""
    states = run.archiver.targets()
    lines = (
        table_lines(_STATUS_COLUMNS, states)
        if states
        else [f"no storage targets; configure them in {run.archiver.data_dir / 'targets.toml'}"]
    )
    run.out.result([_status_json(s) for s in states], lines)
    return EXIT_OK


def run_copy(run: _Run) -> int:
    """``copy ARCHIVE --to NAME``: every copy, checked; exit 1 if one failed or was refused.

    Without ``ARCHIVE``, an archive found damaged by its last verification is
    not sent (its line says why and what to do); the others still are.
    """
    results: list[CopyResult] = []
    for name in run.args.to:
        results += run.archiver.copy_to(name, run.args.archive, progress=run.progress)
    run.progress.finish()
    run.out.result(
        [copy_json(r) for r in results],
        copy_lines(results) or ["nothing to copy: the target holds a checked copy of each"],
    )
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED


def run_list(run: _Run) -> int:
    """``list --target NAME``."""
    archives = run.archiver.list_target(run.args.target)
    lines = (
        table_lines(REMOTE_COLUMNS, archives)
        if archives
        else [f"no archives on target {run.args.target}; copy one with 'copy ARCHIVE --to NAME'"]
    )
    run.out.result([remote_json(a) for a in archives], lines)
    return EXIT_OK


def remote(command: Callable[[_Run], int], *, damaged_exit: int | None) -> Callable[[_Run], int]:
    """``command`` on an archive of ``--target``, fetched into the staging area first.

    A fetch that finds the copy damaged ends the command with ``damaged_exit``
    and the problem (``verify``, ``plan``), or, without it, as an error: the
    restore refuses before anything changes.
    """

    def on_target(run: _Run) -> int:
        target = getattr(run.args, "target", None)
        if target is None:
            return command(run)
        name = run.args.archive
        with contextlib.ExitStack() as stack:
            try:
                path = stack.enter_context(run.archiver.fetch(target, name, progress=run.progress))
            except ArchiveInvalidError as exc:
                if damaged_exit is None:
                    raise
                problems = (Problem(None, str(exc)),)
                run.out.result(
                    {"ok": False, "problems": _problems_json(problems)}, _problem_lines(problems)
                )
                return damaged_exit
            run.progress.finish()
            _say(f"fetched {name} from target {target}")
            run.args.archive, run.args.shown_archive = path, f"{target}:{name}"
            try:
                return command(run)
            finally:
                run.args.archive, run.args.shown_archive = name, None
        raise AssertionError("unreachable")  # pragma: no cover - the block returns

    return on_target
