"""The allow list that every statement of a dump's SQL must pass before it runs.

A full_db restore replays the SQL that ``pg_restore`` writes. Each statement is
parsed with PostgreSQL's own parser (``pglast`` embeds libpg_query) and judged
on its syntax tree; the restore then sends exactly the text that was judged, as
one statement of the extended query protocol (which refuses a second statement
in the same message), so what is judged and what the server runs cannot differ.

Three verdicts:

* allowed: a statement of a kind ``pg_restore --no-owner --no-privileges``
  writes for a database like Odeion's (its preamble ``SET``\\ s with exactly the
  values it writes, schemas, tables, sequences, views, materialized views,
  indexes, constraints, types, domains, triggers, functions in ``sql`` or
  ``plpgsql``, comments, ``COPY ... FROM stdin``, ``setval``...);
* refused unless unsafe dumps are allowed: any other statement;
* always refused: whatever changes how later SQL text is read
  (``standard_conforming_strings``, ``client_encoding``...), the current role
  or session authorization, or the restore's single transaction; COPY to or
  from a program or a server file; and calls of functions that reach the
  server's files, processes or configuration, wherever they stand in a
  statement.

The guard is the second wall. The first is privilege: the SQL runs as the
database's owner, a role without superuser rights (see
:mod:`odeion_archive.components.full_db._roles`), so functions that the dump defines and the
restore calls (in defaults, constraints, indexes, materialized views) run with
the owner's rights only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import attrs
import pglast
from pglast import ast, enums, parser
from pglast.parser import ParseError

from odeion_archive.components.full_db._sqlrules import (
    _ALTER_TABLE_COMMANDS,
    _ASSIGN_MODE,
    _NEVER_FUNCTIONS,
    _NEVER_SETTINGS,
    _NEVER_STATEMENTS,
    _PLAIN_STATEMENTS,
    _PREAMBLE_SETTINGS,
    _READING_SETTINGS,
    _RESTORE_FUNCTIONS,
    _SAFE_LANGUAGES,
    _SHARED_OBJECTS,
    TRUSTED_EXTENSIONS,
)

__all__ = ["Refusal", "Statement", "judge", "parse", "refusal_of"]


@attrs.frozen
class Refusal:
    """Why a statement may not run; ``always``: not even when unsafe dumps are allowed."""

    reason: str
    always: bool


@attrs.frozen
class Statement:
    """One statement as it will be sent to the server, with the guard's verdict."""

    text: str
    #: The parse tree's node type name, such as ``"CreateStmt"``.
    kind: str
    #: ``COPY ... FROM stdin``: data lines follow the statement.
    copy_from_stdin: bool
    refusal: Refusal | None


class UnjudgeableError(ParseError):
    """SQL that cannot be judged as the server would read it: refused, never skipped."""


def _parse_sql(text: str) -> tuple[ast.RawStmt, ...]:
    if "\x00" in text:
        # The parser stops at a NUL byte: whatever follows would go unjudged.
        raise UnjudgeableError("SQL holding a NUL byte, which the parser would stop at")
    try:
        return parser.parse_sql(text)
    except RecursionError as exc:
        raise UnjudgeableError("a statement nested too deeply to be judged") from exc


def parse(text: str) -> list[Statement]:
    """Split ``text`` into statements and judge each; :class:`ParseError` if it does not parse.

    :class:`UnjudgeableError` (a :class:`ParseError`) for SQL that cannot be judged
    as the server would read it (a NUL byte, nesting too deep).
    """
    statements = []
    for raw in _parse_sql(text):
        start = raw.stmt_location or 0
        end = start + raw.stmt_len if raw.stmt_len else len(text)
        node = raw.stmt
        if node is None:
            continue
        statement_text = text[start:end]
        refusal = judge(node)
        if refusal is None and isinstance(node, ast.CreateFunctionStmt):
            refusal = _judge_plpgsql_body(node, statement_text)
        statements.append(
            Statement(
                text=statement_text,
                kind=type(node).__name__,
                copy_from_stdin=_is_copy_from_stdin(node),
                refusal=refusal,
            )
        )
    return statements


def refusal_of(text: str) -> Refusal | None:
    """The verdict on SQL ``text`` as a whole (a convenience for tests and tools)."""
    try:
        statements = parse(text)
    except ParseError as exc:
        return Refusal(f"SQL that PostgreSQL's parser does not accept ({exc})", always=True)
    for statement in statements:
        if statement.refusal is not None:
            return statement.refusal
    return None


