"""What the command line prints: tables and lines for people, JSON for programs."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs
from rich.console import Console
from rich.table import Table
from rich.text import Text

from odeion_archive._printable import printable
from odeion_archive._progress import amount
from odeion_archive.results import ArchiveInfo, CheckRecord, Problem, RestorePlan


def _write_lines(stream: Any, lines: Iterable[str]) -> None:
    """Write ``lines``, each made printable; a closed stream is ignored."""
    try:
        stream.writelines(printable(line) + "\n" for line in lines)
        stream.flush()
    except BrokenPipeError:
        _close_quietly(stream)


def _close_quietly(stream: Any) -> None:
    """After a reader went away (``| head``): send the rest to nowhere, without a traceback."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


def _say(*lines: str) -> None:
    """Messages for the person at the terminal, on stderr."""
    _write_lines(sys.stderr, lines)


class _Output:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def result(self, data: Any, lines: Iterable[str]) -> None:
        """``data`` as JSON with ``--json``; otherwise ``lines``, made printable."""
        if self.as_json:
            try:
                json.dump(data, sys.stdout, indent=2, default=str)
                sys.stdout.write("\n")
                sys.stdout.flush()
            except BrokenPipeError:
                _close_quietly(sys.stdout)
        else:
            _write_lines(sys.stdout, lines)


@attrs.frozen
class Column:
    """A column of a table: its header, the text of a row, and its alignment."""

    header: str
    text: Callable[[Any], str]
    right: bool = False


def table_lines(columns: Sequence[Column], rows: Iterable[Any]) -> list[str]:
    """The lines of a table: a header and one line per row, the columns aligned."""
    table = Table(box=None, pad_edge=False, show_edge=False, padding=(0, 2, 0, 0))
    for column in columns:
        table.add_column(column.header, justify="right" if column.right else "left", no_wrap=True)
    for row in rows:
        table.add_row(*(Text(printable(column.text(row))) for column in columns))
    buffer = io.StringIO()
    Console(file=buffer, width=100_000, color_system=None, highlight=False).print(table)
    return [line.rstrip() for line in buffer.getvalue().splitlines()]


#: The columns of ``list``; a column is one line here.
LIST_COLUMNS: tuple[Column, ...] = (
    Column("NAME", lambda i: i.name),
    Column("SIZE", lambda i: amount(i.size, "bytes"), right=True),
    Column("FORMAT", lambda i: i.format),
    Column("COMPONENTS", lambda i: ",".join(i.components)),
    Column("CREATED (UTC)", lambda i: f"{i.created_at:%Y-%m-%d %H:%M:%S}"),
    Column("SERVER", lambda i: i.server_version),
    Column("SCHEMA", lambda i: str(i.schema_version), right=True),
    Column("ORIGIN", lambda i: i.authenticity),
    Column("VERIFIED", lambda i: check_text(i.last_verification, i.last_intact_at)),
    Column("DRILLED", lambda i: check_text(i.last_drill)),
)


def check_text(record: CheckRecord | None, intact_at: dt.datetime | None = None) -> str:
    """A check in a column of ``list``: ``-``, ``2026-01-01 12:00 ok`` or ``... FAILED``.

    A verification that failed after an earlier one passed says ``DAMAGED`` (bit rot).
    """
    if record is None:
        return "-"
    verdict = "ok" if record.passed else "DAMAGED" if intact_at is not None else "FAILED"
    return f"{record.at:%Y-%m-%d %H:%M} {verdict}"


def check_json(record: CheckRecord | None) -> dict[str, Any] | None:
    """A check as JSON (``None``: never checked)."""
    if record is None:
        return None
    return {
        "at": record.at.isoformat().replace("+00:00", "Z"),
        "passed": record.passed,
        "reason": record.reason,
        "seconds": record.seconds,
    }


def _info_json(info: ArchiveInfo, *, listing: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": info.name,
        "path": str(info.path),
        "format": info.format,
        "size": info.size,
        "components": list(info.components),
        "created_at": info.created_at.isoformat().replace("+00:00", "Z"),
        "authenticity": info.authenticity,
        "encrypted": info.manifest.encryption is not None,
    }
    if listing:
        data["server_version"] = info.server_version
        data["schema_version"] = info.schema_version
        data["last_verification"] = check_json(info.last_verification)
        data["last_drill"] = check_json(info.last_drill)
        data["last_intact_at"] = (
            None
            if info.last_intact_at is None
            else info.last_intact_at.isoformat().replace("+00:00", "Z")
        )
        data["warnings"] = [{"code": i.code, "message": i.message} for i in info.warnings]
    return data


def _plan_json(plan: RestorePlan) -> dict[str, Any]:
    return {
        "mode": plan.mode,
        "conflict": plan.conflict,
        "components": list(plan.components),
        "can_restore": plan.can_restore,
        "blockers": [{"code": i.code, "message": i.message} for i in plan.blockers],
        "warnings": [{"code": i.code, "message": i.message} for i in plan.warnings],
        "steps": list(plan.steps),
        "counts": {
            table: {
                "insert": c.insert,
                "skip": c.skip,
                "overwrite": c.overwrite,
                "rename": c.rename,
            }
            for table, c in plan.counts.items()
        },
        "renames": {table: dict(names) for table, names in plan.renames.items()},
        "schema_version": plan.schema_version,
        "authenticity": plan.authenticity,
    }


def _plan_lines(plan: RestorePlan, integrity: str) -> list[str]:
    verdict = "can be restored" if plan.can_restore else "CANNOT be restored"
    conflict = "" if plan.mode == "full_db" else f", conflict {plan.conflict}"
    made = (
        [f"  archive: {plan.authenticity} ({_AUTHENTICITY[plan.authenticity]})"]
        if plan.authenticity is not None
        else []
    )
    return [
        f"mode {plan.mode}{conflict}: the archive {verdict}",
        *made,
        *(f"  blocker [{issue.code}] {issue.message}" for issue in plan.blockers),
        *(f"  warning [{issue.code}] {issue.message}" for issue in plan.warnings),
        *(f"  step: {step}" for step in plan.steps),
        *(
            f"  {table}: insert {c.insert}, skip {c.skip}, overwrite {c.overwrite}, "
            f"rename {c.rename}"
            for table, c in plan.counts.items()
        ),
        f"  integrity: {integrity}",
    ]


def _problems_json(problems: Iterable[Problem]) -> list[dict[str, Any]]:
    return [{"member": p.member, "message": p.message} for p in problems]


def _problem_lines(problems: Iterable[Problem]) -> list[str]:
    return [f"{p.member or 'container'}: {p.message}" for p in problems]


_AUTHENTICITY = {
    "own": "made by this server, unchanged since",
    "foreign": "not made by this server, or made before archives were sealed",
    "tampered": "carries this server's seal but was changed since",
}
