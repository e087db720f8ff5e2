"""The ``odeion-archive`` command line: a thin adapter over :class:`Archiver`.

Every command calls one public function of the library. Results go to stdout
(one JSON document with ``--json``); messages and progress go to stderr. Every
human-readable line passes through :func:`~odeion_archive._printable.printable`,
so nothing from an archive or a database can drive the terminal.

Exit codes: 0 success; 1 the operation failed (the database unchanged); 2 usage
error; 3 the plan says the archive cannot be restored; 4 verification found
problems; 5 busy.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import attrs
from rich.console import Console
from rich.table import Table
from rich.text import Text

from odeion_archive._archiver import Archiver
from odeion_archive._backup import DEFAULT_FORMAT
from odeion_archive._lock import DataDirLock
from odeion_archive._printable import printable
from odeion_archive._progress import ProgressPrinter, amount
from odeion_archive._registry import Registry
from odeion_archive._restore import CONFLICTS
from odeion_archive._version import __version__
from odeion_archive.errors import (
    ArchiveError,
    ArchiveInvalidError,
    BusyError,
    DatabaseError,
    RestoreBlockedError,
    UnknownComponentError,
    UnknownFormatError,
    UsageError,
)
from odeion_archive.results import ArchiveInfo, Problem, RestorePlan, VerifyReport

__all__ = [
    "EXIT_BLOCKED",
    "EXIT_BUSY",
    "EXIT_FAILED",
    "EXIT_USAGE",
    "EXIT_VERIFY",
    "LIST_COLUMNS",
    "main",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BLOCKED = 3
EXIT_VERIFY = 4
EXIT_BUSY = 5

DEFAULT_DATA_DIR = "./odeion-data"
_PROG = "odeion-archive"
_EPILOG = """\
first steps:
  odeion-archive sample --data-dir DIR   a data directory with the embedded
                                         PostgreSQL and sample data, to try
  odeion-archive --data-dir DIR create   then every other command on it
  odeion-archive demo                    the whole job end to end (--dir DIR
                                         keeps its data directory)

exit codes: 0 ok, 1 failed, 2 usage error, 3 cannot be restored (blockers),
4 verification found problems, 5 busy (another operation holds DIR)
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


# -- the command line ----------------------------------------------------------


def _global_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """The global options; on subcommands too, so they may follow the command.

    Their defaults are resolved after parsing (:func:`_resolve_settings`), so
    that the command knows where each value came from.
    """
    default = None if defaults else argparse.SUPPRESS
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        default=default,
        help=f"Odeion data directory; archives live in DIR/backups (default: "
        f"{DEFAULT_DATA_DIR}) [ODEION_DATA_DIR]",
    )
    parser.add_argument(
        "--database-url",
        metavar="URL",
        default=default,
        help="PostgreSQL connection URL (default: the embedded PostgreSQL in DIR/pgdata) "
        "[ODEION_DATABASE_URL]",
    )
    parser.add_argument(
        "--pg-bin",
        type=Path,
        metavar="DIR",
        default=default,
        help="use the PostgreSQL client tools in this directory only [ODEION_PG_BIN]",
    )
    parser.add_argument(
        "--server-version",
        metavar="V",
        default=default,
        help="the Odeion version recorded in new manifests (default: unknown) "
        "[ODEION_SERVER_VERSION]",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=False if defaults else argparse.SUPPRESS,
        help="print one JSON document on stdout; messages and progress go to stderr",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=False if defaults else argparse.SUPPRESS,
        help="show tracebacks of errors",
    )


