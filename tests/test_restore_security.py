"""full_db archives from anywhere never run code on the database host or gain privileges.

Every attack is built here, as an attacker would: a genuine ``pg_dump`` of a
database whose functions turn hostile when restored elsewhere (called from a
materialized view, a CHECK constraint, an index expression, a trigger, a
column default, a SECURITY DEFINER function), and dumps whose table of
contents was edited to hold any SQL (both ways to make the guard read text
differently from the server, statement kinds that no deny list names, and
every route out of the database). Each is restored with the default settings
and again with ``trust_foreign_dump``, into the embedded PostgreSQL 18 (a data
directory without a URL) and through a URL that connects as a superuser to a
database owned by a plain role (PostgreSQL 18 and 15). Afterwards: the
restore was refused or failed, the database is unchanged, no role, file or
server setting appeared outside it, and the error says what happened.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import psycopg
import pytest
import zstandard
from psycopg import sql
from psycopg.conninfo import make_conninfo

from _dumps import craft_dump
from odeion_archive import ArchiveInfo, Archiver
from odeion_archive._archive import ArchiveBuilder, ArchiveFile
from odeion_archive._manifest import HEAD_MEMBER, TAIL_MEMBER
from odeion_archive._registry import Registry
from odeion_archive._schema import migrate
from odeion_archive.errors import (
    ArchiveError,
    BackupFailedError,
    CorruptArchiveError,
    RestoreBlockedError,
    UnsafeArchiveError,
)
from odeion_archive.events import ProgressEvent
from odeion_archive.formats import _indexed_tar
from odeion_archive.formats._tar import tar_header, tar_padding
from odeion_archive.sample import SeedScale, seed

if TYPE_CHECKING:
    from conftest import PgServer

Snapshot = dict[str, Any]


@attrs.frozen
class Target:
    """A database to restore into, the archiver that restores, and a superuser's view."""

    name: str
    archiver: Archiver
    conninfo: str  # as the archiver connects
    admin: str  # a superuser, on the same database
    owner: str  # the database's owner, as the server itself should connect
    source_server: PgServer  # where attack sources are made (same major)


def _seed_as(conninfo: str) -> None:
    with psycopg.connect(conninfo) as conn:
        migrate(conn)
        with conn.transaction():
            seed(conn, SeedScale.tiny(), seed=0)


@pytest.fixture(scope="module")
def embedded_target(pg18: PgServer) -> Iterator[Target]:
    """The embedded PostgreSQL 18 of a data directory, used without a URL (the default)."""
    data_dir = Path(tempfile.mkdtemp(prefix="odeion-secure-"))
    archiver = Archiver(data_dir)
    try:
        conninfo = archiver.database_url()
        _seed_as(conninfo)
        admin = make_conninfo(conninfo, user="postgres")
        yield Target("embedded18", archiver, conninfo, admin, conninfo, pg18)
    finally:
        archiver.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def _owned_database(server: PgServer) -> tuple[str, str, str]:
    """A new database owned by a new plain role, seeded as that role: (role, db, owner URL)."""
    suffix = uuid.uuid4().hex[:10]
    role, name = f"plain_{suffix}", f"owned_{suffix}"
    with psycopg.connect(server.conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(role)
            )
        )
    owner_url = make_conninfo(server.database_conninfo(name), user=role)
    _seed_as(owner_url)
    return role, name, owner_url


def _drop(server: PgServer, role: str, name: str) -> None:
    with psycopg.connect(server.conninfo, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _superuser_target(server: PgServer) -> Iterator[Target]:
    """A URL that connects as a superuser to a database owned by a plain role."""
    role, name, owner_url = _owned_database(server)
    data_dir = Path(tempfile.mkdtemp(prefix="odeion-secure-"))
    url = server.database_conninfo(name)
    archiver = Archiver(data_dir, database_url=url)
    try:
        yield Target(f"superuser_url_{server.name}", archiver, url, url, owner_url, server)
    finally:
        archiver.close()
        shutil.rmtree(data_dir, ignore_errors=True)
        _drop(server, role, name)


@pytest.fixture(scope="module")
def superuser_target_pg18(pg18: PgServer) -> Iterator[Target]:
    yield from _superuser_target(pg18)


@pytest.fixture(scope="module")
def superuser_target_pg15(pg15: PgServer) -> Iterator[Target]:
    yield from _superuser_target(pg15)


@pytest.fixture(params=["embedded18", "superuser_url_pg18", "superuser_url_pg15"])
def target(request: pytest.FixtureRequest) -> Target:
    """Each way a restore reaches a database, in turn."""
    name = (
        "embedded_target"
        if request.param == "embedded18"
        else request.param.replace("superuser_url", "superuser_target")
    )
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


# -- what must not change -----------------------------------------------------------


def outside(admin: str) -> Snapshot:
    """What lies outside the database: roles, their powers, the server's settings files."""
    with psycopg.connect(admin) as conn:
        return {
            "roles": conn.execute(
                "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles "
                "WHERE rolname NOT LIKE 'odeion\\_archive\\_restore\\_%' ORDER BY 1"
            ).fetchall(),
            "settings": conn.execute(
                "SELECT sourcefile, name, setting FROM pg_file_settings ORDER BY 1, 2"
            ).fetchall(),
            "databases": conn.execute("SELECT datname FROM pg_database ORDER BY 1").fetchall(),
            "large_objects": conn.execute(
                "SELECT count(*) FROM pg_largeobject_metadata"
            ).fetchone(),
        }


def inside(conninfo: str) -> Snapshot:
    """Every table's rows and every object of the database, with its owner."""
    with psycopg.connect(conninfo) as conn:
        objects = conn.execute(
            "SELECT c.relnamespace::regnamespace::text, c.relname, c.relkind, "
            "c.relowner::regrole::text FROM pg_class c "
            "WHERE c.relnamespace::regnamespace::text NOT IN ('pg_catalog', 'information_schema') "
            "AND c.relnamespace::regnamespace::text NOT LIKE 'pg\\_%' ORDER BY 1, 2"
        ).fetchall()
        rows = {
            f"{schema}.{name}": sorted(
                str(r)
                for r in conn.execute(
                    sql.SQL("SELECT t::text FROM {} t").format(sql.Identifier(schema, name))
                )
            )
            for schema, name, kind, _owner in objects
            if kind == "r"
        }
        functions = conn.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc p "
            "WHERE p.pronamespace::regnamespace::text = 'public' ORDER BY 1"
        ).fetchall()
        return {"objects": objects, "rows": rows, "functions": functions}


