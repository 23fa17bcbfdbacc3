"""Scoring language models by their probabilities (Part V, *Evaluating LLMs*).

- :func:`model_logits` and :func:`next_token_log_probs`: the log-probability a model
  gives each actual next token, for the book's models (``model(ids) -> (logits, ...)``)
  and Hugging Face causal LMs (``model(input_ids=...).logits``) alike;
- :func:`window_negative_log_likelihoods` and :func:`perplexity`: a text's per-token loss
  in non-overlapping windows (the windows of
  :func:`llmzero.training.pretrain.evaluate_bits_per_byte`, whose ``bits_per_byte`` turns
  the loss into bits per byte), and its perplexity;
- :func:`option_log_probs`, :func:`choose_options` and :func:`chance_adjusted_accuracy`:
  multiple-choice evaluation by log-probability, the way benchmark harnesses score
  multiple-choice questions: the model "answers" with the option it finds most likely,
  summed or normalised by length.

Usage::

    from llmzero.evaluation import lm

    encode = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]
    scores = lm.option_log_probs(model, encode, prompts, options)  # OptionScores
    predicted = lm.choose_options(scores, normalisation="per_token")  # (n_items,)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "NORMALISATIONS",
    "OptionScores",
    "chance_adjusted_accuracy",
    "choose_options",
    "model_logits",
    "next_token_log_probs",
    "option_log_probs",
    "perplexity",
    "window_negative_log_likelihoods",
]

NORMALISATIONS = ("sum", "per_token", "per_byte")
"""How :func:`choose_options` compares options of different lengths."""


def _is_hugging_face(model: nn.Module) -> bool:
    return hasattr(model, "config") and hasattr(model, "generation_config")


def model_logits(
    model: nn.Module, input_ids: Tensor, attention_mask: Tensor | None = None
) -> Tensor:
    """Next-token logits ``(B, T, V)`` of a book model or a Hugging Face causal LM.

    The book's GPT and Llama take no attention mask: they are causal, so right padding
    (pads after the real tokens) changes nothing at the real positions. A Hugging Face
    model gets ``attention_mask`` if one is given.
    """
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be (batch, seq), got shape {tuple(input_ids.shape)}.")
    if _is_hugging_face(model):
        return model(input_ids=input_ids, attention_mask=attention_mask).logits
    output = model(input_ids)
    return output[0] if isinstance(output, tuple) else output


def next_token_log_probs(logits: Tensor, input_ids: Tensor) -> Tensor:
    """``log p(x_t | x_<t)`` for ``t = 1..T-1``: shape ``(B, T - 1)``.

    Position ``t - 1``'s logits predict token ``t``; the first token has no prediction.
    """
    if logits.shape[:2] != input_ids.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} and input_ids {tuple(input_ids.shape)} must agree "
            "on (batch, seq)."
        )
    log_probs = F.log_softmax(logits[:, :-1].float(), dim=-1)  # (B, T-1, V)
    return log_probs.gather(-1, input_ids[:, 1:, None]).squeeze(-1)  # (B, T-1)


@torch.inference_mode()
def window_negative_log_likelihoods(
    model: nn.Module,
    token_ids: Sequence[int] | np.ndarray,
    context_length: int,
    batch_size: int = 8,
    max_windows: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-token losses (nats) of a token stream, in non-overlapping windows.

    Window ``w`` is ``token_ids[w T : w T + T + 1]`` with ``T = context_length``; the model
    reads its first ``T`` tokens and predicts its last ``T``, so every token after the first
    is predicted exactly once, with between 0 and ``T - 1`` tokens of context (the same
    windows as :func:`llmzero.training.pretrain.evaluate_bits_per_byte`). A leftover tail
    shorter than a window is dropped.

    Returns:
        ``(nll, targets)``, two ``(n_windows, T)`` arrays: the loss of each predicted token
        and its id (to count the bytes it stands for). ``perplexity(nll)`` is the
        perplexity; one row per window is the unit a bootstrap resamples.
    """
    tokens = torch.as_tensor(np.asarray(token_ids), dtype=torch.long)
    if tokens.dim() != 1:
        raise ValueError(f"token_ids must be a 1-D stream, got shape {tuple(tokens.shape)}.")
    if context_length < 1:
        raise ValueError(f"context_length must be at least 1, got {context_length}.")
    n_windows = (len(tokens) - 1) // context_length
    if max_windows is not None:
        n_windows = min(n_windows, max_windows)
    if n_windows < 1:
        raise ValueError(
            f"{len(tokens)} tokens do not fill one window of {context_length} + 1 tokens; "
            "use a shorter context_length or a longer text."
        )
    device = next(model.parameters()).device
    stream = tokens[: n_windows * context_length + 1]
    windows = stream.unfold(0, context_length + 1, context_length)  # (n_windows, T + 1)
    losses = []
    for start in range(0, n_windows, batch_size):
        batch = windows[start : start + batch_size].to(device)  # (b, T + 1)
        logits = model_logits(model, batch[:, :-1])  # (b, T, V)
        targets = batch[:, 1:]  # (b, T)
        nll = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="none")
        losses.append(nll.view(targets.shape).double().cpu())
    return torch.cat(losses).numpy(), windows[:, 1:].numpy()


