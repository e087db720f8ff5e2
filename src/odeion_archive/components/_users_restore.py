"""Plan and restore of the ``users_auth`` component, and what the JSON components share.

:func:`_load` loads the archive's rows into temporary tables and checks them in
full: exactly the rows the manifest declares (reading stops at the first line
beyond them), no blank lines, strict JSON, every field typed. Only then does
:func:`_decide` make every decision of a restore: it matches the rows against
the target database and records, per incoming row, what happens to it
(``insert``, ``rename``, ``overwrite``, ``skip``, ``skip_email``,
``skip_conflict``, ``skip_acting``) together with its final key and target id.
:func:`plan` runs both and rolls everything back; :func:`restore` runs them
again inside the restore's transaction (taking its table locks only after the
load), refuses to go on if the outcome differs from the plan, and applies the
decisions with a handful of set-based statements.

Every archive line is parsed strictly in Python (duplicate keys, NaN and deep
nesting refused, fields type-checked) and then handed to PostgreSQL unchanged
with ``COPY``: PostgreSQL parses it again as ``jsonb``, so JSON numbers inside
preferences keep their exact value. Python keeps no row, only the keys of rows
whose new name must be chosen (the rename strategy).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import IO, Any, cast

import attrs
import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from odeion_archive import _converter, _safejson
from odeion_archive.components._jsonl import BATCH_BYTES, MAX_LINE_BYTES
from odeion_archive.errors import (
    ArchiveInvalidError,
    CorruptArchiveError,
    DatabaseError,
    RestoreBlockedError,
    RestoreFailedError,
)
from odeion_archive.interfaces import (
    ComponentPlan,
    Issue,
    PlanContext,
    RestoreContext,
    RowCounts,
)

__all__ = ["check", "plan", "restore"]

COMPONENT = "users_auth"
USERS_MEMBER = "users_auth/users.jsonl"
INVITES_MEMBER = "users_auth/invite_codes.jsonl"
TOKENS_MEMBER = "users_auth/api_tokens.jsonl"

#: The tables whose counts this component predicts, and the keys of its renames.
TABLES = ("users", "invite_codes", "api_tokens")
RENAME_KEYS = ("users", "users.email", "invite_codes")

#: How many names a warning lists before it says "and N more".
_LISTED = 10
#: Candidates tried per row before the rename strategy gives up.
_MAX_CANDIDATES = 10_000
#: The highest id a restored row keeps. Ids above it get a new id: an archive must
#: not move an id sequence towards its end (the server could create no more rows).
MAX_RESTORED_ID = 2**53

Cursor = psycopg.Cursor[tuple[Any, ...]]
Progress = Callable[[str, int, int | None], None]


# == shared by the JSON components ==========================================

# -- validation of archive rows ---------------------------------------------


@attrs.frozen
class Field:
    """A kind of field: a SQL condition on ``{j}`` (the jsonb value) and its description."""

    condition: str
    description: str


TEXT = Field("jsonb_typeof({j}) = 'string' AND {j} <> '\"\"'", "must be a non-empty string")
OPT_TEXT = Field("jsonb_typeof({j}) IN ('string', 'null')", "must be a string or null")
#: A JSON integer: a number written without fraction or exponent once jsonb has
#: normalised it (``1e2`` is ``100``, ``1.0`` stays ``1.0``), within ``{lo}..{hi}``.
_INTEGER = (
    "CASE WHEN jsonb_typeof({{j}}) = 'number' THEN ({{j}})::text ~ '^-?[0-9]{{{{1,20}}}}$' "
    "AND ({{j}})::numeric BETWEEN {lo} AND {hi} ELSE {other} END"
)
ID = Field(
    _INTEGER.format(lo=1, hi=2**63 - 1, other="false"),
    "must be a positive 64-bit integer",
)
COUNT = Field(
    _INTEGER.format(lo=0, hi=2**31 - 1, other="false"),
    "must be a non-negative 32-bit integer",
)
OPT_POSITIVE = Field(
    _INTEGER.format(lo=1, hi=2**31 - 1, other="jsonb_typeof({j}) = 'null'"),
    "must be a positive 32-bit integer or null",
)
ROLE = Field("{j} IN ('\"admin\"', '\"user\"', '\"guest\"')", "must be admin, user or guest")
BOOL = Field("jsonb_typeof({j}) = 'boolean'", "must be true or false")
OBJECT = Field("jsonb_typeof({j}) = 'object'", "must be a JSON object")
ANY = Field("true", "may be any JSON value")


@attrs.frozen
class RowSpec:
    """The fields of one kind of archive line: required and optional ones, by kind."""

    required: Mapping[str, Field]
    optional: Mapping[str, Field] = attrs.field(factory=dict)

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


def validate_raw(cur: Cursor, table: str, spec: RowSpec, path: str) -> None:
    """Raise :class:`CorruptArchiveError` for the first loaded line that breaks ``spec``."""
    cur.execute(
        sql.SQL(
            "SELECT ord, problem FROM (SELECT ord, {} AS problem FROM {}) AS p "
            "WHERE problem IS NOT NULL ORDER BY ord LIMIT 1"
        ).format(spec.problem(), sql.Identifier(table))
    )
    row = cur.fetchone()
    if row is not None:
        raise CorruptArchiveError(
            f"{path} line {row[0]}: the row {row[1]}; the archive is damaged or was edited, "
            "use another archive"
        )


# -- loading members into temporary tables ------------------------------------


def _lines(stream: IO[bytes], what: str, limit: int) -> Iterator[tuple[int, bytes]]:
    """The lines of a member with their numbers, newline removed; at most ``limit`` of them.

    Every line is a row: a blank line is invalid data, and a line beyond
    ``limit`` (the rows the manifest declares) stops the reading at once.
    """
    reader: IO[bytes] = stream
    if not isinstance(stream, io.BufferedIOBase):
        reader = cast(
            "IO[bytes]", io.BufferedReader(cast("io.RawIOBase", stream), buffer_size=BATCH_BYTES)
        )
    number = 0
    while True:
        line = reader.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE_BYTES:
            raise CorruptArchiveError(
                f"{what}: line {number} is longer than {MAX_LINE_BYTES} bytes; the archive "
                "is damaged or not from odeion-archive, use another archive"
            )
        if line.endswith(b"\n"):
            line = line[:-1]
        if not line.strip():
            raise CorruptArchiveError(
                f"{what}: line {number} is blank; every line of a JSON Lines member is one "
                "row, so the archive is damaged or was edited, use another archive"
            )
        if number > limit:
            raise CorruptArchiveError(
                f"{what}: holds more than the {limit} rows the manifest records (line "
                f"{number} is one too many); the archive is damaged or was edited, use another "
                "archive"
            )
        yield number, line


class _RefusedError(Exception):
    """Raised by the fast parser for input the strict parser must explain."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _RefusedError
    return result


