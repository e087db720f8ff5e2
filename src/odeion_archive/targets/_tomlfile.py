"""Reading a small TOML file an administrator wrote (targets.toml, a credentials file).

The file is opened without waiting (a FIFO never blocks the read), must be a
regular file, and is read up to a bound, so that a symbolic link to
``/dev/zero`` or to a huge file cannot exhaust the memory; text that is not
UTF-8 or not TOML is a :class:`~odeion_archive.errors.UsageError`. tomllib
reads a whole stream without a bound, hence this wrapper.
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any

from odeion_archive.errors import UsageError

__all__ = ["LIMIT", "read_toml"]

#: The largest configuration file read, in bytes.
LIMIT = 64 * 1024


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """The TOML document in ``path`` (``what`` names it in errors, e.g. "the credentials file").

    Raises :class:`FileNotFoundError` (or :class:`NotADirectoryError`) if there is no such file (the callers
    decide what that means); any other flaw is a :class:`UsageError`.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError):
        raise
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UsageError(f"{what} {path} is not a regular file; name a file")
        with os.fdopen(os.dup(fd), "rb") as stream:
            data = stream.read(LIMIT + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > LIMIT:
        raise UsageError(f"{what} {path} is larger than {LIMIT} bytes; it is no such file")
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"{what} {path} is not UTF-8 text; save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{what} {path} is not valid TOML ({exc}); correct it") from None
