"""Who runs a dump's SQL: the database's owner, never a more powerful role.

A full_db restore replays SQL from an archive, and the functions that SQL
defines run while it is restored (column defaults and CHECK constraints fire
during COPY, index expressions while indexing, materialized views when
refreshed). PostgreSQL offers no way to drop privileges inside a session:
``SET ROLE`` and ``SET SESSION AUTHORIZATION`` can be undone by any function
(``RESET ROLE``) back to the role that logged in. So the SQL of a dump runs in a
session that *logged in* as a role without powers:

* the database URL connects as the database's owner: that session;
* it connects as a superuser and the owner is a plain role: a temporary login
  role that is a member of the owner only (``NOINHERIT``, valid for minutes,
  dropped afterwards; leftovers of a killed process are dropped by the next
  restore), which switches to the owner with ``SET ROLE`` so that restored
  objects belong to the owner; undoing that switch only leads back to a role
  with no rights at all;
* otherwise the session switches to the owner with ``SET ROLE`` when it may;
  then the session's own role must be powerless too for the dump to count as
  run without powers.

A role is *powerful* if it is a superuser, may create roles or databases,
replicate or bypass row security, or is a member (directly or not) of a role
that may, or of ``pg_execute_server_program``, ``pg_read_server_files``,
``pg_write_server_files``, ``pg_signal_backend``, ``pg_read_all_data`` or
``pg_write_all_data``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import secrets
from collections.abc import Iterator
from typing import Any, Final, Literal

import attrs
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from odeion_archive.errors import DatabaseError, RestoreFailedError

__all__ = ["RestoreIdentity", "RoleFacts", "identity", "restore_session"]

_log = logging.getLogger(__name__)

#: Predefined roles whose members reach outside the database.
POWER_ROLES: Final = (
    "pg_execute_server_program",
    "pg_read_server_files",
    "pg_write_server_files",
    "pg_signal_backend",
    "pg_read_all_data",
    "pg_write_all_data",
)
_TEMP_PREFIX: Final = "odeion_archive_restore_"
_TEMP_VALID: Final = dt.timedelta(minutes=10)

_FACTS_SQL: Final = """
SELECT r.rolname, r.rolsuper,
       array_remove(ARRAY[
           CASE WHEN r.rolcreaterole THEN 'CREATEROLE' END,
           CASE WHEN r.rolcreatedb THEN 'CREATEDB' END,
           CASE WHEN r.rolreplication THEN 'REPLICATION' END,
           CASE WHEN r.rolbypassrls THEN 'BYPASSRLS' END], NULL)
       || ARRAY(SELECT 'member of ' || p FROM unnest(%(powers)s::text[]) AS p
                WHERE to_regrole(p) IS NOT NULL
                  AND pg_has_role(r.oid, to_regrole(p), 'MEMBER') AND NOT r.rolsuper)
       || ARRAY(SELECT 'member of ' || s.rolname FROM pg_roles s
                WHERE s.oid <> r.oid AND NOT r.rolsuper
                  AND (s.rolsuper OR s.rolcreaterole OR s.rolcreatedb OR s.rolreplication
                       OR s.rolbypassrls)
                  AND pg_has_role(r.oid, s.oid, 'MEMBER'))
FROM pg_roles r WHERE r.rolname = %(name)s
"""


@attrs.frozen
class RoleFacts:
    """A role, and what makes it powerful (empty for a plain role)."""

    name: str
    superuser: bool
    powers: tuple[str, ...]

    @property
    def powerful(self) -> bool:
        """Whether the role can reach outside its database or gain rights."""
        return self.superuser or bool(self.powers)

    def describe(self) -> str:
        """``"postgres (superuser)"`` or ``"app (CREATEDB, member of pg_read_server_files)"``."""
        if self.superuser:
            return f"{self.name} (a superuser)"
        if self.powers:
            return f"{self.name} ({', '.join(self.powers)})"
        return f"{self.name} (a plain role)"


@attrs.frozen
class RestoreIdentity:
    """How a restore session reaches the database's owner, and with which powers.

    ``via``: ``"owner"`` (the URL connects as the owner), ``"login_role"``
    (a temporary member of the owner logs in), ``"set_role"`` (the session
    switches to the owner), or ``None`` when the session cannot act as the owner.
    """

    session: RoleFacts
    owner: RoleFacts
    via: Literal["owner", "login_role", "set_role"] | None

    @property
    def powerful(self) -> bool:
        """Whether SQL run in the restore session could act with any power."""
        if self.via == "login_role":
            return self.owner.powerful
        return self.session.powerful or self.owner.powerful

    def powers_text(self) -> str:
        """Who holds which power, for messages."""
        holders = [self.owner] if self.via == "login_role" else [self.session, self.owner]
        return "; ".join(dict.fromkeys(r.describe() for r in holders if r.powerful))


def _facts(conn: psycopg.Connection[Any], name: str) -> RoleFacts:
    row = conn.execute(_FACTS_SQL, {"name": name, "powers": list(POWER_ROLES)}).fetchone()
    if row is None:
        raise DatabaseError(f"the role {name!r} was not found in pg_roles")
    return RoleFacts(name=row[0], superuser=bool(row[1]), powers=tuple(row[2]))


def identity(conn: psycopg.Connection[Any]) -> RestoreIdentity:
    """How a restore through ``conn``'s URL would act as the database's owner."""
    row = conn.execute(
        "SELECT session_user::text, d.datdba::regrole::text, "
        "pg_has_role(session_user, d.datdba, 'MEMBER') "
        "FROM pg_database d WHERE d.datname = current_database()"
    ).fetchone()
    assert row is not None
    session_name, owner_name, member = str(row[0]), str(row[1]), bool(row[2])
    session = _facts(conn, session_name)
    owner = session if owner_name == session_name else _facts(conn, owner_name)
    via: Literal["owner", "login_role", "set_role"] | None
    if session.name == owner.name:
        via = "owner"
    elif session.superuser and not owner.powerful:
        via = "login_role"
    elif member:
        via = "set_role"
    else:
        via = None
    return RestoreIdentity(session=session, owner=owner, via=via)


@contextlib.contextmanager
def restore_session(conninfo: str, who: RestoreIdentity) -> Iterator[psycopg.Connection[Any]]:
    """A connection (not autocommit) acting as the database's owner, as ``who`` says."""
    if who.via is None:
        raise RestoreFailedError(
            f"the database URL connects as {who.session.name!r}, which is neither the owner "
            f"of the database ({who.owner.name!r}) nor a member of it; connect as the owner "
            "and restore again; the database was not changed"
        )
    if who.via == "login_role":
        with _temporary_login(conninfo, who.owner.name) as conn:
            yield conn
        return
    with _connect(conninfo) as conn:
        if who.via == "set_role":
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(who.owner.name)))
        yield conn


