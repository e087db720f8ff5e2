"""The command line's encryption: recipients, identities and passphrases, and the age keys.

Secrets never come from the command line itself: an identity from a file
(``--identity FILE`` or ``ODEION_ARCHIVE_IDENTITY_FILE``), a passphrase from a
file (``--passphrase-file FILE`` or ``ODEION_ARCHIVE_PASSPHRASE_FILE``) or the
terminal (``--ask-passphrase``). Only recipients (public keys) are arguments.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from odeion_archive._age import AgeIdentities, AgeRecipients, read_key_file
from odeion_archive._agekeys import is_kit
from odeion_archive._archiver import Archiver
from odeion_archive._cli._output import _Output
from odeion_archive.errors import UsageError

__all__ = [
    "IDENTITY_ENV",
    "PASSPHRASE_ENV",
    "add_create_options",
    "add_key_actions",
    "add_read_options",
    "identities_from",
    "recipients_from",
    "run_key_action",
]

IDENTITY_ENV = "ODEION_ARCHIVE_IDENTITY_FILE"
PASSPHRASE_ENV = "ODEION_ARCHIVE_PASSPHRASE_FILE"  # noqa: S105 - the name of a variable
AGE_ACTIONS = ("age-new", "age-recipient", "emergency-kit")


def add_create_options(create: argparse.ArgumentParser) -> None:
    """``create``'s encryption options."""
    create.add_argument(
        "--encrypt-to",
        action="append",
        default=None,
        metavar="RECIPIENT",
        help="encrypt every member with age to this X25519 recipient (age1...; repeatable); "
        "default: the recipients in DIR/age-recipients.txt, if any",
    )
    create.add_argument(
        "--with-passphrase",
        action="store_true",
        help="encrypt with a passphrase (age's scrypt), read from --passphrase-file, "
        f"{PASSPHRASE_ENV} or asked on the terminal",
    )
    create.add_argument(
        "--passphrase-file",
        type=Path,
        metavar="FILE",
        help="the passphrase is the first line of FILE (implies --with-passphrase)",
    )


def add_read_options(sub: argparse.ArgumentParser) -> None:
    """The options that open an encrypted archive (inspect, verify, plan, restore)."""
    sub.add_argument(
        "--identity",
        action="append",
        type=Path,
        default=None,
        metavar="FILE",
        help="an age identity file (or an emergency kit) that opens encrypted archives; "
        f"repeatable [{IDENTITY_ENV}] (DIR/age-identity.txt is always tried)",
    )
    sub.add_argument(
        "--passphrase-file",
        type=Path,
        metavar="FILE",
        help=f"the passphrase of an encrypted archive, the first line of FILE [{PASSPHRASE_ENV}]",
    )
    sub.add_argument(
        "--ask-passphrase",
        action="store_true",
        help="ask for the passphrase of an encrypted archive on the terminal",
    )


def _passphrase_from_file(path: Path) -> str:
    text = read_key_file(path, "passphrase file")
    lines = text.splitlines()
    passphrase = lines[0] if lines else ""
    if not passphrase:
        raise UsageError(
            f"the passphrase file {path} is empty; write the passphrase on its first line"
        )
    return passphrase


def _ask(prompt: str) -> str:
    if not sys.stdin.isatty():
        raise UsageError(
            "cannot ask for the passphrase: not on a terminal; give --passphrase-file FILE "
            f"or {PASSPHRASE_ENV}"
        )
    return getpass.getpass(prompt)


def _passphrase(args: argparse.Namespace, *, ask: bool, confirm: bool) -> str | None:
    path = getattr(args, "passphrase_file", None)
    if path is None and os.environ.get(PASSPHRASE_ENV):
        path = Path(os.environ[PASSPHRASE_ENV])
    if path is not None:
        return _passphrase_from_file(path)
    if not ask:
        return None
    passphrase = _ask("passphrase: ")
    if confirm and _ask("the passphrase again: ") != passphrase:
        raise UsageError("the two passphrases differ; nothing was done, try again")
    return passphrase


def recipients_from(args: argparse.Namespace) -> AgeRecipients | None:
    """The encryption ``create`` asks for; ``None``: the data directory's default."""
    recipients = tuple(args.encrypt_to or ())
    if args.with_passphrase or args.passphrase_file is not None:
        passphrase = _passphrase(args, ask=True, confirm=True)
        assert passphrase is not None
        return AgeRecipients.with_passphrase(passphrase, *recipients)
    return AgeRecipients.to(*recipients) if recipients else None


def identities_from(args: argparse.Namespace) -> AgeIdentities | None:
    """The identities and passphrase a reading command was given, if any."""
    if getattr(args, "command", None) not in ("inspect", "verify", "plan", "restore"):
        return None
    found = AgeIdentities()
    paths = list(args.identity or ())
    if not paths and os.environ.get(IDENTITY_ENV):
        paths.append(Path(os.environ[IDENTITY_ENV]))
    for path in paths:
        found = found.combined(AgeIdentities.from_file(path))
    passphrase = _passphrase(args, ask=args.ask_passphrase, confirm=False)
    if passphrase is not None:
        found = found.combined(AgeIdentities.from_passphrase(passphrase))
    return found if found.identities or found.passphrase else None


def add_key_actions(action: object) -> None:
    """The age actions of ``key``."""
    assert callable(action)
    action(
        "age-new",
        "create this server's age identity (DIR/age-identity.txt, mode 0600); new backups "
        "are encrypted to it",
    )
    action("age-recipient", "print the recipient (public key) of this server's age identity")
    action(
        "emergency-kit",
        "write the age identity, the archive key and recovery instructions to a new FILE "
        "(mode 0600), for the day this server is gone",
    ).add_argument("file", metavar="FILE", help="a new file; '-' for stdout (not a terminal)")


def run_key_action(args: argparse.Namespace, archiver: Archiver, out: _Output) -> int | None:
    """Carry out an age action of ``key`` (or a kit given to ``key import``); else ``None``."""
    action = args.key_command
    if action == "age-new":
        recipient = archiver.create_age_identity()
        out.result(
            {"recipient": recipient},
            [
                recipient,
                (
                    "new backups are encrypted to it; export the emergency kit now "
                    "('odeion-archive key emergency-kit FILE') and keep it offline"
                ),
            ],
        )
        return 0
    if action == "age-recipient":
        recipients = archiver.age_recipients()
        out.result({"recipients": list(recipients)}, list(recipients))
        return 0
    if action == "emergency-kit":
        if args.file == "-":
            if sys.stdout.isatty():
                raise UsageError(
                    "refusing to print the emergency kit on a terminal; name a FILE, or "
                    "redirect stdout"
                )
            archiver.export_emergency_kit(sys.stdout)
            sys.stderr.write("wrote the emergency kit; keep it secret and offline\n")
            return 0
        recipients = archiver.export_emergency_kit(Path(args.file))
        out.result(
            {"emergency_kit": args.file, "recipients": list(recipients)},
            [f"wrote the emergency kit to {args.file} (mode 0600); keep it secret and offline"],
        )
        return 0
    if action == "import" and args.file != "-" and is_kit(read_key_file(Path(args.file), "file")):
        recipients = archiver.import_emergency_kit(Path(args.file))
        out.result(
            {
                "imported_kit": args.file,
                "recipients": list(recipients),
                "key_ids": list(archiver.key_ids()),
            },
            [
                (
                    "imported the emergency kit: this server now opens archives encrypted to "
                    f"{', '.join(recipients)} and recognises the archives of its archive key"
                )
            ],
        )
        return 0
    return None
