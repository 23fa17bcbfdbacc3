"""The capstone's data knob: the book's corpus or a reader's CSV, checked, split and described."""

from pathlib import Path

import pandas as pd
import pytest

from llmzero.applications import sentiment_project as project

FIXTURE = Path(__file__).parent / "fixtures" / "my_reviews.csv"


def test_a_readers_csv_is_loaded_with_its_own_column_names_and_empty_texts_dropped():
    frame = project.load_labelled_texts(FIXTURE, text_column="review", label_column="sentiment")
    raw = pd.read_csv(FIXTURE, dtype=str, keep_default_na=False)
    assert list(frame.columns) == ["text", "label"]
    assert len(frame) == (raw["review"].str.strip() != "").sum() == len(raw) - 1
    assert set(frame["label"]) == {"positive", "negative", "mixed"}


def test_the_default_split_is_the_books_split_of_sentence_polarity():
    splits = project.split_project(project.load_labelled_texts())
    assert [len(part) for _, part in splits.items()] == [8530, 1066, 1066]
    from llmzero.data import corpora

    _, _, book_test = corpora.train_val_test_split(corpora.load_sentence_polarity())
    assert splits.test["text"].tolist() == book_test["text"].tolist()


def test_bad_csvs_get_errors_that_say_what_to_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="CSV file"):
        project.load_labelled_texts(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match=r"no column 'text'.*text_column"):
        project.load_labelled_texts(FIXTURE)
    one_label = tmp_path / "one.csv"
    one_label.write_text("text,label\ngood,pos\nfine,pos\n", encoding="utf-8")
    with pytest.raises(ValueError, match="at least two"):
        project.load_labelled_texts(one_label)


def test_a_split_missing_a_label_is_refused():
    frame = project.load_labelled_texts(FIXTURE, "review", "sentiment")
    with pytest.raises(ValueError, match="no example of label"):
        project.split_project(frame, 0.25, 0.25, seed=1)


def test_data_card_counts_duplicates_and_leakage_across_splits():
    train = pd.DataFrame({"text": ["Great film!", "great film", "dull"], "label": ["p", "p", "n"]})
    val = pd.DataFrame({"text": ["GREAT  film", "new text"], "label": ["p", "n"]})
    test = pd.DataFrame({"text": ["dull", "other", "other"], "label": ["n", "p", "p"]})
    splits = project.ProjectSplits(train, val, test)
    card = project.data_card(splits)
    assert card.loc["train", ["exact_dups", "near_dups"]].tolist() == [0, 1]
    assert card.loc["val", ["in_train_exact", "in_train_near"]].tolist() == [0, 1]
    assert card.loc["test", ["exact_dups", "in_train_exact", "in_train_near"]].tolist() == [1, 1, 1]
    assert card.loc["test", "share_p"] == pytest.approx(2 / 3)
    leaks = project.cross_split_duplicates(splits)
    assert leaks[["split", "text"]].values.tolist() == [["val", "GREAT  film"], ["test", "dull"]]
    assert len(project.cross_split_duplicates(splits, normalize=False)) == 1


def test_normalize_for_matching_ignores_case_punctuation_and_spacing_only():
    assert project.normalize_for_matching("Great  FILM !") == "great film"
    assert project.normalize_for_matching("ﬁlm") == "film"  # NFKC folds the ligature
    normalize = project.normalize_for_matching
    assert normalize("great film") != normalize("good film")
