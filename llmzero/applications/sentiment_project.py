"""The capstone project's data (Part VIII): load, check, split and describe labelled texts.

The capstone runs a sentiment-analysis project end to end on the book's sentence-polarity
corpus, or on the reader's own CSV of labelled texts. Everything that depends on *which*
data set is used goes through this module, so swapping the data is one knob:

- :func:`load_labelled_texts`: the default corpus, or a CSV with a text and a label column,
  checked (missing columns, empty texts, a single label) with errors that say what to fix;
- :func:`split_project`: one fixed, seeded train/validation/test split, made once at the
  start; the test split is not looked at until the final comparison;
- :func:`data_card`: sizes, label balance, lengths, and duplicates within and across
  splits (exact, and after :func:`normalize_for_matching`), the leakage check a data card
  reports.

The baselines of the first capstone chapter (*the plan, the data and the baselines*), all
fitted on the training split only:

- :func:`vader_scores`, :class:`VaderRule` and :func:`fit_vader_rule`: NLTK's VADER lexicon
  as a two-label classifier, its threshold chosen for the best training macro-F1;
- :func:`tfidf_pipeline`: TF-IDF + logistic regression
  (:mod:`llmzero.training.baselines`) for two labels or more;
- :func:`stratified_folds`, :func:`cross_validate_tfidf`, :func:`pick_hyperparameters` and
  :class:`TfidfCV`: k-fold cross-validation of that pipeline over a grid of ``C`` and
  n-gram ranges, a choice by the best mean or by the one-standard-error rule, and the
  refit on all training texts.

Usage::

    from llmzero.applications import sentiment_project as project

    texts = project.load_labelled_texts()          # or load_labelled_texts("my_reviews.csv")
    splits = project.split_project(texts, seed=0)  # splits.train, splits.val, splits.test
    project.data_card(splits)                      # one row per split

    train = splits.train
    rule = project.fit_vader_rule(project.vader_scores(train["text"]), train["label"])
    cv = project.cross_validate_tfidf(train["text"], train["label"], rule="one-se")
    model = cv.refit(train["text"], train["label"])  # text in, label out
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmzero.data import assets, corpora
from llmzero.training import baselines

__all__ = [
    "CV_RULES",
    "C_GRID",
    "NGRAM_RANGES",
    "ProjectSplits",
    "TfidfCV",
    "VaderRule",
    "cross_split_duplicates",
    "cross_validate_tfidf",
    "data_card",
    "fit_vader_rule",
    "load_labelled_texts",
    "normalize_for_matching",
    "pick_hyperparameters",
    "split_project",
    "stratified_folds",
    "tfidf_pipeline",
    "vader_scores",
]


def load_labelled_texts(
    csv_path: str | Path | None = None, text_column: str = "text", label_column: str = "label"
) -> pd.DataFrame:
    """Labelled texts as a DataFrame with columns ``text`` and ``label`` (both strings).

    With no ``csv_path``, the sentence-polarity corpus (10,662 review sentences, ``"pos"``
    or ``"neg"``; :func:`llmzero.data.corpora.load_sentence_polarity`). With one, the CSV's
    ``text_column`` and ``label_column``: rows whose text is empty are dropped, labels are
    read as strings, and at least two labels must occur.
    """
    if csv_path is None:
        return corpora.load_sentence_polarity()
    path = Path(csv_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"No CSV file at {path}. Set the data knob to the path of a CSV file with a "
            f"{text_column!r} and a {label_column!r} column, or to None for the book's corpus."
        )
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in (text_column, label_column) if c not in raw.columns]
    if missing:
        raise ValueError(
            f"{path} has no column {missing[0]!r}; its columns are {list(raw.columns)}. "
            "Rename the columns, or pass text_column=... and label_column=..."
        )
    frame = pd.DataFrame(
        {"text": raw[text_column].str.strip(), "label": raw[label_column].str.strip()}
    )
    frame = frame[(frame["text"] != "") & (frame["label"] != "")].reset_index(drop=True)
    if frame["label"].nunique() < 2:
        raise ValueError(
            f"{path} has {frame['label'].nunique()} distinct label(s) in rows with a text; "
            "a classifier needs at least two. Check the label column."
        )
    return frame


@dataclass
class ProjectSplits:
    """The three parts of the project's data; ``test`` is kept for the final comparison."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame

    def items(self) -> list[tuple[str, pd.DataFrame]]:
        """``[("train", ...), ("val", ...), ("test", ...)]``, in that order."""
        return [("train", self.train), ("val", self.val), ("test", self.test)]


