"""The ``odeion-archive`` command line: a thin adapter over :class:`Archiver`.

Every command calls one public function of the library. Results go to stdout
(one JSON document with ``--json``); messages and progress go to stderr.

Exit codes: 0 success; 1 the operation failed (the database unchanged); 2 usage
error; 3 the plan says the archive cannot be restored; 4 verification found
problems; 5 busy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from odeion_archive._progress import ProgressPrinter
from odeion_archive._version import __version__
from odeion_archive.archiver import Archiver
from odeion_archive.backup import DEFAULT_COMPONENTS, DEFAULT_FORMAT
from odeion_archive.demo import run_demo
from odeion_archive.errors import ArchiveError, BusyError, RestoreBlockedError
from odeion_archive.restore import CONFLICTS, MODES
from odeion_archive.results import ArchiveInfo, RestorePlan

__all__ = ["EXIT_BLOCKED", "EXIT_BUSY", "EXIT_FAILED", "EXIT_USAGE", "EXIT_VERIFY", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BLOCKED = 3
EXIT_VERIFY = 4
EXIT_BUSY = 5


class UsageError(Exception):
    """A command line that cannot be carried out as written."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _global_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """The global options; on subcommands too, so they may follow the command."""

    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        default=default(Path(os.environ.get("ODEION_DATA_DIR", "./odeion-data"))),
        help="Odeion data directory; archives live in DIR/backups [ODEION_DATA_DIR]",
    )
    parser.add_argument(
        "--database-url",
        metavar="URL",
        default=default(os.environ.get("ODEION_DATABASE_URL")),
        help="PostgreSQL connection URL; default: the embedded PostgreSQL in DIR/pgdata "
        "[ODEION_DATABASE_URL]",
    )
    parser.add_argument(
        "--pg-bin",
        type=Path,
        metavar="DIR",
        default=default(
            Path(os.environ["ODEION_PG_BIN"]) if os.environ.get("ODEION_PG_BIN") else None
        ),
        help="use the PostgreSQL client tools in this directory only [ODEION_PG_BIN]",
    )
    parser.add_argument(
        "--server-version",
        metavar="V",
        default=default(os.environ.get("ODEION_SERVER_VERSION", "unknown")),
        help="the Odeion version recorded in new manifests [ODEION_SERVER_VERSION]",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print one JSON document on stdout; messages and progress go to stderr",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=default(False),
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the command line."""
    parser = _Parser(
        prog="odeion-archive",
        description="Back up and restore the database of an Odeion media server.",
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
        default=list(DEFAULT_COMPONENTS),
        help=f"comma-separated components (default: {','.join(DEFAULT_COMPONENTS)})",
    )
    create.add_argument(
        "--format",
        default=DEFAULT_FORMAT,
        help=f"zip, tar.zst or a format a plugin adds (default: {DEFAULT_FORMAT})",
    )
    command("list", "list the archives, newest first")
    for name, text in (
        ("inspect", "print an archive's manifest"),
        ("verify", "check every member of an archive"),
    ):
        command(name, text).add_argument(
            "archive", metavar="ARCHIVE", help="a name from 'list' or a path to a file"
        )
    for name, text in (
        ("plan", "show whether and how an archive would restore"),
        ("restore", "restore an archive"),
    ):
        sub = command(name, text)
        sub.add_argument("archive", metavar="ARCHIVE", help="a name from 'list' or a path")
        sub.add_argument(
            "--mode",
            required=True,
            help=f"{', '.join(MODES)}, or the name of a plugin's component",
        )
        sub.add_argument(
            "--conflict",
            default="skip",
            choices=list(CONFLICTS),
            help="for the JSON modes: what to do with existing rows (default: skip)",
        )
        sub.add_argument(
            "--remap-path",
            type=_remap,
            action="append",
            default=[],
            metavar="OLD=NEW",
            help="full_db: move media roots from OLD to NEW",
        )
        sub.add_argument("--acting-user", help="the account performing the restore (protected)")
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
        if name == "restore":
            sub.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    command("import", "add an uploaded archive to the store").add_argument(
        "file", type=Path, metavar="FILE"
    )
    command("delete", "delete an archive").add_argument("name", metavar="NAME")
    command("prune", "delete all but the newest archives").add_argument(
        "--keep-last", type=int, required=True, metavar="N"
    )
    command("plugins", "list the formats and components and the plugins that provide them")
    demo = command("demo", "run the whole job end to end on the embedded PostgreSQL")
    demo.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="working directory (default: a new temporary directory)",
    )
    _key_commands(command)
    return parser


