"""Tests for llmzero.training.scaling: FLOP and memory formulas against measurements,
and scaling-law fits that recover known laws."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from llmzero.models.gpt import GPT, CausalSelfAttention, GPTConfig
from llmzero.training.scaling import (
    ScalingLaw,
    activation_bytes,
    approx_training_flops,
    count_training_flops,
    fit_power_law,
    fit_scaling_law,
    forward_flops_per_token,
    isoflop_minimum,
    measure_activation_bytes,
    training_flops_per_token,
    training_state_bytes,
    uses_fused_attention,
)

CONFIGS = [
    GPTConfig(vocab_size=128, block_size=64, n_layer=2, n_head=2, n_embd=32),
    GPTConfig(vocab_size=101, block_size=32, n_layer=3, n_head=4, n_embd=48),
    GPTConfig(vocab_size=50, block_size=16, n_layer=1, n_head=1, n_embd=8),
]


def _heads(attention: CausalSelfAttention, x: torch.Tensor):
    batch_size, seq, channels = x.shape  # (B, T, C)
    q, k, v = attention.c_attn(x).split(attention.n_embd, dim=2)  # each (B, T, C)
    shape = (batch_size, seq, attention.n_head, channels // attention.n_head)
    return [t.view(shape).transpose(1, 2) for t in (q, k, v)]  # each (B, H, T, D)


def _merge(attention: CausalSelfAttention, y: torch.Tensor) -> torch.Tensor:
    batch_size, _, seq, _ = y.shape  # (B, H, T, D)
    y = y.transpose(1, 2).contiguous().view(batch_size, seq, attention.n_embd)  # (B, T, C)
    return attention.resid_dropout(attention.c_proj(y))


def step_by_step_attention(
    self: CausalSelfAttention, x: torch.Tensor, cache: object = None, layer: int = 0
) -> torch.Tensor:
    """Part III's attention: scores, mask, softmax, weighted sum (the T x T matrix is kept)."""
    assert cache is None, "the patched attention is for training passes, without a KV cache"
    q, k, v = _heads(self, x)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, T, T)
    allowed = torch.ones(x.shape[1], x.shape[1], dtype=torch.bool, device=x.device).tril()
    weights = F.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
    return _merge(self, weights @ v)


def fused_attention(
    self: CausalSelfAttention, x: torch.Tensor, cache: object = None, layer: int = 0
) -> torch.Tensor:
    """The same function with PyTorch's fused kernel, which never stores the T x T matrix."""
    assert cache is None, "the patched attention is for training passes, without a KV cache"
    q, k, v = _heads(self, x)
    return _merge(self, F.scaled_dot_product_attention(q, k, v, is_causal=True))


@pytest.fixture(params=[False, True], ids=["step-by-step", "fused"])
def fused(request, monkeypatch) -> bool:
    """Run the test with each attention implementation patched into llmzero's GPT."""
    implementation = fused_attention if request.param else step_by_step_attention
    monkeypatch.setattr(CausalSelfAttention, "forward", implementation)
    return request.param


def batch(config: GPTConfig, batch_size: int, seq: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, config.vocab_size, (batch_size, seq), generator=generator)
    targets = torch.randint(0, config.vocab_size, (batch_size, seq), generator=generator)
    return idx, targets


# -- compute ------------------------------------------------------------------------------


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("seq", [5, 16])
def test_flop_formula_equals_flop_counter_forward_and_backward(config, seq, fused) -> None:
    torch.manual_seed(0)
    model = GPT(config)
    idx, targets = batch(config, 3, seq)
    counted = count_training_flops(model, idx, targets)
    forward = forward_flops_per_token(config, seq)
    assert counted["forward"] == sum(forward.values()) * 3 * seq
    training = training_flops_per_token(config, seq, fused_attention=fused)
    assert sum(counted.values()) == training * 3 * seq
    # The weights' backward pass is exactly two forward passes; fused attention recomputes
    # its scores, so its backward costs 2.5 forward passes instead of 2.
    extra_for_attention = forward["attention"] * 3 * seq // 2 if fused else 0
    assert counted["backward"] == 2 * counted["forward"] + extra_for_attention
    assert all(p.grad is None for p in model.parameters())  # the model is left as found


def test_uses_fused_attention_tells_the_two_implementations_apart(fused) -> None:
    assert uses_fused_attention(GPT(CONFIGS[0])) is fused


def test_six_nd_is_within_a_few_percent_for_a_large_model() -> None:
    # GPT-3 175B's shape (Brown et al., 2020): the 2N term dominates, 6ND is close.
    config = GPTConfig(vocab_size=50257, block_size=2048, n_layer=96, n_head=96, n_embd=12288)
    non_embedding = 12 * config.n_layer * config.n_embd**2
    exact = training_flops_per_token(config)
    assert 0.9 < approx_training_flops(non_embedding, 1) / exact < 1.0


