"""The rows of the sample data as SQL: vocabularies, and one ``INSERT ... SELECT`` per table.

Every "random" choice is a hash of the row number and the seed (:func:`_h`), so
the same seed gives the same rows on any supported server.
"""

from __future__ import annotations

from typing import Any

# Every generated timestamp is relative to this fixed instant, never to now().
_EPOCH = "timestamptz '2025-06-01 12:00:00+00'"


def _h(expr: str, stream: int) -> str:
    """SQL for a deterministic pseudo-random integer in [0, 2**31) from ``expr`` and the seed.

    ``stream`` separates independent choices made for the same row.
    """
    return (
        f"(hashint8(({expr})::bigint * 1000003 + {stream * 7919} + %(salt)s::bigint) & 2147483647)"
    )


def _pick(values: list[str], expr: str, stream: int) -> str:
    """SQL choosing one of ``values`` (SQL literals) for the row ``expr``."""
    return f"(ARRAY[{', '.join(values)}])[1 + mod({_h(expr, stream)}, {len(values)})]"


def _lit(values: list[str]) -> list[str]:
    return [_quote(value) for value in values]


def _quote(value: str) -> str:
    """``value`` as a SQL string literal (for the fixed vocabularies of this module)."""
    return "'" + value.replace("'", "''") + "'"


_NAMES = _lit(
    [
        "alice",
        "bob",
        "carol",
        "dave",
        "erin",
        "frank",
        "grace",
        "heidi",
        "ivan",
        "judy",
        "mallory",
        "niaj",
        "olivia",
        "peggy",
        "rupert",
        "sybil",
        "trent",
        "victor",
        "walter",
        "zoe",
    ]
)
_DISPLAY_NAMES = _lit(
    [
        "Alice Liddell",
        "Bob Ødegaard",
        "Zoë Saldaña",
        "José Álvarez",
        "Åsa Lindström",
        "李雷",
        "Мария Иванова",
        "Françoise Hardy",
        "Nguyễn Văn An",
        "Σωκράτης",
        "محمد الأحمد",
        "🎬 Movie Night",
        "Ólafur Arnalds",
        "Renée O'Connor",
        "Łukasz Żółć",
        "山田 花子",
    ]
)
_LOCALES = _lit(["en", "en", "en", "de", "fr", "ja", "pt-BR", "sv", "zh-Hans"])
_THEMES = _lit(["dark", "light", "system"])
_TOKEN_NAMES = ["cli", "mobile", "home-assistant", "backup-script", "living-room-tv"]
_WORDS = _lit(
    [
        "Silent",
        "Crimson",
        "Last",
        "Northern",
        "Hidden",
        "Electric",
        "Broken",
        "Golden",
        "Amélie",
        "Ça",
        "Über",
        "千と千尋",
        "Дорога",
        "Midnight",
        "Paper",
        "Wild",
    ]
)
_NOUNS = _lit(
    [
        "River",
        "Empire",
        "Garden",
        "Signal",
        "Harbor",
        "Symphony",
        "Machine",
        "Summer",
        "Frontier",
        "Lanterns",
        "Orchard",
        "Voyage",
        "Echoes",
        "Kingdom",
        "Mirror",
        "Tide",
    ]
)
_CAMERAS = _lit(["Pentax K-3", "iPhone 15", "Fujifilm X-T5"])
_GENRES = _lit(
    [
        "drama",
        "comedy",
        "documentary",
        "sci-fi",
        "jazz",
        "rock",
        "classical",
        "thriller",
        "animation",
        "family",
    ]
)

# Settings every server has (key, JSON value): numbers, strings, objects, arrays, booleans, null.
_SETTINGS: list[tuple[str, Any]] = [
    ("server.name", "Odeion"),
    ("server.port", 8096),
    ("server.public_url", "https://media.example.org"),
    ("auth.allow_signup", False),
    ("auth.password_min_length", 10),
    ("auth.session_days", 30),
    ("transcoding.enabled", True),
    ("transcoding.max_bitrate", 20_000_000),
    ("transcoding.hw_accel", None),
    ("library.scan_interval_minutes", 60),
    ("metadata.providers", ["tmdb", "musicbrainz", "openlibrary"]),
    ("metadata.language", "en"),
    ("ui.theme", "dark"),
    ("ui.featured", [{"title": "Staff picks", "limit": 12}, {"title": "Nouveautés", "limit": 8}]),
    ("remote_access", {"enabled": True, "upnp": False, "port": 32400, "relay": None}),
    ("smtp", {"host": "smtp.example.org", "port": 587, "tls": True, "from": "odeion@example.org"}),
    ("playback.default_quality", 0.85),
    ("playback.skip_intro", True),
    ("backup.retention", {"keep_daily": 7, "keep_weekly": 4}),
    ("ui.banner", ""),
]

