"""BLEU, ROUGE and n-gram overlap from scratch equal sacrebleu 2.6 and rouge-score 0.1.2."""

from __future__ import annotations

import random

import pytest
import sacrebleu
from rouge_score import rouge_scorer

from llmzero.evaluation import generation

REFERENCES = [
    "The cat sat on the mat.",
    "It is 3.14, not 3,000 - said Dr. Smith & co.",
    "A quick brown fox jumps over the lazy dog near the river bank.",
    "Prices rose by 4-5% in 2023; analysts weren't surprised.",
    'He said: "we\'ll see" and left the room.',
    "Language models assign probabilities to sequences of words.",
]
HYPOTHESES = [
    "The cat is sitting on the mat.",
    "It is 3.14 not 3,000, said Smith.",
    "A fast brown fox leaps over a lazy dog by the river.",
    "Prices rose 5% in 2023 and analysts were not surprised.",
    "He said we will see, then left.",
    "Models of language give probabilities to word sequences.",
]


def _shuffled_pairs(seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    hyps = []
    for ref in REFERENCES * 5:
        words = ref.split()
        rng.shuffle(words)
        hyps.append(" ".join(words[: rng.randint(1, len(words))]))
    return hyps, REFERENCES * 5


def test_tokenize_13a_equals_sacrebleu():
    tokenizer = sacrebleu.BLEU().tokenizer
    for text in REFERENCES + HYPOTHESES + ["a&amp;b &lt;x&gt;", "line-\nbreak\nhere  "]:
        assert generation.tokenize_13a(text) == tokenizer(text.rstrip()).split()


@pytest.mark.parametrize("pairs", ["fixed", "shuffled"])
def test_corpus_bleu_equals_sacrebleu(pairs):
    hyps, refs = (HYPOTHESES, REFERENCES) if pairs == "fixed" else _shuffled_pairs()
    expected = sacrebleu.corpus_bleu(hyps, [refs]).score
    assert generation.corpus_bleu(hyps, refs) == pytest.approx(expected, abs=1e-9)


def test_corpus_bleu_with_two_references_equals_sacrebleu():
    second = [ref.lower() for ref in REFERENCES]
    expected = sacrebleu.corpus_bleu(HYPOTHESES, [REFERENCES, second]).score
    ours = generation.corpus_bleu(HYPOTHESES, list(zip(REFERENCES, second, strict=True)))
    assert ours == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(
    ("hyp", "ref"),
    [("", "the cat sat"), ("dogs bark", "the cat sat"), ("the cat", "the cat sat on it")],
)
def test_bleu_edge_cases_equal_sacrebleu(hyp, ref):
    # empty hypothesis, no overlap at all, too short to have 4-grams
    expected = sacrebleu.corpus_bleu([hyp], [[ref]]).score
    assert generation.corpus_bleu([hyp], [ref]) == pytest.approx(expected, abs=1e-9)
    assert expected == 0.0


def test_bleu_statistics_sum_to_corpus_bleu():
    rows = generation.bleu_statistics(HYPOTHESES, REFERENCES)
    summed = [sum(column) for column in zip(*rows, strict=True)]
    assert generation.bleu_from_statistics(summed) == generation.corpus_bleu(HYPOTHESES, REFERENCES)


def test_bleu_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="one reference"):
        generation.corpus_bleu(["a", "b"], ["a"])
    with pytest.raises(TypeError, match="lists of strings"):
        generation.corpus_bleu("a b", "a b")
    with pytest.raises(ValueError, match="matches"):
        generation.bleu_from_statistics([1, 2, 3])


@pytest.mark.parametrize("pairs", ["fixed", "shuffled"])
def test_rouge_equals_rouge_score(pairs):
    hyps, refs = (HYPOTHESES, REFERENCES) if pairs == "fixed" else _shuffled_pairs()
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"])
    for hyp, ref in zip(hyps, refs, strict=True):
        expected = scorer.score(ref, hyp)
        ours = {
            "rouge1": generation.rouge_n(ref, hyp, 1),
            "rouge2": generation.rouge_n(ref, hyp, 2),
            "rougeL": generation.rouge_l(ref, hyp),
        }
        for key, score in ours.items():
            assert score.precision == pytest.approx(expected[key].precision, abs=1e-12)
            assert score.recall == pytest.approx(expected[key].recall, abs=1e-12)
            assert score.fmeasure == pytest.approx(expected[key].fmeasure, abs=1e-12)


def test_rouge_with_stemmer_equals_rouge_score():
    from nltk.stem import porter

    stem = porter.PorterStemmer("ORIGINAL_ALGORITHM").stem
    scorer = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=True)
    for hyp, ref in zip(HYPOTHESES, REFERENCES, strict=True):
        expected = scorer.score(ref, hyp)
        assert generation.rouge_n(ref, hyp, 1, stem).fmeasure == pytest.approx(
            expected["rouge1"].fmeasure
        )
        assert generation.rouge_l(ref, hyp, stem).fmeasure == pytest.approx(
            expected["rougeL"].fmeasure
        )


@pytest.mark.parametrize(("hyp", "ref"), [("", "the cat"), ("dogs bark", "the cat"), ("!!", "")])
def test_rouge_edge_cases_are_zero_like_rouge_score(hyp, ref):
    expected = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"]).score(ref, hyp)
    assert generation.rouge_n(ref, hyp, 1).fmeasure == expected["rouge1"].fmeasure == 0
    assert generation.rouge_n(ref, hyp, 2).fmeasure == expected["rouge2"].fmeasure == 0
    assert generation.rouge_l(ref, hyp).fmeasure == expected["rougeL"].fmeasure == 0


def test_lcs_length_on_known_cases():
    assert generation.lcs_length("ABCBDAB", "BDCABA") == 4
    assert generation.lcs_length([], ["a"]) == 0
    assert generation.lcs_length(["a", "b"], ["a", "b"]) == 2


def test_ngram_overlap_flags_copied_texts_only():
    corpus = ["the quick brown fox jumps over the lazy dog today"]
    texts = [
        "The quick brown fox jumps over the lazy dog today!",
        "an entirely different sentence with other words in it",
    ]
    assert generation.ngram_overlap(texts, corpus, n=4) == [1.0, 0.0]
    with pytest.raises(TypeError):
        generation.ngram_overlap("one string", corpus)
