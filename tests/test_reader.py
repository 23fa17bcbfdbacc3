"""The reader notebooks (llmzero.book.reader): the chapters as Jupyter, Colab and Binder show them.

Most tests convert small fixtures and need no build. The chapters' own sources are checked
for site bookkeeping in learner-visible cells and converted with stand-in values; the reader
notebooks the build wrote (``_build/notebooks``) are checked when the book has been built
(CI builds it first), and a few of them are executed top to bottom.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, notebooks, toc_files

from llmzero.book import reader
from llmzero.book.reader import BookIndex, ReaderError, Target, convert_markdown

SITE = "https://example.org/book/"
DOC = "chapters/01-part/02-chapter"
OTHER = "chapters/01-part/01-first"
# What a reader notebook must not show: MyST roles and directives, labels.
MYST = re.compile(
    # A role is "{name}" directly followed by a backtick, so LaTeX such as \text{ref} in
    # math is not mistaken for one.
    r"\{glue|\{exercise|\{solution|```\{|:::|^\([\w:.-]+\)=\s*$|\{(?:term|ref|numref|doc)\}`"
    r"|\{cite(?::\w+)?\}`|\{admonition\}|\{note\}",
    re.MULTILINE,
)
# Chapters that run quickly: executed top to bottom from their reader notebooks.
EXECUTED = [
    "chapters/01-foundations/01-python-numpy-pandas",
    "chapters/01-foundations/03-probability-information",
]


def _index(**changes: Any) -> BookIndex:
    index = BookIndex(
        site_url=SITE,
        book_title="The Book",
        titles={DOC: "The chapter", OTHER: "The first chapter"},
        labels={
            "ch-first": Target(OTHER, "ch-first", "The first chapter"),
            "sec-here": Target(DOC, "sec-here", "A section"),
            "fig-here": Target(DOC, "fig-here", "A caption", "figure", "2.3"),
            "fig-there": Target(OTHER, "fig-there", "Another", "figure", "1.1"),
            "ex-one": Target(DOC, "ex-one", "Exercise", "exercise", "2.1"),
            "ex-two": Target(DOC, "ex-two", "Exercise", "exercise", "2.2"),
        },
        terms={"softmax": Target("chapters/99/glossary", "term-Softmax", "Softmax")},
        citations={"vaswani2017": Target("chapters/99/bibliography", "id7")},
        exercises={DOC: ["ex-one", "ex-two"]},
        bibliography_doc="chapters/99/bibliography",
        references={
            "vaswani2017": ("Vaswani et al.", "2017"),
            "kingma2015": ("Kingma and Ba", "2015"),
        },
    )
    for name, value in changes.items():
        setattr(index, name, value)
    return index


GLUE = {
    "loss": {"data": {"text/plain": "1.23456"}},
    "count": {"data": {"text/plain": "1234567"}},
    "share": {"data": {"text/plain": "0.4567"}},
    "word": {"data": {"text/plain": "'bank'"}},
    "plot": {"data": {"image/png": "..."}},
}


def _convert(text: str, **changes: Any) -> str:
    return convert_markdown(text, DOC, _index(**changes), GLUE)


# --- Markdown conversions ---------------------------------------------------------------------


def test_labels_are_dropped_and_kept_as_anchors_only_where_linked():
    text = "(sec-here)=\n## A section\n\nSee {ref}`sec-here`.\n\n(unused)=\n## Other"
    out = _convert(text)
    assert out.startswith('## <a id="sec-here"></a>A section')
    assert "[A section](#sec-here)" in out
    assert "(unused)=" not in out and "unused" not in out


def test_admonitions_become_block_quotes_and_dropdowns_details():
    out = _convert("```{admonition} Learning objectives\n:class: tip\n- one\n- two\n```")
    assert out.splitlines() == ["> **Learning objectives**", ">", "> - one", "> - two"]
    out = _convert("```{admonition} Optional: internals\n:class: dropdown\nDeep *stuff*.\n```")
    assert out.splitlines()[:3] == [
        "<details>",
        "<summary><strong>Optional: internals</strong></summary>",
        "",
    ]
    assert "Deep *stuff*." in out and out.rstrip().endswith("</details>")
    assert _convert("```{note}\nCareful.\n```").splitlines() == ["> **Note**", ">", "> Careful."]
    assert _convert(":::{warning} Hot.\n:::").splitlines() == ["> **Warning**", ">", "> Hot."]


def test_exercises_get_the_builds_numbers_and_solutions_collapse():
    text = (
        "## Exercises\n\n```{exercise} First\n:label: ex-one\n\nDo it.\n```\n\n"
        "````{solution} ex-one\n:class: dropdown\n\nDone:\n\n```python\nx = 1\n```\n````\n\n"
        "```{exercise}\n:label: ex-two\nAgain.\n```"
    )
    out = _convert(text)
    assert "### Exercise 2.1 (First)\n\nDo it." in out
    assert "<details>\n<summary>Solution to Exercise 2.1 (First)</summary>\n\nDone:" in out
    assert "```python\nx = 1\n```\n\n</details>" in out
    assert "### Exercise 2.2\n\nAgain." in out


def test_exercises_are_numbered_within_the_chapter_without_a_build_index():
    out = _convert("```{exercise} A\n:label: ex-a\nx\n```\n```{exercise} B\ny\n```", exercises={})
    assert "## Exercise 1 (A)" in out and "## Exercise 2 (B)" in out


def test_an_exercise_the_build_did_not_number_is_an_error():
    with pytest.raises(ReaderError, match="build's index"):
        _convert("```{exercise} A\n:label: ex-other\nx\n```")


def test_glued_values_are_formatted_like_the_site_and_marked():
    out = _convert(
        "loss {glue:text}`loss:.2f`, {glue:text}`count:,d` tokens, {glue:text}`share:.1%`, "
        "{glue:text}`share:.0f`%, {glue}`count`, the word {glue:text}`word`, raw {glue}`word`"
    )
    mark = reader.GLUE_MARK
    assert out == (
        f"loss 1.23{mark}, 1,234,567{mark} tokens, 45.7%{mark}, 0%{mark}, 1234567{mark}, "
        f"the word bank{mark}, raw 'bank'{mark}"
    )


def test_a_glued_value_the_run_did_not_record_is_an_error():
    with pytest.raises(ReaderError, match="no value named 'missing'"):
        _convert("{glue:text}`missing:.2f`")
    with pytest.raises(ReaderError, match="no text form"):
        _convert("{glue:text}`plot`")


def test_references_link_to_the_site_or_within_the_notebook():
    out = _convert(
        "{ref}`ch-first`, {ref}`the start <ch-first>`, {numref}`fig-here`, "
        "{numref}`fig-there`, {numref}`Figure %s <fig-there>`, {ref}`ex-one`, {doc}`01-first`"
    )
    first = f"{SITE}{OTHER}.html"
    assert f"[The first chapter]({first}#ch-first)" in out
    assert f"[the start]({first}#ch-first)" in out
    assert f"[Fig. 2.3]({SITE}{DOC}.html#fig-here)" in out  # no anchor here: not in this text
    assert f"[Fig. 1.1]({first}#fig-there)" in out
    assert f"[Figure 1.1]({first}#fig-there)" in out
    assert f"[Exercise 2.1]({SITE}{DOC}.html#ex-one)" in out
    assert f"[The first chapter]({first})" in out


def test_terms_link_to_the_glossary_and_citations_to_the_bibliography():
    out = _convert("the {term}`Softmax`, {term}`soft max <softmax>`, {term}`soft\nmax <softmax>`")
    glossary = f"{SITE}chapters/99/glossary.html#term-Softmax"
    assert out == f"the [Softmax]({glossary}), [soft max]({glossary}), [soft\nmax]({glossary})"
    out = _convert(
        "{cite:p}`vaswani2017` and {cite:t}`kingma2015`; {cite:p}`vaswani2017,kingma2015`"
    )
    vaswani = f"{SITE}chapters/99/bibliography.html#id7"
    page = f"{SITE}chapters/99/bibliography.html"
    assert out == (
        f"([Vaswani et al., 2017]({vaswani})) and [Kingma and Ba]({page}) (2015); "
        f"([Vaswani et al., 2017]({vaswani}); [Kingma and Ba, 2015]({page}))"
    )


def test_code_is_left_alone():
    text = "Write `{glue:text}` roles like ``{term}`x` ``.\n\n```python\n{term}`y`\n```"
    assert _convert(text) == text


def test_unknown_syntax_and_targets_are_errors_not_silent_loss():
    for text, message in [
        ("```{figure} x.png\n```", "directive {figure}"),
        ("{eq}`my-eq`", "role {eq}"),
        ("{ref}`nowhere`", "unknown label 'nowhere'"),
        ("{term}`Nothing`", "not in the glossary"),
        ("{cite:p}`nobody2020`", "not in references.bib"),
        ("```{solution} ex-nowhere\nx\n```", "unknown exercise"),
    ]:
        with pytest.raises(ReaderError, match=re.escape(message)):
            _convert(text)


def test_bibliography_authors_and_years(tmp_path):
    bib = tmp_path / "refs.bib"
    bib.write_text(
        "@article{a, author={Kingma, Diederik P. and Ba, Jimmy}, year={2015}, title={Adam}}\n"
        "@misc{b, author={{Sentence-Transformers}}, year={2021}, title={M}}\n"
        "@article{c, author={Lebr{\\'o}n, F. and de Jong, M. and Sanghai, S.}, year={2023}}\n"
        "@article{d, author={Allal, L. and others}, year={2025}}\n"
        "@book{e, author={Strang, Gilbert}, year={2016}}\n",
        encoding="utf-8",
    )
    assert reader.parse_bibliography(bib) == {
        "a": ("Kingma and Ba", "2015"),
        "b": ("Sentence-Transformers", "2021"),
        "c": ("Lebrón et al.", "2023"),
        "d": ("Allal et al.", "2025"),
        "e": ("Strang", "2016"),
    }


def test_every_reference_in_the_books_bibliography_formats():
    references = reader.parse_bibliography(ROOT / "references.bib")
    assert references
    for key, (authors, year) in references.items():
        assert authors and "{" not in authors and "\\" not in authors, key
        assert re.fullmatch(r"\d{4}", year), (key, year)


def test_site_address_comes_from_the_repository_or_baseurl():
    config = {
        "repository": {"url": "https://github.com/Some-Org/the-book"},
        "html": {"baseurl": ""},
    }
    assert reader.site_url(config) == "https://some-org.github.io/the-book/"
    config["html"]["baseurl"] = "https://book.example.org"
    assert reader.site_url(config) == "https://book.example.org/"
    with pytest.raises(ReaderError, match=r"html\.baseurl"):
        reader.site_url({"repository": {"url": "https://gitlab.com/a/b"}})


def test_launch_buttons_move_to_the_reader_branch():
    from llmzero.book.sphinxext import on_branch

    colab = "https://colab.research.google.com/github/o/r/blob/main/chapters/a.ipynb"
    binder = "https://mybinder.org/v2/gh/o/r/main?urlpath=tree/chapters/a.ipynb"
    assert on_branch(colab, "main", "nb") == colab.replace("/blob/main/", "/blob/nb/")
    assert on_branch(binder, "main", "nb") == binder.replace("/r/main?", "/r/nb?")
    with pytest.raises(ValueError, match="cannot point"):
        on_branch("https://example.org/main/x", "main", "nb")


# --- whole notebooks ------------------------------------------------------------------------------


def _cell(kind: str, source: str, **metadata: Any) -> dict[str, Any]:
    cell: dict[str, Any] = {"cell_type": kind, "id": f"c{abs(hash(source)) % 10**8}"}
    cell["metadata"] = metadata
    cell["source"] = source
    if kind == "code":
        cell.update(execution_count=3, outputs=[{"output_type": "stream", "text": "x"}])
    return cell


def _notebook() -> dict[str, Any]:
    figure = {"figure": {"name": "fig-here", "caption": "Loss of the {term}`softmax` model."}}
    cells = [
        _cell("markdown", "(ch-here)=\n# The chapter\n\nHook.\n\nSee {numref}`fig-here`."),
        _cell("code", "import sys  # setup", tags=["hide-cell"]),
        _cell("code", "loss = 1.23456\nprint(loss)"),
        _cell("code", 'glue("loss", loss)', tags=["remove-cell"]),
        _cell("markdown", "The loss is {glue:text}`loss:.2f`."),
        _cell("code", "plot(loss)", mystnb=figure),
        _cell("markdown", "Hidden prose.", tags=["remove-cell"]),
        _cell("markdown", "```{glue:figure} curve\nThe curve.\n```"),
    ]
    cells.insert(6, _cell("code", 'glue("curve", figure)', tags=["remove-cell"]))
    return {
        "cells": cells,
        "metadata": {"kernelspec": {"name": "python3"}, "widgets": {}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def test_reader_notebook_keeps_the_code_and_converts_the_prose():
    source = _notebook()
    result = reader.reader_notebook(source, DOC, _index(), GLUE, f"{DOC}.ipynb")
    code = [("".join(c["source"])) for c in result["cells"] if c["cell_type"] == "code"]
    assert code == ["import sys  # setup", "loss = 1.23456\nprint(loss)", "plot(loss)"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in _code(result))
    assert _code(result)[0]["metadata"] == {
        "tags": ["hide-cell"],
        "jupyter": {"source_hidden": True},
    }
    assert set(result["metadata"]) == {"kernelspec"}
    markdown = ["".join(c["source"]) for c in result["cells"] if c["cell_type"] == "markdown"]
    assert markdown[0].startswith(f"<!-- Generated from {DOC}.ipynb")
    assert "# The chapter\n\n> This notebook is the chapter [The chapter]" in markdown[0]
    assert f"marked {reader.GLUE_MARK}" in markdown[0]
    assert "[Fig. 2.3](#fig-here)" in markdown[0]
    assert markdown[1] == f"The loss is 1.23{reader.GLUE_MARK}."
    glossary = f"{SITE}chapters/99/glossary.html#term-Softmax"
    assert (
        markdown[2]
        == f'<a id="fig-here"></a>**Fig. 2.3.** Loss of the [softmax]({glossary}) model.'
    )
    assert "Hidden prose." not in "".join(markdown)
    assert "drawn by the code cell above that starts with `plot(loss)`" in markdown[3]
    assert not any(MYST.search(text) for text in markdown)


def _code(notebook: dict[str, Any]) -> list[dict[str, Any]]:
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]


# --- the chapters' sources ---------------------------------------------------------------------


def _source(cell: dict[str, Any]) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _statements(code: str) -> list[ast.stmt]:
    lines = []
    for line in code.split("\n"):  # IPython magics and shell lines: same indentation, no code
        stripped = line.lstrip()
        magic = stripped.startswith(("!", "%"))
        lines.append(line[: len(line) - len(stripped)] + "pass" if magic else line)
    return ast.parse("\n".join(lines)).body


def _bound(statement: ast.stmt) -> set[str]:
    names = set()
    for node in ast.walk(statement):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            names.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def _read(statement: ast.stmt) -> set[str]:
    loads = {n.id for n in ast.walk(statement) if isinstance(n, ast.Name)}
    return loads - _bound(statement)


@pytest.mark.parametrize("notebook", notebooks(), ids=lambda p: p.stem)
def test_site_bookkeeping_stays_out_of_the_code_readers_see(notebook):
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    bound_in: dict[str, int] = {}  # name -> the cell whose code last bound it
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        removed = "remove-cell" in cell["metadata"].get("tags", [])
        code = _source(cell)
        if not removed:
            assert not re.search(r"\bglue\b", code), (
                f"{notebook.name} cell {index}: glue(...) in a cell readers see; move it to a "
                "small cell tagged remove-cell right after"
            )
        for statement in _statements(code):
            if not removed:
                for name in _read(statement):
                    origin = bound_in.get(name)
                    assert origin is None or "remove-cell" not in cells[origin]["metadata"].get(
                        "tags", []
                    ), (
                        f"{notebook.name} cell {index} uses {name!r}, defined in remove-cell "
                        f"cell {origin}: the reader notebooks leave that cell out"
                    )
            for name in _bound(statement):
                bound_in[name] = index


class _Anything(dict):
    """A stand-in for build data: every name has a value."""

    def __init__(self, make):
        super().__init__()
        self.make = make

    def get(self, key, default=None):
        return self.make(key)

    def __contains__(self, key):
        return True

    def __getitem__(self, key):
        return self.make(key)


@pytest.mark.parametrize("notebook", notebooks(), ids=lambda p: p.stem)
def test_every_chapter_converts_to_plain_markdown(notebook):
    # Stand-ins for the build's numbers and values: this checks the syntax, the build the rest.
    doc = notebook.relative_to(ROOT).with_suffix("").as_posix()
    index = _index(
        labels=_Anything(
            lambda label: Target(
                doc, label, label, "exercise" if label.startswith("ex-") else "figure", "1"
            )
        ),
        terms=_Anything(lambda term: Target("glossary", "term")),
        exercises={},
        references=reader.parse_bibliography(ROOT / "references.bib"),
    )
    glue = _Anything(lambda key: {"data": {"text/plain": "1"}})
    source = json.loads(notebook.read_text(encoding="utf-8"))
    result = reader.reader_notebook(source, doc, index, glue)
    _check_reader(source, result, notebook.name)


def _check_reader(source: dict[str, Any], result: dict[str, Any], name: str) -> None:
    kept = [
        _source(c)
        for c in source["cells"]
        if c["cell_type"] == "code" and "remove-cell" not in c["metadata"].get("tags", [])
    ]
    assert [_source(c) for c in _code(result)] == kept, f"{name}: code cells differ"
    markdown = "\n".join(_source(c) for c in result["cells"] if c["cell_type"] == "markdown")
    shown = MYST.findall(markdown)
    assert not shown, f"{name}: MyST syntax left in the reader notebook: {shown[:5]}"
    original = "\n".join(_source(c) for c in source["cells"] if c["cell_type"] == "markdown")
    assert markdown.count("<details>") >= original.count("{solution}"), f"{name}: solutions lost"
    exercises = len(re.findall(r"^#+ (?:<a [^>]+></a>)?Exercise \S+", markdown, re.MULTILINE))
    assert exercises == original.count("{exercise}"), f"{name}: exercises lost"
    figures = sum(1 for c in source["cells"] if c["metadata"].get("mystnb", {}).get("figure"))
    assert len(re.findall(r"^(?:<a [^>]+></a>)?\*\*(?:Fig\.|Figure)", markdown, re.M)) >= figures
    glued = original.count("{glue")
    assert markdown.count(reader.GLUE_MARK) >= glued, f"{name}: glued values lost"


# --- the reader notebooks the build wrote ---------------------------------------------------


def _chapters() -> list[str]:
    return [p for p in toc_files() if (ROOT / f"{p}.ipynb").is_file()]


def _built(page: str, site: Path) -> dict[str, Any]:
    path = site.parent / reader.NOTEBOOKS_DIR / f"{page}.ipynb"
    assert path.is_file(), f"the build wrote no reader notebook for {page}: {path}"
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.site
@pytest.mark.parametrize("page", _chapters())
def test_built_reader_notebook_reads_cleanly(site, page):
    source = json.loads((ROOT / f"{page}.ipynb").read_text(encoding="utf-8"))
    result = _built(page, site)
    _check_reader(source, result, page)
    assert (site / reader.NOTEBOOKS_DIR / f"{page}.ipynb").is_file(), "not in the site"


@pytest.mark.site
@pytest.mark.parametrize("page", _chapters())
def test_built_reader_notebook_numbers_exercises_and_figures_like_the_site(site, page):
    from bs4 import BeautifulSoup

    html = BeautifulSoup((site / f"{page}.html").read_text(encoding="utf-8"), "html.parser")
    on_site = {
        kind: [n.get_text().strip() for n in html.select(f"{selector} .caption-number")]
        for kind, selector in (("exercise", "div.exercise"), ("figure", "figure figcaption"))
    }
    markdown = "\n".join(
        _source(c) for c in _built(page, site)["cells"] if c["cell_type"] == "markdown"
    )
    exercises = re.findall(r"^#+ (?:<a [^>]+></a>)?(Exercise [\d.]+)", markdown, re.MULTILINE)
    figures = re.findall(r"^(?:<a [^>]+></a>)?\*\*(Fig\. [\d.]+)\.\*\*", markdown, re.MULTILINE)
    assert exercises == on_site["exercise"]
    assert figures == on_site["figure"]


@pytest.mark.site
@pytest.mark.parametrize("page", EXECUTED)
def test_reader_notebook_runs_top_to_bottom(site, page, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    built = site.parent / reader.NOTEBOOKS_DIR / f"{page}.ipynb"
    notebook = nbformat.read(built, as_version=4)
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on failure
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors


def test_a_build_without_notebooks_still_writes_the_readme(tmp_path):
    # `build --only` of a Markdown page executes no notebook: the reader step must not fail.
    build = tmp_path / "_build"
    build.mkdir()
    (build / reader.INDEX_FILE).write_text(json.dumps({"exercises": {}}), encoding="utf-8")
    config = {"title": "A book", "repository": {"url": "https://github.com/o/r"}}
    written = reader.write_reader_notebooks(ROOT, build, config=config, log=lambda _: None)
    assert written == []
    assert (build / reader.NOTEBOOKS_DIR / "README.md").is_file()
