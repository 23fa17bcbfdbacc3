"""Tests of llmzero.evaluation.sequence_labeling: spans from IOB2 tags and entity-level
precision/recall/F1, checked to equal ``seqeval`` on random tag sequences."""

from __future__ import annotations

import random

import pytest

from llmzero.evaluation.sequence_labeling import classify_errors, entity_scores, prf, spans

seqeval_metrics = pytest.importorskip("seqeval.metrics")
from seqeval.metrics.sequence_labeling import get_entities  # noqa: E402
from seqeval.scheme import IOB2, Entities  # noqa: E402

TAGS = [
    "O",
    "O",
    "B-person",
    "I-person",
    "B-location",
    "I-location",
    "B-creative-work",
    "I-creative-work",
]


def random_corpus(rng: random.Random) -> tuple[list[list[str]], list[list[str]]]:
    gold = [[rng.choice(TAGS) for _ in range(rng.randint(0, 9))] for _ in range(rng.randint(1, 6))]
    predicted = [
        [tag if rng.random() < 0.6 else rng.choice(TAGS) for tag in sentence] for sentence in gold
    ]
    return gold, predicted


def test_spans_of_well_formed_tags_have_exclusive_ends():
    tags = ["B-person", "I-person", "O", "B-location", "B-location", "I-location"]
    assert spans(tags) == [("person", 0, 2), ("location", 3, 4), ("location", 4, 6)]
    assert spans(tags, mode="strict") == spans(tags)
    assert spans([]) == [] and spans(["O", "O"]) == []


def test_stray_inside_tags_start_an_entity_in_conlleval_mode_only():
    tags = ["O", "I-person", "I-person", "I-location", "B-person", "I-location"]
    assert spans(tags) == [
        ("person", 1, 3),
        ("location", 3, 4),
        ("person", 4, 5),
        ("location", 5, 6),
    ]
    assert spans(tags, mode="strict") == [("person", 4, 5)]


def test_types_with_hyphens_are_kept_whole():
    assert spans(["B-creative-work", "I-creative-work"]) == [("creative-work", 0, 2)]


def test_spans_equal_seqeval_on_random_sequences():
    rng = random.Random(0)
    for _ in range(2000):
        tags = [rng.choice(TAGS) for _ in range(rng.randint(0, 10))]
        expected = sorted((kind, start, end + 1) for kind, start, end in get_entities(tags))
        assert sorted(spans(tags)) == expected, tags
        strict = Entities([tags], IOB2).entities[0]
        assert sorted(spans(tags, "strict")) == sorted((e.tag, e.start, e.end) for e in strict)


@pytest.mark.parametrize("mode", ["conlleval", "strict"])
# seqeval's report averages an empty array when a corpus has no entities (numpy warns).
@pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_entity_scores_equal_seqeval_on_random_corpora(mode):
    rng = random.Random(1)
    options = {"mode": "strict", "scheme": IOB2} if mode == "strict" else {}
    for _ in range(500):
        gold, predicted = random_corpus(rng)
        ours = entity_scores(gold, predicted, mode=mode)
        for name in ("precision", "recall", "f1"):
            reference = getattr(seqeval_metrics, f"{name}_score")(
                gold, predicted, zero_division=0, **options
            )
            assert getattr(ours.overall, name) == pytest.approx(reference, abs=1e-12)
        report = seqeval_metrics.classification_report(
            gold, predicted, output_dict=True, zero_division=0, **options
        )
        for kind, scores in ours.per_type.items():
            if kind in report:
                assert scores.precision == pytest.approx(report[kind]["precision"], abs=1e-12)
                assert scores.recall == pytest.approx(report[kind]["recall"], abs=1e-12)
                assert scores.f1 == pytest.approx(report[kind]["f1-score"], abs=1e-12)
                assert scores.n_gold == report[kind]["support"]
            else:  # seqeval lists only types with gold entities in some versions
                assert scores.n_gold == 0


def test_entity_scores_count_exact_matches_only():
    gold = [["B-person", "I-person", "O", "B-location"]]
    predicted = [["B-person", "O", "O", "B-location"]]  # a boundary error, one hit
    scores = entity_scores(gold, predicted)
    assert (scores.overall.n_gold, scores.overall.n_predicted, scores.overall.n_correct) == (
        2,
        2,
        1,
    )
    assert scores.overall.f1 == pytest.approx(0.5)
    assert scores.per_type["person"].f1 == 0.0 and scores.per_type["location"].f1 == 1.0
    assert scores.macro_f1() == pytest.approx(0.5)


def test_prf_returns_zero_for_empty_denominators():
    assert prf(0, 0, 0) == (0.0, 0.0, 0.0)
    assert prf(1, 2, 4) == pytest.approx((0.5, 0.25, 1 / 3))


def test_classify_errors_names_each_kind_of_mistake():
    gold = [["B-person", "I-person", "O", "B-location", "O", "B-product", "O"]]
    predicted = [["B-person", "O", "O", "B-group", "O", "O", "B-corporation"]]
    outcomes = {(row["gold_type"], row["outcome"]) for row in classify_errors(gold, predicted)}
    assert outcomes == {
        ("person", "wrong span"),
        ("location", "wrong type"),
        ("product", "missed"),
        (None, "spurious"),
    }
    rows = classify_errors([["B-person"]], [["B-person"]])
    assert [row["outcome"] for row in rows] == ["correct"]


def test_bad_input_gets_a_clear_error():
    with pytest.raises(ValueError, match="not IOB2"):
        spans(["U-person"])
    with pytest.raises(ValueError, match="mode"):
        spans(["O"], mode="lenient")
    with pytest.raises(ValueError, match="single string"):
        spans("B-person")
    with pytest.raises(ValueError, match="predicted ones"):
        entity_scores([["O", "O"]], [["O"]])
    with pytest.raises(ValueError, match="gold sentences"):
        entity_scores([["O"]], [["O"], ["O"]])
    with pytest.raises(ValueError, match="list of lists"):
        entity_scores(["O"], ["O"])
