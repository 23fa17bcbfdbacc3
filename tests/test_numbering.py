"""Continuous chapter numbers (llmzero.book.numbering), checked on a tiny book built in a
temporary folder: two numbered Parts of two chapters, each chapter with one figure and one
exercise, plus unnumbered front and back matter. Built in parallel (-j 2), as the book is."""

from __future__ import annotations

import io
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from bs4 import BeautifulSoup

TOC = """\
format: jb-book
root: index
parts:
  - caption: Front
    chapters:
      - file: intro
  - caption: Part I
    numbered: true
    chapters:
      - file: part1/alpha
      - file: part1/beta
        sections:
          - file: part1/beta-more
  - caption: Part II
    numbered: true
    chapters:
      - file: part2/gamma
      - file: part2/delta
  - caption: Back
    chapters:
      - file: appendix
"""

SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><rect width="4"/></svg>'


def _chapter(name: str, extra: str = "") -> str:
    return f"""\
({name})=
# {name.title()}

## Setup

```{{figure}} /dot.svg
:name: fig-{name}
:alt: A dot.

The figure of {name}.
```

```{{exercise}}
:label: ex-{name}

Do {name}.
```

## More

See {{numref}}`fig-{name}` and {{numref}}`ex-{name}`.
{extra}
"""


PAGES = {
    "index": "# Tiny book\n\nA book to test numbering.\n",
    "intro": "# Introduction\n\nNo numbers here.\n",
    "part1/alpha": _chapter("alpha"),
    "part1/beta": _chapter("beta"),
    "part1/beta-more": "# Beta, continued\n\n## Deeper\n\nMore of beta.\n",
    "part2/gamma": _chapter("gamma"),
    "part2/delta": _chapter(
        "delta", "Back in Part I: {numref}`fig-alpha` and {numref}`ex-beta`.\n"
    ),
    "appendix": "# Appendix\n\nNo numbers here either.\n",
}


def _build(folder: Path, extensions: list[str], jobs: int = 2):
    """Build the tiny book as HTML; return the Sphinx application and its log."""
    from sphinx.application import Sphinx
    from sphinx.util.docutils import docutils_namespace

    source = folder / "src"
    for name, text in PAGES.items():
        (source / f"{name}.md").parent.mkdir(parents=True, exist_ok=True)
        (source / f"{name}.md").write_text(text, encoding="utf-8")
    (source / "dot.svg").write_text(SVG, encoding="utf-8")
    (source / "_toc.yml").write_text(TOC, encoding="utf-8")
    log = io.StringIO()
    with docutils_namespace():
        app = Sphinx(
            srcdir=source,
            confdir=None,
            outdir=folder / "html",
            doctreedir=folder / "doctrees",
            buildername="html",
            confoverrides={
                "extensions": [
                    "myst_parser",
                    "sphinx_external_toc",
                    "sphinx_exercise",
                    *extensions,
                ],
                "external_toc_path": "_toc.yml",
                "numfig": True,
                "html_theme": "sphinx_book_theme",
            },
            status=log,
            warning=log,
            warningiserror=True,
            parallel=jobs,
        )
        app.build()
    return app, log.getvalue()


@pytest.fixture(scope="module")
def tiny_book(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("book"), ["llmzero.book.numbering"])


@pytest.fixture(scope="module")
def sphinx_default(tmp_path_factory):
    """The same book numbered by Sphinx alone: every Part restarts at chapter 1."""
    return _build(tmp_path_factory.mktemp("default"), [])


def _html(app, docname: str) -> BeautifulSoup:
    path = Path(app.outdir) / f"{docname}.html"
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def _caption_numbers(soup: BeautifulSoup) -> list[str]:
    return [span.get_text(" ", strip=True) for span in soup.select("span.caption-number")]


def test_chapters_are_numbered_on_through_the_parts(tiny_book):
    app, _ = tiny_book
    numbers = app.env.toc_secnumbers
    chapters = ["part1/alpha", "part1/beta", "part2/gamma", "part2/delta"]
    assert [numbers[doc][""] for doc in chapters] == [(1,), (2,), (3,), (4,)]
    assert numbers["part2/gamma"]["#setup"] == (3, 1)
    assert numbers["part2/gamma"]["#more"] == (3, 2)
    # A chapter's section file continues the chapter's section numbers.
    assert numbers["part1/beta-more"][""] == (2, 3)
    assert numbers["part1/beta-more"]["#deeper"] == (2, 3, 1)
    for unnumbered in ("index", "intro", "appendix"):
        assert unnumbered not in numbers


def test_figure_and_exercise_counters_restart_in_every_chapter(tiny_book):
    app, _ = tiny_book
    fignumbers = app.env.toc_fignumbers
    for chapter, docname in enumerate(["part1/alpha", "part1/beta", "part2/gamma"], start=1):
        assert list(fignumbers[docname]["figure"].values()) == [(chapter, 1)]
        assert list(fignumbers[docname]["exercise"].values()) == [(chapter, 1)]


