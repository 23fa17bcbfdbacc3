"""The classical text-classification baseline every later model is compared with.

Built step by step in the chapter *Text classification and evaluation* (Part II): TF-IDF
features of words and word pairs, and an L2-regularised logistic regression whose strength
``C`` is picked on the validation split. Later chapters (fine-tuning, LoRA, classification
in practice, the capstone) recompute it on their own split with one call instead of
copying its code::

    from llmzero.training.baselines import tfidf_logistic_regression

    baseline = tfidf_logistic_regression(train["text"], train["label"], val["text"], val["label"])
    baseline.pipeline.predict(test["text"])  # text in, label out
    baseline.c, baseline.val_scores          # the chosen strength and every candidate's score
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "TfidfBaseline",
    "logistic_classifier",
    "logistic_regression",
    "tfidf_features",
    "tfidf_logistic_regression",
]

C_GRID = (1.0, 3.0, 10.0)
"""The logistic-regression strengths Part II tries on its validation split."""


def tfidf_features(ngram_range: tuple[int, int] = (1, 2), min_df: int = 2) -> Any:
    """TF-IDF of whitespace tokens (unigrams and bigrams by default) seen in ``min_df`` texts.

    Tokens are split on whitespace and kept as they are (the sentence-polarity corpus is
    already lower-cased and tokenised); term frequencies are log-scaled (``sublinear_tf``).
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(
        tokenizer=str.split,
        token_pattern=None,
        lowercase=False,
        ngram_range=ngram_range,
        min_df=min_df,
        sublinear_tf=True,
    )


def logistic_regression(c: float, seed: int = 0) -> Any:
    """L2-regularised logistic regression; the dual solver is fast when features > examples.

    liblinear's dual solver visits the examples in a random order, so ``seed`` fixes it:
    without one, the fitted weights (in their sixth digit) depend on NumPy's global state.
    """
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, solver="liblinear", dual=True, random_state=seed)


def logistic_classifier(c: float, n_labels: int = 2, seed: int = 0) -> Any:
    """:func:`logistic_regression` for any number of labels.

    scikit-learn's liblinear solver fits two classes only, so for three or more labels the
    same model is wrapped in a ``OneVsRestClassifier``: one binary logistic regression per
    label against the rest, the label with the highest probability wins.
    """
    if n_labels < 2:
        raise ValueError(f"a classifier needs at least two labels, not {n_labels}")
    model = logistic_regression(c, seed)
    if n_labels == 2:
        return model
    from sklearn.multiclass import OneVsRestClassifier

    return OneVsRestClassifier(model)


@dataclass
class TfidfBaseline:
    """The fitted baseline: a scikit-learn pipeline (text in, label out) and how C was chosen."""

    pipeline: Any  # sklearn.pipeline.Pipeline: TfidfVectorizer, then LogisticRegression
    c: float  # the strength with the best validation score
    val_scores: dict[float, float]  # C -> validation macro-F1 (or accuracy)


def tfidf_logistic_regression(
    train_texts: Sequence[str],
    train_labels: Sequence[Any],
    val_texts: Sequence[str],
    val_labels: Sequence[Any],
    c_grid: Sequence[float] = C_GRID,
    ngram_range: tuple[int, int] = (1, 2),
    metric: str = "macro-f1",
    seed: int = 0,
) -> TfidfBaseline:
    """Fit TF-IDF on the training texts and one logistic regression per ``C``; keep the best.

    ``metric`` ("macro-f1" or "accuracy") scores each candidate on the validation split;
    ties go to the first ``C`` in ``c_grid``; ``seed`` fixes the solver's order of
    examples (:func:`logistic_regression`). The vectorizer sees only training texts, so
    nothing of the validation or test split leaks into the features.
    """
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.pipeline import make_pipeline

    if metric not in ("macro-f1", "accuracy"):
        raise ValueError(f"metric must be 'macro-f1' or 'accuracy', not {metric!r}")
    if not c_grid:
        raise ValueError("c_grid is empty: give at least one regularisation strength C")
    if len(train_texts) != len(train_labels) or len(val_texts) != len(val_labels):
        raise ValueError(
            f"texts and labels differ in length: {len(train_texts)} training texts and "
            f"{len(train_labels)} labels, {len(val_texts)} validation texts and "
            f"{len(val_labels)} labels"
        )
    n_labels = len(set(train_labels))
    vectorizer = tfidf_features(ngram_range)
    train_features = vectorizer.fit_transform(list(train_texts))  # (n_train, n_features)
    val_features = vectorizer.transform(list(val_texts))
    models, val_scores = {}, {}
    for c in c_grid:
        models[c] = logistic_classifier(c, n_labels, seed).fit(train_features, list(train_labels))
        predicted = models[c].predict(val_features)
        val_scores[c] = float(
            f1_score(list(val_labels), predicted, average="macro")
            if metric == "macro-f1"
            else accuracy_score(list(val_labels), predicted)
        )
    best = max(c_grid, key=lambda c: val_scores[c])
    return TfidfBaseline(make_pipeline(vectorizer, models[best]), best, val_scores)