def _constant(_name: str) -> Any:
    raise _RefusedError


def _int(text: str) -> int:
    if len(text) > _safejson.MAX_INT_DIGITS:
        raise _RefusedError
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _RefusedError
    return value


_DECODER = json.JSONDecoder(
    object_pairs_hook=_pairs, parse_constant=_constant, parse_int=_int, parse_float=_float
)


def strict_json(line: bytes, where: str) -> Any:
    """Parse one line as strictly as :func:`odeion_archive._safejson.loads`, faster.

    One decoder serves every line; anything unusual (a duplicate key, NaN, deep
    nesting, invalid text) goes through ``_safejson.loads``, which explains it.
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return _safejson.loads(line, what=where)
    if text.count("[") + text.count("{") > _safejson.MAX_DEPTH:
        return _safejson.loads(line, what=where)
    try:
        return _DECODER.decode(text)
    except (_RefusedError, ValueError):
        return _safejson.loads(line, what=where)


def _copy_text(line: bytes) -> bytes:
    """``line`` as one field of COPY's text format."""
    return line.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\r", b"\\r")


@contextmanager
def archive_data(what: str) -> Iterator[None]:
    """Turn PostgreSQL's refusal of a value from the archive into an archive error."""
    try:
        yield
    except psycopg.errors.DataError as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CorruptArchiveError(
            f"{what}: PostgreSQL refuses a value of the archive ({detail}); the archive is "
            "damaged or was edited, use another archive"
        ) from None


def create_temp(
    cur: Cursor,
    name: str,
    *,
    columns: sql.Composable | None = None,
    query: sql.Composable | None = None,
) -> None:
    """(Re)create the temporary table ``name`` from ``columns`` or from a ``query``.

    The table disappears with the transaction at the latest.
    """
    ident = sql.Identifier(name)
    cur.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(ident))
    if query is not None:
        cur.execute(sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS {}").format(ident, query))
    else:
        cur.execute(sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(ident, columns))


def drop_temp(cur: Cursor, *names: str) -> None:
    """Drop temporary tables of this module."""
    for name in names:
        cur.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(sql.Identifier(name)))


def declared_rows(context: PlanContext, table: str, path: str) -> int:
    """The number of rows of ``table`` the manifest declares for the member ``path``."""
    facts = _converter.component_facts(context.entry)
    rows = facts.rows if isinstance(facts, _converter.JsonComponentFacts) else None
    if rows is None or table not in rows:
        raise CorruptArchiveError(
            f"{path}: the manifest records no row count for {table!r} (facts 'rows'); the "
            "archive is incomplete or not from odeion-archive, use another archive"
        )
    return rows[table]


def load_member(
    context: PlanContext,
    path: str,
    table: str,
    spec: RowSpec,
    progress: Progress | None = None,
    *,
    rows_of: str,
) -> int:
    """Parse the JSON Lines member ``path`` strictly into ``table (ord, doc jsonb)``.

    ``ord`` is the line number. The member must hold exactly the rows the
    manifest records for the table ``rows_of``; reading stops at the first line
    beyond them. Returns the number of rows. Raises :class:`ArchiveInvalidError`
    for the first line that is not valid.
    """
    expected = declared_rows(context, rows_of, path)
    conn = context.connection
    cancel = getattr(context, "cancel", None)
    with conn.cursor() as cur:
        create_temp(cur, table, columns=sql.SQL("ord bigint NOT NULL, doc jsonb NOT NULL"))
        statement = sql.SQL("COPY {} (ord, doc) FROM STDIN").format(sql.Identifier(table))
        rows = 0
        with (
            archive_data(path),
            context.open_member(path) as stream,
            cur.copy(statement) as copy,
        ):
            buffer = bytearray()
            for number, line in _lines(stream, path, expected):
                where = f"{path} line {number}"
                value = strict_json(line, where)
                if type(value) is not dict:
                    raise CorruptArchiveError(
                        f"{where}: not a JSON object; the archive is damaged, use another archive"
                    )
                buffer += b"%d\t" % number
                buffer += _copy_text(line)
                buffer += b"\n"
                rows += 1
                if len(buffer) >= BATCH_BYTES:
                    copy.write(bytes(buffer))
                    buffer.clear()
                    if cancel is not None:
                        cancel.raise_if_cancelled()
                    if progress is not None:
                        progress(f"read {path}", rows, expected)
            if rows != expected:
                raise CorruptArchiveError(
                    f"{path}: holds {rows} rows but the manifest records {expected}; the "
                    "archive is incomplete or was edited, use another archive"
                )
            if buffer:
                copy.write(bytes(buffer))
        validate_raw(cur, table, spec, path)
    if progress is not None:
        progress(f"read {path}", rows, rows)
    return rows


def duplicates(cur: Cursor, table: str, key: str, shown: str, where: str = "true") -> list[str]:
    """Up to three examples of keys that occur more than once in a temporary table."""
    cur.execute(
        sql.SQL(
            "SELECT min({shown}) FROM {table} WHERE {where} GROUP BY {key} "
            "HAVING count(*) > 1 ORDER BY 1 LIMIT 3"
        ).format(
            shown=sql.SQL(shown),
            table=sql.Identifier(table),
            where=sql.SQL(where),
            key=sql.SQL(key),
        )
    )
    return [str(row[0]) for row in cur.fetchall()]


def require_unique(
    cur: Cursor, table: str, key: str, shown: str, what: str, where: str = "true"
) -> None:
    """Raise :class:`CorruptArchiveError` if ``key`` repeats in the loaded rows."""
    found = duplicates(cur, table, key, shown, where)
    if found:
        raise CorruptArchiveError(
            f"the archive holds {what} more than once ({', '.join(map(repr, found))}); a "
            "database cannot hold such rows, so the archive is damaged or was edited, use "
            "another archive"
        )


def archive_schema(context: PlanContext) -> int:
    """The schema version the component's rows were exported at."""
    version = context.entry.facts.get("schema_version", context.manifest.schema_version)
    if type(version) is not int or version < 1:
        raise CorruptArchiveError(
            f"the manifest records the schema version {version!r:.40} for the component "
            f"{context.entry.name!r}, which is not a version; use another archive"
        )
    return version