@attrs.frozen
class Attack:
    """A way into the database host, and where it would leave a trace."""

    name: str
    marker: Path
    role: str


@pytest.fixture
def attack() -> Iterator[Attack]:
    tag = uuid.uuid4().hex[:10]
    marker = Path(tempfile.gettempdir()) / f"odeion-owned-{tag}"
    yield Attack(tag, marker, f"evil_{tag}")
    marker.unlink(missing_ok=True)


def _assert_nothing_escaped(target: Target, attack: Attack, before_outside: Snapshot) -> None:
    assert not attack.marker.exists(), "a program ran on the database host"
    after = outside(target.admin)
    assert after == before_outside
    assert attack.role not in str(after["roles"])


# -- archives an attacker makes ---------------------------------------------------


def _hostile_function(source_db: str, attack: Attack, *, swallow: bool = False) -> str:
    """A function that is harmless where it was made and tries everything elsewhere.

    Its SQL is built at run time (EXECUTE of concatenated strings), so no
    reading of the dump can see it: only privilege stops it.
    """
    escape = (
        "EXCEPTION WHEN OTHERS THEN NULL;"
        if swallow
        else "EXCEPTION WHEN division_by_zero THEN NULL;"
    )
    # Back to the role that logged in, if it can (a quiet attack leaves the session as it was).
    reset = "NULL;" if swallow else "EXECUTE 'RES' || 'ET ROLE';"
    return f"""
CREATE FUNCTION public.evil() RETURNS integer LANGUAGE plpgsql AS $evil$
BEGIN
    IF current_database() = {source_db!r} THEN RETURN 1; END IF;
    BEGIN
        {reset}
    EXCEPTION WHEN OTHERS THEN NULL;
    END;
    BEGIN
        EXECUTE 'COPY (SELECT 1) TO PRO' || 'GRAM ' || quote_literal('touch {attack.marker}');
        EXECUTE 'CREATE ROLE {attack.role} SUPER' || 'USER LOGIN';
    {escape}
    END;
    RETURN 1;
END
$evil$;
-- Index expressions need an IMMUTABLE function; it may call one that is not.
CREATE FUNCTION public.evil_immutable(integer) RETURNS integer LANGUAGE plpgsql IMMUTABLE
    AS $$BEGIN RETURN public.evil() + $1; END$$;
"""


#: Where a genuine dump calls the hostile function, and whether a restore calls it.
HOOKS: dict[str, tuple[str, bool]] = {
    "materialized_view": ("CREATE MATERIALIZED VIEW public.mv AS SELECT public.evil() AS x;", True),
    "check_constraint": (
        (
            "CREATE TABLE public.chk (a int CHECK (public.evil() = 1)); "
            "INSERT INTO public.chk VALUES (1);"
        ),
        True,
    ),
    "index_expression": (
        (
            "CREATE TABLE public.idx (a int); INSERT INTO public.idx VALUES (1); "
            "CREATE INDEX idx_evil ON public.idx ((public.evil_immutable(a)));"
        ),
        True,
    ),
    "trigger": (
        (
            "CREATE FUNCTION public.evil_tr() RETURNS trigger LANGUAGE plpgsql AS "
            "$$BEGIN PERFORM public.evil(); RETURN NEW; END$$; "
            "CREATE TABLE public.trg (a int); "
            "CREATE TRIGGER trg_evil BEFORE INSERT ON public.trg "
            "FOR EACH ROW EXECUTE FUNCTION public.evil_tr(); "
            "INSERT INTO public.trg VALUES (1);"
        ),
        False,
    ),
    "column_default": (
        (
            "CREATE TABLE public.dft (a int DEFAULT public.evil(), b int); "
            "INSERT INTO public.dft (b) VALUES (1);"
        ),
        False,
    ),
    "security_definer": (
        (
            "CREATE FUNCTION public.evil_definer() RETURNS int LANGUAGE sql SECURITY DEFINER "
            "AS 'SELECT public.evil()';"
        ),
        False,
    ),
}
#: What fires a hook that the restore itself does not call, as the server would.
FIRE = {
    "trigger": "INSERT INTO public.trg VALUES (2)",
    "column_default": "INSERT INTO public.dft (b) VALUES (2)",
}


