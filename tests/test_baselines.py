"""The TF-IDF + logistic-regression baseline (llmzero.training.baselines)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from llmzero.training import baselines

POSITIVE = ["a fine warm film", "warm and fine acting", "a fine story , warm", "fine fine work"]
NEGATIVE = ["a dull cold film", "cold and dull acting", "a dull story , cold", "dull dull work"]


def _split(seed: int) -> tuple[list[str], list[str], list[str], list[str]]:
    rng = np.random.default_rng(seed)
    texts = [t + suffix for t in POSITIVE + NEGATIVE for suffix in ("", " indeed", " here")]
    labels = ["pos" if any(w in t for w in ("fine", "warm")) else "neg" for t in texts]
    order = rng.permutation(len(texts))
    texts, labels = [texts[i] for i in order], [labels[i] for i in order]
    return texts[:16], labels[:16], texts[16:], labels[16:]


def test_the_baseline_equals_the_recipe_written_out_with_scikit_learn():
    train_x, train_y, val_x, val_y = _split(0)
    baseline = baselines.tfidf_logistic_regression(train_x, train_y, val_x, val_y)
    vectorizer = TfidfVectorizer(
        tokenizer=str.split, token_pattern=None, lowercase=False, ngram_range=(1, 2),
        min_df=2, sublinear_tf=True,
    )  # fmt: skip
    features = vectorizer.fit_transform(train_x)
    by_hand = LogisticRegression(C=baseline.c, solver="liblinear", dual=True, random_state=0).fit(
        features, train_y
    )
    expected = by_hand.predict_proba(vectorizer.transform(val_x))
    np.testing.assert_allclose(baseline.pipeline.predict_proba(val_x), expected, atol=1e-12)
    scores = {
        c: f1_score(val_y, LogisticRegression(C=c, solver="liblinear", dual=True, random_state=0)
                    .fit(features, train_y).predict(vectorizer.transform(val_x)), average="macro")
        for c in baselines.C_GRID
    }  # fmt: skip
    assert baseline.val_scores == pytest.approx(scores)
    assert baseline.c == max(baselines.C_GRID, key=scores.get)


def test_the_strength_with_the_best_validation_score_is_kept_and_ties_go_first():
    train_x, train_y, val_x, val_y = _split(1)
    baseline = baselines.tfidf_logistic_regression(
        train_x, train_y, val_x, val_y, c_grid=(0.001, 100.0), metric="accuracy"
    )
    best = max(baseline.val_scores.values())
    assert baseline.val_scores[baseline.c] == best
    assert baseline.c == next(c for c in (0.001, 100.0) if baseline.val_scores[c] == best)


def test_bad_arguments_get_errors_that_say_what_to_do():
    train_x, train_y, val_x, val_y = _split(2)
    with pytest.raises(ValueError, match="macro-f1"):
        baselines.tfidf_logistic_regression(train_x, train_y, val_x, val_y, metric="f1")
    with pytest.raises(ValueError, match="at least one"):
        baselines.tfidf_logistic_regression(train_x, train_y, val_x, val_y, c_grid=())
    with pytest.raises(ValueError, match="differ in length"):
        baselines.tfidf_logistic_regression(train_x, train_y[:-1], val_x, val_y)


def test_three_labels_get_one_binary_model_per_label():
    texts = ["good fun", "great film", "dull mess", "awful plot", "good but dull", "fun yet awful"]
    labels = ["pos", "pos", "neg", "neg", "mixed", "mixed"]
    result = baselines.tfidf_logistic_regression(
        texts * 3, labels * 3, texts, labels, c_grid=(1.0,)
    )
    assert set(result.pipeline.predict(texts)) <= {"pos", "neg", "mixed"}
    model = result.pipeline.steps[-1][1]
    assert len(model.estimators_) == 3  # one-vs-rest: liblinear fits two classes at a time
    assert type(baselines.logistic_classifier(1.0, n_labels=2)) is LogisticRegression
    with pytest.raises(ValueError, match="at least two labels"):
        baselines.logistic_classifier(1.0, n_labels=1)