def schema_blockers(context: PlanContext) -> tuple[Issue, ...]:
    """Blockers that come from the schema versions of the archive and the database."""
    if context.schema_version < 1:
        return (
            Issue(
                "schema_missing",
                "this database has no Odeion schema yet; start the Odeion server once so it "
                "creates its tables, then restore again",
            ),
        )
    version = archive_schema(context)
    if version > context.schema_version:
        return (
            Issue(
                "schema_too_new",
                f"the {context.entry.name} rows were taken at schema version {version}, but "
                f"this database is at version {context.schema_version}; upgrade the Odeion "
                "server (which migrates its database) before restoring",
            ),
        )
    return ()


def listing(names: Sequence[str], total: int | None = None) -> str:
    """``a, b, c and 7 more``: a short list of names for a message."""
    total = len(names) if total is None else total
    shown = ", ".join(repr(name) for name in names[:_LISTED])
    rest = total - min(len(names), _LISTED)
    return f"{shown} and {rest} more" if rest > 0 else shown


def counts_of(cur: Cursor, table: str) -> RowCounts:
    """The decisions recorded in a temporary table, as row counts."""
    cur.execute(
        sql.SQL("SELECT decision, count(*) FROM {} GROUP BY decision").format(sql.Identifier(table))
    )
    found = {str(decision): int(n) for decision, n in cur.fetchall()}
    return RowCounts(
        insert=found.pop("insert", 0),
        overwrite=found.pop("overwrite", 0),
        rename=found.pop("rename", 0),
        skip=sum(found.values()),
    )


#: Loads (parses and checks) a component's members into temporary tables.
Load = Callable[[PlanContext, Progress | None], None]
#: Makes a component's decisions on the loaded rows.
Decide = Callable[[PlanContext], ComponentPlan]


def plan_with(context: PlanContext, load: Load, decide: Decide) -> ComponentPlan:
    """Run ``load`` then ``decide`` in a transaction (or savepoint) that is always rolled back.

    The archive's rows are checked in full before any query reads the target's tables.
    """
    blockers = schema_blockers(context)
    if blockers:
        return ComponentPlan(blockers=blockers)
    try:
        with context.connection.transaction(force_rollback=True):
            load(context, None)
            return decide(context)
    except ArchiveInvalidError as exc:
        return ComponentPlan(blockers=(Issue("archive_invalid", str(exc)),))
    except psycopg.Error as exc:
        raise DatabaseError(
            f"planning the restore of {context.entry.name} failed: {exc}; check that the "
            "database is reachable and that its schema is the Odeion schema"
        ) from exc


def check_against_plan(
    context: RestoreContext,
    decided: ComponentPlan,
    tables: Sequence[str],
    rename_keys: Sequence[str],
) -> None:
    """Refuse to go on unless the decisions made now are the ones the plan announced."""
    if decided.blockers:
        raise RestoreBlockedError(
            f"the restore of {context.entry.name} is blocked: "
            + "; ".join(f"[{b.code}] {b.message}" for b in decided.blockers),
            decided,
        )
    planned = context.plan
    if planned is None:
        return
    differences = [
        f"{table}: planned {planned.counts.get(table)}, now {decided.counts.get(table)}"
        for table in tables
        if planned.counts.get(table) != decided.counts.get(table)
    ]
    differences += [
        f"new names of {key}"
        for key in rename_keys
        if dict(planned.renames.get(key, {})) != dict(decided.renames.get(key, {}))
    ]
    if differences:
        raise RestoreFailedError(
            f"the database changed since the restore of {context.entry.name} was planned "
            f"({'; '.join(differences)}); nothing was changed, plan the restore again and "
            "review the new plan"
        )


def check_input(context: RestoreContext, load: Load) -> None:
    """Load and check a component's members in the restore's transaction, taking no lock.

    The temporary tables filled here serve :func:`decide_locked` later in the
    same transaction.
    """
    blockers = schema_blockers(context)
    if blockers:
        raise RestoreBlockedError(
            "; ".join(f"[{b.code}] {b.message}" for b in blockers), ComponentPlan(blockers=blockers)
        )

    def report(phase: str, done: int, total: int | None) -> None:
        context.progress(phase, done, total, "rows")

    load(context, report)


def _is_loaded(context: PlanContext, table: str) -> bool:
    row = context.connection.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (f"pg_temp.{table}",)
    ).fetchone()
    return row is not None and bool(row[0])


def decide_locked(
    context: RestoreContext,
    tables: Sequence[str],
    load: Load,
    decide: Decide,
    rename_keys: Sequence[str],
    *,
    loaded: str,
) -> ComponentPlan:
    """Check the archive's rows, lock ``tables``, decide and hold it to the reviewed plan.

    The members are loaded and checked in full (bounded by the rows the manifest
    declares) before the lock, here unless :func:`check_input` did it already
    (the temporary table ``loaded`` then exists): a damaged or hostile member
    never holds a lock.
    """
    if not _is_loaded(context, loaded):
        check_input(context, load)
    with context.connection.cursor() as cur:
        # Nothing else may write these tables between the decisions and their application.
        cur.execute(
            sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(
                sql.SQL(", ").join(sql.Identifier(table) for table in tables)
            )
        )

    decided = decide(context)
    check_against_plan(context, decided, tables, rename_keys)
    context.cancel.raise_if_cancelled()
    return decided


def expect_rows(cur: Cursor, what: str, expected: int, *, at_most: bool = False) -> None:
    """Make sure the last statement changed the rows the decisions predicted.

    ``at_most``: for updates that leave rows alone which already hold the new values.
    """
    if cur.rowcount > expected or (cur.rowcount < expected and not at_most):
        raise RestoreFailedError(
            f"restoring {what} changed {cur.rowcount} rows instead of the {expected} planned; "
            "the restore was rolled back, plan it again"
        )


# -- choosing new names (rename strategy) -------------------------------------


@attrs.frozen
class Probe:
    """What the database says about one candidate name.

    ``norm`` is the candidate as uniqueness compares it (``lower()`` for
    usernames and e-mails); ``existing`` whether a row of the target holds it,
    ``identical`` whether that row is this incoming row's earlier copy
    (``ref`` is then its id), ``incoming`` whether another incoming row is named so.
    """

    norm: str
    existing: bool
    identical: bool
    incoming: bool
    ref: int | None = None


