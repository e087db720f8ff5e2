"""Property 7: verify checks every member and detects any flipped bit and any truncation."""

from __future__ import annotations

import io
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from odeion_archive._archive import ArchiveFile, verify_archive
from odeion_archive._registry import Registry
from odeion_archive.errors import CancelledError
from odeion_archive.events import CancelToken, ProgressEvent
from odeion_archive.formats.tarzst import TarZstFormat
from odeion_archive.formats.zip import ZipFormat
from odeion_archive.interfaces import ArchiveFormat
from odeion_archive.testing import format_registry, write_archive

MEMBERS = {
    "users_auth": {"users.jsonl": b'{"id":1,"name":"ana"}\n' * 8, "empty.jsonl": b""},
    "settings": {"settings.json": b'{"theme":"dark","lang":"fr"}\n'},
}
REGISTRY = format_registry(ZipFormat(), TarZstFormat())


def _small(fmt: ArchiveFormat) -> bytes:
    stream = io.BytesIO()
    write_archive(fmt, stream, MEMBERS)
    return stream.getvalue()


SMALL = {fmt.name: _small(fmt) for fmt in (ZipFormat(), TarZstFormat())}


def _report_ok(path: Path, data: bytes) -> bool:
    path.write_bytes(data)
    return verify_archive(path, REGISTRY).ok


def test_small_archives_are_small_and_intact(tmp_path: Path) -> None:
    for name, data in SMALL.items():
        assert len(data) < 4096
        assert _report_ok(tmp_path / f"intact-{name.replace('.', '-')}", data)


@pytest.mark.parametrize("name", sorted(SMALL))
@settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_flipped_bit_is_detected(name: str, data: st.DataObject, tmp_path: Path) -> None:
    original = SMALL[name]
    position = data.draw(st.integers(0, len(original) - 1), label="byte")
    bit = data.draw(st.integers(0, 7), label="bit")
    damaged = bytearray(original)
    damaged[position] ^= 1 << bit
    assert not _report_ok(tmp_path / "flipped", bytes(damaged))


@pytest.mark.parametrize("name", sorted(SMALL))
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_truncation_is_detected(name: str, data: st.DataObject, tmp_path: Path) -> None:
    original = SMALL[name]
    length = data.draw(st.integers(0, len(original) - 1), label="length")
    assert not _report_ok(tmp_path / "truncated", original[:length])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMALL))
def test_a_flip_in_every_byte_and_every_trailer_cut_is_detected(name: str, tmp_path: Path) -> None:
    original = SMALL[name]
    path = tmp_path / "damaged"
    missed = [
        p
        for p in range(len(original))
        if _report_ok(
            path, original[:p] + bytes([original[p] ^ (1 << (p % 8))]) + original[p + 1 :]
        )
    ]
    assert missed == []
    # Cuts in the trailer, where the structure lives; elsewhere hypothesis samples them.
    tail = range(max(0, len(original) - 256), len(original))
    assert [n for n in tail if _report_ok(path, original[:n])] == []


def test_appended_bytes_are_detected(tmp_path: Path) -> None:
    for data in SMALL.values():
        assert not _report_ok(tmp_path / "longer", data + b"\0")


# -- what verify reports ---------------------------------------------------------------


def test_verify_reports_each_member_against_the_manifest(
    fmt: ArchiveFormat, registry: Registry, tmp_path: Path
) -> None:
    stream = io.BytesIO()
    write_archive(fmt, stream, MEMBERS)
    path = tmp_path / f"a{fmt.suffix}"
    path.write_bytes(stream.getvalue())
    with ArchiveFile.open(path, registry) as archive:
        # Pretend the manifest promised other bytes for two members.
        members = {m.path: m for m in archive.manifest.members}
        lied = attrs.evolve(
            archive.manifest,
            components=tuple(
                attrs.evolve(
                    c,
                    members=tuple(
                        attrs.evolve(m, sha256="0" * 64)
                        if m.path != "users_auth/empty.jsonl"
                        else m
                        for m in c.members
                    ),
                )
                for c in archive.manifest.components
            ),
        )
        archive.manifest = lied
        report = archive.verify()
    assert not report.ok
    assert {p.member for p in report.problems} == set(members) - {"users_auth/empty.jsonl"}
    assert all("sha256" in p.message for p in report.problems)


def test_verify_reports_progress_and_obeys_cancel(
    fmt: ArchiveFormat, registry: Registry, tmp_path: Path
) -> None:
    stream = io.BytesIO()
    write_archive(fmt, stream, MEMBERS)
    path = tmp_path / f"a{fmt.suffix}"
    path.write_bytes(stream.getvalue())
    events: list[ProgressEvent] = []
    with ArchiveFile.open(path, registry) as archive:
        assert archive.verify(progress=events.append).ok
        token = CancelToken()
        token.cancel()
        with pytest.raises(CancelledError):
            archive.verify(cancel=token)
    assert {e.operation for e in events} == {"verify"}
    assert events[-1].phase == "done"
    total = sum(m.size for m in archive.manifest.members)
    assert events[-1].total is not None
    assert events[-1].done == events[-1].total > total  # the manifest members count too
    assert [e.done for e in events] == sorted(e.done for e in events)
    assert "users_auth" in {e.component for e in events}