# -- rendering ----------------------------------------------------------------


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


def _plan_text(plan: RestorePlan, out: TextIO) -> None:
    verdict = "can be restored" if plan.can_restore else "CANNOT be restored"
    out.write(f"mode {plan.mode}, conflict {plan.conflict}: the archive {verdict}\n")
    if plan.authenticity is not None:
        out.write(f"  archive: {plan.authenticity} ({_AUTHENTICITY[plan.authenticity]})\n")
    out.writelines(f"  blocker [{issue.code}] {issue.message}\n" for issue in plan.blockers)
    out.writelines(f"  warning [{issue.code}] {issue.message}\n" for issue in plan.warnings)
    out.writelines(f"  step: {step}\n" for step in plan.steps)
    out.writelines(
        f"  {table}: insert {c.insert}, skip {c.skip}, overwrite {c.overwrite}, rename {c.rename}\n"
        for table, c in plan.counts.items()
    )


class _Output:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def result(self, data: Any, text: Callable[[TextIO], object]) -> None:
        if self.as_json:
            json.dump(data, sys.stdout, indent=2, sort_keys=False, default=str)
            sys.stdout.write("\n")
        else:
            text(sys.stdout)
        sys.stdout.flush()


# -- commands -----------------------------------------------------------------


def _run(args: argparse.Namespace, archiver: Archiver, out: _Output) -> int:
    progress = ProgressPrinter(sys.stderr, tty=sys.stderr.isatty())
    try:
        return _dispatch(args, archiver, out, progress)
    finally:
        progress.finish()


def _dispatch(
    args: argparse.Namespace, archiver: Archiver, out: _Output, progress: ProgressPrinter
) -> int:
    if args.command == "create":
        result = archiver.create(components=args.components, format=args.format, progress=progress)
        progress.finish()
        out.result(_info_json(result.archive), lambda o: o.write(f"{result.archive.name}\n"))
        return EXIT_OK
    if args.command == "list":
        infos = archiver.list()
        out.result(
            [_info_json(i, listing=True) for i in infos],
            lambda o: o.write(
                "".join(
                    f"{i.name}  {i.size:>12,}  {i.format:<7}  {','.join(i.components):<30}  "
                    f"{i.created_at:%Y-%m-%d %H:%M:%S}Z  server {i.server_version}  "
                    f"schema {i.schema_version}  {i.authenticity}\n"
                    for i in infos
                )
            ),
        )
        return EXIT_OK
    if args.command == "inspect":
        manifest = archiver.inspect(args.archive)
        data = json.loads(manifest.to_json())
        data["authenticity"] = archiver.authenticity(args.archive)
        out.result(data, lambda o: o.write(json.dumps(data, indent=2) + "\n"))
        return EXIT_OK
    if args.command == "verify":
        report = archiver.verify(args.archive, progress=progress)
        progress.finish()
        problems = [{"member": p.member, "message": p.message} for p in report.problems]
        out.result(
            {"ok": report.ok, "problems": problems},
            lambda o: o.write(
                "ok\n"
                if report.ok
                else "".join(f"{p['member'] or 'container'}: {p['message']}\n" for p in problems)
            ),
        )
        return EXIT_OK if report.ok else EXIT_VERIFY
    if args.command in ("plan", "restore"):
        return _plan_or_restore(args, archiver, out, progress)
    if args.command == "import":
        info = archiver.import_archive(args.file)
        out.result(_info_json(info), lambda o: o.write(f"{info.name}\n"))
        return EXIT_OK
    if args.command == "delete":
        archiver.delete(args.name)
        out.result({"deleted": [args.name]}, lambda o: o.write(f"deleted {args.name}\n"))
        return EXIT_OK
    if args.command == "prune":
        if args.keep_last < 0:
            raise UsageError("--keep-last takes a number of archives, 0 or more")
        deleted = archiver.prune(args.keep_last)
        out.result(
            {"deleted": deleted},
            lambda o: o.write("".join(f"deleted {n}\n" for n in deleted) or "nothing to delete\n"),
        )
        return EXIT_OK
    if args.command == "key":
        return _key(args, archiver, out)
    if args.command == "plugins":
        provided = archiver.registry.provided()
        failures = archiver.registry.load_failures
        out.result(
            {
                "plugins": [{"name": p.name, "kind": p.kind, "plugin": p.plugin} for p in provided],
                "failures": [str(f) for f in failures],
            },
            lambda o: o.write(
                "".join(f"{p.kind:<10} {p.name:<12} from {p.plugin}\n" for p in provided)
                + "".join(f"failed: {f}\n" for f in failures)
            ),
        )
        return EXIT_OK
    raise UsageError(f"unknown command {args.command!r}")