def resolve_names(
    items: Sequence[tuple[int, str]],
    candidate: Callable[[str, int], str],
    probe: Callable[[list[int], list[str]], list[Probe]],
) -> tuple[dict[int, str], dict[int, int | None]]:
    """Choose for each ``(ord, name)`` the first free candidate ``candidate(name, k)``, k=1...

    A candidate is free when neither the target, nor any incoming row, nor a
    candidate chosen before holds it. A candidate held by an identical row is
    an earlier restore's copy: the row is then skipped. Returns
    ``({ord: new name}, {ord: id of the copy})``. Rows are served in ``ord``
    order, so the outcome only depends on the archive and the database.
    """
    chosen: dict[int, str] = {}
    copies: dict[int, int | None] = {}
    assigned: set[str] = set()
    pending = sorted(items)
    k = 1
    while pending:
        if k > _MAX_CANDIDATES:
            raise RestoreFailedError(
                f"no free name found for {pending[0][1]!r} after {_MAX_CANDIDATES} tries; "
                "remove old restored copies or choose another conflict strategy"
            )
        names = [candidate(name, k) for _, name in pending]
        answers = probe([number for number, _ in pending], names)
        later: list[tuple[int, str]] = []
        for (number, original), name, answer in zip(pending, names, answers, strict=True):
            if answer.existing and answer.identical:
                copies[number] = answer.ref
            elif answer.existing or answer.incoming or answer.norm in assigned:
                later.append((number, original))
            else:
                assigned.add(answer.norm)
                chosen[number] = name
        pending = later
        k += 1
    return chosen, copies


def suffixed(name: str, k: int) -> str:
    """``name-restored``, ``name-restored-2``, ...: the k-th candidate for a name or code."""
    return f"{name}-restored" if k == 1 else f"{name}-restored-{k}"


def suffixed_email(email: str, k: int) -> str:
    """``bob+restored@host``, ``bob+restored-2@host``...: the k-th candidate for an e-mail."""
    tag = "+restored" if k == 1 else f"+restored-{k}"
    local, at, domain = email.rpartition("@")
    return f"{local}{tag}@{domain}" if at else f"{email}{tag}"


# == users_auth ==============================================================

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


def plan(context: PlanContext) -> ComponentPlan:
    """Predict what restoring users, invite codes and API tokens would do; change nothing."""
    return plan_with(context, _load, _decide)


def check(context: RestoreContext) -> None:
    """Load and check the three members before the restore takes any lock."""
    check_input(context, _load)


def restore(context: RestoreContext) -> ComponentPlan:
    """Decide and apply inside the caller's transaction (the caller commits).

    Returns what was done; if the host passed the plan it reviewed, refuses to
    do anything other than that plan.
    """
    decided = decide_locked(context, TABLES, _load, _decide, RENAME_KEYS, loaded="_oa_tokens_raw")
    with context.connection.cursor() as cur:
        _apply(cur, context.schema_version, decided)
        drop_temp(cur, *_TEMP)
    return decided


# -- deciding -----------------------------------------------------------------


def _load(context: PlanContext, progress: Progress | None) -> None:
    """Load and validate the three members into ``_oa_*_raw`` temporary tables."""
    load_member(context, USERS_MEMBER, "_oa_users_raw", _USERS, progress, rows_of="users")
    load_member(
        context, INVITES_MEMBER, "_oa_codes_raw", _INVITES, progress, rows_of="invite_codes"
    )
    load_member(context, TOKENS_MEMBER, "_oa_tokens_raw", _TOKENS, progress, rows_of="api_tokens")


def _decide(context: PlanContext) -> ComponentPlan:
    """Make every decision of the restore on the loaded rows; temporary tables record them."""
    conflict = context.conflict
    with context.connection.cursor(row_factory=tuple_row) as cur:
        acting = _acting_user_id(cur, context)
        _decide_users(cur, conflict, acting)
        _decide_codes(cur, conflict, acting)
        _decide_tokens(cur)
        drop_temp(cur, "_oa_users_raw", "_oa_codes_raw", "_oa_tokens_raw")
        return _outcome(cur, context)


def _acting_user_id(cur: Cursor, context: PlanContext) -> int | None:
    """The id of the account performing the restore (matched ignoring case), if it exists."""
    acting = context.options.get("acting_user")
    if not isinstance(acting, str) or not acting:
        return None
    cur.execute("SELECT id FROM users WHERE lower(username) = lower(%s)", (acting,))
    row = cur.fetchone()
    return None if row is None else int(row[0])


_USER_DECISIONS = {
    "skip": (
        "CASE WHEN match_id IS NOT NULL THEN 'skip' "
        "WHEN email_holder IS NOT NULL THEN 'skip_email' ELSE 'insert' END"
    ),
    "overwrite": (
        "CASE WHEN match_id IS NOT NULL AND email_holder IS NOT NULL "
        "AND email_holder <> match_id THEN 'skip_email' "
        "WHEN match_id IS NOT NULL THEN 'overwrite' "
        "WHEN email_holder IS NOT NULL THEN 'skip_email' ELSE 'insert' END"
    ),
    # Rows left NULL need new names, chosen in Python.
    "rename": (
        "CASE WHEN match_id IS NULL AND email_holder IS NULL THEN 'insert' "
        "WHEN match_id IS NOT NULL AND match_same THEN 'skip' END"
    ),
}


