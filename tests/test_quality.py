"""Tests for llmzero.data.quality: C4 line rules and Gopher's heuristics."""

from __future__ import annotations

import pytest

from llmzero.data.quality import c4_line_filter, gopher_quality, gopher_repetition

PROSE = (
    "The committee met on Tuesday to review the budget and the plans for the new library. "
    "Members agreed that the building should open to the public before the end of the year, "
    "with longer hours on weekends and a reading room for students. The chair thanked the "
    "volunteers who had raised money for the project over the past three years, and said that "
    "the town would remember their work."
)


def test_c4_drops_boilerplate_lines_and_keeps_prose() -> None:
    text = (
        "This site uses cookies to improve your visit.\n"
        + PROSE
        + "\nEnable JavaScript to comment."
    )
    kept, reason = c4_line_filter(text)
    assert reason is None and kept == PROSE


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Lorem ipsum dolor sit amet.\n" + PROSE, "lorem_ipsum"),
        ("function f() { return 1; }\n" + PROSE, "curly_bracket"),
        ("Privacy policy\nTerms of use", "empty_after_lines"),
    ],
)
def test_c4_rejects_placeholder_code_and_empty_pages(text: str, reason: str) -> None:
    assert c4_line_filter(text) == ("", reason)


def test_c4_terminal_punctuation_rule_deletes_verse() -> None:
    verse = "Shall I compare thee to a summer's day?\nThou art more lovely and more temperate:"
    kept, _ = c4_line_filter(verse, require_terminal_punctuation=True)
    assert kept == "Shall I compare thee to a summer's day?"


def test_gopher_quality_keeps_prose() -> None:
    assert gopher_quality(PROSE) is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Too short to be a page.", "gopher_short_doc"),
        (" ".join(["a b c"] * 40), "gopher_below_avg_threshold"),
        (" ".join(["internationalisation"] * 60), "gopher_above_avg_threshold"),
        (" ".join(f"#tag{i} word" for i in range(60)), "gopher_too_many_hashes"),
        ("\n".join(f"- item number {i} here" for i in range(60)), "gopher_too_many_bullets"),
        (
            " ".join(f"1000{i} 2000{i} | 3.14{i} item{i}" for i in range(60)),
            "gopher_below_alpha_threshold",
        ),
        (" ".join(["cheap watches online now"] * 20), "gopher_enough_stop_words"),
    ],
)
def test_gopher_quality_rejects_with_the_named_rule(text: str, reason: str) -> None:
    assert gopher_quality(text) == reason


def test_gopher_quality_stop_word_rule_can_be_skipped_for_other_languages() -> None:
    german = " ".join(["Alle Menschen sind frei und gleich an Würde und Rechten geboren"] * 6)
    assert gopher_quality(german) == "gopher_enough_stop_words"
    assert gopher_quality(german, stop_words=None) is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("\n".join(["Click here to win!"] * 5 + ["A line.", "Another one."]), "dup_line_frac"),
        (" ".join(["buy cheap pills"] * 30), "top_2_gram"),
        ("", "empty"),
    ],
)
def test_gopher_repetition_rejects_repetitive_pages(text: str, reason: str) -> None:
    assert gopher_repetition(text) == reason


def test_gopher_repetition_keeps_prose() -> None:
    assert gopher_repetition(PROSE) is None


def test_gopher_repetition_matches_datatrove_on_the_same_words(monkeypatch) -> None:
    """Same rules and thresholds as datatrove's GopherRepetitionFilter, given the same words
    (datatrove splits words with spaCy; here it is told to split at whitespace, as ours)."""
    module = pytest.importorskip("datatrove.pipeline.filters.gopher_repetition_filter")
    from datatrove.data import Document

    monkeypatch.setattr(module, "split_into_words", lambda text, language: text.split())
    texts = [
        PROSE,
        PROSE + "\n" + PROSE,
        " ".join(["buy cheap pills"] * 30),
        "\n".join(["Click here to win!"] * 5 + ["A line.", "Another one."]),
        (PROSE + " ") * 2,
        " ".join(f"the {w} of the {w} and" for w in PROSE.split()[:40]),
    ]
    reference = module.GopherRepetitionFilter()
    for text in texts:
        result = reference.filter(Document(text=text, id="x"))
        theirs = None if result is True else result[1]
        assert gopher_repetition(text) == theirs, text[:60]
