"""Backup and restore measured side by side with pg_dump and pg_restore on the same data.

Run with ``nox -s bench`` (``nox -s bench -- --scale benchmark`` for about 2 GB
per data set; ``--scale tiny`` runs in about a minute). Two data sets, each in
its own database (:mod:`_datasets`): the Odeion sample data (narrow rows,
watch history dominates) and a text-heavy one (long descriptions, wide JSON
documents, many small tables). For each, every reference runs on the same
database, in the same run, on the same machine:

* the *extraction limit*: ``pg_dump -Fc -Z0 > /dev/null``, the time it takes
  only to get the dump out of the server;
* ``pg_dump -Fc -f file`` (pg_dump's own gzip compression);
* the same dump stream piped into a small Python loop (1 MiB ``readinto``,
  sha256, zstd level 1 on every core): the size of zstd level 1;
* ``pg_restore --single-transaction`` of the uncompressed dump.

Each odeion-archive operation runs in a child process so that its peak memory
(RSS of the Python process) is measured alone. Prints ratios; asserts
nothing: the numbers are for people to read.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from _datasets import DATASETS, SCALES, fresh_database, mib, seeded

from odeion_archive._postgres import EmbeddedPostgres, find_tools, pick_tool, tool_invocation
from odeion_archive.testing import peak_rss

_CHILD = r"""
import json, sys, time
from odeion_archive import Archiver
args = json.loads(sys.argv[1])
from odeion_archive.testing import peak_rss
identities = encryption = None
if args.get("age_key"):
    from odeion_archive import AgeIdentities, AgeRecipients
    identities = AgeIdentities.from_file(args["age_key"])
    encryption = AgeRecipients.to(args["age_recipient"])
archiver = Archiver(args["data_dir"], database_url=args["url"], identities=identities)
started = time.perf_counter()
if args["op"] == "backup":
    result = archiver.create(
        components=args["components"], format=args["format"], encryption=encryption
    )
    extra = {"size": result.archive.size, "path": str(result.archive.path)}
elif args["op"] == "plan":
    plan = archiver.plan(args["archive"], args["mode"], args["conflict"])
    extra = {"can_restore": plan.can_restore, "blockers": [b.code for b in plan.blockers]}
else:
    archiver.restore(args["archive"], args["mode"], args["conflict"])
    extra = {}
seconds = time.perf_counter() - started
rss = peak_rss()
print(json.dumps({"seconds": seconds, "rss": rss, **extra}))
"""

# A reference loop, as small as a compressing copy can be: the dump stream, read into one
# reused 1 MiB buffer, hashed and compressed at zstd level 1 on every core.
_ZSTD_LOOP = r"""
import hashlib, json, subprocess, sys, time
import zstandard
command, env = json.loads(sys.argv[1])
started = time.perf_counter()
process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE)
digest = hashlib.sha256()
compressor = zstandard.ZstdCompressor(level=1, threads=-1).compressobj()
buffer = bytearray(1 << 20)
view = memoryview(buffer)
raw = size = 0
while n := process.stdout.readinto(buffer):
    digest.update(view[:n])
    size += len(compressor.compress(view[:n]))
    raw += n
size += len(compressor.flush())
if process.wait() != 0:
    raise SystemExit("pg_dump failed")
