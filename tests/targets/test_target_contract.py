"""Every built-in target keeps the target contract; the contract check catches a broken one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from _archives import make_archive

from odeion_archive import Archiver, Registry, hookimpl
from odeion_archive._os import pid_space
from odeion_archive.errors import PluginError, TargetError, UsageError
from odeion_archive.targets import TargetSpec
from odeion_archive.targets._contract import TargetContractError
from odeion_archive.targets.dir import DirTarget
from odeion_archive.testing import check_target


def test_every_builtin_target_keeps_the_contract(target_spec: TargetSpec) -> None:
    target = Registry.default().target_kind(target_spec.kind).open(target_spec)
    check_target(target)


class _WritesInPlace(DirTarget):
    """A broken target: it writes straight to the object's name, so a failed write stays."""

    def write(self, name: str, chunks: Iterable[bytes]) -> None:
        with (self._dir / name).open("wb") as stream:
            for chunk in chunks:
                stream.write(chunk)


def test_the_contract_catches_a_target_that_lists_half_written_objects(tmp_path: Path) -> None:
    with pytest.raises(TargetContractError, match="interrupted write leaves no object"):
        check_target(_WritesInPlace("broken", tmp_path), large=300_000)


def test_a_dir_target_leaves_no_temporary_file_after_an_interrupted_write(tmp_path: Path) -> None:
    target = DirTarget("nas", tmp_path)

    def failing() -> Iterable[bytes]:
        yield b"x" * 1000
        raise RuntimeError("gone")

    with pytest.raises(RuntimeError):
        target.write("odeion-backup-a.zip", failing())
    assert list(tmp_path.iterdir()) == []


def test_a_missing_mount_point_is_an_error_never_a_new_directory(tmp_path: Path) -> None:
    spec = TargetSpec.directory("usb", tmp_path / "media" / "usb")
    target = Registry.default().target_kind("dir").open(spec)
    with pytest.raises(TargetError, match="does not exist; mount the disk"):
        target.list()
    with pytest.raises(TargetError, match="does not exist"):
        target.write("a.zip", [b"x"])
    assert not (tmp_path / "media").exists()


def test_two_plugins_with_one_target_kind_name_fail_loudly() -> None:
    class Another:
        @hookimpl
        def odeion_archive_targets(self) -> list[object]:
            return [Registry.default().target_kind("dir")]

    registry = Registry.default(entry_points=False)
    registry.register(Another(), name="another-dir")
    with pytest.raises(PluginError, match="two plugins provide the target kind 'dir'"):
        registry.target_kinds()


def test_a_plugin_that_returns_no_target_kind_is_refused() -> None:
    class Wrong:
        @hookimpl
        def odeion_archive_targets(self) -> list[object]:
            return ["not a kind"]

    registry = Registry.empty()
    registry.register(Wrong(), name="wrong")
    with pytest.raises(PluginError, match="lacks the TargetKind interface"):
        registry.target_kinds()


def test_target_kinds_are_listed_with_their_plugins() -> None:
    provided = {(p.name, p.kind, p.plugin) for p in Registry.default().provided()}
    assert ("dir", "target", "odeion_archive.targets.dir") in provided
    assert ("s3", "target", "odeion_archive.targets.s3") in provided


def test_an_unknown_kind_names_the_known_ones() -> None:
    with pytest.raises(UsageError, match=r"no storage target kind 'ftp'.*known: dir, s3"):
        Registry.default().target_kind("ftp")


def test_s3_without_obstore_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in [m for m in sys.modules if m == "obstore" or m.startswith("obstore.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "obstore", None)  # what an absent package imports as
    spec = TargetSpec.s3("offsite", bucket="b", endpoint="http://127.0.0.1:1")
    with pytest.raises(TargetError, match=r"pip install 'odeion-archive\[s3\]'"):
        Registry.default().target_kind("s3").open(spec)


def test_a_copy_killed_with_sigkill_leaves_no_object_and_the_next_copy_cleans_up(
    tmp_path: Path,
) -> None:
    data_dir, nas, ready = tmp_path / "data", tmp_path / "nas", tmp_path / "ready"
    nas.mkdir()
    path = make_archive(data_dir / "backups", payload=8 << 20)
    child = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("_killedcopy.py")),
            str(data_dir),
            str(nas),
            path.name,
            str(ready),
        ]
    )
    deadline = time.monotonic() + 60
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    child.send_signal(signal.SIGKILL)
    child.wait()
    leftovers = [p.name for p in nas.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".partial-")
    archiver = Archiver(
        data_dir, targets=[TargetSpec.directory("nas", nas)], database_url="postgresql:///unused"
    )
    assert archiver.list_target("nas") == []
    [result] = archiver.copy_to("nas")  # the next run copies it again
    assert result.ok
    assert sorted(p.name for p in nas.iterdir()) == [f".sha256-{path.name}", path.name]