_LIBRARY_KINDS = [
    ("Movies", "movies", "movies"),
    ("TV Shows", "shows", "tv"),
    ("Music", "music", "music"),
    ("Photos", "photos", "photos"),
    ("Audiobooks & Books", "books", "books"),
]


def _users_sql(version: int) -> str:
    h = "g"
    username = (
        f"CASE WHEN g = 1 THEN 'admin' ELSE "
        f"(CASE WHEN mod({_h(h, 1)}, 9) = 0 THEN initcap({_pick(_NAMES, h, 2)}) "
        f"ELSE {_pick(_NAMES, h, 2)} END) || '.' || g END"
    )
    role = (
        f"CASE WHEN g = 1 OR mod({_h(h, 3)}, 20) = 0 THEN 'admin' "
        f"WHEN g = 4 OR mod({_h(h, 3)}, 20) < 4 THEN 'guest' ELSE 'user' END"
    )
    created = f"{_EPOCH} - interval '1 second' * (86400 * 30 + mod({_h(h, 4)}, 86400 * 900))"
    columns = (
        "id, username, email, display_name, password_hash, role, disabled, preferences, "
        "created_at, last_login_at"
    )
    locale = ""
    if version >= 2:
        columns += ", locale"
        locale = f", {_pick(_LOCALES, h, 9)}"
    return f"""
        INSERT INTO users ({columns})
        SELECT g, u.username,
               CASE WHEN g = 3 OR g > 1 AND mod({_h(h, 5)}, 7) = 0 THEN NULL
                    WHEN mod({_h(h, 5)}, 7) = 1 THEN initcap(u.username) || '@Example.org'
                    ELSE lower(u.username) || '@example.org' END,
               CASE WHEN g = 6 OR mod({_h(h, 6)}, 8) = 0 THEN NULL
                    ELSE {_pick(_DISPLAY_NAMES, h, 6)} END,
               '$argon2id$v=19$m=65536,t=3,p=4$'
                 || rtrim(encode(substr(sha256(convert_to('salt:' || %(salt)s::text || ':' || g,
                                                          'UTF8')), 1, 16), 'base64'), '=')
                 || '$'
                 || rtrim(encode(sha256(convert_to('pw:' || %(salt)s::text || ':' || g, 'UTF8')),
                                 'base64'), '='),
               {role},
               g = 5 OR g > 1 AND mod({_h(h, 7)}, 25) = 0,
               CASE WHEN mod({_h(h, 8)}, 6) = 0 THEN '{{}}'::jsonb
                    ELSE jsonb_build_object(
                        'theme', {_pick(_THEMES, h, 8)},
                        'subtitles', mod({_h(h, 10)}, 2) = 0,
                        'volume', mod({_h(h, 11)}, 101),
                        'languages', CASE WHEN mod({_h(h, 12)}, 3) = 0
                                          THEN jsonb_build_array('en', 'fr')
                                          ELSE jsonb_build_array('en') END,
                        'home', jsonb_build_object('rows', 1 + mod({_h(h, 13)}, 5),
                                                   'continue_watching', true)) END,
               c.created_at,
               CASE WHEN g = 7 OR mod({_h(h, 14)}, 5) = 0 THEN NULL
                    ELSE c.created_at + interval '1 second' * (mod({_h(h, 15)}, 86400 * 30)) END
               {locale}
        FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS g
        CROSS JOIN LATERAL (SELECT {username} AS username) AS u
        CROSS JOIN LATERAL (SELECT {created} AS created_at) AS c
    """  # noqa: S608 - built from module constants only


def _invites_sql(version: int) -> str:
    h = "g"
    uses_column = "uses" if version >= 2 else "use_count"
    return f"""
        INSERT INTO invite_codes (code, created_by, role, max_uses, {uses_column},
                                  expires_at, created_at)
        SELECT 'INV-' || lpad(g::text, 6, '0') || '-'
                 || upper(substr(md5('invite:' || %(salt)s::text || ':' || g), 1, 8)),
               CASE WHEN g = 2 OR mod({_h(h, 21)}, 6) = 0 THEN NULL
                    ELSE 1 + mod({_h(h, 22)}, %(users)s::bigint) END,
               CASE WHEN mod({_h(h, 23)}, 10) = 0 THEN 'guest'
                    WHEN mod({_h(h, 23)}, 10) = 1 AND g > 1 THEN 'admin' ELSE 'user' END,
               m.max_uses,
               least(coalesce(m.max_uses, 50), mod({_h(h, 25)}, 6)),
               CASE WHEN g = 4 OR mod({_h(h, 26)}, 4) = 0 THEN NULL
                    ELSE {_EPOCH} + interval '1 day' * (mod({_h(h, 27)}, 120) - 30) END,
               {_EPOCH} - interval '1 second' * (mod({_h(h, 28)}, 86400 * 200))
        FROM generate_series(1, %(count)s::bigint) AS g
        CROSS JOIN LATERAL (
            SELECT CASE WHEN g = 3 OR mod({_h(h, 24)}, 4) = 0 THEN NULL
                        ELSE 1 + mod({_h(h, 29)}, 10) END AS max_uses
        ) AS m
    """  # noqa: S608 - built from module constants only