def perplexity(nll: np.ndarray | Sequence[float]) -> float:
    """``exp(mean loss in nats)``: the effective number of equally likely choices per token."""
    values = np.asarray(nll, dtype=float)
    if values.size == 0:
        raise ValueError("no token losses: perplexity needs at least one predicted token.")
    return math.exp(values.mean())


@dataclass(frozen=True)
class OptionScores:
    """Log-probabilities of every option of every item, ``(n_items, n_options)`` each:
    ``log_prob`` (summed over the option's tokens), ``n_tokens`` and ``n_bytes`` (UTF-8)."""

    log_prob: np.ndarray
    n_tokens: np.ndarray
    n_bytes: np.ndarray


def _shared_prompt_scores(
    model: nn.Module, prompt: list[int], options: list[list[int]]
) -> list[float]:
    # Read the prompt once, then all options at once on top of its key/value cache.
    device = next(model.parameters()).device
    out = model(input_ids=torch.tensor([prompt], device=device), use_cache=True)
    first = F.log_softmax(out.logits[0, -1].float(), dim=-1)  # (V,): each option's 1st token
    cache = out.past_key_values
    cache.batch_repeat_interleave(len(options))
    longest = max(len(ids) for ids in options)
    padded = torch.tensor([ids + [0] * (longest - len(ids)) for ids in options], device=device)
    option_mask = (
        torch.arange(longest, device=device)
        < torch.tensor([len(ids) for ids in options], device=device)[:, None]
    ).long()  # (K, L): 1 on real option tokens
    mask = torch.cat(
        [torch.ones(len(options), len(prompt), dtype=torch.long, device=device), option_mask], 1
    )
    logits = model(input_ids=padded, attention_mask=mask, past_key_values=cache).logits  # (K, L, V)
    rest = F.log_softmax(logits[:, :-1].float(), dim=-1)  # (K, L-1, V): tokens 2.. of each
    rest = rest.gather(-1, padded[:, 1:, None]).squeeze(-1) * option_mask[:, 1:]  # (K, L-1)
    return (first[padded[:, 0]] + rest.sum(dim=1)).tolist()