def test_six_nd_underestimates_a_tiny_model_with_a_long_context() -> None:
    config = GPTConfig(vocab_size=128, block_size=256, n_layer=2, n_head=2, n_embd=16)
    non_embedding = 12 * config.n_layer * config.n_embd**2
    assert approx_training_flops(non_embedding, 1) < 0.5 * training_flops_per_token(config)


def test_flop_functions_reject_bad_input() -> None:
    config = CONFIGS[0]
    with pytest.raises(ValueError, match="block_size"):
        forward_flops_per_token(config, config.block_size + 1)
    with pytest.raises(ValueError, match=">= 0"):
        approx_training_flops(-1, 10)
    model = GPT(config)
    idx, _ = batch(config, 1, 4)
    with pytest.raises(ValueError, match="targets"):
        count_training_flops(model, idx, None)


# -- memory -------------------------------------------------------------------------------


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize(("batch_size", "seq"), [(1, 7), (4, 16)])
def test_activation_formula_equals_saved_tensor_measurement(config, batch_size, seq, fused) -> None:
    torch.manual_seed(0)
    model = GPT(config)
    idx, targets = batch(config, batch_size, seq)
    measured = measure_activation_bytes(model, idx, targets)
    by_formula = activation_bytes(config, batch_size, seq, fused_attention=fused)
    assert measured == sum(by_formula.values())


def test_fused_attention_saves_the_t_by_t_weights() -> None:
    config = GPTConfig(vocab_size=50, block_size=256, n_layer=2, n_head=4, n_embd=32)
    step_by_step = sum(activation_bytes(config, 2, 256).values())
    fused = sum(activation_bytes(config, 2, 256, fused_attention=True).values())
    weights_and_masks = 2 * 256 * 2 * 4 * (256 - 1) * 4 + 2 * 256 * 256
    assert step_by_step - fused == weights_and_masks


def test_measured_activations_leave_out_parameters_and_count_views_once() -> None:
    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(4, 3, bias=False)

        def forward(self, x, targets):
            x = x.float()  # a new (2, 4) tensor: saved by the linear layer
            h = self.linear(x)  # saves x (the weight is a parameter: not counted)
            return h, (h.view(-1) * h.view(-1)).sum()  # saves two views of one (2, 3) block

    model = Tiny()
    idx = torch.ones(2, 4, dtype=torch.long)
    assert measure_activation_bytes(model, idx, None) == (2 * 4 + 2 * 3) * 4


def test_activation_bytes_rejects_dropout_and_bad_batch() -> None:
    with pytest.raises(ValueError, match="dropout"):
        activation_bytes(GPTConfig(block_size=8, n_layer=1, n_head=1, n_embd=4, dropout=0.1), 1)
    with pytest.raises(ValueError, match="batch_size"):
        activation_bytes(CONFIGS[0], 0)


@pytest.mark.parametrize("mixed_precision", [False, True])
def test_training_state_is_sixteen_bytes_per_parameter(mixed_precision) -> None:
    parts = training_state_bytes(1000, mixed_precision=mixed_precision)
    assert sum(parts.values()) == 16_000


def test_training_state_formula_matches_adamw_tensors() -> None:
    torch.manual_seed(0)
    model = GPT(CONFIGS[0])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    idx, targets = batch(CONFIGS[0], 2, 8)
    model(idx, targets)[1].backward()
    optimizer.step()
    measured = {
        "weights": sum(p.numel() * p.element_size() for p in model.parameters()),
        "gradients": sum(p.grad.numel() * p.grad.element_size() for p in model.parameters()),
        "optimizer state": sum(
            value.numel() * value.element_size()
            for state in optimizer.state.values()
            for value in state.values()
            if value.dim() > 0  # m and v; the step counters are scalars
        ),
    }
    assert measured == training_state_bytes(model.num_parameters())


# -- scaling laws -------------------------------------------------------------------------

TRUE_LAW = ScalingLaw(E=1.7, A=400.0, B=1200.0, alpha=0.34, beta=0.28)
GRID_N = np.repeat([1e6, 3e6, 1e7, 3e7, 1e8], 4)
GRID_D = np.tile([2e7, 6e7, 2e8, 6e8], 5)


def test_fit_recovers_a_known_law_from_exact_losses() -> None:
    fitted = fit_scaling_law(GRID_N, GRID_D, TRUE_LAW.loss(GRID_N, GRID_D))
    for name in ("E", "A", "B", "alpha", "beta"):
        assert getattr(fitted, name) == pytest.approx(getattr(TRUE_LAW, name), rel=1e-4)
    assert fitted.rms_log_residual < 1e-8


