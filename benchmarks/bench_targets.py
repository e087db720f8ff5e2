"""Copies to storage targets: upload throughput and peak memory for a large archive.

Starts a real S3 API server (moto) on 127.0.0.1, writes an archive of
``--size-mib`` MiB of incompressible data, and copies it in a child process to
an ``s3`` target and a ``dir`` target, reporting the upload and the read-back
check separately, and the child's peak resident memory (before and after the
copy)::

    python benchmarks/bench_targets.py --size-mib 256
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

from odeion_archive import Registry
from odeion_archive.testing import ArchiveBuilder, head_manifest

_CHILD = r"""
import json, sys, time
from odeion_archive.testing import peak_rss
from odeion_archive import Archiver
from odeion_archive.targets import TargetSpec

spec = TargetSpec(**json.loads(sys.argv[2]))
archiver = Archiver(sys.argv[1], targets=[spec], database_url="postgresql:///unused")
name = sys.argv[3]
archiver.list()
before = peak_rss()
times = {}
def progress(event):
    now = time.monotonic()
    times.setdefault(event.phase, [now, now])[1] = now
started = time.monotonic()
[result] = archiver.copy_to(spec.name, name, progress=progress)
total = time.monotonic() - started
print(json.dumps({
    "ok": result.ok, "size": result.size, "seconds": total,
    "upload": times["upload"][1] - times["upload"][0],
    "check": times["check"][1] - times["check"][0],
    "rss_before": before, "rss_peak": peak_rss(),
}))
"""


def _noise(total: int) -> Iterator[bytes]:
    block = 1024 * 1024
    for _ in range(total // block):
        yield secrets.token_bytes(block)


def _archive(store: Path, size: int) -> Path:
    fmt = Registry.default(entry_points=False).format("tar.zst")
    store.mkdir(parents=True)
    path = store / f"odeion-backup-20260102T030405Z-0badcafe{fmt.suffix}"
    with path.open("w+b") as stream:
        builder = ArchiveBuilder(fmt, stream, head=head_manifest(fmt, ("full_db",)))
        builder.add_member("full_db", "database.dump", _noise(size))
        builder.set_facts("full_db", {"files": 1})
        builder.finish()
    return path


def _run(data_dir: Path, spec: Mapping[str, object], name: str) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _CHILD,
            str(data_dir),
            json.dumps(spec),
            name,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    args = parser.parse_args()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{server.get_host_and_port()[1]}"
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        ).create_bucket(Bucket="odeion-bench")
        os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
        with tempfile.TemporaryDirectory(prefix="odeion-bench-targets-") as work:
            data_dir = Path(work) / "data"
            path = _archive(data_dir / "backups", args.size_mib * 1024 * 1024)
            (Path(work) / "nas").mkdir()
            specs = {
                "s3": {
                    "name": "offsite",
                    "kind": "s3",
                    "options": {
                        "bucket": "odeion-bench",
                        "endpoint": endpoint,
                        "path_style": True,
                        "allow_http": True,
                    },
                },
                "dir": {"name": "nas", "kind": "dir", "options": {"path": str(Path(work) / "nas")}},
            }
            mib = path.stat().st_size / 1024 / 1024
            print(f"archive: {mib:.0f} MiB (tar.zst, incompressible member)")
            for kind, spec in specs.items():
                r = _run(data_dir, spec, path.name)
                print(
                    f"{kind:>3}: upload {mib / r['upload']:.0f} MiB/s ({r['upload']:.1f} s), "
                    f"read-back check {mib / r['check']:.0f} MiB/s, whole copy {r['seconds']:.1f} s; "
                    f"peak RSS {r['rss_peak'] / 2**20:.0f} MiB "
                    f"(+{(r['rss_peak'] - r['rss_before']) / 2**20:.0f} MiB over the idle process)"
                )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
