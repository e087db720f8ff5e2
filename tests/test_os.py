"""The operating-system facts: a live process, judged from ids that files may carry."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from odeion_archive._os import process_alive


def test_a_running_process_is_alive_and_an_exited_one_is_not() -> None:
    assert process_alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not process_alive(child.pid)


@pytest.mark.parametrize("pid", [0, -1, -os.getpid(), 10**30])
def test_an_id_that_names_no_single_process_is_no_running_process(pid: int) -> None:
    # os.kill reads 0 and negative ids as process groups (-1: every process).
    assert not process_alive(pid)
