"""The commands that prove backups: ``drill`` and ``verify --all``, and what they print."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from odeion_archive._cli._output import _problem_lines, _problems_json
from odeion_archive._cli._parser import EXIT_OK, EXIT_VERIFY, option_values
from odeion_archive.errors import UsageError
from odeion_archive.results import DrillReport, VerifyAllReport

if TYPE_CHECKING:
    from odeion_archive._cli._commands import _Run

__all__ = ["drill_command", "verify_all_command"]


def _drill_json(report: DrillReport) -> dict[str, Any]:
    return {
        "archive": report.archive,
        "started_at": report.started_at.isoformat().replace("+00:00", "Z"),
        "mode": report.mode,
        "scratch": report.scratch,
        "restore_seconds": report.restore_seconds,
        "passed": report.passed,
        "reason": report.reason,
        "checks": [
            {"name": check.name, "passed": check.passed, "detail": check.detail}
            for check in report.checks
        ],
    }


def _drill_lines(report: DrillReport) -> list[str]:
    verdict = "passed" if report.passed else "FAILED"
    took = (
        f"restored in {report.restore_seconds:.1f} s"
        if report.restore_seconds is not None
        else "the restore did not finish"
    )
    lines = [f"drill of {report.archive} ({report.mode}, scratch {report.scratch}): {verdict}"]
    lines.append(f"  {took}")
    lines += [
        f"  {'ok    ' if check.passed else 'FAILED'} {check.name}: {check.detail}"
        for check in report.checks
    ]
    if report.reason is not None:
        lines.append(f"  reason: {report.reason}")
    return lines


def drill_command(run: _Run) -> int:
    """``drill ARCHIVE``: exit 0 if the drill passed, 4 if it failed."""
    report = run.archiver.drill(run.args.archive, progress=run.progress, **option_values(run.args))
    run.progress.finish()
    run.out.result(_drill_json(report), _drill_lines(report))
    return EXIT_OK if report.passed else EXIT_VERIFY


def _verify_all_lines(report: VerifyAllReport) -> list[str]:
    lines: list[str] = [] if report.reports else ["no archives to verify"]
    for name, single in report.reports.items():
        if single.ok:
            lines.append(f"{name}: ok")
            continue
        rotted = " (DAMAGED since an earlier verification)"
        lines.append(f"{name}: DAMAGED{rotted if name in report.damaged_since_verified else ''}")
        lines += [f"  {line}" for line in _problem_lines(single.problems)]
    for target, copies in report.targets.items():
        lines.append(
            f"target {target}: {len(copies)} copies" if copies else f"target {target}: no copies"
        )
        for name, single in copies.items():
            lines.append(f"  {name}: {'ok' if single.ok else 'DAMAGED'}")
            lines += [f"    {line}" for line in _problem_lines(single.problems)]
    lines += [f"target {target}: NOT REACHED: {why}" for target, why in report.unreachable.items()]
    return lines


def verify_all_command(run: _Run) -> int:
    """``verify --all``: exit 0 if every archive is intact, 4 otherwise."""
    if run.args.archive is not None:
        raise UsageError("give either an ARCHIVE or --all, not both")
    if getattr(run.args, "target", None) is not None:
        raise UsageError(
            "verify --all checks the archives of this store and the copies on every configured "
            "target; to check one copy, verify it by name with --target"
        )
    report = run.archiver.verify_all(progress=run.progress)
    run.progress.finish()
    run.out.result(
        {
            "ok": report.ok,
            "archives": {
                name: {"ok": single.ok, "problems": _problems_json(single.problems)}
                for name, single in report.reports.items()
            },
            "damaged_since_verified": list(report.damaged_since_verified),
            "targets": {
                target: {
                    name: {"ok": single.ok, "problems": _problems_json(single.problems)}
                    for name, single in copies.items()
                }
                for target, copies in report.targets.items()
            },
            "unreachable_targets": dict(report.unreachable),
        },
        _verify_all_lines(report),
    )
    return EXIT_OK if report.ok else EXIT_VERIFY