def _decide_users(cur: Cursor, conflict: str, acting: int | None) -> None:
    """``_oa_users``: typed incoming users, what they match and what happens to them.

    The account performing the restore (``acting``) is never overwritten: its
    row is kept as it is (``skip_acting``), and so are its API tokens, which
    follow their owner. An archive id above :data:`MAX_RESTORED_ID` is never
    given to a new row: it gets a new id like one whose id is taken.
    """
    with archive_data(USERS_MEMBER):
        create_temp(
            cur,
            "_oa_users",
            query=sql.SQL(
                "SELECT d.*, CASE WHEN d.decision IN ('skip', 'overwrite', 'skip_email') "
                " THEN d.match_id WHEN d.decision = 'insert' AND d.id_free THEN d.id END AS target_id "
                "FROM (SELECT m.*, {decision} AS decision, m.username AS final_username, "
                " m.email AS final_email FROM ("
                "  SELECT r.ord, (r.doc->>'id')::bigint AS id, r.doc->>'username' AS username, "
                "  lower(r.doc->>'username') AS lname, r.doc->>'email' AS email, "
                "  lower(r.doc->>'email') AS lemail, r.doc->>'display_name' AS display_name, "
                "  r.doc->>'password_hash' AS password_hash, r.doc->>'role' AS role, "
                "  (r.doc->'disabled')::boolean AS disabled, r.doc->'preferences' AS preferences, "
                "  (r.doc->>'created_at')::timestamptz AS created_at, "
                "  (r.doc->>'last_login_at')::timestamptz AS last_login_at, "
                "  r.doc->>'locale' AS locale, u.id AS match_id, "
                "  coalesce(u.password_hash = r.doc->>'password_hash' "
                "   AND u.created_at = (r.doc->>'created_at')::timestamptz, false) AS match_same, "
                "  e.id AS email_holder, "
                "  k.id IS NULL AND (r.doc->>'id')::bigint <= {max_id} AS id_free "
                "  FROM _oa_users_raw r "
                "  LEFT JOIN users u ON lower(u.username) = lower(r.doc->>'username') "
                "  LEFT JOIN users e ON e.email IS NOT NULL "
                "   AND lower(e.email) = lower(r.doc->>'email') "
                "  LEFT JOIN users k ON k.id = (r.doc->>'id')::bigint"
                " ) AS m) AS d"
            ).format(
                decision=sql.SQL(_USER_DECISIONS[conflict]),
                max_id=sql.Literal(MAX_RESTORED_ID),
            ),
        )
    if acting is not None:
        cur.execute(
            "UPDATE _oa_users SET decision = 'skip_acting' "
            "WHERE decision = 'overwrite' AND match_id = %s",
            (acting,),
        )
    require_unique(cur, "_oa_users", "lname", "username", "a username (ignoring case)")
    require_unique(cur, "_oa_users", "id", "id::text", "a user id")
    require_unique(
        cur,
        "_oa_users",
        "lemail",
        "email",
        "an e-mail address (ignoring case)",
        "lemail IS NOT NULL",
    )
    if conflict == "rename":
        # The name probes join on this table: give the planner its statistics.
        cur.execute("ANALYZE _oa_users")
        _rename_users(cur)
    # New rows keep their archive id where it is free, else get one past every id in use.
    cur.execute(
        "UPDATE _oa_users SET target_id = id "
        "WHERE decision = 'rename' AND target_id IS NULL AND id_free"
    )
    cur.execute(
        "UPDATE _oa_users t SET target_id = n.new_id FROM ("
        " SELECT ord, b.base + row_number() OVER (ORDER BY ord) AS new_id"
        " FROM _oa_users, (SELECT greatest((SELECT coalesce(max(id), 0) FROM users),"
        "  (SELECT coalesce(max(target_id), 0) FROM _oa_users)) AS base) AS b"
        " WHERE decision IN ('insert', 'rename') AND target_id IS NULL) AS n "
        "WHERE t.ord = n.ord"
    )


def _rename_users(cur: Cursor) -> None:
    """Choose new usernames and e-mails for the rows the rename strategy must add."""
    cur.execute(
        "SELECT ord, username, email, match_id IS NOT NULL, email_holder IS NOT NULL "
        "FROM _oa_users WHERE decision IS NULL ORDER BY ord"
    )
    pending = cur.fetchall()
    if not pending:
        return

    def probe_name(ords: list[int], names: list[str]) -> list[Probe]:
        cur.execute(
            "SELECT lower(c.name), u.id, "
            "coalesce(u.password_hash = t.password_hash AND u.created_at = t.created_at, false), "
            "EXISTS (SELECT FROM _oa_users x WHERE x.lname = lower(c.name)) "
            "FROM unnest(%s::bigint[], %s::text[]) WITH ORDINALITY AS c(ord, name, n) "
            "JOIN _oa_users t ON t.ord = c.ord "
            "LEFT JOIN users u ON lower(u.username) = lower(c.name) ORDER BY c.n",
            (ords, names),
        )
        return [
            Probe(norm=norm, existing=ref is not None, identical=same, incoming=incoming, ref=ref)
            for norm, ref, same, incoming in cur.fetchall()
        ]

    def probe_email(_ords: list[int], emails: list[str]) -> list[Probe]:
        cur.execute(
            "SELECT lower(c.email), "
            "EXISTS (SELECT FROM users u WHERE u.email IS NOT NULL "
            "AND lower(u.email) = lower(c.email)), "
            "EXISTS (SELECT FROM _oa_users x WHERE x.lemail = lower(c.email)) "
            "FROM unnest(%s::text[]) WITH ORDINALITY AS c(email, n) ORDER BY c.n",
            (emails,),
        )
        return [
            Probe(norm=norm, existing=existing, identical=False, incoming=incoming)
            for norm, existing, incoming in cur.fetchall()
        ]

    names, copies = resolve_names(
        [(number, username) for number, username, _, matched, _ in pending if matched],
        suffixed,
        probe_name,
    )
    emails, _ = resolve_names(
        [
            (number, email)
            for number, _, email, _, held in pending
            if held and email is not None and number not in copies
        ],
        suffixed_email,
        probe_email,
    )
    create_temp(
        cur,
        "_oa_decided",
        columns=sql.SQL(
            "ord bigint, decision text, final_name text, final_email text, target_id bigint"
        ),
    )
    with cur.copy(
        "COPY _oa_decided (ord, decision, final_name, final_email, target_id) FROM STDIN"
    ) as copy:
        for number, username, email, _, _ in pending:
            if number in copies:
                copy.write_row((number, "skip", username, email, copies[number]))
            else:
                copy.write_row(
                    (
                        number,
                        "rename",
                        names.get(number, username),
                        emails.get(number, email),
                        None,
                    )
                )
    cur.execute(
        "UPDATE _oa_users t SET decision = d.decision, final_username = d.final_name, "
        "final_email = d.final_email, target_id = d.target_id "
        "FROM _oa_decided d WHERE d.ord = t.ord"
    )
    drop_temp(cur, "_oa_decided")


