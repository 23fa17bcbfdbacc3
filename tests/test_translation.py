"""Tests for llmzero.applications.translation: the rules of both languages and the split."""

from __future__ import annotations

import pytest

from llmzero.applications import translation

FRENCH = {
    1: "un",
    17: "dix-sept",
    21: "vingt et un",
    71: "soixante et onze",
    72: "soixante-douze",
    80: "quatre-vingts",
    81: "quatre-vingt-un",
    91: "quatre-vingt-onze",
    99: "quatre-vingt-dix-neuf",
    100: "cent",
    180: "cent quatre-vingts",
    200: "deux cents",
    201: "deux cent un",
    1000: "mille",
    2000: "deux mille",
    21_000: "vingt et un mille",
    80_000: "quatre-vingt mille",
    200_000: "deux cent mille",
    999_999: "neuf cent quatre-vingt-dix-neuf mille neuf cent quatre-vingt-dix-neuf",
}
ENGLISH = {
    1: "one",
    42: "forty-two",
    100: "one hundred",
    1000: "one thousand",
    342_015: "three hundred forty-two thousand fifteen",
}


def test_french_rules_on_hand_picked_numbers():
    for number, words in FRENCH.items():
        assert translation.french_words(number) == words


def test_english_rules_on_hand_picked_numbers():
    for number, words in ENGLISH.items():
        assert translation.english_words(number) == words


def test_both_languages_equal_num2words_below_a_million():
    num2words = pytest.importorskip("num2words").num2words
    for number in range(1, translation.MAX_VALUE + 1, 97):
        assert translation.french_words(number) == num2words(number, lang="fr")
        english = num2words(number, lang="en").replace(" and", "").replace(",", "")
        assert translation.english_words(number) == english


def test_tokenize_and_detokenize_round_trip():
    text = "quatre-vingt-dix-sept mille cent"
    assert translation.tokenize(text) == [
        "quatre",
        "-",
        "vingt",
        "-",
        "dix",
        "-",
        "sept",
        "mille",
        "cent",
    ]
    assert translation.detokenize(translation.tokenize(text)) == text


def test_split_is_disjoint_sized_and_reproducible():
    train, test = translation.make_split(300, 100, max_value=9999, seed=3)
    assert len(train) == 300 and len(test) == 100
    assert not {p.number for p in train} & {p.number for p in test}
    assert translation.make_split(300, 100, max_value=9999, seed=3) == (train, test)
    small_train, small_test = translation.make_split(60, 30, max_value=99, seed=0)
    assert len({p.number for p in small_train + small_test}) == 90


def test_bad_input_gives_clear_errors():
    with pytest.raises(ValueError, match="1 to 999,999"):
        translation.french_words(0)
    with pytest.raises(TypeError, match="expected an int"):
        translation.english_words(3.0)
    with pytest.raises(ValueError, match="cannot be drawn"):
        translation.make_split(90, 20, max_value=99)
