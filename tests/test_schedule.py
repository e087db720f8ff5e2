"""The schedule: the policy from schedule.toml, what is due from the store's records, run_due."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from _stores import at, move_entry, put_archive
from odeion_archive import (
    Archiver,
    CancelToken,
    CheckRecord,
    DueTask,
    Duration,
    RetentionRules,
    SchedulePolicy,
)
from odeion_archive.errors import CancelledError, UsageError
from odeion_archive.targets import TargetSpec

SCRIPT = Path(sys.executable).with_name("odeion-archive")

SCHEDULE = """\
backup_every = "1d"
verify_every = "7d"
drill_every = "1m"
components = ["users_auth", "settings"]
format = "zip"

[retention]
keep_daily = 7
keep_weekly = 4
keep_within = "30d"
"""


@pytest.fixture
def offline(tmp_path: Path) -> Archiver:
    """An archiver whose operations here never reach the database."""
    return Archiver(tmp_path / "data", database_url="postgresql://nobody@invalid.invalid/none")


# -- the policy ----------------------------------------------------------------------------


def test_the_policy_reads_from_the_data_directorys_schedule_toml(tmp_path: Path) -> None:
    (tmp_path / "schedule.toml").write_text(SCHEDULE)
    policy = SchedulePolicy.from_data_dir(tmp_path)
    assert policy == SchedulePolicy(
        backup_every="24h",
        verify_every=Duration.parse("1w"),
        drill_every="1m",
        components=["users_auth", "settings"],
        format="zip",
        retention=RetentionRules(keep_daily=7, keep_weekly=4, keep_within="30d"),
    )
    assert policy.drill_archive == "newest_full_db"
    assert SchedulePolicy.from_toml("") == SchedulePolicy()  # an empty schedule: nothing is due


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('backup_every = "daily"', "backup_every: 'daily' is not a duration"),
        ("backup_every = 24", 'backup_every: expected a duration such as "7d"'),
        ('backup_evry = "1d"', "extra fields found (backup_evry)"),
        ("[retention]\nkeep_dayly = 7", "retention: extra fields found (keep_dayly)"),
        ("[retention]\nkeep_daily = -1", "keep_daily must be a whole number"),
        ('[retention]\nkeep_daily = "7"', "retention.keep_daily: expected an integer"),
        ('drill_archive = "all"', "choose one of newest_full_db, newest"),
        ('components = "full_db"', "components: expected an array"),
        ("components = []", "components must be a list of one or more"),
        ('backup_every = "0d"', "must be longer than nothing"),
        ("backup_every = ", "is not valid TOML"),
    ],
)
def test_a_bad_schedule_names_the_file_and_the_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(text)
    with pytest.raises(UsageError) as raised:
        SchedulePolicy.load(path)
    assert message in str(raised.value)
    assert str(path) in str(raised.value)


def test_a_missing_or_foreign_schedule_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no schedule in .*schedule.toml; write one"):
        SchedulePolicy.from_data_dir(tmp_path)
    (tmp_path / "schedule.toml").write_bytes(b"\xff\xfe")
    with pytest.raises(UsageError, match="not UTF-8 text"):
        SchedulePolicy.from_data_dir(tmp_path)
    (tmp_path / "schedule.toml").write_bytes(b"#" * 70_000)
    with pytest.raises(UsageError, match="it is not a schedule"):
        SchedulePolicy.from_data_dir(tmp_path)


# -- what is due ---------------------------------------------------------------------------


def test_a_backup_is_due_from_the_last_backup_made_here(offline: Archiver) -> None:
    policy = SchedulePolicy(backup_every="1d", components=["settings"])
    now = at("2026-11-30T12:00")
    due = offline.due(policy, now=now)
    assert due.tasks == (DueTask("backup", "no backup of settings made here yet"),)
    made = put_archive(offline, at("2026-11-29T10:00"))
    # An archive imported since, or one without the policy's components, is not that backup.
    put_archive(offline, at("2026-11-30T11:00"), how="imported")
    put_archive(offline, at("2026-11-30T11:30"), ("users_auth",))
    due = offline.due(policy, now=now)
    assert due.tasks == (DueTask("backup", "last backup 26 h ago, every 1d"),)
    assert due.at == now and not due.prunes
    move_entry(offline, made, at("2026-11-30T01:00"))
    due = offline.due(policy, now=now)
    assert not due
    assert due.notes == ("backup: last 11 h ago, next in 13 h",)
    # The file's times play no part: only the store's record does.
    os.utime(offline.store.path_of(made), (0, 0))
    assert offline.due(policy, now=now) == due


def test_verification_is_due_for_archives_not_verified_for_the_interval(
    offline: Archiver,
) -> None:
    policy = SchedulePolicy(verify_every="7d")
    now = at("2026-11-30T12:00")
    assert offline.due(policy, now=now).notes == ("verification: no archives yet",)
    old = put_archive(offline, at("2026-11-20T12:00"))
    put_archive(offline, at("2026-11-29T12:00"))
    assert offline.due(policy, now=now).tasks == (
        DueTask(
            "verification",
            f"1 of 2 archives not verified for 7d or more (the longest: {old}, 10 d)",
        ),
    )
    offline.store.record_check(old, CheckRecord("verification", at("2026-11-28T12:00"), True))
    due = offline.due(policy, now=now)
    assert not due and due.notes == ("verification: next in 5 d",)  # the one verified 2 d ago
    # A verification that found damage counts as a verification: the failure was reported.
    offline.store.record_check(old, CheckRecord("verification", at("2026-11-22T12:00"), False))
    assert offline.due(policy, now=now).tasks[0].kind == "verification"


def test_a_drill_is_due_on_the_newest_full_db_archive(offline: Archiver) -> None:
    policy = SchedulePolicy(drill_every="1m")
    now = at("2026-11-30T12:00")
    put_archive(offline, at("2026-11-01T12:00"))
    assert offline.due(policy, now=now).notes == ("drill: no archive holds full_db yet",)
    full = put_archive(offline, at("2026-11-02T12:00"), ("settings", "full_db"))
    newest = put_archive(offline, at("2026-11-03T12:00"), ("settings",))
    assert offline.due(policy, now=now).tasks == (DueTask("drill", "no restore drill yet", full),)
    offline.store.record_check(full, CheckRecord("drill", at("2026-11-05T00:00"), passed=True))
    assert offline.due(policy, now=now).notes == ("drill: last 25 d ago, next in 4 d",)
    later = at("2026-12-05T00:00")
    assert offline.due(policy, now=later).tasks == (
        DueTask("drill", "last drill 30 d ago, every 1m", full),
    )
    newest_policy = SchedulePolicy(drill_every="1m", drill_archive="newest")
    assert offline.due(newest_policy, now=later).tasks[0].archive == newest


def test_due_lists_every_task_in_order_and_needs_an_aware_now(offline: Archiver) -> None:
    policy = SchedulePolicy(
        backup_every="1d", verify_every="1d", drill_every="1d", retention=RetentionRules(1)
    )
    put_archive(offline, at("2026-11-01T12:00"), ("settings", "full_db"))
    due = offline.due(policy, now=at("2026-11-30T12:00"))
    assert [t.kind for t in due.tasks] == ["backup", "verification", "drill"]
    assert due.prunes
    with pytest.raises(UsageError, match="time zone"):
        offline.due(policy, now=dt.datetime(2026, 11, 30))  # noqa: DTZ001 - the point
    assert offline.due(SchedulePolicy()).tasks == ()


# -- running what is due (real PostgreSQL) -------------------------------------------------


def test_run_due_backs_up_then_applies_retention(odeion_db: str, tmp_path: Path) -> None:
    archiver = Archiver(tmp_path / "data", database_url=odeion_db)
    old = [put_archive(archiver, at(f"2026-0{m}-15T12:00")) for m in range(1, 5)]
    policy = SchedulePolicy(
        backup_every="1d",
        components=["settings", "users_auth"],
        format="zip",
        retention=RetentionRules(keep_last=2),
    )
    report = archiver.run_due(policy)
    assert report.ok
    [outcome] = report.outcomes
    assert outcome.task.kind == "backup" and outcome.ok
    new = archiver.list()[0]
    assert outcome.archive == new.name and set(new.components) == {"users_auth", "settings"}
    assert new.format == "zip" and new.entered_how == "created"
    assert report.pruned == (old[2], old[1], old[0])
    assert [i.name for i in archiver.list()] == [new.name, old[3]]
    # Nothing is due any more: the next run does nothing.
    again = archiver.run_due(policy)
    assert again.outcomes == () and again.pruned == () and again.ok


def test_run_due_with_a_failing_backup_reports_it_and_prunes_nothing(
    odeion_db: str, tmp_path: Path
) -> None:
    archiver = Archiver(tmp_path / "data", database_url=odeion_db + " connect_timeout=3 port=1")
    names = [put_archive(archiver, at(f"2026-0{m}-15T12:00")) for m in range(1, 4)]
    policy = SchedulePolicy(backup_every="1d", retention=RetentionRules(keep_last=1))
    report = archiver.run_due(policy)
    assert not report.ok
    [outcome] = report.outcomes
    assert not outcome.ok and outcome.detail.startswith("failed: ")
    assert report.pruned == ()
    assert report.prune_skipped == "the backup failed; nothing is pruned until a run succeeds"
    assert sorted(i.name for i in archiver.list()) == sorted(names)


def test_run_due_stops_at_a_cancellation(offline: Archiver) -> None:
    put_archive(offline, at("2026-01-15T12:00"))
    token = CancelToken()
    token.cancel()
    with pytest.raises(CancelledError):
        offline.run_due(SchedulePolicy(backup_every="1d"), cancel=token)
    assert len(offline.list()) == 1


# -- the command line ----------------------------------------------------------------------


def _cli(data_dir: Path, url: str, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ODEION_DATA_DIR": str(data_dir), "ODEION_DATABASE_URL": url}
    done = subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=300,
    )
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return done


def test_due_and_run_due_from_the_command_line(odeion_db: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    archiver = Archiver(data, database_url=odeion_db)
    missing = _cli(data, odeion_db, "due", code=2)
    assert "no schedule in" in missing.stderr and "schedule.toml" in missing.stderr
    old = put_archive(archiver, at("2026-01-15T12:00"))
    (data / "schedule.toml").write_text(
        'backup_every = "1d"\ncomponents = ["settings"]\n[retention]\nkeep_last = 1\n'
    )
    shown = _cli(data, odeion_db, "due").stdout.splitlines()
    assert re.fullmatch(r"due: backup \(last backup [0-9]+ d ago, every 1d\)", shown[0])
    assert shown[1:] == ["then: prune (keep-last 1)"]
    listed = json.loads(_cli(data, odeion_db, "--json", "due").stdout)
    assert [t["kind"] for t in listed["due"]] == ["backup"] and listed["prunes"] is True

    ran = _cli(data, odeion_db, "run-due").stdout.splitlines()
    new = archiver.list()[0].name
    assert ran[0].startswith(f"backup: done: created {new} in ")
    assert ran[1:] == [f"pruned {old}"]
    assert _cli(data, odeion_db, "run-due").stdout.splitlines() == ["nothing is due"]
    assert _cli(data, odeion_db, "due").stdout.splitlines()[0] == "nothing is due"

    other = tmp_path / "elsewhere.toml"
    other.write_text('backup_every = "1h"\ncomponents = ["settings"]\n')
    move_entry(archiver, new, at("2026-01-20T00:00"))
    unreachable = odeion_db + " connect_timeout=3 port=1"
    failed = json.loads(
        _cli(data, unreachable, "--json", "run-due", "--schedule", str(other), code=1).stdout
    )
    assert failed["ok"] is False
    assert [(t["kind"], t["ok"]) for t in failed["tasks"]] == [("backup", False)]


def test_run_due_applies_the_same_retention_on_every_storage_target(
    odeion_db: str, tmp_path: Path
) -> None:
    nas = tmp_path / "nas"
    nas.mkdir()
    specs = (TargetSpec.directory("nas", nas), TargetSpec.directory("gone", tmp_path / "absent"))
    archiver = Archiver(tmp_path / "data", database_url=odeion_db, targets=specs)
    old = [put_archive(archiver, at(f"2026-0{m}-15T12:00")) for m in range(1, 4)]
    for name in old:
        archiver.copy_to("nas", name)
    policy = SchedulePolicy(
        backup_every="1d", components=["settings"], retention=RetentionRules(keep_last=2)
    )
    report = archiver.run_due(policy)
    new = archiver.list()[0].name
    # The backup was copied to nas after it was made; the same rules then kept the two
    # newest copies there, ordered by when each arrived.
    assert report.pruned_on_targets["nas"] == (old[1], old[0])
    assert sorted(a.name for a in archiver.list_target("nas")) == sorted([new, old[2]])
    # A target that cannot be used fails the run, with its reason, after the rest was done.
    assert list(report.target_errors) == ["gone"]
    assert not report.ok
    assert report.outcomes[0].ok


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('format = "tar.nope"', "no archive format 'tar.nope' is registered"),
        ('components = ["settings", "photos"]', "no backup component 'photos' is registered"),
    ],
)
def test_a_schedule_whose_backup_could_never_be_made_is_refused_by_due_and_run_due(
    offline: Archiver, tmp_path: Path, setting: str, message: str
) -> None:
    # It was accepted, and every run-due then failed its backup anew, without retention.
    put_archive(offline, at("2026-01-15T12:00"))
    policy = SchedulePolicy.from_toml(
        f'backup_every = "1d"\n{setting}\n[retention]\nkeep_last = 1\n'
    )
    for check in (offline.due, offline.run_due):
        with pytest.raises(UsageError, match=f"the schedule cannot be followed: {message}"):
            check(policy)
    assert len(offline.list()) == 1
    data = offline.store.directory.parent
    (data / "schedule.toml").write_text(f'backup_every = "1d"\n{setting}\n')
    for command in ("due", "run-due"):
        done = _cli(data, "postgresql://nobody@invalid.invalid/none", command, code=2)
        assert message in done.stderr


def test_records_dated_after_now_never_postpone_a_task(offline: Archiver) -> None:
    """A clock that ran a year ahead, then was set right: everything is due, not in a year."""
    policy = SchedulePolicy(
        backup_every="1d", verify_every="7d", drill_every="1m", components=["settings", "full_db"]
    )
    now = at("2026-11-30T12:00")
    ahead = at("2027-11-30T12:00")
    name = put_archive(offline, ahead, ("settings", "full_db"))
    offline.store.record_check(name, CheckRecord("verification", ahead, True))
    offline.store.record_check(name, CheckRecord("drill", ahead, True))
    due = offline.due(policy, now=now)
    wrong = "after now: a clock was wrong, so it is due again"
    assert [(t.kind, t.reason) for t in due.tasks] == [
        ("backup", f"the last backup is dated 2027-11-30 12:00Z; {wrong}"),
        (
            "verification",
            f"1 of 1 archives not verified for 7d or more (the longest: {name}, 0 min)",
        ),
        ("drill", f"the last drill is dated 2027-11-30 12:00Z; {wrong}"),
    ]
    # Within the allowed clock skew, a record is trusted.
    move_entry(offline, name, now + dt.timedelta(minutes=4))
    offline.store.record_check(name, CheckRecord("verification", now, True))
    offline.store.record_check(name, CheckRecord("drill", now, True))
    assert not offline.due(policy, now=now)