def _decide_codes(cur: Cursor, conflict: str, acting: int | None) -> None:
    """``_oa_codes``: typed incoming invite codes, their creator as restored, their fate.

    Invite codes that the account performing the restore created are kept as
    they are (``skip_acting``).
    """
    decision = {
        "skip": "CASE WHEN matched THEN 'skip' ELSE 'insert' END",
        "overwrite": "CASE WHEN matched THEN 'overwrite' ELSE 'insert' END",
        "rename": "CASE WHEN NOT matched THEN 'insert' WHEN match_same THEN 'skip' END",
    }[conflict]
    # The creator is the incoming user's row as restored, else a namesake in the target.
    with archive_data(INVITES_MEMBER):
        create_temp(
            cur,
            "_oa_codes",
            query=sql.SQL(
                "SELECT c.*, {decision} AS decision, c.code AS final_code FROM ("
                " SELECT r.ord, r.doc->>'code' AS code, r.doc->>'created_by' AS created_by, "
                " r.doc->>'role' AS role, (r.doc->>'max_uses')::integer AS max_uses, "
                " (r.doc->>'uses')::integer AS uses, "
                " (r.doc->>'expires_at')::timestamptz AS expires_at, "
                " (r.doc->>'created_at')::timestamptz AS created_at, "
                " CASE WHEN ou.ord IS NOT NULL THEN ou.target_id ELSE tu.id END AS creator_id, "
                " i.code IS NOT NULL AS matched, "
                " coalesce(i.created_at = (r.doc->>'created_at')::timestamptz "
                "  AND i.role = r.doc->>'role' "
                "  AND i.max_uses IS NOT DISTINCT FROM (r.doc->>'max_uses')::integer "
                "  AND i.expires_at IS NOT DISTINCT FROM (r.doc->>'expires_at')::timestamptz, "
                "  false) AS match_same "
                " FROM _oa_codes_raw r "
                " LEFT JOIN _oa_users ou ON ou.lname = lower(r.doc->>'created_by') "
                " LEFT JOIN users tu ON lower(tu.username) = lower(r.doc->>'created_by') "
                " LEFT JOIN invite_codes i ON i.code = r.doc->>'code'"
                ") AS c"
            ).format(decision=sql.SQL(decision)),
        )
    require_unique(cur, "_oa_codes", "code", "code", "an invite code")
    if acting is not None:
        cur.execute(
            "UPDATE _oa_codes t SET decision = 'skip_acting' FROM invite_codes i "
            "WHERE t.decision = 'overwrite' AND i.code = t.code AND i.created_by = %s",
            (acting,),
        )
    if conflict == "rename":
        cur.execute("ANALYZE _oa_codes")
    if conflict != "rename":
        return
    cur.execute("SELECT ord, code FROM _oa_codes WHERE decision IS NULL ORDER BY ord")
    pending = [(int(number), str(code)) for number, code in cur.fetchall()]
    if not pending:
        return

    def probe_code(ords: list[int], codes: list[str]) -> list[Probe]:
        cur.execute(
            "SELECT c.code, i.code IS NOT NULL, "
            "coalesce(i.created_at = t.created_at AND i.role = t.role "
            "AND i.max_uses IS NOT DISTINCT FROM t.max_uses "
            "AND i.expires_at IS NOT DISTINCT FROM t.expires_at, false), "
            "EXISTS (SELECT FROM _oa_codes x WHERE x.code = c.code) "
            "FROM unnest(%s::bigint[], %s::text[]) WITH ORDINALITY AS c(ord, code, n) "
            "JOIN _oa_codes t ON t.ord = c.ord "
            "LEFT JOIN invite_codes i ON i.code = c.code ORDER BY c.n",
            (ords, codes),
        )
        return [
            Probe(norm=norm, existing=existing, identical=same, incoming=incoming)
            for norm, existing, same, incoming in cur.fetchall()
        ]

    codes, copies = resolve_names(pending, suffixed, probe_code)
    create_temp(cur, "_oa_decided", columns=sql.SQL("ord bigint, decision text, final_code text"))
    with cur.copy("COPY _oa_decided (ord, decision, final_code) FROM STDIN") as copy:
        for number, code in pending:
            if number in copies:
                copy.write_row((number, "skip", code))
            else:
                copy.write_row((number, "rename", codes[number]))
    cur.execute(
        "UPDATE _oa_codes t SET decision = d.decision, final_code = d.final_code "
        "FROM _oa_decided d WHERE d.ord = t.ord"
    )
    drop_temp(cur, "_oa_decided")


def _decide_tokens(cur: Cursor) -> None:
    """``_oa_tokens``: typed incoming API tokens, their owner as restored, their fate.

    Tokens follow their owner: a skipped user gets no tokens added. A token whose
    hash another token already holds cannot be added (token_hash is unique).
    """
    with archive_data(TOKENS_MEMBER):
        create_temp(
            cur,
            "_oa_tokens",
            query=sql.SQL(
                "SELECT t.*, CASE WHEN owner_decision IS NULL THEN 'orphan' "
                " WHEN owner_decision NOT IN ('insert', 'rename', 'overwrite') THEN 'skip' "
                " WHEN hash_holder IS NOT NULL AND hash_holder IS DISTINCT FROM match_id "
                " THEN 'skip_conflict' "
                " WHEN match_id IS NOT NULL THEN 'overwrite' ELSE 'insert' END AS decision FROM ("
                " SELECT r.ord, r.doc->>'username' AS username, lower(r.doc->>'username') AS lowner, "
                " r.doc->>'name' AS name, r.doc->>'token_hash' AS token_hash, "
                " (r.doc->>'created_at')::timestamptz AS created_at, "
                " (r.doc->>'last_used_at')::timestamptz AS last_used_at, "
                " ou.decision AS owner_decision, ou.target_id AS owner_id, m.id AS match_id, "
                " h.id AS hash_holder "
                " FROM _oa_tokens_raw r "
                " LEFT JOIN _oa_users ou ON ou.lname = lower(r.doc->>'username') "
                " LEFT JOIN api_tokens m ON ou.decision = 'overwrite' AND m.user_id = ou.target_id "
                "  AND m.name = r.doc->>'name' "
                " LEFT JOIN api_tokens h ON h.token_hash = r.doc->>'token_hash'"
                ") AS t"
            ),
        )
    require_unique(
        cur,
        "_oa_tokens",
        "lowner, name",
        "username || '/' || name",
        "an API token name of one user",
    )
    require_unique(cur, "_oa_tokens", "token_hash", "username || '/' || name", "an API token hash")
    cur.execute(
        "SELECT username || '/' || name FROM _oa_tokens WHERE decision = 'orphan' "
        "ORDER BY ord LIMIT 3"
    )
    orphans = [str(row[0]) for row in cur.fetchall()]
    if orphans:
        raise CorruptArchiveError(
            f"{TOKENS_MEMBER}: API tokens of users the archive does not hold "
            f"({listing(orphans)}); the archive is damaged or was edited, use another archive"
        )


def _outcome(cur: Cursor, context: PlanContext) -> ComponentPlan:
    """The plan: counts, new names, warnings, blockers and steps from the recorded decisions."""
    counts = {
        "users": counts_of(cur, "_oa_users"),
        "invite_codes": counts_of(cur, "_oa_codes"),
        "api_tokens": counts_of(cur, "_oa_tokens"),
    }
    cur.execute(
        "SELECT username, final_username, email, final_email FROM _oa_users "
        "WHERE decision = 'rename' ORDER BY ord"
    )
    user_names: dict[str, str] = {}
    user_emails: dict[str, str] = {}
    for username, final_username, email, final_email in cur.fetchall():
        if final_username != username:
            user_names[username] = final_username
        if final_email != email:
            user_emails[email] = final_email
    cur.execute("SELECT code, final_code FROM _oa_codes WHERE decision = 'rename' ORDER BY ord")
    renames: dict[str, Mapping[str, str]] = {
        "users": user_names,
        "invite_codes": {str(code): str(new) for code, new in cur.fetchall()},
    }
    if user_emails:
        renames["users.email"] = user_emails
    blockers = _blockers(cur)
    warnings = [*_kept_and_renumbered(cur), *_warnings(cur, user_emails)]
    steps = _steps(counts, context)
    return ComponentPlan(
        blockers=tuple(blockers),
        warnings=tuple(warnings),
        steps=tuple(steps),
        counts=counts,
        renames=renames,
    )


