"""Tests for llmzero.text.cleaning: Unicode normalization, case folding and regex cleaning."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmzero.text.cleaning import HTML_TAG, URL, clean, normalize


def test_nfc_makes_composed_and_decomposed_accents_equal() -> None:
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    assert composed != decomposed
    assert normalize(composed, "NFC") == normalize(decomposed, "NFC") == composed
    assert normalize(composed, "NFD") == decomposed


def test_nfkc_folds_full_width_letters_ligatures_and_superscripts() -> None:
    assert normalize("\uff21\uff11") == "A1"  # full-width A and 1
    assert normalize("\ufb01ne") == "fine"  # the fi ligature
    assert normalize("x\u00b2") == "x2"  # superscript two: meaning lost
    assert normalize("x\u00b2", "NFC") == "x\u00b2"  # NFC keeps it


def test_casefold_matches_german_sharp_s_and_greek_final_sigma() -> None:
    assert normalize("Stra\u00dfe", casefold=True) == normalize("STRASSE", casefold=True)
    assert normalize("\u039f\u0394\u039f\u03a3", casefold=True) == normalize(
        "\u03bf\u03b4\u03bf\u03c2", casefold=True
    )


def test_casefold_output_is_renormalized() -> None:
    # U+01F0 (j with caron) case-folds to j + combining caron, which NFC composes back.
    folded = normalize("\u01f0", "NFC", casefold=True)
    assert folded == unicodedata.normalize("NFC", folded)
    assert folded == "\u01f0"


def test_normalize_rejects_unknown_form() -> None:
    with pytest.raises(ValueError, match="NFKC"):
        normalize("abc", "NFX")


@given(st.text(), st.sampled_from(["NFC", "NFD", "NFKC", "NFKD"]), st.booleans())
def test_normalize_is_idempotent(text: str, form: str, casefold: bool) -> None:
    once = normalize(text, form, casefold=casefold)
    assert normalize(once, form, casefold=casefold) == once


def test_clean_strips_tags_decodes_entities_and_marks_urls() -> None:
    raw = "<p>Read   this:&nbsp;https://example.com/a?b=1.</p>\n<br/>Bye &amp; thanks"
    assert clean(raw) == "Read this: [URL]. Bye & thanks"


def test_clean_keeps_escaped_markup_and_hearts() -> None:
    assert clean("I &lt;3 NLP &lt;b&gt;a lot&lt;/b&gt;") == "I <3 NLP <b>a lot</b>"
    assert clean("a < b and c > d") == "a < b and c > d"


def test_clean_options_keep_urls_and_html() -> None:
    raw = "<i>see</i> www.example.org/x, ok"
    assert clean(raw, url_token=None) == "see www.example.org/x, ok"
    assert clean(raw, strip_html=False) == "<i>see</i> [URL], ok"


def test_url_pattern_leaves_sentence_punctuation_outside() -> None:
    matches = [m.group() for m in URL.finditer("(http://t.co/abc), https://x.org/p?q=1!")]
    assert matches == ["http://t.co/abc", "https://x.org/p?q=1"]


def test_html_tag_pattern_needs_a_letter_slash_or_bang() -> None:
    found = HTML_TAG.findall("<3 <b>x</b> <!-- c --> <a href='u'>")
    assert found == ["<b>", "</b>", "<!-- c -->", "<a href='u'>"]


@given(st.text())
def test_clean_output_has_no_runs_of_whitespace(text: str) -> None:
    out = clean(text)
    assert out == out.strip()
    assert "  " not in out