def test_fit_recovers_exponents_within_tolerance_from_noisy_losses() -> None:
    rng = np.random.default_rng(0)
    noisy = TRUE_LAW.loss(GRID_N, GRID_D) * np.exp(rng.normal(0.0, 0.003, GRID_N.shape))
    fitted = fit_scaling_law(GRID_N, GRID_D, noisy)
    assert abs(fitted.alpha - TRUE_LAW.alpha) < 0.05
    assert abs(fitted.beta - TRUE_LAW.beta) < 0.05
    # The standard errors are honest: the truth lies within 3 of them.
    assert abs(fitted.alpha - TRUE_LAW.alpha) < 3 * fitted.stderr["alpha"]
    assert abs(fitted.beta - TRUE_LAW.beta) < 3 * fitted.stderr["beta"]


def test_fit_with_a_fixed_irreducible_loss_and_a_given_start() -> None:
    losses = TRUE_LAW.loss(GRID_N, GRID_D)
    held = fit_scaling_law(GRID_N, GRID_D, losses, fixed_E=TRUE_LAW.E)
    assert held.E == TRUE_LAW.E and "log E" not in held.stderr
    assert held.alpha == pytest.approx(TRUE_LAW.alpha, rel=1e-4)
    assert held.beta == pytest.approx(TRUE_LAW.beta, rel=1e-4)
    wrong = fit_scaling_law(GRID_N, GRID_D, losses, fixed_E=0.5 * TRUE_LAW.E)
    assert wrong.rms_log_residual > 10 * held.rms_log_residual  # a wrong E fits worse
    near = ScalingLaw(E=1.6, A=300.0, B=1000.0, alpha=0.3, beta=0.3)
    refit = fit_scaling_law(GRID_N, GRID_D, losses, start=near)
    assert refit.alpha == pytest.approx(TRUE_LAW.alpha, rel=1e-3)
    with pytest.raises(ValueError, match="fixed_E"):
        fit_scaling_law(GRID_N, GRID_D, losses, fixed_E=0.0)


def test_fit_needs_enough_runs_and_positive_values() -> None:
    with pytest.raises(ValueError, match="at least 6"):
        fit_scaling_law(GRID_N[:5], GRID_D[:5], TRUE_LAW.loss(GRID_N[:5], GRID_D[:5]))
    with pytest.raises(ValueError, match="positive"):
        fit_scaling_law(GRID_N, GRID_D, -TRUE_LAW.loss(GRID_N, GRID_D))
    with pytest.raises(ValueError, match="same length"):
        fit_scaling_law(GRID_N, GRID_D[:-1], TRUE_LAW.loss(GRID_N, GRID_D))


def test_compute_optimal_allocation_minimises_the_loss_at_fixed_compute() -> None:
    compute = 1e21
    n_opt, d_opt = TRUE_LAW.compute_optimal(compute)
    assert 6 * n_opt * d_opt == pytest.approx(compute)
    sizes = np.logspace(np.log10(n_opt) - 1, np.log10(n_opt) + 1, 20001)
    best_on_grid = sizes[np.argmin(TRUE_LAW.loss(sizes, compute / (6 * sizes)))]
    assert n_opt == pytest.approx(best_on_grid, rel=1e-3)


def test_compute_optimal_size_grows_as_compute_to_beta_over_alpha_plus_beta() -> None:
    n_small, _ = TRUE_LAW.compute_optimal(1e20)
    n_large, _ = TRUE_LAW.compute_optimal(1e22)
    exponent = math.log(n_large / n_small) / math.log(100)
    assert exponent == pytest.approx(TRUE_LAW.beta / (TRUE_LAW.alpha + TRUE_LAW.beta))


def test_power_law_fit_recovers_coefficient_and_exponent() -> None:
    x = np.logspace(1, 5, 9)
    a, b, b_stderr = fit_power_law(x, 3.0 * x**-0.076)
    assert a == pytest.approx(3.0) and b == pytest.approx(-0.076)
    assert b_stderr < 1e-10
    rng = np.random.default_rng(1)
    _, b_noisy, stderr_noisy = fit_power_law(x, 3.0 * x**-0.5 * np.exp(rng.normal(0, 0.02, 9)))
    assert abs(b_noisy + 0.5) < 3 * stderr_noisy
    assert math.isnan(fit_power_law([1.0, 10.0], [2.0, 1.0])[2])  # two points: no error bar
    with pytest.raises(ValueError, match="distinct"):
        fit_power_law([2.0, 2.0], [1.0, 3.0])


def test_isoflop_minimum_finds_the_vertex_and_refuses_a_slope() -> None:
    sizes = np.array([1e5, 3e5, 1e6, 3e6, 1e7])
    losses = 2.0 + 0.1 * (np.log(sizes) - np.log(8e5)) ** 2
    assert isoflop_minimum(sizes, losses) == pytest.approx(8e5)
    with pytest.raises(ValueError, match="no minimum"):
        isoflop_minimum(sizes, 3.0 - 0.1 * np.log(sizes))  # bigger is always better
    with pytest.raises(ValueError, match="three"):
        isoflop_minimum(sizes[:2], losses[:2])