def _plan_or_restore(
    args: argparse.Namespace, archiver: Archiver, out: _Output, progress: ProgressPrinter
) -> int:
    remap = dict(args.remap_path)
    plan = archiver.plan(
        args.archive,
        args.mode,
        args.conflict,
        remap_paths=remap,
        acting_user=args.acting_user,
        allow_unsafe_dump=args.allow_unsafe_dump,
        trust_foreign_dump=args.trust_foreign_dump,
    )
    if args.command == "plan" or not plan.can_restore:
        out.result(_plan_json(plan), lambda o: _plan_text(plan, o))
        if not plan.can_restore:
            sys.stderr.write("the archive cannot be restored; see the blockers above\n")
            return EXIT_BLOCKED
        return EXIT_OK
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(
                "restore changes the database; confirm with --yes when not on a terminal"
            )
        _plan_text(plan, sys.stderr)
        sys.stderr.write(f"Restore {args.archive} in mode {args.mode}? [y/N] ")
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            sys.stderr.write("nothing was changed\n")
            return EXIT_FAILED
    result = archiver.restore(
        args.archive,
        args.mode,
        args.conflict,
        remap_paths=remap,
        acting_user=args.acting_user,
        allow_unsafe_dump=args.allow_unsafe_dump,
        trust_foreign_dump=args.trust_foreign_dump,
        progress=progress,
        expected=plan,
    )
    progress.finish()
    data = _plan_json(result.plan) | {
        "restored": True,
        "rescan_required": result.rescan_required,
        "schema_version": result.schema_version,
    }
    out.result(
        data,
        lambda o: o.write(
            f"restored {args.archive} ({args.mode}); database at schema version "
            f"{result.schema_version}; rescan the libraries now\n"
        ),
    )
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    out = _Output(args.json)
    try:
        if args.command == "demo":
            ok = run_demo(
                args.dir,
                report=lambda line: print(
                    line, file=sys.stderr if args.json else sys.stdout, flush=True
                ),
            )
            return EXIT_OK if ok else EXIT_FAILED
        with Archiver(
            args.data_dir,
            database_url=args.database_url,
            pg_bin=args.pg_bin,
            server_version=args.server_version,
        ) as archiver:
            return _run(args, archiver, out)
    except UsageError as exc:
        _error(args, str(exc))
        return EXIT_USAGE
    except BusyError as exc:
        _error(args, str(exc))
        return EXIT_BUSY
    except RestoreBlockedError as exc:
        _error(args, str(exc))
        return EXIT_BLOCKED
    except (ArchiveError, ValueError) as exc:
        _error(args, str(exc))
        return EXIT_FAILED if isinstance(exc, ArchiveError) else EXIT_USAGE
    except KeyboardInterrupt:
        _error(args, "interrupted; nothing was changed")
        return EXIT_FAILED


def _error(args: argparse.Namespace, message: str) -> None:
    if getattr(args, "debug", False):
        traceback.print_exc(file=sys.stderr)
    one_line = " ".join(message.split())
    sys.stderr.write(f"odeion-archive: error: {one_line}\n")


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
            lambda o: o.write(
                f"signing key {ids[0]}\n" + "".join(f"accepted key {i}\n" for i in ids[1:])
            ),
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
            lambda o: o.write(
                f"exported the key {key_id} to {args.file}; keep it secret, then run "
                "'odeion-archive key import' on the new machine\n"
            ),
        )
        return EXIT_OK
    if args.file == "-":
        key_id = archiver.import_key(sys.stdin.buffer)
    else:
        key_id = archiver.import_key(Path(args.file))
    ids = archiver.key_ids()
    out.result(
        {"key_id": key_id, "accepted_key_ids": list(ids[1:])},
        lambda o: o.write(
            f"imported: new archives are sealed with {key_id}; archives of "
            f"{', '.join(ids)} are this server's own\n"
        ),
    )
    return EXIT_OK
