"""Tests for llmzero.applications.summarization: splitting, PageRank, TextRank, lead, support."""

from __future__ import annotations

import networkx as nx
import pytest
import torch

from llmzero.applications import summarization as S


def test_split_sentences_handles_abbreviations_items_and_paragraphs():
    text = (
        "Models grow, e.g. GPT-2. They learn a lot! Do they? Yes.\n\n"
        "A list:\n- first item. Still it\n- second item\n\nJ. Smith wrote 3.5 pages."
    )
    assert S.split_sentences(text) == [
        "Models grow, e.g. GPT-2.",
        "They learn a lot!",
        "Do they?",
        "Yes.",
        "A list:",
        "first item.",
        "Still it",
        "second item",
        "J. Smith wrote 3.5 pages.",
    ]


def test_pagerank_equals_networkx_on_a_weighted_graph_with_a_dangling_node():
    torch.manual_seed(0)
    weights = torch.rand(12, 12).double()
    weights[3] = 0.0  # a node with no outgoing edge
    ours = S.pagerank(weights, damping=0.85, tol=1e-12)
    graph = nx.from_numpy_array(weights.numpy(), create_using=nx.DiGraph)
    theirs = nx.pagerank(graph, alpha=0.85, tol=1e-12)
    assert max(abs(ours[i].item() - theirs[i]) for i in theirs) < 1e-9
    assert abs(ours.sum().item() - 1.0) < 1e-12


def test_similarity_graph_is_symmetric_nonnegative_without_self_loops():
    weights = S.similarity_graph(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.1]]))
    assert torch.equal(weights, weights.T)
    assert bool((weights >= 0).all()) and bool((weights.diagonal() == 0).all())


def test_textrank_prefers_the_central_sentence_and_respects_the_budget():
    sentences = ["a b", "c d e", "f g"]
    embeddings = torch.tensor([[1.0, 0.1], [1.0, 1.0], [0.1, 1.0]])  # the middle is central
    assert S.textrank_summary(sentences, embeddings, max_words=3) == [1]
    assert S.textrank_summary(sentences, embeddings, max_words=5) == [0, 1]
    assert S.lead_summary(sentences, max_words=4) == [0]


def test_ngram_support():
    assert S.ngram_support("the cat sat", "yesterday the cat sat down") == 1.0
    assert S.ngram_support("the dog sat", "the cat sat", n=2) == 0.0


def test_bad_input_gives_clear_errors():
    with pytest.raises(ValueError, match="non-negative"):
        S.pagerank(-torch.ones(2, 2))
    with pytest.raises(ValueError, match="embed every sentence"):
        S.textrank_summary(["a", "b"], torch.ones(3, 2), max_words=5)
    with pytest.raises(ValueError, match="max_words"):
        S.lead_summary(["a"], max_words=0)
