"""Shared fixtures of the format tests: each built-in format, and a registry of both."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from odeion_archive._registry import BUILTIN_PLUGINS, Registry
from odeion_archive.formats.tarzst import TarZstFormat
from odeion_archive.formats.zip import ZipFormat
from odeion_archive.interfaces import ArchiveFormat

# The helper modules next to the tests (_craft_archives) import by their plain names.
sys.path.insert(0, str(Path(__file__).parent))

FORMAT_MODULES = [name for name in BUILTIN_PLUGINS if name.startswith("odeion_archive.formats.")]


def builtin_format_registry() -> Registry:
    """A registry with the built-in format plugins only, registered as the default one does."""
    registry = Registry.empty()
    for name in FORMAT_MODULES:
        registry.register(importlib.import_module(name), name=name)
    return registry


@pytest.fixture(params=["zip", "tar.zst"])
def fmt(request: pytest.FixtureRequest) -> ArchiveFormat:
    """Each built-in format, with its default settings."""
    return ZipFormat() if request.param == "zip" else TarZstFormat()


@pytest.fixture
def registry() -> Registry:
    """A registry that knows both built-in formats."""
    return builtin_format_registry()
