"""The tar.zst default parameters on a real database dump: no larger than zstd level 1."""

from __future__ import annotations

import io
import subprocess

import psycopg
import zstandard

from odeion_archive._postgres import find_tools, pick_tool, tool_invocation
from odeion_archive._schema import migrate
from odeion_archive.formats.tarzst import TarZstFormat
from odeion_archive.sample import SeedScale, seed


def _dump(conninfo: str) -> bytes:
    with psycopg.connect(conninfo) as conn:
        migrate(conn)
        seed(conn, SeedScale.demo())
        conn.commit()
        major = conn.execute("SHOW server_version_num").fetchone()
    assert major is not None
    pg_dump = pick_tool("pg_dump", int(major[0]) // 10000, find_tools("pg_dump"))
    info, env = tool_invocation(conninfo)
    return subprocess.run(
        [str(pg_dump.path), "-Fc", "-Z0", f"--dbname={info}"],
        env=env,
        capture_output=True,
        check=True,
    ).stdout


def _archive(fmt: TarZstFormat, dump: bytes) -> bytes:
    out = io.BytesIO()
    writer = fmt.open_writer(out)
    writer.add("full_db/database.dump", [dump], size=len(dump))
    writer.close()
    return out.getvalue()


def test_the_default_is_no_larger_than_level_1_and_the_same_on_any_number_of_threads(
    empty_db: str,
) -> None:
    dump = _dump(empty_db)
    assert len(dump) > 2 * 1024 * 1024
    default = _archive(TarZstFormat(threads=2), dump)
    level_1 = _archive(TarZstFormat(level=1, threads=2), dump)
    assert len(default) <= len(level_1)
    # Smaller than the dump compressed alone at level 1 (without the tar framing).
    assert len(default) < len(zstandard.ZstdCompressor(level=1).compress(dump))
    assert _archive(TarZstFormat(threads=1), dump) == default
    assert _archive(TarZstFormat(threads=4), dump) == default
