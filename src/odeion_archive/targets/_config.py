"""The targets of a data directory, as ``<data_dir>/targets.toml`` configures them.

Each table under ``[targets]`` is one target: ``kind`` names its kind,
``copy_after_backup`` (default true) whether each new backup is copied there,
and the other keys are the kind's settings. Credentials are refused here.
"""

from __future__ import annotations

import re
from pathlib import Path

from odeion_archive.errors import UsageError
from odeion_archive.targets import TargetSpec
from odeion_archive.targets._tomlfile import read_toml

__all__ = ["CONFIG_FILE", "load_specs"]

#: The file, in the data directory, that configures the targets.
CONFIG_FILE = "targets.toml"
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def load_specs(data_dir: Path) -> tuple[TargetSpec, ...]:
    """The targets ``<data_dir>/targets.toml`` configures; none if there is no such file."""
    path = data_dir / CONFIG_FILE
    try:
        data = read_toml(path, "the targets file")
    except (FileNotFoundError, NotADirectoryError):
        return ()  # no targets; a data directory that is no directory fails as it would anyway
    unknown = sorted(set(data) - {"targets"})
    tables = data.get("targets", {})
    if unknown or not isinstance(tables, dict):
        raise UsageError(
            f"{path} holds only [targets.NAME] tables (found {', '.join(unknown) or 'targets'} "
            "of another shape); see 'Copies elsewhere' in the administrator's guide"
        )
    specs = []
    for name, table in tables.items():
        if not _NAME.fullmatch(name) or not isinstance(table, dict):
            raise UsageError(
                f"{path}: [targets.{name}] must be a table named with lower-case letters, "
                "digits, '-' and '_'"
            )
        options = dict(table)
        kind = options.pop("kind", None)
        after = options.pop("copy_after_backup", True)
        if not isinstance(kind, str) or not isinstance(after, bool):
            raise UsageError(
                f'{path}: [targets.{name}] needs kind = "dir" or "s3" (or a plugin\'s kind), '
                "and copy_after_backup, if given, is true or false"
            )
        specs.append(TargetSpec(name, kind, options, after, data_dir))
    return tuple(specs)
