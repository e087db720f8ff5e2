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

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from _dumps import craft_dump
from odeion_archive import Archiver
from odeion_archive._archive import ArchiveBuilder, ArchiveFile
from odeion_archive._registry import Registry
from odeion_archive._schema import migrate
from odeion_archive.errors import ArchiveError, RestoreBlockedError
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