def _source_archive(server: PgServer, setup: str, tmp: Path) -> Path:
    """A full_db archive of a new database on ``server`` after ``setup``, made elsewhere."""
    name = f"src_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server.conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = server.database_conninfo(name)
        _seed_as(url)
        with psycopg.connect(url) as conn:
            conn.execute(setup.replace("{source_db}", name))
        with Archiver(tmp / "elsewhere", database_url=url) as elsewhere:
            return elsewhere.create(components=["full_db"]).archive.path
    finally:
        with psycopg.connect(server.conninfo, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _with_dump(template: Path, dump: bytes, out: Path) -> Path:
    """A foreign archive like ``template`` whose full_db dump is ``dump``."""
    registry = Registry.default()
    with ArchiveFile.open(template, registry) as archive:
        manifest = archive.manifest
    entry = manifest.component("full_db")
    head = attrs.evolve(
        manifest,
        components=(attrs.evolve(entry, members=(), facts={}),),
        authentication=None,
    )
    with out.open("wb") as stream:
        builder = ArchiveBuilder(registry.format(manifest.format), stream, head=head)
        builder.add_member("full_db", "database.dump", [dump], size=len(dump))
        builder.set_facts("full_db", entry.facts)
        builder.finish()
    return out


def _restore_everything_refused(
    target: Target, archive: Path, attack: Attack, *, must_fail_with_trust: bool = True
) -> list[str]:
    """Plan and restore with default settings and with trust; return the errors' texts."""
    name = target.archiver.import_archive(archive).name
    assert target.archiver.list()[0].authenticity == "foreign" or any(
        i.name == name and i.authenticity == "foreign" for i in target.archiver.list()
    )
    before_inside = inside(target.conninfo)
    before_outside = outside(target.admin)
    plan = target.archiver.plan(name, "full_db")
    assert not plan.can_restore
    assert "foreign_dump" in [b.code for b in plan.blockers]
    messages = []
    with pytest.raises(RestoreBlockedError) as blocked:
        target.archiver.restore(name, "full_db")
    messages.append(str(blocked.value))
    assert inside(target.conninfo) == before_inside
    _assert_nothing_escaped(target, attack, before_outside)
    if must_fail_with_trust:
        with pytest.raises(ArchiveError) as failed:
            target.archiver.restore(name, "full_db", trust_foreign_dump=True)
        messages.append(str(failed.value))
        assert inside(target.conninfo) == before_inside
    else:
        target.archiver.restore(name, "full_db", trust_foreign_dump=True)
    _assert_nothing_escaped(target, attack, before_outside)
    target.archiver.delete(name)
    return messages


# -- a genuine pg_dump of a database with hostile functions -----------------------------------


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_hostile_functions_of_a_genuine_dump_gain_nothing(
    target: Target, attack: Attack, hook: str, tmp_path: Path
) -> None:
    setup, fires = HOOKS[hook]
    archive = _source_archive(
        target.source_server,
        _hostile_function("{source_db}", attack) + setup,
        tmp_path,
    )
    if hook == "security_definer":
        # The guard refuses SECURITY DEFINER functions: blocked even with trust.
        messages = _restore_everything_refused(target, archive, attack)
        assert "SECURITY DEFINER" in messages[-1]
        return
    messages = _restore_everything_refused(target, archive, attack, must_fail_with_trust=fires)
    assert "this server did not make" in messages[0] or "foreign" in messages[0]
    if fires:
        # The function ran as the database's owner, which may not run programs.
        assert "permission denied" in messages[-1] or "must be superuser" in messages[-1], messages
        return
    # Restored as consented, the hook is there; fired later by the server, connected as the
    # database's owner, it has the owner's rights only.
    before_outside = outside(target.admin)
    with psycopg.connect(target.owner) as conn, pytest.raises(psycopg.Error) as fired:
        conn.execute(FIRE[hook])
    assert "permission denied" in str(fired.value) or "superuser" in str(fired.value)
    _assert_nothing_escaped(target, attack, before_outside)


def test_a_function_that_hides_its_failures_still_gains_nothing(
    target: Target, attack: Attack, tmp_path: Path
) -> None:
    """A dump that swallows its own errors restores (as consented), and nothing escapes."""
    setup, _ = HOOKS["check_constraint"]
    archive = _source_archive(
        target.source_server,
        _hostile_function("{source_db}", attack, swallow=True) + setup,
        tmp_path,
    )
    _restore_everything_refused(target, archive, attack, must_fail_with_trust=False)
    with psycopg.connect(target.conninfo) as conn:
        assert conn.execute("SELECT count(*) FROM public.chk").fetchone() == (1,)
        owners = conn.execute(
            "SELECT DISTINCT relowner::regrole::text FROM pg_class "
            "WHERE relnamespace = 'public'::regnamespace"
        ).fetchall()
        database_owner = conn.execute(
            "SELECT datdba::regrole::text FROM pg_database WHERE datname = current_database()"
        ).fetchone()
    # Everything restored belongs to the database's owner, nothing to a superuser.
    assert owners == [database_owner]


# -- dumps whose table of contents an attacker edited -------------------------------------


def _edited(attack: Attack) -> dict[str, list[tuple[str, str | bytes]]]:
    touch = f"COPY (SELECT 1) TO PROGRAM 'touch {attack.marker}'"
    return {
        "standard_conforming_strings_off": [
            (
                "COMMENT",
                "SELECT pg_catalog.set_config('standard_conforming_strings', 'off', false);\n",
            ),
            ("COMMENT", f"COMMENT ON TABLE public.users IS 'x\\'; {touch}; --';\n"),
        ],
        "client_encoding_sjis": [
            ("ENCODING", "SET client_encoding = 'SJIS';\n"),
            (
                "COMMENT",
                b"COMMENT ON TABLE public.users IS '\x95\\'; " + touch.encode() + b"; --';\n",
            ),
        ],
        "copy_to_program_hidden_by_a_comment": [
            ("TABLE", f"{touch.replace(' TO ', ' TO/**/')};\n")
        ],
        "insert_select": [
            (
                "TABLE",
                (
                    "INSERT INTO public.system_settings (key, value) "
                    "SELECT 'leak', to_jsonb(pg_read_file('/etc/hostname'));\n"
                ),
            )
        ],
        "values": [("TABLE", "VALUES ((SELECT lo_import('/etc/hostname')));\n")],
        "with": [
            (
                "TABLE",
                (
                    "WITH f AS (SELECT pg_catalog.pg_read_file('/etc/hostname') AS t) "
                    "INSERT INTO public.system_settings SELECT 'leak', to_jsonb(t) FROM f;\n"
                ),
            )
        ],
        "explain_analyze": [("TABLE", "EXPLAIN ANALYZE SELECT lo_import('/etc/hostname');\n")],
        "create_table_as": [
            ("TABLE", "CREATE TABLE public.leak AS SELECT 1 AS a;\n"),
        ],
        "prepare_execute": [
            ("TABLE", "PREPARE p AS SELECT lo_import('/etc/hostname');\n"),
            ("TABLE", "EXECUTE p;\n"),
        ],
        "set_config_then_another_call": [
            (
                "TABLE",
                "SELECT pg_catalog.set_config('search_path', '', false), pg_catalog.now();\n",
            )
        ],
        "quoted_function_name": [("TABLE", "SELECT \"pg_read_file\"('/etc/hostname');\n")],
        "copy_from_program": [
            ("TABLE", "CREATE TABLE public.x (a text);\n"),
            ("TABLE", f"COPY public.x FROM PROGRAM 'touch {attack.marker}';\n"),
        ],
        "lo_export": [("TABLE", f"SELECT lo_export(lo_create(0), '{attack.marker}');\n")],
        "alter_system": [("TABLE", "ALTER SYSTEM SET log_statement = 'all';\n")],
        "create_role": [("TABLE", f"CREATE ROLE {attack.role} SUPERUSER LOGIN;\n")],
        "event_trigger": [
            (
                "FUNCTION",
                (
                    "CREATE FUNCTION public.et() RETURNS event_trigger LANGUAGE plpgsql "
                    "AS $$BEGIN END$$;\n"
                ),
            ),
            (
                "EVENT TRIGGER",
                "CREATE EVENT TRIGGER et ON ddl_command_start EXECUTE FUNCTION public.et();\n",
            ),
        ],
        "untrusted_extension": [("EXTENSION", "CREATE EXTENSION IF NOT EXISTS file_fdw;\n")],
        "do_block": [
            (
                "TABLE",
                f"DO $$BEGIN EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch {attack.marker}'''; END$$;\n",
            )
        ],
        "role_change": [("TABLE", "SET ROLE postgres;\n"), ("TABLE", f"{touch};\n")],
    }


EDITED = [
    "standard_conforming_strings_off",
    "client_encoding_sjis",
    "copy_to_program_hidden_by_a_comment",
    "insert_select",
    "values",
    "with",
    "explain_analyze",
    "create_table_as",
    "prepare_execute",
    "set_config_then_another_call",
    "quoted_function_name",
    "copy_from_program",
    "lo_export",
    "alter_system",
    "create_role",
    "event_trigger",
    "untrusted_extension",
    "do_block",
    "role_change",
]


#: Only unusual, not escapes: allowed with allow_unsafe_dump (privilege still stops them).
ALLOWABLE = ("create_table_as", "set_config_then_another_call", "do_block", "untrusted_extension")


@pytest.fixture(scope="module")
def template_archive(pg18: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A genuine full_db archive, to carry edited dumps."""
    return _source_archive(pg18, "SELECT 1", tmp_path_factory.mktemp("template"))


@pytest.mark.parametrize("kind", EDITED)
def test_edited_dumps_are_refused(
    target: Target, attack: Attack, kind: str, template_archive: Path, tmp_path: Path
) -> None:
    dump = craft_dump(_edited(attack)[kind])
    archive = _with_dump(template_archive, dump, tmp_path / "edited.tar.zst")
    name = target.archiver.import_archive(archive).name
    try:
        for allow_unsafe in (False, True):
            plan = target.archiver.plan(
                name, "full_db", trust_foreign_dump=True, allow_unsafe_dump=allow_unsafe
            )
            codes = [b.code for b in plan.blockers]
            if allow_unsafe is False or kind not in ALLOWABLE:
                # Refused even when unsafe dumps are allowed: they escape the restore.
                assert "dump_unsafe" in codes, (kind, allow_unsafe, plan.blockers)
    finally:
        target.archiver.delete(name)
    messages = _restore_everything_refused(target, archive, attack)
    assert "dump" in messages[-1]


def test_a_plan_of_a_genuine_archive_made_here_names_who_runs_the_sql(target: Target) -> None:
    """Genuine archives restore without any opt-in, as the database's owner."""
    info = target.archiver.create(components=["full_db"]).archive
    assert info.authenticity == "own"
    before = inside(target.conninfo)
    plan = target.archiver.plan(info.name, "full_db")
    assert plan.can_restore, plan.blockers
    who = next(step for step in plan.steps if "as the database's owner" in step)
    assert "(a plain role)" in who
    target.archiver.restore(info.name, "full_db")
    assert inside(target.conninfo)["rows"] == before["rows"]
    target.archiver.delete(info.name)


# -- where the database's owner is powerful -------------------------------------------


@pytest.fixture
def powerful_owner(pg_server: PgServer, tmp_path: Path) -> Iterator[tuple[Archiver, str]]:
    """A database owned by a role that may create databases (as ``createdb`` as postgres)."""
    role, name, owner_url = _owned_database(pg_server)
    with psycopg.connect(pg_server.conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} CREATEDB").format(sql.Identifier(role)))
    archiver = Archiver(tmp_path / "data", database_url=owner_url)
    try:
        yield archiver, owner_url
    finally:
        archiver.close()
        _drop(pg_server, role, name)


def test_a_foreign_dump_is_never_restored_by_a_powerful_owner(
    pg_server: PgServer, powerful_owner: tuple[Archiver, str], tmp_path: Path
) -> None:
    archiver, owner_url = powerful_owner
    # This server's own archive still restores: it holds this server's own data.
    own = archiver.create(components=["full_db"]).archive
    assert archiver.plan(own.name, "full_db").can_restore
    archiver.restore(own.name, "full_db")
    # A foreign one does not, even with consent: the message says how to fix it.
    foreign = archiver.import_archive(_source_archive(pg_server, "SELECT 1", tmp_path)).name
    before = inside(owner_url)
    plan = archiver.plan(foreign, "full_db", trust_foreign_dump=True)
    blocker = next(b for b in plan.blockers if b.code == "owner_too_powerful")
    assert "CREATEDB" in blocker.message
    assert "ALTER DATABASE" in blocker.message
    with pytest.raises(RestoreBlockedError, match="owner_too_powerful"):
        archiver.restore(foreign, "full_db", trust_foreign_dump=True)
    assert inside(owner_url) == before


def test_temporary_login_roles_of_a_killed_restore_are_dropped(
    superuser_target_pg18: Target,
) -> None:
    """A role left by a killed restore cannot log in and is dropped by the next restore."""
    from odeion_archive.components.full_db import _roles as _pgroles

    stale = f"odeion_archive_restore_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(superuser_target_pg18.admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN VALID UNTIL '2000-01-01'").format(sql.Identifier(stale))
        )
        assert _pgroles.drop_stale_login_roles(conn) == [stale]
        assert (
            conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (stale,)).fetchone() is None
        )


