"""A child process of the memory test: copy one archive to one target, print peak RSS and time."""

import json
import sys
import time

from odeion_archive import Archiver
from odeion_archive.targets import TargetSpec
from odeion_archive.testing import peak_rss

data_dir, spec_json, name = sys.argv[1:4]
spec = TargetSpec(**json.loads(spec_json))
archiver = Archiver(data_dir, targets=[spec], database_url="postgresql:///unused")
started = time.monotonic()
[result] = archiver.copy_to(spec.name, name)
assert result.ok and not result.skipped
sys.stderr.write(f"{peak_rss()} {time.monotonic() - started}\n")
