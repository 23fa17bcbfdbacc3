"""Text generation from scratch: logits processors, greedy, sampling, beam search, a KV cache.

Part VI's chapter *Text generation and decoding* builds every piece of this file step by
step and proves that it picks the same tokens as Hugging Face's ``generate`` on
SmolLM2-135M-Instruct. A language model gives next-token *logits*; a decoding strategy
turns them into a token, one step at a time:

- **logits processors** reshape the scores before a token is chosen, with Hugging Face's
  signature ``processor(input_ids (B, T), scores (B, V)) -> scores (B, V)``:
  :class:`RepetitionPenalty`, :class:`Temperature`, :class:`TopK`, :class:`TopP`, applied
  in that order by :func:`make_processors` (the order ``generate`` uses);
- :func:`generate` picks the argmax of the processed scores (greedy decoding) or draws
  from their softmax with ``torch.multinomial`` (sampling), and stops at an
  end-of-sequence token, a stop string (:class:`StopOnStrings`) or ``max_new_tokens``;
  :func:`iter_generate` yields the tokens one step at a time (streaming), and
  :func:`stream_text` turns a stream of token ids into pieces of text;
- :func:`beam_search` keeps the ``num_beams`` best partial sequences by total log-probability,
  with Hugging Face's rules for finished hypotheses, length penalty and early stopping;
- :class:`KVCache` keeps every layer's keys and values, so that each new token costs one
  position of work instead of a pass over the whole sequence; ``llmzero.models.gpt`` and
  ``llmzero.models.llama`` accept it as ``forward(idx, cache=...)``, and
  :class:`ModelRunner` feeds a model (ours or a Hugging Face one) with or without it;
- :func:`speculative_generate` (Part VII's chapter *Efficient inference and deployment*)
  lets a cheap drafter guess several tokens, :class:`PromptLookupDrafter` (copy what
  followed the last n-gram earlier in the text) or :class:`DraftModelDrafter` (a small
  model's greedy tokens), and checks all the guesses with one forward pass of the model:
  the same tokens as greedy decoding, in fewer passes.

Shapes in comments use ``B`` (batch), ``T`` (sequence length), ``V`` (vocabulary),
``K`` (key/value heads), ``D`` (head size) and ``N`` (number of beams).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "BeamOutput",
    "DraftModelDrafter",
    "Drafter",
    "GenerateOutput",
    "KVCache",
    "LogitsProcessor",
    "ModelRunner",
    "PromptLookupDrafter",
    "RepetitionPenalty",
    "SpeculativeOutput",
    "StopOnStrings",
    "Temperature",
    "TopK",
    "TopP",
    "apply_processors",
    "beam_search",
    "generate",
    "iter_generate",
    "make_processors",
    "speculative_generate",
    "stream_text",
]


# ------------------------------------------------------------------------------ the cache


class KVCache:
    """The keys and values of every layer for the tokens seen so far.

    Layer ``i``'s keys and values are tensors of shape ``(B, K, T, D)`` (``K`` key/value
    heads, ``T`` tokens so far); :meth:`update` appends the new positions and returns the
    whole history, which is what attention needs. Pass one empty cache to the first
    ``forward`` (the *prefill*, the whole prompt), then the same cache with only the new
    token at each later step (the *decode* steps).
    """

    def __init__(self) -> None:
        self.keys: list[Tensor] = []
        self.values: list[Tensor] = []

    def update(self, layer: int, keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        """Append ``keys``, ``values`` ``(B, K, T_new, D)`` to layer ``layer``; return all of
        them, ``(B, K, T_past + T_new, D)`` each."""
        if layer == len(self.keys):  # the first time this layer is seen
            self.keys.append(keys)
            self.values.append(values)
        elif layer < len(self.keys):
            self.keys[layer] = torch.cat([self.keys[layer], keys], dim=2)
            self.values[layer] = torch.cat([self.values[layer], values], dim=2)
        else:
            raise ValueError(
                f"Layer {layer} updated before layer {len(self.keys)}: layers must be run "
                "in order, starting from an empty cache."
            )
        return self.keys[layer], self.values[layer]

    @property
    def seq_len(self) -> int:
        """How many positions are cached (0 for an empty cache)."""
        return self.keys[0].shape[2] if self.keys else 0

    def reorder(self, index: Tensor) -> None:
        """Keep the batch rows ``index`` (a 1-D tensor of row numbers), in that order: beam
        search calls this after choosing which beams continue."""
        self.keys = [k.index_select(0, index) for k in self.keys]
        self.values = [v.index_select(0, index) for v in self.values]

    def crop(self, length: int) -> None:
        """Keep only the first ``length`` positions of every layer (forget the rest):
        speculative decoding calls this to drop the keys and values of rejected guesses."""
        if not 0 <= length <= self.seq_len:
            raise ValueError(f"Cannot crop a cache of {self.seq_len} positions to {length}.")
        self.keys = [k[:, :, :length] for k in self.keys]
        self.values = [v[:, :, :length] for v in self.values]

    def nbytes(self) -> int:
        """The memory the cached tensors take, in bytes."""
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))


class ModelRunner:
    """Feeds a causal language model the sequence so far and returns next-token logits.

    ``runner(ids)`` takes the whole sequence, ``(B, T)``, and returns the logits for the next
    token, ``(B, V)`` in float32. With ``use_cache=True`` it keeps a :class:`KVCache` (for
    this package's GPT and Llama) or Hugging Face's own cache (for a ``transformers`` causal
    LM) and feeds only the positions it has not seen yet; without a cache it runs the whole
    sequence every time, as the models' original ``generate`` did. Call :meth:`reset`
    before a new prompt.
    """

    def __init__(self, model: Any, use_cache: bool = True) -> None:
        self.model = model
        self.use_cache = use_cache
        self.is_hf = hasattr(model, "generation_config")  # a transformers model
        self.reset()

    def reset(self) -> None:
        """Forget the cache (start a new sequence)."""
        self.cache: Any = None if self.is_hf else KVCache()
        self.seen = 0  # positions already in the cache

    def reorder(self, index: Tensor) -> None:
        """Keep the batch rows ``index`` of the cache (beam search)."""
        if self.use_cache and self.cache is not None:
            if self.is_hf:
                self.cache.reorder_cache(index)
            else:
                self.cache.reorder(index)

    @torch.no_grad()
    def __call__(self, ids: Tensor) -> Tensor:
        if ids.dim() != 2:
            raise ValueError(f"ids must have shape (batch, seq), got {tuple(ids.shape)}.")
        if not self.use_cache:
            return self._forward(ids, cache=None)
        if ids.shape[1] <= self.seen:
            raise ValueError(
                f"The cache already holds {self.seen} positions and ids has only "
                f"{ids.shape[1]}: call reset() before a new sequence."
            )
        logits = self._forward(ids[:, self.seen :], cache=self.cache, total=ids.shape[1])
        self.seen = ids.shape[1]
        return logits

    def _forward(self, new_ids: Tensor, cache: Any, total: int | None = None) -> Tensor:
        if self.is_hf:
            total = new_ids.shape[1] if total is None else total
            mask = torch.ones(new_ids.shape[0], total, dtype=torch.long, device=new_ids.device)
            out = self.model(
                input_ids=new_ids,
                attention_mask=mask,
                past_key_values=cache,
                use_cache=cache is not None or self.use_cache,
            )
            if self.use_cache:
                self.cache = out.past_key_values
            return out.logits[:, -1, :].float()  # (B, V)
        out = self.model(new_ids, cache=cache)
        logits = out[0] if isinstance(out, tuple) else out  # GPT returns (logits, loss)
        return logits[:, -1, :].float()  # (B, V)


# ------------------------------------------------------------------------------ processors


class LogitsProcessor(Protocol):
    """Anything called as ``processor(input_ids (B, T), scores (B, V)) -> scores (B, V)``."""

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor: ...


class Temperature:
    r"""Divide the scores by ``temperature`` :math:`\tau > 0`: below 1 sharpens the
    distribution, above 1 flattens it."""

    def __init__(self, temperature: float) -> None:
        if not temperature > 0:
            raise ValueError(
                f"temperature must be > 0, got {temperature}; for always the most likely "
                "token, use greedy decoding (do_sample=False) instead of temperature 0."
            )
        self.temperature = float(temperature)

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        return scores / self.temperature  # (B, V)


class TopK:
    """Keep the ``top_k`` highest scores of each row (ties with the k-th are kept too); set the
    others to ``-inf``."""

    def __init__(self, top_k: int) -> None:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}.")
        self.top_k = top_k

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        k = min(self.top_k, scores.shape[-1])
        kth_best = torch.topk(scores, k, dim=-1).values[:, -1:]  # (B, 1)
        return scores.masked_fill(scores < kth_best, float("-inf"))  # (B, V)


class TopP:
    """Nucleus filtering: keep the most likely tokens whose probabilities add up to ``top_p``.

    Computed from the unlikely end, as Hugging Face does: sort the probabilities in
    ascending order, and remove every token whose cumulative probability (its own and all
    less likely ones) is at most ``1 - top_p``. The most likely token always stays.
    """

    def __init__(self, top_p: float) -> None:
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}; 1.0 keeps every token.")
        self.top_p = float(top_p)

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        sorted_scores, order = torch.sort(scores, dim=-1, descending=False)  # (B, V) each
        tail_mass = sorted_scores.softmax(dim=-1).cumsum(dim=-1)  # (B, V), ascending
        remove_sorted = tail_mass <= 1.0 - self.top_p  # (B, V): the unlikely tail
        remove_sorted[:, -1] = False  # never remove the most likely token
        remove = remove_sorted.scatter(1, order, remove_sorted)  # back to vocabulary order
        return scores.masked_fill(remove, float("-inf"))  # (B, V)


class RepetitionPenalty:
    """Make tokens that already occur in ``input_ids`` less likely (Keskar et al., 2019).

    The score of every token present in the row (prompt included) is divided by ``penalty``
    if it is positive and multiplied by it if it is negative, so a penalty above 1 always
    lowers it.
    """

    def __init__(self, penalty: float) -> None:
        if not penalty > 0:
            raise ValueError(f"repetition penalty must be > 0 (1.0 = none), got {penalty}.")
        self.penalty = float(penalty)

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        seen = torch.gather(scores, 1, input_ids)  # (B, T): the scores of tokens already there
        seen = torch.where(seen < 0, seen * self.penalty, seen / self.penalty)
        return scores.scatter(1, input_ids, seen)  # (B, V)


def make_processors(
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float | None = None,
    do_sample: bool = True,
) -> list[LogitsProcessor]:
    """The processors for these settings, in the order Hugging Face's ``generate`` applies
    them: repetition penalty first, then (only when sampling) temperature, top-k, top-p.
    Settings that change nothing (temperature 1, top-p 1, penalty 1) are left out."""
    processors: list[LogitsProcessor] = []
    if repetition_penalty is not None and repetition_penalty != 1.0:
        processors.append(RepetitionPenalty(repetition_penalty))
    if do_sample:
        if temperature != 1.0:
            processors.append(Temperature(temperature))
        if top_k is not None:
            processors.append(TopK(top_k))
        if top_p is not None and top_p != 1.0:
            processors.append(TopP(top_p))
    else:  # still check the values, so a typo does not pass silently
        if not temperature > 0:
            raise ValueError(
                f"temperature must be > 0, got {temperature}; greedy decoding ignores it, "
                "so leave it at 1.0."
            )
        if top_p is not None:
            TopP(top_p)
        if top_k is not None:
            TopK(top_k)
    return processors


def apply_processors(
    processors: Iterable[LogitsProcessor], input_ids: Tensor, scores: Tensor
) -> Tensor:
    """Run ``scores`` ``(B, V)`` through every processor in turn."""
    for processor in processors:
        scores = processor(input_ids, scores)
    return scores


# ------------------------------------------------------------------------------ stopping


class StopOnStrings:
    """A stopping criterion: a row is done once its newly generated text contains one of
    ``stop_strings``.

    ``criterion(ids (B, T), prompt_length)`` returns a boolean ``(B,)``. Only the last
    ``lookback`` new tokens are decoded, enough for any stop string of a few characters.
    """

    def __init__(self, tokenizer: Any, stop_strings: Sequence[str], lookback: int = 8) -> None:
        if isinstance(stop_strings, str) or not stop_strings or not all(stop_strings):
            raise ValueError(
                f"stop_strings must be a non-empty list of non-empty strings, got {stop_strings!r}."
            )
        self.tokenizer = tokenizer
        self.stop_strings = list(stop_strings)
        self.lookback = lookback

    def __call__(self, ids: Tensor, prompt_length: int) -> Tensor:
        new = ids[:, prompt_length:][:, -self.lookback :]  # (B, <= lookback)
        texts = self.tokenizer.batch_decode(new)
        done = [any(stop in text for stop in self.stop_strings) for text in texts]
        return torch.tensor(done, dtype=torch.bool, device=ids.device)


StoppingCriterion = Callable[[Tensor, int], Tensor]


# ------------------------------------------------------------------------------ greedy, sampling


@dataclass
class GenerateOutput:
    """What :func:`generate` returns: the prompt followed by the new tokens, ``(B, T_total)``,
    and the processed scores each step chose from (one ``(B, V)`` tensor per step)."""

    sequences: Tensor
    scores: list[Tensor] = field(default_factory=list)


def _as_runner(model: Any, use_cache: bool) -> ModelRunner:
    if isinstance(model, ModelRunner):
        model.reset()
        return model
    return ModelRunner(model, use_cache=use_cache)


def _check_common(input_ids: Tensor, max_new_tokens: int) -> None:
    if input_ids.dim() != 2 or input_ids.shape[1] == 0:
        raise ValueError(
            f"input_ids must have shape (batch, seq) with seq >= 1, got {tuple(input_ids.shape)}."
        )
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}.")


def iter_generate(
    model: Any,
    input_ids: Tensor,
    max_new_tokens: int,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float | None = None,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
    stopping: Sequence[StoppingCriterion] = (),
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Generate one token per step and yield ``(next_ids (B,), scores (B, V))`` as soon as
    it is chosen; see :func:`generate` for the arguments. Rows that are done receive
    ``pad_token_id`` (default: ``eos_token_id``), as in Hugging Face's ``generate``."""
    _check_common(input_ids, max_new_tokens)
    processors = make_processors(temperature, top_k, top_p, repetition_penalty, do_sample)
    runner = _as_runner(model, use_cache)
    pad = eos_token_id if pad_token_id is None else pad_token_id
    prompt_length = input_ids.shape[1]
    ids = input_ids
    unfinished = torch.ones(ids.shape[0], dtype=torch.bool, device=ids.device)  # (B,)
    for _ in range(max_new_tokens):
        logits = runner(ids)  # (B, V), float32
        scores = apply_processors(processors, ids, logits)  # (B, V)
        if do_sample:
            probs = F.softmax(scores, dim=-1)  # (B, V)
            next_ids = torch.multinomial(probs, num_samples=1, generator=generator)[:, 0]
        else:
            next_ids = scores.argmax(dim=-1)  # (B,)
        if pad is not None:
            next_ids = torch.where(unfinished, next_ids, torch.full_like(next_ids, pad))
        ids = torch.cat([ids, next_ids[:, None]], dim=1)  # (B, T + 1)
        yield next_ids, scores
        if eos_token_id is not None:
            unfinished &= next_ids != eos_token_id
        for criterion in stopping:
            unfinished &= ~criterion(ids, prompt_length)
        if not bool(unfinished.any()):
            break


def generate(
    model: Any,
    input_ids: Tensor,
    max_new_tokens: int,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    repetition_penalty: float | None = None,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
    stopping: Sequence[StoppingCriterion] = (),
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> GenerateOutput:
    """Greedy decoding (``do_sample=False``) or sampling from a causal LM.

    ``model`` is this package's GPT or Llama, a Hugging Face causal LM, or a
    :class:`ModelRunner`; ``input_ids`` ``(B, T)`` holds the prompts (same length, no
    padding). Each step the logits of the last position go through the processors of
    :func:`make_processors`; greedy decoding takes their argmax, sampling draws from their
    softmax with ``torch.multinomial`` (from ``generator``, or PyTorch's global generator
    as Hugging Face does when it is ``None``). Generation stops after ``max_new_tokens``
    tokens, or once every row has produced ``eos_token_id`` or met a criterion of
    ``stopping`` (such as :class:`StopOnStrings`).
    """
    new_ids, all_scores = [], []
    for next_ids, scores in iter_generate(
        model,
        input_ids,
        max_new_tokens,
        do_sample=do_sample,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        repetition_penalty=repetition_penalty,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        stopping=stopping,
        generator=generator,
        use_cache=use_cache,
    ):
        new_ids.append(next_ids)
        all_scores.append(scores)
    sequences = torch.cat([input_ids, *[t[:, None] for t in new_ids]], dim=1)
    return GenerateOutput(sequences=sequences, scores=all_scores)


def stream_text(
    token_ids: Iterable[int], tokenizer: Any, skip_special_tokens: bool = True
) -> Iterator[str]:
    """Turn a stream of token ids into pieces of text, as soon as they are printable.

    Each piece is the new end of ``tokenizer.decode(all ids so far)``; a piece that ends in
    an incomplete character (the replacement character ``\\ufffd``, half of a multi-byte
    UTF-8 sequence) is held back until the next token completes it. Joined, the pieces are
    exactly the decoded text.
    """
    ids: list[int] = []
    printed = ""
    for token_id in token_ids:
        ids.append(int(token_id))
        text = tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)
        if text.endswith("\ufffd"):
            continue  # wait for the rest of the character
        if text.startswith(printed):
            piece, printed = text[len(printed) :], text
        else:  # decoding changed earlier text (rare); emit nothing we cannot take back
            piece, printed = "", text
        if piece:
            yield piece
    text = tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)
    if text.startswith(printed) and len(text) > len(printed):
        yield text[len(printed) :]


