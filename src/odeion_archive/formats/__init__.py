"""The built-in formats (:mod:`.zip`, :mod:`.tarzst`), and how the core calls any format's reader.

Importing this package imports no format: it holds only :func:`guarded_reader`.

A reader whose unexpected exceptions become an archive error naming the plugin:

A format's reader is documented to raise
:class:`~odeion_archive.errors.CorruptArchiveError` for damaged data,
:class:`~odeion_archive.errors.UnsafeArchiveError` for what it refuses and
:class:`~odeion_archive.errors.ManifestError` for a missing member. Anything
else escaping it (an ``lzma.LZMAError`` a plugin forgot to translate, a bug)
would reach the user as a traceback; :func:`guarded_reader` turns it into a
:class:`~odeion_archive.errors.CorruptArchiveError` that names the format and
the module that provides it, with the original exception as its cause.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import IO

from odeion_archive._names import ADVICE
from odeion_archive.errors import ArchiveError, CorruptArchiveError
from odeion_archive.interfaces import ArchiveFormat, ArchiveReader, Entry, MemberSource, ReadLimits

__all__ = ["guarded_reader"]


class _Guard:
    def __init__(self, fmt: ArchiveFormat) -> None:
        self.name = fmt.name
        self.module = type(fmt).__module__

    @contextlib.contextmanager
    def __call__(self, what: str) -> Iterator[None]:
        try:
            yield
        except ArchiveError:
            raise
        except Exception as exc:
            raise CorruptArchiveError(
                f"the reader of the {self.name!r} format (from {self.module}) failed in {what} "
                f"with {type(exc).__name__}: {exc}; the archive is damaged or the plugin has a "
                f"bug: {ADVICE}, or report it to the plugin's authors"
            ) from exc


class _GuardedSource:
    def __init__(self, source: MemberSource, guard: _Guard) -> None:
        self._source = source
        self._guard = guard
        self.entry = source.entry

    def chunks(self) -> Iterator[bytes]:
        with self._guard("chunks()"):
            chunks = iter(self._source.chunks())
        while True:
            with self._guard("chunks()"):
                chunk = next(chunks, None)
            if chunk is None:
                return
            yield chunk


class _GuardedReader:
    def __init__(self, reader: ArchiveReader, guard: _Guard) -> None:
        self._reader = reader
        self._guard = guard

    def read_member(self, path: str, max_size: int) -> bytes:
        with self._guard("read_member()"):
            return self._reader.read_member(path, max_size)

    def entries(self) -> list[Entry]:
        with self._guard("entries()"):
            return self._reader.entries()

    def walk(self) -> Iterator[MemberSource]:
        with self._guard("walk()"):
            sources = iter(self._reader.walk())
        while True:
            with self._guard("walk()"):
                source = next(sources, None)
            if source is None:
                return
            yield _GuardedSource(source, self._guard)

    def container_problems(self) -> list[str]:
        with self._guard("container_problems()"):
            return self._reader.container_problems()

    def close(self) -> None:
        with self._guard("close()"):
            self._reader.close()


def guarded_reader(fmt: ArchiveFormat, file: IO[bytes], limits: ReadLimits) -> ArchiveReader:
    """``fmt``'s reader of ``file``, every call of which raises only archive errors."""
    guard = _Guard(fmt)
    with guard("open_reader()"):
        reader = fmt.open_reader(file, limits)
    return _GuardedReader(reader, guard)
