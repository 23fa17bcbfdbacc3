"""Tests for llmzero.models.positional: sinusoidal, learned and rotary position information."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmzero.models.positional import (
    LearnedPositionalEmbedding,
    apply_rope,
    rope_frequencies,
    rotate_half,
    sinusoidal_encoding,
)


def test_sinusoidal_encoding_matches_the_closed_form() -> None:
    seq_len, d_model = 20, 12
    encoding = sinusoidal_encoding(seq_len, d_model)
    assert encoding.shape == (seq_len, d_model)
    assert encoding.dtype == torch.float32
    for pos in range(seq_len):
        for i in range(d_model // 2):
            angle = pos / 10000 ** (2 * i / d_model)
            assert encoding[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert encoding[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


def test_sinusoidal_encoding_starts_with_zeros_and_ones_and_respects_base() -> None:
    encoding = sinusoidal_encoding(5, 8, base=100.0)
    torch.testing.assert_close(encoding[0], torch.tensor([0.0, 1.0] * 4))
    assert encoding[3, 2].item() == pytest.approx(math.sin(3 / 100 ** (2 / 8)), abs=1e-6)


def test_sinusoidal_dot_products_depend_only_on_the_offset() -> None:
    encoding = sinusoidal_encoding(64, 32).double()
    gram = encoding @ encoding.T  # (64, 64)
    for offset in (0, 1, 5, 17):
        diagonal = torch.diagonal(gram, offset)
        torch.testing.assert_close(diagonal, diagonal[0].expand_as(diagonal), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("seq_len", "d_model", "base"), [(0, 8, 10000.0), (4, 7, 10000.0), (4, 8, 1.0), (4.0, 8, 2.0)]
)
def test_sinusoidal_encoding_rejects_bad_arguments(seq_len, d_model, base) -> None:
    with pytest.raises(ValueError):
        sinusoidal_encoding(seq_len, d_model, base=base)


def test_learned_positional_embedding_looks_up_rows_and_rejects_positions_past_max_len() -> None:
    embedding = LearnedPositionalEmbedding(max_len=16, d_model=8)
    positions = torch.arange(10)
    out = embedding(positions)
    assert out.shape == (10, 8)
    torch.testing.assert_close(out, embedding.embedding.weight[:10])
    assert embedding(torch.tensor([[1, 2], [3, 4]])).shape == (2, 2, 8)
    with pytest.raises(ValueError, match="max_len"):
        embedding(torch.arange(17))
    with pytest.raises(ValueError, match="integer"):
        embedding(torch.arange(3.0))


def test_rope_frequencies_are_the_sinusoidal_ones() -> None:
    frequencies = rope_frequencies(16)
    assert frequencies.shape == (8,)
    assert frequencies[0].item() == 1.0
    expected = torch.tensor([10000 ** (-2 * i / 16) for i in range(8)])
    torch.testing.assert_close(frequencies, expected)
    with pytest.raises(ValueError, match="even"):
        rope_frequencies(15)


def test_rotate_half_turns_each_pair_by_ninety_degrees() -> None:
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    torch.testing.assert_close(rotate_half(x), torch.tensor([-3.0, -4.0, 1.0, 2.0]))
    torch.testing.assert_close(rotate_half(rotate_half(x)), -x)


def test_rope_is_the_identity_at_position_zero_and_preserves_lengths() -> None:
    x = torch.randn(2, 3, 10, 16, dtype=torch.float64)
    torch.testing.assert_close(
        apply_rope(x[:, :, :1], torch.zeros(1, dtype=torch.long)), x[:, :, :1]
    )
    rotated = apply_rope(x, torch.arange(10))
    assert rotated.shape == x.shape and rotated.dtype == x.dtype
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1))


def test_rope_rotates_each_pair_by_position_times_frequency() -> None:
    head_dim, position = 8, 3
    x = torch.randn(1, head_dim, dtype=torch.float64)
    out = apply_rope(x, torch.tensor([position]))[0]
    frequencies = rope_frequencies(head_dim).double()
    for i in range(head_dim // 2):
        angle = position * frequencies[i]
        a, b = x[0, i], x[0, i + head_dim // 2]  # rotate-half pairs i with i + d/2
        torch.testing.assert_close(out[i], a * torch.cos(angle) - b * torch.sin(angle))
        torch.testing.assert_close(
            out[i + head_dim // 2], a * torch.sin(angle) + b * torch.cos(angle)
        )


@settings(max_examples=50, deadline=None)
@given(
    query_pos=st.integers(0, 500),
    key_pos=st.integers(0, 500),
    offset=st.integers(-500, 2000),
    seed=st.integers(0, 2**16),
)
def test_rope_scores_depend_only_on_relative_position(
    query_pos: int, key_pos: int, offset: int, seed: int
) -> None:
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(1, 32, generator=generator, dtype=torch.float64)  # (seq=1, head_dim)
    k = torch.randn(1, 32, generator=generator, dtype=torch.float64)

    def score(m: int, n: int) -> float:
        rotated_q = apply_rope(q, torch.tensor([m]))
        rotated_k = apply_rope(k, torch.tensor([n]))
        return (rotated_q @ rotated_k.T).item()

    shifted = score(query_pos + offset, key_pos + offset)
    assert shifted == pytest.approx(score(query_pos, key_pos), abs=1e-9)


def test_rope_with_per_sequence_positions_broadcasts_over_heads() -> None:
    x = torch.randn(2, 4, 6, 8)  # (batch, heads, seq, head_dim)
    positions = torch.stack([torch.arange(6), torch.arange(6) + 10])  # (batch, seq)
    out = apply_rope(x, positions)
    torch.testing.assert_close(out[0], apply_rope(x[0], torch.arange(6)))
    torch.testing.assert_close(out[1], apply_rope(x[1], torch.arange(6) + 10))


def test_rope_matches_hugging_face_llama() -> None:
    pytest.importorskip("transformers")
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import (
        LlamaRotaryEmbedding,
        apply_rotary_pos_emb,
    )

    config = LlamaConfig(hidden_size=64, num_attention_heads=4, max_position_embeddings=64)
    q, k = torch.randn(2, 4, 10, 16), torch.randn(2, 4, 10, 16)
    positions = torch.arange(10).expand(2, 10)
    cos, sin = LlamaRotaryEmbedding(config)(q, positions)
    expected_q, expected_k = apply_rotary_pos_emb(q, k, cos, sin)
    torch.testing.assert_close(apply_rope(q, positions), expected_q, atol=1e-6, rtol=0)
    torch.testing.assert_close(apply_rope(k, torch.arange(10)), expected_k, atol=1e-6, rtol=0)


def test_apply_rope_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="even"):
        apply_rope(torch.randn(4, 7), torch.arange(4))
    with pytest.raises(ValueError, match="positions"):
        apply_rope(torch.randn(4, 8), torch.arange(5))
    with pytest.raises(ValueError, match="shape"):
        apply_rope(torch.randn(8), torch.arange(1))