def _tokens_sql() -> str:
    h = "(u * 64 + t)"
    names = _lit(_TOKEN_NAMES)
    return f"""
        INSERT INTO api_tokens (id, user_id, name, token_hash, created_at, last_used_at)
        SELECT (u - 1) * %(per_user)s::bigint + t, u,
               CASE WHEN t <= {len(names)} THEN (ARRAY[{", ".join(names)}])[t]
                    ELSE 'token-' || t END,
               encode(sha256(convert_to('token:' || %(salt)s::text || ':' || u || ':' || t,
                                        'UTF8')), 'hex'),
               c.created_at,
               CASE WHEN mod({_h(h, 32)}, 3) = 0 THEN NULL
                    ELSE c.created_at + interval '1 second' * (mod({_h(h, 33)}, 86400 * 20)) END
        FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS u
        CROSS JOIN generate_series(1, %(per_user)s::bigint) AS t
        CROSS JOIN LATERAL (
            SELECT {_EPOCH} - interval '1 second' * (mod({_h(h, 31)}, 86400 * 300)) AS created_at
        ) AS c
        WHERE t = 1 AND mod({_h("u", 30)}, 3) <> 0
           OR t > 1 AND mod({_h(h, 34)}, 2) = 0
    """  # noqa: S608 - built from module constants only


def _sessions_sql() -> str:
    h = "g"
    return f"""
        INSERT INTO sessions (token_hash, user_id, expires_at)
        SELECT encode(sha256(convert_to('session:' || %(salt)s::text || ':' || g, 'UTF8')),
                      'hex'),
               1 + mod({_h(h, 41)}, %(users)s::bigint),
               {_EPOCH} + interval '1 second' * (mod({_h(h, 42)}, 86400 * 60) - 86400 * 10)
        FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS g
    """  # noqa: S608 - built from module constants only


def _settings_sql() -> str:
    h = "g"
    return f"""
        INSERT INTO system_settings (key, value, updated_at)
        SELECT s.key, s.value::jsonb,
               {_EPOCH} - interval '1 second' * (mod({_h("s.n", 51)}, 86400 * 100))
        FROM unnest(%(keys)s::text[], %(values)s::text[]) WITH ORDINALITY AS s(key, value, n)
        WHERE s.n <= %(count)s::bigint
        UNION ALL
        SELECT 'plugins.' || {_pick(_lit(["subsync", "trakt", "lyrics", "webhooks"]), h, 52)}
                 || '.option_' || g,
               CASE mod({_h(h, 53)}, 6)
                    WHEN 0 THEN to_jsonb(mod({_h(h, 54)}, 1000))
                    WHEN 1 THEN to_jsonb('value ' || g || ' ✓')
                    WHEN 2 THEN jsonb_build_object('enabled', mod(g, 2) = 0, 'level', g)
                    WHEN 3 THEN jsonb_build_array(g, 'x', NULL, 1.5)
                    WHEN 4 THEN to_jsonb(mod(g, 2) = 1)
                    ELSE 'null'::jsonb END,
               {_EPOCH} - interval '1 second' * (mod({_h(h, 55)}, 86400 * 100))
        FROM generate_series(%(first_extra)s::bigint, %(count)s::bigint) AS g
    """  # noqa: S608 - built from module constants only


