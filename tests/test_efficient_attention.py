"""Tests for llmzero.models.efficient_attention: each variant against a masked dense reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from llmzero.models import efficient_attention as ea
from llmzero.models.attention import causal_mask, scaled_dot_product_attention
from llmzero.models.llama import LlamaConfig
from llmzero.models.llama import kv_cache_bytes as llama_kv_cache_bytes
from llmzero.models.positional import apply_rope

TOL = 1e-5  # float32, outputs of order 1


def _qkv(seq: int = 37, dim: int = 8, seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(2, 3, seq, dim, generator=gen) for _ in range(3))


def _dense(q, k, v, mask):
    return scaled_dot_product_attention(q, k, v, mask=mask)[0]


@pytest.mark.parametrize("window", [1, 4, 9, 37, 100])
def test_sliding_window_attention_equals_masked_dense(window):
    q, k, v = _qkv()
    expected = _dense(q, k, v, ea.sliding_window_mask(37, window))
    for chunk in (None, 5, 64):
        got = ea.sliding_window_attention(q, k, v, window, chunk_size=chunk)
        torch.testing.assert_close(got, expected, atol=TOL, rtol=TOL)


def test_sliding_window_mask_is_causal_band():
    mask = ea.sliding_window_mask(6, 3)
    assert mask[5].tolist() == [False, False, False, True, True, True]
    assert torch.equal(ea.sliding_window_mask(6, 6), causal_mask(6))


@pytest.mark.parametrize(
    ("block", "local", "global_"), [(4, 1, 1), (5, 2, 1), (8, 1, 0), (3, 3, 2)]
)
def test_block_sparse_attention_equals_masked_dense(block, local, global_):
    q, k, v = _qkv()
    mask = ea.block_sparse_mask(37, block, local, global_)
    expected = _dense(q, k, v, mask)
    got = ea.block_sparse_attention(q, k, v, block, local, global_)
    torch.testing.assert_close(got, expected, atol=TOL, rtol=TOL)
    assert not (mask & ~causal_mask(37)).any()  # never a future key


def test_block_sparse_mask_pattern():
    mask = ea.block_sparse_mask(8, 2, local_blocks=1, global_blocks=1)
    assert mask[7].tolist() == [True, True, False, False, False, False, True, True]


@pytest.mark.parametrize("causal", [True, False])
def test_linear_attention_equals_reference(causal):
    q, k, v = _qkv()
    expected = ea.linear_attention_reference(q, k, v, causal=causal)
    for chunk in (1, 7, 64):
        got = ea.linear_attention(q, k, v, causal=causal, chunk_size=chunk)
        torch.testing.assert_close(got, expected, atol=TOL, rtol=TOL)


def test_linear_attention_reference_rows_are_weighted_means():
    q, k, v = _qkv(seq=5)
    out = ea.linear_attention_reference(q, k, torch.ones_like(v))
    torch.testing.assert_close(out, torch.ones_like(out), atol=1e-5, rtol=0)
    assert (ea.elu_feature_map(torch.randn(100)) > 0).all()


@pytest.mark.parametrize("block", [1, 4, 16, 37, 128])
@pytest.mark.parametrize("causal", [True, False])
def test_online_softmax_attention_equals_standard(block, causal):
    q, k, v = _qkv()
    mask = causal_mask(37) if causal else None
    expected = _dense(q, k, v, mask)
    got = ea.online_softmax_attention(q, k, v, block_size=block, causal=causal)
    torch.testing.assert_close(got, expected, atol=TOL, rtol=TOL)
    torch.testing.assert_close(
        got, F.scaled_dot_product_attention(q, k, v, is_causal=causal), atol=TOL, rtol=TOL
    )


def test_online_softmax_survives_large_scores():
    q, k, v = _qkv(seq=20)
    q = q * 200.0  # exp of the raw scores would overflow float32
    got = ea.online_softmax_attention(q, k, v, block_size=6)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, _dense(q, k, v, causal_mask(20)), atol=1e-4, rtol=1e-4)


def test_kv_cache_bytes_formula():
    # Llama-2-7B: 32 layers, 32 heads of 128, float16: 0.5 MiB per token
    assert ea.kv_cache_bytes(32, 32, 128, 1) == 2 * 32 * 32 * 128 * 2 == 524288
    assert ea.kv_cache_bytes(32, 8, 128, 4096) * 4 == ea.kv_cache_bytes(32, 32, 128, 4096)
    assert ea.kv_cache_bytes(32, 8, 128, 10_000, window=4096) == ea.kv_cache_bytes(32, 8, 128, 4096)
    config = LlamaConfig()
    assert ea.kv_cache_bytes(
        config.n_layer, config.n_kv_head, config.head_dim, 100, 3, 4
    ) == llama_kv_cache_bytes(config, 100, 3, 4)
    with pytest.raises(ValueError, match="n_kv_head"):
        ea.kv_cache_bytes(32, 0, 128, 10)


def test_attention_cost_formulas():
    assert ea.attention_flops(10, 4, n_heads=2) == 4 * 2 * 100 * 4
    assert ea.attention_scores_bytes(1024, n_heads=2, bytes_per_value=2) == 2 * 1024 * 1024 * 2


def test_interpolated_positions_stay_in_trained_range():
    pos = ea.interpolated_positions(4096, 1024)
    assert pos.max() < 1024 and pos[1] == pytest.approx(0.25)
    assert torch.equal(ea.interpolated_positions(100, 1024), torch.arange(100.0))
    x = torch.randn(1, 2, 8, 16)
    rotated = apply_rope(x, ea.interpolated_positions(8, 4))
    torch.testing.assert_close(rotated, apply_rope(x, torch.arange(8) * 0.5))


def test_tensor_memory_tracker_counts_new_tensors_once():
    x = torch.randn(1000)
    with ea.TensorMemoryTracker() as tracker:
        a = torch.zeros(1000)  # 4,000 bytes
        del a
        b = x * 2  # 4,000 bytes again, after a was freed
        view = b[:10]  # shares b's storage
        c = b + 1  # b and c alive together: 8,000
        del c, view
        piece = x[:500]  # a view of an input: not new memory
    assert tracker.peak_bytes == 8000
    assert tracker.current_bytes == 4000 and piece.numel() == 500


def test_bad_input_errors():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="window"):
        ea.sliding_window_attention(q, k, v, window=0)
    with pytest.raises(ValueError, match="same"):
        ea.online_softmax_attention(q, k[..., :5, :], v)
    with pytest.raises(ValueError, match="global_blocks"):
        ea.block_sparse_attention(q, k, v, 4, 1, -1)
