"""Labelled text data sets as pandas DataFrames, loaded through :mod:`llmzero.data.assets`.

Several chapters (Part I's pandas and PyTorch chapters, Part II's classifiers, Part V's
fine-tuning and the capstone) use the same two sentiment corpora; they load them here so
that every chapter sees the same rows in the same order.
"""

from __future__ import annotations

import pandas as pd

from llmzero.data import assets

__all__ = ["load_movie_reviews", "load_sentence_polarity", "train_val_test_split"]


def load_sentence_polarity() -> pd.DataFrame:
    """The sentence-polarity data set (Pang & Lee, 2005): 10,662 review snippets.

    Returns a DataFrame with columns ``text`` (one lower-cased, pre-tokenized sentence)
    and ``label`` (``"pos"`` or ``"neg"``), in the corpus's file order.
    """
    assets.nltk("sentence_polarity")
    from nltk.corpus import sentence_polarity

    rows = []
    for label in ("neg", "pos"):
        for line in sentence_polarity.raw(f"rt-polarity.{label}").splitlines():
            if line.strip():
                rows.append({"text": line.strip(), "label": label})
    return pd.DataFrame(rows)


def load_movie_reviews() -> pd.DataFrame:
    """The movie-review polarity data set (Pang & Lee, 2004): 2,000 full reviews.

    Returns a DataFrame with columns ``fileid``, ``text`` (the whole review) and
    ``label`` (``"pos"`` or ``"neg"``).
    """
    assets.nltk("movie_reviews")
    from nltk.corpus import movie_reviews

    rows = [
        {"fileid": fileid, "text": movie_reviews.raw(fileid), "label": label}
        for label in movie_reviews.categories()
        for fileid in movie_reviews.fileids(label)
    ]
    return pd.DataFrame(rows)


def train_val_test_split(
    frame: pd.DataFrame, val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Shuffle ``frame`` with a fixed seed and cut it into train, validation and test parts.

    The same seed always gives the same split, so chapters that compare models on the
    "test set" really compare them on the same rows.
    """
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError(
            f"val_fraction ({val_fraction}) and test_fraction ({test_fraction}) must each be in "
            "[0, 1) and sum to less than 1."
        )
    shuffled = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    n_test = round(len(shuffled) * test_fraction)
    n_val = round(len(shuffled) * val_fraction)
    test = shuffled.iloc[:n_test].reset_index(drop=True)
    val = shuffled.iloc[n_test : n_test + n_val].reset_index(drop=True)
    train = shuffled.iloc[n_test + n_val :].reset_index(drop=True)
    return train, val, test