print(json.dumps({"seconds": time.perf_counter() - started, "raw": raw, "size": size}))
"""


def _child(**args: Any) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(args)],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(f"{args['op']} failed:\n{completed.stderr}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def _zstd_loop(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-c", _ZSTD_LOOP, json.dumps([command, env])],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def _settled(admin: str, name: str) -> str:
    """A new, empty database ``name``, after a checkpoint has written every dirty page out."""
    url = fresh_database(admin, name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
    return url


def _timed(command: list[str], env: dict[str, str], **kwargs: Any) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, **kwargs)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", choices=SCALES, default="demo")
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument(
        "--database-url",
        help="an admin URL of a server to use (default: "
        "an embedded PostgreSQL in the work directory)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where the embedded server, dumps and archives go; seeded databases in it are "
        "reused by the next run at the same scale (default: a new temporary directory)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="run the extraction limit, the zstd loop and the tar.zst backup this many "
        "times each, in turn, and report the best of each (default: 3)",
    )
    parser.add_argument(
        "--seed-only",
        action="store_true",
        help="seed the data sets in --workdir (or reuse them) and measure nothing",
    )
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="odeion-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    server = None
    if args.database_url:
        admin = args.database_url
    else:
        server = EmbeddedPostgres(workdir / "server", database="postgres", owner=None)
        admin = server.start()
    try:
        print(f"scale: {args.scale}; data sets: {', '.join(args.datasets)}")
        if args.seed_only:
            for name in args.datasets:
                seeded(admin, name, args.scale)
            return
        results = {
            name: run(admin, workdir, name, args.scale, args.repeat) for name in args.datasets
        }
    finally:
        if server is not None:
            server.stop()
    print()
    print(f"=== results at --scale {args.scale} ===")
    if args.scale != "benchmark":
        print("(read the ratios at --scale benchmark: at this scale fixed costs weigh more)")
    for name, lines in results.items():
        print()
        print(f"--- data set: {name} ---")
        for line in lines:
            print(line)
    print()
    print(f"peak RSS of this driver        {mib(peak_rss())}")


def run(admin: str, workdir: Path, dataset: str, scale: str, repeat: int) -> list[str]:
    """Measure everything on one data set; the lines of its table."""
    source, major = seeded(admin, dataset, scale)
    pg_dump = pick_tool("pg_dump", major, find_tools("pg_dump"))
    pg_restore = pick_tool("pg_restore", major, find_tools("pg_restore"))
    conninfo, env = tool_invocation(source)
    work = workdir / dataset
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    gzip_file, raw_file = work / "gzip.dump", work / "raw.dump"
    dump = [str(pg_dump.path), "-Fc", f"--dbname={conninfo}"]

    data_dir = work / "data"

    def measure(op: str, url: str, **args: Any) -> dict[str, Any]:
        """One odeion-archive operation on the same data directory, in a child process."""
        return _child(op=op, data_dir=str(data_dir), url=url, **args)

    # The raw dump (for pg_restore) first: it also brings the database into the
    # cache, so that no measured run pays for reading it from disk alone. The
    # extraction limit, the loop and the backup then run in turn ``repeat``
    # times, each reported at its best: a machine shared with other work slows
    # a run now and then, never speeds one up.
    _timed([*dump, "-Z0", "-f", str(raw_file)], env)
    limits, loops, fulls = [], [], []
    for _ in range(repeat):
        with Path(os.devnull).open("wb") as devnull:
            limits.append(_timed([*dump, "-Z0"], env, stdout=devnull))
        loops.append(_zstd_loop([*dump, "-Z0"], env))
        fulls.append(measure("backup", source, components=["full_db"], format="tar.zst"))
        if len(fulls) > 1:
            Path(fulls[-2]["path"]).unlink()
    t_limit = min(limits)
    loop = min(loops, key=lambda result: float(result["seconds"]))
    full = {**min(fulls, key=lambda r: float(r["seconds"])), "path": fulls[-1]["path"]}
    full["rss"] = max(float(r["rss"]) for r in fulls)
    t_gzip = _timed([*dump, "-f", str(gzip_file)], env)
    gzip_size = gzip_file.stat().st_size
    full_zip = measure("backup", source, components=["full_db"], format="zip")
    age = _age_key(gzip_file.parent)
    encrypted = measure("backup", source, components=["full_db"], format="tar.zst", **age)

    # pg_restore and the restore run in turn ``repeat`` times each, each into a new
    # database after a CHECKPOINT, so that neither pays for the other's dirty
    # pages: a restore writes gigabytes of WAL, and a single run of either moved
    # by up to a fifth from one run of the benchmark to the next.
    references, restores = [], []
    for _ in range(repeat):
        target_info, target_env = tool_invocation(_settled(admin, "bench_pg_restore"))
        references.append(
            _timed(
                [
                    str(pg_restore.path),
                    "--single-transaction",
                    "--no-owner",
                    f"--dbname={target_info}",
                    str(raw_file),
                ],
                target_env,
            )
        )
        restores.append(
            measure(
                "restore",
                _settled(admin, "bench_full_restore"),
                archive=full["path"],
                mode="full_db",
                conflict="skip",
            )
        )
    t_restore = min(references)
    ours = {
        **min(restores, key=lambda r: float(r["seconds"])),
        "rss": max(float(r["rss"]) for r in restores),
    }
    _settled(admin, "bench_pg_restore")  # the space of the last restored copies back
    _settled(admin, "bench_full_restore")
    ours_encrypted = measure(
        "restore",
        _settled(admin, "bench_full_restore_age"),
        archive=encrypted["path"],
        mode="full_db",
        conflict="skip",
        **age,
    )
    plan = measure(
        "plan",
        fresh_database(admin, "bench_full_plan"),
        archive=full["path"],
        mode="full_db",
        conflict="skip",
    )
    raw = loop["raw"]
    lines = [
        f"dump stream (pg_dump -Fc -Z0)  {mib(raw)}",
        (
            f"pg_dump -Fc -Z0 > /dev/null    {t_limit:8.2f} s   (the extraction limit; "
            f"best of {repeat}: {', '.join(f'{t:.2f}' for t in limits)})"
        ),
        f"pg_dump -Fc -f file (gzip)     {t_gzip:8.2f} s   {mib(gzip_size)}",
        (
            f"zstd -1 loop on the stream     {loop['seconds']:8.2f} s   {mib(loop['size'])}"
            f"   time ratio to the limit {loop['seconds'] / t_limit:.2f}"
        ),
    ]
    for label, result in (("tar.zst", full), ("zip", full_zip)):
        if label == "zip":
            lines.append(
                f"  (tar.zst: best of {repeat}: "
                + ", ".join(f"{float(r['seconds']):.2f}" for r in fulls)
                + " s)"
            )
        lines += [
            (
                f"full_db backup, {label:15s}{result['seconds']:8.2f} s   {mib(result['size'])}"
                f"   peak RSS {mib(result['rss'])}"
            ),
            f"  time ratio to the limit      {result['seconds'] / t_limit:8.2f}"
            + ("   (target <= 1.25)" if label == "tar.zst" else ""),
            f"  time ratio to pg_dump -f     {result['seconds'] / t_gzip:8.2f}",
            f"  size ratio to zstd -1        {result['size'] / loop['size']:8.3f}"
            + ("   (target <= 1.000)" if label == "tar.zst" else ""),
            f"  size ratio to pg_dump -f     {result['size'] / gzip_size:8.3f}",
            f"  size ratio to the stored dump{result['size'] / raw:8.3f}",
        ]
    lines += [
        f"pg_restore --single-transaction {t_restore:7.2f} s   (of the uncompressed dump)",
        f"full_db restore                {ours['seconds']:8.2f} s   peak RSS {mib(ours['rss'])}",
        f"  time ratio to pg_restore     {ours['seconds'] / t_restore:8.2f}   (target <= 1.05)",
        (
            f"  (best of {repeat}: pg_restore "
            + ", ".join(f"{t:.2f}" for t in references)
            + "; restore "
            + ", ".join(f"{float(r['seconds']):.2f}" for r in restores)
            + " s)"
        ),
        f"plan of the full_db archive    {plan['seconds']:8.2f} s",
        (
            f"encrypted (age) tar.zst backup {encrypted['seconds']:8.2f} s   "
            f"{mib(encrypted['size'])}   peak RSS {mib(encrypted['rss'])}"
        ),
        (
            f"  time ratio to tar.zst backup {encrypted['seconds'] / full['seconds']:8.2f}"
            "   (target <= 1.15)"
        ),
        f"  size ratio to tar.zst backup {encrypted['size'] / full['size']:8.3f}",
        (
            f"encrypted full_db restore      {ours_encrypted['seconds']:8.2f} s   "
            f"time ratio to the plain restore {ours_encrypted['seconds'] / ours['seconds']:.2f}"
        ),
    ]
    if dataset == "odeion":
        lines += _json_timings(admin, measure, source)
    for path in (
        gzip_file,
        raw_file,
        Path(full["path"]),
        Path(full_zip["path"]),
        Path(encrypted["path"]),
    ):
        path.unlink(missing_ok=True)
    return lines


def _age_key(directory: Path) -> dict[str, str]:
    """A new age identity file in ``directory``: the child's arguments to encrypt and decrypt."""
    import pyrage  # noqa: PLC0415 - only the encryption rows need the age extra

    identity = pyrage.x25519.Identity.generate()
    path = directory / "bench-age-key.txt"
    path.write_text(f"{identity}\n", encoding="utf-8")
    path.chmod(0o600)
    return {"age_key": str(path), "age_recipient": str(identity.to_public())}


