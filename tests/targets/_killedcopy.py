"""A child process of the kill test: copy an archive to a dir target, slowly, until killed."""

import sys
import time

from odeion_archive import Archiver
from odeion_archive.targets import TargetSpec

data_dir, target_dir, name, ready = sys.argv[1:5]
archiver = Archiver(
    data_dir,
    targets=[TargetSpec.directory("nas", target_dir)],
    database_url="postgresql:///unused",
)


def slow(event: object) -> None:
    with open(ready, "w") as flag:  # noqa: PTH123 - a flag for the parent
        flag.write("copying")
    time.sleep(0.05)


archiver.copy_to("nas", name, progress=slow)
