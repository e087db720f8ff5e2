"""Backup and restore measured side by side with pg_dump and pg_restore on the same data.

Run with ``nox -s bench`` (``nox -s bench -- --scale benchmark`` for the full
100,000 users / 1,000,000 media items / 10,000,000 watch-history rows, about
2 GB). Each odeion-archive operation runs in a child process so that its peak
memory (RSS of the Python process) is measured alone. Prints ratios; asserts
nothing: the numbers are for people to read.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from _memory import peak_rss
from psycopg import sql
from psycopg.conninfo import make_conninfo

from odeion_archive import _schema as schema
from odeion_archive._postgres import EmbeddedPostgres, find_tools, pick_tool, tool_invocation
from odeion_archive.sample import SeedScale, seed

_HERE = Path(__file__).parent

_CHILD = r"""
import json, sys, time
from odeion_archive import Archiver
args = json.loads(sys.argv[1])
sys.path.insert(0, args["benchmarks"])
from _memory import peak_rss
archiver = Archiver(args["data_dir"], database_url=args["url"])
started = time.perf_counter()
if args["op"] == "backup":
    result = archiver.create(components=args["components"], format=args["format"])
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


def _child(**args: Any) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps({**args, "benchmarks": str(_HERE)})],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(f"{args['op']} failed:\n{completed.stderr}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def _timed(command: list[str], env: dict[str, str], **kwargs: Any) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, **kwargs)
    return time.perf_counter() - started


def _fresh_database(admin: str, name: str, *, migrated: bool = False) -> str:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_conninfo(admin, dbname=name)
    if migrated:
        with psycopg.connect(url) as conn:
            schema.migrate(conn)
    return url


def _mib(value: float) -> str:
    return f"{value / 2**20:,.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", choices=["demo", "benchmark"], default="demo")
    parser.add_argument(
        "--database-url",
        help="an admin URL of a server to use (default: "
        "an embedded PostgreSQL in a temporary directory)",
    )
    parser.add_argument("--workdir", type=Path, default=None)
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
        run(
            admin, workdir, SeedScale.benchmark() if args.scale == "benchmark" else SeedScale.demo()
        )
    finally:
        if server is not None:
            server.stop()


def _seeded_source(admin: str, scale: SeedScale) -> tuple[str, int]:
    """A new database with sample data at ``scale``; its URL and its server's major version."""
    source = _fresh_database(admin, "bench_source", migrated=True)
    started = time.perf_counter()
    with psycopg.connect(source) as conn:
        counts = seed(conn, scale)
        conn.commit()
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        size_row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        major = int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000  # type: ignore[index]
    assert size_row is not None
    print(
        f"seeded {counts} in {time.perf_counter() - started:.1f} s; "
        f"database size {_mib(size_row[0])}"
    )
    return source, major


def run(admin: str, workdir: Path, scale: SeedScale) -> None:
    print(f"scale: {scale}")
    source, major = _seeded_source(admin, scale)

    pg_dump = pick_tool("pg_dump", major, find_tools("pg_dump"))
    pg_restore = pick_tool("pg_restore", major, find_tools("pg_restore"))
    conninfo, env = tool_invocation(source)
    dump_file = workdir / "plain.dump"
    t_dump = _timed([str(pg_dump.path), "-Fc", "-f", str(dump_file), f"--dbname={conninfo}"], env)
    with Path(os.devnull).open("wb") as devnull:
        t_dump_z0 = _timed(
            [str(pg_dump.path), "-Fc", "-Z0", f"--dbname={conninfo}"], env, stdout=devnull
        )
    dump_size = dump_file.stat().st_size

    data_dir = workdir / "data"

    def measure(op: str, url: str, **args: Any) -> dict[str, Any]:
        """One odeion-archive operation on the same data directory, in a child process."""
        return _child(op=op, data_dir=str(data_dir), url=url, **args)

    full = measure("backup", source, components=["full_db"], format="tar.zst")
    json_backup = measure(
        "backup",
        source,
        components=["users_auth", "settings"],
        format="tar.zst",
    )

    restore_plain = _fresh_database(admin, "bench_pg_restore")
    target_info, target_env = tool_invocation(restore_plain)
    t_restore = _timed(
        [
            str(pg_restore.path),
            "--single-transaction",
            "--no-owner",
            f"--dbname={target_info}",
            str(dump_file),
        ],
        target_env,
    )
    restore_ours = _fresh_database(admin, "bench_full_restore")
    ours = measure(
        "restore",
        restore_ours,
        archive=full["path"],
        mode="full_db",
        conflict="skip",
    )
    plan = measure(
        "plan",
        restore_ours,
        archive=full["path"],
        mode="full_db",
        conflict="skip",
    )

    users_target = _fresh_database(admin, "bench_users_restore", migrated=True)
    users_insert = measure(
        "restore",
        users_target,
        archive=json_backup["path"],
        mode="users_auth",
        conflict="overwrite",
    )
    users_overwrite = measure(
        "restore",
        users_target,
        archive=json_backup["path"],
        mode="users_auth",
        conflict="overwrite",
    )

    users_plan = measure(
        "plan",
        users_target,
        archive=json_backup["path"],
        mode="users_auth",
        conflict="rename",
    )

    print()
    if scale != SeedScale.benchmark():
        print("(the targets are for --scale benchmark; at this scale fixed costs dominate)")
    print(f"pg_dump -Fc -f file            {t_dump:8.2f} s   {_mib(dump_size)}")
    print(f"pg_dump -Fc -Z0 > /dev/null    {t_dump_z0:8.2f} s")
    print(
        f"full_db backup, tar.zst        {full['seconds']:8.2f} s   {_mib(full['size'])}"
        f"   peak RSS {_mib(full['rss'])}"
    )
    print(f"  time ratio to pg_dump -f     {full['seconds'] / t_dump:8.2f}   (target <= 0.50)")
    print(f"  size ratio to pg_dump -f     {full['size'] / dump_size:8.2f}   (target <= 1.00)")
    print(
        f"users_auth+settings backup     {json_backup['seconds']:8.2f} s   "
        f"peak RSS {_mib(json_backup['rss'])}   (target < 3 s at 100,000 users)"
    )
    print(f"pg_restore --single-transaction {t_restore:7.2f} s")
    print(f"full_db restore                {ours['seconds']:8.2f} s   peak RSS {_mib(ours['rss'])}")
    print(f"  time ratio to pg_restore     {ours['seconds'] / t_restore:8.2f}   (target <= 1.15)")
    print(f"plan of the full_db archive    {plan['seconds']:8.2f} s   (target well under 1 s)")
    print(
        f"plan of the users_auth archive {users_plan['seconds']:8.2f} s   (predicts every row: "
        "it reads them all)"
    )
    print(f"users_auth restore, inserting  {users_insert['seconds']:8.2f} s   (target < 10 s)")
    print(f"users_auth restore, overwriting {users_overwrite['seconds']:7.2f} s   (target < 10 s)")
    print(f"peak RSS of this driver        {_mib(peak_rss())}")


if __name__ == "__main__":
    main()
