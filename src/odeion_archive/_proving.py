"""What the store records of verifications and drills, and what it makes of them.

An archive that a verification once found intact and that the latest
verification found damaged has rotted (or was changed on disk): it carries the
warning ``damaged_since_verified`` in ``list`` and in every plan of it.
"""

from __future__ import annotations

import datetime as dt

from odeion_archive.interfaces import Issue
from odeion_archive.results import CheckRecord, DrillReport, VerifyReport

__all__ = [
    "DAMAGED_SINCE_VERIFIED",
    "damaged_since_verified",
    "drill_record",
    "verification_reason",
    "verification_record",
]

DAMAGED_SINCE_VERIFIED = "damaged_since_verified"
_LISTED_PROBLEMS = 3


def damaged_since_verified(
    last_verification: CheckRecord | None, last_intact_at: dt.datetime | None
) -> tuple[Issue, ...]:
    """The warning of an archive found intact once and damaged by its latest verification."""
    if last_verification is None or last_verification.passed or last_intact_at is None:
        return ()
    return (
        Issue(
            DAMAGED_SINCE_VERIFIED,
            f"the archive was intact when verified on {last_intact_at:%Y-%m-%d %H:%M} UTC and "
            f"is damaged since (verified {last_verification.at:%Y-%m-%d %H:%M} UTC: "
            f"{last_verification.reason or 'damaged'}); the disk may be failing: restore from "
            "or copy another archive, and check the storage",
        ),
    )


def verification_reason(report: VerifyReport) -> str | None:
    """Why a verification failed, in a sentence; ``None`` when it passed."""
    if report.ok:
        return None
    listed = [f"{p.member or 'container'}: {p.message}" for p in report.problems[:_LISTED_PROBLEMS]]
    more = len(report.problems) - _LISTED_PROBLEMS
    return "; ".join(listed) + (f"; and {more} more problems" if more > 0 else "")


def verification_record(report: VerifyReport, at: dt.datetime, seconds: float) -> CheckRecord:
    """The store's record of a verification."""
    return CheckRecord(
        "verification", at, report.ok, reason=verification_reason(report), seconds=seconds
    )


def drill_record(report: DrillReport) -> CheckRecord:
    """The store's record of a drill: its restore time, pass or fail and why."""
    return CheckRecord(
        "drill",
        report.started_at,
        report.passed,
        reason=report.reason,
        seconds=report.restore_seconds,
    )
