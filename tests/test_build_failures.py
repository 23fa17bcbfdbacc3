"""A failing notebook is explained where the reader looks: the build names the cell and error.

Builds a tiny fixture book (six pages and one notebook whose third cell raises) with
``python -m llmzero.book.build``, once with parallel Sphinx workers and once serially, and
checks what the terminal shows. The two builds run at the same time to keep this fast.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from llmzero.book.build import toc_notebooks
from llmzero.data import assets

CONFIG = """\
title: Fixture
only_build_toc_files: true
execute:
  execute_notebooks: force
  timeout: 120
html:
  use_multitoc_numbering: false
latex:
  use_jupyterbook_latex: false
sphinx:
  config:
    nb_execution_raise_on_error: true
    nb_execution_show_tb: true
"""
# Sphinx reads in parallel only when more than five pages are out of date.
TOC = "format: jb-book\nroot: index\nchapters:\n" + "".join(
    f"  - file: {page}\n" for page in ["page1", "page2", "page3", "page4", "page5", "broken"]
)
FAILING_CELL = (
    "def explain():\n"
    '    raise RuntimeError("The fixture failed on purpose.\\nSecond line of the message.")\n'
    "\n"
    "\n"
    "explain()"
)
MESSAGE = "RuntimeError: The fixture failed on purpose.\nSecond line of the message."
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _cell(kind: str, source: str, number: int) -> dict:
    cell = {"cell_type": kind, "id": f"cell-{number}", "metadata": {}, "source": source}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def make_book(root: Path, failing_cell: str = FAILING_CELL) -> Path:
    """A book whose notebook ``broken.ipynb`` fails in its third cell."""
    root.mkdir(parents=True)
    (root / "_config.yml").write_text(CONFIG, encoding="utf-8")
    (root / "_toc.yml").write_text(TOC, encoding="utf-8")
    (root / "index.md").write_text("# Fixture\n", encoding="utf-8")
    for number in range(1, 6):
        (root / f"page{number}.md").write_text(f"# Page {number}\n", encoding="utf-8")
    cells = [
        _cell("markdown", "# Broken", 1),
        _cell("code", "x = 1\nprint(x)", 2),
        _cell("code", failing_cell, 3),
        _cell("code", "print('never runs')", 4),
    ]
    notebook = {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (root / "broken.ipynb").write_text(json.dumps(notebook, indent=1), encoding="utf-8")
    return root


def _build(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "llmzero.book.build", "--root", str(root), *args],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str, Path]]:
    """Build the fixture book in parallel (2 workers) and serially, at the same time."""
    runs = {}
    for mode, jobs in (("parallel", "2"), ("serial", "1")):
        root = make_book(tmp_path_factory.mktemp(mode) / "book")
        runs[mode] = (_build(root, "--jobs", jobs), root)
    results = {}
    for mode, (process, root) in runs.items():
        output, _ = process.communicate(timeout=300)
        results[mode] = (process.returncode, ANSI.sub("", output), root)
    return results


@pytest.mark.parametrize("mode", ["parallel", "serial"])
def test_failed_notebook_names_its_cell_and_the_full_error(builds, mode):
    status, output, root = builds[mode]
    assert status == 1, output
    assert "NOTEBOOK FAILED: broken.ipynb" in output, output
    assert "at cell 3 of 4 (code cell 2), line 5:" in output
    assert "    def explain():\n" in output  # the first lines of the failing cell
    assert MESSAGE in output  # the exception and its whole message, verbatim
    log = re.search(r"Full log \(.*\): (\S+)", output)
    assert log, output
    text = (root / log.group(1)).read_text(encoding="utf-8")
    assert FAILING_CELL in text and "Traceback" in text and MESSAGE in text


@pytest.mark.parametrize("mode", ["parallel", "serial"])
def test_sphinx_does_not_ask_for_a_bug_report(builds, mode):
    _, output, _ = builds[mode]
    for text in ("Sphinx developers", "report this", "Exception occurred", "parallel build error"):
        assert text not in output, text


def test_the_parallel_build_really_read_in_parallel(builds):
    # Sphinx's parallel reader announces chunks of pages ("broken .. page1").
    assert re.search(r"reading sources\.\.\. \[\s*\d+%\] \S+ \.\. \S+", builds["parallel"][1])
    assert not re.search(r"reading sources\.\.\. \[\s*\d+%\] \S+ \.\. \S+", builds["serial"][1])


def test_preflight_stops_the_build_before_sphinx_starts(tmp_path):
    root = make_book(tmp_path / "book", failing_cell='assets.path("tinyshakespeare")')
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {assets.ENV_OFFLINE_DIR, assets.ENV_MIRROR}
    }
    env[assets.ENV_CACHE] = str(tmp_path / "empty-cache")
    env[assets.ENV_NO_DOWNLOAD] = "1"  # as on a machine without network: nothing to download
    process = _build(root, env=env)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 1
    assert "Preflight: 1 of the 1 asset the chapters need is not available" in output
    assert "fetch tinyshakespeare" in output and "broken" in output
    assert "Running Sphinx" not in output


def test_toc_notebooks_lists_the_notebooks_of_a_table_of_contents(tmp_path):
    root = make_book(tmp_path / "book")
    assert toc_notebooks(root, root / "_toc.yml") == [root / "broken.ipynb"]
