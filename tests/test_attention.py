"""Tests for llmzero.models.attention: agreement with PyTorch, the masks, and clear errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from llmzero.models.attention import causal_mask, padding_mask, scaled_dot_product_attention

ATOL = 1e-5  # float32 results of two different summation orders


def _qkv(batch=2, heads=3, n_q=5, n_k=5, d_k=8, d_v=6, seed=0, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, n_q, d_k, generator=generator, dtype=dtype)
    k = torch.randn(batch, heads, n_k, d_k, generator=generator, dtype=dtype)
    v = torch.randn(batch, heads, n_k, d_v, generator=generator, dtype=dtype)
    return q, k, v


def test_matches_torch_without_a_mask():
    q, k, v = _qkv(n_q=4, n_k=7)
    ours, _ = scaled_dot_product_attention(q, k, v)
    theirs = F.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(ours, theirs, atol=ATOL, rtol=1e-5)


def test_matches_torch_with_a_causal_mask_and_with_is_causal():
    q, k, v = _qkv(n_q=6, n_k=6)
    ours, _ = scaled_dot_product_attention(q, k, v, mask=causal_mask(6))
    with_mask = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(6))
    with_flag = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(ours, with_mask, atol=ATOL, rtol=1e-5)
    torch.testing.assert_close(ours, with_flag, atol=ATOL, rtol=1e-5)


def test_matches_torch_with_a_padding_mask():
    q, k, v = _qkv(batch=3, n_q=5, n_k=5)
    mask = padding_mask([5, 3, 1])  # (3, 1, 1, 5)
    ours, _ = scaled_dot_product_attention(q, k, v, mask=mask)
    theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(ours, theirs, atol=ATOL, rtol=1e-5)


def test_matches_torch_with_causal_and_left_padding_including_fully_masked_rows():
    q, k, v = _qkv(batch=2, n_q=5, n_k=5)
    attention_mask = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]])  # left padding
    mask = causal_mask(5) & padding_mask(attention_mask)  # (2, 1, 5, 5)
    ours, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert not mask[1, 0, 0].any()  # query 0 of sequence 1 sees only padding
    assert (weights[1, :, 0] == 0).all()
    torch.testing.assert_close(ours, theirs, atol=ATOL, rtol=1e-5)


@settings(max_examples=40, deadline=None)
@given(
    batch=st.integers(1, 3),
    heads=st.integers(1, 4),
    n_q=st.integers(1, 9),
    n_k=st.integers(1, 9),
    d_k=st.integers(1, 16),
    d_v=st.integers(1, 16),
    seed=st.integers(0, 10_000),
)
def test_matches_torch_for_random_shapes_and_random_masks(batch, heads, n_q, n_k, d_k, d_v, seed):
    q, k, v = _qkv(batch, heads, n_q, n_k, d_k, d_v, seed=seed)
    generator = torch.Generator().manual_seed(seed + 1)
    mask = torch.rand(batch, 1, n_q, n_k, generator=generator) > 0.3  # some rows fully masked
    ours, _ = scaled_dot_product_attention(q, k, v, mask=mask)
    theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(ours, theirs, atol=ATOL, rtol=1e-5)


def test_weights_equal_softmax_of_scaled_scores_and_output_is_weights_times_values():
    q, k, v = _qkv(dtype=torch.float64)
    output, weights = scaled_dot_product_attention(q, k, v)
    expected = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(output, weights @ v)


def test_weight_rows_sum_to_one_with_and_without_a_mask():
    q, k, v = _qkv(n_q=6, n_k=6)
    for mask in (None, causal_mask(6), padding_mask([6, 2])):
        _, weights = scaled_dot_product_attention(q, k, v, mask=mask)
        torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))
        assert (weights >= 0).all()


def test_masked_positions_get_exactly_zero_weight():
    q, k, v = _qkv(batch=2, n_q=6, n_k=6)
    mask = causal_mask(6) & padding_mask([6, 4])  # (2, 1, 6, 6)
    _, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    assert (weights[~mask.expand_as(weights)] == 0).all()
    assert (weights[mask.expand_as(weights)] > 0).all()


def test_fully_masked_row_gives_zero_weights_zero_output_and_finite_gradients():
    q, k, v = (t.requires_grad_() for t in _qkv(batch=1, heads=1, n_q=3, n_k=3))
    mask = torch.tensor([[True, False, False], [False, False, False], [True, True, True]])
    output, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    assert not torch.isnan(output).any() and not torch.isnan(weights).any()
    assert (weights[..., 1, :] == 0).all() and (output[..., 1, :] == 0).all()
    torch.testing.assert_close(weights[..., [0, 2], :].sum(-1), torch.ones(1, 1, 2))
    output.sum().backward()
    for tensor in (q, k, v):
        assert torch.isfinite(tensor.grad).all()


def test_dropout_only_when_training_and_output_matches_returned_weights():
    q, k, v = _qkv(n_q=8, n_k=8)
    plain, plain_weights = scaled_dot_product_attention(q, k, v)
    evaluated, _ = scaled_dot_product_attention(q, k, v, dropout_p=0.5, training=False)
    torch.testing.assert_close(evaluated, plain)
    torch.manual_seed(0)
    dropped, dropped_weights = scaled_dot_product_attention(q, k, v, dropout_p=0.5, training=True)
    assert (dropped_weights == 0).any() and not torch.equal(dropped, plain)
    kept = dropped_weights != 0
    torch.testing.assert_close(dropped_weights[kept], 2 * plain_weights[kept])
    torch.testing.assert_close(dropped, dropped_weights @ v)


def test_broadcasts_leading_dimensions_and_accepts_unbatched_inputs():
    q, k, v = _qkv(batch=2, heads=3)
    shared_kv, _ = scaled_dot_product_attention(q, k[:1, :1], v[:1, :1])  # k, v broadcast
    assert shared_kv.shape == (2, 3, 5, 6)
    single, weights = scaled_dot_product_attention(q[0, 0], k[0, 0], v[0, 0])  # (seq, d)
    assert single.shape == (5, 6) and weights.shape == (5, 5)


@pytest.mark.parametrize(
    ("q_shape", "k_shape", "v_shape", "message"),
    [
        ((2, 5, 8), (2, 5, 4), (2, 5, 6), "same feature size d_k"),
        ((2, 5, 8), (2, 5, 8), (2, 4, 6), "one row per key"),
        ((2, 5, 8), (3, 5, 8), (3, 5, 6), "must broadcast"),
        ((8,), (5, 8), (5, 6), "at least 2 dimensions"),
    ],
)
def test_incompatible_shapes_raise_a_clear_value_error(q_shape, k_shape, v_shape, message):
    q, k, v = torch.randn(q_shape), torch.randn(k_shape), torch.randn(v_shape)
    with pytest.raises(ValueError, match=message):
        scaled_dot_product_attention(q, k, v)


def test_mask_of_the_wrong_shape_or_dtype_is_rejected():
    q, k, v = _qkv(batch=2, n_q=5, n_k=5)
    with pytest.raises(ValueError, match="does not broadcast"):
        scaled_dot_product_attention(q, k, v, mask=causal_mask(4))
    with pytest.raises(ValueError, match="does not broadcast"):  # would grow the batch
        scaled_dot_product_attention(q, k, v, mask=torch.ones(7, 2, 3, 5, 5, dtype=torch.bool))
    with pytest.raises(TypeError, match="boolean"):
        scaled_dot_product_attention(q, k, v, mask=torch.ones(5, 5))


def test_integer_inputs_and_bad_dropout_are_rejected():
    q, k, v = _qkv()
    with pytest.raises(TypeError, match="floating-point"):
        scaled_dot_product_attention(q.long(), k, v)
    with pytest.raises(ValueError, match="dropout_p"):
        scaled_dot_product_attention(q, k, v, dropout_p=1.0, training=True)


def test_causal_mask_is_lower_triangular_on_the_requested_device():
    mask = causal_mask(4, device="cpu")
    assert mask.dtype == torch.bool and mask.device.type == "cpu"
    for query in range(4):
        for key in range(4):
            assert bool(mask[query, key]) == (key <= query)
    for bad in (0, -2, 2.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            causal_mask(bad)


def test_padding_mask_from_lengths_equals_padding_mask_from_attention_mask():
    from_lengths = padding_mask(torch.tensor([3, 1, 4]))
    from_attention_mask = padding_mask([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]])
    assert from_lengths.shape == (3, 1, 1, 4) and from_lengths.dtype == torch.bool
    assert torch.equal(from_lengths, from_attention_mask)
    assert padding_mask([2, 1], seq_len=5).shape == (2, 1, 1, 5)
    assert padding_mask(torch.tensor([[True, False]])).tolist() == [[[[True, False]]]]


@pytest.mark.parametrize(
    ("argument", "seq_len", "message"),
    [
        ([3, -1], None, "between 0 and seq_len"),
        ([3, 6], 5, "between 0 and seq_len"),
        ([1.5, 2.0], None, "integers"),
        ([[1, 2, 0]], None, "only 0 and 1"),
        ([[1, 1, 0]], 3, "only for lengths"),
        ([[[1]]], None, "expected lengths"),
    ],
)
def test_padding_mask_rejects_bad_input(argument, seq_len, message):
    with pytest.raises(ValueError, match=message):
        padding_mask(argument, seq_len=seq_len)
