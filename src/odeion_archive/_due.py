"""What a schedule makes due, computed from the store's records only, and running it.

Every time comes from the store's records (when an archive entered the store,
its last verification and last drill) and the moment ``now`` the caller
passes; never from file times or another reading of the clock.

- A backup is due when no archive created here (not imported) holding the
  policy's components entered the store within ``backup_every``.
- A verification of every archive is due when an archive was last verified
  (or, never verified, entered the store) ``verify_every`` ago or longer.
- A drill is due when no archive was drilled within ``drill_every``; it
  restores the archive the policy names (by default the newest holding full_db).
"""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

from odeion_archive._duration import Duration, age_text
from odeion_archive._schedule import Due, DueTask, RunReport, SchedulePolicy, TaskOutcome
from odeion_archive._store import CLOCK_SKEW
from odeion_archive.errors import ArchiveError, CancelledError, PluginError, UsageError
from odeion_archive.events import CancelToken, ProgressCallback
from odeion_archive.results import ArchiveInfo

if TYPE_CHECKING:
    from odeion_archive._archiver import Archiver
    from odeion_archive._registry import Registry

__all__ = ["check_policy", "compute_due", "run_due"]


def _moment(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return dt.datetime.now(dt.UTC)
    if now.tzinfo is None:
        raise UsageError("now must carry a time zone (datetime.now(datetime.UTC))")
    return now.astimezone(dt.UTC)


_WRONG_CLOCK = "after now: a clock was wrong, so it is due again"


def _future(moment: dt.datetime, now: dt.datetime) -> bool:
    """Whether a record is dated after ``now`` (a clock that ran ahead, then was set right).

    Such a record never postpones a task: backups would otherwise stop until that date.
    """
    return moment > now + CLOCK_SKEW


def drill_target(infos: Sequence[ArchiveInfo], policy: SchedulePolicy) -> ArchiveInfo | None:
    """The archive a drill restores now (``infos`` newest first, as the store lists them)."""
    for info in infos:
        if policy.drill_archive == "newest" or "full_db" in info.components:
            return info
    return None


def _backup(
    infos: Sequence[ArchiveInfo], every: Duration, wanted: Sequence[str], now: dt.datetime
) -> DueTask | str:
    made = [
        info.entered_at
        for info in infos
        if info.entered_how == "created" and info.entered_at is not None
        if set(wanted) <= set(info.components)
    ]
    if not made:
        return DueTask("backup", f"no backup of {', '.join(wanted)} made here yet")
    last = max(made)
    if _future(last, now):
        return DueTask("backup", f"the last backup is dated {last:%Y-%m-%d %H:%M}Z; {_WRONG_CLOCK}")
    if every.after(last) <= now:
        return DueTask("backup", f"last backup {age_text(now - last)} ago, every {every}")
    return f"backup: last {age_text(now - last)} ago, next in {age_text(every.after(last) - now)}"


def _verification(infos: Sequence[ArchiveInfo], every: Duration, now: dt.datetime) -> DueTask | str:
    checked = {
        info.name: info.last_verification.at if info.last_verification else info.entered_at
        for info in infos
        if info.entered_at is not None
    }
    if not checked:
        return "verification: no archives yet"
    stale = sorted(
        (at, name) for name, at in checked.items() if every.after(at) <= now or _future(at, now)
    )
    if stale:
        at, name = stale[0]
        return DueTask(
            "verification",
            f"{len(stale)} of {len(checked)} archives not verified for {every} or more "
            f"(the longest: {name}, {age_text(now - at)})",
        )
    oldest = min(checked.values())
    return f"verification: next in {age_text(every.after(oldest) - now)}"


def _drill(
    infos: Sequence[ArchiveInfo], policy: SchedulePolicy, every: Duration, now: dt.datetime
) -> DueTask | str:
    target = drill_target(infos, policy)
    if target is None:
        return "drill: no archive holds full_db yet"
    drills = [info.last_drill.at for info in infos if info.last_drill is not None]
    if not drills:
        return DueTask("drill", "no restore drill yet", target.name)
    last = max(drills)
    if _future(last, now):
        return DueTask(
            "drill", f"the last drill is dated {last:%Y-%m-%d %H:%M}Z; {_WRONG_CLOCK}", target.name
        )
    if every.after(last) <= now:
        return DueTask(
            "drill", f"last drill {age_text(now - last)} ago, every {every}", target.name
        )
    return f"drill: last {age_text(now - last)} ago, next in {age_text(every.after(last) - now)}"


def check_policy(policy: SchedulePolicy, registry: Registry) -> None:
    """Refuse a policy whose backups could never be made: an unknown format or component.

    Found by ``due`` (which an administrator runs to check a schedule) and
    before ``run-due`` starts, rather than as a failed backup at every tick.
    """
    try:
        registry.format(policy.format)
        for name in policy.components or ():
            registry.component(name)
    except PluginError as exc:
        raise UsageError(f"the schedule cannot be followed: {exc}; correct it") from None


def compute_due(
    infos: Sequence[ArchiveInfo],
    policy: SchedulePolicy,
    now: dt.datetime | None,
    default_components: Sequence[str],
) -> Due:
    """What ``policy`` makes due at ``now`` for the archives ``infos`` (newest first)."""
    moment = _moment(now)
    found: builtins.list[DueTask | str] = []
    if policy.backup_every is not None:
        wanted = policy.components if policy.components is not None else default_components
        found.append(_backup(infos, policy.backup_every, wanted, moment))
    if policy.verify_every is not None:
        found.append(_verification(infos, policy.verify_every, moment))
    if policy.drill_every is not None:
        found.append(_drill(infos, policy, policy.drill_every, moment))
    return Due(
        at=moment,
        tasks=tuple(item for item in found if isinstance(item, DueTask)),
        prunes=policy.retention.given,
        notes=tuple(item for item in found if isinstance(item, str)),
    )


def _run_backup(
    archiver: Archiver,
    policy: SchedulePolicy,
    task: DueTask,
    progress: ProgressCallback,
    cancel: CancelToken | None,
) -> TaskOutcome:
    result = archiver.create(
        components=policy.components, format=policy.format, progress=progress, cancel=cancel
    )
    name = result.archive.name
    return TaskOutcome(task, True, f"created {name} in {result.seconds:.1f} s", name)


def _run_verification(
    archiver: Archiver, task: DueTask, progress: ProgressCallback, cancel: CancelToken | None
) -> TaskOutcome:
    started = dt.datetime.now(dt.UTC)
    archiver.verify_all(progress=progress, cancel=cancel)
    infos = archiver.list()
    damaged = [
        info.name
        for info in infos
        if info.last_verification is not None
        and info.last_verification.at >= started
        and not info.last_verification.passed
    ]
    if damaged:
        return TaskOutcome(task, False, f"damaged: {', '.join(damaged)}")
    return TaskOutcome(task, True, f"verified {len(infos)} archives: intact")


def _run_drill(
    archiver: Archiver,
    policy: SchedulePolicy,
    task: DueTask,
    progress: ProgressCallback,
    cancel: CancelToken | None,
) -> TaskOutcome:
    # After a backup that just ran, the newest archive is the new one.
    target = drill_target(archiver.list(), policy)
    if target is None:
        return TaskOutcome(task, False, "no archive to drill")
    started = dt.datetime.now(dt.UTC)
    archiver.drill(target.name, progress=progress, cancel=cancel)
    record = archiver.store.info(target.path).last_drill
    if record is None or record.at < started:
        return TaskOutcome(task, False, "the drill recorded no outcome", target.name)
    if not record.passed:
        return TaskOutcome(task, False, f"failed: {record.reason}", target.name)
    seconds = f" (restore {record.seconds:.1f} s)" if record.seconds is not None else ""
    return TaskOutcome(task, True, f"drilled {target.name}: passed{seconds}", target.name)


def _prune_targets(
    archiver: Archiver, policy: SchedulePolicy
) -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
    """The policy's retention on every storage target (each copy dated as the store dates it)."""
    pruned: dict[str, tuple[str, ...]] = {}
    errors: dict[str, str] = {}
    for target in archiver.target_names():
        try:
            pruned[target] = tuple(archiver.prune_target(target, rules=policy.retention))
        except ArchiveError as exc:
            errors[target] = str(exc)
    return pruned, errors


def run_due(
    archiver: Archiver,
    policy: SchedulePolicy,
    now: dt.datetime | None,
    progress: ProgressCallback,
    cancel: CancelToken | None,
) -> RunReport:
    """Run what is due, in order; then apply retention if every task succeeded.

    A task that fails is reported (its failure hook has fired) and the next
    runs; cancellation stops everything.
    """
    due = archiver.due(policy, now=now)
    outcomes = []
    for task in due.tasks:
        if cancel is not None:
            cancel.raise_if_cancelled()
        try:
            if task.kind == "backup":
                outcome = _run_backup(archiver, policy, task, progress, cancel)
            elif task.kind == "verification":
                outcome = _run_verification(archiver, task, progress, cancel)
            else:
                outcome = _run_drill(archiver, policy, task, progress, cancel)
        except CancelledError:
            raise
        except (ArchiveError, OSError) as exc:
            outcome = TaskOutcome(task, False, f"failed: {exc}", task.archive)
        outcomes.append(outcome)
    report = RunReport(due, tuple(outcomes))
    if not policy.retention.given:
        return report
    if not report.ok:
        failed = ", ".join(o.task.kind for o in outcomes if not o.ok)
        return RunReport(
            due,
            report.outcomes,
            prune_skipped=f"the {failed} failed; nothing is pruned until a run succeeds",
        )
    pruned = archiver.prune(rules=policy.retention)
    on_targets, errors = _prune_targets(archiver, policy)
    return RunReport(
        due,
        report.outcomes,
        pruned=tuple(pruned),
        pruned_on_targets=on_targets,
        target_errors=errors,
    )
