"""Plan and restore of the ``users_auth`` component, and what the JSON components share.

One function, :func:`_decide`, makes every decision of a restore: it loads the
archive's rows into temporary tables, matches them against the target database
and records, per incoming row, what happens to it (``insert``, ``rename``,
``overwrite``, ``skip``, ``skip_email``, ``skip_conflict``) together with its
final key and target id. :func:`plan` runs it and rolls everything back;
:func:`restore` runs it again inside the restore's transaction, refuses to go on
if the outcome differs from the plan, and applies the decisions with a handful of
set-based statements.

Every archive line is parsed strictly in Python (duplicate keys, NaN and deep
nesting refused, fields type-checked) and then handed to PostgreSQL unchanged
with ``COPY``: PostgreSQL parses it again as ``jsonb``, so JSON numbers inside
preferences keep their exact value. Python keeps no row, only the keys of rows
whose new name must be chosen (the rename strategy).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import IO, Any, cast

import attrs
import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from odeion_archive import _safejson
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

__all__ = ["plan", "restore"]

COMPONENT = "users_auth"
USERS_MEMBER = "users_auth/users.jsonl"
INVITES_MEMBER = "users_auth/invite_codes.jsonl"
TOKENS_MEMBER = "users_auth/api_tokens.jsonl"

#: The tables whose counts this component predicts, and the keys of its renames.
TABLES = ("users", "invite_codes", "api_tokens")
RENAME_KEYS = ("users", "users.email", "invite_codes")

_ROLES = frozenset({"admin", "user", "guest"})
_INT32 = 2**31
_INT64 = 2**63
#: How many names a warning lists before it says "and N more".
_LISTED = 10
#: Candidates tried per row before the rename strategy gives up.
_MAX_CANDIDATES = 10_000

Cursor = psycopg.Cursor[tuple[Any, ...]]
Progress = Callable[[str, int, int | None], None]


# == shared by the JSON components ==========================================

# -- validation of archive rows ---------------------------------------------

Check = Callable[[Any], str | None]


def check_text(value: Any) -> str | None:
    return None if type(value) is str and value else "must be a non-empty string"


def check_opt_text(value: Any) -> str | None:
    return None if value is None or type(value) is str else "must be a string or null"


def check_id(value: Any) -> str | None:
    ok = type(value) is int and 0 < value < _INT64
    return None if ok else "must be a positive 64-bit integer"


def check_count(value: Any) -> str | None:
    ok = type(value) is int and 0 <= value < _INT32
    return None if ok else "must be a non-negative 32-bit integer"


def check_opt_positive(value: Any) -> str | None:
    ok = value is None or (type(value) is int and 0 < value < _INT32)
    return None if ok else "must be a positive 32-bit integer or null"


def check_role(value: Any) -> str | None:
    return None if value in _ROLES and type(value) is str else "must be admin, user or guest"


def check_bool(value: Any) -> str | None:
    return None if type(value) is bool else "must be true or false"


def check_object(value: Any) -> str | None:
    return None if type(value) is dict else "must be a JSON object"


def check_any(_value: Any) -> str | None:
    return None


@attrs.frozen
class RowSpec:
    """The fields of one kind of archive line: required and optional, each with its check."""

    required: Mapping[str, Check]
    optional: Mapping[str, Check] = attrs.field(factory=dict)

    def check(self, value: dict[str, Any], where: str) -> None:
        """Raise :class:`CorruptArchiveError` unless ``value`` has exactly valid fields."""
        for key, check in self.required.items():
            if key not in value:
                raise CorruptArchiveError(
                    f"{where}: the field {key!r} is missing; the archive is damaged or was "
                    "not written by odeion-archive, use another archive"
                )
            problem = check(value[key])
            if problem is not None:
                raise CorruptArchiveError(
                    f"{where}: the field {key!r} {problem} (found {value[key]!r:.80}); the "
                    "archive is damaged or was edited, use another archive"
                )
        if len(value) != len(self.required):
            for key, field in value.items():
                if key in self.required:
                    continue
                optional = self.optional.get(key)
                if optional is None:
                    raise CorruptArchiveError(
                        f"{where}: unknown field {key!r:.80}; the archive was written by a "
                        "newer or different program, use a matching odeion-archive"
                    )
                problem = optional(field)
                if problem is not None:
                    raise CorruptArchiveError(
                        f"{where}: the field {key!r} {problem} (found {field!r:.80}); "
                        "the archive is damaged or was edited, use another archive"
                    )


# -- loading members into temporary tables ------------------------------------


def _lines(stream: IO[bytes], what: str) -> Iterator[tuple[int, bytes]]:
    """The non-blank lines of a member with their numbers, newline removed."""
    reader: IO[bytes] = stream
    if not isinstance(stream, io.BufferedIOBase):
        reader = cast("IO[bytes]", io.BufferedReader(
            cast("io.RawIOBase", stream), buffer_size=BATCH_BYTES
        ))
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
        if line.strip():
            yield number, line


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
        cur.execute(
            sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(ident, columns)
        )


def drop_temp(cur: Cursor, *names: str) -> None:
    """Drop temporary tables of this module."""
    for name in names:
        cur.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(sql.Identifier(name)))


def load_member(
    context: PlanContext,
    path: str,
    table: str,
    spec: RowSpec,
    progress: Progress | None = None,
) -> int:
    """Parse the JSON Lines member ``path`` strictly into ``table (ord, doc jsonb)``.

    ``ord`` is the line number. Returns the number of rows. Raises
    :class:`ArchiveInvalidError` for the first line that is not valid.
    """
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
            for number, line in _lines(stream, path):
                where = f"{path} line {number}"
                value = _safejson.loads(line, what=where)
                if type(value) is not dict:
                    raise CorruptArchiveError(
                        f"{where}: not a JSON object; the archive is damaged, use another archive"
                    )
                spec.check(value, where)
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
                        progress(f"read {path}", rows, None)
            if buffer:
                copy.write(bytes(buffer))
    if progress is not None:
        progress(f"read {path}", rows, rows)
    return rows


def check_row_count(context: PlanContext, table: str, path: str, found: int) -> None:
    """Compare a member's line count with the count the manifest records, if any."""
    rows = context.entry.facts.get("rows")
    expected = rows.get(table) if isinstance(rows, Mapping) else None
    if type(expected) is int and expected != found:
        raise CorruptArchiveError(
            f"{path}: holds {found} rows but the manifest records {expected}; the archive "
            "is incomplete or was edited, use another archive"
        )


