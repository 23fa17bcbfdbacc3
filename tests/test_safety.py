import math

import numpy as np
import pytest
import torch

from llmzero.applications import safety


def test_top_ranked_canary_has_maximal_exposure():
    losses = torch.tensor([5.0, 1.0, 3.0, 4.0])
    assert safety.exposure(1.0, losses) == pytest.approx(2.0)  # log2(4) - log2(1)


def test_worst_ranked_canary_has_zero_exposure():
    assert safety.exposure(9.0, [1.0, 2.0, 9.0]) == pytest.approx(0.0, abs=1e-12)
    assert safety.exposure_from_rank(3, 8) == pytest.approx(3 - math.log2(3))


def test_secrets_are_reproducible_digits():
    first = safety.random_secret(6, np.random.default_rng(0))
    assert first == safety.random_secret(6, np.random.default_rng(0))
    assert len(first) == 6 and first.isdigit()
    assert safety.all_secrets(2)[:3] == ["00", "01", "02"] and len(safety.all_secrets(3)) == 1000


def test_bad_rank_raises():
    with pytest.raises(ValueError, match="rank"):
        safety.exposure_from_rank(0, 10)


def test_weat_on_constructed_vectors():
    # X points towards A, Y towards B: a large positive effect and a small p-value.
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    x = torch.tensor([[1.0, 0.1], [1.0, 0.2], [1.0, 0.3], [1.0, 0.15]])
    y = x.flip(dims=[1])
    effect = safety.weat_effect_size(x, y, a, b)
    assert effect > 1.5
    assert safety.weat_effect_size(y, x, a, b) == pytest.approx(-effect)
    p_value = safety.weat_permutation_test(x, y, a, b, n_permutations=2000)
    assert p_value == pytest.approx(1 / 70, abs=0.01)  # only 1 of C(8,4) = 70 splits is as extreme


def test_weat_without_association_is_not_significant():
    torch.manual_seed(0)
    x, y, a, b = (torch.randn(20, 16) for _ in range(4))
    assert safety.weat_permutation_test(x, y, a, b, n_permutations=500) > 0.01