def split_project(
    frame: pd.DataFrame, val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0
) -> ProjectSplits:
    """Shuffle with ``seed`` and cut train/validation/test once, for the whole project.

    On the default corpus this is the book's split (Part II, Part V and Part VI score on the
    same test rows), so the capstone's numbers can be compared with theirs. Every label must
    occur in every split; a very small or very unbalanced CSV fails here with advice.
    """
    train, val, test = corpora.train_val_test_split(frame, val_fraction, test_fraction, seed)
    labels = set(frame["label"])
    for name, part in (("train", train), ("validation", val), ("test", test)):
        absent = sorted(labels - set(part["label"]))
        if absent:
            raise ValueError(
                f"The {name} split ({len(part)} rows) has no example of label(s) {absent}. "
                "Give more labelled rows, or raise that split's fraction."
            )
    return ProjectSplits(train, val, test)


def normalize_for_matching(text: str) -> str:
    """``text`` reduced to what a near-duplicate check compares: lower-cased NFKC words.

    Case, accents' composition, punctuation and spacing are ignored, so ``"Great film !"``
    and ``"great film"`` match; different words never do.
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.findall(r"\w+", text))


def cross_split_duplicates(splits: ProjectSplits, normalize: bool = True) -> pd.DataFrame:
    """Texts of the validation or test split that also occur in the training split.

    Returns one row per such text, with columns ``split``, ``text``, ``label``,
    ``train_label``: a model scored on them is partly scored on its training data, and a
    differing ``train_label`` is a label conflict worth reading.
    """
    key = normalize_for_matching if normalize else (lambda text: text)
    train_labels = {}
    for text, label in zip(splits.train["text"], splits.train["label"], strict=True):
        train_labels.setdefault(key(text), label)
    rows = [
        {"split": name, "text": text, "label": label, "train_label": train_labels[key(text)]}
        for name, part in (("val", splits.val), ("test", splits.test))
        for text, label in zip(part["text"], part["label"], strict=True)
        if key(text) in train_labels
    ]
    return pd.DataFrame(rows, columns=["split", "text", "label", "train_label"])


def data_card(splits: ProjectSplits) -> pd.DataFrame:
    """One row per split: size, label shares, length in words, duplicates and leakage.

    ``exact_dups`` and ``near_dups`` count rows whose text (as it is, or normalized by
    :func:`normalize_for_matching`) already occurred earlier in the same split;
    ``in_train_exact`` and ``in_train_near`` count validation and test rows whose text is
    also in the training split.
    """
    labels = sorted(set().union(*(set(part["label"]) for _, part in splits.items())))
    train_exact = set(splits.train["text"])
    train_near = {normalize_for_matching(t) for t in splits.train["text"]}
    rows = []
    for name, part in splits.items():
        near = part["text"].map(normalize_for_matching)
        words = part["text"].str.split().str.len()
        row = {"split": name, "rows": len(part)}
        row.update({f"share_{label}": float((part["label"] == label).mean()) for label in labels})
        row.update(
            mean_words=float(words.mean()),
            max_words=int(words.max()),
            exact_dups=int(part["text"].duplicated().sum()),
            near_dups=int(near.duplicated().sum()),
            in_train_exact=0 if name == "train" else int(part["text"].isin(train_exact).sum()),
            in_train_near=0 if name == "train" else int(near.isin(train_near).sum()),
        )
        rows.append(row)
    return pd.DataFrame(rows).set_index("split")


# ---------------------------------------------------------------------------------------
# The baselines (Part VIII, chapter 1): a lexicon rule and tuned TF-IDF + logistic regression
# ---------------------------------------------------------------------------------------

C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0)
"""Logistic-regression strengths :func:`cross_validate_tfidf` tries by default (log-spaced)."""

NGRAM_RANGES = ((1, 1), (1, 2))
"""The TF-IDF n-gram ranges it tries by default (words, then words and adjacent word pairs)."""

CV_RULES = ("best", "one-se")
"""The rules :func:`pick_hyperparameters` knows (the best mean score, or the one-SE rule)."""


@functools.cache
def _vader_analyzer() -> Any:
    assets.nltk("vader_lexicon")  # a local, checksum-verified copy: nothing is fetched later
    from nltk.sentiment.vader import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def vader_scores(texts: Sequence[str]) -> np.ndarray:
    """NLTK VADER compound score in [-1, 1] for each text, shape ``(len(texts),)``.

    VADER (Hutto and Gilbert, 2014) sums the human-rated valences of the words it knows,
    adjusted by rules for negation, intensifiers, "but", capitals and "!", and squashes the
    sum into [-1, 1]; a text without a rated word scores exactly 0.
    """
    analyzer = _vader_analyzer()
    return np.array([analyzer.polarity_scores(text)["compound"] for text in texts], dtype=float)


@dataclass
class VaderRule:
    """Turns VADER compound scores into labels: ``positive_label`` when score > threshold."""

    threshold: float
    positive_label: str
    negative_label: str

    def __post_init__(self) -> None:
        if not -1.0 < self.threshold < 1.0:
            raise ValueError(
                f"threshold must lie strictly between -1 and 1 (VADER's range), not "
                f"{self.threshold}; fit one with fit_vader_rule(scores, labels)"
            )

    def predict(self, scores: np.ndarray) -> np.ndarray:
        """The label of each score: positive above the threshold, negative at or below it."""
        scores = np.asarray(scores, dtype=float)
        return np.where(scores > self.threshold, self.positive_label, self.negative_label)

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        """A stand-in for P(positive), shape ``(n,)``: the score rescaled piecewise linearly.

        The mapping sends -1 to 0, the threshold to 0.5 and +1 to 1, linearly on each side,
        so ``probabilities(s) > 0.5`` exactly when ``predict`` says positive. It only
        orders texts the way VADER does: nothing fitted it to observed frequencies, so it
        is not calibrated, and measuring its calibration error shows by how much.
        """
        scores = np.clip(np.asarray(scores, dtype=float), -1.0, 1.0)
        above = 0.5 + 0.5 * (scores - self.threshold) / (1.0 - self.threshold)
        below = 0.5 * (scores + 1.0) / (self.threshold + 1.0)
        return np.where(scores > self.threshold, above, below)


def _macro_f1_at_thresholds(
    scores: np.ndarray, is_positive: np.ndarray, thresholds: np.ndarray
) -> np.ndarray:
    """Two-class macro-F1 of "positive when score > t" for every t, by sorting once."""
    positive_scores = np.sort(scores[is_positive])
    negative_scores = np.sort(scores[~is_positive])
    n_pos, n_neg = len(positive_scores), len(negative_scores)
    tp = n_pos - np.searchsorted(positive_scores, thresholds, side="right")
    fp = n_neg - np.searchsorted(negative_scores, thresholds, side="right")
    fn, tn = n_pos - tp, n_neg - fp
    with np.errstate(divide="ignore", invalid="ignore"):
        f1_pos = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        f1_neg = np.where(2 * tn + fn + fp > 0, 2 * tn / (2 * tn + fn + fp), 0.0)
    return (f1_pos + f1_neg) / 2


def fit_vader_rule(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[str],
    positive_label: str = "pos",
    negative_label: str = "neg",
) -> VaderRule:
    """Threshold that maximises training macro-F1; ValueError (saying what to do) if the labels
    are not exactly the two given.

    The candidates are the midpoints between consecutive distinct scores (every threshold
    between two neighbours gives the same predictions); among equally good ones the
    threshold closest to 0, VADER's own neutral point, wins.
    """
    scores = np.asarray(scores, dtype=float)
    labels = np.asarray(labels, dtype=object)
    if scores.shape != labels.shape or scores.ndim != 1:
        raise ValueError(
            f"scores and labels must be two sequences of the same length, not shapes "
            f"{scores.shape} and {labels.shape}"
        )
    found = sorted(set(labels.tolist()))
    if set(found) != {positive_label, negative_label}:
        raise ValueError(
            f"VADER's rule needs exactly two labels, {positive_label!r} and "
            f"{negative_label!r}, but the labels are {found}. Map your labels onto two "
            "(e.g. frame['label'].map({'great': 'pos', 'awful': 'neg'}), dropping neutral or "
            "mixed rows) and pass positive_label=... and negative_label=..., or skip the "
            "lexicon rung."
        )
    distinct = np.unique(scores)
    if len(distinct) < 2:
        raise ValueError(
            "VADER gives every training text the same score, so no threshold separates them; "
            "the lexicon does not know these texts' words: skip the lexicon rung."
        )
    candidates = (distinct[:-1] + distinct[1:]) / 2  # (n_distinct - 1,)
    f1 = _macro_f1_at_thresholds(scores, labels == positive_label, candidates)
    best = np.flatnonzero(f1 == f1.max())
    threshold = float(candidates[best[np.argmin(np.abs(candidates[best]))]])
    return VaderRule(threshold, positive_label, negative_label)


def stratified_folds(
    labels: Sequence[Any], n_folds: int = 5, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_folds`` pairs ``(training rows, held-out rows)`` whose held-out parts partition
    the rows and keep each label's share.

    Each label's rows are shuffled with ``seed`` and dealt to the folds in turn, the deal
    continuing from one label to the next, so every fold gets each label's count to within
    one and the folds' sizes differ by at most one. The pairs can be passed to
    scikit-learn as ``cv=...``.
    """
    labels = np.asarray(labels, dtype=object)
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, not {n_folds}")
    if len(labels) < n_folds:
        raise ValueError(f"{len(labels)} rows cannot fill {n_folds} folds; lower n_folds")
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), dtype=int)
    dealt = 0
    for label in sorted(set(labels.tolist()), key=str):
        rows = np.flatnonzero(labels == label)
        rng.shuffle(rows)
        fold_of[rows] = (dealt + np.arange(len(rows))) % n_folds
        dealt += len(rows)
    return [
        (np.flatnonzero(fold_of != fold), np.flatnonzero(fold_of == fold))
        for fold in range(n_folds)
    ]