def _connect(conninfo: str, **overrides: str) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(make_conninfo(conninfo, **overrides), autocommit=False)
    except psycopg.Error as exc:
        raise DatabaseError(
            f"cannot connect to the database: {exc}; check the database URL and that "
            "PostgreSQL is running"
        ) from exc


@contextlib.contextmanager
def _temporary_login(conninfo: str, owner: str) -> Iterator[psycopg.Connection[Any]]:
    name = _TEMP_PREFIX + secrets.token_hex(6)
    password = secrets.token_urlsafe(32)
    with _connect(conninfo) as admin:
        admin.autocommit = True
        drop_stale_login_roles(admin)
        # The server stores (and may log) only the SCRAM verifier, never the password.
        verifier = admin.pgconn.encrypt_password(
            password.encode(), name.encode(), b"scram-sha-256"
        ).decode()
        until = (dt.datetime.now(dt.UTC) + _TEMP_VALID).isoformat()
        admin.execute(
            sql.SQL(
                "CREATE ROLE {} LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE "
                "NOREPLICATION NOBYPASSRLS PASSWORD {} VALID UNTIL {} IN ROLE {}"
            ).format(
                sql.Identifier(name),
                sql.Literal(verifier),
                sql.Literal(until),
                sql.Identifier(owner),
            )
        )
        try:
            try:
                conn = psycopg.connect(
                    make_conninfo(conninfo, user=name, password=password), autocommit=False
                )
            except psycopg.Error as exc:
                raise RestoreFailedError(
                    "the database URL connects as a superuser, and the dump's SQL must run as "
                    f"the database's owner {owner!r} instead, but a temporary login role for it "
                    f"could not log in ({exc}); give a database URL that connects as {owner!r} "
                    "and restore again; the database was not changed"
                ) from exc
            with conn:
                conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(owner)))
                yield conn
        finally:
            _drop_login_role(admin, name, owner)


def _drop_login_role(admin: psycopg.Connection[Any], name: str, owner: str) -> None:
    role = sql.Identifier(name)
    try:
        admin.execute(
            sql.SQL(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = {}"
            ).format(sql.Literal(name))
        )
        admin.execute(sql.SQL("REASSIGN OWNED BY {} TO {}").format(role, sql.Identifier(owner)))
        admin.execute(sql.SQL("DROP OWNED BY {}").format(role))
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(role))
    except psycopg.Error:
        _log.warning(
            "the temporary login role %s could not be dropped now; the next restore drops it "
            "(it cannot log in after its validity ends)",
            name,
            exc_info=True,
        )


def drop_stale_login_roles(admin: psycopg.Connection[Any]) -> list[str]:
    """Drop temporary login roles left by a restore that was killed; return their names."""
    stale = [
        str(row[0])
        for row in admin.execute(
            "SELECT r.rolname FROM pg_roles r WHERE starts_with(r.rolname, %s) "
            "AND r.rolvaliduntil < now() "
            "AND NOT EXISTS (SELECT FROM pg_stat_activity a WHERE a.usename = r.rolname)",
            (_TEMP_PREFIX,),
        )
    ]
    owner = admin.execute(
        "SELECT datdba::regrole::text FROM pg_database WHERE datname = current_database()"
    ).fetchone()
    assert owner is not None
    for name in stale:
        _drop_login_role(admin, name, str(owner[0]))
    return stale
