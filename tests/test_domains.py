"""Tests for llmzero.applications.domains: fertility and the citation checker."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmzero.applications import domains
from llmzero.data import booktext

BIB = r"""
@comment{ignored}
@article{vaswani2017attention,
  title   = {Attention Is All You Need},
  author  = {Vaswani, Ashish and Shazeer, Noam and others},
  year    = {2017}
}
@misc{koepf2019,
  title  = "A {Nested} {{Title}}",
  author = {K{\"o}pf, Andreas and Jane Doe},
  year   = 2019
}
@misc{un1948udhr,
  title  = {Universal Declaration of Human Rights},
  author = {{United Nations General Assembly}},
  year   = {1948}
}
"""


def test_words_keep_inner_apostrophes_and_hyphens_and_drop_numbers():
    assert domains.words("Don't re-file 12 forms, e.g. 1040!") == [
        "Don't",
        "re-file",
        "forms",
        "e",
        "g",
    ]


def test_fertility_is_tokens_per_word():
    assert domains.fertility(lambda text: list(text.replace(" ", "")), "ab cde") == 5 / 2
    assert domains.fertility(str.split, "one two three") == 1.0


def test_fertility_rejects_text_without_words():
    with pytest.raises(ValueError, match="no words"):
        domains.fertility(str.split, "123 , 456")


def test_parse_bibtex_reads_keys_surnames_years_and_titles():
    entries = {entry.key: entry for entry in domains.parse_bibtex(BIB)}
    assert set(entries) == {"vaswani2017attention", "koepf2019", "un1948udhr"}
    assert entries["vaswani2017attention"].surnames == ("Vaswani", "Shazeer")
    assert entries["vaswani2017attention"].year == 2017
    assert entries["koepf2019"].title == "A Nested Title"
    assert entries["koepf2019"].surnames == ('K{\\"o}pf', "Doe")
    assert entries["koepf2019"].year == 2019
    assert entries["un1948udhr"].surnames == ("United Nations General Assembly",)


def test_find_citations_reads_the_usual_author_year_forms():
    text = (
        "Vaswani et al. (2017) and (Mikolov and Chen, 2013); Devlin, J. (2019); "
        "a paper by Jane Doe, 2020. In 2019 nothing; The 2021 report."
    )
    found = [(c.surname, c.year) for c in domains.find_citations(text)]
    assert found == [("Vaswani", 2017), ("Mikolov", 2013), ("Devlin", 2019), ("Doe", 2020)]


def test_verify_citations_matches_first_author_and_year_ignoring_accents_and_case():
    entries = domains.parse_bibtex(BIB)
    citations = domains.find_citations(
        "Vaswani et al. (2017); Vaswani et al. (2018); Köpf (2019); KOPF 2019; Shazeer (2017)"
    )
    checks = domains.verify_citations(citations, entries)
    assert [check.exists for check in checks] == [True, False, True, True, False]
    assert checks[0].key == "vaswani2017attention" and checks[1].key is None
    assert checks[2].key == "koepf2019"


def test_the_books_bibliography_is_found_and_parsed():
    root = Path(__file__).resolve().parents[1]
    path = domains.find_bibliography(root / "chapters")
    assert path == root / "references.bib"
    entries = domains.parse_bibtex(path.read_text(encoding="utf-8"))
    keys = {entry.key for entry in entries}
    assert "vaswani2017attention" in keys and len(keys) == len(entries)  # keys are unique
    real = domains.find_citations("as Vaswani et al. (2017) showed")
    assert domains.verify_citations(real, entries)[0].exists


def test_find_bibliography_says_what_to_do_when_missing(tmp_path, monkeypatch):
    monkeypatch.delenv(booktext.BOOK_DIR_ENV, raising=False)
    monkeypatch.setattr(booktext, "COLAB_CLONE", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="git clone"):
        domains.find_bibliography(tmp_path)
    (tmp_path / "chapters").mkdir()
    (tmp_path / "_toc.yml").write_text("root: intro\n")
    with pytest.raises(FileNotFoundError, match=r"references\.bib"):
        domains.find_bibliography(tmp_path)
