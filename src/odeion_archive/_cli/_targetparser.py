"""The command line's options and commands of storage targets."""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["add_target_commands", "target_option"]

_TARGET_HELP = "a storage target's name (see 'targets'): the archive is on that target"


def target_option(sub: argparse.ArgumentParser, help_text: str = _TARGET_HELP) -> None:
    """``--target NAME`` on a command."""
    sub.add_argument("--target", default=None, metavar="NAME", help=help_text)


def add_target_commands(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """The ``targets`` and ``copy`` commands."""
    command("targets", "list the storage targets, whether each is reachable, and their archives")
    copy = command("copy", "copy an archive to a storage target, checked once it is there")
    copy.add_argument(
        "archive",
        nargs="?",
        default=None,
        metavar="ARCHIVE",
        help="a name from 'list' or a path (default: every archive the target has no checked "
        "copy of)",
    )
    copy.add_argument(
        "--to",
        dest="to",
        action="append",
        required=True,
        metavar="NAME",
        help="the target (repeat for several)",
    )
