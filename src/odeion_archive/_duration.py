"""Durations of the schedule and of retention: ``36h``, ``30d``, ``12w``, ``6m``, ``1y6m``.

A duration counts calendar months and years as such (one month before 31 March
is 28 or 29 February), like restic's ``--keep-within``; days, weeks and hours
are fixed lengths. No library parses this form (``isodate`` speaks ISO 8601's
``P1Y6M``, which administrators do not write), so it is parsed here.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re

import attrs

from odeion_archive.errors import UsageError

__all__ = ["Duration", "age_text"]

_PART = re.compile(r"([0-9]{1,6})([ymwdh])")
_WHOLE = re.compile(r"(?:[0-9]{1,6}[ymwdh])+")
_ORDER = "ymwdh"
#: The longest duration: a thousand years (a calendar of months, or of 366-day years in hours).
_MAX_MONTHS = 1000 * 12
_MAX_HOURS = 1000 * 366 * 24


def _shift_months(moment: dt.datetime, months: int) -> dt.datetime:
    """``moment`` moved by ``months`` calendar months, the day kept within the month."""
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    if not 1 <= year <= 9999:
        raise UsageError(f"a duration of {abs(months)} months reaches beyond the year 1 or 9999")
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


@attrs.frozen
class Duration:
    """A length of time in calendar months and fixed hours.

    Make one with :meth:`parse` (``"30d"``, ``"12w"``, ``"6m"``, ``"1y"``,
    ``"1y6m"``, ``"36h"``); ``str()`` gives its text back as it was written
    (two durations of the same length are equal, however written).
    """

    months: int = 0
    hours: int = 0
    text: str = attrs.field(default="", eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.months < 0 or self.hours < 0 or (self.months == 0 and self.hours == 0):
            raise UsageError("a duration must be longer than nothing, such as 24h, 7d or 1m")
        if self.months > _MAX_MONTHS or self.hours > _MAX_HOURS:
            raise UsageError(
                f"a duration of {self.text or self} is longer than a thousand years; "
                "write at most 1000y (to keep or wait for ever, leave the rule out)"
            )

    @classmethod
    def parse(cls, text: str) -> Duration:
        """A duration from its text: numbers with units y, m (months), w, d, h."""
        compact = text.strip().lower().replace(" ", "")
        if not _WHOLE.fullmatch(compact):
            raise UsageError(
                f"{text!r:.40} is not a duration; write a number and a unit, such as 24h, 7d, "
                "4w, 6m (months) or 1y, or several (1y6m)"
            )
        months = hours = 0
        for number, unit in _PART.findall(compact):
            amount = int(number)
            if unit in "ym":
                months += amount * (12 if unit == "y" else 1)
            else:
                hours += amount * {"w": 7 * 24, "d": 24, "h": 1}[unit]
        return cls(months=months, hours=hours, text=compact)

    def before(self, moment: dt.datetime) -> dt.datetime:
        """The moment this long before ``moment``."""
        try:
            return _shift_months(moment, -self.months) - dt.timedelta(hours=self.hours)
        except OverflowError:
            raise UsageError(f"{self} before {moment:%Y-%m-%d} is before the year 1") from None

    def after(self, moment: dt.datetime) -> dt.datetime:
        """The moment this long after ``moment``."""
        try:
            return _shift_months(moment, self.months) + dt.timedelta(hours=self.hours)
        except OverflowError:
            raise UsageError(f"{self} after {moment:%Y-%m-%d} is after the year 9999") from None

    def __str__(self) -> str:
        if self.text:
            return self.text
        years, months = divmod(self.months, 12)
        days, hours = divmod(self.hours, 24)
        weeks, days = divmod(days, 7) if days % 7 == 0 else (0, days)
        amounts = dict(zip(_ORDER, (years, months, weeks, days, hours), strict=True))
        return "".join(f"{amounts[unit]}{unit}" for unit in _ORDER if amounts[unit])


def age_text(delta: dt.timedelta) -> str:
    """How long ``delta`` is, for a person: ``26 h``, ``3 d``, ``45 min``."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    if seconds < 72 * 3600:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"
