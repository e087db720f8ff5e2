"""Which archives a retention policy keeps, and why: a pure function over plain values.

The rules combine as restic's ``forget`` combines them (borg's ``prune`` is the
same but for the reasons it lists):

- The archives are ordered by when they entered the store, newest first; an
  archive dated in the future (see the store) counts as the oldest of all.
- ``keep_last N`` keeps the first ``N`` in that order.
- ``keep_daily N`` (``weekly``, ``monthly``, ``yearly``) walks the archives
  newest first and keeps the newest archive of each day (ISO week, month,
  year; in UTC) until it has kept ``N``: the last ``N`` periods *that have
  archives*, however far apart. If fewer than ``N`` periods have archives, it
  also keeps the oldest archive, so that the oldest state stays.
- ``keep_within D`` keeps every archive that entered at most ``D`` before the
  newest one (not before now: a server whose backups stopped keeps them).
- Each rule looks at every archive on its own; an archive kept by several
  rules lists all of them.
- Whatever the rules say, two safety nets keep an archive each, one that can
  be trusted to restore (the nets never let a damaged or foreign archive take
  the place of an intact one of this server's own):

  - ``last full_db``: the newest archive that holds ``full_db``, is this
    server's own (its seal checks out) and that its last verification, if
    any, did not find damaged, preferring one whose last drill, if any, did
    not fail. If none is, the newest archive holding
    ``full_db`` not known to be damaged and not tampered with (one from
    another server); if none is, the newest archive holding ``full_db``
    whatever its state (the last copy of the database is never deleted by
    retention).
  - ``newest passed drill``: the newest of this server's archives whose last
    drill passed and that no verification since found damaged; if none is,
    the newest such archive from another server (a drill proves that it
    restores). An archive tampered with since it was sealed is never kept by
    this net: its drill says nothing of what it holds now.

An archive dated in the future takes part in ``keep_last`` only: its place in
the calendar is not to be trusted.

Callers pass :class:`Candidate` values, so that any store of archives (this
data directory's, or a remote target's) decides alike.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

import attrs

from odeion_archive._duration import Duration
from odeion_archive.errors import UsageError
from odeion_archive.interfaces import Authenticity
from odeion_archive.results import ArchiveInfo

__all__ = ["Candidate", "RetentionDecision", "RetentionRules", "decide"]

#: How far after now a moment may lie before it counts as dated in the future
#: (the store's ``CLOCK_SKEW``; the store imports this module, not the reverse).
_CLOCK_SKEW = dt.timedelta(minutes=5)
#: The reason of the archive kept because it is the newest that passed a drill.
DRILLED = "newest passed drill"
#: The reason of the archive kept because it is the newest that holds full_db.
LAST_FULL_DB = "last full_db"


def _count(_inst: object, attribute: attrs.Attribute[int | None], value: int | None) -> None:
    if value is not None and (type(value) is not int or value < 0):
        raise UsageError(f"{attribute.name} must be a whole number, 0 or more, not {value!r:.40}")


def _duration(value: str | Duration | None) -> Duration | None:
    return Duration.parse(value) if isinstance(value, str) else value


@attrs.frozen
class RetentionRules:
    """Which archives to keep: any combination of the rules (see the module's notes).

    ``keep_within`` takes a :class:`Duration` or its text (``"30d"``). A rule
    left at ``None`` (or 0) keeps nothing by itself.
    """

    keep_last: int | None = attrs.field(default=None, validator=_count)
    keep_daily: int | None = attrs.field(default=None, validator=_count)
    keep_weekly: int | None = attrs.field(default=None, validator=_count)
    keep_monthly: int | None = attrs.field(default=None, validator=_count)
    keep_yearly: int | None = attrs.field(default=None, validator=_count)
    keep_within: Duration | None = attrs.field(default=None, converter=_duration)

    @classmethod
    def combined(cls, rules: RetentionRules | None, keep_last: int | None) -> RetentionRules:
        """``rules`` with ``keep_last`` as one more rule (either may be ``None``)."""
        rules = rules if rules is not None else cls()
        if keep_last is None:
            return rules
        if rules.keep_last is not None and rules.keep_last != keep_last:
            raise UsageError(
                f"keep_last is given twice ({keep_last} and {rules.keep_last}); give it once"
            )
        return attrs.evolve(rules, keep_last=keep_last)

    @property
    def given(self) -> bool:
        """Whether any rule is set (``keep_last 0`` is a rule: it keeps none by itself)."""
        return any(value is not None for value in attrs.astuple(self, recurse=False))

    def describe(self) -> str:
        """The rules as the command line writes them: ``keep-last 3, keep-daily 7``."""
        values = attrs.asdict(self, recurse=False)
        return ", ".join(
            f"{name.replace('_', '-')} {value}"
            for name, value in values.items()
            if value is not None
        )


@attrs.frozen
class Candidate:
    """One archive as retention sees it.

    ``entered_at``: when it entered the store (never the time it claims);
    ``future_dated``: it claims a time after that (it counts as the oldest).
    ``drill_passed``: its last drill passed and no verification since found
    it damaged; ``damaged``: its last verification failed; ``authenticity``:
    ``own`` if this server sealed it (see :class:`~odeion_archive.ArchiveInfo`);
    ``drill_failed``: its last drill failed.
    """

    name: str
    entered_at: dt.datetime
    holds_full_db: bool = False
    drill_passed: bool = False
    future_dated: bool = False
    damaged: bool = False
    authenticity: Authenticity = "foreign"
    drill_failed: bool = False

    @classmethod
    def of(cls, info: ArchiveInfo, now: dt.datetime | None = None) -> Candidate:
        """The candidate for an archive the store lists.

        It counts as dated in the future if it claims a time after it entered
        the store, or if it entered the store after ``now`` (default: the
        current time; a clock that ran ahead, then was set right): otherwise
        ``keep_within`` would count back from that future moment and keep
        none of the archives made since.
        """
        entered_at = info.entered_at if info.entered_at is not None else info.created_at
        now = dt.datetime.now(dt.UTC) if now is None else now
        verification, drill = info.last_verification, info.last_drill
        damaged = verification is not None and not verification.passed
        return cls(
            name=info.name,
            entered_at=entered_at,
            holds_full_db="full_db" in info.components,
            drill_passed=drill is not None
            and drill.passed
            and not (damaged and verification is not None and verification.at >= drill.at),
            future_dated=entered_at > now + _CLOCK_SKEW
            or any(issue.code == "created_in_future" for issue in info.warnings),
            damaged=damaged,
            authenticity=info.authenticity,
            drill_failed=drill is not None and not drill.passed,
        )


@attrs.frozen
class RetentionDecision:
    """Whether an archive stays, and the rules that keep it (none: it goes)."""

    name: str
    reasons: tuple[str, ...] = ()

    @property
    def keep(self) -> bool:
        """Whether the archive stays."""
        return bool(self.reasons)


def _day(moment: dt.datetime) -> str:
    return f"{moment:%Y-%m-%d}"


def _week(moment: dt.datetime) -> str:
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


def _month(moment: dt.datetime) -> str:
    return f"{moment:%Y-%m}"


def _year(moment: dt.datetime) -> str:
    return f"{moment:%Y}"


_PERIODS: tuple[tuple[str, Callable[[dt.datetime], str]], ...] = (
    ("keep_daily", _day),
    ("keep_weekly", _week),
    ("keep_monthly", _month),
    ("keep_yearly", _year),
)


def _calendar_rule(
    dated: Sequence[Candidate],
    count: int,
    rule: str,
    period_of: Callable[[dt.datetime], str],
    reasons: dict[str, list[str]],
) -> None:
    label = rule.replace("_", "-")
    left = count
    last_period: str | None = None
    kept_oldest = False
    for candidate in dated:
        if left == 0:
            break
        period = period_of(candidate.entered_at.astimezone(dt.UTC))
        if period != last_period:
            last_period = period
            left -= 1
            reasons[candidate.name].append(f"{label} {period}")
            kept_oldest = candidate is dated[-1]
    if left > 0 and dated and not kept_oldest:
        reasons[dated[-1].name].append(f"{label} (the oldest archive)")


def _within(
    dated: Sequence[Candidate], within: Duration | None, reasons: dict[str, list[str]]
) -> None:
    """``keep_within``: back from the newest archive, not from now."""
    if within is None or not dated:
        return
    since = within.before(dated[0].entered_at)
    for candidate in dated:
        if candidate.entered_at >= since:
            reasons[candidate.name].append(f"keep-within {within}")


def _newest(ordered: Sequence[Candidate], *tiers: Callable[[Candidate], bool]) -> str | None:
    """The newest of ``ordered`` (newest first) in the first tier that admits any."""
    for admits in tiers:
        for candidate in ordered:
            if admits(candidate):
                return candidate.name
    return None


def _last_full_db(ordered: Sequence[Candidate]) -> str | None:
    return _newest(
        [c for c in ordered if c.holds_full_db],
        lambda c: c.authenticity == "own" and not c.damaged and not c.drill_failed,
        lambda c: c.authenticity == "own" and not c.damaged,
        lambda c: c.authenticity == "foreign" and not c.damaged and not c.drill_failed,
        lambda c: c.authenticity == "foreign" and not c.damaged,
        lambda _: True,
    )


def _drilled(ordered: Sequence[Candidate]) -> str | None:
    return _newest(
        [c for c in ordered if c.drill_passed],
        lambda c: c.authenticity == "own",
        lambda c: c.authenticity == "foreign",
    )


def decide(candidates: Sequence[Candidate], rules: RetentionRules) -> tuple[RetentionDecision, ...]:
    """What ``rules`` keep of ``candidates``: one decision each, newest first.

    Raises :class:`UsageError` if no rule is given (nothing would say what to keep).
    """
    if not rules.given:
        raise UsageError(
            "no retention rule given; set at least one of keep-last, keep-daily, keep-weekly, "
            "keep-monthly, keep-yearly or keep-within"
        )
    names = [candidate.name for candidate in candidates]
    if len(set(names)) != len(names):
        raise ValueError("two candidates have the same name")
    ordered = sorted(
        candidates, key=lambda c: (not c.future_dated, c.entered_at, c.name), reverse=True
    )
    reasons: dict[str, list[str]] = {candidate.name: [] for candidate in ordered}
    for candidate in ordered[: rules.keep_last or 0]:
        reasons[candidate.name].append("keep-last")
    dated = [candidate for candidate in ordered if not candidate.future_dated]
    counts = attrs.asdict(rules, recurse=False)
    for rule, period_of in _PERIODS:
        if counts[rule]:
            _calendar_rule(dated, counts[rule], rule, period_of, reasons)
    _within(dated, rules.keep_within, reasons)
    for protected, reason in ((_drilled(ordered), DRILLED), (_last_full_db(ordered), LAST_FULL_DB)):
        if protected is not None:
            reasons[protected].append(reason)
    return tuple(RetentionDecision(c.name, tuple(reasons[c.name])) for c in ordered)
