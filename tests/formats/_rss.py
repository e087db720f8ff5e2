"""The peak memory of a child process, for the memory tests (and their child scripts)."""

import resource
from pathlib import Path


def peak_rss() -> int:
    """Peak resident memory of this process's own address space, in bytes.

    For memory checks run in a child process: ``ru_maxrss`` would do, but Linux
    carries it over from the parent across fork and exec, so a child of a
    large test process would report the parent's size.
    """
    try:
        with Path("/proc/self/status").open() as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
