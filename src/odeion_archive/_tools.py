"""Choosing the PostgreSQL client tools for one server, once per operation."""

from __future__ import annotations

from pathlib import Path

from odeion_archive._postgres import PgTool, find_tools, pick_tool
from odeion_archive.errors import ToolNotFoundError

__all__ = ["Toolbox"]


class Toolbox:
    """The client tools (pg_dump, pg_restore, psql) suitable for one server."""

    def __init__(self, server_major: int, pg_bin: Path | None = None) -> None:
        self._server_major = server_major
        self._pg_bin = pg_bin
        self._found: dict[str, list[PgTool]] = {}
        self._chosen: dict[str, PgTool] = {}

    @property
    def server_major(self) -> int:
        """The major version of the server the tools are chosen for."""
        return self._server_major

    def get(self, name: str) -> PgTool:
        """The best tool ``name`` for the server; :class:`ToolNotFoundError` if none fits."""
        if name not in self._chosen:
            self._chosen[name] = pick_tool(name, self._server_major, self.all(name))
        return self._chosen[name]

    def find(self, name: str) -> PgTool | None:
        """Like :meth:`get`, but ``None`` where no tool fits."""
        try:
            return self.get(name)
        except ToolNotFoundError:
            return None

    def all(self, name: str) -> list[PgTool]:
        """Every tool ``name`` found, whatever its version.

        Looked for once per toolbox, since every candidate is run for its version.
        """
        if name not in self._found:
            self._found[name] = find_tools(name, pg_bin=self._pg_bin)
        return list(self._found[name])
