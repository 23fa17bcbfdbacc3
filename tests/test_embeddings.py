"""Tests for llmzero.models.embeddings: mean pooling and the MiniLM sentence encoder."""

import pytest
import torch

from llmzero.models.embeddings import encode, mean_pool


def test_mean_pool_averages_only_real_tokens() -> None:
    tokens = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])  # (1, 3, 2)
    mask = torch.tensor([[1, 1, 0]])  # the last token is padding
    torch.testing.assert_close(mean_pool(tokens, mask), torch.tensor([[2.0, 3.0]]))


def test_mean_pool_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="attention_mask"):
        mean_pool(torch.zeros(2, 5, 4), torch.ones(2, 4))


def test_encode_gives_unit_vectors_that_rank_paraphrases_above_unrelated_text() -> None:
    texts = [
        "A man is playing a guitar.",
        "Someone strums a guitar on stage.",
        "The stock market fell sharply today.",
        "Share prices dropped after the announcement.",
    ]
    vectors = encode(texts)
    assert vectors.shape == (4, 384)
    assert vectors.dtype == torch.float32
    torch.testing.assert_close(vectors.norm(dim=-1), torch.ones(4))
    similarity = vectors @ vectors.T  # (4, 4) cosine similarities
    for paraphrase, others in [
        ((0, 1), [(0, 2), (0, 3), (1, 2), (1, 3)]),
        ((2, 3), [(2, 0), (2, 1), (3, 0), (3, 1)]),
    ]:
        assert similarity[paraphrase] > max(similarity[pair] for pair in others)


def test_encode_does_not_depend_on_batching_or_padding() -> None:
    texts = ["short", "a much longer sentence with many more tokens in it", "medium length text"]
    together = encode(texts, batch_size=3)  # padded to the longest text
    one_by_one = encode(texts, batch_size=1)  # no padding at all
    torch.testing.assert_close(together, one_by_one, atol=1e-5, rtol=1e-4)


def test_encode_rejects_a_bare_string_and_handles_an_empty_list() -> None:
    with pytest.raises(TypeError, match=r"\[text\]"):
        encode("just one text")
    assert encode([]).shape == (0, 384)
