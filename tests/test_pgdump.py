"""Header and TOC parsing of real custom-format dumps (pg_dump 15 and 18), and its refusals."""

from __future__ import annotations

import io
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest

from odeion_archive.components.full_db import _dumpfile as _pgdump
from odeion_archive.components.full_db import _tocreview
from odeion_archive.errors import ArchiveInvalidError, CorruptArchiveError, UnsafeArchiveError

if TYPE_CHECKING:
    from conftest import PgServer


def pg_dump(bin_dir: Path, conninfo: str) -> bytes:
    completed = subprocess.run(
        [str(bin_dir / "pg_dump"), "--format=custom", "--compress=0", f"--dbname={conninfo}"],
        capture_output=True,
        check=True,
    )
    return completed.stdout


class CountingStream(io.BytesIO):
    """A stream that records how far it was read."""

    furthest = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.furthest = max(self.furthest, self.tell())
        return data


def _add_extras(conninfo: str) -> None:
    with psycopg.connect(conninfo) as conn:
        conn.execute(
            "CREATE TABLE plugin_notes (id bigserial PRIMARY KEY, note text NOT NULL);"
            "CREATE INDEX plugin_notes_note ON plugin_notes (note);"
            "INSERT INTO plugin_notes (note) SELECT 'n' || g FROM generate_series(1, 5000) g"
        )


def test_header_of_a_real_dump(pg_server: PgServer, odeion_db: str) -> None:
    _add_extras(odeion_db)
    data = pg_dump(pg_server.bin_dir, odeion_db)
    stream = CountingStream(data)
    header = _pgdump.read_header(stream)
    expected = (1, 14, 0) if pg_server.major == 15 else (1, 16, 0)
    assert header.archive_version == expected
    assert header.int_size == 4
    assert header.offset_size == 8
    assert header.compression == "none"
    assert header.created is not None
    assert header.database_name == psycopg.conninfo.conninfo_to_dict(odeion_db)["dbname"]
    assert header.server_version.startswith(str(pg_server.major))
    assert header.pg_dump_version.startswith(str(pg_server.major))
    # Only the TOC (plus one read-ahead chunk) was read, never the data.
    assert header.header_bytes < len(data)
    assert stream.furthest <= header.header_bytes + 64 * 1024
    descs = {(entry.desc, entry.tag) for entry in header.entries}
    for table in ("users", "media_items", "plugin_notes"):
        assert ("TABLE", table) in descs
        assert ("TABLE DATA", table) in descs
    assert ("INDEX", "plugin_notes_note") in descs
    assert ("SEQUENCE SET", "plugin_notes_id_seq") in descs
    assert any(e.desc == "CONSTRAINT" and e.tag.startswith("users ") for e in header.entries)
    data_entry = next(e for e in header.entries if e.desc == "TABLE DATA" and e.tag == "users")
    assert data_entry.copy_stmt.startswith("COPY public.users (")
    assert data_entry.namespace == "public"
    assert data_entry.section == "DATA"
    assert data_entry.had_dumper
    users = next(e for e in header.entries if e.desc == "TABLE" and e.tag == "users")
    assert users.tableam == "heap"
    assert users.relkind == ("r" if pg_server.major >= 17 else "")
    assert users.dump_id in data_entry.dependencies
    assert _tocreview.unsafe_entries(header) == []


def test_pg_dump_18_of_a_pg15_server(pg15: PgServer, pg18: PgServer) -> None:
    with psycopg.connect(pg15.conninfo, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS dump_1815")
        conn.execute("CREATE DATABASE dump_1815")
    try:
        conninfo = pg15.database_conninfo("dump_1815")
        with psycopg.connect(conninfo) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
        header = _pgdump.read_header(io.BytesIO(pg_dump(pg18.bin_dir, conninfo)))
        assert header.archive_version == (1, 16, 0)
        assert header.server_version.startswith("15.")
        assert header.pg_dump_version.startswith("18.")
        assert ("TABLE DATA", "t") in {(e.desc, e.tag) for e in header.entries}
    finally:
        with psycopg.connect(pg15.conninfo, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS dump_1815 WITH (FORCE)")


@pytest.fixture(scope="module")
def small_dump(pg18: PgServer) -> bytes:
    return pg_dump(pg18.bin_dir, pg18.conninfo)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"PGDM",
        b"hello world, not a dump",
        b"PGDMP\x01\x10\x00\x04\x08\x03" + b"\0" * 64,
        b"PGDMP\x02\x00\x00\x04\x08\x01",
        b"PGDMP\x01\x10\x00\x05\x08\x01",
    ],
)
def test_garbage_is_refused(data: bytes) -> None:
    with pytest.raises(ArchiveInvalidError) as info:
        _pgdump.read_header(io.BytesIO(data))
    assert "use another" in str(info.value) or "upgrade" in str(info.value)


