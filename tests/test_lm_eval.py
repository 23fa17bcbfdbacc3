"""Log-probability scoring: perplexity windows and multiple-choice options."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from llmzero.evaluation import lm
from llmzero.models.gpt import GPT, GPTConfig
from llmzero.training import pretrain


def _encode(text: str) -> list[int]:
    return [ord(char) % 50 for char in text]


@pytest.fixture(scope="module")
def tiny_llama():
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def tiny_gpt():
    torch.manual_seed(0)
    return GPT(GPTConfig(block_size=32, vocab_size=50, n_layer=1, n_head=2, n_embd=16)).eval()


PROMPTS = ["hello there", "abc"]
OPTIONS = [[" x", " yy", " zzz"], [" q", " a longer one", " r"]]


def test_shared_prompt_cache_equals_full_sequences(tiny_llama):
    cached = lm.option_log_probs(tiny_llama, _encode, PROMPTS, OPTIONS, share_prompt=True)
    full = lm.option_log_probs(tiny_llama, _encode, PROMPTS, OPTIONS, share_prompt=False)
    np.testing.assert_allclose(cached.log_prob, full.log_prob, atol=1e-4)


def test_option_log_prob_is_the_sum_over_option_tokens(tiny_gpt):
    scores = lm.option_log_probs(tiny_gpt, _encode, PROMPTS, OPTIONS)
    ids = torch.tensor([_encode("abc" + " a longer one")])
    with torch.no_grad():
        log_probs = torch.log_softmax(tiny_gpt(ids)[0], dim=-1)[0]  # (T, V)
    expected = sum(log_probs[t - 1, ids[0, t]].item() for t in range(3, ids.shape[1]))
    assert scores.log_prob[1, 1] == pytest.approx(expected, abs=1e-4)
    assert scores.n_tokens[1].tolist() == [2, 13, 2]
    assert scores.n_bytes[0].tolist() == [2, 3, 4]


def test_normalisation_changes_the_choice():
    scores = lm.OptionScores(
        log_prob=np.array([[-3.0, -4.0]]), n_tokens=np.array([[1, 4]]), n_bytes=np.array([[2, 8]])
    )
    assert lm.choose_options(scores, "sum").tolist() == [0]
    assert lm.choose_options(scores, "per_token").tolist() == [1]
    assert lm.choose_options(scores, "per_byte").tolist() == [1]
    with pytest.raises(ValueError, match="normalisation"):
        lm.choose_options(scores, "mean")


def test_windows_match_pretrain_bits_per_byte(tiny_gpt):
    tokens = np.arange(200) % 50
    nll, targets = lm.window_negative_log_likelihoods(tiny_gpt, tokens, context_length=16)
    assert nll.shape == targets.shape == (12, 16)
    token_bytes = np.arange(50) % 3 + 1
    ours = pretrain.bits_per_byte(nll.mean(), nll.size, int(token_bytes[targets].sum()))
    expected = pretrain.evaluate_bits_per_byte(tiny_gpt, tokens, token_bytes, block_size=16)
    assert ours == pytest.approx(expected, rel=1e-6)
    assert lm.perplexity(nll) == pytest.approx(math.exp(nll.mean()))


def test_uniform_model_has_perplexity_equal_to_vocabulary_size():
    assert lm.perplexity(np.full(10, math.log(50))) == pytest.approx(50)


def test_chance_adjusted_accuracy_and_errors(tiny_gpt):
    assert lm.chance_adjusted_accuracy(0.25, 4) == pytest.approx(0.0)
    assert lm.chance_adjusted_accuracy(1.0, 4) == pytest.approx(1.0)
    assert lm.chance_adjusted_accuracy(0.0, 2) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="n_options"):
        lm.chance_adjusted_accuracy(0.5, 1)
    with pytest.raises(ValueError, match="one window"):
        lm.window_negative_log_likelihoods(tiny_gpt, [1, 2, 3], context_length=16)
    with pytest.raises(ValueError, match="Hugging Face"):
        lm.option_log_probs(tiny_gpt, _encode, PROMPTS, OPTIONS, share_prompt=True)
    with pytest.raises(ValueError, match="one list of options per prompt"):
        lm.option_log_probs(tiny_gpt, _encode, PROMPTS, OPTIONS[:1])
