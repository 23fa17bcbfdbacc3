"""Searching the book (llmzero.applications.retrieval) and its gold question set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

from llmzero.applications import retrieval
from llmzero.applications.retrieval import (
    BM25,
    BookSearch,
    Chunk,
    DenseIndex,
    Hit,
    chunk_sections,
    reciprocal_rank_fusion,
)
from llmzero.data import booktext
from llmzero.data.booktext import Section

ROOT = Path(__file__).resolve().parents[1]
GOLD = ROOT / "llmzero" / "applications" / "datasets" / "rag_gold" / "questions.jsonl"

CORPUS = [
    "The cat sat on the mat.",
    "A dog chased the cat around the garden, and the cat ran.",
    "Transformers use attention; attention weighs every token.",
    "The key/value cache stores keys and values of earlier tokens.",
    "BM25 ranks documents by term frequency and inverse document frequency.",
    "the the the the",
]


def _section(label: str, heading: str, text: str) -> Section:
    return Section(label, f"Title of {label}", heading, 2, f"{label}.ipynb", text)


def test_bm25_scores_equal_rank_bm25_on_the_same_tokens():
    ours = BM25(CORPUS)
    library = BM25Okapi([retrieval.tokenize(text) for text in CORPUS])
    for query in ["the cat", "attention token", "cache of keys", "unknown words", "the the cat"]:
        expected = library.get_scores(retrieval.tokenize(query))
        np.testing.assert_allclose(ours.scores(query), expected, rtol=0, atol=1e-12)


def test_bm25_equals_rank_bm25_on_chunks_of_the_book_with_other_parameters():
    chunks = chunk_sections(booktext.load_sections(ROOT)[:60], max_words=80, overlap=20)
    texts = [chunk.text for chunk in chunks]
    ours = BM25(texts, k1=1.2, b=0.6, epsilon=0.1)
    library = BM25Okapi([retrieval.tokenize(text) for text in texts], k1=1.2, b=0.6, epsilon=0.1)
    for query in ["What does a tokenizer do with unknown words?", "gradient of the loss"]:
        expected = library.get_scores(retrieval.tokenize(query))
        np.testing.assert_allclose(ours.scores(query), expected, rtol=0, atol=1e-12)


def test_bm25_floors_negative_idf_of_very_common_terms():
    index = BM25(CORPUS)
    assert index.idf["the"] > 0  # in more than half of the documents: floored, not negative
    assert index.idf["the"] < index.idf["bm25"]
    with pytest.raises(ValueError, match="non-empty list"):
        BM25("a single string")


def test_chunks_have_the_size_and_overlap_asked_and_never_cross_sections():
    words = [f"w{i}" for i in range(25)]
    sections = [_section("ch-a", "One", " ".join(words)), _section("ch-b", "", "short text")]
    chunks = chunk_sections(sections, max_words=10, overlap=3)
    bodies = [chunk.text.split(": ", 1)[1].split() for chunk in chunks]
    assert [body[0] for body in bodies[:3]] == ["w0", "w7", "w14"]
    assert all(len(body) <= 10 for body in bodies)
    assert bodies[0][-3:] == bodies[1][:3]  # consecutive windows share `overlap` words
    assert {w for body in bodies[:-1] for w in body} == set(words)  # nothing is lost
    assert [chunk.citation for chunk in chunks][-2:] == ["ch-a § One", "ch-b"]
    assert chunks[0].text.startswith("Title of ch-a > One: ")
    assert [chunk.chunk_id for chunk in chunks] == list(range(len(chunks)))


def test_chunking_rejects_an_overlap_that_does_not_move_forward():
    with pytest.raises(ValueError, match="overlap"):
        chunk_sections([], max_words=10, overlap=10)
    with pytest.raises(ValueError, match="max_words"):
        chunk_sections([], max_words=0, overlap=0)


def test_faiss_exact_search_equals_brute_force_numpy():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(500, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = rng.normal(size=(20, 32)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    index = DenseIndex(vectors)
    similarities, ids = index.search_vectors(queries, k=10)
    brute = queries @ vectors.T  # (20, 500) cosine similarities
    expected_ids = np.argsort(-brute, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_allclose(similarities, np.take_along_axis(brute, expected_ids, 1), atol=1e-5)


def test_dense_index_refuses_vectors_that_are_not_unit_length():
    with pytest.raises(ValueError, match="unit-length"):
        DenseIndex(np.ones((3, 4), dtype=np.float32))


def test_reciprocal_rank_fusion_by_hand():
    # id 2: 1/61 + 1/62; id 1: 1/62 + 1/61 (a tie, smaller id first); id 3: 1/63; id 4: 1/63.
    assert reciprocal_rank_fusion([[2, 1, 3], [1, 2, 4]]) == [1, 2, 3, 4]
    # With k = 0 a first place (1/1) outweighs a second and a third place (1/2 + 1/3).
    assert reciprocal_rank_fusion([[5, 6], [7, 5], [8, 9, 5]], k=0)[0] == 5
    assert reciprocal_rank_fusion([[5, 6], [6, 7]], k=0) == [6, 5, 7]


def test_recall_and_mrr_by_hand():
    ranks = [1, 3, None, 2]
    assert retrieval.recall_at_k(ranks, 1) == 0.25
    assert retrieval.recall_at_k(ranks, 3) == 0.75
    assert retrieval.mean_reciprocal_rank(ranks) == pytest.approx((1 + 1 / 3 + 0 + 1 / 2) / 4)
    assert retrieval.first_relevant_rank(["a", "b", "c"], "c") == 3
    assert retrieval.first_relevant_rank(["a"], {"z"}) is None


def test_book_search_finds_the_section_that_answers():
    sections = [
        _section("ch-x", "Caching", "A key value cache stores the keys and values of tokens."),
        _section("ch-x", "Sampling", "Top-p sampling keeps the smallest set of likely tokens."),
        _section("ch-y", "Tokens", "A tokenizer splits text into sub-word tokens."),
    ]
    search = BookSearch(chunk_sections(sections), method="bm25")
    hits = search.search("what does the cache store", k=2)
    assert isinstance(hits[0], Hit) and isinstance(hits[0].chunk, Chunk)
    assert hits[0].chunk.citation == "ch-x § Caching"
    assert hits[0].score >= hits[1].score
    with pytest.raises(ValueError, match="method"):
        BookSearch(chunk_sections(sections), method="magic")
    with pytest.raises(ValueError, match="non-empty"):
        search.search("  ")
    with pytest.raises(ValueError, match="vectors for"):
        BookSearch(chunk_sections(sections), method="dense", vectors=np.ones((1, 4)))


@pytest.mark.slow
def test_dense_and_hybrid_search_with_minilm_and_the_vector_cache():
    sections = [
        _section("ch-x", "Caching", "A key value cache stores the keys and values of tokens."),
        _section("ch-y", "Cooking", "Boil the pasta for ten minutes in salted water."),
    ]
    chunks = chunk_sections(sections)
    dense = BookSearch(chunks, method="dense", dense_max_tokens=32)
    assert dense.search("how do I make spaghetti", k=1)[0].chunk.citation == "ch-y § Cooking"
    hybrid = BookSearch(chunks, method="hybrid", dense_max_tokens=32)
    assert hybrid.dense.vectors is dense.dense.vectors  # embedded once, then reused
    assert hybrid.search("memory for keys", k=1)[0].chunk.citation == "ch-x § Caching"


def test_support_score_and_citations():
    source = "The KV cache stores keys and values of earlier tokens."
    assert retrieval.support_score("It stores keys and values [1].", source) == 1.0
    assert retrieval.support_score("Bananas are yellow.", source) == 0.0
    assert retrieval.cited_sources("As [2] and [1] say, and [2] again, not [7].", 3) == [2, 1]
    hits = [Hit(Chunk(0, "A > B: text", "ch-a § B"), 1.0), Hit(Chunk(1, source, "ch-k"), 0.5)]
    prompt = retrieval.build_prompt("Q?", hits)
    assert "[1] A > B: text" in prompt and prompt.endswith("Question: Q?")
    assert retrieval.attribute("The cache keeps keys.", hits) == 2


@pytest.mark.slow
def test_ask_book_answers_with_retrieved_sources():
    sections = [_section("ch-x", "Caching", "A KV cache stores the keys and values of tokens.")]
    search = BookSearch(chunk_sections(sections), method="bm25")
    answer = retrieval.ask_book("What does a KV cache store?", k=1, search=search, max_new_tokens=6)
    assert answer.text and answer.cited == (1,)
    assert "ch-x § Caching" in str(answer)
    with pytest.raises(ValueError, match="non-empty"):
        retrieval.ask_book(" ", search=search)


def _gold() -> list[dict]:
    return [json.loads(line) for line in GOLD.read_text(encoding="utf-8").splitlines() if line]


def test_gold_set_has_fifty_questions_in_two_halves():
    gold = _gold()
    assert len(gold) >= 50
    assert {item["split"] for item in gold} == {"tune", "test"}
    assert all(item["question"].endswith("?") for item in gold)
    assert len({item["question"] for item in gold}) == len(gold)
    assert (GOLD.parent / "README.md").is_file()


def test_every_gold_answer_section_exists_in_the_book():
    citations = {section.citation for section in booktext.load_sections(ROOT)}
    missing = [
        item["question"]
        for item in _gold()
        if f"{item['chapter_label']} § {item['heading']}" not in citations
    ]
    assert not missing, f"gold questions whose chapter label and heading changed: {missing}"