# ------------------------------------------------------------------------------ beam search


@dataclass
class BeamOutput:
    """What :func:`beam_search` returns: the ``num_beams`` finished hypotheses, best first,
    as ``(score, sequence (T_total,))`` pairs, and the best one as ``(1, T_total)``."""

    hypotheses: list[tuple[float, Tensor]]

    @property
    def sequences(self) -> Tensor:
        return self.hypotheses[0][1][None, :]


@torch.no_grad()
def beam_search(
    model: Any,
    input_ids: Tensor,
    max_new_tokens: int,
    num_beams: int,
    eos_token_id: int | None = None,
    length_penalty: float = 1.0,
    repetition_penalty: float | None = None,
    use_cache: bool = True,
) -> BeamOutput:
    """Beam search for one prompt ``input_ids`` ``(1, T)``, with Hugging Face's rules.

    Each step every running beam proposes every token; the score of a candidate is the
    beam's total log-probability plus the token's (after the processors). The best
    ``2 * num_beams`` candidates are examined in order: one that ends with ``eos_token_id``
    (or reaches ``max_new_tokens``) becomes a finished hypothesis, scored by its total
    log-probability divided by ``new_length ** length_penalty``, if it ranks among the first
    ``num_beams``; the best ``num_beams`` unfinished ones keep running. The search stops
    when ``num_beams`` hypotheses are finished and the best running beam, at its current
    length, cannot beat the worst of them (``early_stopping=False`` in ``generate``).
    """
    _check_common(input_ids, max_new_tokens)
    if isinstance(num_beams, bool) or not isinstance(num_beams, int) or num_beams < 1:
        raise ValueError(f"num_beams must be a positive integer, got {num_beams!r}.")
    if input_ids.shape[0] != 1:
        raise ValueError(
            f"beam_search takes one prompt, shape (1, T), got {tuple(input_ids.shape)}; "
            "loop over the prompts."
        )
    if max_new_tokens < 1:
        raise ValueError("beam_search needs max_new_tokens >= 1.")
    processors = make_processors(repetition_penalty=repetition_penalty, do_sample=False)
    runner = _as_runner(model, use_cache)
    beams = input_ids  # (N, T): one beam to start with
    beam_scores = torch.zeros(1, device=input_ids.device)  # (N,): total log-probabilities
    finished: list[tuple[float, Tensor]] = []  # (length-penalised score, sequence)
    for step in range(max_new_tokens):
        log_probs = F.log_softmax(runner(beams), dim=-1)  # (N, V)
        log_probs = apply_processors(processors, beams, log_probs)  # (N, V)
        totals = (beam_scores[:, None] + log_probs).view(-1)  # (N * V,)
        top_scores, top_index = torch.topk(totals, 2 * num_beams)  # best first
        vocab_size = log_probs.shape[-1]
        keep_rows, keep_tokens, keep_scores = [], [], []
        new_length = step + 1
        for rank, (score, index) in enumerate(
            zip(top_scores.tolist(), top_index.tolist(), strict=True)
        ):
            row, token = divmod(index, vocab_size)
            ends = token == eos_token_id or new_length == max_new_tokens
            if ends:
                if rank < num_beams:  # only the top num_beams candidates may finish
                    sequence = torch.cat([beams[row], beams.new_tensor([token])])
                    finished.append((score / new_length**length_penalty, sequence))
            elif len(keep_rows) < num_beams:
                keep_rows.append(row)
                keep_tokens.append(token)
                keep_scores.append(score)
        finished = sorted(finished, key=lambda item: -item[0])[:num_beams]
        if not keep_rows:  # every candidate finished (the last step)
            break
        rows = torch.tensor(keep_rows, device=beams.device)  # (N,)
        runner.reorder(rows)  # the cache follows the beams that continue
        beams = torch.cat([beams[rows], beams.new_tensor(keep_tokens)[:, None]], dim=1)
        beam_scores = torch.tensor(keep_scores, device=beams.device)  # (N,)
        best_possible = keep_scores[0] / new_length**length_penalty
        if len(finished) == num_beams and best_possible <= finished[-1][0]:
            break  # no running beam can beat the worst finished hypothesis any more
    return BeamOutput(hypotheses=finished)


