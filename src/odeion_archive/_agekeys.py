"""The age keys of a data directory, and the emergency kit.

``<data_dir>/age-identity.txt`` (mode 0600) holds the server's age identity, as
``age-keygen`` writes one; the server opens its own encrypted archives with it.
``<data_dir>/age-recipients.txt`` lists the recipients (one ``age1...`` per
line, ``#`` comments, as age's ``-R`` reads) that every new backup is encrypted
to unless the caller says otherwise: the data directory's encryption setting.

The emergency kit is one file (mode 0600) for the day the server is gone: the
recovery instructions and the archive key that seals this server's archives, as
``#`` comments, and the identity. ``age -d -i kit.txt`` reads it as an identity
file; ``odeion-archive key import kit.txt`` on a new server takes both the
identity and the archive key, so that it opens and recognises the old archives.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import stat
from pathlib import Path
from typing import IO

from odeion_archive import _age
from odeion_archive._age import AgeIdentities, AgeRecipients
from odeion_archive._keys import Keyring
from odeion_archive.errors import KeyringError, NotFoundError, UsageError

__all__ = [
    "IDENTITY_FILE",
    "RECIPIENTS_FILE",
    "create_identity",
    "default_recipients",
    "export_kit",
    "install_identities",
    "is_kit",
    "kit_text",
    "load_identities",
    "own_recipients",
    "read_kit",
    "read_kit_file",
    "read_text",
    "write_secret",
]

_log = logging.getLogger(__name__)

IDENTITY_FILE = "age-identity.txt"
RECIPIENTS_FILE = "age-recipients.txt"
_KIT_HEADER = "# odeion-archive emergency kit 1"
_KEYRING_PREFIX = "#| "
_FILE_MODE = 0o600


def write_secret(path: Path, text: str) -> None:
    """Write ``text`` to a new file at ``path`` with mode 0600; never overwrite one."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, _FILE_MODE)
    except FileExistsError:
        raise KeyringError(
            f"{path} already exists; a secret is never written over a file, name a new one"
        ) from None
    except OSError as exc:
        raise KeyringError(f"cannot create {path}: {exc.strerror}; check the directory") from exc
    try:
        os.fchmod(fd, _FILE_MODE)  # whatever the umask
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _identity_text(identity: str, recipient: str) -> str:
    created = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return f"# created: {created}\n# public key: {recipient}\n{identity}\n"


