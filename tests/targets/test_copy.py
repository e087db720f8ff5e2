"""Copies to targets through the library: checked, retried, interrupted, cancelled, refused."""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import boto3
import pytest
from _archives import make_archive
from _s3 import ACCESS_KEY, SECRET_KEY, FailingProxy, S3Server, closed_port, s3_spec
from moto import settings as moto_settings

from odeion_archive import (
    Archiver,
    CancelToken,
    CheckRecord,
    ProgressEvent,
    Registry,
    RetentionRules,
)
from odeion_archive.errors import (
    ArchiveInvalidError,
    CancelledError,
    CorruptArchiveError,
    NotFoundError,
    TargetError,
    UsageError,
)
from odeion_archive.targets import RemoteObject, Target, TargetSpec
from odeion_archive.targets._remote import archives_on

SCRIPT = Path(sys.executable).with_name("odeion-archive")


def _archiver(tmp_path: Path, *specs: TargetSpec) -> Archiver:
    return Archiver(tmp_path / "data", targets=specs, database_url="postgresql:///unused")


def _open(spec: TargetSpec) -> Target:
    return Registry.default().target_kind(spec.kind).open(spec)


def _objects(spec: TargetSpec) -> dict[str, int]:
    return {o.name: o.size for o in _open(spec).list()}


def test_a_copy_is_read_back_and_counts_once_checked(
    tmp_path: Path, target_spec: TargetSpec
) -> None:
    archiver = _archiver(tmp_path, target_spec)
    path = make_archive(archiver.store.directory, payload=3 << 20)
    events: list[ProgressEvent] = []
    [result] = archiver.copy_to(target_spec.name, path.name, progress=events.append)
    assert result.ok and not result.skipped and result.attempts == 1
    size = path.stat().st_size
    for phase in ("upload", "check"):
        done = [e.done for e in events if e.phase == phase]
        assert done == sorted(done) and done[-1] == size, phase
        assert {(e.operation, e.total, e.unit) for e in events if e.phase == phase} == {
            ("copy", size, "bytes")
        }
    assert result.size == path.stat().st_size
    objects = _objects(target_spec)
    assert objects[path.name] == path.stat().st_size
    assert f".sha256-{path.name}" in objects
    [listed] = archiver.list_target(target_spec.name)
    assert (listed.name, listed.checked, listed.size) == (path.name, True, result.size)
    assert listed.manifest == archiver.inspect(path.name)
    # A second copy finds the checked copy and sends nothing.
    [again] = archiver.copy_to(target_spec.name, path.name)
    assert again.skipped and again.sha256 == result.sha256


def test_copy_without_an_archive_sends_each_one_the_target_lacks(
    tmp_path: Path, target_spec: TargetSpec
) -> None:
    archiver = _archiver(tmp_path, target_spec)
    first, second = (make_archive(archiver.store.directory) for _ in range(2))
    archiver.copy_to(target_spec.name, first.name)
    results = archiver.copy_to(target_spec.name)
    assert {(r.archive, r.skipped) for r in results} == {(first.name, True), (second.name, False)}
    assert {a.name for a in archiver.list_target(target_spec.name)} == {first.name, second.name}


class _Counting:
    """A target that counts what is read through it (the reads go to the real target)."""

    def __init__(self, target: Target) -> None:
        self._target = target
        self.ranged = 0
        self.streamed = 0

    @property
    def name(self) -> str:
        return self._target.name

    def describe(self) -> str:
        return self._target.describe()

    def list(self) -> Sequence[RemoteObject]:
        return self._target.list()

    def read_range(self, name: str, start: int, length: int) -> bytes:
        data = self._target.read_range(name, start, length)
        self.ranged += len(data)
        return data

    def read(self, name: str) -> Iterator[bytes]:
        for chunk in self._target.read(name):
            self.streamed += len(chunk)
            yield chunk

    def write(self, name: str, chunks: Iterable[bytes]) -> None:
        self._target.write(name, chunks)

    def delete(self, name: str) -> None:
        self._target.delete(name)


