"""Tests of llmzero.evaluation.interpretability: hooks, logit lens, patching, induction."""

from __future__ import annotations

import pytest
import torch

from llmzero.evaluation.interpretability import (
    ablate_head,
    attention_patterns,
    head_outputs,
    induction_score,
    logit_lens,
    patch_residual,
    previous_token_score,
    residual_stream,
)
from llmzero.models.llama import Llama, LlamaConfig


@pytest.fixture
def model() -> Llama:
    torch.manual_seed(0)
    config = LlamaConfig(
        block_size=64, vocab_size=97, n_layer=3, n_head=4, n_kv_head=2, n_embd=32, hidden_dim=80
    )
    return Llama(config).eval()


@pytest.fixture
def ids() -> torch.Tensor:
    return torch.randint(0, 97, (2, 9), generator=torch.Generator().manual_seed(1))


def test_residual_stream_has_embedding_and_every_block(model, ids):
    stream = residual_stream(model, ids)
    assert stream.shape == (4, 2, 9, 32)
    torch.testing.assert_close(stream[0], model.tok_embeddings(ids))
    assert not model.tok_embeddings._forward_hooks  # the hooks are removed


def test_logit_lens_at_the_last_layer_equals_the_logits(model, ids):
    stream = residual_stream(model, ids)
    with torch.no_grad():
        assert torch.equal(logit_lens(model, stream[-1]), model(ids))
    with pytest.raises(ValueError, match="n_embd"):
        logit_lens(model, torch.zeros(3, 5))


def test_patching_the_whole_clean_residual_restores_the_clean_logits(model, ids):
    clean, corrupted = ids, ids.flip(1)
    clean_stream = residual_stream(model, clean)
    with torch.no_grad():
        clean_logits = model(clean)
    everywhere = torch.ones_like(ids, dtype=torch.bool)
    for layer in range(4):
        patched = patch_residual(model, corrupted, layer, clean_stream[layer], everywhere)
        torch.testing.assert_close(patched, clean_logits, rtol=0, atol=1e-6)
    nowhere = torch.zeros_like(everywhere)
    with torch.no_grad():
        torch.testing.assert_close(
            patch_residual(model, corrupted, 2, clean_stream[2], nowhere), model(corrupted)
        )
    assert not any(block._forward_hooks for block in model.layers)


def test_patching_one_position_changes_only_that_position_and_later(model, ids):
    clean_stream = residual_stream(model, ids)
    corrupted = ids.flip(1)
    where = torch.zeros_like(ids, dtype=torch.bool)
    where[:, 4] = True
    with torch.no_grad():
        base = model(corrupted)
    patched = patch_residual(model, corrupted, 1, clean_stream[1], where)
    torch.testing.assert_close(patched[:, :4], base[:, :4])
    assert not torch.allclose(patched[:, 4:], base[:, 4:])


def test_patch_residual_rejects_bad_arguments(model, ids):
    where = torch.ones_like(ids, dtype=torch.bool)
    with pytest.raises(ValueError, match="layer"):
        patch_residual(model, ids, 5, torch.zeros(32), where)
    with pytest.raises(ValueError, match="where"):
        patch_residual(model, ids, 1, torch.zeros(32), where[:, :3])
    with pytest.raises(ValueError, match="idx"):
        residual_stream(model, ids.float())


def test_attention_patterns_are_causal_distributions_that_reproduce_the_output(model, ids):
    weights, norms = attention_patterns(model, ids)
    assert weights.shape == (3, 2, 4, 9, 9) and norms.shape == (3, 2, 4, 9)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 2, 4, 9))
    assert torch.all(weights.triu(1) == 0)
    # the heads' outputs captured by hooks are the weights times the values
    heads = head_outputs(model, ids)  # (L, B, T, H, D)
    assert heads.shape == (3, 2, 9, 4, 8)
    first = model.layers[0].attn
    x = model.layers[0].attn_norm(model.tok_embeddings(ids))
    v = first.v_proj(x).view(2, 9, 2, 8).repeat_interleave(2, dim=2)  # (B, T, H, D)
    expected = torch.einsum("bhij,bjhd->bihd", weights[0], v)
    torch.testing.assert_close(heads[0], expected, rtol=1e-4, atol=1e-5)


def test_recorded_patterns_and_head_outputs_are_detached_for_plotting(model, ids):
    weights, norms = attention_patterns(model, ids)
    heads = head_outputs(model, ids)
    assert not (weights.requires_grad or norms.requires_grad or heads.requires_grad)
    weights[0, 0, 0].numpy()  # what the chapter's heatmaps call


def test_ablate_head_zeroes_or_replaces_one_slice_only(model, ids):
    o_proj = model.layers[1].attn.o_proj
    seen = []
    with ablate_head(o_proj, head=2, n_head=4):  # a hook added later sees its result
        probe = o_proj.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
        model(ids)
    probe.remove()
    model(ids)  # outside the block the head is back
    zeroed = seen[0].view(2, 9, 4, 8)
    assert torch.all(zeroed[:, :, 2] == 0) and torch.any(zeroed[:, :, 1] != 0)
    seen.clear()
    with ablate_head(o_proj, head=0, n_head=4, value=torch.full((8,), 3.0)):
        probe = o_proj.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
        model(ids)
    probe.remove()
    assert torch.all(seen[0].view(2, 9, 4, 8)[:, :, 0] == 3.0)
    with pytest.raises(ValueError, match="head"), ablate_head(o_proj, head=4, n_head=4):
        pass


def test_induction_score_of_hand_built_patterns():
    tokens = torch.tensor([[5, 6, 7, 8, 5, 6, 7, 8]])  # a segment of 4 repeated
    seq = tokens.shape[1]
    induction = torch.zeros(seq, seq)
    previous = torch.zeros(seq, seq)
    for i in range(seq):
        previous[i, max(i - 1, 0)] = 1.0
        induction[i, i - 3 if i >= 4 else i] = 1.0  # from 5 (second copy) to 6 (first copy)
    uniform = torch.ones(seq, seq).tril()
    uniform = uniform / uniform.sum(-1, keepdim=True)
    weights = torch.stack([induction, previous, uniform])[None]  # (B=1, H=3, T, T)
    scores = induction_score(weights, tokens)
    torch.testing.assert_close(scores[:2], torch.tensor([1.0, 0.0]))
    # uniform attention from query i (i = 4..7) puts 1 / (i + 1) on the one target
    expected = sum(1 / (i + 1) for i in range(4, 8)) / 4
    assert scores[2].item() == pytest.approx(expected)
    torch.testing.assert_close(previous_token_score(weights)[:2], torch.tensor([0.0, 1.0]))
    stacked = induction_score(torch.stack([weights, weights]), tokens)  # leading layer axis
    assert stacked.shape == (2, 3)
    with pytest.raises(ValueError, match="repeats"):
        induction_score(weights, torch.arange(seq)[None])
    with pytest.raises(ValueError, match="match"):
        induction_score(weights, tokens[:, :5])