def duplicates(cur: Cursor, table: str, key: str, shown: str, where: str = "true") -> list[str]:
    """Up to three examples of keys that occur more than once in a temporary table."""
    cur.execute(
        sql.SQL(
            "SELECT min({shown}) FROM {table} WHERE {where} GROUP BY {key} "
            "HAVING count(*) > 1 ORDER BY 1 LIMIT 3"
        ).format(
            shown=sql.SQL(shown), table=sql.Identifier(table), where=sql.SQL(where),
            key=sql.SQL(key),
        )
    )
    return [str(row[0]) for row in cur.fetchall()]


def require_unique(cur: Cursor, table: str, key: str, shown: str, what: str,
                   where: str = "true") -> None:
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
        sql.SQL("SELECT decision, count(*) FROM {} GROUP BY decision").format(
            sql.Identifier(table)
        )
    )
    found = {str(decision): int(n) for decision, n in cur.fetchall()}
    return RowCounts(
        insert=found.pop("insert", 0),
        overwrite=found.pop("overwrite", 0),
        rename=found.pop("rename", 0),
        skip=sum(found.values()),
    )


def plan_with(
    context: PlanContext, decide: Callable[[PlanContext, Progress | None], ComponentPlan]
) -> ComponentPlan:
    """Run ``decide`` in a transaction (or savepoint) that is always rolled back."""
    blockers = schema_blockers(context)
    if blockers:
        return ComponentPlan(blockers=blockers)
    try:
        with context.connection.transaction(force_rollback=True):
            return decide(context, None)
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


def expect_rows(cur: Cursor, what: str, expected: int) -> None:
    """Make sure the last statement changed exactly the rows the decisions predicted."""
    if cur.rowcount != expected:
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
        "id": check_id,
        "username": check_text,
        "email": check_opt_text,
        "display_name": check_opt_text,
        "password_hash": check_text,
        "role": check_role,
        "disabled": check_bool,
        "preferences": check_object,
        "created_at": check_text,
        "last_login_at": check_opt_text,
    },
    optional={"locale": check_text},
)
_INVITES = RowSpec(
    required={
        "code": check_text,
        "created_by": check_opt_text,
        "role": check_role,
        "max_uses": check_opt_positive,
        "uses": check_count,
        "expires_at": check_opt_text,
        "created_at": check_text,
    }
)
_TOKENS = RowSpec(
    required={
        "username": check_text,
        "name": check_text,
        "token_hash": check_text,
        "created_at": check_text,
        "last_used_at": check_opt_text,
    }
)

