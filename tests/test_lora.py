"""Tests for llmzero.models.lora: a fresh adapter changes nothing, the outputs equal peft's
with the same A and B, merging gives the unmerged logits, only A and B train, and bad input
gets a clear error."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

from llmzero.models import lora

TARGETS = ["q_proj", "v_proj", "down_proj"]
# peft 0.21 calls a transformers method that transformers 5 marks as deprecated.
pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated")


def tiny_llama(seed: int = 0, dtype: torch.dtype = torch.float32) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )
    return LlamaForCausalLM(config).to(dtype).eval()


def token_ids(seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 64, (2, 10), generator=torch.Generator().manual_seed(seed))


def randomize_b(model: nn.Module, seed: int = 1) -> None:
    """A freshly injected B is zero; give it values, as training would."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, layer in lora.lora_layers(model):
            noise = torch.randn(layer.lora_B.shape, generator=generator, dtype=torch.float64)
            layer.lora_B.copy_(0.05 * noise)


def test_a_fresh_adapter_computes_the_base_model_exactly() -> None:
    model, ids = tiny_llama(), token_ids()
    with torch.no_grad():
        before = model(ids).logits
    lora.inject_lora(model, TARGETS, rank=4, alpha=8)
    with torch.no_grad():
        assert torch.equal(model(ids).logits, before)


@pytest.mark.parametrize("rank, alpha", [(1, 1.0), (4, 8.0), (8, 32.0)])
def test_outputs_equal_peft_with_the_same_a_and_b(rank: int, alpha: float) -> None:
    ids = token_ids()
    ours = tiny_llama()
    names = lora.inject_lora(ours, TARGETS, rank=rank, alpha=alpha)
    randomize_b(ours)
    theirs = get_peft_model(
        tiny_llama(), LoraConfig(r=rank, lora_alpha=alpha, target_modules=TARGETS)
    )
    peft_modules = dict(theirs.base_model.model.named_modules())
    assert len(names) == 6
    with torch.no_grad():
        for name, layer in lora.lora_layers(ours):
            peft_layer = peft_modules[name]
            assert peft_layer.scaling["default"] == pytest.approx(layer.scaling)
            peft_layer.lora_A["default"].weight.copy_(layer.lora_A)
            peft_layer.lora_B["default"].weight.copy_(layer.lora_B)
        ours_logits, peft_logits = ours(ids).logits, theirs(input_ids=ids).logits
    assert (ours_logits - tiny_llama()(ids).logits).abs().max() > 1e-3  # the adapter acts
    torch.testing.assert_close(ours_logits, peft_logits, rtol=0, atol=1e-6)


def test_merged_logits_equal_unmerged_logits_and_unmerge_restores() -> None:
    model, ids = tiny_llama(), token_ids()
    original = {n: p.detach().clone() for n, p in model.named_parameters()}
    lora.inject_lora(model, TARGETS, rank=4, alpha=8)
    randomize_b(model)
    with torch.no_grad():
        unmerged = model(ids).logits
        assert lora.merge_lora(model) == 6
        merged = model(ids).logits
    assert (merged - unmerged).abs().max() <= 1e-5
    lora.unmerge_lora(model)
    plain = lora.unload_lora(model, merge=False)
    for name, parameter in plain.named_parameters():
        torch.testing.assert_close(parameter, original[name], rtol=0, atol=1e-6)


def test_unload_with_merge_leaves_plain_linear_layers_with_the_same_logits() -> None:
    model, ids = tiny_llama(), token_ids()
    lora.inject_lora(model, TARGETS, rank=2, alpha=4)
    randomize_b(model)
    with torch.no_grad():
        adapted = model(ids).logits
        plain = lora.unload_lora(model)
        assert not list(lora.lora_layers(plain))
        assert (plain(ids).logits - adapted).abs().max() <= 1e-5


