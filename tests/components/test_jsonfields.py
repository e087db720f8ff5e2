"""JSON row fields: Python's quick checks never pass a value SQL refuses; working memory."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from odeion_archive import _safejson
from odeion_archive.components._jsonfields import (
    ANY,
    BOOL,
    COUNT,
    ID,
    OBJECT,
    OPT_POSITIVE,
    OPT_TEXT,
    ROLE,
    TEXT,
    Field,
    RowSpec,
)
from odeion_archive.components._jsonrestore import working_memory

FIELDS = {
    "TEXT": TEXT,
    "OPT_TEXT": OPT_TEXT,
    "ID": ID,
    "COUNT": COUNT,
    "OPT_POSITIVE": OPT_POSITIVE,
    "ROLE": ROLE,
    "BOOL": BOOL,
    "OBJECT": OBJECT,
    "ANY": ANY,
}

#: JSON texts at and around every boundary the checks draw.
VALUES = [
    *(str(n) for n in (0, 1, 2, -1, 7, 2**31 - 2, 2**31 - 1, 2**31, 2**53 + 1)),
    *(str(n) for n in (2**63 - 2, 2**63 - 1, 2**63, 2**64, -(2**63), 10**20, 10**21)),
    "-0",
    "1e2",
    "1E2",
    "1e+2",
    "100e-2",
    "1.0",
    "1.5",
    "0.0",
    "-0.0",
    "2147483647.0",
    "9.3e18",
    "1e19",
    "1e-7",
    "true",
    "false",
    "null",
    '""',
    '" "',
    '"a"',
    '"0"',
    '"1"',
    '"true"',
    '"admin"',
    '"Admin"',
    '"user"',
    '"guest"',
    '"guest "',
    '"root"',
    '"\\u00e9t\\u00e9"',
    "{}",
    '{"a": 1}',
    "[]",
    '["admin"]',
    "[1]",
]


@pytest.fixture(scope="module")
def judged(module_odeion_db: str) -> list[tuple[str, str, bool, bool]]:
    """(field, JSON text, Python's quick verdict, SQL's verdict) for every pair."""
    rows = []
    with psycopg.connect(module_odeion_db) as conn:
        for name, field in FIELDS.items():
            condition = sql.SQL(field.condition.replace("{j}", "{value}")).format(
                value=sql.SQL("(v.text::jsonb)")
            )
            found = conn.execute(
                sql.SQL(
                    "SELECT v.text, coalesce({}, false) FROM unnest(%s::text[]) AS v(text)"
                ).format(condition),
                (VALUES,),
            ).fetchall()
            for text, in_sql in found:
                quick = field.surely(_safejson.loads(text, what=text))
                rows.append((name, text, quick, bool(in_sql)))
    return rows


def test_a_value_python_vouches_for_passes_the_sql_check(
    judged: list[tuple[str, str, bool, bool]],
) -> None:
    wrong = [(name, text) for name, text, quick, in_sql in judged if quick and not in_sql]
    assert wrong == []


def test_python_vouches_for_every_plainly_written_valid_value(
    judged: list[tuple[str, str, bool, bool]],
) -> None:
    # Only numbers written with an exponent or a fraction are left to SQL alone.
    doubted = [
        (name, text)
        for name, text, quick, in_sql in judged
        if in_sql and not quick and not any(c in text for c in "eE.")
    ]
    assert doubted == []
    assert ("ID", "1e2", False, True) in judged


def test_a_line_is_vouched_for_only_with_exactly_its_fields() -> None:
    spec = RowSpec(required={"id": ID, "name": TEXT}, optional={"note": OPT_TEXT})
    assert spec.surely_fits({"id": 1, "name": "a"})
    assert spec.surely_fits({"id": 1, "name": "a", "note": None})
    assert not spec.surely_fits({"id": 1})
    assert not spec.surely_fits({"id": 1, "name": "a", "extra": 1})
    assert not spec.surely_fits({"id": 0, "name": "a"})
    assert not spec.surely_fits({"id": True, "name": "a"})
    assert not spec.surely_fits({"id": 1, "name": ""})
    assert not spec.surely_fits({"id": 1.0, "name": "a"})


def test_every_field_kind_has_a_quick_check() -> None:
    assert all(isinstance(field, Field) for field in FIELDS.values())
    assert all(field.surely is not ANY.surely for field in FIELDS.values() if field is not ANY)


@pytest.mark.parametrize(("before", "inside"), [("1MB", "64MB"), ("256MB", "256MB")])
def test_the_decisions_get_more_working_memory_and_give_it_back(
    module_odeion_db: str, before: str, inside: str
) -> None:
    with psycopg.connect(module_odeion_db) as conn:
        conn.execute(sql.SQL("SET work_mem = {}").format(sql.Literal(before)))
        with conn.transaction():
            with working_memory(conn):
                assert conn.execute("SHOW work_mem").fetchone() == (inside,)
            assert conn.execute("SHOW work_mem").fetchone() == (before,)