@pytest.mark.parametrize("fmt", ["zip", "tar.zst"])
def test_listing_reads_manifests_with_bounded_ranged_reads(
    tmp_path: Path, s3_target_spec: TargetSpec, fmt: str
) -> None:
    archiver = _archiver(tmp_path, s3_target_spec)
    path = make_archive(archiver.store.directory, fmt, payload=40 << 20)
    archiver.copy_to(s3_target_spec.name, path.name)
    counting = _Counting(_open(s3_target_spec))
    [listed] = archives_on(counting, Registry.default())
    assert listed.manifest == archiver.inspect(path.name)
    assert counting.streamed == 0
    assert 0 < counting.ranged <= 1 << 20, counting.ranged  # of an archive of 40 MiB


def test_the_server_stopped_during_a_multipart_upload_leaves_no_object(
    tmp_path: Path, running_s3: S3Server, bucket: str, credentials_file: Path
) -> None:
    spec = s3_spec(running_s3.endpoint, bucket, credentials_file, retries=0, timeout=3)
    archiver = _archiver(tmp_path, spec)
    path = make_archive(archiver.store.directory, payload=40 << 20)
    stopped = threading.Event()

    def stop_midway(event: ProgressEvent) -> None:
        if event.phase == "upload" and event.done >= 12 << 20 and not stopped.is_set():
            stopped.set()
            threading.Thread(target=running_s3.stop).start()

    with pytest.raises(TargetError, match="could not write"):
        archiver.copy_to(spec.name, path.name, progress=stop_midway)
    assert stopped.is_set()
    running_s3.start()
    assert _objects(spec) == {}  # neither the archive nor its record
    # The next run copies it again, whole.
    [result] = archiver.copy_to(spec.name)
    assert result.ok and not result.skipped
    assert _objects(spec)[path.name] == path.stat().st_size


def _part(number: int) -> Callable[[str, str], bool]:
    seen: list[str] = []

    def fail(method: str, path: str) -> bool:
        if method == "PUT" and f"partNumber={number}&" in path + "&" and not seen:
            seen.append(path)
            return True
        return False

    return fail


def test_a_failing_part_is_retried(
    tmp_path: Path,
    bucket: str,
    credentials_file: Path,
    failing_proxy: Callable[[Callable[[str, str], bool]], FailingProxy],
) -> None:
    proxy = failing_proxy(_part(2))
    spec = s3_spec(proxy.endpoint, bucket, credentials_file, retries=2)
    archiver = _archiver(tmp_path, spec)
    path = make_archive(archiver.store.directory, payload=16 << 20)
    [result] = archiver.copy_to(spec.name, path.name)
    assert proxy.failed == 1
    assert result.ok and result.attempts == 1  # the part was sent again, not the archive
    [listed] = archiver.list_target(spec.name)
    assert listed.checked and listed.size == path.stat().st_size


