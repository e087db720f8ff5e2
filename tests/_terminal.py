"""Commands run as a person runs them: on a pseudo-terminal, or on a file that rots."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

#: What to do once the command shows a prompt: given the process and the terminal.
Act = Callable[["subprocess.Popen[bytes]", int], None]


def on_a_terminal(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    prompt: bytes | None = None,
    act: Act | None = None,
    stdout_too: bool = False,
    new_session: bool = False,
) -> tuple[str, int, bool]:
    """Run ``argv`` with stdin and stderr on a pty (and stdout, if ``stdout_too``).

    Returns what it drew, its exit code, and whether ``act`` ran: it runs once,
    when ``prompt`` appears.
    """
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        list(argv),
        stdin=secondary,
        stdout=secondary if stdout_too else subprocess.PIPE,
        stderr=secondary,
        env={**env, "COLUMNS": "160", "TERM": "xterm-256color"},
        start_new_session=new_session,
    )
    os.close(secondary)
    seen = b""
    acted = False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the command has ended and closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        elif process.poll() is not None:
            break
        if act is not None and not acted and prompt is not None and prompt in seen:
            act(process, primary)
            acted = True
    process.wait(timeout=60)
    os.close(primary)
    if process.stdout is not None:
        process.stdout.close()
    return seen.decode(errors="replace"), process.returncode, acted


def rot(path: Path) -> None:
    """Flip one byte in the middle of the file, as a failing disk would."""
    with path.open("r+b") as stream:
        stream.seek(path.stat().st_size // 2)
        byte = stream.read(1)
        stream.seek(-1, os.SEEK_CUR)
        stream.write(bytes([byte[0] ^ 0x40]))