def _libraries_sql() -> str:
    names = _lit([name for name, _, _ in _LIBRARY_KINDS])
    kinds = _lit([kind for _, kind, _ in _LIBRARY_KINDS])
    slugs = _lit([slug for _, _, slug in _LIBRARY_KINDS])
    n = len(_LIBRARY_KINDS)
    return f"""
        INSERT INTO libraries (id, name, kind, root_paths, created_at)
        SELECT g,
               (ARRAY[{", ".join(names)}])[k] || CASE WHEN g > {n} THEN ' ' || (g - 1) / {n} + 1
                                                      ELSE '' END,
               (ARRAY[{", ".join(kinds)}])[k],
               CASE WHEN mod(g, 3) = 0
                    THEN ARRAY[r.root, '/mnt/nas/' || (ARRAY[{", ".join(slugs)}])[k] || r.suffix]
                    ELSE ARRAY[r.root] END,
               {_EPOCH} - interval '1 day' * (400 - g)
        FROM generate_series(1, %(count)s::bigint) AS g
        CROSS JOIN LATERAL (SELECT 1 + mod(g - 1, {n}) AS k) AS i
        CROSS JOIN LATERAL (
            SELECT CASE WHEN g > {n} THEN '-' || ((g - 1) / {n} + 1) ELSE '' END AS suffix
        ) AS s
        CROSS JOIN LATERAL (
            SELECT '/media/' || (ARRAY[{", ".join(slugs)}])[i.k] || s.suffix AS root, s.suffix
        ) AS r
    """  # noqa: S608 - built from module constants only


def _media_sql() -> str:
    h = "g"
    title = f"{_pick(_WORDS, h, 61)} || ' ' || {_pick(_NOUNS, h, 62)}"
    year = f"(1950 + mod({_h(h, 63)}, 76))"
    genres = f"""jsonb_build_array({_pick(_GENRES, h, 64)})
                 || CASE WHEN mod({_h(h, 65)}, 2) = 0
                         THEN jsonb_build_array({_pick(_GENRES, h, 66)}) ELSE '[]' END"""
    return f"""
        INSERT INTO media_items (id, library_id, path, title, duration_ms, metadata, added_at)
        SELECT g, l.id,
               l.root_paths[1 + mod({_h(h, 67)}, cardinality(l.root_paths))] || '/'
                 || CASE l.kind
                      WHEN 'movies' THEN t.title || ' (' || t.year || ')/' || t.title || ' ['
                                         || g || '].mkv'
                      WHEN 'shows' THEN t.title || '/Season ' || lpad((1 + mod(g, 9))::text, 2, '0')
                                        || '/' || t.title || ' S01E' || g || '.mp4'
                      WHEN 'music' THEN t.title || '/' || lpad((1 + mod(g, 14))::text, 2, '0')
                                        || ' - Track ' || g || '.flac'
                      WHEN 'photos' THEN t.year || '/IMG_' || lpad(g::text, 7, '0') || '.jpg'
                      ELSE t.title || ' ' || g || '.epub' END,
               CASE WHEN l.kind = 'shows' THEN t.title || ' ' || chr(8211) || ' Episode ' || g
                    ELSE t.title END,
               CASE l.kind
                    WHEN 'movies' THEN 4800000 + mod({_h(h, 68)}, 5400000)
                    WHEN 'shows' THEN 1200000 + mod({_h(h, 68)}, 2400000)
                    WHEN 'music' THEN 90000 + mod({_h(h, 68)}, 420000)
                    WHEN 'books' THEN CASE WHEN mod(g, 2) = 0 THEN NULL
                                           ELSE 3600000 + mod({_h(h, 68)}, 40000000) END
                    ELSE NULL END,
               CASE WHEN mod({_h(h, 69)}, 11) = 0 THEN '{{}}'::jsonb
                    WHEN l.kind = 'photos' THEN jsonb_build_object(
                        'camera', {_pick(_CAMERAS, h, 70)},
                        'width', 6000, 'height', 4000, 'gps', NULL)
                    ELSE jsonb_build_object(
                        'year', t.year,
                        'genres', {genres},
                        'rating', round((mod({_h(h, 71)}, 100) / 10.0)::numeric, 1),
                        'codec', {_pick(_lit(["h264", "hevc", "av1", "flac", "aac"]), h, 72)},
                        'explicit', mod({_h(h, 73)}, 9) = 0) END,
               {_EPOCH} - interval '1 second' * (mod({_h(h, 74)}, 86400 * 365 * 3))
        FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS g
        JOIN libraries AS l ON l.id = 1 + mod({_h(h, 60)}, %(libraries)s::bigint)
        CROSS JOIN LATERAL (SELECT {title} AS title, {year} AS year) AS t
    """  # noqa: S608 - built from module constants only


def _history_sql() -> str:
    h = "g"
    return f"""
        INSERT INTO watch_history (id, user_id, media_item_id, position_ms, completed, watched_at)
        SELECT g,
               1 + mod({_h(h, 81)}, %(users)s::bigint),
               1 + mod({_h(h, 82)}, %(media)s::bigint),
               mod({_h(h, 83)}, 7200000),
               mod({_h(h, 84)}, 3) = 0,
               {_EPOCH} - interval '1 second' * (mod({_h(h, 85)}, 86400 * 365 * 2))
        FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) AS g
    """  # noqa: S608 - built from module constants only
