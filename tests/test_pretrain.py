"""Tests for llmzero.training.pretrain: optimizer groups, batches, bits per byte, FLOPs, MFU."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from llmzero.models.gpt import GPT, GPTConfig
from llmzero.training import pretrain


def tiny_gpt(seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    sizes = {"vocab_size": 40, "block_size": 16, "n_layer": 2, "n_head": 2, "n_embd": 16}
    return GPT(GPTConfig(**{**sizes, **overrides}))


# -- configure_optimizer --------------------------------------------------------------------


def test_weight_decay_applies_to_matrices_and_embeddings_only() -> None:
    model = tiny_gpt()
    optimizer = pretrain.configure_optimizer(model, learning_rate=1e-3, weight_decay=0.1)
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decay["params"])
    assert all(p.dim() == 1 for p in no_decay["params"])
    names = {id(p): name for name, p in model.named_parameters()}
    expected = {name for name in names.values() if "ln_" in name or name.endswith("bias")}
    assert {names[id(p)] for p in no_decay["params"]} == expected  # biases and LayerNorms


def test_tied_embedding_is_optimized_once() -> None:
    model = tiny_gpt()
    optimizer = pretrain.configure_optimizer(model, learning_rate=1e-3)
    all_params = [p for group in optimizer.param_groups for p in group["params"]]
    assert len(all_params) == len({id(p) for p in all_params}) == len(list(model.parameters()))
    assert any(p is model.lm_head.weight for p in all_params)


def test_fused_optimizer_makes_the_same_update_as_the_default_one() -> None:
    models = [tiny_gpt(), tiny_gpt()]
    start = [p.detach().clone() for p in models[0].parameters()]
    optimizers = [  # a large weight decay, so that decaying the wrong tensors would show
        pretrain.configure_optimizer(models[0], learning_rate=1e-2, weight_decay=1.0),
        pretrain.configure_optimizer(models[1], learning_rate=1e-2, weight_decay=1.0, fused=False),
    ]
    assert optimizers[0].defaults["fused"] and not optimizers[1].defaults["fused"]
    idx = torch.randint(0, 40, (4, 9), generator=torch.Generator().manual_seed(0))
    for model, optimizer in zip(models, optimizers, strict=True):
        for _ in range(3):
            model(idx[:, :-1], idx[:, 1:])[1].backward()
            optimizer.step()
            optimizer.zero_grad()
    fused, default = list(models[0].parameters()), list(models[1].parameters())
    change = max((p - p0).abs().max().item() for p, p0 in zip(fused, start, strict=True))
    gap = max((a - b).abs().max().item() for a, b in zip(fused, default, strict=True))
    assert gap <= 1e-3 * change  # float rounding, amplified where Adam divides by ~0


def test_configure_optimizer_rejects_negative_weight_decay() -> None:
    with pytest.raises(ValueError, match="weight_decay"):
        pretrain.configure_optimizer(tiny_gpt(), learning_rate=1e-3, weight_decay=-0.1)


# -- get_batch ------------------------------------------------------------------------------


def test_batch_targets_are_inputs_shifted_by_one_from_the_stream(tmp_path) -> None:
    stream = np.arange(1000, dtype=np.uint16)
    path = tmp_path / "tokens.npy"
    np.save(path, stream)
    tokens = np.load(path, mmap_mode="r")  # a memmap, as read_shards returns
    inputs, targets = pretrain.get_batch(tokens, 5, 12, torch.Generator().manual_seed(0))
    assert inputs.shape == targets.shape == (5, 12) and inputs.dtype == torch.int64
    assert torch.equal(inputs[:, 1:], targets[:, :-1])
    assert torch.equal(targets - inputs, torch.ones_like(inputs))  # consecutive ids


def test_seeded_generators_give_the_same_batches() -> None:
    tokens = np.random.default_rng(0).integers(0, 50, 500)
    first = pretrain.get_batch(tokens, 3, 8, torch.Generator().manual_seed(4))
    second = pretrain.get_batch(tokens, 3, 8, torch.Generator().manual_seed(4))
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_get_batch_rejects_a_stream_shorter_than_a_window() -> None:
    with pytest.raises(ValueError, match="block_size"):
        pretrain.get_batch(np.arange(8), 2, 8, torch.Generator())


# -- bits per byte --------------------------------------------------------------------------


def test_bits_per_byte_of_a_uniform_byte_model_is_eight() -> None:
    assert pretrain.bits_per_byte(math.log(256), n_tokens=100, n_bytes=100) == pytest.approx(8.0)


def test_bits_per_byte_scales_with_bytes_per_token() -> None:
    # 2 nats per token, 4 bytes per token: 2 / (4 ln 2) bits per byte.
    assert pretrain.bits_per_byte(2.0, 10, 40) == pytest.approx(2.0 / (4 * math.log(2)))


def test_evaluate_bits_per_byte_predicts_each_token_once_and_counts_its_bytes() -> None:
    model = tiny_gpt().eval()
    tokens = np.random.default_rng(1).integers(0, 40, 16 * 5 + 1)  # exactly 5 windows
    token_bytes = np.random.default_rng(2).integers(0, 4, 40)
    token_bytes[token_bytes == 0] = 1
    token_bytes[7] = 0  # a special token: costs bits, stands for no bytes
    with torch.no_grad():
        windows = torch.from_numpy(tokens).unfold(0, 17, 16)  # (5, 17)
        logits = model(windows[:, :-1])[0]
        nats = F.cross_entropy(logits.flatten(0, 1), windows[:, 1:].flatten(), reduction="sum")
    expected = nats.item() / (token_bytes[tokens[1:]].sum() * math.log(2))
    got = pretrain.evaluate_bits_per_byte(model, tokens, token_bytes, 16, batch_size=2)
    assert got == pytest.approx(expected, rel=1e-5)
    assert model.training is False


def test_evaluate_bits_per_byte_rejects_a_stream_shorter_than_a_window() -> None:
    with pytest.raises(ValueError, match="shorter than one window"):
        pretrain.evaluate_bits_per_byte(tiny_gpt(), np.arange(10), np.ones(40), 16)


# -- FLOPs and MFU --------------------------------------------------------------------------


def test_training_flops_match_the_flop_counter_for_the_matrix_products() -> None:
    config = GPTConfig(vocab_size=64, block_size=32, n_layer=2, n_head=2, n_embd=32)
    torch.manual_seed(0)
    model = GPT(config)
    batch, seq = 2, 32
    idx = torch.randint(0, 64, (batch, seq + 1))
    with FlopCounterMode(display=False) as counter:
        model(idx[:, :-1], idx[:, 1:])[1].backward()
    flops = counter.get_flop_counts()["Global"]
    attention = sum(count for op, count in flops.items() if "attention" in str(op))
    counted_matmuls = counter.get_total_flops() - attention
    d, n_layer, tokens = config.n_embd, config.n_layer, batch * seq
    # 6 FLOPs per token for every weight of a matrix product (the position table is a lookup).
    matrices = sum(
        p.numel() for n, p in model.named_parameters() if p.dim() == 2 and "wpe" not in n
    )
    assert counted_matmuls == 6 * matrices * tokens
    # The formula also charges 6 per bias and LayerNorm parameter (the "6N" simplification),
    # and 12 L d T per token for attention, where the counter charges the backward pass 10
    # T^2-sized products instead of 8 (it includes the recomputation of the scores).
    vectors = sum(p.numel() for p in model.parameters() if p.dim() == 1)
    formula = pretrain.palm_flops_per_token(config, seq) * tokens
    assert formula == 6 * (matrices + vectors) * tokens + 12 * n_layer * d * seq * tokens
    assert attention == 14 * n_layer * d * seq * tokens


def test_palm_flops_per_token_of_gpt2_small() -> None:
    config = GPTConfig()  # GPT-2 small: 124,439,808 parameters, 1024 x 768 of them in wpe
    n_params = 124_439_808 - config.block_size * config.n_embd
    assert pretrain.palm_flops_per_token(config) == 6 * n_params + 12 * 12 * 768 * 1024


def test_measure_matmul_flops_is_positive_and_finite() -> None:
    flops = pretrain.measure_matmul_flops(size=64, repeats=3)
    assert 0 < flops < math.inf


def test_model_flops_utilization_is_achieved_over_peak() -> None:
    assert pretrain.model_flops_utilization(1000, 6e6, 1.2e10) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="peak_flops"):
        pretrain.model_flops_utilization(1000, 6e6, 0)
