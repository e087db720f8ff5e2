"""The plugin host: a registry that owns one :class:`pluggy.PluginManager`.

Nothing here is global: each :class:`Registry` is built explicitly, so a server,
a test and an embedding tool can each hold their own.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar, cast

import attrs
import pluggy

from odeion_archive import hookspecs
from odeion_archive.errors import (
    PluginError,
    UnknownComponentError,
    UnknownFormatError,
    UsageError,
)
from odeion_archive.interfaces import (
    ArchiveFormat,
    Component,
    in_default_backup,
    restore_modes_of,
)
from odeion_archive.targets import TargetKind

__all__ = ["PluginLoadFailure", "Provided", "Registry"]

_log = logging.getLogger(__name__)

_T = TypeVar("_T", ArchiveFormat, Component, TargetKind)

#: Modules of the built-in plugins, registered through the same hooks as any other.
BUILTIN_PLUGINS = (
    "odeion_archive.formats.zip",
    "odeion_archive.formats.tarzst",
    "odeion_archive.components.users_auth",
    "odeion_archive.components.settings",
    "odeion_archive.components.full_db",
    "odeion_archive.targets.dir",
    "odeion_archive.targets.s3",
)


@attrs.frozen
class PluginLoadFailure:
    """A third-party plugin that could not be loaded, and why."""

    name: str
    value: str
    error: str

    def __str__(self) -> str:
        return (
            f"the odeion_archive plugin {self.name!r} ({self.value}) failed to load: "
            f"{self.error}; fix or uninstall the package that provides it"
        )


@attrs.frozen
class Provided:
    """A format or component, and the name of the plugin that provided it."""

    name: str
    plugin: str
    kind: str


class Registry:
    """The formats and components available to one host.

    Build one with :meth:`default` (built-ins plus installed plugins) or
    :meth:`empty`, then :meth:`register` more plugins if needed.
    """

    def __init__(self, manager: pluggy.PluginManager) -> None:
        self._pm = manager
        self._formats: dict[str, tuple[ArchiveFormat, str]] | None = None
        self._components: dict[str, tuple[Component, str]] | None = None
        self._target_kinds: dict[str, tuple[TargetKind, str]] | None = None
        self._failures: list[PluginLoadFailure] = []

    # -- construction --------------------------------------------------------

    @classmethod
    def empty(cls) -> Registry:
        """A registry with the hook specifications and no plugin at all."""
        manager = pluggy.PluginManager(hookspecs.PROJECT)
        manager.add_hookspecs(hookspecs)
        return cls(manager)

    @classmethod
    def default(cls, *, entry_points: bool = True) -> Registry:
        """The built-in plugins, and (unless disabled) those of the entry-point group."""
        registry = cls.empty()
        for module_name in BUILTIN_PLUGINS:
            module = importlib.import_module(module_name)
            registry.register(module, name=module_name)
        if entry_points:
            registry.load_entry_points()
        return registry

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register a plugin object (a module or an instance with hook functions).

        Name clashes between plugins are reported (:class:`PluginError`) when
        formats or components are first looked up.
        """
        try:
            self._pm.register(plugin, name=name)
        except ValueError as exc:
            raise PluginError(f"could not register plugin {name or plugin!r}: {exc}") from exc
        self._formats = self._components = None
        self._target_kinds = None

    def load_entry_points(self, group: str = hookspecs.PROJECT) -> None:
        """Load every plugin of the entry-point ``group``.

        A plugin that fails to import is recorded in :attr:`load_failures`
        (and logged); the others, and the built-ins, keep working.
        """
        for entry_point in importlib.metadata.entry_points(group=group):
            if self._pm.get_plugin(entry_point.name) is not None:
                continue
            try:
                plugin = entry_point.load()
            except Exception as exc:  # a broken plugin must not break the host
                failure = PluginLoadFailure(
                    entry_point.name, entry_point.value, f"{type(exc).__name__}: {exc}"
                )
                self._failures.append(failure)
                _log.error("%s", failure)
                continue
            self.register(plugin, name=entry_point.name)

    # -- queries -------------------------------------------------------------

    @property
    def hook(self) -> Any:
        """The pluggy hook relay, to call notification hooks."""
        return self._pm.hook

    @property
    def load_failures(self) -> tuple[PluginLoadFailure, ...]:
        """Third-party plugins that failed to load."""
        return tuple(self._failures)

    def format(self, name: str) -> ArchiveFormat:
        """The format called ``name``; :class:`UnknownFormatError` if none is."""
        try:
            return self._all_formats()[name][0]
        except KeyError:
            raise UnknownFormatError(
                f"no archive format {name!r} is registered (known: "
                f"{', '.join(sorted(self._all_formats())) or 'none'})"
                f"{self._failure_note()}"
            ) from None

    def component(self, name: str) -> Component:
        """The component called ``name``; :class:`UnknownComponentError` if none is."""
        try:
            return self._all_components()[name][0]
        except KeyError:
            raise UnknownComponentError(
                f"no backup component {name!r} is registered (known: "
                f"{', '.join(sorted(self._all_components())) or 'none'})"
                f"{self._failure_note()}"
            ) from None

    def target_kind(self, name: str) -> TargetKind:
        """The target kind called ``name``; :class:`UsageError` if none is."""
        try:
            return self._all_target_kinds()[name][0]
        except KeyError:
            raise UsageError(
                f"no storage target kind {name!r} is registered (known: "
                f"{', '.join(sorted(self._all_target_kinds())) or 'none'}); fix 'kind' in "
                f"targets.toml or install the plugin that provides it{self._failure_note()}"
            ) from None

    def target_kinds(self) -> Mapping[str, TargetKind]:
        """Every registered kind of storage target by name."""
        return {name: kind for name, (kind, _) in self._all_target_kinds().items()}

    def formats(self) -> Mapping[str, ArchiveFormat]:
        """Every registered format by name."""
        return {name: fmt for name, (fmt, _) in self._all_formats().items()}

    def components(self) -> Mapping[str, Component]:
        """Every registered component by name."""
        return {name: comp for name, (comp, _) in self._all_components().items()}

    def modes(self) -> Mapping[str, tuple[str, ...]]:
        """Every restore mode, with the components it restores (as the components declare).

        Modes of one component come before modes that several share; the modes
        of a component that replaces the whole database come first.
        """
        registered = self._registered()
        ordered = sorted(registered, key=lambda c: c.restore_scope != "database")
        modes: dict[str, list[str]] = {}
        for component in ordered:
            for mode in restore_modes_of(component):
                modes.setdefault(mode, []).append(component.name)
        names = [c.name for c in registered]
        return {
            mode: tuple(sorted(members, key=names.index))
            for mode, members in sorted(modes.items(), key=lambda item: len(item[1]))
        }

    def default_components(self) -> tuple[str, ...]:
        """The components a backup holds when it names none, in the order they register."""
        return tuple(c.name for c in self._registered() if in_default_backup(c))

    def _registered(self) -> list[Component]:
        """The components in the order their plugins registered (pluggy calls the last first)."""
        return list(reversed(list(self.components().values())))

    def provided(self) -> tuple[Provided, ...]:
        """Every format, component and target kind with the plugin that provided it."""
        return tuple(
            [Provided(n, p, "format") for n, (_, p) in sorted(self._all_formats().items())]
            + [Provided(n, p, "component") for n, (_, p) in sorted(self._all_components().items())]
            + [Provided(n, p, "target") for n, (_, p) in sorted(self._all_target_kinds().items())]
        )

    def format_of(self, head: bytes) -> ArchiveFormat | None:
        """The format whose signature starts ``head``, or ``None``."""
        for fmt in self.formats().values():
            if fmt.sniff(head):
                return fmt
        return None

    # -- collection ----------------------------------------------------------

    def _failure_note(self) -> str:
        if not self._failures:
            return ""
        return "; note: " + "; ".join(str(f) for f in self._failures)

    def _all_formats(self) -> dict[str, tuple[ArchiveFormat, str]]:
        if self._formats is None:
            self._formats = self._collect(
                self._pm.hook.odeion_archive_formats, ArchiveFormat, "format"
            )
        return self._formats

    def _all_components(self) -> dict[str, tuple[Component, str]]:
        if self._components is None:
            self._components = self._collect(
                self._pm.hook.odeion_archive_components, Component, "component"
            )
        return self._components

    def _all_target_kinds(self) -> dict[str, tuple[TargetKind, str]]:
        if self._target_kinds is None:
            self._target_kinds = self._collect(
                self._pm.hook.odeion_archive_targets, TargetKind, "target kind"
            )
        return self._target_kinds

    def _collect(
        self, caller: pluggy.HookCaller, kind: Any, what: str
    ) -> dict[str, tuple[_T, str]]:
        """Call the hook through pluggy once per providing plugin, to know who gave what.

        Each call is a subset of the hook without the other providing plugins, so
        the hook wrappers of every plugin still wrap it.
        """
        found: dict[str, tuple[_T, str]] = {}
        providers = [
            impl.plugin for impl in caller.get_hookimpls() if not (impl.hookwrapper or impl.wrapper)
        ]
        for plugin in reversed(providers):
            plugin_name = self._pm.get_name(plugin) or repr(plugin)
            alone = self._pm.subset_hook_caller(
                caller.name, remove_plugins=[p for p in providers if p is not plugin]
            )
            results = cast("list[Iterable[_T] | None]", alone())
            for item in (item for result in results for item in result or ()):
                if not isinstance(item, kind):
                    raise PluginError(
                        f"plugin {plugin_name!r} returned {item!r} as a {what}, "
                        f"which lacks the {kind.__name__} interface"
                    )
                if item.name in found:
                    raise PluginError(
                        f"two plugins provide the {what} {item.name!r}: "
                        f"{found[item.name][1]!r} and {plugin_name!r}; "
                        "uninstall or disable one of them"
                    )
                found[item.name] = (item, plugin_name)
        return found
