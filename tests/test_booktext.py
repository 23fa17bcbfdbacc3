"""The book's own text as plain sections (llmzero.data.booktext)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmzero.data import booktext

ROOT = Path(__file__).resolve().parents[1]


def _write_book(folder: Path, markdown_cells: list[str]) -> Path:
    (folder / "chapters" / "01-part").mkdir(parents=True)
    (folder / "_toc.yml").write_text("format: jb-book\nroot: index\n", encoding="utf-8")
    cells = [{"cell_type": "markdown", "metadata": {}, "source": text} for text in markdown_cells]
    cells.insert(1, {"cell_type": "code", "metadata": {}, "source": "# not a heading\nx = 1"})
    notebook = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = folder / "chapters" / "01-part" / "01-demo.ipynb"
    path.write_text(json.dumps(notebook), encoding="utf-8")
    return folder


def test_sections_split_at_headings_and_keep_the_chapter_label(tmp_path):
    book = _write_book(
        tmp_path,
        [
            "(ch-demo)=\n# A demo chapter\n\nIntro text.",
            "## First\n\nOne.\n\n```python\n# a comment, not a heading\n```\n\n### Deeper\n\nTwo.",
        ],
    )
    sections = booktext.load_sections(book)
    assert [(s.heading, s.level) for s in sections] == [("", 1), ("First", 2), ("Deeper", 3)]
    assert {s.chapter_label for s in sections} == {"ch-demo"}
    assert {s.chapter_title for s in sections} == {"A demo chapter"}
    assert "a comment, not a heading" in sections[1].text
    assert sections[2].citation == "ch-demo § Deeper"


def test_clean_myst_keeps_visible_text_and_drops_markup():
    markdown = (
        "(sec-x)=\n```{admonition} Optional: a box\n:class: dropdown\nInside {term}`token`.\n```\n"
        "See {ref}`the chapter <ch-gpt>` and {ref}`ch-gpt`, {cite:p}`vaswani2017attention`, "
        "loss {glue:text}`loss:.2f` and [a link](https://example.org)."
    )
    text = booktext.clean_myst(markdown)
    assert "Optional: a box" in text and "Inside token." in text
    assert ":class:" not in text and "(sec-x)=" not in text and "{" not in text
    assert "See the chapter and ch-gpt, [vaswani2017attention]" in text
    assert "loss [value]" in text and "a link" in text and "https" not in text


def test_the_real_book_has_every_chapter_with_takeaways():
    sections = booktext.load_sections(ROOT)
    chapters = {s.chapter_label for s in sections}
    notebooks = list((ROOT / "chapters").glob("0[1-9]-*/*.ipynb"))
    assert len(chapters) == len(notebooks)
    takeaways = {s.chapter_label for s in sections if s.heading == "Takeaways"}
    assert takeaways == chapters


def test_find_book_dir_searches_upwards_and_honours_the_environment(tmp_path, monkeypatch):
    book = _write_book(tmp_path / "clone", ["(ch-demo)=\n# Demo"])
    inner = book / "chapters" / "01-part"
    monkeypatch.delenv(booktext.BOOK_DIR_ENV, raising=False)
    assert booktext.find_book_dir(inner) == book.resolve()
    monkeypatch.setenv(booktext.BOOK_DIR_ENV, str(book))
    assert booktext.find_book_dir(tmp_path) == book


def test_a_folder_without_the_book_gets_an_error_that_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv(booktext.BOOK_DIR_ENV, raising=False)
    monkeypatch.setattr(booktext, "COLAB_CLONE", tmp_path / "no-colab")
    with pytest.raises(FileNotFoundError, match="LLMZERO_BOOK_DIR"):
        booktext.find_book_dir(tmp_path)
    with pytest.raises(FileNotFoundError, match="clone"):
        booktext.load_sections(tmp_path)
