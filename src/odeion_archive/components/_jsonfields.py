"""The kinds of fields of JSON rows, and the fields of one kind of row.

Each kind is a SQL condition on the ``jsonb`` value (the judge, which names the
first bad line) and a quick test in Python of the parsed value, which lets a
member whose every line passes skip the SQL check.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import attrs
from psycopg import sql

__all__ = [
    "ANY",
    "BOOL",
    "COUNT",
    "ID",
    "OBJECT",
    "OPT_POSITIVE",
    "OPT_TEXT",
    "ROLE",
    "TEXT",
    "Field",
    "RowSpec",
]


def _any(_value: object) -> bool:
    return True


@attrs.frozen
class Field:
    """A kind of field: a SQL condition on ``{j}`` (the jsonb value) and its description.

    ``surely`` is a quick test of the value Python parsed: when it holds, the SQL
    condition holds too (the reverse need not be true: ``1e2`` is an integer to
    the SQL condition but a float to Python). The SQL condition stays the judge:
    the loaded rows are checked in SQL whenever one value fails ``surely``.
    """

    condition: str
    description: str
    surely: Callable[[object], bool] = _any


def _text(value: object) -> bool:
    return type(value) is str and value != ""


def _opt_text(value: object) -> bool:
    return value is None or type(value) is str


def _integer(lo: int, hi: int, *, null: bool = False) -> Callable[[object], bool]:
    def surely(value: object) -> bool:
        return (type(value) is int and lo <= value <= hi) or (null and value is None)

    return surely


TEXT = Field("jsonb_typeof({j}) = 'string' AND {j} <> '\"\"'", "must be a non-empty string", _text)


OPT_TEXT = Field("jsonb_typeof({j}) IN ('string', 'null')", "must be a string or null", _opt_text)


#: A JSON integer: a number written without fraction or exponent once jsonb has
#: normalised it (``1e2`` is ``100``, ``1.0`` stays ``1.0``), within ``{lo}..{hi}``.
_INTEGER = (
    "CASE WHEN jsonb_typeof({{j}}) = 'number' THEN ({{j}})::text ~ '^-?[0-9]{{{{1,20}}}}$' "
    "AND ({{j}})::numeric BETWEEN {lo} AND {hi} ELSE {other} END"
)


ID = Field(
    _INTEGER.format(lo=1, hi=2**63 - 1, other="false"),
    "must be a positive 64-bit integer",
    _integer(1, 2**63 - 1),
)


COUNT = Field(
    _INTEGER.format(lo=0, hi=2**31 - 1, other="false"),
    "must be a non-negative 32-bit integer",
    _integer(0, 2**31 - 1),
)


OPT_POSITIVE = Field(
    _INTEGER.format(lo=1, hi=2**31 - 1, other="jsonb_typeof({j}) = 'null'"),
    "must be a positive 32-bit integer or null",
    _integer(1, 2**31 - 1, null=True),
)


_ROLES = frozenset({"admin", "user", "guest"})


ROLE = Field(
    "{j} IN ('\"admin\"', '\"user\"', '\"guest\"')",
    "must be admin, user or guest",
    lambda v: type(v) is str and v in _ROLES,
)


BOOL = Field("jsonb_typeof({j}) = 'boolean'", "must be true or false", lambda v: type(v) is bool)


OBJECT = Field("jsonb_typeof({j}) = 'object'", "must be a JSON object", lambda v: type(v) is dict)


ANY = Field("true", "may be any JSON value")


@attrs.frozen
class RowSpec:
    """The fields of one kind of archive line: required and optional ones, by kind."""

    required: Mapping[str, Field]
    optional: Mapping[str, Field] = attrs.field(factory=dict)
    _keys: frozenset[str] = attrs.field(init=False, eq=False, repr=False)
    _checks: tuple[tuple[str, Callable[[object], bool]], ...] = attrs.field(
        init=False, eq=False, repr=False
    )

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_keys", frozenset((*self.required, *self.optional)))
        checks = [(key, field.surely) for key, field in self.required.items()]
        checks += [(key, field.surely) for key, field in self.optional.items()]
        object.__setattr__(self, "_checks", tuple(checks))

    def surely_fits(self, doc: Mapping[str, object]) -> bool:
        """Whether the parsed line ``doc`` surely passes :meth:`problem` (a quick test).

        ``False`` means only that the line must be judged in SQL.
        """
        if not self._keys.issuperset(doc):
            return False
        for key, surely in self._checks:
            if key in doc:
                if not surely(doc[key]):
                    return False
            elif key in self.required:
                return False
        return True

    def problem(self) -> sql.Composable:
        """SQL naming the first problem of the line ``doc`` (NULL if there is none)."""
        keys = [*self.required, *self.optional]
        parts: list[sql.Composable] = [
            sql.SQL(
                "WHEN doc - {}::text[] <> '{{}}' THEN 'has an unknown field ' || "
                "(SELECT min(quote_literal(k)) FROM jsonb_object_keys(doc - {}::text[]) k)"
            ).format(sql.Literal(keys), sql.Literal(keys))
        ]
        parts.extend(
            sql.SQL("WHEN NOT doc ? {} THEN {}").format(
                sql.Literal(key), sql.Literal(f"lacks the field {key!r}")
            )
            for key in self.required
        )
        for key, field in (*self.required.items(), *self.optional.items()):
            value = sql.SQL("(doc->{})").format(sql.Literal(key))
            condition = sql.SQL(field.condition.replace("{j}", "{value}")).format(value=value)
            parts.append(
                sql.SQL("WHEN doc ? {} AND NOT ({}) THEN {} || left((doc->{})::text, 80)").format(
                    sql.Literal(key),
                    condition,
                    sql.Literal(f"has the field {key!r} that {field.description}, found "),
                    sql.Literal(key),
                )
            )
        return sql.SQL("CASE {} END").format(sql.SQL(" ").join(parts))
