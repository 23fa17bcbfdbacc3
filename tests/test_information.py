"""Tests for llmzero.core.information: entropy, cross-entropy, KL, perplexity, sampling."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Categorical

from llmzero.core import information


def random_probs(*shape: int, seed: int = 0) -> torch.Tensor:
    """Random distributions along the last dim, in float64 so comparisons can be tight."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(*shape, generator=generator, dtype=torch.float64) * 2
    return torch.softmax(logits, dim=-1)


def test_entropy_matches_torch_categorical() -> None:
    probs = random_probs(8, 13)
    expected = Categorical(probs=probs).entropy()
    torch.testing.assert_close(information.entropy(probs), expected)


def test_entropy_of_uniform_is_log_k_and_one_hot_is_zero() -> None:
    for k in (1, 2, 10, 65):
        uniform = torch.full((k,), 1.0 / k, dtype=torch.float64)
        assert information.entropy(uniform).item() == pytest.approx(math.log(k))
        assert information.entropy(uniform, base=2).item() == pytest.approx(math.log2(k))
    one_hot = torch.tensor([0.0, 1.0, 0.0])
    assert information.entropy(one_hot).item() == 0.0


def test_entropy_of_fair_coin_is_one_bit() -> None:
    assert information.entropy(torch.tensor([0.5, 0.5]), base=2).item() == pytest.approx(1.0)


def test_entropy_is_at_most_log_k() -> None:
    probs = random_probs(100, 7, seed=1)
    assert (information.entropy(probs) <= math.log(7) + 1e-12).all()


def test_cross_entropy_matches_torch_functional_with_soft_targets() -> None:
    p = random_probs(6, 11, seed=2)
    logits = torch.randn(6, 11, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    q = torch.softmax(logits, dim=-1)
    expected = F.cross_entropy(logits, p, reduction="none")  # (6,)
    torch.testing.assert_close(information.cross_entropy(p, q), expected)


def test_cross_entropy_with_one_hot_p_is_negative_log_likelihood() -> None:
    q = random_probs(5, 9, seed=4)
    targets = torch.tensor([0, 3, 8, 2, 2])
    one_hot = F.one_hot(targets, num_classes=9).to(q.dtype)
    expected = F.nll_loss(q.log(), targets, reduction="none")
    torch.testing.assert_close(information.cross_entropy(one_hot, q), expected)


def test_cross_entropy_is_infinite_when_model_gives_zero_to_a_possible_outcome() -> None:
    p = torch.tensor([0.5, 0.5])
    q = torch.tensor([1.0, 0.0])
    assert math.isinf(information.cross_entropy(p, q).item())
    # ... but an outcome p never produces may have zero model probability.
    assert information.cross_entropy(q, p).item() == pytest.approx(math.log(2))


def test_kl_divergence_matches_torch_kl_div() -> None:
    p, q = random_probs(4, 20, seed=5), random_probs(4, 20, seed=6)
    expected = F.kl_div(q.log(), p, reduction="none").sum(dim=-1)  # input is log q, target p
    torch.testing.assert_close(information.kl_divergence(p, q), expected)


def test_kl_divergence_matches_torch_distributions() -> None:
    p, q = random_probs(3, 5, seed=7), random_probs(3, 5, seed=8)
    expected = torch.distributions.kl_divergence(Categorical(probs=p), Categorical(probs=q))
    torch.testing.assert_close(information.kl_divergence(p, q), expected)


def test_gibbs_inequality_kl_is_non_negative_and_zero_only_for_equal_distributions() -> None:
    p, q = random_probs(500, 6, seed=9), random_probs(500, 6, seed=10)
    kl = information.kl_divergence(p, q)
    assert (kl > 0).all()
    torch.testing.assert_close(information.kl_divergence(p, p), torch.zeros(500, dtype=p.dtype))


def test_cross_entropy_is_entropy_plus_kl() -> None:
    p, q = random_probs(10, 12, seed=11), random_probs(10, 12, seed=12)
    torch.testing.assert_close(
        information.cross_entropy(p, q), information.entropy(p) + information.kl_divergence(p, q)
    )


def test_kl_divergence_is_not_symmetric() -> None:
    p = torch.tensor([0.9, 0.1], dtype=torch.float64)
    q = torch.tensor([0.5, 0.5], dtype=torch.float64)
    assert information.kl_divergence(p, q).item() != pytest.approx(
        information.kl_divergence(q, p).item()
    )


def test_base_two_divides_by_log_two() -> None:
    p, q = random_probs(3, 4, seed=13), random_probs(3, 4, seed=14)
    torch.testing.assert_close(
        information.kl_divergence(p, q, base=2), information.kl_divergence(p, q) / math.log(2)
    )


def test_batch_dimensions_broadcast() -> None:
    p = random_probs(2, 3, 5, seed=15)  # (2, 3, 5)
    q = random_probs(5, seed=16)  # (5,): one model distribution for every row
    result = information.cross_entropy(p, q)
    assert result.shape == (2, 3)
    torch.testing.assert_close(result[1, 2], information.cross_entropy(p[1, 2], q))


def test_integer_counts_normalised_by_hand_are_accepted() -> None:
    assert information.entropy([0.25, 0.25, 0.5], base=2).item() == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (torch.tensor([1.2, -0.2]), "negative"),
        (torch.tensor([0.3, 0.3]), "sum to 1"),
        (torch.tensor([float("nan"), 1.0]), "NaN"),
        (torch.tensor(1.0), "last dimension"),
        (torch.zeros(3, 0), "last dimension"),
    ],
)
def test_invalid_distributions_raise_value_error(bad: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        information.entropy(bad)
    with pytest.raises(ValueError, match=message):
        information.kl_divergence(bad, bad)


def test_mismatched_vocabularies_raise_value_error() -> None:
    with pytest.raises(ValueError, match="same number of outcomes"):
        information.cross_entropy(random_probs(4), random_probs(5))
    with pytest.raises(ValueError, match="incompatible shapes"):
        information.kl_divergence(random_probs(2, 4), random_probs(3, 4))


@pytest.mark.parametrize("base", [0, 1, -2, math.inf])
def test_invalid_base_raises_value_error(base: float) -> None:
    with pytest.raises(ValueError, match="base"):
        information.entropy(torch.tensor([0.5, 0.5]), base=base)


def test_perplexity_is_exp_of_mean_nll_and_uniform_gives_k() -> None:
    assert information.perplexity(0.0) == 1.0
    assert information.perplexity(math.log(65)) == pytest.approx(65.0)
    assert information.perplexity(3.0, base=2) == pytest.approx(8.0)
    as_tensor = information.perplexity(torch.tensor([math.log(4.0), 0.0]))
    assert isinstance(as_tensor, torch.Tensor)
    torch.testing.assert_close(as_tensor, torch.tensor([4.0, 1.0]))


def test_perplexity_matches_exp_of_torch_cross_entropy_loss() -> None:
    generator = torch.Generator().manual_seed(17)
    logits = torch.randn(50, 10, generator=generator)
    targets = torch.randint(0, 10, (50,), generator=generator)
    loss = F.cross_entropy(logits, targets)
    assert information.perplexity(loss.item()) == pytest.approx(math.exp(loss.item()))


@pytest.mark.parametrize("bad", [-0.1, float("nan")])
def test_perplexity_rejects_negative_or_nan(bad: float) -> None:
    with pytest.raises(ValueError, match="non-negative"):
        information.perplexity(bad)


def test_temperature_one_is_plain_softmax() -> None:
    logits = torch.randn(4, 7, generator=torch.Generator().manual_seed(18))
    torch.testing.assert_close(
        information.softmax_with_temperature(logits, 1.0), torch.softmax(logits, dim=-1)
    )


def test_temperature_sharpens_below_one_and_flattens_above_one() -> None:
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0], dtype=torch.float64)
    entropies = [
        information.entropy(information.softmax_with_temperature(logits, t)).item()
        for t in (0.25, 0.5, 1.0, 2.0, 4.0)
    ]
    assert entropies == sorted(entropies)
    hot = information.softmax_with_temperature(logits, 1e6)
    torch.testing.assert_close(hot, torch.full((4,), 0.25, dtype=torch.float64), atol=1e-5, rtol=0)