def test_only_a_and_b_train() -> None:
    model, ids = tiny_llama().train(), token_ids()
    lora.inject_lora(model, TARGETS, rank=4, alpha=8)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(name.endswith((".lora_A", ".lora_B")) for name in trainable)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        loss = model(ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    for name, parameter in model.named_parameters():
        if name in frozen:
            assert torch.equal(parameter, frozen[name]), name
            assert parameter.grad is None
    assert any(layer.lora_B.abs().max() > 0 for _, layer in lora.lora_layers(model))
    assert set(lora.lora_state_dict(model)) == trainable


def test_parameter_count_matches_the_formula() -> None:
    model = tiny_llama()
    total = lora.count_parameters(model).total
    names = lora.inject_lora(model, ["q_proj", "v_proj"], rank=4, alpha=8)
    # q_proj: 32 -> 32 and v_proj: 32 -> 16 (2 key-value heads of 8) in each of 2 layers
    expected = 2 * (4 * (32 + 32) + 4 * (32 + 16))
    count = lora.count_parameters(model)
    assert len(names) == 4 and count.trainable == expected
    assert count.total == total + expected
    assert count.share == pytest.approx(expected / (total + expected))


def test_tied_weights_count_once() -> None:
    embedding = nn.Embedding(10, 4)
    head = nn.Linear(4, 10, bias=False)
    head.weight = embedding.weight
    assert lora.count_parameters(nn.ModuleList([embedding, head])).total == 40


def test_works_on_a_plain_module_and_in_float64() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)).double()
    names = lora.inject_lora(model, ["0"], rank=2, alpha=2)
    assert names == ["0"] and model[0].lora_A.dtype == torch.float64
    x = torch.randn(4, 6, dtype=torch.float64)
    randomize_b(model)
    layer = model[0]
    expected = layer.base(x) + x @ (layer.lora_B @ layer.lora_A).T * layer.scaling
    torch.testing.assert_close(layer(x), expected)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"rank": 0, "alpha": 8}, "rank must be a positive integer"),
        ({"rank": -2, "alpha": 8}, "rank must be a positive integer"),
        ({"rank": 2.5, "alpha": 8}, "rank must be a positive integer"),
        ({"rank": 4, "alpha": 0}, "alpha must be positive"),
        ({"rank": 4, "alpha": 8, "dropout": 1.0}, "dropout must be in"),
    ],
)
def test_bad_hyperparameters_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        lora.inject_lora(tiny_llama(), ["q_proj"], **kwargs)
    with pytest.raises(ValueError, match=message):
        lora.LoRALinear(nn.Linear(3, 3), **kwargs)


def test_target_names_that_match_nothing_are_refused_with_the_linear_names() -> None:
    with pytest.raises(ValueError, match=r"\['query'\] match no module.*q_proj"):
        lora.inject_lora(tiny_llama(), ["q_proj", "query"], rank=4, alpha=8)
    with pytest.raises(ValueError, match="target_names is empty"):
        lora.inject_lora(tiny_llama(), [], rank=4, alpha=8)


def test_non_linear_targets_and_double_injection_are_refused() -> None:
    with pytest.raises(TypeError, match=r"not an nn\.Linear"):
        lora.inject_lora(tiny_llama(), ["self_attn"], rank=4, alpha=8)
    with pytest.raises(TypeError, match=r"wraps an nn\.Linear"):
        lora.LoRALinear(nn.Conv1d(3, 3, 1), rank=2, alpha=2)  # type: ignore[arg-type]
    model = tiny_llama()
    lora.inject_lora(model, ["q_proj"], rank=4, alpha=8)
    with pytest.raises(ValueError, match="already has LoRA layers"):
        lora.inject_lora(model, ["v_proj"], rank=4, alpha=8)


def test_merge_state_errors() -> None:
    with pytest.raises(ValueError, match="no LoRA layers"):
        lora.merge_lora(tiny_llama())
    layer = lora.LoRALinear(nn.Linear(3, 3), rank=1, alpha=1)
    with pytest.raises(RuntimeError, match="not merged"):
        layer.unmerge()
    layer.merge()
    with pytest.raises(RuntimeError, match="already merged"):
        layer.merge()


def test_in_float64_merged_equals_unmerged_to_rounding() -> None:
    model, ids = tiny_llama(dtype=torch.float64), token_ids()
    lora.inject_lora(model, TARGETS, rank=4, alpha=8)
    randomize_b(model)
    assert next(layer for _, layer in lora.lora_layers(model)).lora_A.dtype == torch.float64
    with torch.no_grad():
        unmerged = model(ids).logits
        lora.merge_lora(model)
        assert (model(ids).logits - unmerged).abs().max() <= 1e-12
