"""The ``odeion-archive`` command line: a thin adapter over :class:`Archiver`.

Every command calls one public function of the library. Results go to stdout
(one JSON document with ``--json``); messages and progress go to stderr. Every
human-readable line passes through :func:`~odeion_archive._printable.printable`,
so nothing from an archive or a database can drive the terminal.

Exit codes: 0 success; 1 the operation failed (the database unchanged) or was
interrupted (SIGINT or SIGTERM; the message says what was done); 2 usage error;
3 the plan says the archive cannot be restored; 4 verification found problems;
5 busy.

The parser is in :mod:`._parser`, what is printed in :mod:`._output`, the
commands in :mod:`._commands`; this module runs them and turns errors into
messages and exit codes.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Sequence

from odeion_archive._archiver import Archiver
from odeion_archive._cli import _age
from odeion_archive._cli._commands import _COMMANDS, _demo, _Run
from odeion_archive._cli._output import LIST_COLUMNS, _close_quietly, _Output, _say
from odeion_archive._cli._parser import (
    _PROG,
    EXIT_BLOCKED,
    EXIT_BUSY,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    EXIT_VERIFY,
    Settings,
    _resolve_settings,
    build_parser,
)
from odeion_archive._cli._signals import Interrupted, Outcome, deferred, handling_signals
from odeion_archive._progress import ProgressPrinter
from odeion_archive.errors import (
    ArchiveError,
    BusyError,
    DatabaseError,
    RestoreBlockedError,
    UsageError,
)

__all__ = [
    "EXIT_BLOCKED",
    "EXIT_BUSY",
    "EXIT_FAILED",
    "EXIT_USAGE",
    "EXIT_VERIFY",
    "LIST_COLUMNS",
    "main",
]


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


#: What an interrupt may have left done, for the commands that do their work in
#: several steps that each stay done (the others change nothing until they finish).
_PARTLY_DONE = {
    "run-due": "some of the due tasks may have run; 'due' shows what remains",
    "copy": "some archives may have been copied; run 'copy' again to copy the rest",
    "sample": "the sample data may be incomplete; run 'sample' again",
}


def _execute(args: argparse.Namespace, settings: Settings, outcome: Outcome) -> int:
    if args.command == "demo":
        return _demo(args, settings)
    outcome.before = _PARTLY_DONE.get(args.command, outcome.before)
    if settings.data_dir.exists() and not settings.data_dir.is_dir():
        raise UsageError(
            f"the data directory {settings.data_dir} is a file, not a directory; choose a "
            "directory with --data-dir (or ODEION_DATA_DIR)"
        )
    archiver = Archiver(
        settings.data_dir,
        database_url=settings.database_url,
        pg_bin=settings.pg_bin,
        server_version=settings.server_version,
        identities=_age.identities_from(args),
    )
    try:
        progress = ProgressPrinter(sys.stderr, tty=sys.stderr.isatty())
        run = _Run(args, settings, archiver, _Output(args.json), progress, outcome)
        try:
            code = _COMMANDS[args.command](run)
        finally:
            progress.finish()
    except BaseException:
        _close(archiver)
        raise
    if outcome.done is None:
        outcome.done = f"'{args.command}' finished"
    received = _close(archiver)
    if received:
        raise Interrupted(received[0])
    return code


def _close(archiver: Archiver) -> list[int]:
    """Stop the embedded server, never cut short: the signals that arrived meanwhile."""
    with deferred() as received:
        archiver.close()
    return received


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    with handling_signals():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    outcome = Outcome()
    try:
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt as exc:
        _say(f"{_PROG}: error: {outcome.interrupted(exc)}")
        return EXIT_FAILED
    settings: Settings | None = None
    _log_to_stderr()
    try:
        settings = _resolve_settings(args)
        return _execute(args, settings, outcome)
    except KeyboardInterrupt as exc:
        _say(f"{_PROG}: error: {outcome.interrupted(exc)}")
        return EXIT_FAILED
    except EOFError:
        _error(
            args,
            "no passphrase: the input ended at the prompt (Ctrl-D); nothing was changed, "
            "run the command again and type the passphrase",
        )
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
