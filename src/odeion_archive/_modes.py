"""Member modes: the permissions and owner a member of an odeion archive may carry.

The library never uses a member's mode, but an administrator who unpacks an
archive with ``tar -x`` or ``unzip`` (as root, say) gets what the archive
says. The writers record every member as a regular file with mode 0644, owner
and group 0 and no owner names; a reader accepts only *plain* members:

* permission bits exactly 0644, 0640 or 0600: readable by the owner, never
  executable, never writable by group or others;
* no setuid, setgid or sticky bit, and no file-type bits other than "regular";
* in tar, owner and group 0 (numeric), with the names empty or ``root``, in
  the ustar header and in any pax record (GNU tar run as root looks a user
  up by name first, so a name alone would hand the file to that account);
* in tar, no pax records but names, sizes, times, owners and comments: no
  ACLs or extended attributes (file capabilities), which tar run as root may
  restore.
"""

from __future__ import annotations

import stat

__all__ = ["PLAIN_OWNER_NAMES", "PLAIN_PERMISSIONS", "mode_problem", "owner_problem"]

#: The permission bits a member may have.
PLAIN_PERMISSIONS = frozenset({0o600, 0o640, 0o644})
#: The owner and group names a tar member may carry.
PLAIN_OWNER_NAMES = frozenset({"", "root"})

_SPECIAL = {stat.S_ISUID: "setuid", stat.S_ISGID: "setgid", stat.S_ISVTX: "sticky"}


def mode_problem(mode: int) -> str | None:
    """What is wrong with ``mode`` for a member (``None`` if it is plain).

    ``mode`` may carry the regular-file type bits (zip records them) or none (tar).
    """
    kind = stat.S_IFMT(mode)
    if kind not in {0, stat.S_IFREG}:
        return f"has mode {mode:#o}, whose type bits are not those of a regular file"
    special = [label for bit, label in _SPECIAL.items() if mode & bit]
    if special:
        return f"has mode {stat.S_IMODE(mode):#o}, with the {' and '.join(special)} bit"
    if stat.S_IMODE(mode) not in PLAIN_PERMISSIONS:
        return f"has mode {stat.S_IMODE(mode):#o}, not one of 0o644, 0o640 or 0o600"
    return None


def owner_problem(uid: int, gid: int, uname: str, gname: str) -> str | None:
    """What is wrong with a tar member's owner (``None`` if it is plain)."""
    if uid != 0 or gid != 0:
        return f"belongs to owner {uid} and group {gid}, not 0 and 0"
    if uname not in PLAIN_OWNER_NAMES or gname not in PLAIN_OWNER_NAMES:
        return f"names its owner {uname!r} and group {gname!r}, not '' or 'root'"
    return None
