"""Tests for llmzero.core.functional: softmax, log_softmax and cosine_similarity."""

import pytest
import torch
import torch.nn.functional as F

from llmzero.core.functional import cosine_similarity, log_softmax, softmax


@pytest.fixture
def logits() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(4, 5, 7, generator=generator) * 3  # (batch, seq, vocab)


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_softmax_matches_torch_along_every_dim(logits: torch.Tensor, dim: int) -> None:
    torch.testing.assert_close(softmax(logits, dim=dim), torch.softmax(logits, dim=dim))


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_log_softmax_matches_torch_along_every_dim(logits: torch.Tensor, dim: int) -> None:
    torch.testing.assert_close(log_softmax(logits, dim=dim), torch.log_softmax(logits, dim=dim))


def test_softmax_is_finite_on_huge_logits_where_the_naive_formula_is_not() -> None:
    huge = torch.tensor([[1000.0, 1001.0, 1002.0], [-1000.0, -1001.0, -1002.0]])
    naive = huge.exp() / huge.exp().sum(dim=-1, keepdim=True)
    assert torch.isnan(naive).all()  # inf / inf in row 0, 0 / 0 in row 1
    result = softmax(huge)
    assert torch.isfinite(result).all()
    torch.testing.assert_close(result, torch.softmax(huge, dim=-1))
    torch.testing.assert_close(result.sum(dim=-1), torch.ones(2))


def test_log_softmax_stays_finite_where_log_of_softmax_underflows() -> None:
    logits = torch.tensor([0.0, -200.0, 300.0])
    assert torch.isinf(torch.softmax(logits, dim=-1).log()).any()
    result = log_softmax(logits)
    assert torch.isfinite(result).all()
    torch.testing.assert_close(result, torch.log_softmax(logits, dim=-1))


def test_softmax_gives_zero_probability_to_masked_positions() -> None:
    scores = torch.tensor([[1.0, 2.0, float("-inf")], [0.5, float("-inf"), 0.5]])
    result = softmax(scores)
    assert result[0, 2] == 0 and result[1, 1] == 0
    torch.testing.assert_close(result, torch.softmax(scores, dim=-1))


def test_softmax_keeps_dtype_and_gradients_match_torch() -> None:
    x = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(3, 6, dtype=torch.float64)
    (softmax(x) * weights).sum().backward()
    ours = x.grad.clone()
    x.grad = None
    (torch.softmax(x, dim=-1) * weights).sum().backward()
    assert softmax(x).dtype == torch.float64
    torch.testing.assert_close(ours, x.grad)


@pytest.mark.parametrize("function", [softmax, log_softmax])
def test_softmax_rejects_bad_dim_and_scalars(function) -> None:
    with pytest.raises(ValueError, match="out of range"):
        function(torch.zeros(2, 3), dim=2)
    with pytest.raises(ValueError, match="0-d"):
        function(torch.tensor(1.0))
    with pytest.raises(TypeError, match="floating-point"):
        function(torch.tensor([1, 2, 3]))


def test_cosine_similarity_matrix_matches_torch_pairwise() -> None:
    generator = torch.Generator().manual_seed(1)
    a = torch.randn(5, 16, generator=generator)  # (n, d)
    b = torch.randn(3, 16, generator=generator)  # (m, d)
    expected = F.cosine_similarity(a[:, None, :], b[None, :, :], dim=-1)  # (n, m)
    result = cosine_similarity(a, b)
    assert result.shape == (5, 3)
    torch.testing.assert_close(result, expected)


def test_cosine_similarity_follows_matmul_shapes_for_vectors() -> None:
    generator = torch.Generator().manual_seed(2)
    a, b = torch.randn(4, 8, generator=generator), torch.randn(8, generator=generator)
    assert cosine_similarity(a[0], b).shape == ()
    torch.testing.assert_close(cosine_similarity(a[0], b), F.cosine_similarity(a[0], b, dim=0))
    torch.testing.assert_close(cosine_similarity(a, b), F.cosine_similarity(a, b[None], dim=-1))
    torch.testing.assert_close(cosine_similarity(b, a), F.cosine_similarity(a, b[None], dim=-1))


def test_cosine_similarity_ignores_length_and_handles_zero_vectors() -> None:
    a = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    b = torch.tensor([[10.0, 20.0, 30.0], [-1.0, -2.0, -3.0]])
    result = cosine_similarity(a, b)
    torch.testing.assert_close(result, torch.tensor([[1.0, -1.0], [0.0, 0.0]]))


def test_cosine_similarity_rejects_mismatched_or_wrong_rank_inputs() -> None:
    with pytest.raises(ValueError, match="same size"):
        cosine_similarity(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"\(n, d\)"):
        cosine_similarity(torch.zeros(2, 3, 4), torch.zeros(3))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        cosine_similarity([1.0, 2.0], torch.zeros(2))
