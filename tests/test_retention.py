"""Calendar retention as a pure function: the rules over plain values, and durations."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

import attrs
import pytest

from odeion_archive import CheckRecord
from odeion_archive._duration import Duration
from odeion_archive._retention import Candidate, RetentionRules, decide
from odeion_archive.errors import UsageError
from odeion_archive.formats.zip import ZipFormat
from odeion_archive.interfaces import Authenticity
from odeion_archive.results import ArchiveInfo
from odeion_archive.testing import head_manifest


def _at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def _candidates(*times: str) -> list[Candidate]:
    return [Candidate(time, _at(time)) for time in times]


def _kept(candidates: list[Candidate], rules: RetentionRules) -> dict[str, tuple[str, ...]]:
    return {d.name: d.reasons for d in decide(candidates, rules) if d.keep}


def test_keep_daily_keeps_the_newest_of_each_of_the_last_n_days_that_have_archives() -> None:
    # The example of restic's forum: nothing on 3 May; two archives on 2 May.
    archives = _candidates(
        "2026-05-01T08:00", "2026-05-02T08:00", "2026-05-02T11:00", "2026-05-04T09:00",
        "2026-05-05T10:00",
    )  # fmt: skip
    assert _kept(archives, RetentionRules(keep_daily=4)) == {
        "2026-05-05T10:00": ("keep-daily 2026-05-05",),
        "2026-05-04T09:00": ("keep-daily 2026-05-04",),
        "2026-05-02T11:00": ("keep-daily 2026-05-02",),
        "2026-05-01T08:00": ("keep-daily 2026-05-01",),
    }
    assert set(_kept(archives, RetentionRules(keep_daily=2))) == {
        "2026-05-05T10:00",
        "2026-05-04T09:00",
    }


def test_decisions_come_newest_first_whatever_the_input_order() -> None:
    archives = _candidates("2026-01-03T00:00", "2026-01-01T00:00", "2026-01-02T00:00")
    decisions = decide(archives, RetentionRules(keep_last=1))
    assert [d.name for d in decisions] == [
        "2026-01-03T00:00",
        "2026-01-02T00:00",
        "2026-01-01T00:00",
    ]
    assert [d.keep for d in decisions] == [True, False, False]


def test_an_archive_kept_by_several_rules_lists_them_all() -> None:
    archives = _candidates("2025-12-31T23:00", "2026-01-01T01:00", "2026-01-01T02:00")
    kept = _kept(
        archives,
        RetentionRules(keep_last=1, keep_daily=2, keep_weekly=1, keep_monthly=2, keep_yearly=2),
    )
    assert kept == {
        "2026-01-01T02:00": (
            "keep-last",
            "keep-daily 2026-01-01",
            "keep-weekly 2026-W01",
            "keep-monthly 2026-01",
            "keep-yearly 2026",
        ),
        "2025-12-31T23:00": ("keep-daily 2025-12-31", "keep-monthly 2025-12", "keep-yearly 2025"),
    }


def test_weeks_are_iso_weeks_across_the_turn_of_the_year() -> None:
    # 29 December 2025 (a Monday) to 4 January 2026 is ISO week 2026-W01.
    archives = _candidates("2025-12-28T12:00", "2025-12-29T12:00", "2026-01-04T12:00")
    assert _kept(archives, RetentionRules(keep_weekly=2)) == {
        "2026-01-04T12:00": ("keep-weekly 2026-W01",),
        "2025-12-28T12:00": ("keep-weekly 2025-W52",),
    }


def test_a_rule_with_fewer_periods_than_asked_also_keeps_the_oldest_archive() -> None:
    archives = _candidates("2026-03-01T00:00", "2026-03-10T00:00", "2026-04-02T00:00")
    assert _kept(archives, RetentionRules(keep_monthly=6)) == {
        "2026-04-02T00:00": ("keep-monthly 2026-04",),
        "2026-03-10T00:00": ("keep-monthly 2026-03",),
        "2026-03-01T00:00": ("keep-monthly (the oldest archive)",),
    }
    # When the rule has its count, the oldest is not kept for it.
    assert "2026-03-01T00:00" not in _kept(archives, RetentionRules(keep_monthly=2))


def test_keep_within_counts_back_from_the_newest_archive_not_from_now() -> None:
    archives = _candidates(
        "2024-01-15T00:00", "2024-12-31T00:00", "2025-01-01T00:00", "2025-01-31T00:00"
    )
    # Backups stopped a year ago: keep-within still keeps the last month of them.
    assert _kept(archives, RetentionRules(keep_within="1m")) == {
        "2025-01-31T00:00": ("keep-within 1m",),
        "2025-01-01T00:00": ("keep-within 1m",),
        "2024-12-31T00:00": ("keep-within 1m",),
    }
    assert set(_kept(archives, RetentionRules(keep_within="30d"))) == {
        "2025-01-31T00:00",
        "2025-01-01T00:00",
    }
    assert len(_kept(archives, RetentionRules(keep_within=Duration.parse("2y")))) == 4


def test_the_newest_drilled_archive_and_the_last_full_db_always_stay() -> None:
    archives = [
        Candidate("new-json", _at("2026-06-03T00:00")),
        Candidate("drilled-json", _at("2026-06-02T00:00"), drill_passed=True),
        Candidate("full", _at("2026-06-01T00:00"), holds_full_db=True),
        Candidate("older-full", _at("2026-05-01T00:00"), holds_full_db=True, drill_passed=True),
    ]
    assert _kept(archives, RetentionRules(keep_last=0)) == {
        "drilled-json": ("newest passed drill",),
        "full": ("last full_db",),
    }
    assert _kept(archives, RetentionRules(keep_last=1))["new-json"] == ("keep-last",)


def test_the_last_full_db_is_an_intact_archive_of_this_server_not_the_newest_one() -> None:
    # The newest full_db was found damaged; before, it stayed as the last full_db and
    # keep-last 1 deleted the only intact one.
    archives = [
        Candidate("settings", _at("2026-06-03T00:00"), authenticity="own"),
        Candidate("rotten", _at("2026-06-02T00:00"), True, damaged=True, authenticity="own"),
        Candidate("intact", _at("2026-06-01T00:00"), True, authenticity="own"),
    ]
    assert _kept(archives, RetentionRules(keep_last=1)) == {
        "settings": ("keep-last",),
        "intact": ("last full_db",),
    }


def test_the_last_full_db_is_not_one_whose_drill_failed_while_another_is_intact() -> None:
    # A drill that fails (damaged bytes the last verification predates, or a dump
    # that does not restore) leaves the net to an archive not known to fail.
    archives = [
        Candidate("settings", _at("2026-06-03T00:00"), authenticity="own"),
        Candidate("failed", _at("2026-06-02T00:00"), True, authenticity="own", drill_failed=True),
        Candidate("intact", _at("2026-06-01T00:00"), True, authenticity="own"),
    ]
    assert _kept(archives, RetentionRules(keep_last=1)) == {
        "settings": ("keep-last",),
        "intact": ("last full_db",),
    }
    # Where every full_db archive failed its drill, the newest stays.
    only = [archives[0], archives[1], attrs.evolve(archives[2], drill_failed=True)]
    assert _kept(only, RetentionRules(keep_last=1))["failed"] == ("last full_db",)


def test_a_foreign_full_db_never_takes_the_place_of_one_of_this_servers() -> None:
    archives = [
        Candidate("imported", _at("2026-06-03T00:00"), True, authenticity="foreign"),
        Candidate("tampered", _at("2026-06-02T12:00"), True, authenticity="tampered"),
        Candidate("own", _at("2026-06-02T00:00"), True, authenticity="own"),
        Candidate("older-own", _at("2026-06-01T00:00"), True, authenticity="own"),
    ]
    assert _kept(archives, RetentionRules(keep_last=0)) == {"own": ("last full_db",)}
    assert _kept(archives, RetentionRules(keep_last=1)) == {
        "imported": ("keep-last",),
        "own": ("last full_db",),
    }


@pytest.mark.parametrize(
    ("archives", "kept"),
    [
        # No archive of this server's holds full_db: an intact foreign one, not a damaged one.
        (
            [
                Candidate("rotten-own", _at("2026-06-03T00:00"), True, damaged=True,
                          authenticity="own"),
                Candidate("tampered", _at("2026-06-02T12:00"), True, authenticity="tampered"),
                Candidate("foreign", _at("2026-06-02T00:00"), True),
            ],
            "foreign",
        ),
        # Every full_db is damaged or tampered with: the newest of them, the last copy.
        (
            [
                Candidate("tampered", _at("2026-06-03T00:00"), True, authenticity="tampered"),
                Candidate("rotten-own", _at("2026-06-02T00:00"), True, damaged=True,
                          authenticity="own"),
            ],
            "tampered",
        ),
    ],
)  # fmt: skip
def test_without_an_intact_full_db_of_this_server_the_net_falls_back(
    archives: list[Candidate], kept: str
) -> None:
    assert _kept(archives, RetentionRules(keep_last=0)) == {kept: ("last full_db",)}


def test_the_newest_passed_drill_prefers_this_servers_archives() -> None:
    archives = [
        Candidate("drilled-tampered", _at("2026-06-04T00:00"), drill_passed=True,
                  authenticity="tampered"),
        Candidate("drilled-foreign", _at("2026-06-03T00:00"), drill_passed=True),
        Candidate("drilled-own", _at("2026-06-02T00:00"), drill_passed=True, authenticity="own"),
    ]  # fmt: skip
    assert _kept(archives, RetentionRules(keep_last=0)) == {"drilled-own": ("newest passed drill",)}
    # A foreign archive that passed a drill here restores: kept when no own one passed.
    assert _kept(archives[:2], RetentionRules(keep_last=0)) == {
        "drilled-foreign": ("newest passed drill",)
    }
    # An archive tampered with since its drill is never kept for that drill.
    assert _kept(archives[:1], RetentionRules(keep_last=0)) == {}


def _info(
    verification: tuple[str, bool] | None,
    drill: tuple[str, bool] | None,
    authenticity: Authenticity = "own",
) -> ArchiveInfo:
    def check(kind: Literal["verification", "drill"], when: tuple[str, bool]) -> CheckRecord:
        return CheckRecord(kind, _at(when[0]), when[1])

    return ArchiveInfo(
        name="a.zip",
        path=Path("a.zip"),
        size=1,
        manifest=head_manifest(ZipFormat(), ("full_db",), created_at=_at("2026-06-01T00:00")),
        authenticity=authenticity,
        entered_at=_at("2026-06-01T00:00"),
        last_verification=None if verification is None else check("verification", verification),
        last_drill=None if drill is None else check("drill", drill),
    )


@pytest.mark.parametrize(
    ("verification", "drill", "damaged", "drill_passed"),
    [
        (None, None, False, False),
        (("2026-06-02T00:00", True), ("2026-06-03T00:00", True), False, True),
        (("2026-06-02T00:00", False), None, True, False),
        # Found damaged after the drill: the drill no longer vouches for it.
        (("2026-06-04T00:00", False), ("2026-06-03T00:00", True), True, False),
        # A drill that passed after the failed verification restored it.
        (("2026-06-02T00:00", False), ("2026-06-03T00:00", True), True, True),
        (("2026-06-02T00:00", True), ("2026-06-03T00:00", False), False, False),
    ],
)
def test_a_candidate_knows_its_last_checks_and_its_origin(
    verification: tuple[str, bool] | None,
    drill: tuple[str, bool] | None,
    damaged: bool,
    drill_passed: bool,
) -> None:
    candidate = Candidate.of(_info(verification, drill), now=_at("2026-06-05T00:00"))
    assert (candidate.damaged, candidate.drill_passed) == (damaged, drill_passed)
    assert candidate.drill_failed == (drill is not None and not drill[1])
    assert candidate.holds_full_db and candidate.authenticity == "own"
    assert Candidate.of(_info(None, None, "foreign"), now=_at("2026-06-05T00:00")).authenticity == (
        "foreign"
    )


def test_an_archive_dated_in_the_future_counts_as_the_oldest_and_only_for_keep_last() -> None:
    archives = [
        Candidate("suspect", _at("2026-06-05T00:00"), future_dated=True),
        Candidate("today", _at("2026-06-04T00:00")),
        Candidate("yesterday", _at("2026-06-03T00:00")),
    ]
    decisions = decide(archives, RetentionRules(keep_daily=7, keep_within="1y"))
    assert [d.name for d in decisions] == ["today", "yesterday", "suspect"]
    assert not decisions[2].keep
    assert _kept(archives, RetentionRules(keep_last=3))["suspect"] == ("keep-last",)


def test_two_years_of_daily_archives() -> None:
    start = _at("2025-01-01T03:00")
    archives = [
        Candidate(f"a{n:03d}", start + dt.timedelta(days=n, minutes=n % 50)) for n in range(730)
    ]
    kept = _kept(
        archives,
        RetentionRules(keep_daily=7, keep_weekly=4, keep_monthly=12, keep_yearly=5),
    )
    # The newest is 2026-12-31 (a Thursday). Daily: 25-31 Dec 2026; weekly: the
    # Sundays 27, 20, 13 Dec (and the 31st, already daily); monthly: the last day of
    # each month of 2026; yearly: 31 Dec 2026 and 2025, and the oldest archive.
    days = {(start + dt.timedelta(days=int(name[1:]))).date().isoformat() for name in kept}
    expected = {f"2026-12-{d:02d}" for d in (13, 20, *range(25, 32))}
    expected |= {(dt.date(2026, m + 1, 1) - dt.timedelta(days=1)).isoformat() for m in range(1, 12)}
    expected |= {"2025-12-31", "2025-01-01"}
    assert days == expected
    assert len(kept) == len(expected) == 9 + 11 + 2
    assert kept["a000"] == ("keep-yearly (the oldest archive)",)


def test_bad_rules_are_refused_with_what_to_do() -> None:
    with pytest.raises(UsageError, match="no retention rule given"):
        decide([], RetentionRules())
    with pytest.raises(UsageError, match="keep_daily must be a whole number"):
        RetentionRules(keep_daily=-1)
    with pytest.raises(UsageError, match="not a duration"):
        RetentionRules(keep_within="30 days")
    assert decide([], RetentionRules(keep_last=0)) == ()
    assert RetentionRules(keep_last=3, keep_within="4w").describe() == (
        "keep-last 3, keep-within 4w"
    )


@pytest.mark.parametrize(
    ("text", "months", "hours", "shown"),
    [
        ("36h", 0, 36, "36h"),
        ("7d", 0, 168, "7d"),
        ("30d", 0, 720, "30d"),
        ("12w", 0, 2016, "12w"),
        ("6m", 6, 0, "6m"),
        ("1y6m", 18, 0, "1y6m"),
        (" 1Y ", 12, 0, "1y"),
    ],
)
def test_durations_parse_and_print(text: str, months: int, hours: int, shown: str) -> None:
    duration = Duration.parse(text)
    assert (duration.months, duration.hours) == (months, hours)
    assert str(duration) == shown
    assert Duration.parse(str(duration)) == duration
    assert str(Duration(months, hours)) == {"36h": "1d12h", "7d": "1w"}.get(shown, shown)


@pytest.mark.parametrize("text", ["", "30", "d", "3x", "-1d", "0d", "1.5d", "1234567d"])
def test_a_bad_duration_says_how_to_write_one(text: str) -> None:
    with pytest.raises(UsageError, match="such as 24h, 7d"):
        Duration.parse(text)


def test_months_are_calendar_months_clamped_to_the_month_end() -> None:
    assert Duration.parse("1m").before(_at("2026-03-31T10:00")) == _at("2026-02-28T10:00")
    assert Duration.parse("1m").before(_at("2024-03-31T10:00")) == _at("2024-02-29T10:00")
    assert Duration.parse("1y").after(_at("2024-02-29T00:00")) == _at("2025-02-28T00:00")
    assert Duration.parse("1m1d").after(_at("2026-01-31T00:00")) == _at("2026-03-01T00:00")


@pytest.mark.parametrize("text", ["999999d", "999999w", "1001y", "12001m"])
def test_a_duration_beyond_a_thousand_years_is_refused_when_read_not_when_used(
    text: str,
) -> None:
    # 999999d parsed, then overflowed the calendar inside decide() with a bare OverflowError.
    with pytest.raises(UsageError, match="longer than a thousand years"):
        RetentionRules(keep_within=text)


def test_the_longest_duration_keeps_everything_and_never_overflows_the_calendar() -> None:
    archives = _candidates("0001-06-01T00:00", "1100-01-01T00:00", "2026-05-01T08:00")
    assert set(_kept(archives, RetentionRules(keep_within="1000y"))) == {
        "1100-01-01T00:00",
        "2026-05-01T08:00",
    }
    archives = _candidates("1100-01-01T00:00", "9999-12-01T00:00")
    assert set(_kept(archives, RetentionRules(keep_within="1000y"))) == {"9999-12-01T00:00"}
    with pytest.raises(UsageError, match="before the year 1"):
        Duration.parse("366000d").before(_at("0500-01-01T00:00"))
    with pytest.raises(UsageError, match="after the year 9999"):
        Duration.parse("366000d").after(_at("9500-01-01T00:00"))