def tfidf_pipeline(
    ngram_range: tuple[int, int] = (1, 2), c: float = 1.0, n_labels: int = 2, seed: int = 0
) -> Any:
    """An unfitted scikit-learn ``Pipeline``: step ``"tfidf"``
    (:func:`llmzero.training.baselines.tfidf_features`), then step ``"model"``
    (:func:`llmzero.training.baselines.logistic_classifier`). Text in, label out once fitted."""
    from sklearn.pipeline import Pipeline

    return Pipeline(
        [
            ("tfidf", baselines.tfidf_features(tuple(ngram_range))),
            ("model", baselines.logistic_classifier(c, n_labels, seed)),
        ]
    )


def pick_hyperparameters(table: pd.DataFrame, rule: str = "best") -> tuple[tuple[int, int], float]:
    """``(ngram_range, c)`` chosen from a cross-validation table by ``rule``.

    ``"best"``: the row with the highest ``mean_f1`` (ties: the first row). ``"one-se"``,
    the one-standard-error rule: every row whose mean is within one standard error
    (``se_f1``) of the best row's mean counts as as good as the best, and the simplest of
    them wins: the fewest n-gram orders, then the smallest ``C`` (the strongest penalty).
    """
    if rule not in CV_RULES:
        raise ValueError(f"rule must be one of {CV_RULES}, not {rule!r}")
    best = table.loc[table["mean_f1"].idxmax()]
    if rule == "best":
        return tuple(best["ngram_range"]), float(best["c"])
    good = table[table["mean_f1"] >= best["mean_f1"] - best["se_f1"]]
    ngram_range, c = min(
        zip(good["ngram_range"], good["c"], strict=True),
        key=lambda pair: (pair[0][1] - pair[0][0], pair[1]),  # (n-gram orders - 1, C)
    )
    return tuple(ngram_range), float(c)