def test_a_failed_copy_is_tried_again_after_a_pause(
    tmp_path: Path,
    bucket: str,
    credentials_file: Path,
    failing_proxy: Callable[[Callable[[str, str], bool]], FailingProxy],
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy = failing_proxy(_part(1))
    spec = s3_spec(proxy.endpoint, bucket, credentials_file, retries=0)
    archiver = _archiver(tmp_path, spec)
    path = make_archive(archiver.store.directory, payload=6 << 20)
    with caplog.at_level(logging.WARNING, logger="odeion_archive"):
        [result] = archiver.copy_to(spec.name, path.name)
    assert proxy.failed == 1
    assert result.ok and result.attempts == 2
    assert "attempt 1 of 3" in caplog.text


def test_a_cancelled_copy_leaves_nothing_on_the_target(
    tmp_path: Path, target_spec: TargetSpec
) -> None:
    archiver = _archiver(tmp_path, target_spec)
    path = make_archive(archiver.store.directory, payload=20 << 20)
    cancel = CancelToken()

    def cancel_midway(event: ProgressEvent) -> None:
        if event.done >= 6 << 20:
            cancel.cancel()

    with pytest.raises(CancelledError):
        archiver.copy_to(target_spec.name, path.name, progress=cancel_midway, cancel=cancel)
    assert _objects(target_spec) == {}
    if target_spec.kind == "dir":
        assert list(Path(target_spec.options["path"]).iterdir()) == []


def test_a_copy_damaged_on_the_target_is_refused_as_it_arrives(
    tmp_path: Path, target_spec: TargetSpec
) -> None:
    archiver = _archiver(tmp_path, target_spec)
    path = make_archive(archiver.store.directory, payload=2 << 20)
    archiver.copy_to(target_spec.name, path.name)
    damaged = bytearray(path.read_bytes())
    damaged[len(damaged) // 2] ^= 0x01
    _open(target_spec).write(path.name, [bytes(damaged)])
    with (
        pytest.raises(CorruptArchiveError, match="damaged on the target"),
        archiver.fetch(target_spec.name, path.name),
    ):
        pass
    staging = [p for p in archiver.store.directory.iterdir() if p.name.startswith(".partial-")]
    assert staging == []


def _rot(path: Path) -> None:
    damaged = bytearray(path.read_bytes())
    damaged[len(damaged) // 2] ^= 0x01
    path.write_bytes(bytes(damaged))


def test_an_archive_found_damaged_is_not_copied_and_says_what_to_do(
    tmp_path: Path, dir_target_spec: TargetSpec
) -> None:
    """Before, the damaged archive was sent, reported "sha256 checked", and replaced the good copy."""
    archiver = _archiver(tmp_path, dir_target_spec)
    rotten, intact = (make_archive(archiver.store.directory) for _ in range(2))
    archiver.copy_to(dir_target_spec.name, rotten.name)
    good_copy = (Path(dir_target_spec.options["path"]) / rotten.name).read_bytes()
    _rot(rotten)
    assert not archiver.verify_all().ok

    with pytest.raises(CorruptArchiveError, match=rf"{rotten.name} is damaged: its verification"):
        archiver.copy_to(dir_target_spec.name, rotten.name)
    results = {r.archive: r for r in archiver.copy_to(dir_target_spec.name)}
    assert results[intact.name].ok and not results[intact.name].skipped
    refused = results[rotten.name]
    assert not refused.ok and not refused.skipped and refused.sha256 == ""
    assert refused.error is not None and "verify it again" in refused.error.lower()
    assert (Path(dir_target_spec.options["path"]) / rotten.name).read_bytes() == good_copy

    # The command line: the intact archive is copied, the damaged one refused (exit 1).
    nas = tmp_path / "nas2"
    nas.mkdir()
    (archiver.data_dir / "targets.toml").write_text(
        f'[targets.nas2]\nkind = "dir"\npath = "{nas}"\n'
    )
    env = {**os.environ, "ODEION_DATA_DIR": str(archiver.data_dir)}
    env.pop("ODEION_DATABASE_URL", None)
    done = subprocess.run(
        [str(SCRIPT), "copy", "--to", "nas2"],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=120,
    )
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith(f"copied {intact.name} to nas2") for line in lines)
    [line] = [line for line in lines if rotten.name in line]
    assert "is damaged" in line and f"odeion-archive verify {rotten.name}" in line
    assert "sha256 checked" not in line
    assert sorted(p.name for p in nas.iterdir() if not p.name.startswith(".")) == [intact.name]
    # A verification that passes again (the disk was repaired) lets it go.
    rotten.write_bytes(good_copy)
    assert archiver.verify(rotten.name).ok
    assert archiver.verify_all().ok
    [copied] = archiver.copy_to(dir_target_spec.name, rotten.name)
    assert copied.ok and copied.skipped  # the good copy on the target was never replaced


def test_a_fetched_archive_is_staged_and_removed_afterwards(
    tmp_path: Path, target_spec: TargetSpec
) -> None:
    archiver = _archiver(tmp_path, target_spec)
    path = make_archive(archiver.store.directory, "tar.zst", payload=2 << 20)
    archiver.copy_to(target_spec.name, path.name)
    with archiver.fetch(target_spec.name, path.name) as staged:
        assert staged.parent == archiver.store.directory
        assert staged.read_bytes() == path.read_bytes()
        assert archiver.verify(staged).ok
    assert not staged.exists()


def test_wrong_credentials_are_a_clear_error_without_the_secret(
    tmp_path: Path, s3_target_spec: TargetSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    archiver = _archiver(tmp_path, s3_target_spec)
    path = make_archive(archiver.store.directory)
    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # moto checks keys
    with pytest.raises(TargetError, match="refused the credentials") as caught:
        archiver.copy_to(s3_target_spec.name, path.name)
    assert SECRET_KEY not in str(caught.value) and ACCESS_KEY not in str(caught.value)
    [status] = archiver.targets()
    assert not status.reachable and "refused the credentials" in (status.error or "")


def test_a_missing_bucket_is_a_clear_error(
    tmp_path: Path, running_s3: S3Server, credentials_file: Path
) -> None:
    spec = s3_spec(running_s3.endpoint, "odeion-no-such-bucket", credentials_file)
    archiver = _archiver(tmp_path, spec)
    path = make_archive(archiver.store.directory)
    with pytest.raises(TargetError, match="'odeion-no-such-bucket'.*does not exist; create it"):
        archiver.copy_to(spec.name, path.name)


def test_the_state_of_each_target(
    tmp_path: Path, dir_target_spec: TargetSpec, s3_target_spec: TargetSpec, credentials_file: Path
) -> None:
    gone = s3_spec(
        f"http://127.0.0.1:{closed_port()}", "odeion-x", credentials_file, name="gone", timeout=2
    )
    archiver = _archiver(tmp_path, dir_target_spec, s3_target_spec, gone)
    paths = [make_archive(archiver.store.directory) for _ in range(2)]
    for path in paths:
        archiver.copy_to("nas", path.name)
    archiver.copy_to("offsite", paths[0].name)
    states = {s.name: s for s in archiver.targets()}
    assert (states["nas"].reachable, states["nas"].archives) == (True, 2)
    assert (states["offsite"].reachable, states["offsite"].archives) == (True, 1)
    assert states["offsite"].last_copy is not None
    assert states["offsite"].where.startswith("s3://")
    assert not states["gone"].reachable and "could not list" in (states["gone"].error or "")


def test_prune_keeps_the_newest_copies_on_a_target(tmp_path: Path, target_spec: TargetSpec) -> None:
    archiver = _archiver(tmp_path, target_spec)
    paths = [make_archive(archiver.store.directory) for _ in range(3)]
    for path in paths:
        archiver.copy_to(target_spec.name, path.name)
    assert archiver.prune_target(target_spec.name, 1, dry_run=True) == [
        paths[1].name,
        paths[0].name,
    ]
    assert len(archiver.list_target(target_spec.name)) == 3
    archiver.prune_target(target_spec.name, 1)
    assert set(_objects(target_spec)) == {paths[2].name, f".sha256-{paths[2].name}"}
    assert all(p.exists() for p in paths)  # the local store is another matter


def test_prune_on_a_target_applies_the_store_s_rules(
    tmp_path: Path, target_spec: TargetSpec
) -> None:
    archiver = _archiver(tmp_path, target_spec)
    paths = [make_archive(archiver.store.directory) for _ in range(4)]
    for path in paths:
        archiver.copy_to(target_spec.name, path.name)
    # The oldest passed a restore drill here: its copy stays whatever the rules say.
    archiver.store.record_check(
        paths[0].name, CheckRecord("drill", dt.datetime.now(dt.UTC), passed=True)
    )
    plan = {d.name: d for d in archiver.prune_target_plan(target_spec.name, RetentionRules(1))}
    assert "keep-last" in plan[paths[3].name].reasons
    assert plan[paths[0].name].keep and not plan[paths[1].name].keep
    assert plan[paths[0].name].reasons != ()
    assert archiver.prune_target(target_spec.name, rules=RetentionRules(keep_within="1d")) == []
    deleted = archiver.prune_target(target_spec.name, 1)
    assert sorted(deleted) == sorted([paths[1].name, paths[2].name])
    assert {a.name for a in archiver.list_target(target_spec.name)} == {
        paths[0].name,
        paths[3].name,
    }


def test_the_bucket_never_holds_an_unfinished_upload_after_a_cancel(
    tmp_path: Path, running_s3: S3Server, bucket: str, credentials_file: Path
) -> None:
    spec = s3_spec(running_s3.endpoint, bucket, credentials_file)
    archiver = _archiver(tmp_path, spec)
    path = make_archive(archiver.store.directory, payload=20 << 20)
    cancel = CancelToken()

    def cancel_midway(event: ProgressEvent) -> None:
        if event.done >= 12 << 20:
            cancel.cancel()

    with pytest.raises(CancelledError):
        archiver.copy_to(spec.name, path.name, progress=cancel_midway, cancel=cancel)
    client = boto3.client(
        "s3",
        endpoint_url=running_s3.endpoint,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_an_archive_put_there_by_other_means_is_listed_unchecked_and_verified_when_fetched(
    tmp_path: Path, target_spec: TargetSpec
) -> None:
    archiver = _archiver(tmp_path, target_spec)
    path = make_archive(archiver.store.directory, payload=1 << 20)
    target = _open(target_spec)
    data = bytearray(path.read_bytes())
    target.write(path.name, [bytes(data)])
    [listed] = archiver.list_target(target_spec.name)
    assert not listed.checked
    with archiver.fetch(target_spec.name, path.name) as staged:
        assert archiver.verify(staged).ok
    data[len(data) // 2] ^= 0x01
    target.write(path.name, [bytes(data)])  # without a record, the archive's own check finds it
    with archiver.fetch(target_spec.name, path.name) as staged:
        assert not archiver.verify(staged).ok


def test_a_damaged_record_only_loses_its_check(
    tmp_path: Path, dir_target_spec: TargetSpec, caplog: pytest.LogCaptureFixture
) -> None:
    archiver = _archiver(tmp_path, dir_target_spec)
    path = make_archive(archiver.store.directory)
    archiver.copy_to("nas", path.name)
    _open(dir_target_spec).write(f".sha256-{path.name}", [b'{"size": "many"'])
    with caplog.at_level(logging.WARNING), archiver.fetch("nas", path.name) as staged:
        assert archiver.verify(staged).ok
    assert "ignoring the damaged record" in caplog.text
    [again] = archiver.copy_to("nas", path.name)  # the copy is sent again, and recorded
    assert not again.skipped
    assert archiver.list_target("nas")[0].checked


def test_objects_that_are_no_archives_are_left_out_of_a_listing(
    tmp_path: Path, target_spec: TargetSpec, caplog: pytest.LogCaptureFixture
) -> None:
    archiver = _archiver(tmp_path, target_spec)
    path = make_archive(archiver.store.directory)
    archiver.copy_to(target_spec.name, path.name)
    target = _open(target_spec)
    target.write("notes.txt", [b"not an archive at all"])
    target.write("odeion-backup-truncated.zip", [path.read_bytes()[:10_000]])
    with caplog.at_level(logging.WARNING):
        listed = archiver.list_target(target_spec.name)
    assert [a.name for a in listed] == [path.name]
    assert "skipping 'notes.txt'" in caplog.text
    assert "skipping 'odeion-backup-truncated.zip'" in caplog.text
    with (
        pytest.raises(NotFoundError, match="no archive named 'gone.zip' on target"),
        archiver.fetch(target_spec.name, "gone.zip"),
    ):
        pass


def _put_foreign(spec: TargetSpec, name: str, data: bytes) -> None:
    """An object someone else put on the target, beside this library."""
    if spec.kind == "dir":
        (Path(str(spec.options["path"])) / name).write_bytes(data)
        return
    boto3.client(
        "s3",
        endpoint_url=str(spec.options["endpoint"]),
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    ).put_object(Bucket=str(spec.options["bucket"]), Key=f"server-1/{name}", Body=data)


def test_objects_named_as_no_archive_is_named_are_left_out_of_everything_a_target_does(
    tmp_path: Path, target_spec: TargetSpec, caplog: pytest.LogCaptureFixture
) -> None:
    # One such object made list, verify, prune and run-due's retention on the target fail.
    archiver = _archiver(tmp_path, target_spec)
    path = make_archive(archiver.store.directory)
    archiver.copy_to(target_spec.name, path.name)
    odd = ["evil\u2028WARNING forged log line", "\u200bzero-width"]
    if target_spec.kind == "dir":
        # obstore cannot list a bucket that holds a key with an ASCII control character.
        odd += ["\x1b[31mred", "tab\there", "evil\nWARNING forged log line"]
    else:
        odd.append("x" * 300)  # longer than any file name
    for name in odd:
        _put_foreign(target_spec, name, path.read_bytes())
    with caplog.at_level(logging.WARNING):
        listed = archiver.list_target(target_spec.name)
        reports = archiver.verify_all().targets[target_spec.name]
        [status] = archiver.targets()
    assert [a.name for a in listed] == [path.name]
    assert list(reports) == [path.name] and reports[path.name].ok
    assert status.archives == 1
    # A name is quoted, never a line of its own.
    assert "\u2028WARNING forged" not in caplog.text and "\nWARNING forged" not in caplog.text
    assert "skipping 'evil\\u2028WARNING forged log line'" in caplog.text
    assert archiver.prune_target(target_spec.name, 1) == []
    assert [d.name for d in archiver.prune_target_plan(target_spec.name, RetentionRules(1))] == [
        path.name
    ]


def test_a_key_the_s3_client_cannot_list_is_named_with_what_to_do(
    tmp_path: Path, s3_target_spec: TargetSpec
) -> None:
    # obstore refuses the whole listing; the error was a truncated debug dump, raw ESC
    # included, and counted as transient (so copies retried it in vain).
    archiver = _archiver(tmp_path, s3_target_spec)
    _put_foreign(s3_target_spec, "\x1b[31mred", b"x")
    with pytest.raises(TargetError) as caught:
        archiver.list_target(s3_target_spec.name)
    message = str(caught.value)
    assert "holds an object named 'server-1/\\x1b[31mred'" in message
    assert "rename or remove that object" in message
    assert "\x1b" not in message
    assert not caught.value.transient


def test_only_an_archive_is_copied_to_a_target(tmp_path: Path, dir_target_spec: TargetSpec) -> None:
    # Any file given by path was sent (copy /etc/passwd --to nas), and a file named like a
    # record (.sha256-NAME) would have replaced the record of NAME's checked copy.
    archiver = _archiver(tmp_path, dir_target_spec)
    path = make_archive(archiver.store.directory)
    archiver.copy_to("nas", path.name)
    secret = tmp_path / "passwords.txt"
    secret.write_text("root:hunter2\n")
    with pytest.raises(ArchiveInvalidError, match="not an archive in any known format"):
        archiver.copy_to("nas", secret)
    record = tmp_path / f".sha256-{path.name}"
    record.write_bytes(path.read_bytes())
    with pytest.raises(UsageError, match="starts with '.'"):
        archiver.copy_to("nas", record)
    assert set(_objects(dir_target_spec)) == {path.name, f".sha256-{path.name}"}
    assert archiver.list_target("nas")[0].checked
    # An archive from outside the store is still copied.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    other = make_archive(elsewhere)
    [result] = archiver.copy_to("nas", other)
    assert result.ok and other.name in _objects(dir_target_spec)


@pytest.mark.parametrize("fmt", ["zip", "tar.zst"])
def test_an_archive_replaced_by_a_shorter_object_after_the_listing_is_skipped_alone(
    tmp_path: Path, target_spec: TargetSpec, fmt: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The listing's size is then past the object's end: S3 answers such ranged reads with 416.
    archiver = _archiver(tmp_path, target_spec)
    kept = make_archive(archiver.store.directory, fmt)
    replaced = make_archive(archiver.store.directory, fmt)
    for path in (kept, replaced):
        archiver.copy_to(target_spec.name, path.name)
    target = _open(target_spec)
    real_list = target.list

    def list_then_replace() -> Iterator[RemoteObject]:
        objects = list(real_list())
        _put_foreign(target_spec, replaced.name, replaced.read_bytes()[:1000])
        return iter(objects)

    target.list = list_then_replace  # type: ignore[method-assign,assignment]
    with caplog.at_level(logging.WARNING):
        listed = archives_on(target, Registry.default())
    assert [a.name for a in listed] == [kept.name]
    assert f"skipping {replaced.name!r}" in caplog.text