def _components(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("name at least one component")
    return names


def _remap(text: str) -> tuple[str, str]:
    old, sep, new = text.partition("=")
    if not sep or not old or not new:
        raise argparse.ArgumentTypeError(f"expected OLD=NEW, got {text!r}")
    return old, new


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of archives, 0 or more, got {text!r}")
    return value


def _builtins() -> Registry:
    """The built-in plugins, whose modes and default components the help names."""
    return Registry.default(entry_points=False)


def _restore_options(sub: argparse.ArgumentParser, name: str) -> None:
    sub.add_argument("archive", metavar="ARCHIVE", help="a name from 'list' or a path to a file")
    sub.add_argument(
        "--mode",
        required=True,
        help=f"{', '.join(_builtins().modes())}, or a mode a plugin's component declares",
    )
    sub.add_argument(
        "--conflict",
        default=None,
        choices=list(CONFLICTS),
        help="JSON modes only: what to do with existing rows (default: skip)",
    )
    sub.add_argument(
        "--remap-path",
        type=_remap,
        action="append",
        default=[],
        metavar="OLD=NEW",
        help="full_db: move media roots from OLD to NEW",
    )
    sub.add_argument(
        "--acting-user",
        metavar="NAME",
        help="the account performing the restore (protected)",
    )
    sub.add_argument(
        "--allow-unsafe-dump",
        action="store_true",
        help="full_db: restore dump entries Odeion never uses",
    )
    sub.add_argument(
        "--trust-foreign-dump",
        action="store_true",
        help="full_db: replay the dump of an archive this server did not make (its SQL "
        "runs as the database owner); only for archives whose origin you trust",
    )
    if name == "plan":
        sub.add_argument(
            "--no-verify",
            action="store_true",
            help="do not read the whole archive to check its seal first (the restore checks it)",
        )
    else:
        sub.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the command line."""
    parser = _Parser(
        prog=_PROG,
        description="Back up and restore the database of an Odeion media server.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _global_options(parser, defaults=True)
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        _global_options(sub, defaults=False)
        return sub

    create = command("create", "create a backup in DIR/backups")
    create.add_argument(
        "--components",
        type=_components,
        default=None,
        metavar="LIST",
        help=(
            f"comma-separated components (default: {','.join(_builtins().default_components())})"
        ),
    )
    create.add_argument(
        "--format",
        default=DEFAULT_FORMAT,
        metavar="NAME",
        help=f"zip, tar.zst or a format a plugin adds (default: {DEFAULT_FORMAT})",
    )
    command("list", "list the archives, newest first")
    for name, text in (
        ("inspect", "print an archive's manifest"),
        ("verify", "check an archive's seal and every member"),
    ):
        command(name, text).add_argument(
            "archive", metavar="ARCHIVE", help="a name from 'list' or a path to a file"
        )
    _restore_options(command("plan", "check an archive and show how it would restore"), "plan")
    _restore_options(command("restore", "restore an archive (asks first)"), "restore")
    command("import", "check an archive file and add it to the store").add_argument(
        "file", type=Path, metavar="FILE", help="the archive file to add (it is copied)"
    )
    command("delete", "delete an archive").add_argument(
        "name", metavar="NAME", help="the archive's name, as 'list' shows it"
    )
    prune = command("prune", "delete all but the newest archives (asks first)")
    prune.add_argument(
        "--keep-last",
        type=_count,
        required=True,
        metavar="N",
        help="how many of the newest archives to keep (0 or more)",
    )
    prune.add_argument(
        "--dry-run", action="store_true", help="show what would be deleted; delete nothing"
    )
    prune.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    command("plugins", "list the formats and components and the plugins that provide them")
    command(
        "sample",
        "load sample data into the embedded PostgreSQL of DIR (a new data directory), to try",
    )
    demo = command("demo", "run the whole job end to end on the embedded PostgreSQL")
    demo.add_argument(
        "--dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="work in DIR and keep it; its data directory is DIR/odeion-data "
        "(default: a temporary directory, removed at the end)",
    )
    _key_commands(command)
    return parser


@attrs.frozen
class Settings:
    """The global settings of one run, and where each came from."""

    data_dir: Path
    data_dir_given: bool
    database_url: str | None
    #: ``"--database-url"`` or ``"ODEION_DATABASE_URL"``; ``None`` for the embedded database.
    database_url_from: str | None
    pg_bin: Path | None
    server_version: str


def _resolve_settings(args: argparse.Namespace) -> Settings:
    environ = os.environ
    url, url_from = args.database_url, "--database-url"
    if not url:
        url, url_from = environ.get("ODEION_DATABASE_URL") or None, "ODEION_DATABASE_URL"
    pg_bin = args.pg_bin or (
        Path(environ["ODEION_PG_BIN"]) if environ.get("ODEION_PG_BIN") else None
    )
    return Settings(
        data_dir=args.data_dir or Path(environ.get("ODEION_DATA_DIR") or DEFAULT_DATA_DIR),
        data_dir_given=args.data_dir is not None,
        database_url=url,
        database_url_from=url_from if url else None,
        pg_bin=pg_bin,
        server_version=args.server_version or environ.get("ODEION_SERVER_VERSION") or "unknown",
    )


# -- output --------------------------------------------------------------------


def _write_lines(stream: Any, lines: Iterable[str]) -> None:
    """Write ``lines``, each made printable; a closed stream is ignored."""
    try:
        stream.writelines(printable(line) + "\n" for line in lines)
        stream.flush()
    except BrokenPipeError:
        _close_quietly(stream)


def _close_quietly(stream: Any) -> None:
    """After a reader went away (``| head``): send the rest to nowhere, without a traceback."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


def _say(*lines: str) -> None:
    """Messages for the person at the terminal, on stderr."""
    _write_lines(sys.stderr, lines)


class _Output:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def result(self, data: Any, lines: Iterable[str]) -> None:
        """``data`` as JSON with ``--json``; otherwise ``lines``, made printable."""
        if self.as_json:
            try:
                json.dump(data, sys.stdout, indent=2, default=str)
                sys.stdout.write("\n")
                sys.stdout.flush()
            except BrokenPipeError:
                _close_quietly(sys.stdout)
        else:
            _write_lines(sys.stdout, lines)


@attrs.frozen
class Column:
    """A column of a table: its header, the text of a row, and its alignment."""

    header: str
    text: Callable[[Any], str]
    right: bool = False


def table_lines(columns: Sequence[Column], rows: Iterable[Any]) -> list[str]:
    """The lines of a table: a header and one line per row, the columns aligned."""
    table = Table(box=None, pad_edge=False, show_edge=False, padding=(0, 2, 0, 0))
    for column in columns:
        table.add_column(column.header, justify="right" if column.right else "left", no_wrap=True)
    for row in rows:
        table.add_row(*(Text(printable(column.text(row))) for column in columns))
    buffer = io.StringIO()
    Console(file=buffer, width=100_000, color_system=None, highlight=False).print(table)
    return [line.rstrip() for line in buffer.getvalue().splitlines()]


#: The columns of ``list``; a column is one line here.
LIST_COLUMNS: tuple[Column, ...] = (
    Column("NAME", lambda i: i.name),
    Column("SIZE", lambda i: amount(i.size, "bytes"), right=True),
    Column("FORMAT", lambda i: i.format),
    Column("COMPONENTS", lambda i: ",".join(i.components)),
    Column("CREATED (UTC)", lambda i: f"{i.created_at:%Y-%m-%d %H:%M:%S}"),
    Column("SERVER", lambda i: i.server_version),
    Column("SCHEMA", lambda i: str(i.schema_version), right=True),
    Column("MADE BY", lambda i: i.authenticity),
)


def _info_json(info: ArchiveInfo, *, listing: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": info.name,
        "path": str(info.path),
        "format": info.format,
        "size": info.size,
        "components": list(info.components),
        "created_at": info.created_at.isoformat().replace("+00:00", "Z"),
        "authenticity": info.authenticity,
    }
    if listing:
        data["server_version"] = info.server_version
        data["schema_version"] = info.schema_version
    return data


def _plan_json(plan: RestorePlan) -> dict[str, Any]:
    return {
        "mode": plan.mode,
        "conflict": plan.conflict,
        "components": list(plan.components),
        "can_restore": plan.can_restore,
        "blockers": [{"code": i.code, "message": i.message} for i in plan.blockers],
        "warnings": [{"code": i.code, "message": i.message} for i in plan.warnings],
        "steps": list(plan.steps),
        "counts": {
            table: {
                "insert": c.insert,
                "skip": c.skip,
                "overwrite": c.overwrite,
                "rename": c.rename,
            }
            for table, c in plan.counts.items()
        },
        "renames": {table: dict(names) for table, names in plan.renames.items()},
        "schema_version": plan.schema_version,
        "authenticity": plan.authenticity,
    }


def _plan_lines(plan: RestorePlan, integrity: str) -> list[str]:
    verdict = "can be restored" if plan.can_restore else "CANNOT be restored"
    conflict = "" if plan.mode == "full_db" else f", conflict {plan.conflict}"
    made = (
        [f"  archive: {plan.authenticity} ({_AUTHENTICITY[plan.authenticity]})"]
        if plan.authenticity is not None
        else []
    )
    return [
        f"mode {plan.mode}{conflict}: the archive {verdict}",
        *made,
        *(f"  blocker [{issue.code}] {issue.message}" for issue in plan.blockers),
        *(f"  warning [{issue.code}] {issue.message}" for issue in plan.warnings),
        *(f"  step: {step}" for step in plan.steps),
        *(
            f"  {table}: insert {c.insert}, skip {c.skip}, overwrite {c.overwrite}, "
            f"rename {c.rename}"
            for table, c in plan.counts.items()
        ),
        f"  integrity: {integrity}",
    ]


def _problems_json(problems: Iterable[Problem]) -> list[dict[str, Any]]:
    return [{"member": p.member, "message": p.message} for p in problems]


def _problem_lines(problems: Iterable[Problem]) -> list[str]:
    return [f"{p.member or 'container'}: {p.message}" for p in problems]


# -- commands --------------------------------------------------------------------


@attrs.define
class _Run:
    """What a command works with."""

    args: argparse.Namespace
    settings: Settings
    archiver: Archiver
    out: _Output
    progress: ProgressPrinter


def _confirm(question: str, *, yes: bool, what: str) -> bool:
    """Whether the person at the terminal agreed (``--yes`` agrees for them)."""
    if yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError(f"{what}; confirm with --yes when not on a terminal")
    sys.stderr.write(f"{printable(question)} [y/N] ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _create(run: _Run) -> int:
    try:
        result = run.archiver.create(
            components=run.args.components, format=run.args.format, progress=run.progress
        )
    except (UnknownFormatError, UnknownComponentError) as exc:
        raise UsageError(str(exc)) from exc
    run.progress.finish()
    run.out.result(_info_json(result.archive), [result.archive.name])
    return EXIT_OK


def _list(run: _Run) -> int:
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


def _verify(run: _Run) -> int:
    report = _check(run)
    run.out.result(
        {"ok": report.ok, "problems": _problems_json(report.problems)},
        ["ok"] if report.ok else _problem_lines(report.problems),
    )
    return EXIT_OK if report.ok else EXIT_VERIFY


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
        remap_paths=dict(args.remap_path),
        acting_user=args.acting_user,
        allow_unsafe_dump=args.allow_unsafe_dump,
        trust_foreign_dump=args.trust_foreign_dump,
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
        question = f"Restore {args.archive} in mode {args.mode}?"
        if not _confirm(question, yes=False, what="restore changes the database"):
            _say("nothing was changed")
            return EXIT_FAILED
    result = run.archiver.restore(
        args.archive,
        args.mode,
        _conflict(args),
        remap_paths=dict(args.remap_path),
        acting_user=args.acting_user,
        allow_unsafe_dump=args.allow_unsafe_dump,
        trust_foreign_dump=args.trust_foreign_dump,
        progress=run.progress,
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
                f"restored {args.archive} ({args.mode}); database at schema version "
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


def _prune(run: _Run) -> int:
    args = run.args
    doomed = run.archiver.prune(args.keep_last, dry_run=True)
    if not doomed:
        run.out.result({"deleted": []}, ["nothing to delete"])
        return EXIT_OK
    if args.dry_run:
        run.out.result(
            {"deleted": [], "would_delete": doomed}, [f"would delete {name}" for name in doomed]
        )
        return EXIT_OK
    if not args.yes:
        _say(f"keeping the {args.keep_last} newest archives deletes:", *(f"  {n}" for n in doomed))
        question = (
            "Delete this archive?" if len(doomed) == 1 else f"Delete these {len(doomed)} archives?"
        )
        if not _confirm(
            question, yes=False, what="prune deletes archives (see them with --dry-run)"
        ):
            _say("nothing was deleted")
            return EXIT_FAILED
    deleted = run.archiver.prune(args.keep_last)
    run.out.result({"deleted": deleted}, [f"deleted {n}" for n in deleted] or ["nothing to delete"])
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
    "plan": _plan_command,
    "restore": _restore,
    "import": _import,
    "delete": _delete,
    "prune": _prune,
    "plugins": _plugins,
    "sample": _sample,
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


# -- errors and the entry point ------------------------------------------------


def _error_text(exc: BaseException, settings: Settings | None) -> str:
    message = str(exc)
    if isinstance(exc, OSError) and not isinstance(exc, BrokenPipeError):
        where = f": {exc.filename}" if exc.filename else ""
        message = (
            f"{exc.strerror or exc}{where}; check that it exists and that this user may read "
            "and write it"
        )
    if settings is None:
        return message
    if isinstance(exc, DatabaseError) and settings.database_url_from == "ODEION_DATABASE_URL":
        message += " (the database URL came from the environment variable ODEION_DATABASE_URL)"
    if settings.database_url is None and "no Odeion schema" in message:
        message += (
            f" (the embedded database in {settings.data_dir / 'pgdata'} is empty; to try "
            f"odeion-archive, 'odeion-archive sample --data-dir {settings.data_dir}' loads "
            "sample data into it)"
        )
    return message


def _exit_code(exc: BaseException) -> int:
    if isinstance(exc, UsageError):
        return EXIT_USAGE
    if isinstance(exc, BusyError):
        return EXIT_BUSY
    if isinstance(exc, RestoreBlockedError):
        return EXIT_BLOCKED
    return EXIT_FAILED


def _log_to_stderr() -> None:
    """The library's warnings (a skipped file, a failed plugin) as one line each."""

    class _Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            _say(f"{_PROG}: warning: {' '.join(record.getMessage().split())}")

    logger = logging.getLogger("odeion_archive")
    logger.addHandler(_Handler(logging.WARNING))
    logger.propagate = False


def _execute(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "demo":
        return _demo(args, settings)
    with Archiver(
        settings.data_dir,
        database_url=settings.database_url,
        pg_bin=settings.pg_bin,
        server_version=settings.server_version,
    ) as archiver:
        progress = ProgressPrinter(sys.stderr, tty=sys.stderr.isatty())
        run = _Run(args, settings, archiver, _Output(args.json), progress)
        try:
            return _COMMANDS[args.command](run)
        finally:
            progress.finish()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    settings: Settings | None = None
    _log_to_stderr()
    try:
        settings = _resolve_settings(args)
        return _execute(args, settings)
    except KeyboardInterrupt:
        _error(args, "interrupted; nothing was changed")
        return EXIT_FAILED
    except BrokenPipeError:
        _close_quietly(sys.stdout)
        return EXIT_OK
    except (ArchiveError, OSError) as exc:
        _error(args, _error_text(exc, settings))
        return _exit_code(exc)


def _error(args: argparse.Namespace, message: str) -> None:
    if getattr(args, "debug", False):
        traceback.print_exc(file=sys.stderr)
    _say(f"{_PROG}: error: {' '.join(message.split())}")


# -- the archive key ------------------------------------------------------------

_AUTHENTICITY = {
    "own": "made by this server, unchanged since",
    "foreign": "not made by this server, or made before archives were sealed",
    "tampered": "carries this server's seal but was changed since",
}


def _key_commands(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    key = command("key", "show, export or import the key that seals this server's archives")
    actions = key.add_subparsers(
        dest="key_command", required=True, metavar="ACTION", parser_class=_Parser
    )

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help_text, description=help_text)
        _global_options(sub, defaults=False)
        return sub

    action("show", "print the ids of the keys (never the keys)")
    action(
        "export", "write the key to a new FILE (mode 0600), to move it to a new machine"
    ).add_argument("file", metavar="FILE", help="a new file; '-' for stdout (not a terminal)")
    action(
        "import", "make the key in FILE this server's signing key; the current one stays valid"
    ).add_argument("file", metavar="FILE", help="a file that 'key export' wrote; '-' for stdin")


def _key(args: argparse.Namespace, archiver: Archiver, out: _Output) -> int:
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