def _json_timings(admin: str, measure: Any, source: str) -> list[str]:
    """Backup, plan and restore of users_auth (the JSON components), each conflict policy."""
    backup = measure("backup", source, components=["users_auth", "settings"], format="tar.zst")
    target = fresh_database(admin, "bench_users_restore", migrated=True)
    archive = backup["path"]
    insert = measure("restore", target, archive=archive, mode="users_auth", conflict="overwrite")
    timings = {"insert": insert}
    for conflict in ("overwrite", "rename"):
        timings[f"plan, {conflict}"] = measure(
            "plan", target, archive=archive, mode="users_auth", conflict=conflict
        )
        timings[conflict] = measure(
            "restore", target, archive=archive, mode="users_auth", conflict=conflict
        )
    lines = [
        (
            f"users_auth+settings backup     {backup['seconds']:8.2f} s   "
            f"peak RSS {mib(backup['rss'])}"
        ),
    ]
    for label, result in timings.items():
        what = "plan" if label.startswith("plan") else "restore"
        lines.append(
            f"users_auth {what + ', ' + label.removeprefix('plan, '):20s}{result['seconds']:8.2f} s"
            f"   peak RSS {mib(result['rss'])}"
        )
    Path(archive).unlink(missing_ok=True)
    return lines


if __name__ == "__main__":
    main()
