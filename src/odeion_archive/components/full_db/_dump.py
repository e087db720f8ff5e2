"""Taking the dump: ``pg_dump`` in the backup's snapshot, its output streamed as it comes."""

from __future__ import annotations

import contextlib
import fcntl
import subprocess
import tempfile
from collections.abc import Iterator
from typing import Any

from odeion_archive.components.full_db._process import cancel_watch, exit_text, stderr_head
from odeion_archive.errors import BackupFailedError
from odeion_archive.interfaces import BackupContext

__all__ = ["stream_dump"]

_CHUNK = 1024 * 1024


def stream_dump(
    command: list[str], env: dict[str, str], context: BackupContext, header: dict[str, Any]
) -> Iterator[bytes]:
    """Run pg_dump and yield its output; fail with its own words if it fails.

    The first bytes give the dump's archive version (``header["archive_version"]``).
    Cancelling the backup kills pg_dump.
    """
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL, env=env
        )
        assert process.stdout is not None
        with contextlib.suppress(OSError, AttributeError):
            # A 1 MiB pipe (Linux) lets pg_dump run ahead while a chunk is hashed and
            # compressed, instead of stopping every 64 KiB for the reader to wake up.
            fcntl.fcntl(process.stdout.fileno(), fcntl.F_SETPIPE_SZ, _CHUNK)
        try:
            with cancel_watch(context.cancel, process.kill, name="pg_dump-cancel"):
                first = True
                while chunk := process.stdout.read(_CHUNK):
                    if first:
                        first = False
                        if chunk[:5] == b"PGDMP" and len(chunk) >= 8:
                            header["archive_version"] = f"{chunk[5]}.{chunk[6]}.{chunk[7]}"
                    yield chunk
                code = process.wait()
            context.cancel.raise_if_cancelled()
            if code != 0:
                raise BackupFailedError(
                    f"pg_dump {exit_text(code)}: {stderr_head(stderr) or 'no message'}; nothing "
                    "was added to the store, fix the cause and try again"
                )
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stdout.close()
