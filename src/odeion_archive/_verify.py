"""Reading an archive through: every member against its size and sha256 in the manifest."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from odeion_archive._digest import BACKGROUND_BYTES, Sha256
from odeion_archive._manifest import HEAD_MEMBER, MANIFEST_MEMBERS, MemberEntry
from odeion_archive.errors import ArchiveInvalidError, CorruptArchiveError
from odeion_archive.events import CancelToken, ProgressCallback, ProgressEvent
from odeion_archive.interfaces import Entry, MemberSource
from odeion_archive.results import Problem

__all__ = ["DAMAGED", "MemberCheck", "diverged"]

DAMAGED = "the archive is damaged or was tampered with, use another archive"


class MemberCheck:
    """One walk through an archive that checks each member it meets, reporting progress."""

    def __init__(
        self,
        listed: Mapping[str, MemberEntry],
        progress: ProgressCallback,
        cancel: CancelToken | None,
    ) -> None:
        self.problems: list[Problem] = []
        self._listed = listed
        self._progress = progress
        self._cancel = cancel
        self._total = sum(m.size for m in listed.values())
        self._done = 0
        self._seen: set[str] = set()

    def run(self, walk: Iterable[MemberSource], listing: list[Entry]) -> list[Problem]:
        """Walk the archive (which must meet ``listing`` in order); the problems found."""
        self._tick(HEAD_MEMBER)
        current: str | None = None
        try:
            for position, source in enumerate(walk):
                entry = source.entry
                current = entry.name
                if position >= len(listing) or listing[position] != entry:
                    raise diverged(entry)
                member = self._listed.get(entry.name)
                if entry.name in self._seen or member is None or entry.kind != "file":
                    continue  # reported with the listing
                self._seen.add(entry.name)
                problem = _member_problem(member, self._counted(entry.name, source.chunks()))
                if problem is not None:
                    self._report(entry.name, problem)
            current = None
        except ArchiveInvalidError as exc:
            self.problems.append(Problem(current, str(exc)))
        for name in self._listed:
            if name not in self._seen:
                self._report(
                    name,
                    f"member {name!r} was not found while reading the archive through; {DAMAGED}",
                )
        self._progress(
            ProgressEvent(operation="verify", phase="done", done=self._done, total=self._total)
        )
        return self.problems

    def _report(self, member: str, message: str) -> None:
        if not any(p.member == member for p in self.problems):
            self.problems.append(Problem(member, message))

    def _counted(self, member: str, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            yield chunk
            self._done += len(chunk)
            self._tick(member)

    def _tick(self, member: str) -> None:
        if self._cancel is not None:
            self._cancel.raise_if_cancelled()
        component = None if member in MANIFEST_MEMBERS else member.split("/", 1)[0]
        self._progress(
            ProgressEvent(
                operation="verify",
                phase="verify",
                component=component,
                done=self._done,
                total=self._total,
            )
        )


def _member_problem(member: MemberEntry, chunks: Iterator[bytes]) -> str | None:
    """What is wrong with a member's bytes against its manifest entry, or ``None``."""
    size = 0
    with Sha256(background=member.size >= BACKGROUND_BYTES) as digest:
        try:
            for chunk in chunks:
                size += len(chunk)
                if size > member.size:
                    break
                digest.update(chunk)
        except ArchiveInvalidError as exc:
            return str(exc)
        matches = digest.hexdigest() == member.sha256
    if size != member.size:
        return (
            f"member {member.path!r} holds {'more than ' if size > member.size else ''}{size} "
            f"bytes, the manifest lists {member.size}; {DAMAGED}"
        )
    if not matches:
        return f"member {member.path!r} does not match the sha256 the manifest lists; {DAMAGED}"
    return None


def diverged(entry: Entry) -> CorruptArchiveError:
    """The error of a walk that meets another entry than the listing announced."""
    return CorruptArchiveError(
        f"the archive's stream holds {entry.name!r} where its directory or index says "
        f"otherwise; {DAMAGED}"
    )