def test_every_truncation_is_refused(small_dump: bytes) -> None:
    header = _pgdump.read_header(io.BytesIO(small_dump))
    for cut in range(0, header.header_bytes, max(1, header.header_bytes // 400)):
        with pytest.raises(CorruptArchiveError, match=r"truncated|does not start"):
            _pgdump.read_header(io.BytesIO(small_dump[:cut]))


def test_absurd_lengths_are_refused(small_dump: bytes) -> None:
    # The database name's length field follows the fixed part of the header:
    # magic+version (8) + sizes/format (3) + compression byte (1) + 7 ints (35).
    offset = 8 + 3 + 1 + 7 * 5
    patched = bytearray(small_dump)
    patched[offset : offset + 5] = b"\x00" + (2**31 - 1).to_bytes(4, "little")
    with pytest.raises(UnsafeArchiveError, match="limit"):
        _pgdump.read_header(io.BytesIO(bytes(patched)))
    with pytest.raises(UnsafeArchiveError, match="exceed"):
        _pgdump.read_header(io.BytesIO(small_dump), max_toc_bytes=200)
    with pytest.raises(UnsafeArchiveError, match="entries"):
        _pgdump.read_header(io.BytesIO(small_dump), max_entries=2)


def _pg_restore_list(bin_dir: Path, data: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(bin_dir / "pg_restore"), "--list"], input=data, capture_output=True, check=False
    )


def _with_version(data: bytes, version: tuple[int, int, int]) -> bytes:
    return data[:5] + bytes(version) + data[8:]


def test_archive_version_table_matches_real_pg_restore(pg15: PgServer, pg18: PgServer) -> None:
    dump15 = pg_dump(pg15.bin_dir, pg15.conninfo)
    dump18 = pg_dump(pg18.bin_dir, pg18.conninfo)
    assert _pgdump.read_header(io.BytesIO(dump15)).archive_version == (1, 14, 0)
    assert _pgdump.read_header(io.BytesIO(dump18)).archive_version == (1, 16, 0)
    # pg_restore 15 refuses pg_dump 18's dumps, and any 1.15 header.
    refused = _pg_restore_list(pg15.bin_dir, dump18)
    assert refused.returncode != 0
    assert b"unsupported version (1.16) in file header" in refused.stderr
    assert _pg_restore_list(pg15.bin_dir, _with_version(dump15, (1, 15, 0))).returncode != 0
    assert _pg_restore_list(pg15.bin_dir, dump15).returncode == 0
    # pg_restore 18 reads both, and refuses 1.17.
    assert _pg_restore_list(pg18.bin_dir, dump15).returncode == 0
    assert _pg_restore_list(pg18.bin_dir, dump18).returncode == 0
    refused = _pg_restore_list(pg18.bin_dir, _with_version(dump18, (1, 17, 0)))
    assert b"unsupported version (1.17)" in refused.stderr
    assert _pgdump.max_archive_version(15) == (1, 14, 0) < (1, 16, 0)
    assert _pgdump.max_archive_version(18) == (1, 16, 0)
    assert _pgdump.max_archive_version(12) == (1, 14, 0)
    assert _pgdump.max_archive_version(16) == (1, 15, 0)
    assert _pgdump.max_archive_version(17) == (1, 16, 0)
    assert _pgdump.max_archive_version(25) >= (1, 16, 0)


def test_unsafe_entries_of_a_dangerous_dump(pg_server: PgServer, empty_db: str) -> None:
    with psycopg.connect(empty_db) as conn:
        conn.execute(
            "CREATE TABLE t (id int PRIMARY KEY);"
            "CREATE FUNCTION stop_ddl() RETURNS event_trigger LANGUAGE plpgsql "
            "AS $$BEGIN RAISE NOTICE 'ddl'; END$$;"
            "CREATE EVENT TRIGGER watch_ddl ON ddl_command_start EXECUTE FUNCTION stop_ddl();"
            "CREATE FOREIGN DATA WRAPPER odd_fdw;"
            "CREATE SERVER odd_server FOREIGN DATA WRAPPER odd_fdw;"
            "CREATE USER MAPPING FOR CURRENT_USER SERVER odd_server;"
            "CREATE FUNCTION odd_handler() RETURNS language_handler "
            "AS 'plpgsql', 'plpgsql_call_handler' LANGUAGE c;"
            "CREATE LANGUAGE oddlang HANDLER odd_handler;"
            "CREATE FUNCTION exfil() RETURNS void LANGUAGE plpgsql "
            "AS $$BEGIN COPY t TO PROGRAM 'cat'; END$$;"
        )
    header = _pgdump.read_header(io.BytesIO(pg_dump(pg_server.bin_dir, empty_db)))
    found = _tocreview.unsafe_entries(header)
    reasons = "\n".join(str(entry) for entry in found)
    assert "event trigger" in reasons
    assert "foreign data wrapper" in reasons
    assert "foreign server" in reasons
    assert "user mapping" in reasons
    assert "procedural language other than plpgsql" in reasons
    assert "odd_handler(): a function in the language c" in reasons
    # Inside a plpgsql body, read by PostgreSQL's own plpgsql parser: always refused.
    assert any(
        e.always and "exfil()" in e.name and "COPY to or from a program" in e.reason for e in found
    )
    assert "TABLE public.t" not in reasons


def test_unsafe_entries_in_linear_time() -> None:
    """A 100 KiB TOC definition of repeated COPY words is judged at once, not quadratically."""
    entry = _pgdump.TocEntry(
        dump_id=1,
        had_dumper=False,
        table_oid=0,
        oid=0,
        tag="x",
        desc="COMMENT",
        section="PRE_DATA",
        defn="COPY " * 20_000 + "x;",
        drop_stmt="",
        copy_stmt="",
        namespace="",
        tablespace="",
        tableam="",
        relkind="",
        owner="",
        dependencies=(),
        data_state="no_data",
        data_offset=0,
    )
    header = _pgdump.DumpHeader(
        archive_version=(1, 16, 0),
        int_size=4,
        offset_size=8,
        compression="none",
        created=None,
        database_name="d",
        server_version="18",
        pg_dump_version="18",
        entries=(entry,) * 20,
        header_bytes=0,
    )
    started = time.monotonic()
    found = _tocreview.unsafe_entries(header)
    assert len(found) == 20
    assert all(e.always and "parser does not accept" in e.reason for e in found)
    assert time.monotonic() - started < 5
