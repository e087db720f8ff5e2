"""Calendar retention on a real store of archives spread over two years, library and CLI."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from _stores import at, put_archive
from odeion_archive import Archiver, CheckRecord, RetentionRules
from odeion_archive.errors import UsageError
from odeion_archive.targets import TargetSpec

SCRIPT = Path(sys.executable).with_name("odeion-archive")

#: (label, entered the store, components). a04 passed a drill; a09 is the newest full_db.
ARCHIVES = [
    ("a01", "2025-01-10T09:00", ("settings", "full_db")),
    ("a02", "2025-02-14T09:00", ("settings",)),
    ("a03", "2025-06-01T09:00", ("settings",)),
    ("a04", "2025-06-20T09:00", ("settings",)),
    ("a05", "2025-11-30T09:00", ("settings",)),
    ("a06", "2025-12-31T22:00", ("settings",)),
    ("a07", "2026-01-15T09:00", ("settings",)),
    ("a08", "2026-03-03T09:00", ("settings",)),
    ("a09", "2026-05-05T09:00", ("users_auth", "full_db")),
    ("a10", "2026-07-31T09:00", ("settings",)),
    ("a11", "2026-08-01T09:00", ("settings",)),
    ("a12", "2026-09-15T09:00", ("settings",)),
    ("a13", "2026-10-30T09:00", ("settings",)),
    ("a14", "2026-11-02T09:00", ("settings",)),  # Monday of ISO week 45
    ("a15", "2026-11-08T09:00", ("settings",)),  # Sunday of week 45
    ("a16", "2026-11-16T09:00", ("settings",)),  # week 47
    ("a17", "2026-11-20T09:00", ("settings",)),  # week 47
    ("a18", "2026-11-25T09:00", ("settings",)),  # week 48
    ("a19", "2026-11-28T09:00", ("settings",)),
    ("a20", "2026-11-29T08:00", ("settings",)),
    ("a21", "2026-11-29T20:00", ("settings",)),
    ("a22", "2026-11-30T03:00", ("settings",)),  # week 49
    ("a23", "2026-11-30T21:00", ("settings",)),
]
RULES = RetentionRules(keep_daily=3, keep_weekly=3, keep_monthly=4, keep_yearly=3, keep_within="7d")
#: What the rules keep, worked out by hand from the dates above.
EXPECTED_KEPT = {
    "a23": (
        "keep-daily 2026-11-30",
        "keep-weekly 2026-W49",
        "keep-monthly 2026-11",
        "keep-yearly 2026",
        "keep-within 7d",
    ),
    "a22": ("keep-within 7d",),
    "a21": ("keep-daily 2026-11-29", "keep-weekly 2026-W48", "keep-within 7d"),
    "a20": ("keep-within 7d",),
    "a19": ("keep-daily 2026-11-28", "keep-within 7d"),
    "a18": ("keep-within 7d",),
    "a17": ("keep-weekly 2026-W47",),
    "a13": ("keep-monthly 2026-10",),
    "a12": ("keep-monthly 2026-09",),
    "a11": ("keep-monthly 2026-08",),
    "a09": ("last full_db",),
    "a06": ("keep-yearly 2025",),
    "a04": ("newest passed drill",),
    "a01": ("keep-yearly (the oldest archive)",),
}
EXPECTED_GONE = ["a16", "a15", "a14", "a10", "a08", "a07", "a05", "a03", "a02"]


@pytest.fixture
def two_years(tmp_path: Path) -> tuple[Archiver, dict[str, str]]:
    """A store whose archives entered it over two years; labels to names."""
    archiver = Archiver(tmp_path / "data", database_url="postgresql://nobody@invalid.invalid/x")
    names = {
        label: put_archive(archiver, at(entered), components)
        for label, entered, components in ARCHIVES
    }
    archiver.store.record_check(
        names["a04"], CheckRecord("drill", at("2025-07-01T00:00"), passed=True, seconds=2.0)
    )
    # A drill that failed protects nothing.
    archiver.store.record_check(
        names["a16"], CheckRecord("drill", at("2026-11-17T00:00"), passed=False, reason="x")
    )
    return archiver, names


def test_retention_keeps_exactly_what_the_rules_say(
    two_years: tuple[Archiver, dict[str, str]],
) -> None:
    archiver, names = two_years
    label = {name: label for label, name in names.items()}
    plan = archiver.prune_plan(RULES)
    assert [label[d.name] for d in plan] == [a[0] for a in reversed(ARCHIVES)]
    assert {label[d.name]: d.reasons for d in plan if d.keep} == EXPECTED_KEPT
    gone = [names[g] for g in EXPECTED_GONE]
    assert archiver.prune(rules=RULES, dry_run=True) == gone
    assert len(archiver.list()) == len(ARCHIVES)  # a dry run deletes nothing
    assert archiver.prune(rules=RULES) == gone
    assert sorted(label[i.name] for i in archiver.list()) == sorted(EXPECTED_KEPT)
    assert not any((archiver.store.directory / ".entered" / n).exists() for n in gone)
    # Applied again, the same rules keep the same archives.
    assert archiver.prune(rules=RULES) == []


def test_retention_orders_by_entry_into_the_store_never_by_created_at(
    two_years: tuple[Archiver, dict[str, str]],
) -> None:
    archiver, names = two_years
    # Every archive claims the same creation time; only the store's records tell them apart.
    assert len({info.created_at for info in archiver.list()}) == 1
    assert archiver.prune(keep_last=2) == [
        names[label] for label, _, _ in reversed(ARCHIVES[:-2]) if label not in ("a09", "a04")
    ]


def test_keep_last_combines_with_the_calendar_rules(
    two_years: tuple[Archiver, dict[str, str]],
) -> None:
    archiver, names = two_years
    plan = {d.name: d.reasons for d in archiver.prune_plan(RetentionRules(keep_monthly=1))}
    assert plan[names["a22"]] == ()
    combined = archiver.prune(2, rules=RetentionRules(keep_monthly=1), dry_run=True)
    assert names["a22"] not in combined
    assert names["a21"] in combined
    with pytest.raises(UsageError, match="keep_last is given twice"):
        archiver.prune(2, rules=RetentionRules(keep_last=3))
    with pytest.raises(UsageError, match="no retention rule given"):
        archiver.prune(rules=RetentionRules())


def _cli(data_dir: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ODEION_DATA_DIR": str(data_dir)}
    env.pop("ODEION_DATABASE_URL", None)
    done = subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=120,
    )
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return done


def test_the_command_line_prunes_by_the_calendar_and_says_why_each_archive_stays(
    two_years: tuple[Archiver, dict[str, str]],
) -> None:
    archiver, names = two_years
    label = {name: label for label, name in names.items()}
    rules = [
        "--keep-daily", "3", "--keep-weekly", "3", "--keep-monthly", "4",
        "--keep-yearly", "3", "--keep-within", "7d",
    ]  # fmt: skip
    dry = _cli(archiver.data_dir, "prune", *rules, "--dry-run").stdout.splitlines()
    assert dry[: len(EXPECTED_GONE)] == [f"would delete {names[g]}" for g in EXPECTED_GONE]
    assert dry[len(EXPECTED_GONE) :] == [
        f"keep {names[k]} ({', '.join(reasons)})" for k, reasons in EXPECTED_KEPT.items()
    ]
    as_json = json.loads(_cli(archiver.data_dir, "--json", "prune", *rules, "--dry-run").stdout)
    assert [label[k["name"]] for k in as_json["kept"]] == list(EXPECTED_KEPT)
    assert as_json["kept"][-1]["reasons"] == ["keep-yearly (the oldest archive)"]

    refused = _cli(archiver.data_dir, "prune", *rules, code=2)
    assert "--yes" in refused.stderr
    assert "keep-daily 3, keep-weekly 3, keep-monthly 4, keep-yearly 3, keep-within 7d" in (
        refused.stderr
    )
    assert len(archiver.list()) == len(ARCHIVES)

    done = json.loads(_cli(archiver.data_dir, "--json", "prune", *rules, "--yes").stdout)
    assert done == {"deleted": [names[g] for g in EXPECTED_GONE]}
    assert sorted(label[i.name] for i in archiver.list()) == sorted(EXPECTED_KEPT)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "say what to keep: --keep-last N"),
        (("--keep-daily", "-1"), "expected a number of archives, 0 or more"),
        (("--keep-within", "a month"), "is not a duration"),
    ],
)
def test_prune_without_a_sound_rule_is_a_usage_error(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    refused = _cli(tmp_path / "data", "prune", *args, "--dry-run", code=2)
    assert message in refused.stderr


def test_a_target_filled_in_one_go_keeps_what_the_store_keeps(tmp_path: Path) -> None:
    """Copies of three months of backups made on one day are three months on the target too.

    Dated by when each copy arrived, all fell on one day: keep-monthly 3 kept the newest
    copy and the oldest, and deleted the rest from the target.
    """
    nas = tmp_path / "nas"
    nas.mkdir()
    archiver = Archiver(
        tmp_path / "data",
        database_url="postgresql:///unused",
        targets=[TargetSpec.directory("nas", nas)],
    )
    names = [put_archive(archiver, at(f"2026-0{month}-15T12:00")) for month in (1, 2, 3)]
    for name in reversed(names):  # the newest copied first: arrival order says nothing
        archiver.copy_to("nas", name)
    rules = RetentionRules(keep_monthly=3)
    in_store = {d.name: d.reasons for d in archiver.prune_plan(rules)}
    on_target = {d.name: d.reasons for d in archiver.prune_target_plan("nas", rules)}
    assert on_target == in_store
    assert all(on_target.values())
    assert archiver.prune_target("nas", rules=rules) == []
    # A copy whose archive left the store is dated by its manifest (made long ago), not by
    # when it arrived (today, after the others): it is the oldest, and goes first.
    archiver.delete(names[0])
    assert archiver.prune_target("nas", keep_last=2) == [names[0]]


def test_an_archive_that_entered_while_the_clock_ran_ahead_never_shadows_the_others(
    tmp_path: Path,
) -> None:
    """The clock ran a year ahead for one backup, then was set right.

    keep-within counted back from that future backup and kept none of the month's real
    backups: run-due's retention deleted them all.
    """
    archiver = Archiver(tmp_path / "data", database_url="postgresql:///unused")
    today = dt.datetime.now(dt.UTC).replace(microsecond=0)
    ahead = put_archive(archiver, today + dt.timedelta(days=365))
    recent = [put_archive(archiver, today - dt.timedelta(days=d)) for d in (1, 2, 3)]
    old = put_archive(archiver, today - dt.timedelta(days=90))
    kept = {d.name: d.reasons for d in archiver.prune_plan(RetentionRules(keep_within="30d"))}
    assert {name for name, reasons in kept.items() if reasons} == set(recent)
    assert kept[ahead] == () and kept[old] == ()
    # keep_last still counts it, as the oldest (as an archive that claims a future date).
    kept = {d.name: d.reasons for d in archiver.prune_plan(RetentionRules(keep_last=4))}
    assert kept[ahead] == () and kept[old] == ("keep-last",)