_TEMP = (
    "_oa_users_raw", "_oa_users", "_oa_codes_raw", "_oa_codes",
    "_oa_tokens_raw", "_oa_tokens", "_oa_decided",
)


def plan(context: PlanContext) -> ComponentPlan:
    """Predict what restoring users, invite codes and API tokens would do; change nothing."""
    return plan_with(context, _decide)


def restore(context: RestoreContext) -> None:
    """Carry out the plan inside the caller's transaction (the caller commits)."""
    blockers = schema_blockers(context)
    if blockers:
        raise RestoreBlockedError(
            "; ".join(f"[{b.code}] {b.message}" for b in blockers), ComponentPlan(blockers=blockers)
        )
    conn = context.connection
    with conn.cursor() as cur:
        # Nothing else may write these tables between the decisions and their application.
        cur.execute(
            "LOCK TABLE users, invite_codes, api_tokens IN SHARE ROW EXCLUSIVE MODE"
        )

    def report(phase: str, done: int, total: int | None) -> None:
        context.progress(phase, done, total, "rows")

    decided = _decide(context, report)
    check_against_plan(context, decided, TABLES, RENAME_KEYS)
    context.cancel.raise_if_cancelled()
    with conn.cursor() as cur:
        _apply(cur, context.schema_version, decided)
        drop_temp(cur, *_TEMP)


# -- deciding -----------------------------------------------------------------


def _load(context: PlanContext, progress: Progress | None) -> None:
    """Load the three members into typed temporary tables and check their keys."""
    conn = context.connection
    loaded = {
        "users": load_member(context, USERS_MEMBER, "_oa_users_raw", _USERS, progress),
        "invite_codes": load_member(context, INVITES_MEMBER, "_oa_codes_raw", _INVITES, progress),
        "api_tokens": load_member(context, TOKENS_MEMBER, "_oa_tokens_raw", _TOKENS, progress),
    }
    for table, path in (("users", USERS_MEMBER), ("invite_codes", INVITES_MEMBER),
                        ("api_tokens", TOKENS_MEMBER)):
        check_row_count(context, table, path, loaded[table])
    with conn.cursor() as cur, archive_data(USERS_MEMBER):
        create_temp(cur, "_oa_users", query=sql.SQL(
            "SELECT ord, (doc->>'id')::bigint AS id, doc->>'username' AS username, "
            "lower(doc->>'username') AS lname, doc->>'email' AS email, "
            "lower(doc->>'email') AS lemail, doc->>'display_name' AS display_name, "
            "doc->>'password_hash' AS password_hash, doc->>'role' AS role, "
            "(doc->'disabled')::boolean AS disabled, doc->'preferences' AS preferences, "
            "(doc->>'created_at')::timestamptz AS created_at, "
            "(doc->>'last_login_at')::timestamptz AS last_login_at, doc->>'locale' AS locale, "
            "NULL::bigint AS match_id, NULL::boolean AS match_same, "
            "NULL::bigint AS email_holder, NULL::text AS decision, "
            "doc->>'username' AS final_username, doc->>'email' AS final_email, "
            "NULL::bigint AS target_id FROM _oa_users_raw"
        ))
    with conn.cursor() as cur, archive_data(INVITES_MEMBER):
        create_temp(cur, "_oa_codes", query=sql.SQL(
            "SELECT ord, doc->>'code' AS code, doc->>'created_by' AS created_by, "
            "doc->>'role' AS role, (doc->>'max_uses')::integer AS max_uses, "
            "(doc->>'uses')::integer AS uses, (doc->>'expires_at')::timestamptz AS expires_at, "
            "(doc->>'created_at')::timestamptz AS created_at, NULL::bigint AS creator_id, "
            "false AS matched, NULL::boolean AS match_same, NULL::text AS decision, "
            "doc->>'code' AS final_code FROM _oa_codes_raw"
        ))
    with conn.cursor() as cur, archive_data(TOKENS_MEMBER):
        create_temp(cur, "_oa_tokens", query=sql.SQL(
            "SELECT ord, doc->>'username' AS username, lower(doc->>'username') AS lowner, "
            "doc->>'name' AS name, doc->>'token_hash' AS token_hash, "
            "(doc->>'created_at')::timestamptz AS created_at, "
            "(doc->>'last_used_at')::timestamptz AS last_used_at, "
            "NULL::text AS owner_decision, NULL::bigint AS owner_id, NULL::bigint AS match_id, "
            "NULL::bigint AS hash_holder, NULL::text AS decision FROM _oa_tokens_raw"
        ))
    with conn.cursor() as cur:
        drop_temp(cur, "_oa_users_raw", "_oa_codes_raw", "_oa_tokens_raw")
        for table in ("_oa_users", "_oa_codes", "_oa_tokens"):
            cur.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
        require_unique(cur, "_oa_users", "lname", "username", "a username (ignoring case)")
        require_unique(cur, "_oa_users", "id", "id::text", "a user id")
        require_unique(cur, "_oa_users", "lemail", "email", "an e-mail address (ignoring case)",
                       "lemail IS NOT NULL")
        require_unique(cur, "_oa_codes", "code", "code", "an invite code")
        require_unique(cur, "_oa_tokens", "lowner, name", "username || '/' || name",
                       "an API token name of one user")
        require_unique(cur, "_oa_tokens", "token_hash", "username || '/' || name",
                       "an API token hash")
        cur.execute(
            "SELECT username || '/' || name FROM _oa_tokens t WHERE NOT EXISTS "
            "(SELECT FROM _oa_users u WHERE u.lname = t.lowner) ORDER BY ord LIMIT 3"
        )
        orphans = [str(row[0]) for row in cur.fetchall()]
        if orphans:
            raise CorruptArchiveError(
                f"{TOKENS_MEMBER}: API tokens of users the archive does not hold "
                f"({listing(orphans)}); the archive is damaged or was edited, use another archive"
            )


