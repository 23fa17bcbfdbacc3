"""Tests of llmzero.models.decoding: processors, greedy, sampling and beam search equal to
Hugging Face's generate, the KV cache, stopping, streaming and speculative decoding."""

from __future__ import annotations

import pytest
import torch

from llmzero.models.decoding import (
    DraftModelDrafter,
    KVCache,
    ModelRunner,
    PromptLookupDrafter,
    RepetitionPenalty,
    StopOnStrings,
    Temperature,
    TopK,
    TopP,
    beam_search,
    generate,
    iter_generate,
    make_processors,
    speculative_generate,
    stream_text,
)
from llmzero.models.gpt import GPT, GPTConfig
from llmzero.models.llama import Llama, LlamaConfig

transformers = pytest.importorskip("transformers")
from transformers.generation import logits_process as hf_lp  # noqa: E402

VOCAB = 101
EOS = 3


def tiny_hf_llama(seed: int = 1) -> transformers.LlamaForCausalLM:
    """A small random Hugging Face Llama that does not just repeat itself (large initial
    weights) and writes its end-of-sequence token now and then (a larger output row)."""
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        eos_token_id=EOS,
        pad_token_id=EOS,
        bos_token_id=1,
        tie_word_embeddings=False,
        initializer_range=0.3,
    )
    model = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():
        model.lm_head.weight[EOS].mul_(3.0)
    return model


def ours_from(hf_model: transformers.LlamaForCausalLM) -> Llama:
    config = LlamaConfig(
        block_size=128,
        vocab_size=VOCAB,
        n_layer=2,
        n_head=4,
        n_kv_head=2,
        n_embd=64,
        hidden_dim=128,
        norm_eps=hf_model.config.rms_norm_eps,
        rope_theta=hf_model.config.rope_parameters["rope_theta"],
        tie_embeddings=False,
    )
    model = Llama(config).eval()
    model.load_hf_state_dict(hf_model.state_dict())
    return model


@pytest.fixture(scope="module")
def hf_model() -> transformers.LlamaForCausalLM:
    return tiny_hf_llama()


PROMPT = torch.tensor([[5, 17, 42, 8, 77, 23]])


# -- processors -------------------------------------------------------------------------


def test_processors_equal_hugging_face_warpers() -> None:
    torch.manual_seed(0)
    scores = torch.randn(3, 50) * 3
    ids = torch.randint(0, 50, (3, 7))
    pairs = [
        (Temperature(0.7), hf_lp.TemperatureLogitsWarper(0.7)),
        (TopK(5), hf_lp.TopKLogitsWarper(5)),
        (TopP(0.8), hf_lp.TopPLogitsWarper(0.8)),
        (RepetitionPenalty(1.3), hf_lp.RepetitionPenaltyLogitsProcessor(1.3)),
    ]
    for ours, theirs in pairs:
        assert torch.equal(ours(ids, scores.clone()), theirs(ids, scores.clone())), type(ours)


def test_top_p_keeps_the_smallest_set_reaching_p() -> None:
    scores = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    kept = TopP(0.7)(torch.zeros(1, 1, dtype=torch.long), scores).isfinite()
    assert kept.tolist() == [[True, True, False, False]]  # 0.5 + 0.3 >= 0.7
    kept_one = TopP(0.01)(torch.zeros(1, 1, dtype=torch.long), scores).isfinite()
    assert kept_one.sum().item() == 1  # the most likely token always stays


def test_repetition_penalty_lowers_seen_tokens_of_either_sign() -> None:
    scores = torch.tensor([[2.0, -2.0, 1.0]])
    out = RepetitionPenalty(2.0)(torch.tensor([[0, 1]]), scores)
    assert out.tolist() == [[1.0, -4.0, 1.0]]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Temperature(0.0), "temperature"),
        (lambda: Temperature(-1.0), "temperature"),
        (lambda: TopP(0.0), "top_p"),
        (lambda: TopP(1.5), "top_p"),
        (lambda: TopK(0), "top_k"),
        (lambda: RepetitionPenalty(0.0), "repetition"),
        (lambda: make_processors(top_p=2.0, do_sample=False), "top_p"),
    ],
)
def test_bad_settings_raise_clear_errors(make, message) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_beam_search_rejects_bad_num_beams(hf_model) -> None:
    for bad in (0, -2, 1.5):
        with pytest.raises(ValueError, match="num_beams"):
            beam_search(hf_model, PROMPT, max_new_tokens=3, num_beams=bad)


