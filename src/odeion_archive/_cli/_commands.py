"""The commands: each calls one public function of the library and prints its result."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from odeion_archive._archiver import Archiver
from odeion_archive._cli import _age
from odeion_archive._cli._output import (
    LIST_COLUMNS,
    _info_json,
    _Output,
    _plan_json,
    _plan_lines,
    _problem_lines,
    _problems_json,
    _say,
    _write_lines,
    table_lines,
)
from odeion_archive._cli._parser import (
    EXIT_BLOCKED,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_VERIFY,
    Settings,
    option_values,
)
from odeion_archive._cli._proving import drill_command, verify_all_command
from odeion_archive._cli._schedule import due_command, prune_command, run_due_command
from odeion_archive._cli._signals import Outcome
from odeion_archive._cli._targets import (
    copy_json,
    copy_lines,
    remote,
    run_copy,
    run_list,
    run_targets,
)
from odeion_archive._lock import DataDirLock
from odeion_archive._printable import printable
from odeion_archive._progress import ProgressPrinter
from odeion_archive.errors import (
    ArchiveInvalidError,
    UnknownComponentError,
    UnknownFormatError,
    UsageError,
)
from odeion_archive.events import ProgressCallback, ProgressEvent
from odeion_archive.results import Problem, RestorePlan, VerifyReport


@attrs.define
class _Run:
    """What a command works with."""

    args: argparse.Namespace
    settings: Settings
    archiver: Archiver
    out: _Output
    progress: ProgressPrinter
    outcome: Outcome = attrs.field(factory=Outcome)


def _confirm(question: str, *, yes: bool, what: str) -> bool:
    """Whether the person at the terminal agreed (``--yes`` agrees for them)."""
    if yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError(f"{what}; confirm with --yes when not on a terminal")
    sys.stderr.write(f"{printable(question)} [y/N] ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _watching(run: _Run, done: Callable[[ProgressEvent], str]) -> ProgressCallback:
    """The progress callback of ``run``, noting in its outcome when the work is done."""

    def progress(event: ProgressEvent) -> None:
        if event.phase == "done":
            run.outcome.done = done(event)
        run.progress(event)

    return progress


def _create(run: _Run) -> int:
    try:
        result = run.archiver.create(
            components=run.args.components,
            format=run.args.format,
            progress=_watching(run, lambda e: f"the backup was {e.message}; it is in the store"),
            copy_to=run.args.copy_to,
            encryption=_age.recipients_from(run.args),
        )
    except (UnknownFormatError, UnknownComponentError) as exc:
        raise UsageError(str(exc)) from exc
    run.progress.finish()
    data = _info_json(result.archive)
    if result.copies:
        data["copies"] = [copy_json(c) for c in result.copies]
    run.out.result(data, [result.archive.name, *copy_lines(result.copies)])
    if not all(c.ok for c in result.copies):
        _say(f"the backup {result.archive.name} is in the store; copy it later with 'copy'")
        return EXIT_FAILED
    return EXIT_OK


def _list(run: _Run) -> int:
    if run.args.target is not None:
        return run_list(run)
    infos = run.archiver.list()
    lines = (
        table_lines(LIST_COLUMNS, infos)
        if infos
        else [f"no archives in {run.archiver.store.directory}; make one with 'create'"]
    )
    run.out.result([_info_json(i, listing=True) for i in infos], lines)
    return EXIT_OK


def _inspect(run: _Run) -> int:
    data = json.loads(run.archiver.inspect(run.args.archive).to_json())
    data["authenticity"] = run.archiver.authenticity(run.args.archive)
    run.out.result(data, json.dumps(data, indent=2).splitlines())
    return EXIT_OK


def _check(run: _Run) -> VerifyReport:
    """Verify the archive; an archive too damaged to open is a report with that problem."""
    try:
        report = run.archiver.verify(run.args.archive, progress=run.progress)
    except ArchiveInvalidError as exc:
        report = VerifyReport((Problem(None, str(exc)),))
    run.progress.finish()
    return report


def _verify_one(run: _Run) -> int:
    report = _check(run)
    run.out.result(
        {"ok": report.ok, "problems": _problems_json(report.problems)},
        ["ok"] if report.ok else _problem_lines(report.problems),
    )
    return EXIT_OK if report.ok else EXIT_VERIFY


def _verify(run: _Run) -> int:
    if run.args.all_archives:
        return verify_all_command(run)
    if run.args.archive is None:
        raise UsageError("give the ARCHIVE to verify, or --all to verify every archive")
    return remote(_verify_one, damaged_exit=EXIT_VERIFY)(run)


def _conflict(args: argparse.Namespace) -> Any:
    if args.conflict is not None and args.mode == "full_db":
        raise UsageError(
            "--conflict applies to the JSON modes only: a full_db restore replaces the whole "
            "database; leave --conflict out"
        )
    return args.conflict or "skip"


def _plan(run: _Run) -> RestorePlan:
    args = run.args
    return run.archiver.plan(
        args.archive,
        args.mode,
        _conflict(args),
        **option_values(args),
    )


def _blocked(run: _Run, plan: RestorePlan) -> int:
    run.out.result(_plan_json(plan), _plan_lines(plan, "not checked"))
    _say("the archive cannot be restored; see the blockers above")
    return EXIT_BLOCKED


def _plan_command(run: _Run) -> int:
    plan = _plan(run)
    if not plan.can_restore:
        return _blocked(run, plan)
    if run.args.no_verify:
        integrity = "not checked; the restore checks the archive's seal before changing anything"
        run.out.result(_plan_json(plan) | {"verified": False}, _plan_lines(plan, integrity))
        return EXIT_OK
    report = _check(run)
    if not report.ok:
        run.out.result(
            _plan_json(plan)
            | {
                "can_restore": False,
                "verified": False,
                "problems": _problems_json(report.problems),
            },
            [
                "the archive is damaged and cannot be restored:",
                *(f"  {line}" for line in _problem_lines(report.problems)),
            ],
        )
        return EXIT_VERIFY
    integrity = "checked: the archive's seal and every member are intact"
    run.out.result(_plan_json(plan) | {"verified": True}, _plan_lines(plan, integrity))
    return EXIT_OK


def _shown(args: argparse.Namespace) -> str:
    """The archive as the command line named it (``TARGET:NAME`` for one on a target)."""
    return str(getattr(args, "shown_archive", None) or args.archive)


def _restore(run: _Run) -> int:
    args = run.args
    plan = _plan(run)
    if not plan.can_restore:
        return _blocked(run, plan)
    if args.yes:
        _say(*(f"warning [{issue.code}] {issue.message}" for issue in plan.warnings))
    else:
        if sys.stdin.isatty():
            _say(*_plan_lines(plan, "checked when the restore starts, before anything is changed"))
        question = f"Restore {_shown(args)} in mode {args.mode}?"
        if not _confirm(question, yes=False, what="restore changes the database"):
            _say("nothing was changed")
            return EXIT_FAILED
    result = run.archiver.restore(
        args.archive,
        args.mode,
        _conflict(args),
        **option_values(args),
        progress=_watching(run, lambda _: f"the restore of {_shown(args)} was committed"),
        expected=plan,
    )
    run.progress.finish()
    data = _plan_json(result.plan) | {
        "restored": True,
        "rescan_required": result.rescan_required,
        "schema_version": result.schema_version,
    }
    run.out.result(
        data,
        [
            (
                f"restored {_shown(args)} ({args.mode}); database at schema version "
                f"{result.schema_version}; rescan the libraries now"
            )
        ],
    )
    return EXIT_OK


def _import(run: _Run) -> int:
    info = run.archiver.import_archive(run.args.file)
    run.out.result(_info_json(info), [info.name])
    return EXIT_OK


def _delete(run: _Run) -> int:
    run.archiver.delete(run.args.name)
    run.out.result({"deleted": [run.args.name]}, [f"deleted {run.args.name}"])
    return EXIT_OK


def _plugins(run: _Run) -> int:
    provided = run.archiver.registry.provided()
    failures = run.archiver.registry.load_failures
    run.out.result(
        {
            "plugins": [{"name": p.name, "kind": p.kind, "plugin": p.plugin} for p in provided],
            "failures": [str(f) for f in failures],
        },
        [f"{p.kind:<10} {p.name:<12} from {p.plugin}" for p in provided]
        + [f"failed: {f}" for f in failures],
    )
    return EXIT_OK


def _sample(run: _Run) -> int:
    if run.settings.database_url is not None:
        raise UsageError(
            f"sample loads the embedded PostgreSQL of --data-dir only, never a database given "
            f"by URL; leave out {run.settings.database_url_from}"
        )
    data_dir = run.settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    with DataDirLock(data_dir, "sample"):
        # Sample data is not on the runtime path: imported by this command only.
        from odeion_archive.sample import load_sample  # noqa: PLC0415

        counts = load_sample(run.archiver.database_url())
    run.out.result(
        {"data_dir": str(data_dir), "rows": counts},
        [
            f"loaded the Odeion schema and sample data into the embedded PostgreSQL in "
            f"{data_dir / 'pgdata'}: " + ", ".join(f"{n} {t}" for t, n in counts.items()),
            f"next: odeion-archive --data-dir {data_dir} create",
        ],
    )
    return EXIT_OK


_COMMANDS: dict[str, Callable[[_Run], int]] = {
    "create": _create,
    "list": _list,
    "inspect": _inspect,
    "verify": _verify,
    "drill": drill_command,
    "plan": remote(_plan_command, damaged_exit=EXIT_VERIFY),
    "restore": remote(_restore, damaged_exit=None),
    "import": _import,
    "delete": _delete,
    "prune": prune_command,
    "due": due_command,
    "run-due": run_due_command,
    "plugins": _plugins,
    "sample": _sample,
    "targets": run_targets,
    "copy": run_copy,
    "key": lambda run: _key(run.args, run.archiver, run.out),
}


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    if settings.data_dir_given:
        raise UsageError(
            "demo works in a directory of its own and does not use --data-dir: keep its data "
            "directory with 'demo --dir DIR' (it is DIR/odeion-data), or load sample data into "
            "a data directory with 'sample --data-dir DIR'"
        )
    from odeion_archive.sample.demo import run_demo  # noqa: PLC0415 - the demo command only

    ok = run_demo(
        args.dir,
        report=lambda line: _write_lines(sys.stderr if args.json else sys.stdout, [line]),
    )
    return EXIT_OK if ok else EXIT_FAILED


def _key(args: argparse.Namespace, archiver: Archiver, out: _Output) -> int:
    done = _age.run_key_action(args, archiver, out)
    if done is not None:
        return done
    if args.key_command == "show":
        ids = archiver.key_ids()
        out.result(
            {"key_id": ids[0], "accepted_key_ids": list(ids[1:])},
            [f"signing key {ids[0]}", *(f"accepted key {i}" for i in ids[1:])],
        )
        return EXIT_OK
    if args.key_command == "export":
        if args.file == "-":
            if sys.stdout.isatty():
                raise UsageError(
                    "refusing to print the secret key on a terminal; name a FILE, or "
                    "redirect stdout to a file or a pipe"
                )
            if out.as_json:
                raise UsageError("'key export -' writes the key to stdout; leave out --json")
            key_id = archiver.export_key(sys.stdout)
            sys.stderr.write(f"exported the key {key_id}; keep it secret\n")
            return EXIT_OK
        key_id = archiver.export_key(Path(args.file))
        out.result(
            {"exported": args.file, "key_id": key_id},
            [
                (
                    f"exported the key {key_id} to {args.file}; keep it secret, then run "
                    "'odeion-archive key import' on the new machine"
                )
            ],
        )
        return EXIT_OK
    if args.file == "-":
        key_id = archiver.import_key(sys.stdin.buffer)
    else:
        key_id = archiver.import_key(Path(args.file))
    ids = archiver.key_ids()
    out.result(
        {"key_id": key_id, "accepted_key_ids": list(ids[1:])},
        [
            (
                f"imported: new archives are sealed with {key_id}; archives of "
                f"{', '.join(ids)} are this server's own"
            )
        ],
    )
    return EXIT_OK
