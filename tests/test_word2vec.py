"""Tests for llmzero.text.word2vec: skip-gram with negative sampling and its helpers."""

import math
from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmzero.text.word2vec import (
    SkipGramNS,
    Vocabulary,
    analogy,
    build_vocab,
    keep_probabilities,
    nearest_neighbours,
    noise_distribution,
    sample_negatives,
    sgns_loss,
    skipgram_pairs,
    subsample_mask,
)


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_sgns_loss_equals_a_hand_computation_on_a_tiny_example() -> None:
    center = torch.tensor([[1.0, 0.5]])  # (1, 2)
    context = torch.tensor([[0.8, -0.2]])  # (1, 2): score 0.7
    negatives = torch.tensor([[[0.3, 0.4], [-1.0, 0.2]]])  # (1, 2, 2): scores 0.5, -0.9
    expected = -math.log(_sigmoid(0.7)) - math.log(_sigmoid(-0.5)) - math.log(_sigmoid(0.9))
    loss = sgns_loss(center, context, negatives)
    assert loss.shape == (1,)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_model_loss_is_the_batch_mean_of_sgns_loss_on_its_own_vectors() -> None:
    torch.manual_seed(0)
    model = SkipGramNS(vocab_size=10, dim=4)
    torch.nn.init.normal_(model.context.weight)  # non-zero, so the scores are not all 0
    centers, contexts = torch.tensor([1, 2, 3]), torch.tensor([4, 5, 6])
    negatives = torch.tensor([[7, 8], [9, 0], [1, 1]])  # (3, 2)
    expected = sgns_loss(
        model.center.weight[centers],
        model.context.weight[contexts],
        model.context.weight[negatives],
    ).mean()
    torch.testing.assert_close(model(centers, contexts, negatives), expected)


def test_initial_loss_is_one_plus_k_times_log_two_because_context_vectors_start_at_zero() -> None:
    model = SkipGramNS(vocab_size=50, dim=8)
    negatives = torch.randint(0, 50, (16, 5))
    loss = model(torch.arange(16), torch.arange(16, 32), negatives)
    assert loss.item() == pytest.approx(6 * math.log(2), abs=1e-6)


def test_sparse_model_trains_with_sparse_adam_and_lowers_the_loss() -> None:
    torch.manual_seed(0)
    model = SkipGramNS(vocab_size=20, dim=8, sparse=True)
    optimizer = torch.optim.SparseAdam(model.parameters(), lr=0.05)
    centers, contexts = torch.tensor([0, 1, 2, 3]), torch.tensor([1, 0, 3, 2])
    negatives = torch.tensor([[10, 11], [12, 13], [14, 15], [16, 17]])
    first = model(centers, contexts, negatives)
    for _ in range(30):
        loss = model(centers, contexts, negatives)
        optimizer.zero_grad()
        loss.backward()
        assert model.center.weight.grad.is_sparse
        optimizer.step()
    assert model(centers, contexts, negatives).item() < first.item() - 0.5


def _pairs_by_loop(ids: list[int], window: int) -> Counter:
    pairs = Counter()
    for i, center in enumerate(ids):
        for j in range(max(0, i - window), min(len(ids), i + window + 1)):
            if j != i:
                pairs[(center, ids[j])] += 1
    return pairs


@settings(max_examples=50, deadline=None)
@given(
    ids=st.lists(st.integers(min_value=0, max_value=9), min_size=0, max_size=30),
    window=st.integers(min_value=1, max_value=5),
)
def test_skipgram_pairs_equal_a_plain_double_loop(ids: list[int], window: int) -> None:
    centers, contexts = skipgram_pairs(torch.tensor(ids, dtype=torch.long), window)
    assert centers.shape == contexts.shape
    assert Counter(zip(centers.tolist(), contexts.tolist(), strict=True)) == _pairs_by_loop(
        ids, window
    )


def test_skipgram_pairs_never_join_words_of_different_segments() -> None:
    ids = torch.tensor([0, 1, 2, 3, 4, 5])
    segments = torch.tensor([0, 0, 0, 1, 1, 1])
    centers, contexts = skipgram_pairs(ids, window=2, segments=segments)
    expected = _pairs_by_loop([0, 1, 2], 2) + _pairs_by_loop([3, 4, 5], 2)
    assert Counter(zip(centers.tolist(), contexts.tolist(), strict=True)) == expected


def test_skipgram_pairs_rejects_a_window_below_one() -> None:
    with pytest.raises(ValueError, match="window"):
        skipgram_pairs(torch.tensor([0, 1, 2]), window=0)


def test_build_vocab_sorts_by_count_and_drops_rare_words() -> None:
    vocab = build_vocab(["b", "a", "b", "c", "b", "a", "d"], min_count=2)
    assert vocab.words == ["b", "a"]
    assert vocab.counts.tolist() == [3, 2]
    assert "c" not in vocab and len(vocab) == 2