# -- equal to Hugging Face's generate ----------------------------------------------------


@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_equals_hugging_face_generate(hf_model, use_cache: bool) -> None:
    theirs = hf_model.generate(PROMPT, max_new_tokens=15, do_sample=False)
    ours = generate(hf_model, PROMPT, 15, eos_token_id=EOS, use_cache=use_cache).sequences
    assert torch.equal(ours, theirs)
    ours_llama = generate(ours_from(hf_model), PROMPT, 15, eos_token_id=EOS, use_cache=use_cache)
    assert torch.equal(ours_llama.sequences, theirs)


def test_greedy_with_repetition_penalty_equals_hugging_face(hf_model) -> None:
    theirs = hf_model.generate(PROMPT, max_new_tokens=15, do_sample=False, repetition_penalty=1.5)
    ours = generate(hf_model, PROMPT, 15, repetition_penalty=1.5, eos_token_id=EOS)
    assert torch.equal(ours.sequences, theirs)


def test_sampling_equals_hugging_face_with_the_same_seed(hf_model) -> None:
    prompts = PROMPT.repeat(3, 1)  # three samples of one prompt, in one batch
    settings = {"temperature": 0.8, "top_k": 20, "top_p": 0.9, "repetition_penalty": 1.2}
    torch.manual_seed(123)
    theirs = hf_model.generate(
        prompts,
        attention_mask=torch.ones_like(prompts),
        max_new_tokens=12,
        do_sample=True,
        output_scores=True,
        return_dict_in_generate=True,
        **settings,
    )
    torch.manual_seed(123)
    ours = generate(hf_model, prompts, 12, do_sample=True, eos_token_id=EOS, **settings)
    assert torch.equal(ours.sequences, theirs.sequences)
    for mine, hf_scores in zip(ours.scores, theirs.scores, strict=True):
        assert torch.equal(mine.isfinite(), hf_scores.isfinite())  # the same tokens kept
        finite = mine.isfinite()
        torch.testing.assert_close(mine[finite], hf_scores[finite], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("num_beams", [1, 2, 4])
def test_beam_search_equals_hugging_face(hf_model, num_beams: int) -> None:
    for max_new in (4, 9):
        theirs = hf_model.generate(
            PROMPT, max_new_tokens=max_new, num_beams=num_beams, do_sample=False
        )
        ours = beam_search(hf_model, PROMPT, max_new, num_beams=num_beams, eos_token_id=EOS)
        assert torch.equal(ours.sequences, theirs), (num_beams, max_new)


def test_beam_search_with_length_penalty_and_early_eos_equals_hugging_face() -> None:
    hf_model = tiny_hf_llama(seed=0)
    prompt = torch.tensor([[9, 31, 3, 60]])
    lengths = set()
    for penalty in (0.0, 1.0, 2.0):
        theirs = hf_model.generate(
            prompt, max_new_tokens=10, num_beams=3, length_penalty=penalty, do_sample=False
        )
        ours = beam_search(
            hf_model, prompt, 10, num_beams=3, eos_token_id=EOS, length_penalty=penalty
        )
        assert torch.equal(ours.sequences, theirs), penalty
        lengths |= {len(sequence) for _, sequence in ours.hypotheses}
    assert len(lengths) > 1  # hypotheses that ended early, at the end-of-sequence token


def test_beam_search_finds_a_more_likely_sequence_than_greedy(hf_model) -> None:
    """On this model greedy stops early; a beam finds a reply with a higher log-probability
    (unnormalised: compare totals, not the length-penalised scores)."""
    greedy = generate(hf_model, PROMPT, 10, eos_token_id=EOS).sequences
    beams = beam_search(hf_model, PROMPT, 10, num_beams=3, eos_token_id=EOS, length_penalty=0.0)
    assert not torch.equal(beams.sequences, greedy)

    def total_log_prob(ids: torch.Tensor) -> float:
        with torch.no_grad():
            log_probs = hf_model(ids).logits.log_softmax(-1)[0, :-1]  # (T - 1, V)
        picked = log_probs.gather(1, ids[0, 1:, None])[PROMPT.shape[1] - 1 :]
        return picked.sum().item()

    assert total_log_prob(beams.sequences) > total_log_prob(greedy)


def test_beam_search_with_one_beam_is_greedy(hf_model) -> None:
    greedy = generate(hf_model, PROMPT, 8).sequences
    assert torch.equal(beam_search(hf_model, PROMPT, 8, num_beams=1).sequences, greedy)


# -- KV cache ----------------------------------------------------------------------------


def test_kv_cache_gives_the_same_logits_as_the_full_pass(hf_model) -> None:
    model = ours_from(hf_model)
    ids = torch.randint(0, VOCAB, (2, 12))
    full = model(ids)  # (2, 12, V)
    cache = KVCache()
    parts = [model(ids[:, :5], cache=cache), model(ids[:, 5:9], cache=cache)]
    parts += [model(ids[:, t : t + 1], cache=cache) for t in range(9, 12)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-4, rtol=1e-5)
    assert cache.seq_len == 12


def test_kv_cache_memory_equals_the_formula(hf_model) -> None:
    from llmzero.models.llama import kv_cache_bytes

    model = ours_from(hf_model)
    cache = KVCache()
    model(torch.randint(0, VOCAB, (3, 10)), cache=cache)
    assert cache.nbytes() == kv_cache_bytes(model.config, 10, batch_size=3, bytes_per_value=4)
    assert cache.keys[0].shape == (3, 2, 10, 16)  # (B, K, T, D): the K heads, not H


def test_cache_reorder_keeps_the_chosen_rows() -> None:
    cache = KVCache()
    keys = torch.arange(3.0).view(3, 1, 1, 1)
    cache.update(0, keys, -keys)
    cache.reorder(torch.tensor([2, 2, 0]))
    assert cache.keys[0].flatten().tolist() == [2.0, 2.0, 0.0]
    assert cache.values[0].flatten().tolist() == [-2.0, -2.0, 0.0]


def test_cache_refuses_layers_out_of_order() -> None:
    with pytest.raises(ValueError, match="order"):
        KVCache().update(1, torch.zeros(1, 1, 1, 1), torch.zeros(1, 1, 1, 1))


def test_runner_refuses_a_shorter_sequence_without_reset(hf_model) -> None:
    runner = ModelRunner(ours_from(hf_model))
    runner(PROMPT)
    with pytest.raises(ValueError, match="reset"):
        runner(PROMPT)


# -- stopping and streaming --------------------------------------------------------------


class DigitTokenizer:
    """A stand-in tokenizer: token i is the text of i % 10; token 0 is a newline."""

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        return "".join("\n" if int(i) == 0 else str(int(i) % 10) for i in ids)

    def batch_decode(self, rows) -> list[str]:
        return [self.decode(row) for row in rows]


def test_generation_stops_at_eos_and_pads_finished_rows(hf_model) -> None:
    first = generate(hf_model, PROMPT, 6).sequences[0, PROMPT.shape[1]].item()
    out = generate(hf_model, PROMPT.repeat(2, 1), 6, eos_token_id=first).sequences
    assert out.shape == (2, PROMPT.shape[1] + 1)  # both rows finished at once


def test_stop_strings_stop_the_row_that_wrote_them(hf_model) -> None:
    stop_token = generate(hf_model, PROMPT, 6).sequences[0, PROMPT.shape[1] + 2].item()
    stop_text = DigitTokenizer().decode([stop_token])
    out = generate(
        hf_model, PROMPT, 6, stopping=[StopOnStrings(DigitTokenizer(), [stop_text])]
    ).sequences
    assert DigitTokenizer().decode(out[0, PROMPT.shape[1] :].tolist()).endswith(stop_text)
    assert out.shape[1] <= PROMPT.shape[1] + 3
    with pytest.raises(ValueError, match="stop_strings"):
        StopOnStrings(DigitTokenizer(), "\n")


def test_streamed_tokens_are_the_generated_tokens(hf_model) -> None:
    streamed = [int(ids[0]) for ids, _ in iter_generate(hf_model, PROMPT, 10)]
    assert streamed == generate(hf_model, PROMPT, 10).sequences[0, PROMPT.shape[1] :].tolist()


def test_stream_text_pieces_join_to_the_decoded_text() -> None:
    class Bytes:
        """Each token is one byte of UTF-8: multi-byte characters span several tokens."""

        def decode(self, ids, skip_special_tokens: bool = True) -> str:
            return bytes(ids).decode("utf-8", errors="replace")

    text = "Grüße, 世界!"
    pieces = list(stream_text(text.encode("utf-8"), Bytes()))
    assert "".join(pieces) == text
    assert all("\ufffd" not in piece for piece in pieces)  # no half characters printed


# -- speculative decoding ---------------------------------------------------------------

REPETITIVE = torch.tensor([[5, 17, 42, 8, 77, 23, 5, 17, 42, 8, 77, 23, 5, 17]])


def test_cache_crop_keeps_the_first_positions() -> None:
    cache = KVCache()
    keys = torch.arange(2 * 5.0).view(1, 1, 5, 2)  # (B, K, T, D)
    cache.update(0, keys, keys + 1)
    cache.crop(3)
    assert cache.seq_len == 3 and torch.equal(cache.keys[0], keys[:, :, :3])
    with pytest.raises(ValueError, match="Cannot crop"):
        cache.crop(4)


def test_prompt_lookup_proposes_what_followed_the_earliest_match() -> None:
    drafter = PromptLookupDrafter(max_ngram_size=2)
    ids = torch.tensor([1, 2, 3, 4, 9, 2, 3, 7, 2, 3])
    assert drafter(ids, 2).tolist() == [4, 9]  # "2 3" first occurred at 1, then came 4, 9
    assert drafter(torch.tensor([1, 2, 3]), 4).numel() == 0  # nothing repeats
    with pytest.raises(ValueError, match="min_ngram_size"):
        PromptLookupDrafter(max_ngram_size=1, min_ngram_size=2)


@pytest.mark.parametrize("num_draft_tokens", [1, 3, 6])
@pytest.mark.parametrize("prompt", [PROMPT, REPETITIVE])
def test_prompt_lookup_speculation_gives_the_greedy_tokens(
    hf_model, prompt, num_draft_tokens: int
) -> None:
    model = ours_from(hf_model)
    greedy = generate(model, prompt, 20, eos_token_id=EOS).sequences
    fast = speculative_generate(
        model, prompt, 20, PromptLookupDrafter(), num_draft_tokens, eos_token_id=EOS
    )
    assert torch.equal(fast.sequences, greedy)
    assert fast.model_calls <= greedy.shape[1] - prompt.shape[1]


def test_draft_model_speculation_gives_the_greedy_tokens_of_a_gpt() -> None:
    torch.manual_seed(0)
    config = GPTConfig(block_size=64, vocab_size=VOCAB, n_layer=2, n_head=2, n_embd=32)
    target, draft = GPT(config).eval(), GPT(config).eval()  # a draft that often disagrees
    greedy = generate(target, REPETITIVE, 25).sequences
    fast = speculative_generate(target, REPETITIVE, 25, DraftModelDrafter(draft), 3)
    assert torch.equal(fast.sequences, greedy)
    assert fast.drafted > 0 and 0 <= fast.accepted <= fast.drafted


def test_a_perfect_draft_is_always_accepted(hf_model) -> None:
    model = ours_from(hf_model)
    fast = speculative_generate(model, PROMPT, 12, DraftModelDrafter(model), 3)
    assert fast.acceptance_rate == 1.0
    assert fast.model_calls == 3  # 4 tokens a pass: 3 guesses and the model's own
    assert torch.equal(fast.sequences, generate(model, PROMPT, 12).sequences)


def test_speculation_takes_one_prompt_at_a_time(hf_model) -> None:
    with pytest.raises(ValueError, match="one prompt"):
        speculative_generate(ours_from(hf_model), PROMPT.repeat(2, 1), 5, PromptLookupDrafter())
