"""Contract checks for format and component plugins, for use in a plugin's own tests.

:func:`check_format` exercises a format through the public reading and
writing API and raises :class:`AssertionError` with a clear message on the
first broken promise: round trip, determinism, recognition from the bytes,
writing without seeking, detection of flipped bits and truncation, refusal
of unsafe names, unlisted, missing and oversized members, and member limits::

    from odeion_archive.testing import check_format

    def test_my_format(tmp_path):
        check_format(MyFormat(), tmp_path)

:func:`check_component` does the same for a component against real
databases: it backs the component up, plans and restores it, and checks that
planning changes nothing, that the members stay under the component's name
and that restoring twice gives the state of restoring once::

    from odeion_archive.testing import check_component

    def test_my_component(tmp_path, source_url, scratch_url):
        check_component(MyComponent(), source_url, scratch_url, tmp_path)

:func:`check_target` checks an opened storage target (a plugin's
:class:`~odeion_archive.targets.TargetKind` opens it): round trips, ranged
reads, replacement, and that an interrupted or cancelled write leaves no object
listed::

    from odeion_archive.testing import check_target

    def test_my_target(tmp_path):
        check_target(MyTargetKind().open(TargetSpec("t", "mine", {...})))

:func:`peak_rss` gives the peak memory of the process, for a memory test run
in a child process. :func:`write_archive` and :func:`format_registry` help to
build archives in tests; :class:`ArchiveBuilder`, :class:`ArchiveFile` and :func:`verify_archive`
(the core's own writer, safe reader and check) and the manifest's values
(:class:`Manifest`, :class:`ComponentEntry`, :class:`MemberEntry`) are here for
a plugin's tests.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import re
import resource
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import attrs

from odeion_archive._archive import ArchiveBuilder, ArchiveFile, verify_archive
from odeion_archive._archiver import Archiver
from odeion_archive._blocks import CheckedBlocks
from odeion_archive._manifest import (
    HEAD_MEMBER,
    TAIL_MEMBER,
    ComponentEntry,
    Manifest,
    MemberEntry,
)
from odeion_archive._registry import BUILTIN_PLUGINS, Registry
from odeion_archive._version import __version__
from odeion_archive.errors import ArchiveError, ArchiveInvalidError
from odeion_archive.formats import _contract
from odeion_archive.hookspecs import hookimpl
from odeion_archive.interfaces import ArchiveFormat, Component, ReadLimits
from odeion_archive.sample import table_digests
from odeion_archive.targets._contract import check_target

__all__ = [
    "FIXED_TIME",
    "ArchiveBuilder",
    "ArchiveFile",
    "ComponentEntry",
    "Manifest",
    "MemberEntry",
    "check_component",
    "check_format",
    "check_target",
    "format_registry",
    "head_manifest",
    "peak_rss",
    "verify_archive",
    "write_archive",
]

_COMPONENT_NAME = re.compile(r"[a-z][a-z0-9_.\-]{0,63}")


def peak_rss() -> int:
    """Peak resident memory of this process's own address space, in bytes.

    For memory checks run in a child process: ``ru_maxrss`` would do, but Linux
    carries it over from the parent across fork and exec, so a child of a
    large test process would report the parent's size.
    """
    try:
        with Path("/proc/self/status").open() as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


#: The creation time of archives built by these helpers.
FIXED_TIME = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)

Members = Mapping[str, Mapping[str, bytes]]


class _FormatPlugin:
    """A plugin that provides the given formats."""

    def __init__(self, formats: tuple[ArchiveFormat, ...]) -> None:
        self._formats = formats

    @hookimpl
    def odeion_archive_formats(self) -> list[ArchiveFormat]:
        return list(self._formats)


def format_registry(*formats: ArchiveFormat) -> Registry:
    """A registry that knows exactly ``formats`` (and no component)."""
    registry = Registry.empty()
    registry.register(_FormatPlugin(formats), name="formats-under-test")
    return registry


def head_manifest(
    fmt: ArchiveFormat, components: tuple[str, ...], *, created_at: dt.datetime = FIXED_TIME
) -> Manifest:
    """A head manifest (no members or facts yet) for an archive of ``fmt``."""
    return Manifest(
        created_at=created_at,
        library_version=__version__,
        server_version="10.10.0",
        schema_version=1,
        format=fmt.name,
        components=tuple(ComponentEntry(name, 1) for name in components),
    )


def write_archive(
    fmt: ArchiveFormat,
    stream: IO[bytes],
    members: Members,
    *,
    facts: Mapping[str, Mapping[str, Any]] | None = None,
    created_at: dt.datetime = FIXED_TIME,
    chunk_size: int = 64 * 1024,
) -> Manifest:
    """Write ``{component: {name: data}}`` as an archive to ``stream``; return its manifest."""
    builder = ArchiveBuilder(
        fmt, stream, head=head_manifest(fmt, tuple(members), created_at=created_at)
    )
    for component, files in members.items():
        for name, data in files.items():
            chunks = (data[i : i + chunk_size] for i in range(0, len(data), chunk_size))
            builder.add_member(component, name, chunks)
        builder.set_facts(component, (facts or {}).get(component, {"files": len(files)}))
    return builder.finish()


def _sample_members() -> dict[str, dict[str, bytes]]:
    noise = b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(12_000))
    return {
        "users_auth": {
            "users.jsonl": b'{"id":1,"name":"ana"}\n' * 50,
            "empty.jsonl": b"",
        },
        "full_db": {
            "database.dump": noise,
            "deep/" + "n" * 120 + ".bin": b"a long name, in a subdirectory",
        },
    }


def _write(fmt: ArchiveFormat, path: Path, members: Members) -> Manifest:
    with path.open("wb") as stream:
        return write_archive(fmt, stream, members)


def _detected(path: Path, registry: Registry) -> bool:
    return not verify_archive(path, registry).ok


def _positions(size: int, count: int) -> list[int]:
    step = max(1, size // count)
    return sorted({*range(min(size, 40)), *range(0, size, step), *range(max(0, size - 120), size)})


def check_format(fmt: ArchiveFormat, workdir: Path) -> None:
    """Check that ``fmt`` keeps the contract of an archive format; raise AssertionError if not.

    ``workdir`` is an empty directory for the archives the check writes. The
    checks: round trip, determinism (to a file and to a pipe), streaming a
    member of unknown size to a file without staging it, recognition by
    ``sniff``, a flipped bit and a truncation noticed by ``verify`` and by
    ``container_problems()`` itself, refusal of unsafe names and of members
    that differ from their announced size, the container prefix a writer
    returns (if it returns one) equal to the file's bytes through the member,
    ``ReadLimits`` and ``max_size`` honoured by the reader, each entry's true kind reported by ``walk()`` (for
    zip and compressed tar containers, built here by hand), and refusal of
    unlisted, missing and oversized members.
    """
    registry = format_registry(fmt)
    members = _sample_members()
    path = workdir / f"contract{fmt.suffix}"
    manifest = _write(fmt, path, members)
    _check_round_trip(fmt, path, registry, manifest, members)
    _check_prefixes(fmt, path, registry, manifest, members)
    _check_determinism(fmt, path, workdir, members)
    _contract.check_streaming(fmt, workdir)
    _check_damage(fmt, workdir, registry)
    _contract.check_sizes(fmt)
    _contract.check_limits(fmt, path)
    _contract.check_kinds(fmt, path, workdir)
    _check_refusals(fmt, workdir, registry)


_require = _contract.require


def _check_round_trip(
    fmt: ArchiveFormat, path: Path, registry: Registry, manifest: Manifest, members: Members
) -> None:
    head = path.read_bytes()[:4096]
    _require(fmt.sniff(head), f"{fmt.name}: sniff() does not recognise an archive it wrote")
    for other in (b"", b"\0" * 512, b"plain text, not an archive\n" * 40):
        _require(not fmt.sniff(other), f"{fmt.name}: sniff() claims {other[:16]!r}...")
    with ArchiveFile.open(path, registry) as archive:
        _require(archive.format is fmt, f"{fmt.name}: the archive was not recognised as {fmt.name}")
        _require(archive.manifest == manifest, f"{fmt.name}: the manifest read back differs")
        seen = {}
        for entry, chunks in archive.walk():
            seen[entry.path] = b"".join(chunks)
        expected = {f"{c}/{n}": d for c, files in members.items() for n, d in files.items()}
        _require(seen == expected, f"{fmt.name}: walk() gives other members or bytes than written")
        for member_path, data in expected.items():
            with archive.open_member(member_path) as stream:
                _require(stream.read() == data, f"{fmt.name}: open_member({member_path!r}) differs")
        report = archive.verify()
        _require(report.ok, f"{fmt.name}: an intact archive fails verify: {report.problems}")


def _check_prefixes(
    fmt: ArchiveFormat, path: Path, registry: Registry, written: Manifest, members: Members
) -> None:
    """Each prefix the writer returned: the file's bytes through its member, in member order.

    The member read from those bytes as checked (a restore's
    ``open_checked``) is the member written.
    """
    data = path.read_bytes()
    expected = {f"{c}/{n}": d for c, files in members.items() for n, d in files.items()}
    with ArchiveFile.open(path, registry) as archive:
        last = 0
        for member in written.members:
            prefix = member.prefix
            if prefix is None:
                continue
            _require(
                last < prefix.end <= len(data),
                f"{fmt.name}: the prefix of {member.path!r} ends at {prefix.end}, not past the "
                f"previous member's ({last}) and within the file ({len(data)} bytes)",
            )
            checked = CheckedBlocks.take(
                lambda offset, size: data[offset : offset + size], prefix.end, prefix.sha256
            )
            _require(
                checked is not None,
                f"{fmt.name}: the prefix of {member.path!r} is not the sha256 of the file's "
                f"first {prefix.end} bytes",
            )
            # What open_checked reads for an archive this server sealed.
            with archive._open_member(member.path, checked, hashed=False) as stream:  # noqa: SLF001
                read = stream.read()
            _require(
                read == expected[member.path],
                f"{fmt.name}: {member.path!r} read from the checked bytes through it differs "
                "from what was written",
            )
            last = prefix.end


def _check_determinism(fmt: ArchiveFormat, path: Path, workdir: Path, members: Members) -> None:
    again = workdir / f"again{fmt.suffix}"
    _write(fmt, again, members)
    _require(
        again.read_bytes() == path.read_bytes(),
        f"{fmt.name}: the same members in the same order gave different bytes",
    )
    pipe = _contract.NoSeek()
    write_archive(fmt, pipe, members)  # type: ignore[arg-type]
    _require(
        bytes(pipe.data) == path.read_bytes(),
        f"{fmt.name}: writing to a stream that cannot seek gave other bytes",
    )


def _check_damage(fmt: ArchiveFormat, workdir: Path, registry: Registry) -> None:
    small = workdir / f"small{fmt.suffix}"
    _write(fmt, small, {"users_auth": {"users.jsonl": b'{"id":1}\n' * 20}})
    original = small.read_bytes()
    damaged = workdir / f"damaged{fmt.suffix}"
    for position in _positions(len(original), 48):
        for bit in (0, 7):
            data = bytearray(original)
            data[position] ^= 1 << bit
            damaged.write_bytes(bytes(data))
            where = f"a flipped bit {bit} at byte {position} of {len(original)}"
            _require(_detected(damaged, registry), f"{fmt.name}: verify misses {where}")
            _require(
                _contract.container_detects(fmt, damaged),
                f"{fmt.name}: container_problems() misses {where}; it must check the "
                "container end to end (a seal, a checksum over every byte)",
            )
    for length in _positions(len(original), 48):
        damaged.write_bytes(original[:length])
        where = f"truncation to {length} of {len(original)} bytes"
        _require(_detected(damaged, registry), f"{fmt.name}: verify misses {where}")
        _require(
            _contract.container_detects(fmt, damaged),
            f"{fmt.name}: container_problems() misses {where}",
        )


def _raw_archive(
    fmt: ArchiveFormat, path: Path, manifest: Manifest, members: Iterator[tuple[str, bytes]]
) -> None:
    """Write manifest head, ``members`` and tail with the bare format writer."""
    with path.open("wb") as stream:
        writer = fmt.open_writer(stream)
        writer.add(HEAD_MEMBER, [manifest.head_json()])
        for name, data in members:
            writer.add(name, [data])
        writer.add(TAIL_MEMBER, [manifest.tail_json()])
        writer.close()


def _expect_refusal(
    path: Path, registry: Registry, what: str, limits: ReadLimits | None = None
) -> None:
    handed_out = 0
    try:
        with ArchiveFile.open(path, registry, limits=limits) as archive:
            for _entry, chunks in archive.walk():
                for chunk in chunks:
                    handed_out += len(chunk)
    except ArchiveInvalidError:
        return
    raise AssertionError(
        f"an archive with {what} was read without refusal ({handed_out} bytes handed out)"
    )


def _check_refusals(fmt: ArchiveFormat, workdir: Path, registry: Registry) -> None:
    for name in ("/etc/passwd", "a/../../x", "a\\b", "a\0b", "a\nb", "a//b", "./a"):
        pipe = _contract.NoSeek()
        writer = fmt.open_writer(pipe)  # type: ignore[arg-type]
        try:
            writer.add(name, [b"x"])
        except ArchiveError:
            continue
        raise AssertionError(f"{fmt.name}: the writer accepts the unsafe name {name!r}")
    data = b"listed member data\n" * 10
    member = MemberEntry("users_auth/a.jsonl", len(data), hashlib.sha256(data).hexdigest())
    listed = attrs.evolve(
        head_manifest(fmt, ("users_auth",)),
        components=(ComponentEntry("users_auth", 1, (member,)),),
    )
    path = workdir / f"refuse{fmt.suffix}"
    _raw_archive(
        fmt, path, listed, iter([("users_auth/a.jsonl", data), ("users_auth/unlisted.jsonl", b"x")])
    )
    _expect_refusal(path, registry, "a member the manifest does not list")
    _raw_archive(fmt, path, listed, iter([]))
    _expect_refusal(path, registry, "a listed member missing")
    _raw_archive(fmt, path, listed, iter([("users_auth/a.jsonl", data + b"more")]))
    _expect_refusal(path, registry, "a member larger than the manifest says")
    _raw_archive(fmt, path, listed, iter([("users_auth/a.jsonl", data)]))
    with ArchiveFile.open(path, registry) as archive:
        _require(
            [e.path for e, chunks in archive.walk() if b"".join(chunks)] == ["users_auth/a.jsonl"],
            f"{fmt.name}: a hand-written valid archive does not read back",
        )
    _expect_refusal(
        path, registry, "more members than ReadLimits.max_members", ReadLimits(max_members=2)
    )


# -- components --------------------------------------------------------------------


class _ComponentPlugin:
    """A plugin that provides one component."""

    def __init__(self, component: Component) -> None:
        self._component = component

    @hookimpl
    def odeion_archive_components(self) -> list[Component]:
        return [self._component]


def _component_registry(component: Component) -> Registry:
    registry = Registry.default(entry_points=False)
    if registry.components().get(component.name) is not component:
        if component.name in registry.components():
            registry = Registry.empty()
            for module in BUILTIN_PLUGINS:
                if not module.startswith("odeion_archive.components."):
                    registry.register(importlib.import_module(module), name=module)
        registry.register(_ComponentPlugin(component), name=f"checked-{component.name}")
    return registry


def check_component(
    component: Component, source: str, target: str, workdir: Path, *, fmt: str = "tar.zst"
) -> None:
    """Check that ``component`` keeps the promises every component makes.

    ``source`` is the connection string of a database with data for the
    component; ``target`` one that the check may change (restores go there).
    Raises :class:`AssertionError` naming the first broken promise.
    """
    name = component.name
    _require(isinstance(component, Component), f"{component!r} lacks the Component interface")
    _require(_COMPONENT_NAME.fullmatch(name), f"component name {name!r} is not a valid name")
    _require(
        isinstance(component.payload_version, int),
        f"component {name!r}: payload_version must be a whole number",
    )
    _require(component.payload_version >= 1, f"component {name!r}: payload_version starts at 1")
    _require(
        component.restore_scope in ("transaction", "database"),
        f"component {name!r}: restore_scope must be 'transaction' or 'database'",
    )
    registry = _component_registry(component)
    backup = Archiver(workdir / "check-backup", database_url=source, registry=registry)
    info = backup.create(components=[name], format=fmt).archive
    entry = info.manifest.component(name)
    _require(
        entry.payload_version == component.payload_version,
        f"component {name!r}: the manifest records payload version {entry.payload_version}",
    )
    _require(
        all(m.path.startswith(f"{name}/") for m in entry.members),
        f"component {name!r} wrote members outside {name}/: {[m.path for m in entry.members]}",
    )
    _require(backup.verify(info.path).ok, f"component {name!r}: its archive does not verify")

    # The same data directory: the archive is this server's own (sealed with its key).
    restorer = Archiver(workdir / "check-backup", database_url=target, registry=registry)
    before = table_digests(target)
    plan = restorer.plan(info.path, name, "skip")
    _require(table_digests(target) == before, f"component {name!r}: planning changed the database")
    _require(plan.can_restore, f"component {name!r} cannot be restored: {list(plan.blockers)}")
    restorer.restore(info.path, name, "skip")
    once = table_digests(target)
    restorer.restore(info.path, name, "skip")
    _require(
        table_digests(target) == once,
        f"component {name!r}: restoring twice left another state than restoring once",
    )
