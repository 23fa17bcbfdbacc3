"""Tests of llmzero.models.llama: the pieces, and equality with Hugging Face's LlamaForCausalLM."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from llmzero.models.llama import (
    Attention,
    Llama,
    Llama3RopeScaling,
    LlamaConfig,
    RMSNorm,
    apply_rope,
    config_from_hf,
    hf_name_to_ours,
    kv_cache_bytes,
    parameter_breakdown,
    repeat_kv,
    rope_cos_sin,
)

transformers = pytest.importorskip("transformers")

#: Tolerance for our logits against Hugging Face's on the real SmolLM2-135M-Instruct weights
#: (float32). Both compute the same operations in the same order, so the measured maximum
#: absolute difference is 0.0 on CPU; the tolerance leaves room for other BLAS libraries and
#: devices, against logits of size about 30.
REAL_MODEL_TOLERANCE = 1e-3


def tiny_config(**overrides: object) -> LlamaConfig:
    settings: dict = dict(
        block_size=64, vocab_size=97, n_layer=2, n_head=4, n_kv_head=2, n_embd=32, hidden_dim=80
    )
    settings.update(overrides)
    return LlamaConfig(**settings)


def tiny_hf_model(tie: bool) -> transformers.LlamaForCausalLM:
    torch.manual_seed(0)
    hf_config = transformers.LlamaConfig(
        vocab_size=101,
        hidden_size=64,
        intermediate_size=160,
        num_hidden_layers=2,
        num_attention_heads=8,
        num_key_value_heads=2,
        max_position_embeddings=128,
        rms_norm_eps=1e-5,
        tie_word_embeddings=tie,
    )
    model = transformers.LlamaForCausalLM(hf_config).eval()
    with torch.no_grad():  # make the RMSNorm gains non-trivial so a swapped norm would show
        for name, parameter in model.named_parameters():
            if "norm" in name:
                parameter.uniform_(0.5, 1.5)
    return model


@pytest.mark.parametrize("tie", [True, False])
def test_tiny_random_hf_llama_logits_match_ours(tie: bool) -> None:
    hf = tiny_hf_model(tie)
    ours = Llama(config_from_hf(hf.config))
    ours.load_hf_state_dict(hf.state_dict())
    ours.eval()
    assert ours.config.tie_embeddings is tie
    assert ours.num_parameters() == sum(p.numel() for p in hf.parameters())
    idx = torch.randint(0, 101, (3, 19), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = hf(idx).logits  # (3, 19, 101)
        got = ours(idx)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-5


def test_from_hf_folder_round_trip(tmp_path) -> None:
    hf = tiny_hf_model(tie=True)
    hf.save_pretrained(tmp_path)
    ours = Llama.from_hf(tmp_path)
    idx = torch.randint(0, 101, (2, 11), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert (ours(idx) - hf(idx).logits).abs().max().item() <= 1e-5


@pytest.mark.slow
def test_real_smollm2_weights_match_hugging_face() -> None:
    from llmzero.data import assets

    model_dir = assets.hf_model("SmolLM2-135M-Instruct")
    hf = transformers.AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    ours = Llama.from_hf(model_dir)
    assert ours.num_parameters() == sum(p.numel() for p in hf.parameters())
    prompts = [
        "The capital of France is",
        "def fibonacci(n):",
        "Once upon a time, a small robot",
    ]
    for prompt in prompts:
        idx = tokenizer(prompt, return_tensors="pt").input_ids  # (1, T)
        with torch.no_grad():
            expected = hf(idx).logits
            got = ours(idx)
        assert (got - expected).abs().max().item() <= REAL_MODEL_TOLERANCE, prompt
        assert torch.equal(got.argmax(-1), expected.argmax(-1)), prompt


def test_rmsnorm_equals_torch_rmsnorm() -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 7, 32) * 3 + 1
    ours, reference = RMSNorm(32, eps=1e-5), torch.nn.RMSNorm(32, eps=1e-5)
    with torch.no_grad():
        ours.weight.uniform_(0.5, 1.5)
        reference.weight.copy_(ours.weight)
    torch.testing.assert_close(ours(x), reference(x), rtol=1e-6, atol=1e-6)


def test_rmsnorm_output_has_unit_rms_with_unit_gain() -> None:
    x = torch.randn(5, 64) * 10
    y = RMSNorm(64, eps=0.0)(x)
    torch.testing.assert_close(y.pow(2).mean(-1), torch.ones(5))


def test_gqa_with_as_many_kv_heads_as_query_heads_is_multi_head_attention() -> None:
    torch.manual_seed(0)
    config = tiny_config(n_head=4, n_kv_head=4)
    attention = Attention(config)
    x = torch.randn(2, 9, 32)
    cos, sin = rope_cos_sin(torch.arange(9), 8, config.rope_theta)
    mask = torch.ones(9, 9, dtype=torch.bool).tril()
    # Ordinary multi-head attention, written out with PyTorch's fused kernel.
    q = attention.q_proj(x).view(2, 9, 4, 8).transpose(1, 2)
    k = attention.k_proj(x).view(2, 9, 4, 8).transpose(1, 2)
    v = attention.v_proj(x).view(2, 9, 4, 8).transpose(1, 2)
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (2, 4, 9, 8)
    expected = attention.o_proj(y.transpose(1, 2).reshape(2, 9, 32))
    torch.testing.assert_close(attention(x, cos, sin, mask), expected, rtol=1e-5, atol=1e-6)


def test_gqa_equals_torch_sdpa_with_enable_gqa() -> None:
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 6, 5, 8), torch.randn(2, 2, 5, 8), torch.randn(2, 2, 5, 8)
    weights = torch.softmax(
        (q @ repeat_kv(k, 3).transpose(-2, -1) / math.sqrt(8)).masked_fill(
            ~torch.ones(5, 5, dtype=torch.bool).tril(), float("-inf")
        ),
        dim=-1,
    )
    ours = weights @ repeat_kv(v, 3)
    reference = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)


def test_repeat_kv_gives_query_head_h_the_kv_head_h_over_n_rep() -> None:
    kv = torch.arange(3.0).view(1, 3, 1, 1).expand(1, 3, 2, 4)  # head j holds the value j
    repeated = repeat_kv(kv, 2)  # (1, 6, 2, 4)
    assert repeated[0, :, 0, 0].tolist() == [0, 0, 1, 1, 2, 2]


def test_rope_scores_depend_only_on_relative_position() -> None:
    torch.manual_seed(0)
    q, k = torch.randn(16), torch.randn(16)
    cos, sin = rope_cos_sin(torch.arange(200), 16, theta=10000.0)

    def score(m: int, n: int) -> float:
        return float(apply_rope(q, cos[m], sin[m]) @ apply_rope(k, cos[n], sin[n]))

    for m, n in [(5, 2), (3, 3), (0, 7)]:
        assert score(m, n) == pytest.approx(score(m + 150, n + 150), abs=1e-4)
    assert score(5, 2) != pytest.approx(score(5, 4), abs=1e-3)


def test_rope_matches_hugging_face_rotary_embedding() -> None:
    from transformers.models.llama import modeling_llama

    hf_config = transformers.LlamaConfig(
        hidden_size=64, num_attention_heads=4, rope_parameters={"rope_theta": 500.0}
    )
    rotary = modeling_llama.LlamaRotaryEmbedding(hf_config)
    q, k = torch.randn(2, 4, 10, 16), torch.randn(2, 4, 10, 16)
    hf_cos, hf_sin = rotary(q, torch.arange(10)[None])  # (1, 10, 16) each
    hf_q, hf_k = modeling_llama.apply_rotary_pos_emb(q, k, hf_cos, hf_sin)
    cos, sin = rope_cos_sin(torch.arange(10), 16, theta=500.0)
    torch.testing.assert_close(apply_rope(q, cos, sin), hf_q)
    torch.testing.assert_close(apply_rope(k, cos, sin), hf_k)


def test_rope_preserves_vector_lengths() -> None:
    x = torch.randn(1, 2, 30, 8)
    cos, sin = rope_cos_sin(torch.arange(30), 8)
    torch.testing.assert_close(apply_rope(x, cos, sin).norm(dim=-1), x.norm(dim=-1))


def test_model_is_causal() -> None:
    torch.manual_seed(0)
    model = Llama(tiny_config()).eval()
    idx = torch.randint(0, 97, (1, 12))
    changed = idx.clone()
    changed[0, 8:] = (changed[0, 8:] + 1) % 97
    with torch.no_grad():
        torch.testing.assert_close(model(idx)[:, :8], model(changed)[:, :8])


@pytest.mark.parametrize("tie", [True, False])
def test_parameter_breakdown_sums_to_the_model_count(tie: bool) -> None:
    config = tiny_config(tie_embeddings=tie)
    assert sum(parameter_breakdown(config).values()) == Llama(config).num_parameters()


def test_default_config_has_smollm2_135m_parameter_count() -> None:
    assert sum(parameter_breakdown(LlamaConfig()).values()) == 134_515_008


def test_kv_cache_bytes_scales_with_kv_heads() -> None:
    gqa, mha = tiny_config(n_kv_head=1), tiny_config(n_kv_head=4)
    assert kv_cache_bytes(mha, 100) == 4 * kv_cache_bytes(gqa, 100)
    # 2 (K and V) * 2 layers * 1 head * 8 dims * 100 tokens * 2 bytes
    assert kv_cache_bytes(gqa, 100) == 2 * 2 * 1 * 8 * 100 * 2


def test_greedy_generation_is_deterministic_and_stops_at_eos() -> None:
    torch.manual_seed(0)
    model = Llama(tiny_config())
    idx = torch.randint(0, 97, (2, 5))
    first = model.generate(idx, max_new_tokens=6, temperature=0.0)
    assert first.shape == (2, 11)
    assert torch.equal(first, model.generate(idx, max_new_tokens=6, temperature=0.0))
    eos = int(first[0, 5])  # the first greedy token of sequence 0
    stopped = model.generate(idx[:1], max_new_tokens=6, temperature=0.0, eos_token_id=eos)
    assert stopped.shape == (1, 6)


def test_sampling_with_top_k_1_is_greedy() -> None:
    torch.manual_seed(0)
    model = Llama(tiny_config())
    idx = torch.randint(0, 97, (2, 5))
    greedy = model.generate(idx, max_new_tokens=4, temperature=0.0)
    sampled = model.generate(
        idx, max_new_tokens=4, temperature=1.3, top_k=1, generator=torch.Generator().manual_seed(3)
    )
    assert torch.equal(greedy, sampled)


def test_hf_names_translate_to_ours() -> None:
    assert hf_name_to_ours("model.embed_tokens.weight") == "tok_embeddings.weight"
    assert hf_name_to_ours("model.layers.0.mlp.gate_proj.weight") == "layers.0.mlp.gate_proj.weight"
    assert hf_name_to_ours("model.layers.2.input_layernorm.weight") == "layers.2.attn_norm.weight"
    assert hf_name_to_ours("model.norm.weight") == "norm.weight"
    assert hf_name_to_ours("lm_head.weight") == "lm_head.weight"


def test_unsupported_hf_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="hidden_act"):
        config_from_hf(transformers.LlamaConfig(hidden_act="gelu"))
    yarn = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32}
    with pytest.raises(ValueError, match="yarn"):
        config_from_hf(transformers.LlamaConfig(rope_parameters=yarn))
    with pytest.raises(ValueError, match="sliding_window"):
        config_from_hf(transformers.Qwen2Config(use_sliding_window=True))
    with pytest.raises(ValueError, match="not supported"):
        config_from_hf({"model_type": "mistral"})


# --- the same code loads later Llama-family checkpoints --------------------------------
# Small random-weight models of each family Hugging Face implements, with the setting
# that family adds to Llama 2 switched on; ours must give the same logits.

FAMILY_SIZES = dict(
    vocab_size=101,
    hidden_size=64,
    intermediate_size=160,
    num_hidden_layers=2,
    num_attention_heads=8,
    num_key_value_heads=2,
    rms_norm_eps=1e-5,
)
# Llama 3.1's values, with a short "pretraining context" (256) so that the scaling's three
# branches (high frequencies kept, low ones slowed 8x, medium ones interpolated) all occur
# for head_dim 8: the wavelengths are about 6, 167, 4,443 and 118,000 positions.
LLAMA3_ROPE = {
    "rope_type": "llama3",
    "rope_theta": 500000.0,
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 256,
}


def _family_model(name: str) -> transformers.PreTrainedModel:
    torch.manual_seed(0)
    if name == "llama3.1 (rope_scaling, tied)":
        config = transformers.LlamaConfig(
            **FAMILY_SIZES,
            max_position_embeddings=128,
            rope_parameters=LLAMA3_ROPE,
            tie_word_embeddings=True,
        )
        model = transformers.LlamaForCausalLM(config)
    elif name == "llama (attention_bias, mlp_bias)":
        config = transformers.LlamaConfig(
            **FAMILY_SIZES, max_position_embeddings=128, attention_bias=True, mlp_bias=True
        )
        model = transformers.LlamaForCausalLM(config)
    elif name == "qwen2 (qkv biases)":
        config = transformers.Qwen2Config(**FAMILY_SIZES, max_position_embeddings=128)
        model = transformers.Qwen2ForCausalLM(config)
    elif name == "qwen3 (qk-norm, tied)":
        config = transformers.Qwen3Config(
            **FAMILY_SIZES, head_dim=16, max_position_embeddings=128, tie_word_embeddings=True
        )
        model = transformers.Qwen3ForCausalLM(config)
    else:
        raise AssertionError(name)
    with torch.no_grad():  # non-trivial gains and biases, so a missing one would show
        for param_name, parameter in model.named_parameters():
            if "norm" in param_name or param_name.endswith("bias"):
                parameter.uniform_(0.5, 1.5)
    return model.eval()


FAMILIES = [
    "llama3.1 (rope_scaling, tied)",
    "llama (attention_bias, mlp_bias)",
    "qwen2 (qkv biases)",
    "qwen3 (qk-norm, tied)",
]


@pytest.mark.parametrize("family", FAMILIES)
def test_llama_family_checkpoints_give_hugging_face_logits(family: str) -> None:
    hf = _family_model(family)
    ours = Llama(config_from_hf(hf.config))
    ours.load_hf_state_dict(hf.state_dict())
    ours.eval()
    assert ours.num_parameters() == sum(p.numel() for p in hf.parameters())
    assert sum(parameter_breakdown(ours.config).values()) == ours.num_parameters()
    idx = torch.randint(0, 101, (2, 60), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = hf(idx).logits  # (2, 60, 101)
        got = ours(idx)
    assert (got - expected).abs().max().item() <= 1e-5


def test_llama3_rope_scaling_slows_only_the_low_frequencies() -> None:
    scaling = Llama3RopeScaling(
        factor=8.0,
        low_freq_factor=1.0,
        high_freq_factor=4.0,
        original_max_position_embeddings=256,
    )
    inv_freq = 1.0 / (500000.0 ** (torch.arange(0, 8, 2).float() / 8))  # (4,)
    scaled = scaling.apply(inv_freq)
    wavelen = 2 * torch.pi / inv_freq
    fast, slow = wavelen < 256 / 4, wavelen > 256 / 1
    assert fast.any() and slow.any() and (~fast & ~slow).any()  # all three branches occur
    torch.testing.assert_close(scaled[fast], inv_freq[fast])
    torch.testing.assert_close(scaled[slow], inv_freq[slow] / 8)
    middle = ~fast & ~slow
    assert ((scaled[middle] < inv_freq[middle]) & (scaled[middle] > inv_freq[middle] / 8)).all()


def test_rope_scaling_from_a_config_json_dict() -> None:
    config_json = {
        "model_type": "llama",
        "vocab_size": 128256,
        "hidden_size": 2048,
        "intermediate_size": 8192,
        "num_hidden_layers": 16,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0,
        "tie_word_embeddings": True,
        "rope_scaling": {
            "rope_type": "llama3",
            "factor": 32.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
    }  # the shape of Llama 3.2 1B's config.json
    config = config_from_hf(config_json)
    assert config.rope_scaling == Llama3RopeScaling(32.0, 1.0, 4.0, 8192)
    assert config.rope_theta == 500000.0 and config.tie_embeddings


def test_config_rejects_kv_heads_that_do_not_divide_heads() -> None:
    with pytest.raises(ValueError, match="n_kv_head"):
        tiny_config(n_head=4, n_kv_head=3)


# -- KV cache ------------------------------------------------------------------------------


def test_kv_cache_chunks_give_the_logits_of_one_full_pass() -> None:
    from llmzero.models.decoding import KVCache

    torch.manual_seed(0)
    model = Llama(tiny_config()).eval()
    idx = torch.randint(0, 97, (2, 14))
    with torch.no_grad():
        full = model(idx)  # (2, 14, V)
        cache = KVCache()
        parts = [model(idx[:, :4], cache=cache), model(idx[:, 4:10], cache=cache)]
        parts += [model(idx[:, t : t + 1], cache=cache) for t in range(10, 14)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)
    # (B, K, T, D): grouped-query attention caches the 2 key/value heads, not the 4 query heads
    assert cache.keys[0].shape == (2, 2, 14, 8)
    assert cache.nbytes() == kv_cache_bytes(model.config, 14, batch_size=2, bytes_per_value=4)


def test_generation_with_kv_cache_equals_generation_without() -> None:
    torch.manual_seed(1)
    model = Llama(tiny_config(rope_theta=10000.0))
    idx = torch.randint(0, 97, (2, 5))
    for settings in ({"temperature": 0.0}, {"temperature": 1.1, "top_k": 20}):
        runs = [
            model.generate(
                idx, 10, generator=torch.Generator().manual_seed(2), use_cache=use_cache, **settings
            )
            for use_cache in (False, True)
        ]
        assert torch.equal(runs[0], runs[1]), settings
    long_run = [
        model.generate(idx[:1], 70, temperature=0.0, use_cache=use_cache)
        for use_cache in (False, True)
    ]  # past block_size (64): the cached run re-runs the last 64 tokens, as the uncached does
    assert torch.equal(long_run[0], long_run[1])


@pytest.mark.slow
def test_real_smollm2_cached_greedy_generation_equals_uncached() -> None:
    from llmzero.data import assets

    model = Llama.from_hf(assets.hf_model("SmolLM2-135M-Instruct"))
    idx = torch.tensor([[1, 504, 3575, 282, 4649, 314]])  # a short prompt
    cached = model.generate(idx, 12, temperature=0.0, use_cache=True)
    assert torch.equal(cached, model.generate(idx, 12, temperature=0.0))
