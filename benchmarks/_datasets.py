"""The benchmark's two data sets, seeded once per scale and reused from a work directory.

``odeion``: the sample data of :func:`odeion_archive.sample.seed` (narrow rows,
watch history dominates). ``text``: :mod:`_textheavy` (long descriptions, wide
JSON documents, a log, many small tables). A seeded database is marked with a
row of the admin database's table ``odeion_bench_seeded`` naming its data set
and scale once seeding has finished (not in the database itself, whose dump
would carry it), so that a later run with the same ``--workdir`` reuses it and
an interrupted seeding is redone.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
from _textheavy import TextScale, seed_text_heavy
from psycopg import sql
from psycopg.conninfo import make_conninfo

from odeion_archive import _schema as schema
from odeion_archive.sample import SeedScale, seed

__all__ = ["DATASETS", "SCALES", "fresh_database", "mib", "seeded"]

#: The scales: ``tiny`` runs in about a minute, ``benchmark`` holds about 2 GB per data set.
SCALES = ("tiny", "demo", "medium", "benchmark")
DATASETS = ("odeion", "text")
_MARK = "odeion-archive benchmark v1"


def mib(value: float) -> str:
    """``value`` bytes in MiB, for the tables."""
    return f"{value / 2**20:,.1f} MiB"


def _odeion_scale(scale: str) -> SeedScale:
    if scale == "benchmark":
        return SeedScale.benchmark()
    if scale == "demo":
        return SeedScale.demo()
    factor = {"tiny": 1, "medium": 25}[scale]
    return SeedScale(
        users=1_000 * factor,
        invite_codes=200 * factor,
        api_tokens_per_user=3,
        sessions=1_500 * factor,
        settings=40,
        libraries=8,
        media_items=4_000 * factor,
        watch_history=40_000 * factor,
    )


def fresh_database(admin: str, name: str, *, migrated: bool = False) -> str:
    """A new, empty database ``name`` (dropped first if it exists); its URL."""
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


def _describe(dataset: str, scale: str) -> str:
    if dataset == "text":
        return f"text-heavy, {TextScale.named(scale)}"
    return f"Odeion sample, {_odeion_scale(scale)}"


def seeded(admin: str, dataset: str, scale: str) -> tuple[str, int]:
    """The database of ``dataset`` at ``scale`` (seeded now, or reused); URL and server major."""
    name = f"bench_{dataset}_{scale}"
    mark = f"{_MARK}: {_describe(dataset, scale)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS odeion_bench_seeded (name text PRIMARY KEY, mark text)"
        )
        row = conn.execute(
            "SELECT mark FROM odeion_bench_seeded JOIN pg_database ON datname = name "
            "WHERE name = %s",
            [name],
        ).fetchone()
    url = make_conninfo(admin, dbname=name)
    if row is not None and row[0] == mark:
        print(f"{dataset}: reusing the seeded database {name}")
    else:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("DELETE FROM odeion_bench_seeded WHERE name = %s", [name])
        url = fresh_database(admin, name, migrated=True)
        started = time.perf_counter()
        with psycopg.connect(url) as conn:
            counts: dict[str, Any]
            if dataset == "text":
                counts = seed_text_heavy(conn, TextScale.named(scale))
            else:
                counts = seed(conn, _odeion_scale(scale))
            conn.commit()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO odeion_bench_seeded VALUES (%s, %s) "
                "ON CONFLICT (name) DO UPDATE SET mark = excluded.mark",
                [name, mark],
            )
        print(f"{dataset}: seeded {counts} in {time.perf_counter() - started:.1f} s")
    with psycopg.connect(url, autocommit=True) as conn:
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        major = conn.execute("SHOW server_version_num").fetchone()
    assert size is not None
    assert major is not None
    print(f"{dataset}: {_describe(dataset, scale)}; database size {mib(size[0])}")
    return url, int(major[0]) // 10000