def _blockers(cur: Cursor) -> list[Issue]:
    blockers: list[Issue] = []
    cur.execute(
        "SELECT (SELECT count(*) FROM users WHERE role = 'admin' AND NOT disabled), "
        "(SELECT count(*) FROM users u LEFT JOIN _oa_users t "
        " ON t.target_id = u.id AND t.decision = 'overwrite' "
        " WHERE u.role = 'admin' AND NOT u.disabled AND t.ord IS NULL) "
        "+ (SELECT count(*) FROM _oa_users WHERE decision IN ('insert', 'rename', 'overwrite') "
        " AND role = 'admin' AND NOT disabled)"
    )
    row = cur.fetchone()
    assert row is not None
    before, after = int(row[0]), int(row[1])
    if before > 0 and after == 0:
        blockers.append(
            Issue(
                "no_admin_left",
                "after this restore no enabled administrator account would remain, so "
                "nobody could manage the server; choose the skip or rename strategy, or "
                "restore an archive that holds an enabled administrator",
            )
        )
    return blockers


_ACCOUNT_COLUMNS = (
    ("username", "username"),
    ("email", "e-mail"),
    ("display_name", "display name"),
    ("password_hash", "password"),
    ("role", "role"),
    ("disabled", "disabled flag"),
    ("preferences", "preferences"),
    ("created_at", "creation time"),
    ("last_login_at", "last login"),
)
_ACTING_DIFFERENCES = sql.SQL(
    "SELECT array_remove(ARRAY[{}], NULL), "
    "(SELECT count(*) FROM _oa_tokens k WHERE k.lowner = t.lname) "
    "FROM _oa_users t JOIN users u ON u.id = t.match_id WHERE t.decision = 'skip_acting'"
).format(
    sql.SQL(", ").join(
        sql.SQL("CASE WHEN {} IS DISTINCT FROM {} THEN {} END").format(
            sql.Identifier("t", column), sql.Identifier("u", column), sql.Literal(shown)
        )
        for column, shown in _ACCOUNT_COLUMNS
    )
)


def _kept_and_renumbered(cur: Cursor) -> list[Issue]:
    """Warnings for the acting user's account kept as it is, and for user ids given anew."""
    warnings: list[Issue] = []
    cur.execute(_ACTING_DIFFERENCES)
    row = cur.fetchone()
    differs, tokens = ([], 0) if row is None else (list(row[0]), int(row[1]))
    cur.execute("SELECT count(*) FROM _oa_codes WHERE decision = 'skip_acting'")
    codes = cur.fetchone()
    kept_codes = 0 if codes is None else int(codes[0])
    if row is not None or kept_codes:
        warnings.append(
            Issue(
                "acting_user_kept",
                "the account performing this restore stays exactly as it is (every column, "
                "its API tokens, sessions and the invite codes it created): "
                + (
                    "the archive's version of it"
                    + (f" (different {', '.join(differs)})" if differs else "")
                    + f" is not applied and its {tokens} API token(s) in the archive are not "
                    "added or changed; "
                    if row is not None
                    else ""
                )
                + f"{kept_codes} invite code(s) it created keep their current values. An "
                "archive never changes the account that restores it; to restore this "
                "account from the archive, restore while signed in as another administrator",
            )
        )
    cur.execute(
        "SELECT username, id, target_id FROM _oa_users WHERE id > %s "
        "AND decision IN ('insert', 'rename') ORDER BY ord",
        (MAX_RESTORED_ID,),
    )
    renumbered = [f"{name} ({old} -> {new})" for name, old, new in cur.fetchall()]
    if renumbered:
        warnings.append(
            Issue(
                "ids_renumbered",
                f"{len(renumbered)} user(s) of the archive have ids above {MAX_RESTORED_ID} "
                f"(2^53) and get new ids ({listing(renumbered)}); keeping such ids would move "
                "the id sequence towards its end until the server could create no more "
                "accounts. Users are matched by name, so nothing depends on their old ids",
            )
        )
    return warnings


def _warnings(cur: Cursor, user_emails: Mapping[str, str]) -> list[Issue]:
    warnings: list[Issue] = []
    cur.execute(
        "SELECT final_username FROM _oa_users WHERE role = 'admin' "
        "AND decision IN ('insert', 'rename', 'overwrite') ORDER BY ord"
    )
    admins = [str(row[0]) for row in cur.fetchall()]
    if admins:
        warnings.append(
            Issue(
                "admin_accounts_imported",
                f"the restore adds or updates {len(admins)} administrator account(s) "
                f"({listing(admins)}); check that each of them should have full control of "
                "the server",
            )
        )
    cur.execute(
        "SELECT t.username, u.username FROM _oa_users t JOIN users u ON u.id = t.email_holder "
        "WHERE t.decision = 'skip_email' ORDER BY t.ord"
    )
    skipped = [f"{mine} (e-mail used by {theirs})" for mine, theirs in cur.fetchall()]
    if skipped:
        warnings.append(
            Issue(
                "email_conflict",
                f"{len(skipped)} user(s) of the archive are skipped because another account "
                f"already uses their e-mail address: {', '.join(skipped[:_LISTED])}"
                f"{f' and {len(skipped) - _LISTED} more' if len(skipped) > _LISTED else ''}; "
                "change the e-mail of the existing account or use the rename strategy to "
                "restore them",
            )
        )
    if user_emails:
        warnings.append(
            Issue(
                "email_conflict",
                f"{len(user_emails)} restored user(s) get a new e-mail address because the "
                f"old one is in use ({listing([f'{a} -> {b}' for a, b in user_emails.items()])})"
                "; tell them their new address or correct it after the restore",
            )
        )
    cur.execute(
        "SELECT username || '/' || name FROM _oa_tokens WHERE decision = 'skip_conflict' "
        "ORDER BY ord"
    )
    tokens = [str(row[0]) for row in cur.fetchall()]
    if tokens:
        warnings.append(
            Issue(
                "token_conflict",
                f"{len(tokens)} API token(s) are skipped because another token already has "
                f"the same hash ({listing(tokens)}); their owners must create new tokens",
            )
        )
    return warnings


