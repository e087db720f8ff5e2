"""What the contexts handed to components share: progress reports and client tools."""

from __future__ import annotations

from typing import Literal

from odeion_archive._postgres import tool_invocation
from odeion_archive._tools import Toolbox
from odeion_archive.events import ProgressCallback, ProgressEvent

__all__ = ["ComponentContext"]


class ComponentContext:
    """The part of a backup, plan or restore context that does not depend on the operation."""

    def __init__(
        self,
        *,
        operation: Literal["backup", "restore"],
        component: str,
        conninfo: str,
        toolbox: Toolbox,
        progress: ProgressCallback,
    ) -> None:
        self._operation: Literal["backup", "restore"] = operation
        self._component_name = component
        self._conninfo = conninfo
        self._toolbox = toolbox
        self._progress = progress

    def progress(
        self,
        phase: str,
        done: int,
        total: int | None = None,
        unit: Literal["bytes", "rows", "steps"] = "rows",
    ) -> None:
        """Report progress of this component."""
        self._progress(
            ProgressEvent(
                operation=self._operation,
                phase=phase,
                component=self._component_name,
                done=done,
                total=total,
                unit=unit,
            )
        )

    @property
    def conninfo(self) -> str:
        """The connection string of the database, for components that open their own sessions."""
        return self._conninfo

    def tool_env(self) -> tuple[str, dict[str, str]]:
        """A connection string without password, and the environment to run a tool with."""
        return tool_invocation(self._conninfo)