# ------------------------------------------------------------------------------ speculative


def _all_logits(model: Any, new_ids: Tensor, cache: KVCache) -> Tensor:
    """Logits ``(B, T_new, V)`` (float32) of every new position of this package's GPT or
    Llama, whose keys and values join ``cache``."""
    out = model(new_ids, cache=cache)
    logits = out[0] if isinstance(out, tuple) else out  # GPT returns (logits, loss)
    return logits.float()


class PromptLookupDrafter:
    """Prompt-lookup drafting (Saxena, 2023): guess that the text goes on as it did after
    the last time its final n-gram occurred.

    ``drafter(ids (T,), num_tokens)`` looks for the sequence's last ``n`` tokens earlier in
    the sequence, for ``n`` from ``max_ngram_size`` down to ``min_ngram_size``, and returns
    the (at most ``num_tokens``) tokens that followed the earliest match, as the reference
    implementation does; an empty tensor when nothing matches. It costs no model call, and
    pays off when the reply copies from the prompt (extraction, editing, quoting code).
    """

    def __init__(self, max_ngram_size: int = 3, min_ngram_size: int = 1) -> None:
        if not 1 <= min_ngram_size <= max_ngram_size:
            raise ValueError(
                "Need 1 <= min_ngram_size <= max_ngram_size, got "
                f"{min_ngram_size} and {max_ngram_size}."
            )
        self.max_ngram_size = max_ngram_size
        self.min_ngram_size = min_ngram_size

    def reset(self) -> None:
        """Nothing to forget (the drafter has no state); here for symmetry."""

    def __call__(self, ids: Tensor, num_tokens: int) -> Tensor:
        length = ids.shape[0]
        for size in range(self.max_ngram_size, self.min_ngram_size - 1, -1):
            if size >= length:
                continue
            windows = ids.unfold(0, size, 1)  # (length - size + 1, size): every n-gram
            matches = (windows[:-1] == ids[-size:]).all(dim=1)  # not the final n-gram itself
            for start in matches.nonzero()[:, 0].tolist():  # earliest match first
                follow = ids[start + size : start + size + num_tokens]
                if follow.numel() > 0:
                    return follow
        return ids[:0]


