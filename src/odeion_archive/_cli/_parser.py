"""The command line's parser: commands, options, and the settings they resolve to."""

from __future__ import annotations

import argparse
import functools
import os
import sys
import typing
from collections import abc
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import attrs

from odeion_archive._backup import DEFAULT_FORMAT
from odeion_archive._cli import _age
from odeion_archive._cli._targetparser import add_target_commands, target_option
from odeion_archive._registry import Registry
from odeion_archive._restore import CONFLICTS
from odeion_archive._version import __version__
from odeion_archive.interfaces import options_type_of

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


4 verification found problems or a drill failed, 5 busy (another operation holds DIR)
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


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


@functools.cache
def component_option_fields() -> tuple[tuple[attrs.Attribute[Any], str], ...]:
    """Each field of the components' options classes, with the component it belongs to.

    Read once per process: the plugins do not change while the command runs.

    A component declares its restore options as an attrs class; each field
    becomes a flag named after it (``acting_user`` -> ``--acting-user``), or as
    its metadata's ``flag`` says. A field name declared twice is one flag.
    """
    registry = Registry.default()
    fields: dict[str, tuple[attrs.Attribute[Any], str]] = {}
    for name in registry.components():
        declared = options_type_of(registry.component(name))
        if declared is None:
            continue
        for field in attrs.fields(attrs.resolve_types(declared)):
            fields.setdefault(field.name, (field, name))
    return tuple(fields.values())


def _option_flag(sub: argparse.ArgumentParser, field: attrs.Attribute[Any], owner: str) -> None:
    """One flag for one option: a switch, a repeated KEY=VALUE pair, or a value."""
    meta = field.metadata
    flag = meta.get("flag", "--" + field.name.replace("_", "-"))
    help_text = f"{owner}: {meta.get('help', field.name.replace('_', ' '))}"
    if field.type is bool:
        sub.add_argument(flag, dest=field.name, action="store_true", help=help_text)
    elif typing.get_origin(field.type) in (dict, abc.Mapping):
        sub.add_argument(
            flag,
            dest=field.name,
            type=_remap,
            action="append",
            default=[],
            metavar=meta.get("metavar", "KEY=VALUE"),
            help=help_text,
        )
    else:
        sub.add_argument(
            flag, dest=field.name, metavar=meta.get("metavar", "VALUE"), help=help_text
        )


def option_values(args: argparse.Namespace) -> dict[str, Any]:
    """The components' options as the command line gave them, by field name."""
    values: dict[str, Any] = {}
    for field, _ in component_option_fields():
        value = getattr(args, field.name, None)
        values[field.name] = dict(value) if isinstance(value, list) else value
    return {name: value for name, value in values.items() if value is not None}


def _restore_options(sub: argparse.ArgumentParser, name: str) -> None:
    sub.add_argument("archive", metavar="ARCHIVE", help="a name from 'list' or a path to a file")
    target_option(sub)
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
    for field, flag in component_option_fields():
        _option_flag(sub, field, flag)
    _age.add_read_options(sub)
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
    # The schedule's commands import this module's exit codes.
    from odeion_archive._cli._schedule import (  # noqa: PLC0415
        add_prune_options,
        add_schedule_commands,
    )

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
    _age.add_create_options(create)
    create.add_argument(
        "--copy-to",
        action="append",
        default=None,
        metavar="NAME",
        help="copy the new archive to this storage target (repeatable; default: the targets "
        "configured with copy_after_backup)",
    )
    target_option(
        command("list", "list the archives, newest first"),
        "list the archives on this storage target instead",
    )
    inspect = command("inspect", "print an archive's manifest")
    inspect.add_argument(
        "archive", metavar="ARCHIVE", help="a name from 'list' or a path to a file"
    )
    _age.add_read_options(inspect)
    verify = command("verify", "check an archive's seal and every member (--all: every archive)")
    verify.add_argument(
        "archive", nargs="?", metavar="ARCHIVE", help="a name from 'list' or a path to a file"
    )
    target_option(verify)
    _age.add_read_options(verify)
    verify.add_argument(
        "--all",
        action="store_true",
        dest="all_archives",
        help="verify every archive in the store and record each outcome",
    )
    drill = command(
        "drill", "restore an archive into a scratch database and check it (a restore drill)"
    )
    drill.add_argument("archive", metavar="ARCHIVE", help="a name from 'list'")
    for field, owner in component_option_fields():
        _option_flag(drill, field, owner)
    _restore_options(command("plan", "check an archive and show how it would restore"), "plan")
    _restore_options(command("restore", "restore an archive (asks first)"), "restore")
    command("import", "check an archive file and add it to the store").add_argument(
        "file", type=Path, metavar="FILE", help="the archive file to add (it is copied)"
    )
    command("delete", "delete an archive").add_argument(
        "name", metavar="NAME", help="the archive's name, as 'list' shows it"
    )
    prune = command("prune", "delete the archives the --keep rules do not keep (asks first)")
    add_prune_options(prune)
    prune.add_argument(
        "--dry-run", action="store_true", help="show what would be deleted; delete nothing"
    )
    prune.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    target_option(prune, "prune the archives on this storage target instead")
    add_target_commands(command)
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
    add_schedule_commands(command)
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


def _key_commands(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    key = command(
        "key",
        "show, export or import the key that seals this server's archives; create the age "
        "identity that encrypts them, and export the emergency kit",
    )
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
    ).add_argument(
        "file",
        metavar="FILE",
        help="a file that 'key export' or 'key emergency-kit' wrote; '-' for stdin",
    )
    _age.add_key_actions(action)