def test_embedded_data_directories_of_older_versions_are_given_to_a_plain_role(
    pg18: PgServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A database that the superuser owned is given, with its objects, to the owner role."""
    from odeion_archive._postgres import EmbeddedPostgres

    with EmbeddedPostgres(tmp_path, owner=None) as old:  # as earlier versions left it
        _seed_as(old.conninfo)
    with caplog.at_level("WARNING"), Archiver(tmp_path) as archiver:
        url = archiver.database_url()
        with psycopg.connect(url) as conn:
            who = conn.execute(
                "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
            owners = conn.execute(
                "SELECT DISTINCT relowner::regrole::text FROM pg_class "
                "WHERE relnamespace = 'public'::regnamespace"
            ).fetchall()
        assert who == ("odeion", False)
        assert owners == [("odeion",)]
        assert "giving it and every object in it" in caplog.text
        info = archiver.create().archive
        assert archiver.plan(info.name, "full_db").can_restore
        archiver.restore(info.name, "full_db")
        archiver.restore(info.name, "everything_json", "overwrite")


# -- what a dump may change as its owner, outside its objects --------------------------------------------------------------------------


def _cluster_state(admin: str, database: str) -> dict[str, Any]:
    """What lies outside the database's contents: role and database settings, passwords..."""
    with psycopg.connect(admin) as conn:
        return {
            "role_settings": conn.execute(
                "SELECT setdatabase, setrole::regrole::text, setconfig FROM pg_db_role_setting "
                "ORDER BY 1, 2"
            ).fetchall(),
            "passwords": conn.execute(
                "SELECT rolname, rolpassword, rolvaliduntil FROM pg_authid "
                "WHERE rolname NOT LIKE 'odeion\\_archive\\_restore\\_%' ORDER BY 1"
            ).fetchall(),
            "memberships": conn.execute(
                "SELECT roleid::regrole::text, member::regrole::text FROM pg_auth_members "
                "ORDER BY 1, 2"
            ).fetchall(),
            "database": conn.execute(
                "SELECT datconnlimit, datallowconn, datacl::text FROM pg_database "
                "WHERE datname = %s",
                (database,),
            ).fetchall(),
            "shared_comments": conn.execute(
                "SELECT classoid::regclass::text, objoid, description FROM pg_shdescription "
                "ORDER BY 1, 2"
            ).fetchall(),
        }


def _dbname(conninfo: str) -> str:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT current_database(), current_user").fetchone()
    assert row is not None
    return str(row[0])


def _owner_of(admin: str) -> str:
    with psycopg.connect(admin) as conn:
        row = conn.execute(
            "SELECT datdba::regrole::text FROM pg_database WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return str(row[0])


def _undo_cluster_changes(admin: str, database: str, owner: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} RESET ALL").format(sql.Identifier(owner)))
        conn.execute(
            sql.SQL("ALTER ROLE {} IN DATABASE {} RESET ALL").format(
                sql.Identifier(owner), sql.Identifier(database)
            )
        )
        conn.execute(sql.SQL("ALTER DATABASE {} RESET ALL").format(sql.Identifier(database)))
        conn.execute(
            sql.SQL("ALTER DATABASE {} CONNECTION LIMIT -1").format(sql.Identifier(database))
        )
        conn.execute(sql.SQL("COMMENT ON DATABASE {} IS NULL").format(sql.Identifier(database)))
        conn.execute(sql.SQL("COMMENT ON ROLE {} IS NULL").format(sql.Identifier(owner)))


# -- 1. a dump's functions change the cluster: role settings, password, database settings ---

#: Every statement runs in its own sub-block that swallows errors, so the restore succeeds
#: whatever the server refuses; each is built at run time, so no guard can read it.
_CLUSTER_CHANGER = """
CREATE FUNCTION public.evil() RETURNS integer LANGUAGE plpgsql AS $evil$
DECLARE
    stmt text;
BEGIN
    IF current_database() = '{source_db}' THEN RETURN 1; END IF;
    FOREACH stmt IN ARRAY ARRAY[
        'ALTER ROLE CURRENT_USER SET default_transaction_read_only TO on',
        'ALTER ROLE CURRENT_USER SET search_path TO evil, public',
        'ALTER ROLE CURRENT_USER PASS' || 'WORD ' || quote_literal('the-attacker-knows-it'),
        format('ALTER DATABASE %I CONNECTION LIMIT 0', current_database()),
        format('ALTER DATABASE %I SET statement_timeout TO 1', current_database()),
        format('GRANT CREATE ON DATABASE %I TO PUBLIC', current_database())
    ] LOOP
        BEGIN
            EXECUTE stmt;
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'refused: %: %', stmt, SQLERRM;
        END;
    END LOOP;
    RETURN 1;
END
$evil$;
CREATE TABLE public.chk (a int CHECK (public.evil() = 1));
INSERT INTO public.chk VALUES (1);
"""


def test_a_trusted_foreign_dump_changes_nothing_outside_the_database(
    target: Target, tmp_path: Path
) -> None:
    """ALTER ROLE <self> SET/PASSWORD and ALTER DATABASE, run by a function as the owner.

    The owner may change its own password and session defaults and its
    database's settings (connection limit, per-database GUCs, ACL): privilege
    cannot stop that. They live in shared catalogs, and the restore refuses
    to commit a transaction that changed any. With ``trust_foreign_dump``.
    """
    archive = _source_archive(target.source_server, _CLUSTER_CHANGER, tmp_path)
    database = _dbname(target.admin)
    owner = _owner_of(target.admin)
    before = _cluster_state(target.admin, database)
    name = target.archiver.import_archive(archive).name
    try:
        with pytest.raises(UnsafeArchiveError, match="outside the database"):
            target.archiver.restore(name, "full_db", trust_foreign_dump=True)
        after = _cluster_state(target.admin, database)
        changed = {key: after[key] for key in after if after[key] != before[key]}
        assert changed == {}, f"the dump changed the cluster outside its database: {changed}"
    finally:
        _undo_cluster_changes(target.admin, database, owner)
        target.archiver.delete(name)


# -- 2. PostgreSQL 15: the owner logged in as itself grants membership in itself -----------------


@pytest.fixture
def pg15_owner_url_target(pg15: PgServer, tmp_path: Path) -> Iterator[tuple[Archiver, str, str]]:
    """A PostgreSQL 15 database whose URL connects as its plain owner (the recommended setup)."""
    suffix = uuid.uuid4().hex[:10]
    role, name, victim = f"plain_{suffix}", f"owned_{suffix}", f"victim_{suffix}"
    with psycopg.connect(pg15.conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(victim)))
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(role)
            )
        )
    from psycopg.conninfo import make_conninfo

    owner_url = make_conninfo(pg15.database_conninfo(name), user=role)
    _seed_as(owner_url)
    archiver = Archiver(tmp_path / "data", database_url=owner_url)
    try:
        yield archiver, victim, role
    finally:
        archiver.close()
        with psycopg.connect(pg15.conninfo, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            for r in (victim, role):
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(r)))


