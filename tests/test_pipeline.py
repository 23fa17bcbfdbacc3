"""Tests for llmzero.data.pipeline: the whole cleaning pipeline on the crawl."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from llmzero.data.crawl import make_crawl
from llmzero.data.dedup import jaccard, shingles
from llmzero.data.pipeline import STAGES, pretraining_corpus, run_pipeline


@pytest.fixture(scope="module")
def crawl():
    return make_crawl(seed=0)


@pytest.fixture(scope="module")
def result(crawl):
    return run_pipeline(crawl)


def test_pipeline_is_deterministic_and_reads_only_id_url_and_html(crawl, result) -> None:
    @dataclass
    class BarePage:  # no ground truth to peek at
        id: str
        url: str
        html: str

    again = run_pipeline([BarePage(d.id, d.url, d.html) for d in crawl])
    assert again == result  # documents, counts, removals and PII matches (not timings)
    assert pretraining_corpus(0) == result.texts


def test_counts_shrink_stage_by_stage_and_removals_add_up(crawl, result) -> None:
    counts = [result.counts[stage] for stage in ("crawl", *STAGES)]
    assert counts == sorted(counts, reverse=True)
    assert result.counts["crawl"] == len(crawl)
    assert len(result.removed) + len(result.documents) == len(crawl)


def test_pipeline_removes_spam_foreign_pages_and_planted_copies(crawl, result) -> None:
    kept = set(result.ids)
    by_id = {d.id: d for d in crawl}
    assert not any(by_id[i].truth.is_spam for i in kept)
    assert all(by_id[i].truth.language == "en" for i in kept)
    # Every exact copy is gone; a near copy survives beside its original only if it was
    # edited so much that its Jaccard similarity is below (or, by MinHash's estimation
    # error, near) the 0.8 threshold.
    texts = {d.id: d.text for d in result.documents}
    for i in kept:
        original = by_id[i].truth.duplicate_of
        if original in kept:
            assert by_id[i].truth.duplicate_kind == "near"
            similarity = jaccard(shingles(texts[i]), shingles(texts[original]))
            assert similarity < 0.85, (i, original, similarity)


def test_pipeline_scrubs_planted_pii(crawl, result) -> None:
    by_id = {d.id: d for d in crawl}
    planted = [(d, item) for d in result.documents for item in by_id[d.id].truth.pii]
    assert len(planted) > 20
    assert all(item not in document.text for document, item in planted)


def test_corpus_size_and_other_languages() -> None:
    english = pretraining_corpus()
    assert len(english) > 500 and sum(map(len, english)) > 2_000_000
    with pytest.raises(ValueError, match="does not know"):
        run_pipeline([], languages=("xx",))
    with pytest.raises(TypeError, match="sequence"):
        pretraining_corpus(0, languages="en")
