"""Safety measurements: canaries and their exposure (memorization), and WEAT (bias).

Canaries follow Carlini et al. (2019), *The Secret Sharer*: a template such as
``"my pin is 4271"`` with a random secret is planted in the training data, and the model's
*exposure* to it is how far the true secret ranks above the other candidates. WEAT follows
Caliskan et al. (2017): an effect size between two target word sets and two attribute word
sets, and a permutation test over the target words.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch


def random_secret(n_digits: int, rng: np.random.Generator) -> str:
    """A secret of ``n_digits`` random decimal digits drawn with ``rng`` (leading zeros kept)."""
    if n_digits < 1:
        raise ValueError(f"n_digits must be at least 1, got {n_digits}.")
    return "".join(str(d) for d in rng.integers(0, 10, size=n_digits))


def all_secrets(n_digits: int) -> list[str]:
    """Every secret of ``n_digits`` digits, in order: the candidate space of exposure."""
    if not 1 <= n_digits <= 6:
        raise ValueError(f"n_digits must be between 1 and 6 (10**n candidates), got {n_digits}.")
    return [f"{i:0{n_digits}d}" for i in range(10**n_digits)]


def exposure_from_rank(rank: int, n_candidates: int) -> float:
    """Exposure ``log2(n_candidates) - log2(rank)``: 0 for the worst rank, ``log2(n)`` for the best.

    ``rank`` counts from 1 (1 = the true secret is the model's most likely candidate).
    """
    if not 1 <= rank <= n_candidates:
        raise ValueError(f"rank must be between 1 and n_candidates={n_candidates}, got {rank}.")
    return math.log2(n_candidates) - math.log2(rank)


def exposure(true_loss: float, candidate_losses: Sequence[float] | torch.Tensor) -> float:
    """Exposure of a canary whose loss (negative log-likelihood) is ``true_loss``.

    ``candidate_losses`` are the losses of all candidates, the true secret included. The rank
    is 1 plus the number of candidates with a strictly lower loss (ties favour the canary).
    """
    losses = torch.as_tensor(candidate_losses, dtype=torch.float64).flatten()
    if losses.numel() == 0:
        raise ValueError("candidate_losses is empty: pass the losses of every candidate.")
    rank = 1 + int((losses < true_loss).sum())
    return exposure_from_rank(rank, losses.numel())


def _cosine(words: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
    words = torch.nn.functional.normalize(words.double(), dim=-1)
    attributes = torch.nn.functional.normalize(attributes.double(), dim=-1)
    return words @ attributes.T  # (n_words, n_attributes)


def weat_association(
    words: torch.Tensor, attributes_a: torch.Tensor, attributes_b: torch.Tensor
) -> torch.Tensor:
    """s(w, A, B): mean cosine of each word with set A minus its mean cosine with set B."""
    return _cosine(words, attributes_a).mean(dim=1) - _cosine(words, attributes_b).mean(dim=1)


def weat_effect_size(
    targets_x: torch.Tensor,
    targets_y: torch.Tensor,
    attributes_a: torch.Tensor,
    attributes_b: torch.Tensor,
) -> float:
    """WEAT's effect size (a Cohen's d): difference of the mean associations of X and Y
    with A-versus-B, divided by the standard deviation of the associations of all of X ∪ Y.

    Each argument is a ``(n_words, dim)`` tensor of embeddings, one row per word.
    """
    s_x = weat_association(targets_x, attributes_a, attributes_b)
    s_y = weat_association(targets_y, attributes_a, attributes_b)
    spread = torch.cat([s_x, s_y]).std(unbiased=True)
    if spread == 0:
        raise ValueError("All associations are equal: the effect size is undefined.")
    return float((s_x.mean() - s_y.mean()) / spread)


def weat_permutation_test(
    targets_x: torch.Tensor,
    targets_y: torch.Tensor,
    attributes_a: torch.Tensor,
    attributes_b: torch.Tensor,
    n_permutations: int = 10_000,
    seed: int = 0,
) -> float:
    """One-sided p-value of WEAT's test statistic under random re-splits of X ∪ Y.

    The statistic is ``sum s(x) - sum s(y)``; the p-value is the share of random equal-size
    partitions (plus the observed one, so it is never 0) whose statistic is at least as large.
    """
    associations = torch.cat(
        [
            weat_association(targets_x, attributes_a, attributes_b),
            weat_association(targets_y, attributes_a, attributes_b),
        ]
    )
    n_x = targets_x.shape[0]
    observed = associations[:n_x].sum() - associations[n_x:].sum()
    generator = torch.Generator().manual_seed(seed)
    orders = torch.stack(
        [torch.randperm(len(associations), generator=generator) for _ in range(n_permutations)]
    )  # (n_permutations, n_words)
    shuffled = associations[orders]
    statistics = shuffled[:, :n_x].sum(dim=1) - shuffled[:, n_x:].sum(dim=1)
    return float(((statistics >= observed - 1e-12).sum() + 1) / (n_permutations + 1))