def create_identity(data_dir: Path) -> str:
    """Create the data directory's age identity; return its recipient.

    The recipient is added to the data directory's recipients, so that new
    backups are encrypted to it. An existing identity is never replaced.
    """
    path = data_dir / IDENTITY_FILE
    if path.exists():
        raise UsageError(
            f"{path} already exists; this server has an age identity (see 'key age-recipient'), "
            "and replacing it would lose the key to its archives"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    identity, recipient = _age.new_identity()
    write_secret(path, _identity_text(identity, recipient))
    recipients = data_dir / RECIPIENTS_FILE
    with recipients.open("a", encoding="utf-8") as stream:
        stream.write(f"# the age identity of this data directory ({IDENTITY_FILE})\n{recipient}\n")
    _log.info("created the age identity of %s (recipient %s)", data_dir, recipient)
    return recipient


def load_identities(data_dir: Path) -> AgeIdentities | None:
    """The data directory's age identity; ``None`` if it has none."""
    path = data_dir / IDENTITY_FILE
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if stat.S_IMODE(mode) & 0o077:
        _log.warning("the age identity %s could be read by other users; making it 0600", path)
        path.chmod(_FILE_MODE)
    return AgeIdentities.from_file(path)


def default_recipients(data_dir: Path) -> AgeRecipients | None:
    """The recipients new backups are encrypted to; ``None`` if there are none."""
    path = data_dir / RECIPIENTS_FILE
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    lines = [line.strip() for line in text.splitlines()]
    recipients = [line for line in lines if line and not line.startswith("#")]
    return AgeRecipients.to(*recipients) if recipients else None


def own_recipients(data_dir: Path) -> tuple[str, ...]:
    """The recipients of the data directory's identity; :class:`NotFoundError` if none."""
    own = load_identities(data_dir)
    if own is None:
        raise NotFoundError(
            f"{data_dir} has no age identity; create one with 'odeion-archive key age-new' "
            "(Archiver.create_age_identity)"
        )
    return own.recipients


def export_kit(
    data_dir: Path, keyring: Keyring, destination: Path | str | IO[str]
) -> tuple[str, ...]:
    """Write the data directory's emergency kit to a new file or a text stream."""
    recipients = own_recipients(data_dir)
    own = load_identities(data_dir)
    assert own is not None
    text = kit_text(own, keyring)
    if isinstance(destination, str | Path):
        write_secret(Path(destination), text)
    else:
        destination.write(text)
        destination.flush()
    _log.info("exported the emergency kit (recipients %s)", ", ".join(recipients))
    return recipients


def read_kit_file(path: Path) -> tuple[AgeIdentities, Keyring | None]:
    """The identity and the archive key of the emergency kit at ``path``."""
    return read_kit(read_text(path), what=f"the kit {path}")


def kit_text(identities: AgeIdentities, keyring: Keyring | None) -> str:
    """The emergency kit: instructions and the archive key as comments, then the identity."""
    recipients = identities.recipients
    lines = [
        _KIT_HEADER,
        "# SECRET. Whoever holds this file can read this server's encrypted backups and",
        "# make archives it accepts as its own. Keep it offline (printed, or on a USB key",
        "# in a safe), never next to the backups.",
        "#",
        "# On a new server:",
        "#   pip install 'odeion-archive[age]'",
        "#   odeion-archive --data-dir NEW_DATA_DIR key import THIS_FILE",
        "#   odeion-archive --data-dir NEW_DATA_DIR plan ARCHIVE --mode full_db",
        "#   odeion-archive --data-dir NEW_DATA_DIR restore ARCHIVE --mode full_db",
        "# ('key import' installs the identity and the archive key below; without it, give",
        "# --identity THIS_FILE to plan, verify and restore.)",
        "#",
        "# Without odeion-archive: each member of an archive is an age file of a zstd frame.",
        "#   tar --zstd -xf ARCHIVE.tar.zst   (or: unzip ARCHIVE.zip)",
        "#   age -d -i THIS_FILE full_db/database.dump.age | zstd -d > database.dump",
        "#   age -d -i THIS_FILE manifest.json.age   (the manifest: what each member is)",
        "#",
        f"# The age identity's recipients (public keys): {', '.join(recipients)}",
    ]
    if keyring is not None:
        lines += [
            "#",
            "# The archive key that seals this server's archives ('key import' reads it):",
            *(_KEYRING_PREFIX + line for line in keyring.to_text().splitlines()),
        ]
    lines += ["#", "# The age identity:", *identities.identities]
    return "\n".join(lines) + "\n"


def read_text(path: Path) -> str:
    """The text of a key file or kit (at most 64 KiB)."""
    return _age.read_key_file(path, "key file")


def is_kit(text: str) -> bool:
    """Whether ``text`` is an emergency kit."""
    return text.startswith(_KIT_HEADER)


def read_kit(text: str, *, what: str) -> tuple[AgeIdentities, Keyring | None]:
    """The identity and the archive key of an emergency kit."""
    keyring_lines = [
        line[len(_KEYRING_PREFIX) :]
        for line in text.splitlines()
        if line.startswith(_KEYRING_PREFIX)
    ]
    keyring = (
        Keyring.from_text("\n".join(keyring_lines) + "\n", what=f"the archive key in {what}")
        if keyring_lines
        else None
    )
    return AgeIdentities.from_text(text, what=what), keyring


def install_identities(data_dir: Path, identities: AgeIdentities) -> None:
    """Add ``identities`` to the data directory's identity file (created with mode 0600)."""
    path = data_dir / IDENTITY_FILE
    current = load_identities(data_dir)
    known = set() if current is None else set(current.identities)
    new = [i for i in identities.identities if i not in known]
    if not new:
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    text = "".join(_identity_text(i, _age.recipient_of(i)) for i in new)
    if current is None:
        write_secret(path, text)
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    with os.fdopen(fd, "a", encoding="utf-8") as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())
