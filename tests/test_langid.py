"""Tests for llmzero.data.langid: character n-gram naive Bayes on the UDHR."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from llmzero.data.langid import (
    UDHR_FILES,
    CharNgramLanguageID,
    char_ngram_keys,
    default_model,
    prepare,
    udhr_segments,
    udhr_split,
)


def test_prepare_keeps_letters_and_marks_word_edges() -> None:
    assert prepare("Hello, World 42!") == " hello world "


def test_ngram_keys_are_distinct_for_distinct_ngrams() -> None:
    keys = char_ngram_keys("abcab", orders=(1, 2, 3))
    # " abcab ": 7 unigrams (4 distinct), 6 bigrams (5 distinct), 5 trigrams (5 distinct)
    assert len(keys) == 7 + 6 + 5
    assert len(set(keys.tolist())) == 4 + 5 + 5
    with pytest.raises(ValueError, match="between 1 and 3"):
        char_ngram_keys("abc", orders=(4,))


def test_udhr_split_holds_out_text_in_every_language() -> None:
    train, heldout = udhr_split(0.6)
    assert set(train) == set(heldout) == set(UDHR_FILES)
    for code in UDHR_FILES:
        assert len(heldout[code]) > 500, code
        assert heldout[code] not in train[code]


def test_heldout_accuracy_is_high_on_100_character_pieces() -> None:
    _, heldout = udhr_split()
    pieces = udhr_segments(heldout, 100)
    predicted = default_model().predict([text for _, text in pieces])
    correct = Counter(
        code for (code, _), guess in zip(pieces, predicted, strict=True) if code == guess
    )
    total = Counter(code for code, _ in pieces)
    assert sum(correct.values()) / len(pieces) > 0.97
    assert all(correct[code] / total[code] > 0.85 for code in total), correct


def test_short_pieces_confuse_close_languages_most() -> None:
    _, heldout = udhr_split()
    pieces = udhr_segments(heldout, 20)
    predicted = default_model().predict([text for _, text in pieces])
    errors = Counter(
        frozenset((code, guess))
        for (code, _), guess in zip(pieces, predicted, strict=True)
        if code != guess
    )
    top_three = {pair for pair, _ in errors.most_common(3)}
    assert top_three & {frozenset({"da", "no"}), frozenset({"cs", "sk"}), frozenset({"es", "pt"})}


def test_naive_bayes_equals_scikit_learn_on_the_same_counts() -> None:
    naive_bayes = pytest.importorskip("sklearn.naive_bayes")
    train, heldout = udhr_split()
    model = CharNgramLanguageID(alpha=0.1, max_chars=None).fit(train)  # count whole texts
    train_counts = model.counts([train[code] for code in model.languages])
    reference = naive_bayes.MultinomialNB(alpha=0.1, fit_prior=False)
    reference.fit(train_counts, model.languages)
    pieces = [text for _, text in udhr_segments(heldout, 60)][:200]
    ours = model.log_likelihoods(pieces)
    # scikit-learn's joint log-likelihood adds the (uniform) log prior to each column.
    theirs = reference.predict_joint_log_proba(model.counts(pieces)) + np.log(len(model.languages))
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-6)
    assert model.predict(pieces) == list(reference.predict(model.counts(pieces)))


def test_predict_proba_rows_sum_to_one_and_unfitted_model_says_so() -> None:
    probabilities = default_model().predict_proba(["Bonjour tout le monde", "Guten Morgen"])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    with pytest.raises(RuntimeError, match="fit"):
        CharNgramLanguageID().predict(["hello"])