def test_tiny_temperature_gives_finite_one_hot_probabilities() -> None:
    logits = torch.tensor([[3.0, 1.0, 2.0], [0.0, -5.0, 7.0]])
    probs = information.softmax_with_temperature(logits, 1e-30)
    assert torch.isfinite(probs).all()
    torch.testing.assert_close(probs, F.one_hot(logits.argmax(dim=-1), 3).float())


def test_sampling_at_temperature_near_zero_is_argmax() -> None:
    generator = torch.Generator().manual_seed(19)
    logits = torch.randn(200, 30, generator=generator)
    samples = information.sample_with_temperature(logits, 1e-4, generator=generator)
    assert torch.equal(samples, logits.argmax(dim=-1))


def test_sampling_frequencies_match_the_tempered_distribution() -> None:
    logits = torch.tensor([1.0, 0.0, -1.0, 0.5])
    temperature = 0.7
    expected = information.softmax_with_temperature(logits, temperature)
    rows = logits.expand(40_000, 4)  # (40000, 4): one draw per row
    samples = information.sample_with_temperature(
        rows, temperature, generator=torch.Generator().manual_seed(20)
    )
    frequencies = torch.bincount(samples, minlength=4).float() / samples.numel()
    torch.testing.assert_close(frequencies, expected, atol=0.01, rtol=0.0)


def test_sampling_shapes_and_seeded_reproducibility() -> None:
    logits = torch.randn(2, 3, 11)
    first = information.sample_with_temperature(logits, 1.3, torch.Generator().manual_seed(21))
    again = information.sample_with_temperature(logits, 1.3, torch.Generator().manual_seed(21))
    assert first.shape == (2, 3) and first.dtype == torch.int64
    assert torch.equal(first, again)
    assert information.sample_with_temperature(torch.zeros(5), 1.0).shape == ()


@pytest.mark.parametrize("bad", [0, 0.0, -1.0, float("nan"), float("inf"), "hot"])
def test_non_positive_or_invalid_temperature_raises_value_error(bad: object) -> None:
    with pytest.raises(ValueError, match="temperature"):
        information.sample_with_temperature(torch.zeros(3), bad)  # type: ignore[arg-type]