def test_pages_show_the_numbers_in_headings_captions_and_links(tiny_book):
    app, _ = tiny_book
    gamma = _html(app, "part2/gamma")
    assert gamma.select_one("article section h1").get_text(" ", strip=True).startswith("3. Gamma")
    assert _caption_numbers(gamma) == ["Fig. 3.1", "Exercise 3.1"]
    links = [span.get_text(strip=True) for span in gamma.select("a span.std-numref")]
    assert links == ["Fig. 3.1", "Exercise 3.1"]
    # A cross-reference to another Part names the target's own number and page.
    delta = _html(app, "part2/delta")
    across = {
        a.get_text(strip=True): a["href"]
        for a in delta.select("a.reference")
        if a.select_one("span.std-numref")
    }
    assert across["Fig. 1.1"] == "../part1/alpha.html#fig-alpha"
    assert across["Exercise 2.1"] == "../part1/beta.html#ex-beta"


def test_the_sidebar_numbers_chapters_on_through_the_parts(tiny_book):
    app, _ = tiny_book
    sidebar = _html(app, "index").select_one("nav.bd-links")
    entries = [a.get_text(" ", strip=True) for a in sidebar.select("a.reference")]
    assert entries == [
        "Introduction",
        "1. Alpha",
        "2. Beta",
        "2.3. Beta, continued",
        "3. Gamma",
        "4. Delta",
        "Appendix",
    ]


def test_no_number_is_shown_on_two_pages(tiny_book):
    app, _ = tiny_book
    seen: dict[str, str] = {}
    for docname in PAGES:
        for number in _caption_numbers(_html(app, docname)):
            assert number not in seen, f"{number} on {seen.get(number)} and {docname}"
            seen[number] = docname
    assert len(seen) == 8  # a figure and an exercise in each of the four chapters


def test_the_build_stays_parallel(tiny_book):
    app, log = tiny_book
    assert app.parallel == 2
    assert app.is_parallel_allowed("read") and app.is_parallel_allowed("write")
    assert "doing serial" not in log
    # Sphinx reads in parallel only with more than five documents to read. A parallel
    # build reports its progress by chunks of documents ("[ 50%] appendix .. part1/alpha"),
    # a serial one document by document.
    assert len(PAGES) > 5
    plain = re.sub(r"\x1b\[[0-9;]*m", "", log)
    assert re.search(r"reading sources\.\.\. \[\s*\d+%\] \S+ \.\. \S+", plain), plain
    assert re.search(r"writing output\.\.\. \[\s*\d+%\] \S+ \.\. \S+", plain), plain


def test_only_the_chapter_numbers_differ_from_sphinx_alone(tiny_book, sphinx_default):
    ours, default = tiny_book[0].env, sphinx_default[0].env
    # Sphinx alone restarts Part II at 1, and its counters run on from Part I's chapter 1.
    assert default.toc_secnumbers["part2/gamma"][""] == (1,)
    assert list(default.toc_fignumbers["part2/gamma"]["figure"].values()) == [(1, 2)]
    for docname, numbers in default.toc_secnumbers.items():
        offset = 2 if docname.startswith("part2/") else 0
        shifted = {anchor: (n[0] + offset, *n[1:]) for anchor, n in numbers.items()}
        assert ours.toc_secnumbers[docname] == shifted


def test_sphinx_collector_is_replaced_and_unchanged_numbers_rewrite_nothing(tiny_book):
    from sphinx.environment.collectors.toctree import TocTreeCollector

    from llmzero.book.numbering import ContinuousTocTreeCollector

    app, _ = tiny_book
    collectors = [
        getattr(listener.handler, "__self__", None)
        for listener in app.events.listeners["env-get-updated"]
    ]
    toc_collectors = [c for c in collectors if isinstance(c, TocTreeCollector)]
    assert [type(c) for c in toc_collectors] == [ContinuousTocTreeCollector]
    # Numbering again gives the same numbers, so an incremental build rewrites no page.
    before = dict(app.env.toc_secnumbers)
    assert toc_collectors[0].assign_section_numbers(app.env) == []
    assert app.env.toc_secnumbers == before


def test_numbered_parts_are_taken_in_reading_order():
    from llmzero.book.numbering import numbered_documents_in_reading_order

    env = SimpleNamespace(
        config=SimpleNamespace(root_doc="index"),
        toctree_includes={"index": ["a", "b"], "a": ["a1"], "b": ["b1"]},
        numbered_toctrees={"b", "a1", "index", "orphan"},
    )
    assert numbered_documents_in_reading_order(env) == ["index", "a1", "b", "orphan"]


def test_the_serial_multitoc_extension_is_refused(tmp_path):
    from sphinx.errors import ExtensionError

    with pytest.raises(ExtensionError, match=re.escape("use_multitoc_numbering: false")):
        _build(tmp_path, ["llmzero.book.numbering", "sphinx_multitoc_numbering"], jobs=1)
