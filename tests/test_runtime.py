"""Tests for llmzero.core.runtime: device choice, seeding and weight memory by dtype."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from llmzero.core.runtime import get_device, memory_by_dtype, seed_everything


def test_memory_by_dtype_counts_every_parameter_at_its_element_size() -> None:
    model = nn.Sequential(nn.Linear(10, 20), nn.Linear(20, 3))
    expected = sum(p.numel() for p in model.parameters()) * 4
    assert memory_by_dtype(model) == {torch.float32: expected}
    assert memory_by_dtype(model.to(torch.bfloat16)) == {torch.bfloat16: expected // 2}


def test_memory_by_dtype_groups_mixed_dtypes_largest_first() -> None:
    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 2))  # 72 and 18 parameters
    model[0].to(torch.float16)
    assert memory_by_dtype(model) == {torch.float16: 72 * 2, torch.float32: 18 * 4}
    assert list(memory_by_dtype(model)) == [torch.float16, torch.float32]


def test_memory_by_dtype_counts_tied_weights_once() -> None:
    embedding = nn.Embedding(50, 8)
    head = nn.Linear(8, 50, bias=False)
    head.weight = embedding.weight  # tied, as in GPT-2 and SmolLM2
    model = nn.ModuleDict({"embedding": embedding, "head": head})
    assert memory_by_dtype(model) == {torch.float32: 50 * 8 * 4}


def test_memory_by_dtype_includes_buffers_unless_asked_not_to() -> None:
    norm = nn.BatchNorm1d(6)  # weight, bias (parameters); running mean/var, count (buffers)
    with_buffers = memory_by_dtype(norm)
    assert with_buffers == {torch.float32: 4 * 6 * 4, torch.int64: 8}
    assert memory_by_dtype(norm, include_buffers=False) == {torch.float32: 2 * 6 * 4}


def test_memory_by_dtype_matches_transformers_memory_footprint() -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
    )
    model = transformers.LlamaForCausalLM(config)
    for dtype in (torch.float32, torch.bfloat16):
        model = model.to(dtype)
        assert sum(memory_by_dtype(model).values()) == model.get_memory_footprint()


def test_memory_by_dtype_rejects_what_is_not_a_module() -> None:
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        memory_by_dtype({"weight": torch.zeros(3)})  # type: ignore[arg-type]


def test_seed_everything_makes_torch_draws_repeat() -> None:
    seed_everything(3)
    first = torch.rand(4)
    seed_everything(3)
    assert torch.equal(first, torch.rand(4))


def test_get_device_honours_an_explicit_preference() -> None:
    assert get_device("cpu") == torch.device("cpu")
