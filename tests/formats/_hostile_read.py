"""Child process: read a (hostile) archive every way the library does; report the cost.

Run as ``python _hostile_read.py <archive>``. Opens it (what inspect, plan and
import do first), verifies it, and checks the container (what a restore does),
catching the library's refusals. Prints ``<peak rss bytes> <seconds> <outcome>``
to stdout, where the outcome is ``ok`` or the refusal's class name.
"""

import sys
import time
from pathlib import Path

from odeion_archive._archive import ArchiveFile, verify_archive
from odeion_archive._registry import Registry
from odeion_archive.errors import ArchiveInvalidError
from odeion_archive.testing import peak_rss


def main() -> None:
    path = Path(sys.argv[1])
    registry = Registry.empty()
    for module in ("odeion_archive.formats.zip", "odeion_archive.formats.tarzst"):
        registry.register(__import__(module, fromlist=["x"]), name=module)
    start = time.perf_counter()
    outcome = "ok"
    try:
        with ArchiveFile.open(path, registry) as archive:
            reports = [archive.verify(), archive.check_container()]
            for _entry, chunks in archive.walk():
                for _chunk in chunks:
                    pass
        if not all(report.ok for report in reports):
            outcome = "problems"
    except ArchiveInvalidError as exc:
        outcome = type(exc).__name__
    if verify_archive(path, registry).ok != (outcome == "ok"):
        outcome += "-inconsistent"
    seconds = time.perf_counter() - start
    sys.stdout.write(f"{peak_rss()} {seconds} {outcome}\n")


if __name__ == "__main__":
    main()