def test_a_copy_leaves_other_hosts_temporary_files_alone_until_they_are_abandoned(
    tmp_path: Path,
) -> None:
    """Two hosts may share a name (containers often do): a process id named in another
    host's temporary file says nothing here, so only a long silence makes it a leftover."""
    data_dir, nas = tmp_path / "data", tmp_path / "nas"
    nas.mkdir()
    path = make_archive(data_dir / "backups", payload=1 << 20)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    # Same host name, another machine or PID namespace, a process id that is free here.
    namesake = nas / f".partial-{host}-0123456789ab-{dead.pid}-feedfacefeedface"
    abandoned = nas / ".partial-elsewhere-ba9876543210-123-0badc0de0badc0de"
    for temp in (namesake, abandoned):
        temp.write_bytes(b"half an archive")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(abandoned, (two_days_ago, two_days_ago))
    archiver = Archiver(
        data_dir, targets=[TargetSpec.directory("nas", nas)], database_url="postgresql:///unused"
    )
    [result] = archiver.copy_to("nas")
    assert result.ok
    assert sorted(p.name for p in nas.iterdir()) == sorted(
        [namesake.name, f".sha256-{path.name}", path.name]
    )


def _stale(path: Path, seconds: float = 2 * 24 * 3600) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_an_own_leftover_whose_process_id_was_taken_again_goes_after_a_day(
    tmp_path: Path,
) -> None:
    # Process 1 always runs: its id in an old file of this host's was reused since.
    nas = tmp_path / "nas"
    nas.mkdir()
    reused = nas / f".partial-{pid_space()}-1-feedfacefeedface"
    running = nas / f".partial-{pid_space()}-1-0123456789abcdef"
    reused.write_bytes(b"half an archive")
    running.write_bytes(b"being written")
    _stale(reused)
    DirTarget("nas", nas).write("archive", [b"data"])
    assert sorted(p.name for p in nas.iterdir()) == sorted(["archive", running.name])


@pytest.mark.parametrize("pid", ["9" * 30, "\u00b2", "\u0663", "-1", "0x10", ""])
def test_a_temporary_name_with_no_process_id_in_it_breaks_no_copy(tmp_path: Path, pid: str) -> None:
    # Anyone who may write to the share may put such a name there.
    nas = tmp_path / "nas"
    nas.mkdir()
    odd = nas / f".partial-{pid_space()}-{pid}-x"
    odd.write_bytes(b"")
    DirTarget("nas", nas).write("archive", [b"data"])
    assert (nas / "archive").read_bytes() == b"data"
    assert odd.exists()  # not known to be dead, and fresh: left alone


def test_a_share_whose_clock_lags_keeps_another_hosts_running_copy(tmp_path: Path) -> None:
    # The age of a temporary file is judged by the share's clock: its newest file's time.
    nas = tmp_path / "nas"
    nas.mkdir()
    running = nas / ".partial-elsewhere-ba9876543210-123-0badc0de0badc0de"
    running.write_bytes(b"being written")
    _stale(running, 3 * 24 * 3600)
    real_fstat = os.fstat

    def lagging(fd: int) -> os.stat_result:
        result = real_fstat(fd)
        fields = list(result)
        fields[8] = result.st_mtime - 3 * 24 * 3600 + 60  # st_mtime, as the share sets it
        return os.stat_result(fields)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "fstat", lagging)
        DirTarget("nas", nas).write("archive", [b"data"])
    assert running.exists()


def test_without_proc_a_process_id_space_is_the_process_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Nothing then tells this machine from a namesake: no other process may judge its ids.
    real_read_text, real_readlink = Path.read_text, Path.readlink

    def no_proc(real: Callable[..., Any]) -> Callable[..., Any]:
        def read(self: Path, *args: Any, **kwargs: Any) -> Any:
            if str(self).startswith("/proc/"):
                raise FileNotFoundError(str(self))
            return real(self, *args, **kwargs)

        return read

    monkeypatch.setattr(Path, "read_text", no_proc(real_read_text))
    monkeypatch.setattr(Path, "readlink", no_proc(real_readlink))
    spaces = {pid_space.__wrapped__() for _ in range(3)}
    assert len(spaces) == 3
    assert all(space.startswith(f"{socket.gethostname()}-") for space in spaces)


@pytest.mark.parametrize(
    "name",
    [
        "gone 416 Range Not Satisfiable",
        "x - Server returned non-2xx status code: 416 Range Not Satisfiable: y",
        (
            "Generic S3 error: Error performing GET x in 1ms - Server returned non-2xx "
            "status code: 416 Range Not Satisfiable"
        ),
    ],
)
def test_an_s3_error_about_a_name_that_quotes_a_range_error_stays_an_error(
    s3_target_spec: TargetSpec, name: str
) -> None:
    # obstore's message for a missing object holds the raw name: only S3's own 416, with
    # its percent-encoded URL, is a read past the end.
    target = Registry.default().target_kind("s3").open(s3_target_spec)
    target.write("small", [b"hello"])
    assert target.read_range("small", 10, 5) == b""
    with pytest.raises(TargetError, match="no object to read"):
        target.read_range(name, 0, 10)