def _is_copy_from_stdin(node: ast.Node) -> bool:
    return (
        isinstance(node, ast.CopyStmt)
        and bool(node.is_from)
        and not node.is_program
        and node.filename is None
    )


# -- the verdict ----------------------------------------------------------------------


def judge(node: ast.Node) -> Refusal | None:
    """The verdict on one parsed statement: ``None`` when it may run."""
    never = _NEVER_STATEMENTS.get(type(node))
    if never is not None:
        return Refusal(never, always=True)
    called = _dangerous_call(node)
    if called is not None:
        return called
    if isinstance(node, ast.VariableSetStmt):
        return _judge_set(node)
    if isinstance(node, ast.CopyStmt):
        return _judge_copy(node)
    if isinstance(node, ast.SelectStmt):
        return _judge_select(node)
    if isinstance(node, ast.CommentStmt) and node.objtype in _SHARED_OBJECTS:
        return Refusal("a comment on an object outside the database", always=True)
    if isinstance(node, _PLAIN_STATEMENTS):
        return None
    return _judge_definition(node)


def _judge_definition(node: ast.Node) -> Refusal | None:
    if isinstance(node, ast.CreateSchemaStmt):
        if node.authrole is not None or node.schemaElts:
            return _unsafe("CREATE SCHEMA with an owner or elements")
        return None
    if isinstance(node, ast.CreateStmt):
        if node.tablespacename or node.accessMethod not in (None, "heap"):
            return _unsafe("a table in a tablespace or with another access method")
        return None
    if isinstance(node, ast.IndexStmt):
        return _unsafe("an index in a tablespace") if node.tableSpace else None
    if isinstance(node, ast.AlterTableStmt):
        for command in node.cmds or ():
            if command.subtype not in _ALTER_TABLE_COMMANDS:
                return _unsafe(f"ALTER TABLE {command.subtype.name.removeprefix('AT_')}")
        return None
    return _judge_code(node)


def _judge_code(node: ast.Node) -> Refusal | None:
    """The definitions that could run code while restoring, and anything else."""
    if isinstance(node, ast.CreateTableAsStmt):
        into = node.into
        is_matview = node.objtype == enums.ObjectType.OBJECT_MATVIEW
        if is_matview and into is not None and into.skipData:
            return None
        return _unsafe("CREATE TABLE AS, which runs a query while restoring")
    if isinstance(node, ast.CreateFunctionStmt):
        return _judge_function(node)
    if isinstance(node, ast.CreateExtensionStmt):
        if node.extname in TRUSTED_EXTENSIONS:
            return None
        return _unsafe(f"the extension {node.extname!r}, which is not a trusted extension")
    if isinstance(node, ast.CreatePLangStmt):
        return _unsafe("a procedural language")
    if isinstance(node, ast.DoStmt | ast.CallStmt):
        return _unsafe("DO or CALL, which runs code while restoring")
    return _unsafe(f"a statement of the kind {_kind_words(node)}")


def _kind_words(node: ast.Node) -> str:
    """``CreateTableAsStmt`` -> ``CREATE TABLE AS``."""
    name = type(node).__name__.removesuffix("Stmt")
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).upper()


def _unsafe(what: str) -> Refusal:
    return Refusal(f"{what} (pg_restore writes no such thing for a database like Odeion's)", False)


def _constant(node: ast.Node | None) -> str | None:
    """The text of a constant argument (``'on'``, ``0``, ``false``, a keyword), else None."""
    if isinstance(node, ast.TypeCast):
        node = node.arg
    if not isinstance(node, ast.A_Const) or node.isnull:
        return None
    value = node.val
    if isinstance(value, ast.String):
        return str(value.sval)
    if isinstance(value, ast.Integer):
        return str(value.ival)
    if isinstance(value, ast.Boolean):
        return "true" if value.boolval else "false"
    if isinstance(value, ast.Float):
        return str(value.fval)
    return None


