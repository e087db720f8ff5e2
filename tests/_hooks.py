"""A plugin that records what the failure hook reports, and archivers that carry it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from odeion_archive import Archiver, Failure, Registry, hookimpl


class Failures:
    """A plugin that records every failure the hook reports (and may raise)."""

    def __init__(self, *, raises: bool = False) -> None:
        self.seen: list[Failure] = []
        self.raises = raises

    @hookimpl
    def odeion_archive_backup_failed(self, failure: Failure) -> None:
        self.seen.append(failure)
        if self.raises:
            raise RuntimeError("the host's notifier is down")


def archiver_with(
    data_dir: Path, url: str, failures: Failures | None = None, **options: Any
) -> Archiver:
    """An archiver of the built-in plugins only, and ``failures`` if given."""
    registry = Registry.default(entry_points=False)
    if failures is not None:
        registry.register(failures, name="failures")
    return Archiver(data_dir, database_url=url, registry=registry, **options)
