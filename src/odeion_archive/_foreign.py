"""What replaying the dump of an archive this server did not make asks of the administrator.

The planner's ``foreign_dump`` issue, shared by the restore of a database dump
and by restore drills (which refuse such a dump before making any scratch
database).
"""

from __future__ import annotations

from odeion_archive.interfaces import Issue

__all__ = ["foreign_dump_issue"]

_ORIGIN = (
    "this archive was not made by this server: it carries no seal of this server's "
    "keys (it came from another server or an upload, or was made before archives "
    "were sealed)"
)


def foreign_dump_issue(*, trusted: bool) -> Issue:
    """The ``foreign_dump`` issue: a warning where the host trusts the dump, else a blocker."""
    if trusted:
        return Issue(
            "foreign_dump",
            f"{_ORIGIN}; its database dump is restored as you allowed with "
            "--trust-foreign-dump: its SQL runs as the database owner",
        )
    return Issue(
        "foreign_dump",
        f"{_ORIGIN}. A full_db restore replays the archive's SQL as the owner "
        "of the database, so a hostile dump could change or read anything that "
        "role can. Restore it only if you trust where the archive came from: "
        "then pass --trust-foreign-dump (trust_foreign_dump=True); otherwise "
        "restore its users and settings with the everything_json mode. If it is "
        "this server's archive from an earlier machine, import that machine's key "
        "instead ('odeion-archive key import')",
    )