def _judge_set(node: ast.VariableSetStmt) -> Refusal | None:
    name = (node.name or "").lower()
    if node.kind in (enums.VariableSetKind.VAR_RESET, enums.VariableSetKind.VAR_RESET_ALL):
        return Refusal("RESET of a setting (it could restore the session's role)", always=True)
    if name in _NEVER_SETTINGS or node.kind == enums.VariableSetKind.VAR_SET_MULTI:
        return Refusal(f"a change of {name or 'session characteristics'}", always=True)
    values = [_constant(arg) for arg in node.args or ()]
    if name in _READING_SETTINGS:
        if node.kind != enums.VariableSetKind.VAR_SET_VALUE or [
            (v or "").lower().replace("-", "") for v in values
        ] != [_READING_SETTINGS[name]]:
            return Refusal(
                f"SET {name} to a value other than pg_restore's ({_READING_SETTINGS[name]}), "
                "which changes how the server reads the SQL that follows",
                always=True,
            )
        return None
    allowed = _PREAMBLE_SETTINGS.get(name)
    if (
        allowed is None
        or node.kind != enums.VariableSetKind.VAR_SET_VALUE
        or len(values) != 1
        or (values[0] or "").lower() not in allowed
    ):
        return _unsafe(f"SET {name}")
    return None


def _judge_copy(node: ast.CopyStmt) -> Refusal | None:
    if node.is_program:
        return Refusal("COPY to or from a program", always=True)
    if node.filename is not None:
        return Refusal("COPY to or from a file of the server", always=True)
    if not node.is_from or node.query is not None or node.relation is None:
        return _unsafe("COPY other than COPY ... FROM stdin")
    if node.options or node.whereClause is not None:
        return _unsafe("COPY with options")
    return None


def _judge_select(node: ast.SelectStmt) -> Refusal | None:
    """Only ``SELECT pg_catalog.f(constants)`` of pg_restore's own functions passes."""
    others = [name for name in node if name != "targetList" and getattr(node, name)]
    targets = node.targetList or ()
    if len(targets) == 1 and not others:
        target = targets[0]
        call = target.val
        if isinstance(call, ast.FuncCall) and target.name is None:
            names = [str(part.sval) for part in call.funcname or ()]
            args = list(call.args or ())
            plain_call = not (
                call.agg_order or call.agg_filter or call.over or call.agg_star or call.agg_distinct
            ) and all(_constant(arg) is not None for arg in args)
            if plain_call and names[:1] == ["pg_catalog"] and len(names) == 2:
                if names[1] in _RESTORE_FUNCTIONS:
                    return None
                if names[1] == "set_config":
                    return _judge_set_config(args)
    return _unsafe("a SELECT")


def _judge_set_config(args: list[ast.Node]) -> Refusal | None:
    values = [_constant(arg) for arg in args]
    if values == ["search_path", "", "false"]:
        return None
    return Refusal(f"set_config of {values[0]!r}", always=True)


def _dangerous_call(node: ast.Node) -> Refusal | None:
    """A call of a function that reaches outside the database, anywhere in ``node``."""
    for call in _calls(node):
        name = str((call.funcname or (ast.String(""),))[-1].sval).lower()
        if name == "set_config" and _judge_set_config(list(call.args or ())) is None:
            continue
        if name in _NEVER_FUNCTIONS:
            return Refusal(f"a call of {name}()", always=True)
    return None


def _calls(node: ast.Node) -> Iterator[ast.FuncCall]:
    """Every function call in ``node``, SQL function bodies included (iteratively)."""
    stack: list[object] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, tuple | list):
            stack.extend(item)
        elif isinstance(item, ast.Node):
            if isinstance(item, ast.FuncCall):
                yield item
            stack.extend(getattr(item, name) for name in item)
            if isinstance(item, ast.CreateFunctionStmt):
                stack.extend(_sql_body(item))


def _options(node: ast.CreateFunctionStmt) -> dict[str, ast.Node]:
    return {option.defname: option.arg for option in node.options or ()}


def _sql_body(node: ast.CreateFunctionStmt) -> list[ast.Node]:
    """The parsed statements of a ``LANGUAGE sql`` body given as a string."""
    options = _options(node)
    language = options.get("language")
    body = options.get("as")
    if not isinstance(language, ast.String) or str(language.sval).lower() != "sql":
        return []
    texts = [str(part.sval) for part in body if isinstance(part, ast.String)] if body else []
    parsed: list[ast.Node] = []
    for text in texts:
        try:
            parsed.extend(_nodes(text))
        except ParseError:
            continue  # the server does not accept it either; the restore fails there
    return parsed


