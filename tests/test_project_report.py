"""The capstone's second half: label words, top-block fine-tuning, the table, errors, the card."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import f1_score

from llmzero.applications import project_report as report
from llmzero.applications import sentiment_project as project
from llmzero.evaluation import bootstrap, calibration, lm

FIXTURE = Path(__file__).parent / "fixtures" / "my_reviews.csv"


def _fixture_splits() -> project.ProjectSplits:
    frame = project.load_labelled_texts(FIXTURE, text_column="review", label_column="sentiment")
    return project.split_project(frame, val_fraction=0.25, test_fraction=0.25, seed=0)


def test_a_readers_three_label_csv_goes_through_the_table_and_the_model_card():
    splits = _fixture_splits()
    classes = sorted(set(splits.train["label"]))
    assert classes == ["mixed", "negative", "positive"]
    assert report.positive_negative_labels(splits.train["label"]) is None  # no VADER here
    assert report.label_words(classes) == [" mixed", " negative", " positive"]
    pipeline = project.tfidf_pipeline((1, 1), 1.0, n_labels=len(classes))  # the first half's
    pipeline.fit(splits.train["text"], splits.train["label"])
    assert list(pipeline.classes_) == classes
    probabilities = pipeline.predict_proba(splits.test["text"])  # (8, 3)
    run = report.evaluate_run(
        "TF-IDF + LR",
        splits.test["label"],
        pipeline.predict(splits.test["text"]),
        probabilities,
        classes,
        n_resamples=200,
    )
    table = report.results_table([run])
    assert table.loc["TF-IDF + LR", "n"] == len(splits.test)
    for metric in report.METRICS:
        row = table.loc["TF-IDF + LR"]
        assert row[f"{metric}_low"] <= row[metric] <= row[f"{metric}_high"]
    card = report.ModelCard(
        model_name="TF-IDF + LR",
        summary="A three-way review classifier.",
        intended_use=["Sorting reviews into positive, negative and mixed."],
        out_of_scope=["Anything else."],
        data=[f"{len(splits.train)} training reviews."],
        training=["TF-IDF, then logistic regression."],
        metrics=table[["n", "accuracy", "macro-F1", "ECE"]],
        limitations=["Trained on 15 reviews."],
        risks=["Wrong labels on unusual reviews."],
    )
    markdown = card.to_markdown()
    assert markdown.startswith("# Model card: TF-IDF + LR")
    assert "## Metrics" in markdown and "| TF-IDF + LR | 8 |" in markdown
    assert f"{table.loc['TF-IDF + LR', 'accuracy']:.3f}" in markdown


def test_evaluate_run_scores_equal_the_metric_and_bootstrap_modules():
    rng = np.random.default_rng(0)
    classes = ["neg", "pos"]
    y_true = rng.choice(classes, 60)
    p_pos = np.clip(0.5 + 0.35 * np.where(y_true == "pos", 1, -1) + rng.normal(0, 0.3, 60), 0, 1)
    y_pred = np.where(p_pos > 0.5, "pos", "neg")
    probabilities = np.stack([1 - p_pos, p_pos], axis=1)
    run = report.evaluate_run("m", y_true, y_pred, probabilities, classes, n_resamples=300)
    correct = bootstrap.bootstrap_ci((y_true == y_pred).astype(float), n_resamples=300, seed=0)
    accuracy = run.scores["accuracy"]
    assert (accuracy.estimate, accuracy.low, accuracy.high) == pytest.approx(
        (correct.estimate, correct.low, correct.high), abs=1e-12
    )
    assert run.scores["macro-F1"].estimate == pytest.approx(
        f1_score(y_true, y_pred, average="macro"), abs=1e-12
    )
    truth = (y_true == "pos").astype(int)
    ece = calibration.expected_calibration_error(probabilities, truth)
    assert run.scores["ECE"].estimate == pytest.approx(ece, abs=1e-12)


def test_a_bad_run_gets_an_error_that_says_what_is_wrong():
    with pytest.raises(ValueError, match="one row of 2 probabilities per text"):
        report.evaluate_run("m", ["a", "b"], ["a", "b"], np.ones((3, 2)) / 2, ["a", "b"])
    with pytest.raises(ValueError, match=r"labels \['c'\] are not in classes"):
        report.evaluate_run("m", ["a", "c"], ["a", "b"], np.ones((2, 2)) / 2, ["a", "b"])
    with pytest.raises(ValueError, match="same label word"):
        report.label_words(["pos", "positive"])


def test_paired_difference_is_zero_for_equal_models_and_pairs_the_resamples():
    rng = np.random.default_rng(1)
    y_true = rng.choice(["neg", "pos"], 80)
    flips_a, flips_b = rng.uniform(size=80) < 0.1, rng.uniform(size=80) < 0.3
    pred_a = np.where(flips_a, np.where(y_true == "pos", "neg", "pos"), y_true)
    pred_b = np.where(flips_b, np.where(y_true == "pos", "neg", "pos"), y_true)
    same = report.paired_difference(y_true, pred_a, pred_a, n_resamples=100)
    assert (same.estimate, same.low, same.high) == (0.0, 0.0, 0.0)
    diff = report.paired_difference(y_true, pred_a, pred_b, metric="accuracy", n_resamples=200)
    assert diff.estimate == pytest.approx(np.mean(pred_a == y_true) - np.mean(pred_b == y_true))
    per_text = (pred_a == y_true).astype(float) - (pred_b == y_true)  # accuracy is a mean
    direct = bootstrap.bootstrap_ci(per_text, n_resamples=200, seed=0)
    assert (diff.low, diff.high) == pytest.approx((direct.low, direct.high), abs=1e-12)
    with pytest.raises(ValueError, match="same texts"):
        report.paired_difference(y_true, pred_a[:-1], pred_b)


def test_phenomenon_rules_tag_cues_and_error_rates_count_them():
    texts = [
        "it is not funny",
        "pretty , but hollow",
        "a somewhat charming film",
        "oh , brilliant . another sequel !",
        "a joy",
        "the film doesn't work",
    ]
    tags = report.tag_phenomena(texts)
    assert list(tags.columns) == list(report.PHENOMENON_RULES)
    assert tags["negation"].tolist() == [True, False, False, False, False, True]
    assert tags["contrast"].tolist() == [False, True, False, False, False, False]
    assert tags["hedged"].tolist() == [False, False, True, False, False, False]
    assert tags["sarcasm cue"].tolist() == [False, False, False, True, False, False]
    correct = [False, False, True, True, True, True]
    rates = report.error_rates_by_tag(tags, correct, n_resamples=50)
    assert rates.loc["all texts", ["n", "errors"]].tolist() == [6, 2]
    assert rates.loc["negation", "error rate"] == pytest.approx(0.5)
    assert rates.loc["contrast", "share of errors"] == pytest.approx(0.5)
    assert np.isnan(rates.loc["contrast", "low"])  # one text: no interval


def test_label_words_are_scored_like_option_log_probs_with_one_or_more_tokens():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmzero.data import assets

    folder = assets.hf_model("SmolLM2-135M-Instruct")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    prompts = [f"Review: {text}\nSentiment:" for text in ("a fine film", "dull , long", "ok")]

    def encode(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False)

    for words in ([" negative", " positive"], [" negative", " lukewarm"]):
        ours = report.score_label_words(model, tokenizer, prompts, words, batch_size=2)
        options = [words] * len(prompts)
        reference = lm.option_log_probs(model, encode, prompts, options).log_prob
        np.testing.assert_allclose(ours, reference, atol=1e-4)
    assert len(encode(" lukewarm")) > 1  # the second pair took the fallback path


def test_the_top_block_on_cached_inputs_reproduces_the_encoder():
    from transformers import AutoModel, AutoTokenizer

    from llmzero.data import assets
    from llmzero.models.embeddings import encode
    from llmzero.training import finetune as ft

    folder = assets.hf_model("all-MiniLM-L6-v2")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    encoder = AutoModel.from_pretrained(folder, dtype=torch.float32).eval()
    texts = ["a fine film", "dull and long , with nothing to say", "ok"]
    vectors, block_inputs = report.encoder_states(encoder, tokenizer, texts, max_length=256)
    torch.testing.assert_close(vectors, encode(texts), rtol=1e-5, atol=1e-6)
    model = report.TopBlockClassifier(encoder.encoder.layer[-1], 384, num_labels=2).eval()
    batch = report.pad_states(block_inputs, labels=[1, 0, 1], batch_size=3)[0]
    with torch.no_grad():
        pooled = model.pool(batch["hidden"], batch["attention_mask"])
    torch.testing.assert_close(torch.nn.functional.normalize(pooled, dim=-1), vectors)
    log = ft.finetune(model, report.pad_states(block_inputs, [1, 0, 1], 2, seed=0), lr=1e-3)
    assert len(log.losses) == 2 and all(np.isfinite(log.losses))


def test_a_model_card_refuses_an_empty_section():
    card = report.ModelCard(
        "m", "s", ["use"], [], ["data"], [], pd.DataFrame({"accuracy": [0.5]}), [], ["risk"]
    )
    with pytest.raises(ValueError, match="'limitations' is empty"):
        card.to_markdown()
