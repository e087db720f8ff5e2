"""Text that is safe to show on a terminal, whatever an archive or a database put in it.

Control characters (such as ``ESC``, which starts terminal escape sequences),
bidirectional overrides and other invisible format characters are replaced by
escapes such as ``\\x1b`` and ``\\u202e``. The command line passes every
human-readable line through :func:`printable`; ``--json`` output needs no such
treatment, since JSON escapes them itself.
"""

from __future__ import annotations

import unicodedata

__all__ = ["printable"]

# Cc: controls (ESC, newline, DEL...); Cf: format characters (bidirectional
# overrides and isolates, zero-width characters); Cs: lone surrogates; Zl, Zp:
# line and paragraph separators.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def _escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str) -> str:
    """``text`` with every control, bidirectional and invisible format character escaped."""
    if text.isprintable():  # the common case: nothing to escape
        return text
    return "".join(
        _escape(char) if unicodedata.category(char) in _UNSAFE_CATEGORIES else char for char in text
    )
