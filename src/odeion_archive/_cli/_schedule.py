"""The commands of the schedule and of retention: ``due``, ``run-due`` and ``prune``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from odeion_archive._cli._output import _say
from odeion_archive._cli._parser import EXIT_FAILED, EXIT_OK, _count
from odeion_archive._duration import Duration
from odeion_archive._retention import RetentionDecision, RetentionRules
from odeion_archive._schedule import SCHEDULE_FILE, Due, RunReport, SchedulePolicy
from odeion_archive.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable

    from odeion_archive._cli._commands import _Run

__all__ = ["add_schedule_commands", "due_command", "prune_command", "run_due_command"]


def _duration(text: str) -> Duration:
    try:
        return Duration.parse(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_prune_options(prune: argparse.ArgumentParser) -> None:
    """The rules of ``prune`` (at least one is needed)."""
    prune.add_argument(
        "--keep-last", type=_count, metavar="N", help="keep the N newest archives (0 or more)"
    )
    for period in ("daily", "weekly", "monthly", "yearly"):
        unit = {"daily": "day", "weekly": "ISO week", "monthly": "month", "yearly": "year"}[period]
        prune.add_argument(
            f"--keep-{period}",
            type=_count,
            metavar="N",
            help=f"keep the newest archive of each of the last N {unit}s that have archives",
        )
    prune.add_argument(
        "--keep-within",
        type=_duration,
        metavar="DURATION",
        help="keep every archive that entered at most DURATION (30d, 12w, 6m, 1y) before "
        "the newest",
    )


def add_schedule_commands(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """The ``due`` and ``run-due`` commands."""
    for name, text in (
        ("due", "show which backup, verification or drill the schedule makes due now"),
        ("run-due", "run what the schedule makes due, then apply its retention (for cron)"),
    ):
        command(name, text).add_argument(
            "--schedule",
            metavar="FILE",
            default=None,
            help=f"the schedule to follow (default: DIR/{SCHEDULE_FILE})",
        )


def _policy(run: _Run) -> SchedulePolicy:
    if run.args.schedule is not None:
        return SchedulePolicy.load(run.args.schedule)
    return SchedulePolicy.from_data_dir(run.archiver.data_dir)


def _due_json(due: Due) -> dict[str, Any]:
    return {
        "at": due.at.isoformat().replace("+00:00", "Z"),
        "due": [{"kind": t.kind, "reason": t.reason, "archive": t.archive} for t in due.tasks],
        "prunes": due.prunes,
        "notes": list(due.notes),
    }


def _due_lines(due: Due, policy: SchedulePolicy) -> list[str]:
    lines = [
        f"due: {t.kind}{f' of {t.archive}' if t.archive else ''} ({t.reason})" for t in due.tasks
    ]
    if not due.tasks:
        lines.append("nothing is due")
    elif due.prunes:
        lines.append(f"then: prune ({policy.retention.describe()})")
    return lines + [f"not due: {note}" for note in due.notes]


def due_command(run: _Run) -> int:
    """``due``: what is due now, and why."""
    policy = _policy(run)
    due = run.archiver.due(policy)
    run.out.result(_due_json(due), _due_lines(due, policy))
    return EXIT_OK


def _report_lines(report: RunReport) -> list[str]:
    lines = [f"{o.task.kind}: {'done' if o.ok else 'FAILED'}: {o.detail}" for o in report.outcomes]
    if not report.outcomes:
        lines.append("nothing is due")
    lines += [f"pruned {name}" for name in report.pruned]
    if report.prune_skipped is not None:
        lines.append(f"retention not applied: {report.prune_skipped}")
    for target, names in report.pruned_on_targets.items():
        lines += [f"pruned {name} from {target}" for name in names]
    lines += [f"retention on {t} FAILED: {why}" for t, why in report.target_errors.items()]
    return lines


def run_due_command(run: _Run) -> int:
    """``run-due``: run what is due; exit code 1 if a task failed."""
    report = run.archiver.run_due(_policy(run), progress=run.progress)
    run.progress.finish()
    data = _due_json(report.due) | {
        "ok": report.ok,
        "tasks": [
            {
                "kind": o.task.kind,
                "reason": o.task.reason,
                "ok": o.ok,
                "detail": o.detail,
                "archive": o.archive,
            }
            for o in report.outcomes
        ],
        "pruned": list(report.pruned),
        "prune_skipped": report.prune_skipped,
        "pruned_on_targets": {t: list(names) for t, names in report.pruned_on_targets.items()},
        "target_errors": dict(report.target_errors),
    }
    run.out.result(data, _report_lines(report))
    return EXIT_OK if report.ok else EXIT_FAILED


def _rules(args: argparse.Namespace) -> RetentionRules:
    rules = RetentionRules(
        keep_last=args.keep_last,
        keep_daily=args.keep_daily,
        keep_weekly=args.keep_weekly,
        keep_monthly=args.keep_monthly,
        keep_yearly=args.keep_yearly,
        keep_within=args.keep_within,
    )
    if not rules.given:
        raise UsageError(
            "say what to keep: --keep-last N, --keep-daily N, --keep-weekly N, "
            "--keep-monthly N, --keep-yearly N or --keep-within DURATION (any combination)"
        )
    return rules


def _kept_lines(kept: list[RetentionDecision]) -> list[str]:
    return [f"keep {d.name} ({', '.join(d.reasons)})" for d in kept]


def prune_command(run: _Run) -> int:
    """``prune``: delete what the rules do not keep (asks first)."""
    from odeion_archive._cli._commands import _confirm  # noqa: PLC0415 - a cycle otherwise

    args = run.args
    rules = _rules(args)
    target: str | None = getattr(args, "target", None)
    where = "" if target is None else f" from {target}"
    if target is None:
        plan = run.archiver.prune_plan(rules)
    else:
        plan = run.archiver.prune_target_plan(target, rules)
    doomed = [d.name for d in plan if not d.keep]
    kept = [d for d in plan if d.keep]
    if args.dry_run:
        run.out.result(
            {
                "deleted": [],
                "would_delete": doomed,
                "kept": [{"name": d.name, "reasons": list(d.reasons)} for d in kept],
            },
            [f"would delete {name}{where}" for name in doomed]
            + (["nothing to delete"] if not doomed else [])
            + _kept_lines(kept),
        )
        return EXIT_OK
    if not doomed:
        run.out.result({"deleted": []}, ["nothing to delete"])
        return EXIT_OK
    if not args.yes:
        _say(f"{rules.describe()}{where} deletes:", *(f"  {n}" for n in doomed))
        question = (
            "Delete this archive?" if len(doomed) == 1 else f"Delete these {len(doomed)} archives?"
        )
        if not _confirm(
            question, yes=False, what="prune deletes archives (see them with --dry-run)"
        ):
            _say("nothing was deleted")
            return EXIT_FAILED
    listing = "list" if target is None else f"list --target {target}"
    run.outcome.before = (
        f"some archives may have been deleted{where}; see what remains with '{listing}'"
    )
    if target is None:
        deleted = run.archiver.prune(rules=rules)
    else:
        deleted = run.archiver.prune_target(target, rules=rules)
    run.outcome.done = (
        f"the prune deleted {len(deleted)} archive{'' if len(deleted) == 1 else 's'}{where}"
    )
    run.out.result(
        {"deleted": deleted}, [f"deleted {n}{where}" for n in deleted] or ["nothing to delete"]
    )
    return EXIT_OK
