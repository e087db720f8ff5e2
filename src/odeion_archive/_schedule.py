"""The schedule's values: the policy the host's scheduler follows, what is due, what ran.

The library runs no clock. The host (or cron, through ``odeion-archive
run-due``) calls :meth:`~odeion_archive.Archiver.due` or
:meth:`~odeion_archive.Archiver.run_due` on a timer of its own, with a
:class:`SchedulePolicy`: constructed by the host, or read from the data
directory's ``schedule.toml``.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs

from odeion_archive._backup import DEFAULT_FORMAT
from odeion_archive._converter import structure_config
from odeion_archive._duration import Duration
from odeion_archive._retention import RetentionRules
from odeion_archive.errors import UsageError

__all__ = [
    "SCHEDULE_FILE",
    "Due",
    "DueTask",
    "RunReport",
    "SchedulePolicy",
    "TaskKind",
    "TaskOutcome",
]

#: The schedule's file in the data directory.
SCHEDULE_FILE = "schedule.toml"
#: A schedule file larger than this is not a schedule.
_FILE_LIMIT = 64 * 1024

TaskKind = Literal["backup", "verification", "drill"]
_DRILL_CHOICES = ("newest_full_db", "newest")


def _duration(value: str | Duration | None) -> Duration | None:
    return Duration.parse(value) if isinstance(value, str) else value


def _names(value: Sequence[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not value:
        raise UsageError("components must be a list of one or more component names")
    return tuple(value)


def _drill_choice(_inst: object, _attribute: attrs.Attribute[str], value: str) -> None:
    if value not in _DRILL_CHOICES:
        raise UsageError(
            f"drill_archive is {value!r:.40}; choose one of {', '.join(_DRILL_CHOICES)}"
        )


@attrs.frozen
class SchedulePolicy:
    """How often to back up, verify every archive and run a restore drill, and what to keep.

    Each ``*_every`` is a :class:`~odeion_archive.Duration` or its text
    (``"24h"``, ``"7d"``, ``"1m"``); ``None`` leaves that task out.
    ``drill_archive`` chooses the archive a drill restores: the newest that
    holds ``full_db`` (the default) or the newest of all. ``components`` and
    ``format`` are those of the backups (``None``: the default components).
    ``retention`` is applied after the tasks that were due, when they all
    succeeded; without any rule, nothing is pruned.
    """

    backup_every: Duration | None = attrs.field(default=None, converter=_duration)
    verify_every: Duration | None = attrs.field(default=None, converter=_duration)
    drill_every: Duration | None = attrs.field(default=None, converter=_duration)
    drill_archive: str = attrs.field(default="newest_full_db", validator=_drill_choice)
    components: tuple[str, ...] | None = attrs.field(default=None, converter=_names)
    format: str = DEFAULT_FORMAT
    retention: RetentionRules = attrs.field(factory=RetentionRules)

    @classmethod
    def from_toml(cls, text: str, *, what: str = SCHEDULE_FILE) -> SchedulePolicy:
        """The policy a TOML document describes (see the administrator's guide).

        Raises :class:`~odeion_archive.errors.UsageError` naming ``what`` and
        the field for any flaw: bad TOML, an unknown key, a wrong type, a bad duration.
        """
        try:
            raw: dict[str, Any] = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"{what} is not valid TOML: {exc}; correct it") from None
        return structure_config(raw, cls, what)

    @classmethod
    def load(cls, path: Path | str) -> SchedulePolicy:
        """The policy in the TOML file ``path``."""
        path = Path(path)
        try:
            with path.open("rb") as stream:
                data = stream.read(_FILE_LIMIT + 1)
        except FileNotFoundError:
            raise UsageError(
                f"no schedule in {path}; write one (see 'A schedule' in the administrator's "
                "guide), or name another file"
            ) from None
        if len(data) > _FILE_LIMIT:
            raise UsageError(f"{path} is larger than {_FILE_LIMIT} bytes; it is not a schedule")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"{path} is not UTF-8 text; save it as UTF-8") from None
        return cls.from_toml(text, what=str(path))

    @classmethod
    def from_data_dir(cls, data_dir: Path | str) -> SchedulePolicy:
        """The policy in ``<data_dir>/schedule.toml``."""
        return cls.load(Path(data_dir) / SCHEDULE_FILE)


@attrs.frozen
class DueTask:
    """One task that is due, and why (``archive``: the archive a drill restores)."""

    kind: TaskKind
    reason: str
    archive: str | None = None


@attrs.frozen
class Due:
    """What is due at ``at``: the tasks in the order :meth:`~odeion_archive.Archiver.run_due`
    runs them, whether retention applies afterwards, and notes on what is not yet due.
    """

    at: dt.datetime
    tasks: tuple[DueTask, ...] = ()
    prunes: bool = False
    notes: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.tasks)


@attrs.frozen
class TaskOutcome:
    """How one task ended: ``detail`` says what it did, or why it failed."""

    task: DueTask
    ok: bool
    detail: str
    #: The archive the task concerned (for a backup, the new one).
    archive: str | None = None


@attrs.frozen
class RunReport:
    """What :meth:`~odeion_archive.Archiver.run_due` did.

    ``pruned``: the archives retention deleted. ``prune_skipped`` says why
    retention did not run although the policy has rules (a task failed).
    ``pruned_on_targets``: per storage target, the copies the same rules
    deleted there; ``target_errors``: per target, why its retention failed.
    """

    due: Due
    outcomes: tuple[TaskOutcome, ...] = ()
    pruned: tuple[str, ...] = ()
    prune_skipped: str | None = None
    pruned_on_targets: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict, hash=False)
    target_errors: Mapping[str, str] = attrs.field(factory=dict, hash=False)

    @property
    def ok(self) -> bool:
        """Whether every task that was due succeeded, and retention on every target."""
        return all(outcome.ok for outcome in self.outcomes) and not self.target_errors