def _nodes(text: str) -> list[ast.Node]:
    """The parse trees of the statements of ``text``; :class:`ParseError` if it does not parse."""
    return [raw.stmt for raw in _parse_sql(text) if raw.stmt is not None]


def _judge_function(node: ast.CreateFunctionStmt) -> Refusal | None:
    options = _options(node)
    language = options.get("language")
    name = str(language.sval).lower() if isinstance(language, ast.String) else "sql"
    if name not in _SAFE_LANGUAGES:
        return _unsafe(f"a function in the language {name}")
    security = options.get("security")
    if isinstance(security, ast.Boolean) and security.boolval:
        return _unsafe("a SECURITY DEFINER function, which lets other roles act as its owner")
    for option in node.options or ():
        if option.defname == "set" and isinstance(option.arg, ast.VariableSetStmt):
            verdict = _judge_function_setting(option.arg)
            if verdict is not None:
                return verdict
    return None


def _judge_plpgsql_body(node: ast.CreateFunctionStmt, text: str) -> Refusal | None:
    """What a ``plpgsql`` body runs when called, as far as it can be read.

    The statements of the body (and the constant strings it EXECUTEs) are
    judged for what is always refused; SQL built at run time cannot be seen,
    which is why privilege, not this guard, is the first wall.
    """
    language = _options(node).get("language")
    if not isinstance(language, ast.String) or str(language.sval).lower() != "plpgsql":
        return None
    try:
        tree = pglast.parse_plpgsql(text)
    except (ParseError, ValueError, RecursionError) as exc:
        # A body this guard cannot read is not let through unread.
        return _unsafe(f"a plpgsql function whose body cannot be read ({str(exc)[:80]})")
    for query, mode in _plpgsql_queries(tree):
        # From _ASSIGN_MODE on, the query is "target := expression".
        expression = re.split(r":=|=", query, maxsplit=1)[-1] if mode >= _ASSIGN_MODE else query
        for inner in _parse_quietly(expression if mode == 0 else f"SELECT {expression}"):
            verdict = _judge_inner(inner)
            if verdict is not None:
                return Refusal(f"a plpgsql function that runs {verdict.reason}", always=True)
    return None


def _plpgsql_queries(tree: object) -> Iterator[tuple[str, int]]:
    """Every SQL text of a parsed plpgsql function, with its parse mode (0: a statement)."""
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            expr = item.get("PLpgSQL_expr")
            if isinstance(expr, dict) and isinstance(expr.get("query"), str):
                yield expr["query"], int(expr.get("parseMode") or 0)
            stack.extend(item.values())


def _parse_quietly(text: str) -> list[ast.Node]:
    """The statements of ``text``, and of any constant string it selects (an EXECUTE)."""
    try:
        nodes = _nodes(text)
    except ParseError:
        return []
    found = list(nodes)
    for node in nodes:
        targets = node.targetList or () if isinstance(node, ast.SelectStmt) else ()
        if len(targets) == 1:
            constant = _constant(targets[0].val)
            if constant is not None:
                found.extend(_parse_quietly(constant))
    return found


def _judge_inner(node: ast.Node) -> Refusal | None:
    """The verdict on a statement inside a function body: only what is always refused."""
    never = _NEVER_STATEMENTS.get(type(node))
    if never is not None and not isinstance(node, ast.LockStmt | ast.PrepareStmt):
        return Refusal(never, always=True)
    if isinstance(node, ast.CopyStmt) and (node.is_program or node.filename is not None):
        return _judge_copy(node)
    if isinstance(node, ast.VariableSetStmt):
        name = (node.name or "").lower()
        resets = (enums.VariableSetKind.VAR_RESET, enums.VariableSetKind.VAR_RESET_ALL)
        if node.kind in resets or name in _NEVER_SETTINGS or name in _READING_SETTINGS:
            return Refusal(f"a change of {name or 'every setting'}", always=True)
    return _dangerous_call(node)


def _judge_function_setting(node: ast.VariableSetStmt) -> Refusal | None:
    name = (node.name or "").lower()
    if name in _NEVER_SETTINGS or name in _READING_SETTINGS:
        return Refusal(f"a function that sets {name}", always=True)
    return None
