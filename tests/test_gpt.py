"""Tests for llmzero.models.gpt: equal to Hugging Face GPT-2, parameter counts, generation."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmzero.models.gpt import GPT, GPTConfig, parameter_breakdown

transformers = pytest.importorskip("transformers")

SMALL = {"vocab_size": 101, "n_positions": 32, "n_embd": 48, "n_layer": 3, "n_head": 4}


def random_hf_gpt2(seed: int = 0, **overrides) -> transformers.GPT2LMHeadModel:
    """A small Hugging Face GPT-2 with seeded random weights, in eval mode.

    Its LayerNorms are perturbed away from (weight 1, bias 0), so that mixing up their
    weights and biases, or forgetting them, would change the outputs.
    """
    torch.manual_seed(seed)
    settings_ = {**SMALL, "bos_token_id": 0, "eos_token_id": 0, **overrides}
    hf_model = transformers.GPT2LMHeadModel(transformers.GPT2Config(**settings_))
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, parameter in hf_model.named_parameters():
            if ".ln_" in name:
                parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
    return hf_model.eval()


def small_gpt(seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    config = GPTConfig(
        **{"vocab_size": 50, "block_size": 16, "n_layer": 2, "n_head": 2, "n_embd": 32, **overrides}
    )
    return GPT(config).eval()


# -- equivalence with Hugging Face --------------------------------------------------------


def test_logits_match_hugging_face_gpt2_on_the_same_weights() -> None:
    hf_model = random_hf_gpt2()
    model = GPT.from_hf_gpt2(hf_model).eval()
    idx = torch.randint(0, SMALL["vocab_size"], (4, SMALL["n_positions"]))  # a full context
    with torch.no_grad():
        ours, _ = model(idx)  # (4, 32, 101)
        theirs = hf_model(idx).logits  # (4, 32, 101)
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().max().item() <= 1e-5


def test_loss_matches_hugging_face_shifted_labels_loss() -> None:
    hf_model = random_hf_gpt2(seed=3)
    model = GPT.from_hf_gpt2(hf_model).eval()
    idx = torch.randint(0, SMALL["vocab_size"], (2, 20))
    with torch.no_grad():
        _, ours = model(idx[:, :-1], targets=idx[:, 1:])  # we shift, Hugging Face shifts inside
        theirs = hf_model(idx, labels=idx).loss
    assert ours is not None
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_greedy_generation_matches_hugging_face_generate() -> None:
    hf_model = random_hf_gpt2(seed=5)
    model = GPT.from_hf_gpt2(hf_model).eval()
    prompt = torch.randint(0, SMALL["vocab_size"], (1, 6))
    theirs = hf_model.generate(
        prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=12, do_sample=False
    )
    ours = model.generate(prompt, max_new_tokens=12, temperature=0)
    assert torch.equal(ours, theirs)


def test_loading_transposes_conv1d_weights() -> None:
    hf_model = random_hf_gpt2()
    model = GPT.from_hf_gpt2(hf_model)
    hf_weight = hf_model.transformer.h[0].attn.c_attn.weight  # (in, out) = (48, 144)
    assert hf_weight.shape == (48, 144)
    assert torch.equal(model.transformer.h[0].attn.c_attn.weight, hf_weight.t())


def test_loading_rejects_a_state_dict_with_a_missing_weight() -> None:
    hf_model = random_hf_gpt2()
    state = dict(hf_model.state_dict())
    del state["transformer.h.0.ln_1.bias"]
    model = GPT(GPT.from_hf_gpt2(hf_model).config)
    with pytest.raises(ValueError, match=r"missing .*h\.0\.ln_1\.bias"):
        model.load_hf_state_dict(state)


def test_loading_rejects_an_untied_lm_head() -> None:
    hf_model = random_hf_gpt2()
    state = dict(hf_model.state_dict())
    state["lm_head.weight"] = state["lm_head.weight"] + 1.0
    model = GPT(GPT.from_hf_gpt2(hf_model).config)
    with pytest.raises(ValueError, match="not tied"):
        model.load_hf_state_dict(state)


def test_from_hf_gpt2_rejects_an_architecture_it_does_not_implement() -> None:
    hf_model = random_hf_gpt2(activation_function="relu")
    with pytest.raises(ValueError, match="activation_function"):
        GPT.from_hf_gpt2(hf_model)


# -- parameter counts ---------------------------------------------------------------------


def test_gpt2_small_has_124m_parameters_by_formula_and_by_counting() -> None:
    with torch.device("meta"):  # shapes only: no memory for 124M weights
        model = GPT(GPTConfig())
    assert model.num_parameters() == 124_439_808
    assert sum(parameter_breakdown(GPTConfig()).values()) == 124_439_808


def test_parameter_count_matches_hugging_face_gpt2() -> None:
    hf_model = random_hf_gpt2()
    model = GPT.from_hf_gpt2(hf_model)
    assert model.num_parameters() == sum(p.numel() for p in hf_model.parameters())


@settings(max_examples=15, deadline=None)
@given(
    vocab_size=st.integers(1, 300),
    block_size=st.integers(1, 64),
    n_layer=st.integers(1, 3),
    n_head=st.integers(1, 4),
    head_size=st.integers(1, 16),
    bias=st.booleans(),
)
def test_parameter_breakdown_formula_equals_counted_parameters(
    vocab_size: int, block_size: int, n_layer: int, n_head: int, head_size: int, bias: bool
) -> None:
    config = GPTConfig(
        vocab_size=vocab_size,
        block_size=block_size,
        n_layer=n_layer,
        n_head=n_head,
        n_embd=n_head * head_size,
        bias=bias,
    )
    with torch.device("meta"):
        model = GPT(config)
    assert sum(parameter_breakdown(config).values()) == model.num_parameters()


def test_non_embedding_count_leaves_out_token_and_position_embeddings() -> None:
    model = small_gpt()
    config = model.config
    embeddings = (config.vocab_size + config.block_size) * config.n_embd
    assert model.num_parameters(exclude_embeddings=True) == model.num_parameters() - embeddings


def test_lm_head_is_tied_to_the_token_embedding() -> None:
    model = small_gpt()
    assert model.lm_head.weight is model.transformer.wte.weight
    model.lm_head.weight.grad = None
    logits, _ = model(torch.zeros(1, 3, dtype=torch.long))
    logits.sum().backward()
    assert model.transformer.wte.weight.grad is not None  # one matrix, gradients from both uses


# -- forward pass -------------------------------------------------------------------------


def test_too_long_input_raises_value_error() -> None:
    model = small_gpt()
    too_long = torch.zeros(1, model.config.block_size + 1, dtype=torch.long)
    with pytest.raises(ValueError, match="block_size"):
        model(too_long)


def test_forward_returns_logits_for_every_position_and_no_loss_without_targets() -> None:
    model = small_gpt()
    logits, loss = model(torch.zeros(3, 7, dtype=torch.long))
    assert logits.shape == (3, 7, model.config.vocab_size)
    assert loss is None


def test_prediction_at_a_position_ignores_later_tokens() -> None:
    model = small_gpt()
    idx = torch.randint(0, 50, (1, 10))
    changed = idx.clone()
    changed[0, 6:] = (changed[0, 6:] + 1) % 50  # change only the future of position 5
    with torch.no_grad():
        before, _ = model(idx)
        after, _ = model(changed)
    torch.testing.assert_close(before[:, :6], after[:, :6])


def test_untrained_loss_is_close_to_log_vocab_size() -> None:
    model = small_gpt()
    idx = torch.randint(0, 50, (8, 16), generator=torch.Generator().manual_seed(0))
    _, loss = model(idx[:, :-1], targets=idx[:, 1:])
    assert loss is not None
    assert abs(loss.item() - torch.log(torch.tensor(50.0)).item()) < 0.1


def test_a_few_steps_of_adamw_reduce_the_loss_on_one_batch() -> None:
    model = small_gpt().train()
    idx = torch.randint(0, 50, (4, 16), generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        _, loss = model(idx[:, :-1], targets=idx[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


# -- generation ---------------------------------------------------------------------------


def test_generation_is_deterministic_with_a_seeded_generator() -> None:
    model = small_gpt()
    prompt = torch.zeros(2, 1, dtype=torch.long)
    first = model.generate(prompt, 30, generator=torch.Generator().manual_seed(7))
    second = model.generate(prompt, 30, generator=torch.Generator().manual_seed(7))
    other = model.generate(prompt, 30, generator=torch.Generator().manual_seed(8))
    assert first.shape == (2, 31)
    assert torch.equal(first, second)
    assert not torch.equal(first, other)


def test_generation_can_run_past_block_size_by_cropping_the_context() -> None:
    model = small_gpt()
    out = model.generate(torch.zeros(1, 1, dtype=torch.long), 3 * model.config.block_size)
    assert out.shape == (1, 1 + 3 * model.config.block_size)


def test_top_k_of_one_and_temperature_zero_are_greedy() -> None:
    model = small_gpt(seed=1)
    prompt = torch.randint(0, 50, (3, 4), generator=torch.Generator().manual_seed(0))
    greedy = model.generate(prompt, 10, temperature=0)
    top1 = model.generate(prompt, 10, top_k=1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(greedy, top1)
    manual = prompt
    for _ in range(10):
        logits, _ = model(manual)
        manual = torch.cat([manual, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(greedy, manual)


def test_top_k_samples_only_among_the_k_most_likely_tokens() -> None:
    model = small_gpt(seed=2)
    prompt = torch.zeros(64, 3, dtype=torch.long)
    with torch.no_grad():
        logits, _ = model(prompt)
    allowed = set(torch.topk(logits[0, -1], 3).indices.tolist())
    out = model.generate(prompt, 1, top_k=3, generator=torch.Generator().manual_seed(0))
    assert set(out[:, -1].tolist()) <= allowed


def test_generate_restores_training_mode() -> None:
    model = small_gpt(dropout=0.5).train()
    model.generate(torch.zeros(1, 1, dtype=torch.long), 2)
    assert model.training


def test_generate_rejects_negative_temperature_and_zero_top_k() -> None:
    model = small_gpt()
    prompt = torch.zeros(1, 1, dtype=torch.long)
    with pytest.raises(ValueError, match="temperature"):
        model.generate(prompt, 1, temperature=-1.0)
    with pytest.raises(ValueError, match="top_k"):
        model.generate(prompt, 1, top_k=0)


def test_config_rejects_n_embd_not_divisible_by_n_head() -> None:
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(n_embd=10, n_head=3)


# -- the nanoGPT variant and the fused attention --------------------------------------------


def test_logits_match_hugging_face_gpt2_with_the_exact_gelu() -> None:
    hf_model = random_hf_gpt2(seed=7, activation_function="gelu")
    model = GPT.from_hf_gpt2(hf_model).eval()
    assert model.config.gelu_approximate == "none"
    idx = torch.randint(0, SMALL["vocab_size"], (2, SMALL["n_positions"]))
    with torch.no_grad():
        difference = (model(idx)[0] - hf_model(idx).logits).abs().max().item()
    assert difference <= 1e-5


def test_bias_false_drops_every_bias_and_refuses_hugging_face_weights() -> None:
    model = small_gpt(bias=False)
    assert not [name for name, _ in model.named_parameters() if name.endswith("bias")]
    assert model.num_parameters() < small_gpt().num_parameters()
    with pytest.raises(ValueError, match="bias=True"):
        model.load_hf_state_dict(random_hf_gpt2().state_dict())


def test_unknown_gelu_approximation_is_rejected() -> None:
    with pytest.raises(ValueError, match="gelu_approximate"):
        GPTConfig(gelu_approximate="sigmoid")


def test_fused_attention_equals_step_by_step_attention() -> None:
    from llmzero.models.attention import causal_mask, scaled_dot_product_attention

    model = small_gpt()
    attention = model.transformer.h[0].attn
    x = torch.randn(3, 11, model.config.n_embd, generator=torch.Generator().manual_seed(1))
    q, k, v = attention.c_attn(x).split(model.config.n_embd, dim=2)  # (B, T, C) each
    heads = [t.view(3, 11, 2, 16).transpose(1, 2) for t in (q, k, v)]  # (B, H, T, D)
    y, _ = scaled_dot_product_attention(*heads, mask=causal_mask(11))  # (B, H, T, D)
    expected = attention.c_proj(y.transpose(1, 2).reshape(3, 11, model.config.n_embd))
    with torch.no_grad():
        torch.testing.assert_close(attention(x), expected, atol=1e-6, rtol=1e-5)


def test_flop_counter_counts_attention_on_the_cpu() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    model = small_gpt()
    config, seq = model.config, 12
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, seq, dtype=torch.long))
    d = config.n_embd
    matrices = 2 * seq * config.n_layer * 12 * d * d + 2 * seq * d * config.vocab_size
    attention = config.n_layer * 4 * seq * seq * d  # q k^T and weights @ v, full T x T
    assert counter.get_total_flops() == matrices + attention


# -- KV cache -----------------------------------------------------------------------------


def test_kv_cache_chunks_give_the_logits_of_one_full_pass() -> None:
    from llmzero.models.decoding import KVCache

    model = small_gpt(seed=3)
    idx = torch.randint(0, 50, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full, _ = model(idx)  # (2, 16, V)
        cache = KVCache()
        parts = [model(idx[:, :6], cache=cache)[0], model(idx[:, 6:11], cache=cache)[0]]
        parts += [model(idx[:, t : t + 1], cache=cache)[0] for t in range(11, 16)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)
    # (B, H, T, D): GPT-2 caches every head's keys and values
    assert cache.keys[0].shape == (2, model.config.n_head, 16, 16)
    assert cache.nbytes() == 2 * model.config.n_layer * 2 * 16 * model.config.n_embd * 4


def test_generation_with_kv_cache_equals_generation_without() -> None:
    model = small_gpt(seed=4)
    prompt = torch.randint(0, 50, (3, 5), generator=torch.Generator().manual_seed(0))
    for options in ({"temperature": 0}, {"temperature": 0.9, "top_k": 10}):
        runs = [
            model.generate(
                prompt,
                12,
                generator=torch.Generator().manual_seed(5),
                use_cache=use_cache,
                **options,
            )
            for use_cache in (False, True)
        ]
        assert torch.equal(runs[0], runs[1]), options


def test_cached_generation_runs_past_block_size_like_uncached() -> None:
    model = small_gpt(seed=6)
    prompt = torch.zeros(1, 3, dtype=torch.long)
    steps = 2 * model.config.block_size
    cached = model.generate(prompt, steps, temperature=0, use_cache=True)
    assert torch.equal(cached, model.generate(prompt, steps, temperature=0))


def test_forward_with_a_full_cache_raises_value_error() -> None:
    from llmzero.models.decoding import KVCache

    model = small_gpt()
    cache = KVCache()
    with torch.no_grad():
        model(torch.zeros(1, model.config.block_size, dtype=torch.long), cache=cache)
        with pytest.raises(ValueError, match="cached"):
            model(torch.zeros(1, 1, dtype=torch.long), cache=cache)
