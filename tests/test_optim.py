"""The from-scratch optimizers equal torch.optim step by step; the schedule has its shape."""

from __future__ import annotations

import copy
import itertools
import math

import pytest
import torch
from torch import nn

from llmzero.core import optim

N_STEPS = 200


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models are tiny: one thread avoids thread overhead (10x faster on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_model(seed: int = 0) -> nn.Module:
    """A small MLP: its parameters get gradients of very different sizes, as Adam needs."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3))


def make_batches(n_steps: int, seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The same random mini-batches for both optimizers: inputs (8, 5), targets (8,)."""
    generator = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(8, 5, generator=generator), torch.randint(0, 3, (8,), generator=generator))
        for _ in range(n_steps)
    ]


def max_param_diff_over_training(ours_cls, torch_cls, kwargs: dict) -> float:
    """Train two copies of one model side by side; return the largest |Δθ| seen at any step."""
    model_ours = make_model()
    model_ref = copy.deepcopy(model_ours)
    opt_ours = ours_cls(model_ours.parameters(), **kwargs)
    opt_ref = torch_cls(model_ref.parameters(), foreach=False, **kwargs)
    worst = 0.0
    for inputs, targets in make_batches(N_STEPS):
        for model, opt in ((model_ours, opt_ours), (model_ref, opt_ref)):
            opt.zero_grad()
            nn.functional.cross_entropy(model(inputs), targets).backward()
            opt.step()
        for p_ours, p_ref in zip(model_ours.parameters(), model_ref.parameters(), strict=True):
            worst = max(worst, (p_ours - p_ref).abs().max().item())
    return worst


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": 0.1},
        {"lr": 0.1, "weight_decay": 0.01},
        {"lr": 0.05, "momentum": 0.9},
        {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01},
        {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
    ],
)
def test_sgd_matches_torch_step_by_step(kwargs):
    assert max_param_diff_over_training(optim.SGD, torch.optim.SGD, kwargs) < 1e-6


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": 1e-2},
        {"lr": 1e-2, "betas": (0.8, 0.95), "eps": 1e-6},
        {"lr": 1e-2, "weight_decay": 0.1},
    ],
)
def test_adam_matches_torch_step_by_step(kwargs):
    assert max_param_diff_over_training(optim.Adam, torch.optim.Adam, kwargs) < 1e-6


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": 1e-2},  # default weight_decay=0.01 on both sides
        {"lr": 1e-2, "weight_decay": 0.0},
        {"lr": 1e-2, "weight_decay": 0.5, "betas": (0.9, 0.95)},
    ],
)
def test_adamw_matches_torch_step_by_step(kwargs):
    assert max_param_diff_over_training(optim.AdamW, torch.optim.AdamW, kwargs) < 1e-6


def test_adam_and_adamw_differ_when_weight_decay_is_on():
    """Coupled L2 (Adam) and decoupled decay (AdamW) are different algorithms."""
    models = []
    for cls in (optim.Adam, optim.AdamW):
        model = make_model()
        opt = cls(model.parameters(), lr=1e-2, weight_decay=0.5)
        for inputs, targets in make_batches(20):
            opt.zero_grad()
            nn.functional.cross_entropy(model(inputs), targets).backward()
            opt.step()
        models.append(model)
    diffs = [
        (a - b).abs().max().item()
        for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True)
    ]
    assert max(diffs) > 1e-3


def test_sgd_weight_decay_equals_l2_penalty_in_the_loss():
    """For SGD, weight_decay=λ is the same as adding λ/2 ‖θ‖² to the loss."""
    lam = 0.1
    model_wd, model_l2 = make_model(), make_model()
    opt_wd = optim.SGD(model_wd.parameters(), lr=0.1, weight_decay=lam)
    opt_l2 = optim.SGD(model_l2.parameters(), lr=0.1)
    for inputs, targets in make_batches(50):
        opt_wd.zero_grad()
        nn.functional.cross_entropy(model_wd(inputs), targets).backward()
        opt_wd.step()
        opt_l2.zero_grad()
        penalty = sum((p**2).sum() for p in model_l2.parameters())
        (nn.functional.cross_entropy(model_l2(inputs), targets) + lam / 2 * penalty).backward()
        opt_l2.step()
    for a, b in zip(model_wd.parameters(), model_l2.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_parameters_without_gradients_are_left_alone():
    frozen = nn.Parameter(torch.ones(3))
    used = nn.Parameter(torch.ones(3))
    for cls in (optim.SGD, optim.Adam, optim.AdamW):
        opt = cls([frozen, used], lr=0.1)
        opt.zero_grad()
        used.sum().backward()
        opt.step()
        assert torch.equal(frozen, torch.ones(3))
        assert not torch.equal(used, torch.ones(3))


def test_optimizers_work_with_lambda_lr_scheduler():
    param = nn.Parameter(torch.zeros(2))
    opt = optim.AdamW([param], lr=0.5)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: optim.warmup_cosine(s, 10, 100))
    seen = []
    for _ in range(100):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen[0] == 0.0
    assert seen[10] == pytest.approx(0.5)
    assert seen[50] == pytest.approx(0.5 * optim.warmup_cosine(50, 10, 100))


def test_invalid_hyperparameters_are_rejected():
    param = nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError):
        optim.SGD([param], lr=-1.0)
    with pytest.raises(ValueError):
        optim.SGD([param], lr=0.1, nesterov=True)
    with pytest.raises(ValueError):
        optim.Adam([param], betas=(0.9, 1.0))


def test_warmup_cosine_starts_at_zero_and_peaks_at_end_of_warmup():
    assert optim.warmup_cosine(0, 100, 1000) == 0.0
    assert optim.warmup_cosine(50, 100, 1000) == pytest.approx(0.5)
    assert optim.warmup_cosine(100, 100, 1000) == pytest.approx(1.0)
    warmup = [optim.warmup_cosine(s, 100, 1000) for s in range(101)]
    assert all(a < b for a, b in itertools.pairwise(warmup))  # strictly rising


@pytest.mark.parametrize("min_lr_ratio", [0.0, 0.1, 0.5])
def test_warmup_cosine_ends_at_min_lr_ratio_and_stays_there(min_lr_ratio):
    assert optim.warmup_cosine(1000, 100, 1000, min_lr_ratio) == pytest.approx(min_lr_ratio)
    assert optim.warmup_cosine(5000, 100, 1000, min_lr_ratio) == pytest.approx(min_lr_ratio)


@pytest.mark.parametrize("min_lr_ratio", [0.0, 0.1])
def test_warmup_cosine_is_monotone_after_warmup_and_within_bounds(min_lr_ratio):
    values = [optim.warmup_cosine(s, 100, 1000, min_lr_ratio) for s in range(100, 1200)]
    assert all(a >= b for a, b in itertools.pairwise(values))
    assert all(min_lr_ratio <= v <= 1.0 for v in values)
    # halfway through the decay the cosine is exactly halfway between peak and floor
    half = optim.warmup_cosine(550, 100, 1000, min_lr_ratio)
    assert half == pytest.approx((1.0 + min_lr_ratio) / 2)


def test_warmup_cosine_without_warmup_starts_at_peak():
    assert optim.warmup_cosine(0, 0, 10) == 1.0
    assert math.isclose(optim.warmup_cosine(10, 0, 10), 0.0, abs_tol=1e-12)


def test_warmup_cosine_rejects_bad_arguments():
    with pytest.raises(ValueError):
        optim.warmup_cosine(0, 10, 5)
    with pytest.raises(ValueError):
        optim.warmup_cosine(0, 1, 5, min_lr_ratio=1.5)
