"""The :class:`~odeion_archive.Failure` values the failure hook receives.

A backup that raises anything but :class:`~odeion_archive.errors.CancelledError`
failed (a cancellation is the user's choice, not a failure to report); a
verification of an archive in the store failed when it found damage, or the
archive was too damaged to open.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from odeion_archive.errors import CancelledError
from odeion_archive.results import Failure, Problem

__all__ = [
    "backup_failure",
    "copy_failure",
    "in_store",
    "reporting_backup",
    "verification_failure",
]

#: How many of a verification's problems the failure names.
_PROBLEMS_SHOWN = 5


def _words(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def backup_failure(exc: BaseException, components: tuple[str, ...] | None) -> Failure:
    """The failure of a backup that raised ``exc``."""
    what = "the backup" if components is None else f"the backup of {', '.join(components)}"
    return Failure(
        operation="backup",
        reason=f"{what} failed ({type(exc).__name__}): {_words(exc)}",
        at=dt.datetime.now(dt.UTC),
    )


@contextmanager
def reporting_backup(
    notify: Callable[[Failure], None], components: tuple[str, ...] | None
) -> Iterator[None]:
    """Around a backup: ``notify`` its failure once, and let the exception go on."""
    try:
        yield
    except CancelledError:
        raise
    except Exception as exc:
        notify(backup_failure(exc, components))
        raise


def _found(problems: tuple[Problem, ...], error: BaseException | None) -> str:
    if error is not None:
        return f"the archive cannot be read: {_words(error)}"
    shown = "; ".join(f"{p.member or 'container'}: {p.message}" for p in problems[:_PROBLEMS_SHOWN])
    more = len(problems) - _PROBLEMS_SHOWN
    return f"{len(problems)} problems: {shown}" + (f" (and {more} more)" if more > 0 else "")


def verification_failure(
    name: str, problems: tuple[Problem, ...] = (), error: BaseException | None = None
) -> Failure:
    """The failure of the verification of the store's archive ``name``."""
    found = _found(problems, error)
    return Failure(
        operation="verification",
        reason=f"the archive {name} is damaged, {found}; restore from another archive",
        at=dt.datetime.now(dt.UTC),
        archive=name,
    )


def in_store(path: Path, store_dir: Path) -> bool:
    """Whether ``path`` is an archive of the store (not a file elsewhere)."""
    try:
        return path.resolve().parent == store_dir.resolve() and not path.name.startswith(".")
    except OSError:
        return False


def copy_failure(
    target: str, name: str | None, problems: tuple[Problem, ...] = (), error: str | None = None
) -> Failure:
    """The failure of the verification of a copy on a storage target (or of the whole target).

    ``name`` is ``None`` when the target itself could not be listed (``error``).
    """
    if name is None:
        reason = (
            f"the storage target {target} could not be listed, so its copies went unverified: "
            f"{error}; check that it is reachable ('odeion-archive targets')"
        )
    else:
        reason = (
            f"the copy of {name} on the storage target {target} is damaged, "
            f"{_found(problems, None)}; copy the archive there again ('copy {name} --to {target}')"
        )
    return Failure(
        operation="verification",
        reason=reason,
        at=dt.datetime.now(dt.UTC),
        archive=None if name is None else f"{target}:{name}",
    )
