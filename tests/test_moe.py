"""Tests for llmzero.models.moe: a one-expert MoE is the dense MLP, the vectorised dispatch
equals a loop over tokens (with and without dropped tokens), the balancing loss equals
Hugging Face's Mixtral loss up to its factor top_k, capacity and parameter counts follow
their formulas, the router is trained, and bad input gets a clear error."""

from __future__ import annotations

import pytest
import torch
from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func

from llmzero.models.gpt import GPT, MLP, GPTConfig
from llmzero.models.moe import (
    GPTMoE,
    MoEConfig,
    MoELayer,
    expert_capacity,
    load_balancing_loss,
    moe_parameter_counts,
    routing_entropy,
)


def per_token_moe(layer: MoELayer, x: torch.Tensor) -> torch.Tensor:
    """The reference: one token and one choice at a time, first choices before second ones,
    an expert accepting tokens until its capacity is full."""
    tokens = x.reshape(-1, x.shape[-1])  # (N, C)
    _, expert_index, gates = layer.router(tokens)  # (N, k) each
    capacity = expert_capacity(
        len(tokens), layer.config.n_experts, layer.config.top_k, layer.capacity_factor
    )
    used = [0] * layer.config.n_experts
    out = torch.zeros_like(tokens)
    for choice in range(layer.config.top_k):
        for n in range(len(tokens)):
            e = int(expert_index[n, choice])
            if used[e] < capacity:
                used[e] += 1
                out[n] += gates[n, choice] * layer.expert(e, tokens[n : n + 1])[0]
    return out.reshape(x.shape)


def test_one_expert_equals_the_dense_mlp():
    torch.manual_seed(0)
    mlp = MLP(GPTConfig(n_embd=32, n_head=4))
    layer = MoELayer(MoEConfig(n_embd=32, n_experts=1, top_k=1, expert_hidden=128))
    layer.load_dense_mlp(mlp)
    x = torch.randn(2, 7, 32)
    out, stats = layer(x)
    torch.testing.assert_close(out, mlp(x), atol=1e-6, rtol=1e-5)
    assert stats.dropped_fraction == 0.0 and stats.aux_loss.item() == pytest.approx(1.0)


@pytest.mark.parametrize("capacity_factor", [None, 1.0, 0.5])
@pytest.mark.parametrize("top_k", [1, 2])
def test_vectorised_dispatch_equals_a_loop_over_tokens(capacity_factor, top_k):
    torch.manual_seed(1)
    layer = MoELayer(
        MoEConfig(n_embd=16, n_experts=4, top_k=top_k, capacity_factor=capacity_factor)
    )
    with torch.no_grad():
        layer.router.gate.weight.mul_(50)  # confident, unbalanced routing: drops happen
    x = torch.randn(3, 11, 16)
    out, stats = layer(x)
    torch.testing.assert_close(out, per_token_moe(layer, x), atol=1e-6, rtol=1e-5)
    n_assignments = x.shape[0] * x.shape[1] * top_k
    slots = layer.config.n_experts * stats.capacity
    assert stats.dropped_fraction >= 1 - slots / n_assignments - 1e-6  # too few slots
    if capacity_factor is None:
        assert stats.dropped_fraction == 0.0


def test_balancing_loss_equals_mixtral_divided_by_top_k():
    torch.manual_seed(2)
    logits = torch.randn(40, 8)
    probs = logits.softmax(dim=-1)
    chosen = probs.topk(2, dim=-1).indices
    ours = load_balancing_loss(probs, chosen)
    theirs = load_balancing_loss_func((logits,), num_experts=8, top_k=2)
    torch.testing.assert_close(2 * ours, theirs)


def test_balancing_loss_is_one_when_uniform_and_e_when_collapsed():
    uniform = torch.full((8, 4), 0.25)
    assert float(load_balancing_loss(uniform, torch.arange(8)[:, None] % 4)) == pytest.approx(1)
    collapsed = torch.zeros(8, 4)
    collapsed[:, 0] = 1.0
    chosen = torch.zeros(8, 1, dtype=torch.long)
    assert float(load_balancing_loss(collapsed, chosen)) == pytest.approx(4)
    assert routing_entropy(torch.full((4,), 0.25)) == pytest.approx(2.0)
    assert routing_entropy(torch.tensor([1.0, 0, 0, 0])) == 0.0


def test_capacity_formula():
    assert expert_capacity(100, 8, 2, 1.0) == 25
    assert expert_capacity(100, 8, 2, 1.25) == 32  # ceil(31.25)
    assert expert_capacity(100, 8, 2, None) == 100
    assert expert_capacity(10, 2, 2, 4.0) == 10  # never more slots than tokens


def test_active_parameters_match_the_dense_gpt_plus_the_router():
    config = GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=16)
    dense = GPT(config)
    moe = GPTMoE(config, MoEConfig(n_embd=16, n_experts=4, top_k=2))
    counts = moe_parameter_counts(moe)
    router = config.n_layer * 16 * 4
    extra_output_bias = config.n_layer * 16  # each of the k=2 experts has its own
    assert counts["active"] == dense.num_parameters() + router + extra_output_bias
    expert = 2 * 16 * 32 + 32 + 16  # one expert: 16 -> 32 -> 16 with biases
    assert counts["total"] - counts["active"] == config.n_layer * 2 * expert
    assert moe_parameter_counts(dense) == {"total": dense.num_parameters()} | {
        "active": dense.num_parameters()
    }


def test_gpt_moe_trains_its_router_and_reports_stats():
    torch.manual_seed(3)
    config = GPTConfig(vocab_size=30, block_size=8, n_layer=2, n_head=2, n_embd=16)
    model = GPTMoE(config, MoEConfig(n_embd=16, n_experts=4, top_k=2, capacity_factor=1.0))
    idx = torch.randint(0, 30, (4, 8))
    logits, lm_loss = model(idx, idx)
    assert logits.shape == (4, 8, 30)
    (lm_loss + 0.01 * model.aux_loss()).backward()
    for layer in model.moe_layers():
        assert layer.router.gate.weight.grad.abs().sum() > 0
    stats = model.routing_stats()
    assert len(stats) == 2 and stats[0].expert_fraction.sum().item() == pytest.approx(1.0)
    model.set_capacity_factor(None)
    model(idx)
    assert all(s.dropped_fraction == 0.0 for s in model.routing_stats())


def test_bad_input_gets_a_clear_error():
    with pytest.raises(ValueError, match="top_k"):
        MoEConfig(n_embd=8, n_experts=2, top_k=3)
    with pytest.raises(ValueError, match="capacity_factor"):
        MoEConfig(n_embd=8, capacity_factor=0)
    layer = MoELayer(MoEConfig(n_embd=8, n_experts=2, top_k=1))
    with pytest.raises(ValueError, match="shape"):
        layer(torch.randn(2, 3, 9))
    with pytest.raises(ValueError, match="n_embd"):
        GPTMoE(GPTConfig(n_embd=16, n_head=2), MoEConfig(n_embd=8))
    with pytest.raises(ValueError, match="expert_hidden"):
        MoELayer(MoEConfig(n_embd=8, top_k=2)).load_dense_mlp(MLP(GPTConfig(n_embd=8, n_head=2)))