class DraftModelDrafter:
    """Drafting with a small model: its greedy tokens are the guesses.

    ``drafter(ids (T,), num_tokens)`` runs ``model`` (this package's GPT or Llama, sharing
    the tokenizer of the big one) greedily for ``num_tokens`` steps after ``ids``. It keeps
    its own :class:`KVCache` and reuses the part of it that still agrees with ``ids``, so
    each call only feeds the tokens it has not seen.
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self.reset()

    def reset(self) -> None:
        """Forget the cache (start a new sequence)."""
        self.cache = KVCache()
        self.cached: list[int] = []  # the tokens whose keys and values are in the cache

    @torch.no_grad()
    def __call__(self, ids: Tensor, num_tokens: int) -> Tensor:
        if num_tokens < 1:
            return ids[:0]
        tokens = ids.tolist()
        common = 0
        for old, new in zip(self.cached, tokens, strict=False):
            if old != new:
                break
            common += 1
        common = min(common, len(tokens) - 1)  # feed at least one token
        self.cache.crop(common)
        feed = ids[None, common:]  # (1, T_new)
        guesses: list[int] = []
        for _ in range(num_tokens):
            logits = _all_logits(self.model, feed, self.cache)[:, -1]  # (1, V)
            guesses.append(int(logits.argmax(dim=-1)))
            feed = ids.new_tensor([[guesses[-1]]])  # (1, 1)
        self.cached = tokens + guesses[:-1]  # the last guess was never fed
        return ids.new_tensor(guesses)


class Drafter(Protocol):
    """Anything called as ``drafter(ids (T,), num_tokens) -> guesses (k,)``, ``k <=
    num_tokens``, with a ``reset()`` for a new sequence."""

    def __call__(self, ids: Tensor, num_tokens: int) -> Tensor: ...

    def reset(self) -> None: ...


@dataclass
class SpeculativeOutput:
    """What :func:`speculative_generate` returns: the prompt and the new tokens
    ``(1, T_total)``, how many forward passes of the model it took, and how many guessed
    tokens were proposed and accepted."""

    sequences: Tensor
    model_calls: int
    drafted: int
    accepted: int

    @property
    def acceptance_rate(self) -> float:
        """The fraction of guessed tokens the model accepted (0 when none were guessed)."""
        return self.accepted / self.drafted if self.drafted else 0.0


@torch.no_grad()
def speculative_generate(
    model: Any,
    input_ids: Tensor,
    max_new_tokens: int,
    drafter: Drafter,
    num_draft_tokens: int = 4,
    eos_token_id: int | None = None,
) -> SpeculativeOutput:
    """Greedy decoding with speculation: the same tokens as
    ``generate(model, input_ids, max_new_tokens, eos_token_id=...)``, in fewer passes.

    Each round the ``drafter`` guesses up to ``num_draft_tokens`` next tokens; one forward
    pass of ``model`` (this package's GPT or Llama, with a :class:`KVCache`) over the
    uncached tokens and the guesses gives the model's own greedy choice at every guessed
    position. The longest prefix of guesses that matches those choices is accepted, and
    the model's choice after it comes free, so a round yields between 1 and
    ``num_draft_tokens + 1`` tokens; the rejected guesses' keys and values are cropped from
    the cache. The greedy tokens are the argmax of the same logits, so the output equals
    greedy decoding's (up to float rounding, which differs a little between one position
    and several at a time, and could flip an exact tie). One prompt, ``(1, T)``, at a time.
    """
    _check_common(input_ids, max_new_tokens)
    if input_ids.shape[0] != 1:
        raise ValueError(
            f"speculative_generate takes one prompt, shape (1, T), got "
            f"{tuple(input_ids.shape)}; loop over the prompts."
        )
    if num_draft_tokens < 0:
        raise ValueError(f"num_draft_tokens must be >= 0, got {num_draft_tokens}.")
    drafter.reset()
    cache = KVCache()
    ids = input_ids[0]  # (T,): the prompt and every token chosen so far
    model_calls = drafted = accepted = 0
    new_tokens = 0
    while new_tokens < max_new_tokens:
        budget = min(num_draft_tokens, max_new_tokens - new_tokens - 1)
        guesses = drafter(ids, budget)[:budget] if budget > 0 else ids[:0]  # (k,)
        past = cache.seq_len
        feed = torch.cat([ids[past:], guesses])[None, :]  # (1, uncached + k)
        logits = _all_logits(model, feed, cache)  # (1, uncached + k, V)
        model_calls += 1
        choices = logits[0, -(guesses.numel() + 1) :].argmax(dim=-1)  # (k + 1,)
        n_ok = 0
        while n_ok < guesses.numel() and int(guesses[n_ok]) == int(choices[n_ok]):
            n_ok += 1
        drafted += guesses.numel()
        accepted += n_ok
        cache.crop(ids.shape[0] + n_ok)  # keep the accepted guesses, drop the rest
        step = choices[: n_ok + 1]  # the accepted guesses and the model's next token
        if eos_token_id is not None and bool((step == eos_token_id).any()):
            step = step[: int((step == eos_token_id).nonzero()[0, 0]) + 1]
            ids = torch.cat([ids, step])
            break
        ids = torch.cat([ids, step])
        new_tokens += step.numel()
    return SpeculativeOutput(ids[None, :], model_calls, drafted, accepted)