@dataclass
class TfidfCV:
    """The result of :func:`cross_validate_tfidf`: every candidate's fold scores and the choice.

    ``table`` has one row per ``(ngram_range, c)``: ``mean_f1``, ``std_f1`` (the sample
    standard deviation of the fold scores), ``se_f1`` (``std_f1 / sqrt(n_folds)``) and
    ``fold_1`` ... ``fold_k``, the macro-F1 on each held-out fold.
    """

    table: pd.DataFrame
    best_c: float
    best_ngram_range: tuple[int, int]
    rule: str = "best"
    n_folds: int = 5
    seed: int = 0

    def pipeline(self, n_labels: int = 2) -> Any:
        """An unfitted :func:`tfidf_pipeline` with the chosen hyper-parameters."""
        return tfidf_pipeline(self.best_ngram_range, self.best_c, n_labels, self.seed)

    def refit(self, texts: Sequence[str], labels: Sequence[Any]) -> Any:
        """The chosen pipeline fitted on all of ``texts``/``labels`` (text in, label out)."""
        labels = list(labels)
        return self.pipeline(len(set(labels))).fit(list(texts), labels)


def cross_validate_tfidf(
    texts: Sequence[str],
    labels: Sequence[Any],
    c_grid: Sequence[float] = C_GRID,
    ngram_ranges: Sequence[tuple[int, int]] = NGRAM_RANGES,
    n_folds: int = 5,
    seed: int = 0,
    rule: str = "best",
) -> TfidfCV:
    """k-fold cross-validation of TF-IDF + logistic regression over ``ngram_ranges`` x ``c_grid``.

    The folds are :func:`stratified_folds` (``n_folds``, ``seed``). In each fold the
    vectorizer (:func:`llmzero.training.baselines.tfidf_features`) is fitted on the
    training part only, so the held-out part's words do not shape the vocabulary or the
    IDF weights, and one :func:`~llmzero.training.baselines.logistic_regression` per ``C``
    is scored by macro-F1 on the held-out part. The fold scores equal scikit-learn's
    ``cross_val_score`` of the same :func:`tfidf_pipeline` with ``cv=stratified_folds(...)``
    and ``scoring="f1_macro"``. More than two labels are fine (one-vs-rest,
    :func:`llmzero.training.baselines.logistic_classifier`). ``rule`` picks the result's
    hyper-parameters (:func:`pick_hyperparameters`).
    """
    from sklearn.metrics import f1_score

    texts, labels = list(texts), list(labels)
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels: give one label per text")
    if rule not in CV_RULES:
        raise ValueError(f"rule must be one of {CV_RULES}, not {rule!r}")
    if not c_grid or any(c <= 0 for c in c_grid):
        raise ValueError(f"c_grid must hold at least one positive strength C, not {c_grid}")
    if not ngram_ranges:
        raise ValueError("ngram_ranges is empty: give at least one, e.g. ((1, 1),)")
    counts = pd.Series(labels, dtype=object).value_counts()
    if counts.min() < n_folds:
        raise ValueError(
            f"label {counts.idxmin()!r} has {counts.min()} example(s), fewer than the "
            f"{n_folds} folds: lower n_folds (at least 2) or add examples of that label"
        )
    folds = stratified_folds(labels, n_folds, seed)
    label_array = np.asarray(labels, dtype=object)
    scores = {(tuple(ngrams), c): [] for ngrams in ngram_ranges for c in c_grid}
    for ngrams in ngram_ranges:
        for fit_rows, held_rows in folds:
            vectorizer = baselines.tfidf_features(tuple(ngrams))
            fit_features = vectorizer.fit_transform([texts[i] for i in fit_rows])
            held_features = vectorizer.transform([texts[i] for i in held_rows])
            for c in c_grid:
                model = baselines.logistic_classifier(c, len(counts), seed).fit(
                    fit_features, label_array[fit_rows].tolist()
                )
                predicted = model.predict(held_features)
                f1 = f1_score(label_array[held_rows].tolist(), predicted, average="macro")
                scores[(tuple(ngrams), c)].append(float(f1))
    rows = []
    for (ngrams, c), fold_scores in scores.items():
        std = float(np.std(fold_scores, ddof=1))
        row = {"ngram_range": ngrams, "c": float(c), "mean_f1": float(np.mean(fold_scores))}
        row.update(std_f1=std, se_f1=std / np.sqrt(n_folds))
        row.update({f"fold_{k}": score for k, score in enumerate(fold_scores, start=1)})
        rows.append(row)
    table = pd.DataFrame(rows)
    best_ngram_range, best_c = pick_hyperparameters(table, rule)
    return TfidfCV(table, best_c, best_ngram_range, rule, n_folds, seed)