def test_pg15_a_trusted_dump_cannot_grant_the_owner_role_to_others(
    pg15: PgServer, pg15_owner_url_target: tuple[Archiver, str, str], tmp_path: Path
) -> None:
    """On PostgreSQL <= 15 a role may grant membership in itself when it is the session user.

    The restore logs in as the owner (via "owner"); a function called during
    COPY (a CHECK constraint, not a security-restricted operation) runs
    ``GRANT <owner> TO <any role>``: that role gains every right of the owner,
    cluster-wide, and the grant survives the restore.
    """
    archiver, victim, owner = pg15_owner_url_target
    setup = f"""
CREATE FUNCTION public.evil() RETURNS integer LANGUAGE plpgsql AS $evil$
BEGIN
    IF current_database() = '{{source_db}}' THEN RETURN 1; END IF;
    BEGIN
        EXECUTE 'GRA' || 'NT ' || quote_ident(current_user) || ' TO {victim}';
    EXCEPTION WHEN OTHERS THEN RAISE WARNING '%', SQLERRM;
    END;
    RETURN 1;
END
$evil$;
CREATE TABLE public.chk (a int CHECK (public.evil() = 1));
INSERT INTO public.chk VALUES (1);
"""
    archive = _source_archive(pg15, setup, tmp_path)
    name = archiver.import_archive(archive).name
    with contextlib.suppress(ArchiveError):
        archiver.restore(name, "full_db", trust_foreign_dump=True)
    with psycopg.connect(pg15.conninfo) as conn:
        member = conn.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", (victim, owner)).fetchone()
    assert member == (False,), f"the dump made {victim} a member of the owner {owner}"