def test_vocabulary_encode_leaves_out_unknown_words() -> None:
    vocab = Vocabulary(["x", "y"], torch.tensor([5, 3]))
    assert vocab.encode(["y", "unknown", "x", "y"]).tolist() == [1, 0, 1]


def test_keep_probabilities_are_sqrt_of_threshold_over_frequency_capped_at_one() -> None:
    counts = torch.tensor([900, 90, 10])  # frequencies 0.9, 0.09, 0.01
    keep = keep_probabilities(counts, threshold=0.01)
    expected = torch.tensor([math.sqrt(0.01 / 0.9), math.sqrt(0.01 / 0.09), 1.0])
    torch.testing.assert_close(keep, expected)


def test_subsample_mask_keeps_each_word_at_its_keep_probability() -> None:
    generator = torch.Generator().manual_seed(0)
    ids = torch.tensor([0, 1]).repeat(50_000)  # (100000,)
    mask = subsample_mask(ids, torch.tensor([0.2, 1.0]), generator)
    assert mask[ids == 1].all()
    assert mask[ids == 0].float().mean().item() == pytest.approx(0.2, abs=0.01)


def test_noise_distribution_is_the_unigram_to_the_power_three_quarters() -> None:
    counts = torch.tensor([16, 1])
    noise = noise_distribution(counts)
    torch.testing.assert_close(noise, torch.tensor([8 / 9, 1 / 9], dtype=torch.float64))


def test_negatives_follow_the_smoothed_unigram_distribution() -> None:
    counts = torch.tensor([1000, 300, 50, 5, 1])
    noise = noise_distribution(counts)
    draws = sample_negatives(noise, (400, 500), torch.Generator().manual_seed(0))
    assert draws.shape == (400, 500) and draws.dtype == torch.long
    empirical = torch.bincount(draws.flatten(), minlength=5).double() / draws.numel()
    # 200,000 draws: the standard error of each share is below 0.0012
    torch.testing.assert_close(empirical, noise, atol=0.005, rtol=0)
    unigram = counts.double() / counts.sum()
    assert empirical[0] < unigram[0] and empirical[-1] > unigram[-1]  # flatter than unigram


def test_nearest_neighbours_rank_by_cosine_and_leave_out_the_query() -> None:
    vocab = Vocabulary(["a", "b", "c", "d"], torch.ones(4))
    vectors = torch.tensor([[1.0, 0.0], [10.0, 1.0], [0.0, 1.0], [-1.0, 0.0]])
    neighbours = nearest_neighbours(vectors, vocab, "a", k=3)
    assert [word for word, _ in neighbours] == ["b", "c", "d"]
    assert neighbours[0][1] == pytest.approx(10 / math.sqrt(101))
    with pytest.raises(KeyError):
        nearest_neighbours(vectors, vocab, "zzz")


def test_analogy_solves_a_planted_parallelogram_and_skips_the_question_words() -> None:
    words = ["man", "woman", "king", "queen", "apple"]
    vectors = torch.tensor(
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, -1.0]]
    )
    vocab = Vocabulary(words, torch.ones(5))
    answers = analogy(vectors, vocab, "man", "woman", "king", k=2)
    assert answers[0][0] == "queen"
    assert {word for word, _ in answers} <= {"queen", "apple"}


def test_training_on_a_toy_corpus_puts_co_occurring_words_closer() -> None:
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    # Two "topics" that never share a window: animals and numbers.
    animal, number = ["cat", "dog", "cow", "pig"], ["one", "two", "six", "ten"]
    sentences = []
    for _ in range(300):
        for topic in (animal, number):
            order = torch.randperm(4, generator=generator).tolist()
            sentences.append([topic[i] for i in order])
    tokens = [word for sentence in sentences for word in sentence]
    segments = torch.tensor([i for i, sentence in enumerate(sentences) for _ in sentence])
    vocab = build_vocab(tokens, min_count=1)
    centers, contexts = skipgram_pairs(vocab.encode(tokens), window=2, segments=segments)
    noise = noise_distribution(vocab.counts)
    model = SkipGramNS(len(vocab), dim=8)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(200):
        batch = torch.randint(0, len(centers), (256,), generator=generator)
        negatives = sample_negatives(noise, (256, 3), generator)
        loss = model(centers[batch], contexts[batch], negatives)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    unit = torch.nn.functional.normalize(model.embeddings(), dim=-1)
    sims = unit @ unit.T  # (8, 8)

    def sim(a: str, b: str) -> float:
        return sims[vocab.index[a], vocab.index[b]].item()

    within = [sim(a, b) for group in (animal, number) for a in group for b in group if a < b]
    across = [sim(a, b) for a in animal for b in number]
    assert min(within) > max(across)
