"""Tests for llmzero.models.transformer: each piece equals PyTorch's with the same weights."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from llmzero.models.transformer import FeedForward, LayerNorm, MultiHeadAttention, TransformerBlock

D_MODEL, N_HEADS, BATCH, SEQ = 32, 4, 3, 7


def _torch_mha(dtype: torch.dtype = torch.float32, seed: int = 0) -> nn.MultiheadAttention:
    torch.manual_seed(seed)
    module = nn.MultiheadAttention(D_MODEL, N_HEADS, batch_first=True, dtype=dtype).eval()
    with torch.no_grad():  # PyTorch starts the biases at 0: make them matter
        module.in_proj_bias.normal_(std=0.1)
        module.out_proj.bias.normal_(std=0.1)
    return module


def _inputs(dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(BATCH, SEQ, D_MODEL, generator=generator, dtype=dtype)
    attention_mask = torch.ones(BATCH, SEQ, dtype=torch.long)  # 1 = real token
    attention_mask[1, 5:] = 0  # right padding: two pads
    attention_mask[2, 3:] = 0
    return x, attention_mask


def _mask_cases(attention_mask: torch.Tensor) -> list[tuple[dict, dict]]:
    """(our keyword arguments, PyTorch's keyword arguments) for the same masking."""
    blocked_future = ~torch.tril(torch.ones(SEQ, SEQ, dtype=torch.bool))  # True = blocked
    padding = attention_mask == 0  # True = padding, PyTorch's convention
    return [
        ({}, {}),
        ({"causal": True}, {"attn_mask": blocked_future}),
        ({"mask": ~blocked_future}, {"attn_mask": blocked_future}),
        ({"attention_mask": attention_mask}, {"key_padding_mask": padding}),
        (
            {"causal": True, "attention_mask": attention_mask},
            {"attn_mask": blocked_future, "key_padding_mask": padding},
        ),
    ]


@pytest.mark.parametrize("case", range(5))
def test_multi_head_attention_matches_torch_with_copied_weights(case: int) -> None:
    reference = _torch_mha()
    ours = MultiHeadAttention.from_torch(reference).eval()
    x, attention_mask = _inputs()
    our_kwargs, torch_kwargs = _mask_cases(attention_mask)[case]
    out, weights = ours(x, need_weights=True, **our_kwargs)
    expected, expected_weights = reference(
        x, x, x, need_weights=True, average_attn_weights=False, **torch_kwargs
    )
    fast, _ = reference(x, x, x, need_weights=False, **torch_kwargs)  # PyTorch's SDPA path
    assert out.shape == (BATCH, SEQ, D_MODEL)
    assert weights.shape == (BATCH, N_HEADS, SEQ, SEQ)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(out, fast, atol=1e-6, rtol=0)
    torch.testing.assert_close(weights, expected_weights, atol=1e-6, rtol=0)


def test_multi_head_attention_matches_torch_in_float64() -> None:
    reference = _torch_mha(torch.float64)
    ours = MultiHeadAttention.from_torch(reference).eval()
    x, attention_mask = _inputs(torch.float64)
    for our_kwargs, torch_kwargs in _mask_cases(attention_mask):
        expected, _ = reference(x, x, x, **torch_kwargs)
        torch.testing.assert_close(ours(x, **our_kwargs)[0], expected, atol=1e-12, rtol=0)


def test_cross_attention_matches_torch() -> None:
    reference = _torch_mha()
    ours = MultiHeadAttention.from_torch(reference).eval()
    generator = torch.Generator().manual_seed(2)
    query = torch.randn(2, 5, D_MODEL, generator=generator)
    memory = torch.randn(2, 9, D_MODEL, generator=generator)
    attention_mask = torch.ones(2, 9, dtype=torch.long)
    attention_mask[0, 6:] = 0
    out, weights = ours(query, memory, attention_mask=attention_mask, need_weights=True)
    expected, _ = reference(query, memory, memory, key_padding_mask=attention_mask == 0)
    assert weights.shape == (2, N_HEADS, 5, 9)
    assert torch.all(weights[0, :, :, 6:] == 0)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


def test_attention_weights_are_none_unless_asked_and_rows_sum_to_one() -> None:
    ours = MultiHeadAttention(D_MODEL, N_HEADS).eval()
    x, _ = _inputs()
    assert ours(x)[1] is None
    _, weights = ours(x, causal=True, need_weights=True)
    torch.testing.assert_close(weights.sum(-1), torch.ones(BATCH, N_HEADS, SEQ))
    assert torch.all(weights.triu(diagonal=1) == 0)  # nothing from the future


def test_causal_attention_output_does_not_depend_on_later_tokens() -> None:
    ours = MultiHeadAttention(D_MODEL, N_HEADS).eval()
    x, _ = _inputs()
    changed = x.clone()
    changed[:, 4:] = torch.randn_like(changed[:, 4:])
    torch.testing.assert_close(ours(x, causal=True)[0][:, :4], ours(changed, causal=True)[0][:, :4])
    assert not torch.allclose(ours(x)[0][:, :4], ours(changed)[0][:, :4])


def test_self_attention_is_permutation_equivariant() -> None:
    ours = MultiHeadAttention(D_MODEL, N_HEADS).eval()
    x, _ = _inputs(torch.float64)
    ours = ours.double()
    permutation = torch.randperm(SEQ, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(ours(x[:, permutation])[0], ours(x)[0][:, permutation])


def test_split_and_merge_heads_are_inverse_and_keep_each_heads_columns() -> None:
    ours = MultiHeadAttention(D_MODEL, N_HEADS)
    x, _ = _inputs()
    heads = ours.split_heads(x)
    assert heads.shape == (BATCH, N_HEADS, SEQ, D_MODEL // N_HEADS)
    torch.testing.assert_close(heads[:, 1], x[..., 8:16])  # head 1 = columns 8..15
    torch.testing.assert_close(ours.merge_heads(heads), x)


def test_attention_dropout_only_while_training() -> None:
    ours = MultiHeadAttention(D_MODEL, N_HEADS, dropout=0.5)
    x, _ = _inputs()
    ours.eval()
    torch.testing.assert_close(ours(x)[0], ours(x)[0])
    ours.train()
    torch.manual_seed(0)
    first = ours(x)[0]
    assert not torch.allclose(first, ours(x)[0])


def test_multi_head_attention_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(30, 4)
    with pytest.raises(ValueError, match="dropout"):
        MultiHeadAttention(32, 4, dropout=1.0)
    ours = MultiHeadAttention(D_MODEL, N_HEADS)
    with pytest.raises(ValueError, match="shape"):
        ours(torch.randn(SEQ, D_MODEL))
    with pytest.raises(ValueError, match="shape"):
        ours(torch.randn(BATCH, SEQ, D_MODEL + 1))
    with pytest.raises(ValueError, match="attention_mask"):
        ours(torch.randn(BATCH, SEQ, D_MODEL), attention_mask=torch.ones(BATCH, SEQ + 1))
    with pytest.raises(ValueError, match="causal"):
        ours(torch.randn(BATCH, SEQ, D_MODEL), torch.randn(BATCH, SEQ + 2, D_MODEL), causal=True)
    with pytest.raises(ValueError, match="batch_first"):
        MultiHeadAttention.from_torch(nn.MultiheadAttention(D_MODEL, N_HEADS))


@settings(max_examples=25, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 4), st.integers(1, 6)),
    scale=st.floats(0.01, 100.0),
    shift=st.floats(-50.0, 50.0),
)
def test_layer_norm_matches_torch_in_float64(
    shape: tuple[int, int], scale: float, shift: float
) -> None:
    generator = torch.Generator().manual_seed(0)
    reference = nn.LayerNorm(D_MODEL)
    with torch.no_grad():
        reference.weight.normal_(generator=generator)
        reference.bias.normal_(generator=generator)
    ours = LayerNorm(D_MODEL)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(*shape, D_MODEL, generator=generator, dtype=torch.float64) * scale + shift
    torch.testing.assert_close(ours.double()(x), reference.double()(x), atol=1e-10, rtol=0)


def test_layer_norm_matches_torch_in_float32() -> None:
    reference = nn.LayerNorm(D_MODEL)
    ours = LayerNorm(D_MODEL)
    x = torch.randn(8, SEQ, D_MODEL, generator=torch.Generator().manual_seed(0)) * 3 + 1
    torch.testing.assert_close(ours(x), reference(x), atol=1e-6, rtol=0)


def test_layer_norm_output_has_zero_mean_and_unit_variance_per_token() -> None:
    x = torch.randn(4, 6, D_MODEL, dtype=torch.float64) * 7 + 3
    y = LayerNorm(D_MODEL).double()(x)
    torch.testing.assert_close(y.mean(-1), torch.zeros(4, 6, dtype=torch.float64))
    torch.testing.assert_close(
        y.var(-1, correction=0), torch.ones(4, 6, dtype=torch.float64), atol=1e-5, rtol=0
    )


def test_layer_norm_matches_torch_without_bias_and_rejects_wrong_width() -> None:
    reference = nn.LayerNorm(D_MODEL, bias=False)
    ours = LayerNorm(D_MODEL, bias=False)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(2, 3, D_MODEL)
    torch.testing.assert_close(ours(x), reference(x), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="d_model"):
        ours(torch.randn(2, D_MODEL + 1))


@pytest.mark.parametrize("activation", ["gelu", "gelu_tanh", "relu"])
def test_feed_forward_acts_on_each_position_separately(activation: str) -> None:
    ff = FeedForward(D_MODEL, activation=activation)
    assert ff.fc1.out_features == 4 * D_MODEL
    x, _ = _inputs()
    out = ff(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out[:, 2], ff(x[:, 2]))  # position 2 alone, same result


def test_feed_forward_rejects_unknown_activation() -> None:
    with pytest.raises(ValueError, match="activation"):
        FeedForward(D_MODEL, activation="swish")


@pytest.mark.parametrize("pre_norm", [True, False])
@pytest.mark.parametrize("activation", ["gelu", "relu"])
def test_transformer_block_matches_torch_encoder_layer(pre_norm: bool, activation: str) -> None:
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(
        D_MODEL,
        N_HEADS,
        dim_feedforward=64,
        dropout=0.0,
        activation=activation,
        batch_first=True,
        norm_first=pre_norm,
    ).eval()
    block = TransformerBlock.from_torch(layer).eval()
    assert block.pre_norm is pre_norm
    x, attention_mask = _inputs()
    blocked_future = ~torch.tril(torch.ones(SEQ, SEQ, dtype=torch.bool))
    torch.testing.assert_close(block(x), layer(x), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        block(x, causal=True, attention_mask=attention_mask),
        layer(x, src_mask=blocked_future, src_key_padding_mask=attention_mask == 0),
        atol=1e-5,
        rtol=0,
    )


def test_pre_norm_and_post_norm_blocks_compute_their_formulas() -> None:
    x, _ = _inputs()
    pre = TransformerBlock(D_MODEL, N_HEADS, pre_norm=True).eval()
    h = x + pre.attn(pre.norm1(x))[0]
    torch.testing.assert_close(pre(x), h + pre.ff(pre.norm2(h)))
    post = TransformerBlock(D_MODEL, N_HEADS, pre_norm=False).eval()
    h = post.norm1(x + post.attn(x)[0])
    out = post(x)
    torch.testing.assert_close(out, post.norm2(h + post.ff(h)))
    torch.testing.assert_close(out.mean(-1), torch.zeros(BATCH, SEQ), atol=1e-5, rtol=0)


def test_causal_block_does_not_look_ahead_and_backpropagates() -> None:
    block = TransformerBlock(D_MODEL, N_HEADS).eval()
    x, _ = _inputs()
    x.requires_grad_(True)
    block(x, causal=True)[:, 2].sum().backward()
    assert torch.all(x.grad[:, 3:] == 0)
    assert torch.all(x.grad[:, :3].abs().sum(-1) > 0)