# -- 3. an own archive whose dump was replaced: its SQL runs before its sha256 is checked -----


def _pg_dump(server: PgServer, setup: str) -> bytes:
    """A custom-format dump of a new database on ``server`` after ``setup``."""
    name = f"src_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server.conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with psycopg.connect(server.database_conninfo(name)) as conn:
            conn.execute(setup.replace("{source_db}", name))
        return subprocess.run(
            [
                str(server.bin_dir / "pg_dump"),
                "--format=custom",
                "-d",
                server.database_conninfo(name),
            ],
            check=True,
            capture_output=True,
        ).stdout
    finally:
        with psycopg.connect(server.conninfo, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _replace_member_keep_manifest(original: Path, member: str, data: bytes, out: Path) -> Path:
    """``original`` with ``member``'s bytes replaced and its (sealed) manifest kept as it was.

    The member must keep its listed size (the data is padded with zeros); the
    container's seal is a plain sha256 that anyone recomputes by writing the
    container again.
    """
    registry = Registry.default()
    with ArchiveFile.open(original, registry) as archive:
        manifest = archive.manifest
        head = archive._manifest_bytes[HEAD_MEMBER]
        tail = archive._manifest_bytes[TAIL_MEMBER]
        others = {
            m.path: archive.open_member(m.path).read() for m in manifest.members if m.path != member
        }
        size = next(m.size for m in manifest.members if m.path == member)
    assert len(data) <= size, (len(data), size)
    data += bytes(size - len(data))
    fmt = registry.format(manifest.format)
    with out.open("wb") as stream:
        writer = fmt.open_writer(stream)
        writer.add(HEAD_MEMBER, [head], size=len(head))
        for m in manifest.members:
            chunk = data if m.path == member else others[m.path]
            writer.add(m.path, [chunk], size=len(chunk))
        writer.add(TAIL_MEMBER, [tail], size=len(tail))
        writer.close()
    return out


#: A database whose table's CHECK runs a program when restored anywhere else.
_HOSTILE_SETUP = """
CREATE FUNCTION public.evil() RETURNS integer LANGUAGE plpgsql AS $evil$
BEGIN
    IF current_database() = '{{source_db}}' THEN RETURN 1; END IF;
    EXECUTE 'COPY (SELECT 1) TO PRO' || 'GRAM ' || quote_literal('touch {marker}');
    RETURN 1;
END
$evil$;
CREATE TABLE public.chk (a int CHECK (public.evil() = 1));
INSERT INTO public.chk VALUES (1);
"""


@pytest.fixture
def superuser_owned(pg18: PgServer, tmp_path: Path) -> Iterator[tuple[Archiver, str]]:
    """A database created by the superuser (owned by it), its URL connecting as the superuser."""
    name = f"susr_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg18.conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = pg18.database_conninfo(name)
    _seed_as(url)
    with psycopg.connect(url) as conn:
        # An ordinary database of some size: its dump is larger than the attacker's.
        conn.execute(
            "CREATE TABLE public.padding AS SELECT g, md5(g::text) || md5((g * 7)::text) AS t "
            "FROM generate_series(1, 60000) g"
        )
    archiver = Archiver(tmp_path / "data", database_url=url)
    try:
        yield archiver, url
    finally:
        archiver.close()
        with psycopg.connect(pg18.conninfo, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _own_and_hostile(
    pg18: PgServer, archiver: Archiver, attack: Attack, tmp_path: Path, fmt: str
) -> tuple[ArchiveInfo, Path]:
    """A full_db archive of ``fmt`` this server made, and a copy whose dump is hostile.

    The copy keeps the sealed manifest and holds a genuine pg_dump of
    :data:`_HOSTILE_SETUP`, padded to the listed size, in a rewritten container.
    """
    own = archiver.create(components=["full_db"], format=fmt).archive
    hostile = _pg_dump(pg18, _HOSTILE_SETUP.format(marker=attack.marker))
    offsite = _replace_member_keep_manifest(
        own.path, "full_db/database.dump", hostile, tmp_path / own.path.name
    )
    return own, offsite


@pytest.mark.parametrize("fmt", ["tar.zst", "zip"])
def test_an_own_archive_whose_dump_was_replaced_runs_nothing(
    pg18: PgServer,
    superuser_owned: tuple[Archiver, str],
    attack: Attack,
    tmp_path: Path,
    fmt: str,
) -> None:
    """Default settings, no consent: the seal covers the manifest, not yet-unread member bytes.

    An attacker who can write to an offsite copy of one of this server's
    archives (but has no key) replaces the full_db dump with a genuine
    pg_dump of a hostile database, padded to the listed size, keeps the
    sealed manifest, and rewrites the container (its seal is a plain sha256).
    ``plan`` says ``own`` and shows no blocker; the restore streams the dump
    into pg_restore and runs its SQL; the sha256 mismatch is noticed only at
    the end of the member, when the hostile function (a CHECK constraint
    during COPY) has run already. Owners that are powerful are allowed for
    own archives, so here it runs as a superuser: COPY TO PROGRAM.

    The dump is checked before its SQL: in tar.zst by one sha256 over the
    archive's bytes through the dump (the full_db facts record it), in zip by
    reading the dump through against its sha256.
    """
    archiver, _url = superuser_owned
    own, offsite = _own_and_hostile(pg18, archiver, attack, tmp_path, fmt)
    recorded = archiver.inspect(own.name).component("full_db").facts.get("dump_prefix")
    assert (recorded is not None) == (fmt == "tar.zst")
    assert own.authenticity == "own"
    assert archiver.authenticity(offsite) == "own"
    plan = archiver.plan(str(offsite), "full_db")
    try:
        archiver.restore(str(offsite), "full_db")
    except ArchiveError as exc:
        error = str(exc)
    else:
        error = ""
    assert not attack.marker.exists(), (
        f"a program ran on the database host (plan blockers: {plan.blockers}; "
        f"restore error: {error[:200]!r})"
    )
    assert "full_db/database.dump" in error, error


@pytest.mark.parametrize("fmt", ["tar.zst", "zip"])
def test_an_own_archive_changed_on_disk_after_its_check_runs_nothing(
    pg18: PgServer,
    superuser_owned: tuple[Archiver, str],
    attack: Attack,
    tmp_path: Path,
    fmt: str,
) -> None:
    """Whoever can write the archive while it is restored gets none of their bytes used.

    The dump is checked before its SQL runs (tar.zst: by the archive's bytes
    through it; zip: by reading it through), and streaming it reads the file
    again. Here an attacker rewrites the file in place (the restore's open
    descriptor sees it) the moment the check has read it: the same archive
    with a hostile dump, its sealed manifest kept. Reading a block again that
    differs from the one checked fails the restore before a changed byte is
    decompressed, so the hostile function never runs (as a superuser here:
    COPY TO PROGRAM) and the database keeps its data.
    """
    archiver, url = superuser_owned
    own, offsite = _own_and_hostile(pg18, archiver, attack, tmp_path, fmt)
    swapped = offsite.read_bytes()
    seen: list[ProgressEvent] = []

    def progress(event: ProgressEvent) -> None:
        if event.phase == "checking the dump" and event.done == event.total and not seen:
            seen.append(event)
            with own.path.open("r+b") as stream:
                stream.write(swapped)
                stream.truncate()

    with pytest.raises(CorruptArchiveError, match="changed since they were checked"):
        archiver.restore(own.name, "full_db", progress=progress)
    assert seen, "the check of the dump never reported its end"
    assert not attack.marker.exists()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM public.padding").fetchone() == (60000,)
        assert conn.execute("SELECT to_regclass('public.chk')").fetchone() == (None,)


def test_a_foreign_archive_is_checked_by_its_dump_whatever_its_facts_record(
    embedded_target: Target, template_archive: Path, tmp_path: Path
) -> None:
    """Only this server's seal makes a recorded ``dump_prefix`` worth checking instead.

    A foreign archive's facts are its sender's word: its dump is read through
    against its sha256 before its SQL runs, and a ``dump_prefix`` that matches
    nothing neither refuses it nor stands in for that reading.
    """
    registry = Registry.default()
    with ArchiveFile.open(template_archive, registry) as archive:
        manifest = archive.manifest
        dump = archive.open_member("full_db/database.dump").read()
    entry = manifest.component("full_db")
    assert "dump_prefix" in entry.facts
    bogus = {**entry.facts, "dump_prefix": {"end": 1, "sha256": "0" * 64}}
    head = attrs.evolve(manifest, components=(attrs.evolve(entry, members=(), facts={}),))
    path = tmp_path / "foreign.tar.zst"
    with path.open("wb") as stream:
        builder = ArchiveBuilder(registry.format("tar.zst"), stream, head=head)
        builder.add_member("full_db", "database.dump", [dump], size=len(dump))
        builder.set_facts("full_db", bogus)
        builder.finish()
    name = embedded_target.archiver.import_archive(path).name
    try:
        result = embedded_target.archiver.restore(name, "full_db", trust_foreign_dump=True)
        assert result.plan.authenticity == "foreign"
    finally:
        embedded_target.archiver.delete(name)


def test_a_dump_changed_on_disk_while_the_backup_writes_it_is_never_sealed(
    pg18: PgServer,
    superuser_owned: tuple[Archiver, str],
    attack: Attack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whoever can write the backup directory while pg_dump streams gets nothing sealed.

    The streamed dump's tar header is rewritten in place once its size is
    known, so the bytes after it are read back to seal them (and to record the
    archive's bytes through the dump, which a restore checks instead of
    decompressing the dump). Here an attacker replaces the dump's compressed
    frame on disk, just before that reading, by a hostile dump's frame of the
    same length (a zstd frame and a skippable frame): what is read back differs
    from what was written, so the backup fails and lists nothing.
    """
    archiver, _url = superuser_owned
    hostile = _pg_dump(pg18, _HOSTILE_SETUP.format(marker=attack.marker))
    original = _indexed_tar.IndexedTarWriter._add
    tampered: list[int] = []

    def add(self: Any, path: str, chunks: Any, size: int | None) -> None:
        original(self, path, chunks, size)
        if path != "full_db/database.dump":
            return
        out = self._out
        out.stream.flush()
        _name, offset = self._index[-1]
        start = offset + len(self.header_frame(tar_header(path, 0)))
        declared = int(os.pread(out.stream.fileno(), 512, offset + 10)[124:135], 8)
        assert len(hostile) <= declared
        plain = hostile + bytes(declared - len(hostile)) + tar_padding(declared)
        frame = zstandard.ZstdCompressor(level=19).compress(plain)
        room = out.offset - start - len(frame) - 8
        assert room >= 0
        skippable = (0x184D2A50).to_bytes(4, "little") + room.to_bytes(4, "little")
        os.pwrite(out.stream.fileno(), frame + skippable + bytes(room), start)
        tampered.append(start)

    monkeypatch.setattr(_indexed_tar.IndexedTarWriter, "_add", add)
    with pytest.raises(BackupFailedError, match="changed on disk while it was written"):
        archiver.create(components=["full_db"], format="tar.zst")
    monkeypatch.undo()
    assert tampered
    assert archiver.list() == []
    assert not attack.marker.exists()


# -- 4. the guard allows comments on shared objects ---------------------------------------


def test_comments_on_the_database_are_refused(
    target: Target, template_archive: Path, tmp_path: Path
) -> None:
    """COMMENT ON DATABASE passes the guard (CommentStmt is a plain statement, any object).

    pg_restore without --create never writes it; it changes the shared
    catalog pg_shdescription, outside the restored database. (COMMENT ON ROLE
    also passes the guard but the server refuses it to a plain owner.)
    """
    database = _dbname(target.admin)
    owner = _owner_of(target.admin)
    dump = craft_dump(
        [
            ("ENCODING", "SET client_encoding = 'UTF8';\n"),
            ("STDSTRINGS", "SET standard_conforming_strings = 'on';\n"),
            ("COMMENT", f"COMMENT ON DATABASE \"{database}\" IS 'owned by the attacker';\n"),
        ]
    )
    archive = _with_dump(template_archive, dump, tmp_path / "comments.tar.zst")
    name = target.archiver.import_archive(archive).name
    before = _cluster_state(target.admin, database)
    try:
        plan = target.archiver.plan(name, "full_db", trust_foreign_dump=True)
        with contextlib.suppress(ArchiveError):
            target.archiver.restore(name, "full_db", trust_foreign_dump=True)
        after = _cluster_state(target.admin, database)
        assert after["shared_comments"] == before["shared_comments"], plan.blockers
    finally:
        _undo_cluster_changes(target.admin, database, owner)
        target.archiver.delete(name)


# -- 6. a function body that the guard's plpgsql reading cannot hold -------------------------


def test_a_deeply_nested_plpgsql_function_is_refused_not_a_crash(
    embedded_target: Target, template_archive: Path, tmp_path: Path
) -> None:
    """500 nested BEGIN blocks: pglast's plpgsql JSON overflows json.loads' recursion.

    ``_sqlguard._judge_plpgsql_body`` catches ParseError and ValueError only;
    the RecursionError escapes ``plan`` (and the restore) as a non-ArchiveError.
    """
    body = "BEGIN " * 600 + "NULL; " + "END; " * 599 + "END"
    dump = craft_dump(
        [
            (
                "FUNCTION",
                f"CREATE FUNCTION public.f() RETURNS void LANGUAGE plpgsql AS $$ {body} $$;\n",
            )
        ]
    )
    archive = _with_dump(template_archive, dump, tmp_path / "nested.tar.zst")
    archiver = embedded_target.archiver
    name = archiver.import_archive(archive).name
    try:
        with contextlib.suppress(ArchiveError):
            archiver.plan(name, "full_db", trust_foreign_dump=True)
        with contextlib.suppress(ArchiveError):
            archiver.restore(name, "full_db", trust_foreign_dump=True)
    finally:
        archiver.delete(name)
