"""Probability and information theory for language models.

Chapter 3 of Part I builds each function here step by step on a bigram model of
Shakespeare, then checks that this module gives the same numbers. Distributions are
probability tensors whose **last dimension** runs over the outcomes (the vocabulary);
any leading dimensions are a batch, so ``probs`` of shape ``(batch, vocab)`` gives one
result per row::

    from llmzero.core import information

    information.entropy(probs)                 # (batch,) in nats
    information.cross_entropy(p, q, base=2)    # (batch,) in bits
    information.kl_divergence(p, q)            # (batch,) in nats, always >= 0
    information.perplexity(mean_nll)           # exp(mean negative log-likelihood)
    information.sample_with_temperature(logits, temperature=0.8, generator=gen)

Logarithms are natural (results in **nats**) unless ``base`` is given (``base=2`` gives
bits). Terms with zero probability follow the convention ``0 log 0 = 0``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "cross_entropy",
    "entropy",
    "kl_divergence",
    "perplexity",
    "sample_with_temperature",
    "softmax_with_temperature",
]

# How far a distribution's sum may be from 1 before it is rejected (float32 rounding of a
# sum over a large vocabulary stays well inside this).
_SUM_TOLERANCE = 1e-4


def _as_probs(probs: Tensor, name: str) -> Tensor:
    """Return ``probs`` as a floating tensor after checking it is a distribution on its last dim."""
    probs = torch.as_tensor(probs)
    if not torch.is_floating_point(probs):
        probs = probs.to(torch.get_default_dtype())
    if probs.dim() == 0 or probs.shape[-1] == 0:
        raise ValueError(
            f"{name} needs a last dimension with at least one outcome, "
            f"got shape {tuple(probs.shape)}"
        )
    if torch.isnan(probs).any():
        raise ValueError(f"{name} contains NaN")
    if (probs < 0).any():
        raise ValueError(f"{name} contains negative probabilities (min {probs.min().item():.3g})")
    sums = probs.sum(dim=-1)  # (...)
    if not torch.allclose(sums, torch.ones_like(sums), atol=_SUM_TOLERANCE, rtol=0.0):
        worst = sums[(sums - 1).abs().argmax()] if sums.dim() else sums
        raise ValueError(
            f"{name} must sum to 1 along the last dimension (found a sum of {worst.item():.6g})"
        )
    return probs


def _log_base_divisor(base: float | None) -> float:
    """The number to divide a natural log by to get a log in ``base`` (1.0 for nats)."""
    if base is None:
        return 1.0
    if base <= 0 or base == 1 or not math.isfinite(base):
        raise ValueError(f"base must be positive, finite and not 1, got {base}")
    return math.log(base)


def _check_pair(p: Tensor, q: Tensor) -> None:
    """Check that two distributions have the same outcomes and broadcastable batch shapes."""
    if p.shape[-1] != q.shape[-1]:
        raise ValueError(
            f"p and q must have the same number of outcomes (last dim), got "
            f"{p.shape[-1]} and {q.shape[-1]}"
        )
    try:
        torch.broadcast_shapes(p.shape, q.shape)
    except RuntimeError as error:
        raise ValueError(
            f"p and q have incompatible shapes {tuple(p.shape)} and {tuple(q.shape)}"
        ) from error


def entropy(probs: Tensor, base: float | None = None) -> Tensor:
    """Shannon entropy ``H(p) = -sum_x p(x) log p(x)`` of each distribution on the last dim.

    Args:
        probs: probabilities, shape ``(..., vocab)``; each row must be non-negative and sum to 1.
        base: logarithm base (``2`` for bits); ``None`` means natural log (nats).

    Returns:
        The entropies, shape ``(...)``. Zero for a one-hot row, ``log(vocab)`` for a uniform one.

    Raises:
        ValueError: if ``probs`` is not a probability distribution along its last dimension.
    """
    probs = _as_probs(probs, "probs")
    # xlogy(p, p) = p * log(p), with the convention 0 * log(0) = 0.
    return -torch.special.xlogy(probs, probs).sum(dim=-1) / _log_base_divisor(base)  # (...)


def cross_entropy(p: Tensor, q: Tensor, base: float | None = None) -> Tensor:
    """Cross-entropy ``H(p, q) = -sum_x p(x) log q(x)``: the average surprise of ``q`` on ``p``.

    Args:
        p: the true (data) distribution, shape ``(..., vocab)``.
        q: the model's distribution, shape ``(..., vocab)`` (batch dims broadcast with ``p``'s).
        base: logarithm base (``2`` for bits); ``None`` means natural log (nats).

    Returns:
        The cross-entropies, shape ``(...)``. It is ``inf`` where ``q`` gives zero probability
        to an outcome that ``p`` gives positive probability.

    Raises:
        ValueError: if ``p`` or ``q`` is not a distribution, or their shapes do not match.
    """
    p, q = _as_probs(p, "p"), _as_probs(q, "q")
    _check_pair(p, q)
    return -torch.special.xlogy(p, q).sum(dim=-1) / _log_base_divisor(base)  # (...)


def kl_divergence(p: Tensor, q: Tensor, base: float | None = None) -> Tensor:
    """Kullback–Leibler divergence ``KL(p || q) = sum_x p(x) log(p(x) / q(x))``.

    It equals ``cross_entropy(p, q) - entropy(p)``: the extra surprise paid for using ``q``
    when the data come from ``p``. It is never negative (Gibbs' inequality) and is zero only
    when ``p == q``. It is not symmetric: ``KL(p || q) != KL(q || p)`` in general.

    Args:
        p: the true (data) distribution, shape ``(..., vocab)``.
        q: the approximating distribution, shape ``(..., vocab)``.
        base: logarithm base (``2`` for bits); ``None`` means natural log (nats).

    Returns:
        The divergences, shape ``(...)``; ``inf`` where ``q`` is zero but ``p`` is not.

    Raises:
        ValueError: if ``p`` or ``q`` is not a distribution, or their shapes do not match.
    """
    p, q = _as_probs(p, "p"), _as_probs(q, "q")
    _check_pair(p, q)
    # Both terms use 0 * log(anything) = 0, so outcomes with p(x) = 0 contribute nothing.
    per_outcome = torch.special.xlogy(p, p) - torch.special.xlogy(p, q)  # (..., vocab)
    return per_outcome.sum(dim=-1) / _log_base_divisor(base)  # (...)


def perplexity(mean_nll: float | Tensor, base: float | None = None) -> float | Tensor:
    """Perplexity ``base ** mean_nll``: the model's average branching factor.

    Args:
        mean_nll: the mean negative log-likelihood per token (the cross-entropy of the model
            on the text), a float or a tensor; must be non-negative.
        base: the base of the logarithm ``mean_nll`` was measured in (``2`` if in bits);
            ``None`` means nats, so the result is ``exp(mean_nll)``.

    Returns:
        The perplexity, a float for a float input and a tensor for a tensor input. A model
        that is uniform over ``K`` outcomes has perplexity exactly ``K``.

    Raises:
        ValueError: if ``mean_nll`` is negative or NaN (a discrete model's NLL cannot be).
    """
    value = torch.as_tensor(mean_nll, dtype=torch.float64)
    if torch.isnan(value).any() or (value < 0).any():
        raise ValueError(f"mean_nll must be a non-negative number, got {mean_nll}")
    scale = _log_base_divisor(base)
    if isinstance(mean_nll, Tensor):
        return torch.exp(mean_nll * scale)
    return math.exp(float(mean_nll) * scale)


def softmax_with_temperature(logits: Tensor, temperature: float) -> Tensor:
    """The distribution ``softmax(logits / temperature)`` over the last dimension.

    Temperature below 1 sharpens the distribution (towards the argmax), above 1 flattens it
    (towards uniform). The maximum logit is subtracted before dividing, so even a tiny
    temperature gives finite probabilities instead of ``inf / inf = nan``.

    Args:
        logits: unnormalised log-probabilities, shape ``(..., vocab)``.
        temperature: a positive number.

    Returns:
        Probabilities of the same shape as ``logits``.

    Raises:
        ValueError: if ``temperature`` is not a positive finite number.
    """
    try:
        value = float(temperature)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"temperature must be a positive finite number, got {temperature!r}; "
            "for greedy decoding take the argmax of the logits instead"
        )
    logits = torch.as_tensor(logits)
    shifted = logits - logits.max(dim=-1, keepdim=True).values  # (..., vocab), max is 0
    return torch.softmax(shifted / value, dim=-1)  # (..., vocab)


def sample_with_temperature(
    logits: Tensor, temperature: float, generator: torch.Generator | None = None
) -> Tensor:
    """Draw one outcome per row from ``softmax(logits / temperature)``.

    Args:
        logits: unnormalised log-probabilities, shape ``(..., vocab)``.
        temperature: a positive number; small values approach ``argmax`` (greedy decoding),
            ``1`` samples from the model's own distribution, large values approach uniform.
        generator: an optional ``torch.Generator`` for reproducible draws.

    Returns:
        Sampled indices (``int64``), shape ``(...)`` (a 0-d tensor for a 1-d ``logits``).

    Raises:
        ValueError: if ``temperature`` is not a positive finite number.
    """
    probs = softmax_with_temperature(logits, temperature)  # (..., vocab)
    flat = probs.reshape(-1, probs.shape[-1])  # (rows, vocab): multinomial wants 1-d or 2-d
    draws = torch.multinomial(flat, num_samples=1, generator=generator)  # (rows, 1)
    return draws.reshape(probs.shape[:-1])  # (...)