def _full_sequence_scores(
    model: nn.Module, prompt: list[int], options: list[list[int]]
) -> list[float]:
    # Prompt + option as one sequence per option, right-padded into one batch.
    device = next(model.parameters()).device
    sequences = [prompt + ids for ids in options]
    longest = max(len(seq) for seq in sequences)
    input_ids = torch.tensor([seq + [0] * (longest - len(seq)) for seq in sequences], device=device)
    lengths = torch.tensor([len(seq) for seq in sequences], device=device)
    mask = (torch.arange(longest, device=device) < lengths[:, None]).long()  # (K, T)
    log_probs = next_token_log_probs(model_logits(model, input_ids, mask), input_ids)  # (K, T-1)
    positions = torch.arange(1, longest, device=device)  # the token each log-prob is for
    in_option = (positions >= len(prompt)) & (positions[None] < lengths[:, None])  # (K, T-1)
    return (log_probs * in_option).sum(dim=1).tolist()


@torch.inference_mode()
def option_log_probs(
    model: nn.Module,
    encode: Callable[[str], list[int]],
    prompts: Sequence[str],
    options: Sequence[Sequence[str]],
    share_prompt: bool | None = None,
) -> OptionScores:
    """``log p(option | prompt)`` for every option of every multiple-choice item.

    Prompt and option are tokenized separately with ``encode`` and concatenated, so write
    options as they would follow the prompt (usually with a leading space). The log-prob of
    an option is the sum over its tokens of ``log p(token | prompt, earlier option
    tokens)``. With ``share_prompt`` (the default for Hugging Face models) the prompt is
    read once and the options continue from its key/value cache, which costs the prompt's
    tokens once instead of once per option; the book's models read prompt + option as one
    sequence per option. Both give the same numbers up to float rounding.
    """
    if isinstance(prompts, str) or len(prompts) != len(options):
        raise ValueError(
            f"need one list of options per prompt, got {len(options)} for {len(prompts)} prompts."
        )
    if share_prompt is None:
        share_prompt = _is_hugging_face(model)
    if share_prompt and not _is_hugging_face(model):
        raise ValueError("share_prompt needs a Hugging Face model (it uses the key/value cache).")
    n_options = {len(item) for item in options}
    if len(n_options) != 1 or n_options == {0}:
        raise ValueError(f"every item needs the same, positive number of options; got {n_options}.")
    scores, n_tokens, n_bytes = [], [], []
    for prompt, item_options in zip(prompts, options, strict=True):
        prompt_ids = list(encode(prompt))
        option_ids = [list(encode(option)) for option in item_options]
        if not prompt_ids or any(not ids for ids in option_ids):
            raise ValueError(f"an empty prompt or option encodes to no tokens: {prompt!r}.")
        score = _shared_prompt_scores if share_prompt else _full_sequence_scores
        scores.append(score(model, prompt_ids, option_ids))
        n_tokens.append([len(ids) for ids in option_ids])
        n_bytes.append([len(option.encode("utf-8")) for option in item_options])
    return OptionScores(np.array(scores), np.array(n_tokens), np.array(n_bytes))


def choose_options(scores: OptionScores, normalisation: str = "sum") -> np.ndarray:
    """The chosen option of each item: the highest log-prob, summed or normalised.

    ``"sum"``: total log-probability, which favours short options (every extra token can
    only lower it). ``"per_token"``: divided by the option's token count. ``"per_byte"``:
    divided by its UTF-8 bytes (lm-evaluation-harness's ``acc_norm``), which does not
    depend on the tokenizer.
    """
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {normalisation!r}.")
    divisor = {"sum": 1, "per_token": scores.n_tokens, "per_byte": scores.n_bytes}[normalisation]
    return np.argmax(scores.log_prob / divisor, axis=1)


def chance_adjusted_accuracy(accuracy: float | np.ndarray, n_options: int) -> float | np.ndarray:
    """``(accuracy - 1/K) / (1 - 1/K)``: 0 at chance, 1 when perfect, negative below chance.

    Lets tasks with different numbers of options ``K`` be compared.
    """
    if n_options < 2:
        raise ValueError(f"n_options must be at least 2, got {n_options}.")
    chance = 1 / n_options
    return (np.asarray(accuracy) - chance) / (1 - chance)