def _steps(counts: Mapping[str, RowCounts], context: PlanContext) -> list[str]:
    how = {
        "skip": "existing ones are kept as they are",
        "overwrite": "existing ones are updated in place",
        "rename": "conflicting ones are added under new names",
    }[context.conflict]
    steps = []
    for table, label in (
        ("users", "users"),
        ("invite_codes", "invite codes"),
        ("api_tokens", "API tokens"),
    ):
        c = counts[table]
        steps.append(
            f"Restore {label} ({how}): {c.insert} added, {c.overwrite} updated, "
            f"{c.rename} added under a new name, {c.skip} skipped."
        )
    if archive_schema(context) < context.schema_version:
        steps.append(
            f"Convert the rows from schema version {archive_schema(context)} to "
            f"{context.schema_version} (new columns take their defaults)."
        )
    steps.append("Move the id sequences of users and API tokens past the highest id.")
    return steps


# -- applying -----------------------------------------------------------------


def _move_sequence(cur: Cursor, table: str) -> None:
    """Make the identity sequence of ``table`` hand out ids above every id in use."""
    cur.execute(
        sql.SQL(
            "SELECT setval(s.seq, greatest(m.top, coalesce(pg_sequence_last_value(s.seq), 0), 1),"
            " m.top > 0 OR pg_sequence_last_value(s.seq) IS NOT NULL) "
            "FROM (SELECT pg_get_serial_sequence({name}, 'id')::regclass AS seq) AS s, "
            "(SELECT coalesce(max(id), 0) AS top FROM {table}) AS m"
        ).format(name=sql.Literal(table), table=sql.Identifier(table))
    )


def _apply(cur: Cursor, schema_version: int, decided: ComponentPlan) -> None:
    users = decided.counts["users"]
    codes = decided.counts["invite_codes"]
    tokens = decided.counts["api_tokens"]
    columns = (
        "id, username, email, display_name, password_hash, role, disabled, preferences, "
        "created_at, last_login_at"
    )
    values = (
        "target_id, final_username, final_email, display_name, password_hash, role, "
        "disabled, preferences, created_at, last_login_at"
    )
    inserted = 0
    if schema_version >= 2:
        cur.execute(
            sql.SQL(
                "INSERT INTO users ({}, locale) SELECT {}, locale FROM _oa_users "
                "WHERE decision IN ('insert', 'rename') AND locale IS NOT NULL"
            ).format(sql.SQL(columns), sql.SQL(values))
        )
        inserted += cur.rowcount
    # Rows without a locale (archives of schema version 1) take the column's default.
    where = " AND locale IS NULL" if schema_version >= 2 else ""
    cur.execute(
        sql.SQL(
            "INSERT INTO users ({}) SELECT {} FROM _oa_users "
            "WHERE decision IN ('insert', 'rename'){}"
        ).format(sql.SQL(columns), sql.SQL(values), sql.SQL(where))
    )
    inserted += cur.rowcount
    if inserted != users.insert + users.rename:
        raise RestoreFailedError(
            f"restoring users added {inserted} rows instead of the "
            f"{users.insert + users.rename} planned; the restore was rolled back, plan it again"
        )
    # Updated in place: the id stays, so history, tokens and sessions stay attached.
    # Rows already equal to the archive's are left alone (no new row versions).
    names = [
        "username",
        "email",
        "display_name",
        "password_hash",
        "role",
        "disabled",
        "preferences",
        "created_at",
        "last_login_at",
    ]
    theirs: list[sql.Composable] = [sql.Identifier("t", name) for name in names]
    if schema_version >= 2:
        names.append("locale")
        theirs.append(sql.SQL("coalesce(t.locale, u.locale)"))
    new_values = sql.SQL(", ").join(theirs)
    cur.execute(
        sql.SQL(
            "UPDATE users u SET ({columns}) = ({new}) FROM _oa_users t "
            "WHERE t.decision = 'overwrite' AND u.id = t.target_id "
            "AND ({old}) IS DISTINCT FROM ({new})"
        ).format(
            columns=sql.SQL(", ").join(sql.Identifier(name) for name in names),
            old=sql.SQL(", ").join(sql.Identifier("u", name) for name in names),
            new=new_values,
        )
    )
    expect_rows(cur, "users", users.overwrite, at_most=True)
    _move_sequence(cur, "users")

    uses = sql.Identifier("uses" if schema_version >= 2 else "use_count")
    cur.execute(
        sql.SQL(
            "INSERT INTO invite_codes (code, created_by, role, max_uses, {}, expires_at, "
            "created_at) SELECT final_code, creator_id, role, max_uses, uses, expires_at, "
            "created_at FROM _oa_codes WHERE decision IN ('insert', 'rename')"
        ).format(uses)
    )
    expect_rows(cur, "invite codes", codes.insert + codes.rename)
    cur.execute(
        sql.SQL(
            "UPDATE invite_codes i SET created_by = t.creator_id, role = t.role, "
            "max_uses = t.max_uses, {uses} = t.uses, expires_at = t.expires_at, "
            "created_at = t.created_at FROM _oa_codes t "
            "WHERE t.decision = 'overwrite' AND i.code = t.code AND "
            "(i.created_by, i.role, i.max_uses, i.{uses}, i.expires_at, i.created_at) "
            "IS DISTINCT FROM (t.creator_id, t.role, t.max_uses, t.uses, t.expires_at, "
            "t.created_at)"
        ).format(uses=uses)
    )
    expect_rows(cur, "invite codes", codes.overwrite, at_most=True)

    _move_sequence(cur, "api_tokens")
    cur.execute(
        "INSERT INTO api_tokens (user_id, name, token_hash, created_at, last_used_at) "
        "SELECT owner_id, name, token_hash, created_at, last_used_at FROM _oa_tokens "
        "WHERE decision = 'insert'"
    )
    expect_rows(cur, "API tokens", tokens.insert)
    cur.execute(
        "UPDATE api_tokens a SET token_hash = t.token_hash, created_at = t.created_at, "
        "last_used_at = t.last_used_at FROM _oa_tokens t "
        "WHERE t.decision = 'overwrite' AND a.id = t.match_id AND "
        "(a.token_hash, a.created_at, a.last_used_at) "
        "IS DISTINCT FROM (t.token_hash, t.created_at, t.last_used_at)"
    )
    expect_rows(cur, "API tokens", tokens.overwrite, at_most=True)
    _move_sequence(cur, "api_tokens")