def _decide(context: PlanContext, progress: Progress | None) -> ComponentPlan:
    """Make every decision of the restore; the temporary tables record them per row."""
    _load(context, progress)
    conflict = context.conflict
    with context.connection.cursor(row_factory=tuple_row) as cur:
        _decide_users(cur, conflict)
        _decide_codes(cur, conflict)
        _decide_tokens(cur)
        return _outcome(cur, context)


def _decide_users(cur: Cursor, conflict: str) -> None:
    cur.execute(
        "UPDATE _oa_users t SET match_id = u.id, match_same = "
        "(u.password_hash = t.password_hash AND u.created_at = t.created_at) "
        "FROM users u WHERE lower(u.username) = t.lname"
    )
    cur.execute(
        "UPDATE _oa_users t SET email_holder = u.id FROM users u "
        "WHERE u.email IS NOT NULL AND lower(u.email) = t.lemail"
    )
    if conflict == "skip":
        decision = (
            "CASE WHEN match_id IS NOT NULL THEN 'skip' "
            "WHEN email_holder IS NOT NULL THEN 'skip_email' ELSE 'insert' END"
        )
    elif conflict == "overwrite":
        decision = (
            "CASE WHEN match_id IS NOT NULL AND email_holder IS NOT NULL "
            "AND email_holder <> match_id THEN 'skip_email' "
            "WHEN match_id IS NOT NULL THEN 'overwrite' "
            "WHEN email_holder IS NOT NULL THEN 'skip_email' ELSE 'insert' END"
        )
    else:
        # Rows left NULL need new names, chosen below.
        decision = (
            "CASE WHEN match_id IS NULL AND email_holder IS NULL THEN 'insert' "
            "WHEN match_id IS NOT NULL AND match_same THEN 'skip' END"
        )
    cur.execute(
        sql.SQL("UPDATE _oa_users SET decision = {}, target_id = match_id").format(
            sql.SQL(decision)
        )
    )
    if conflict == "rename":
        _rename_users(cur)
    # New rows keep their archive id where it is free, else get one past every id in use.
    cur.execute(
        "UPDATE _oa_users t SET target_id = t.id WHERE t.decision IN ('insert', 'rename') "
        "AND t.target_id IS NULL AND NOT EXISTS (SELECT FROM users u WHERE u.id = t.id)"
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
    create_temp(cur, "_oa_decided", columns=sql.SQL(
        "ord bigint, decision text, final_name text, final_email text, target_id bigint"
    ))
    with cur.copy(
        "COPY _oa_decided (ord, decision, final_name, final_email, target_id) FROM STDIN"
    ) as copy:
        for number, username, email, _, _ in pending:
            if number in copies:
                copy.write_row((number, "skip", username, email, copies[number]))
            else:
                copy.write_row((
                    number, "rename", names.get(number, username), emails.get(number, email),
                    None,
                ))
    cur.execute(
        "UPDATE _oa_users t SET decision = d.decision, final_username = d.final_name, "
        "final_email = d.final_email, target_id = d.target_id "
        "FROM _oa_decided d WHERE d.ord = t.ord"
    )
    drop_temp(cur, "_oa_decided")


def _decide_codes(cur: Cursor, conflict: str) -> None:
    # The creator as restored: the incoming user's row in the target, else a namesake.
    cur.execute(
        "UPDATE _oa_codes c SET creator_id = u.target_id FROM _oa_users u "
        "WHERE c.created_by IS NOT NULL AND u.lname = lower(c.created_by)"
    )
    cur.execute(
        "UPDATE _oa_codes c SET creator_id = u.id FROM users u WHERE c.creator_id IS NULL "
        "AND c.created_by IS NOT NULL AND lower(u.username) = lower(c.created_by) "
        "AND NOT EXISTS (SELECT FROM _oa_users x WHERE x.lname = lower(c.created_by))"
    )
    cur.execute(
        "UPDATE _oa_codes c SET matched = true, match_same = (i.created_at = c.created_at "
        "AND i.role = c.role AND i.max_uses IS NOT DISTINCT FROM c.max_uses "
        "AND i.expires_at IS NOT DISTINCT FROM c.expires_at) "
        "FROM invite_codes i WHERE i.code = c.code"
    )
    decision = {
        "skip": "CASE WHEN matched THEN 'skip' ELSE 'insert' END",
        "overwrite": "CASE WHEN matched THEN 'overwrite' ELSE 'insert' END",
        "rename": "CASE WHEN NOT matched THEN 'insert' WHEN match_same THEN 'skip' END",
    }[conflict]
    cur.execute(sql.SQL("UPDATE _oa_codes SET decision = {}").format(sql.SQL(decision)))
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
    create_temp(
        cur, "_oa_decided", columns=sql.SQL("ord bigint, decision text, final_code text")
    )
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
    cur.execute(
        "UPDATE _oa_tokens t SET owner_decision = u.decision, owner_id = u.target_id "
        "FROM _oa_users u WHERE u.lname = t.lowner"
    )
    cur.execute(
        "UPDATE _oa_tokens t SET match_id = a.id FROM api_tokens a "
        "WHERE t.owner_decision = 'overwrite' AND a.user_id = t.owner_id AND a.name = t.name"
    )
    cur.execute(
        "UPDATE _oa_tokens t SET hash_holder = a.id FROM api_tokens a "
        "WHERE a.token_hash = t.token_hash"
    )
    # Tokens follow their owner: a skipped user gets no tokens added. A token whose
    # hash another token already holds cannot be added (token_hash is unique).
    cur.execute(
        "UPDATE _oa_tokens SET decision = CASE "
        "WHEN owner_decision NOT IN ('insert', 'rename', 'overwrite') THEN 'skip' "
        "WHEN hash_holder IS NOT NULL AND hash_holder IS DISTINCT FROM match_id "
        "THEN 'skip_conflict' "
        "WHEN match_id IS NOT NULL THEN 'overwrite' ELSE 'insert' END"
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
    cur.execute(
        "SELECT code, final_code FROM _oa_codes WHERE decision = 'rename' ORDER BY ord"
    )
    renames: dict[str, Mapping[str, str]] = {
        "users": user_names,
        "invite_codes": {str(code): str(new) for code, new in cur.fetchall()},
    }
    if user_emails:
        renames["users.email"] = user_emails
    blockers = _blockers(cur, context)
    warnings = _warnings(cur, user_emails)
    steps = _steps(counts, context)
    return ComponentPlan(
        blockers=tuple(blockers),
        warnings=tuple(warnings),
        steps=tuple(steps),
        counts=counts,
        renames=renames,
    )


def _blockers(cur: Cursor, context: PlanContext) -> list[Issue]:
    blockers: list[Issue] = []
    acting = context.options.get("acting_user")
    if isinstance(acting, str) and acting:
        cur.execute(
            "SELECT u.username, array_remove(ARRAY["
            " CASE WHEN t.password_hash IS DISTINCT FROM u.password_hash THEN 'password' END,"
            " CASE WHEN t.role IS DISTINCT FROM u.role THEN 'role' END,"
            " CASE WHEN t.disabled AND NOT u.disabled THEN 'disabled' END], NULL) "
            "FROM _oa_users t JOIN users u ON u.id = t.target_id "
            "WHERE t.decision = 'overwrite' AND lower(u.username) = lower(%s)",
            (acting,),
        )
        row = cur.fetchone()
        if row is not None and row[1]:
            blockers.append(
                Issue(
                    "acting_user_overwritten",
                    f"the overwrite would change the {', '.join(row[1])} of the account "
                    f"{row[0]!r} that performs this restore; choose the skip or rename "
                    "strategy, or restore while signed in as another administrator",
                )
            )
    cur.execute(
        "SELECT (SELECT count(*) FROM users WHERE role = 'admin' AND NOT disabled), "
        "(SELECT count(*) FROM users u WHERE role = 'admin' AND NOT disabled AND NOT EXISTS "
        " (SELECT FROM _oa_users t WHERE t.decision = 'overwrite' AND t.target_id = u.id)) "
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
    for table, label in (("users", "users"), ("invite_codes", "invite codes"),
                         ("api_tokens", "API tokens")):
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
                "WHERE decision IN ('insert', 'rename') AND locale IS NOT NULL ORDER BY ord"
            ).format(sql.SQL(columns), sql.SQL(values))
        )
        inserted += cur.rowcount
    # Rows without a locale (archives of schema version 1) take the column's default.
    where = " AND locale IS NULL" if schema_version >= 2 else ""
    cur.execute(
        sql.SQL(
            "INSERT INTO users ({}) SELECT {} FROM _oa_users "
            "WHERE decision IN ('insert', 'rename'){} ORDER BY ord"
        ).format(sql.SQL(columns), sql.SQL(values), sql.SQL(where))
    )
    inserted += cur.rowcount
    if inserted != users.insert + users.rename:
        raise RestoreFailedError(
            f"restoring users added {inserted} rows instead of the "
            f"{users.insert + users.rename} planned; the restore was rolled back, plan it again"
        )
    # Updated in place: the id stays, so history, tokens and sessions stay attached.
    locale = ", locale = coalesce(t.locale, u.locale)" if schema_version >= 2 else ""
    cur.execute(
        sql.SQL(
            "UPDATE users u SET username = t.username, email = t.email, "
            "display_name = t.display_name, password_hash = t.password_hash, role = t.role, "
            "disabled = t.disabled, preferences = t.preferences, created_at = t.created_at, "
            "last_login_at = t.last_login_at{} "
            "FROM _oa_users t WHERE t.decision = 'overwrite' AND u.id = t.target_id"
        ).format(sql.SQL(locale))
    )
    expect_rows(cur, "users", users.overwrite)
    _move_sequence(cur, "users")

    uses = sql.Identifier("uses" if schema_version >= 2 else "use_count")
    cur.execute(
        sql.SQL(
            "INSERT INTO invite_codes (code, created_by, role, max_uses, {}, expires_at, "
            "created_at) SELECT final_code, creator_id, role, max_uses, uses, expires_at, "
            "created_at FROM _oa_codes WHERE decision IN ('insert', 'rename') ORDER BY ord"
        ).format(uses)
    )
    expect_rows(cur, "invite codes", codes.insert + codes.rename)
    cur.execute(
        sql.SQL(
            "UPDATE invite_codes i SET created_by = t.creator_id, role = t.role, "
            "max_uses = t.max_uses, {} = t.uses, expires_at = t.expires_at, "
            "created_at = t.created_at FROM _oa_codes t "
            "WHERE t.decision = 'overwrite' AND i.code = t.code"
        ).format(uses)
    )
    expect_rows(cur, "invite codes", codes.overwrite)

    _move_sequence(cur, "api_tokens")
    cur.execute(
        "INSERT INTO api_tokens (user_id, name, token_hash, created_at, last_used_at) "
        "SELECT owner_id, name, token_hash, created_at, last_used_at FROM _oa_tokens "
        "WHERE decision = 'insert' ORDER BY ord"
    )
    expect_rows(cur, "API tokens", tokens.insert)
    cur.execute(
        "UPDATE api_tokens a SET token_hash = t.token_hash, created_at = t.created_at, "
        "last_used_at = t.last_used_at FROM _oa_tokens t "
        "WHERE t.decision = 'overwrite' AND a.id = t.match_id"
    )
    expect_rows(cur, "API tokens", tokens.overwrite)
    _move_sequence(cur, "api_tokens")
