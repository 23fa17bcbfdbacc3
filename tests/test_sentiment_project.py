"""The capstone's data knob: the book's corpus or a reader's CSV, checked, split and described."""

from pathlib import Path

import numpy as np
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


# --- the baselines (Part VIII, chapter 1) --------------------------------------------------


def _fixture_splits():
    frame = project.load_labelled_texts(FIXTURE, "review", "sentiment")
    return project.split_project(frame, 0.2, 0.2, seed=0)  # every label in every split


def _polarity_sample(n: int = 600):
    train = project.split_project(project.load_labelled_texts()).train
    return train["text"].tolist()[:n], train["label"].tolist()[:n]


def test_stratified_folds_partition_the_rows_and_keep_each_labels_share():
    labels = ["a"] * 23 + ["b"] * 11 + ["c"] * 6
    folds = project.stratified_folds(labels, n_folds=5, seed=3)
    held = np.concatenate([held_rows for _, held_rows in folds])
    assert sorted(held.tolist()) == list(range(len(labels)))  # each row held out once
    for fit_rows, held_rows in folds:
        assert not set(fit_rows) & set(held_rows)
        assert len(fit_rows) + len(held_rows) == len(labels)
    sizes = [len(held_rows) for _, held_rows in folds]
    assert max(sizes) - min(sizes) <= 1
    for label, count in (("a", 23), ("b", 11), ("c", 6)):
        per_fold = [sum(labels[i] == label for i in held_rows) for _, held_rows in folds]
        assert max(per_fold) - min(per_fold) <= 1 and sum(per_fold) == count
    again = project.stratified_folds(labels, n_folds=5, seed=3)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again, strict=True))
    other = project.stratified_folds(labels, n_folds=5, seed=4)
    assert any(not np.array_equal(a[1], b[1]) for a, b in zip(folds, other, strict=True))
    with pytest.raises(ValueError, match="at least 2"):
        project.stratified_folds(labels, n_folds=1)


def test_cross_validation_fold_scores_equal_scikit_learns_with_the_same_folds():
    from sklearn.model_selection import GridSearchCV, cross_val_score

    texts, labels = _polarity_sample()
    c_grid, ngram_ranges = (0.3, 3.0), ((1, 1), (1, 2))
    result = project.cross_validate_tfidf(texts, labels, c_grid, ngram_ranges, n_folds=4, seed=1)
    folds = project.stratified_folds(labels, n_folds=4, seed=1)
    fold_columns = [f"fold_{k}" for k in range(1, 5)]
    search = GridSearchCV(
        project.tfidf_pipeline(seed=1),
        {"tfidf__ngram_range": list(ngram_ranges), "model__C": list(c_grid)},
        cv=folds,
        scoring="f1_macro",
        refit=False,
    ).fit(texts, labels)
    for k, params in enumerate(search.cv_results_["params"]):
        row = result.table[
            (result.table["ngram_range"] == params["tfidf__ngram_range"])
            & (result.table["c"] == params["model__C"])
        ]
        ours = row[fold_columns].to_numpy()[0]
        theirs = [search.cv_results_[f"split{i}_test_score"][k] for i in range(4)]
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    one = cross_val_score(
        project.tfidf_pipeline((1, 2), 3.0, seed=1), texts, labels, cv=folds, scoring="f1_macro"
    )
    row = result.table[(result.table["ngram_range"] == (1, 2)) & (result.table["c"] == 3.0)]
    np.testing.assert_allclose(row[fold_columns].to_numpy()[0], one, rtol=0, atol=1e-12)
    assert row["mean_f1"].item() == pytest.approx(one.mean())
    assert row["std_f1"].item() == pytest.approx(one.std(ddof=1))
    assert row["se_f1"].item() == pytest.approx(one.std(ddof=1) / 2)


def test_cross_validation_runs_on_a_readers_csv_with_three_labels():
    splits = _fixture_splits()
    train = splits.train
    result = project.cross_validate_tfidf(
        train["text"], train["label"], c_grid=(1.0, 10.0), n_folds=3, rule="one-se"
    )
    assert len(result.table) == 2 * len(project.NGRAM_RANGES)
    assert result.table[["fold_1", "fold_2", "fold_3"]].notna().all().all()
    assert (result.best_ngram_range, result.best_c) == project.pick_hyperparameters(
        result.table, "one-se"
    )
    model = result.refit(train["text"], train["label"])
    assert set(model.classes_) == {"positive", "negative", "mixed"}
    assert set(model.predict(splits.val["text"])) <= {"positive", "negative", "mixed"}
    assert model.predict_proba(splits.val["text"]).shape == (len(splits.val), 3)
    with pytest.raises(ValueError, match="fewer than the 5 folds"):
        project.cross_validate_tfidf(train["text"], train["label"], n_folds=5)


