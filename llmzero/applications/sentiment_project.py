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

Usage::

    from llmzero.applications import sentiment_project as project

    texts = project.load_labelled_texts()          # or load_labelled_texts("my_reviews.csv")
    splits = project.split_project(texts, seed=0)  # splits.train, splits.val, splits.test
    project.data_card(splits)                      # one row per split
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from llmzero.data import corpora

__all__ = [
    "ProjectSplits",
    "cross_split_duplicates",
    "data_card",
    "load_labelled_texts",
    "normalize_for_matching",
    "split_project",
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
