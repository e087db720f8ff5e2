"""What the users_auth members hold: their paths, tables and row specifications."""

from __future__ import annotations

from odeion_archive.components._jsonrows import (
    BOOL,
    COUNT,
    ID,
    OBJECT,
    OPT_POSITIVE,
    OPT_TEXT,
    ROLE,
    TEXT,
    RowSpec,
)

__all__ = ["COMPONENT", "INVITES_MEMBER", "RENAME_KEYS", "TABLES", "TOKENS_MEMBER", "USERS_MEMBER"]


COMPONENT = "users_auth"


USERS_MEMBER = "users_auth/users.jsonl"


INVITES_MEMBER = "users_auth/invite_codes.jsonl"


TOKENS_MEMBER = "users_auth/api_tokens.jsonl"


#: The tables whose counts this component predicts, and the keys of its renames.
TABLES = ("users", "invite_codes", "api_tokens")


RENAME_KEYS = ("users", "users.email", "invite_codes")


#: Candidates tried per row before the rename strategy gives up.
_MAX_CANDIDATES = 10_000


_USERS = RowSpec(
    required={
        "id": ID,
        "username": TEXT,
        "email": OPT_TEXT,
        "display_name": OPT_TEXT,
        "password_hash": TEXT,
        "role": ROLE,
        "disabled": BOOL,
        "preferences": OBJECT,
        "created_at": TEXT,
        "last_login_at": OPT_TEXT,
    },
    optional={"locale": TEXT},
)


_INVITES = RowSpec(
    required={
        "code": TEXT,
        "created_by": OPT_TEXT,
        "role": ROLE,
        "max_uses": OPT_POSITIVE,
        "uses": COUNT,
        "expires_at": OPT_TEXT,
        "created_at": TEXT,
    }
)


_TOKENS = RowSpec(
    required={
        "username": TEXT,
        "name": TEXT,
        "token_hash": TEXT,
        "created_at": TEXT,
        "last_used_at": OPT_TEXT,
    }
)


_TEMP = (
    "_oa_users_raw",
    "_oa_users",
    "_oa_codes_raw",
    "_oa_codes",
    "_oa_tokens_raw",
    "_oa_tokens",
    "_oa_decided",
)