def test_cross_validation_refuses_bad_arguments_with_advice():
    texts, labels = _polarity_sample(40)
    with pytest.raises(ValueError, match="one label per text"):
        project.cross_validate_tfidf(texts, labels[:-1])
    with pytest.raises(ValueError, match="rule must be one of"):
        project.cross_validate_tfidf(texts, labels, rule="median")
    with pytest.raises(ValueError, match="positive strength"):
        project.cross_validate_tfidf(texts, labels, c_grid=())


def test_refit_gives_the_pipeline_with_the_chosen_hyper_parameters():
    texts, labels = _polarity_sample(300)
    result = project.cross_validate_tfidf(texts, labels, (0.3, 3.0), ((1, 1),), n_folds=3)
    model = result.refit(texts, labels)
    direct = project.tfidf_pipeline((1, 1), result.best_c).fit(texts, labels)
    np.testing.assert_array_equal(model.predict_proba(texts), direct.predict_proba(texts))
    assert result.best_c == model.named_steps["model"].C


def test_one_standard_error_rule_picks_the_simplest_model_close_to_the_best():
    table = pd.DataFrame(
        {
            "ngram_range": [(1, 1), (1, 1), (1, 2), (1, 2)],
            "c": [1.0, 10.0, 1.0, 10.0],
            "mean_f1": [0.70, 0.76, 0.75, 0.78],
            "se_f1": [0.01, 0.01, 0.02, 0.02],
        }
    )
    assert project.pick_hyperparameters(table, "best") == ((1, 2), 10.0)
    # within one SE of 0.78 (>= 0.76): (1, 1) C=10, (1, 2) C=1 and C=10; fewest orders first
    assert project.pick_hyperparameters(table, "one-se") == ((1, 1), 10.0)
    tighter = table.assign(se_f1=0.005)
    assert project.pick_hyperparameters(tighter, "one-se") == ((1, 2), 10.0)
    with pytest.raises(ValueError, match="rule must be one of"):
        project.pick_hyperparameters(table, "smallest")


def test_vader_scores_are_signed_by_the_words_sentiment():
    scores = project.vader_scores(["a wonderful , moving film", "an awful , boring mess", "a film"])
    assert scores.shape == (3,)
    assert scores[0] > 0.5 and scores[1] < -0.5 and scores[2] == 0.0


def test_the_vader_threshold_maximises_training_macro_f1():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    labels = rng.choice(["pos", "neg"], size=200)
    scores = np.round(np.clip(rng.normal(np.where(labels == "pos", 0.3, -0.1), 0.4), -1, 1), 2)
    rule = project.fit_vader_rule(scores, labels)
    fitted = f1_score(labels, rule.predict(scores), average="macro")
    brute = max(
        f1_score(labels, np.where(scores > t, "pos", "neg"), average="macro")
        for t in np.linspace(-1, 1, 2001)
    )
    assert fitted == pytest.approx(brute, abs=1e-12)
    assert not np.any(scores == rule.threshold)  # a midpoint between two distinct scores


def test_vader_probabilities_are_a_monotone_map_with_the_threshold_at_one_half():
    rule = project.VaderRule(0.2, "good", "bad")
    scores = np.linspace(-1, 1, 41)
    p_pos = rule.probabilities(scores)
    assert p_pos[0] == 0.0 and p_pos[-1] == 1.0
    assert rule.probabilities(np.array([0.2]))[0] == pytest.approx(0.5)
    assert np.all(np.diff(p_pos) > 0)
    np.testing.assert_array_equal(p_pos > 0.5, rule.predict(scores) == "good")
    with pytest.raises(ValueError, match="between -1 and 1"):
        project.VaderRule(1.0, "good", "bad")


def test_the_vader_rule_refuses_labels_other_than_the_two_given():
    splits = _fixture_splits()
    scores = project.vader_scores(splits.train["text"])
    with pytest.raises(ValueError, match=r"exactly two labels.*'mixed'.*Map your labels"):
        project.fit_vader_rule(scores, splits.train["label"])
    two = splits.train[splits.train["label"] != "mixed"]
    rule = project.fit_vader_rule(
        project.vader_scores(two["text"]), two["label"], "positive", "negative"
    )
    assert set(rule.predict(project.vader_scores(splits.val["text"]))) <= {"positive", "negative"}
    with pytest.raises(ValueError, match="same score"):
        project.fit_vader_rule([0.0, 0.0], ["pos", "neg"])
