"""Supervised fine-tuning (SFT) on chat-formatted instructions (Part V).

Built step by step in the chapter *Instruction tuning (SFT)*, and reused by the alignment
and evaluation chapters:

- **chat templates** (:class:`ChatTemplate`): how a conversation becomes one token
  sequence. :data:`BOOK_TEMPLATE` is the book's own, for its small GPT with a byte-level
  vocabulary (:class:`ByteChatTokenizer`) or a BPE trained with digits kept apart
  (:class:`BPEChatTokenizer`); :data:`SMOLLM2_TEMPLATE` is ChatML as SmolLM2
  uses it, and :func:`tokenize_chat` reproduces ``tokenizer.apply_chat_template``'s ids;
- the **loss mask**: :func:`tokenize_chat` labels only the assistant's tokens (its reply
  and the token that ends it); every other label is :data:`IGNORE_INDEX` (-100);
- **padding vs packing**: :func:`pad_collate` pads examples to a common length,
  :func:`pack_collate` concatenates them into full rows and records where each example
  starts (``position_ids``, ``document_ids``) so attention can be kept inside examples;
- the **SFT loss and step**: :func:`sft_loss` (next-token cross-entropy over labelled
  positions), :func:`causal_lm_logits` (the book's GPT or a Hugging Face causal LM, with
  a block-diagonal mask for packed rows) and :func:`sft_step`;
- **greedy answers and exact match**: :func:`greedy_generate` (a key/value cache for the
  book's GPT, ``generate`` for Hugging Face models) and :func:`evaluate_exact_match`,
  scored with :func:`llmzero.data.instructions.is_correct`.

Usage::

    from llmzero.training import sft

    tokenizer = sft.BPEChatTokenizer.train(text, vocab_size=1024)  # or ByteChatTokenizer()
    chats = [sft.tokenize_chat(sft.instruction_messages(e), sft.BOOK_TEMPLATE, tokenizer)
             for e in train]
    batch = sft.pack_collate(chats[:16], block_size=128, pad_id=tokenizer.pad_id)
    loss = sft.sft_step(model, optimizer, batch)          # model: GPT or a Hugging Face LM
    predictions = sft.evaluate_exact_match(
        model, test, sft.BOOK_TEMPLATE, tokenizer, tokenizer.end_id, tokenizer.pad_id)
    scores = sft.accuracy_by_task(predictions)            # {"addition": 0.03, ..., "all": ...}

For SmolLM2: ``sft.SMOLLM2_TEMPLATE`` with ``sft.hf_codec(hf_tokenizer)``, and
``pad_collate`` (packed rows are supported for the book's GPT only).

Labels follow Hugging Face's convention: ``labels`` is aligned with ``input_ids`` and the
loss shifts them, so the logits at position ``t`` are scored against ``labels[t + 1]``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmzero.data.instructions import Instruction, is_correct
from llmzero.models.gpt import GPT
from llmzero.text import bpe

__all__ = [
    "BOOK_TEMPLATE",
    "DIGIT_SPLIT_PATTERN",
    "IGNORE_INDEX",
    "SMOLLM2_TEMPLATE",
    "BPEChatTokenizer",
    "ByteChatTokenizer",
    "ChatTemplate",
    "Prediction",
    "TextCodec",
    "TokenizedChat",
    "accuracy_by_task",
    "causal_lm_logits",
    "evaluate_exact_match",
    "gpt_forward",
    "greedy_generate",
    "hf_codec",
    "instruction_messages",
    "pack_collate",
    "pad_collate",
    "padding_waste",
    "sft_loss",
    "sft_step",
    "tokenize_chat",
]

#: The label of positions that do not count in the loss (``F.cross_entropy``'s default
#: ``ignore_index``, and Hugging Face's convention).
IGNORE_INDEX = -100

ROLES = ("system", "user", "assistant")


# --- chat templates -------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatTemplate:
    """How a conversation is written out as text: each message is
    ``message_start.format(role=...) + content + stop + after_stop``.

    ``stop`` is the text that ends a turn; the assistant must learn to write it, so it is
    part of the loss, and generation stops when the model produces it. ``after_stop`` is
    what the template adds after it (ChatML's newline), which the model never has to write.
    ``default_system`` is inserted as a first system message when a conversation has none
    (SmolLM2's template does this). For inference the text ends with
    ``message_start.format(role="assistant")``, the *generation prompt*.
    """

    message_start: str
    stop: str
    after_stop: str = ""
    default_system: str | None = None

    @property
    def generation_prompt(self) -> str:
        """The text that opens the assistant's turn, which inference appends to the prompt."""
        return self.message_start.format(role="assistant")

    def render(
        self, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = False
    ) -> str:
        """The conversation as one string (what ``apply_chat_template(tokenize=False)`` gives)."""
        text = "".join(
            self.message_start.format(role=message["role"])
            + message["content"]
            + self.stop
            + self.after_stop
            for message in self._with_system(messages)
        )
        return text + (self.generation_prompt if add_generation_prompt else "")

    def _with_system(self, messages: Sequence[Mapping[str, str]]) -> list[Mapping[str, str]]:
        _check_messages(messages)
        if self.default_system is not None and messages[0]["role"] != "system":
            return [{"role": "system", "content": self.default_system}, *messages]
        return list(messages)


BOOK_TEMPLATE = ChatTemplate(message_start="<|{role}|>", stop="<|end|>")
"""The book's template for its small GPT, which writes a question and its answer as
``<|user|>What is 2 + 3?<|end|><|assistant|>5<|end|>``."""

SMOLLM2_TEMPLATE = ChatTemplate(
    message_start="<|im_start|>{role}\n",
    stop="<|im_end|>",
    after_stop="\n",
    default_system="You are a helpful AI assistant named SmolLM, trained by Hugging Face",
)
"""ChatML as SmolLM2-Instruct's chat template writes it, default system message included."""


def _check_messages(messages: Sequence[Mapping[str, str]]) -> None:
    if not messages:
        raise ValueError("a conversation needs at least one message.")
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping) or set(message) < {"role", "content"}:
            raise ValueError(
                f"message {index} must be a dict with 'role' and 'content', got {message!r}."
            )
        if message["role"] not in ROLES:
            raise ValueError(f"message {index} has role {message['role']!r}; use one of {ROLES}.")


def instruction_messages(example: Instruction, with_response: bool = True) -> list[dict[str, str]]:
    """An :class:`~llmzero.data.instructions.Instruction` as chat messages: the user's
    prompt, then (``with_response=True``) the assistant's reference answer."""
    messages = [{"role": "user", "content": example.prompt}]
    if with_response:
        messages.append({"role": "assistant", "content": example.response})
    return messages


# --- tokenizers -----------------------------------------------------------------------------


class TextCodec(Protocol):
    """What this module needs from a tokenizer: text to ids (special tokens written as text,
    such as ``"<|end|>"``, become their single ids) and ids back to text."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


class ByteChatTokenizer:
    """A byte-level tokenizer with chat special tokens, for the book's small GPT.

    Ids ``0..255`` are the UTF-8 bytes; then come ``<|system|>``, ``<|user|>``,
    ``<|assistant|>``, ``<|end|>`` and ``<|pad|>``, so :attr:`vocab_size` is 261. Every
    text has a representation (no unknown token), digits are single tokens, and nothing
    needs training; the price is long sequences, especially for Chinese (3 bytes a
    character). :class:`BPEChatTokenizer` puts a trained BPE underneath instead.
    """

    special_tokens = ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|pad|>")

    def __init__(self) -> None:
        base = self._base_size()
        self.special_ids = {token: base + index for index, token in enumerate(self.special_tokens)}
        self._split = re.compile("(" + "|".join(map(re.escape, self.special_tokens)) + ")")

    def _base_size(self) -> int:
        return 256

    def _encode_text(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def _decode_bytes(self, ids: Sequence[int]) -> bytes:
        return bytes(ids)

    @property
    def vocab_size(self) -> int:
        """The ordinary tokens plus the special tokens."""
        return self._base_size() + len(self.special_tokens)

    @property
    def end_id(self) -> int:
        """The id of ``<|end|>``, which ends every turn (the stop token)."""
        return self.special_ids["<|end|>"]

    @property
    def pad_id(self) -> int:
        """The id of ``<|pad|>``, used only to fill rows."""
        return self.special_ids["<|pad|>"]

    def encode(self, text: str) -> list[int]:
        """Special tokens written in ``text`` become their ids; the rest is encoded as text."""
        ids: list[int] = []
        for piece in self._split.split(text):
            if piece in self.special_ids:
                ids.append(self.special_ids[piece])
            elif piece:
                ids.extend(self._encode_text(piece))
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids``; special tokens are written out, broken UTF-8 becomes ``\ufffd``."""
        names = {index: token for token, index in self.special_ids.items()}
        base = self._base_size()
        text, pending = [], []
        for index in ids:
            index = int(index)
            if 0 <= index < base:
                pending.append(index)
                continue
            if index not in names:
                raise ValueError(
                    f"id {index} is outside the vocabulary (0..{self.vocab_size - 1})."
                )
            text.append(self._decode_bytes(pending).decode("utf-8", errors="replace"))
            text.append(names[index])
            pending = []
        text.append(self._decode_bytes(pending).decode("utf-8", errors="replace"))
        return "".join(text)


#: GPT-2's pre-tokenization pattern with numbers cut into single digits, so that no merge
#: ever joins two digits: every number is written digit by digit, as Llama's tokenizer does.
DIGIT_SPLIT_PATTERN = bpe.GPT2_SPLIT_PATTERN.replace(r" ?\d+", r" ?\d")


class BPEChatTokenizer(ByteChatTokenizer):
    """:class:`ByteChatTokenizer` with a trained byte-level BPE
    (:class:`llmzero.text.bpe.BPETokenizer`) underneath: ids ``0..V-1`` are the BPE's
    tokens, the same special tokens follow. Sequences are several times shorter than
    bytes, so a small model sees more examples for the same compute.

    :meth:`train` learns the BPE on some text with ``DIGIT_SPLIT_PATTERN`` (GPT-2's
    pre-tokenizer with numbers cut into single digits).
    """

    def __init__(self, tokenizer: bpe.BPETokenizer) -> None:
        if not isinstance(tokenizer, bpe.BPETokenizer):
            raise TypeError(
                f"expected an llmzero.text.bpe.BPETokenizer, got {type(tokenizer).__name__}."
            )
        self.bpe = tokenizer
        super().__init__()

    @classmethod
    def train(cls, text: str, vocab_size: int) -> BPEChatTokenizer:
        """Train a BPE of ``vocab_size`` tokens (bytes included) on ``text``."""
        if vocab_size <= bpe.N_BYTES:
            raise ValueError(f"vocab_size must exceed the {bpe.N_BYTES} bytes, got {vocab_size}.")
        return cls(bpe.train(text, vocab_size=vocab_size, pattern=DIGIT_SPLIT_PATTERN))

    def _base_size(self) -> int:
        return self.bpe.vocab_size

    def _encode_text(self, text: str) -> list[int]:
        return self.bpe.encode(text)

    def _decode_bytes(self, ids: Sequence[int]) -> bytes:
        return self.bpe.decode_bytes(ids)


class _HFCodec:
    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)


def hf_codec(tokenizer: Any) -> TextCodec:
    """Wrap a Hugging Face tokenizer as a :class:`TextCodec` (no BOS/EOS added by
    ``encode``; special tokens kept by ``decode``)."""
    if not hasattr(tokenizer, "encode") or not hasattr(tokenizer, "decode"):
        raise TypeError(f"expected a Hugging Face tokenizer, got {type(tokenizer).__name__}.")
    return _HFCodec(tokenizer)


# --- tokenising with the loss mask --------------------------------------------------------


@dataclass(frozen=True)
class TokenizedChat:
    """One conversation as ``input_ids`` and ``labels`` of the same length: ``labels[t]``
    is ``input_ids[t]`` where the token is the assistant's to write, else :data:`IGNORE_INDEX`."""

    input_ids: list[int]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def n_trained(self) -> int:
        """How many tokens count in the loss."""
        return sum(label != IGNORE_INDEX for label in self.labels)


def tokenize_chat(
    messages: Sequence[Mapping[str, str]],
    template: ChatTemplate,
    tokenizer: TextCodec,
    add_generation_prompt: bool = False,
) -> TokenizedChat:
    """Tokenise a conversation piece by piece and label only the assistant's tokens.

    Each message is encoded as three pieces, ``message_start``, ``content`` and
    ``stop + after_stop`` (the last as ``stop`` then ``after_stop``); for assistant
    messages the content and ``stop`` are labelled, so the model learns to answer and to
    end its turn. Encoding piece by piece gives the same ids as encoding the rendered text
    whenever the tokenizer never merges across the template's special tokens and line
    breaks, which holds for ChatML and byte-level vocabularies (the chapter checks
    SmolLM2's ``apply_chat_template`` on every example of the instruction set).
    """
    input_ids: list[int] = []
    labels: list[int] = []
    for message in template._with_system(messages):
        trained = message["role"] == "assistant"
        pieces = [
            (template.message_start.format(role=message["role"]), False),
            (message["content"], trained),
            (template.stop, trained),
            (template.after_stop, False),
        ]
        for text, labelled in pieces:
            ids = tokenizer.encode(text) if text else []
            input_ids += ids
            labels += ids if labelled else [IGNORE_INDEX] * len(ids)
    if add_generation_prompt:
        ids = tokenizer.encode(template.generation_prompt)
        input_ids += ids
        labels += [IGNORE_INDEX] * len(ids)
    return TokenizedChat(input_ids, labels)


# --- padding and packing ------------------------------------------------------------------


def _check_examples(examples: Sequence[TokenizedChat]) -> None:
    if not examples:
        raise ValueError("need at least one example to make a batch.")
    for example in examples:
        if len(example.input_ids) != len(example.labels) or len(example) == 0:
            raise ValueError(
                "every example needs input_ids and labels of the same, nonzero length."
            )


def pad_collate(
    examples: Sequence[TokenizedChat], pad_id: int, pad_to: int | None = None
) -> dict[str, Tensor]:
    """Right-pad examples to the longest one (or ``pad_to``): one example per row.

    Returns ``input_ids``, ``labels`` (:data:`IGNORE_INDEX` at pads) and
    ``attention_mask`` (1 for real tokens), each ``(batch, length)``. With right padding a
    causal model's real tokens never see the pads, so no mask is needed in the model.
    """
    _check_examples(examples)
    length = max(len(example) for example in examples)
    if pad_to is not None:
        if pad_to < length:
            raise ValueError(f"pad_to={pad_to} is shorter than the longest example ({length}).")
        length = pad_to
    input_ids = torch.full((len(examples), length), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), length), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), length), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example)
        input_ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        attention_mask[row, :n] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}


def pack_collate(
    examples: Sequence[TokenizedChat], block_size: int, pad_id: int
) -> dict[str, Tensor]:
    """Pack examples, in order, into rows of ``block_size`` tokens; pad only each row's end.

    An example that does not fit in the current row starts a new one (no example is cut).
    Returns ``input_ids``, ``labels``, ``attention_mask`` as :func:`pad_collate` does, plus
    ``position_ids`` (restarting at 0 for every example) and ``document_ids`` (which
    example of the row each token belongs to; -1 at pads), each ``(rows, block_size)``.
    The first label of every example is :data:`IGNORE_INDEX`, so no loss term predicts an
    example's first token from the end of the one before it. Pass ``position_ids`` and
    ``document_ids`` to :func:`causal_lm_logits` to keep attention inside each example.

    Raises:
        ValueError: an example is longer than ``block_size``.
    """
    _check_examples(examples)
    rows: list[list[TokenizedChat]] = [[]]
    used = 0
    for example in examples:
        if len(example) > block_size:
            raise ValueError(
                f"an example of {len(example)} tokens does not fit in block_size={block_size}; "
                "raise block_size or drop (or truncate) long examples first."
            )
        if used + len(example) > block_size:
            rows.append([])
            used = 0
        rows[-1].append(example)
        used += len(example)
    shape = (len(rows), block_size)
    batch = {
        "input_ids": torch.full(shape, pad_id, dtype=torch.long),
        "labels": torch.full(shape, IGNORE_INDEX, dtype=torch.long),
        "attention_mask": torch.zeros(shape, dtype=torch.long),
        "position_ids": torch.zeros(shape, dtype=torch.long),
        "document_ids": torch.full(shape, -1, dtype=torch.long),
    }
    for row, members in enumerate(rows):
        start = 0
        for document, example in enumerate(members):
            stop = start + len(example)
            batch["input_ids"][row, start:stop] = torch.tensor(example.input_ids)
            labels = torch.tensor(example.labels)
            labels[0] = IGNORE_INDEX  # never predicted from the previous example
            batch["labels"][row, start:stop] = labels
            batch["attention_mask"][row, start:stop] = 1
            batch["position_ids"][row, start:stop] = torch.arange(len(example))
            batch["document_ids"][row, start:stop] = document
            start = stop
    return batch


def padding_waste(batch: Mapping[str, Tensor]) -> float:
    """The share of a batch's positions that hold no real token (pads), between 0 and 1."""
    mask = batch["attention_mask"]
    return 1.0 - mask.sum().item() / mask.numel()


# --- forward passes and the loss ----------------------------------------------------------


def _attention_mask(position_ids: Tensor, document_ids: Tensor) -> Tensor:
    """``(B, 1, T, T)`` booleans: query ``i`` may see key ``j`` if both are in the same
    document and ``j`` is not later. Pads (document -1) see only themselves, so no row of
    the softmax is empty."""
    same = document_ids[:, :, None] == document_ids[:, None, :]  # (B, T, T)
    seq = position_ids.shape[1]
    causal = torch.ones(seq, seq, dtype=torch.bool, device=position_ids.device).tril()
    eye = torch.eye(seq, dtype=torch.bool, device=position_ids.device)
    return ((same & causal) | eye)[:, None]  # (B, 1, T, T)


def _gpt_block(
    block: nn.Module, x: Tensor, mask: Tensor | None, past: tuple | None, training: bool
):
    """One block of :class:`~llmzero.models.gpt.GPT` with an explicit attention mask and
    an optional key/value cache; returns the new stream and this block's keys and values."""
    attention = block.attn
    batch, seq, channels = x.shape  # (B, T, C)
    heads = attention.n_head
    q, k, v = attention.c_attn(block.ln_1(x)).split(attention.n_embd, dim=2)  # (B, T, C) each
    q, k, v = (t.view(batch, seq, heads, channels // heads).transpose(1, 2) for t in (q, k, v))
    if past is not None:
        k = torch.cat([past[0], k], dim=2)  # (B, H, T_past + T, D)
        v = torch.cat([past[1], v], dim=2)
    dropout = attention.dropout if training else 0.0
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)  # (B, H, T, D)
    y = y.transpose(1, 2).reshape(batch, seq, channels)  # (B, T, C)
    x = x + attention.resid_dropout(attention.c_proj(y))
    x = x + block.mlp(block.ln_2(x))
    return x, (k, v)


def gpt_forward(
    model: GPT,
    input_ids: Tensor,
    position_ids: Tensor | None = None,
    document_ids: Tensor | None = None,
) -> Tensor:
    """The logits ``(B, T, V)`` of the book's :class:`~llmzero.models.gpt.GPT`, with
    positions and attention given explicitly.

    Without ``position_ids`` and ``document_ids`` this is ``model(input_ids)[0]``. With
    them (as :func:`pack_collate` makes them), each token sees only earlier tokens of its
    own example and its position embedding counts from that example's start, so a packed
    row computes the same logits as its examples run one by one.
    """
    if not isinstance(model, GPT):
        raise TypeError(f"gpt_forward needs llmzero's GPT, got {type(model).__name__}.")
    if (position_ids is None) != (document_ids is None):
        raise ValueError("pass both position_ids and document_ids, or neither.")
    if position_ids is None:
        return model(input_ids)[0]
    if position_ids.shape != input_ids.shape or document_ids.shape != input_ids.shape:
        raise ValueError("position_ids and document_ids must have the shape of input_ids.")
    if input_ids.shape[1] > model.config.block_size:
        raise ValueError(
            f"rows of {input_ids.shape[1]} tokens exceed the model's block_size "
            f"({model.config.block_size})."
        )
    transformer = model.transformer
    x = transformer.drop(transformer.wte(input_ids) + transformer.wpe(position_ids))  # (B, T, C)
    mask = _attention_mask(position_ids, document_ids)  # (B, 1, T, T)
    for block in transformer.h:
        x, _ = _gpt_block(block, x, mask, None, model.training)
    return model.lm_head(transformer.ln_f(x))  # (B, T, V)


def causal_lm_logits(model: nn.Module, batch: Mapping[str, Tensor]) -> Tensor:
    """Logits ``(B, T, V)`` for a batch from :func:`pad_collate` or :func:`pack_collate`.

    The book's GPT goes through :func:`gpt_forward` (with the packed rows' block-diagonal
    attention when the batch has ``document_ids``); any other model is called as a Hugging
    Face causal LM, ``model(input_ids=..., attention_mask=...).logits``. Packed batches are
    supported for the book's GPT only: a Hugging Face model would let examples attend to
    each other across a row.
    """
    device = next(model.parameters()).device
    input_ids = batch["input_ids"].to(device)
    if isinstance(model, GPT):
        positions, documents = batch.get("position_ids"), batch.get("document_ids")
        if positions is not None:
            positions, documents = positions.to(device), documents.to(device)
        return gpt_forward(model, input_ids, positions, documents)
    if "document_ids" in batch:
        raise ValueError(
            "packed batches need an attention mask per example, which this function builds "
            "for llmzero's GPT only; use pad_collate for Hugging Face models."
        )
    mask = batch.get("attention_mask")
    return model(
        input_ids=input_ids, attention_mask=None if mask is None else mask.to(device)
    ).logits


def sft_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean next-token cross-entropy over the labelled positions.

    ``logits[:, t]`` is scored against ``labels[:, t + 1]``; positions labelled
    :data:`IGNORE_INDEX` count for nothing, neither in the sum nor in the mean.

    Raises:
        ValueError: shapes do not match, or no position is labelled.
    """
    if logits.dim() != 3 or logits.shape[:2] != labels.shape:
        raise ValueError(
            f"logits must be (batch, seq, vocab) and labels (batch, seq); got "
            f"{tuple(logits.shape)} and {tuple(labels.shape)}."
        )
    targets = labels[:, 1:].to(logits.device)  # (B, T-1): the next token of each position
    if not (targets != IGNORE_INDEX).any():
        raise ValueError("no position is labelled: every label is IGNORE_INDEX (-100).")
    return F.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(),  # (B*(T-1), V)
        targets.flatten(),  # (B*(T-1),)
        ignore_index=IGNORE_INDEX,
    )


def sft_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: Mapping[str, Tensor],
    max_grad_norm: float | None = 1.0,
) -> float:
    """One SFT update: forward, :func:`sft_loss`, backward, clip, step. Returns the loss
    (before the update) as a float. Works for the book's GPT and Hugging Face causal LMs."""
    model.train()
    loss = sft_loss(causal_lm_logits(model, batch), batch["labels"])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    return loss.item()


# --- greedy answers and exact match -------------------------------------------------------


@torch.no_grad()
def _gpt_greedy(
    model: GPT, prompts: Sequence[Sequence[int]], max_new_tokens: int, stop_id: int, pad_id: int
) -> list[list[int]]:
    """Greedy decoding for the book's GPT: left-padded prompts, one key/value cache."""
    device = next(model.parameters()).device
    longest = max(len(prompt) for prompt in prompts)
    if longest + max_new_tokens > model.config.block_size:
        raise ValueError(
            f"a prompt of {longest} tokens plus {max_new_tokens} new ones exceeds the "
            f"model's block_size ({model.config.block_size}); lower max_new_tokens."
        )
    ids = torch.full((len(prompts), longest), pad_id, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, longest - len(prompt) :] = torch.tensor(list(prompt))
    lengths = torch.tensor([len(prompt) for prompt in prompts])
    real = torch.arange(longest)[None, :] >= (longest - lengths)[:, None]  # (B, P): not padding
    ids, real = ids.to(device), real.to(device)
    positions = (real.long().cumsum(dim=1) - 1).clamp(min=0)  # (B, P)
    documents = torch.where(real, 0, -1)  # pads are their own "document"
    mask = _attention_mask(positions, documents)  # (B, 1, P, P)
    transformer = model.transformer
    x = transformer.wte(ids) + transformer.wpe(positions)  # (B, P, C)
    cache = []
    for block in transformer.h:
        x, kv = _gpt_block(block, x, mask, None, False)
        cache.append(kv)
    keys_real = real[:, None, None, :]  # (B, 1, 1, P): which cached keys may be seen
    next_position = positions[:, -1] + 1  # (B,)
    outputs = torch.empty((len(prompts), 0), dtype=torch.long, device=device)
    done = torch.zeros(len(prompts), dtype=torch.bool, device=device)
    for _ in range(max_new_tokens):
        logits = model.lm_head(transformer.ln_f(x[:, -1:]))  # (B, 1, V)
        token = logits[:, 0].argmax(dim=-1)  # (B,)
        token = torch.where(done, torch.full_like(token, pad_id), token)
        outputs = torch.cat([outputs, token[:, None]], dim=1)
        done |= token == stop_id
        if done.all():
            break
        keys_real = torch.cat([keys_real, torch.ones_like(keys_real[..., :1])], dim=-1)
        x = transformer.wte(token[:, None]) + transformer.wpe(next_position[:, None])  # (B, 1, C)
        next_position = next_position + 1
        for index, block in enumerate(transformer.h):
            x, cache[index] = _gpt_block(block, x, keys_real, cache[index], False)
    return [_until_stop(row.tolist(), stop_id) for row in outputs.cpu()]


def _until_stop(ids: list[int], stop_id: int) -> list[int]:
    return ids[: ids.index(stop_id)] if stop_id in ids else ids


@torch.no_grad()
def greedy_generate(
    model: nn.Module,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    stop_id: int,
    pad_id: int,
) -> list[list[int]]:
    """Greedy continuations of a batch of prompts (token-id lists), each cut before the
    first ``stop_id`` (which is not returned).

    The book's GPT decodes with a key/value cache over left-padded prompts (positions and
    attention skip the pads, so each row gets what it would get alone); any other model is
    treated as a Hugging Face causal LM and decoded with its ``generate``.
    """
    if not prompts or any(len(prompt) == 0 for prompt in prompts):
        raise ValueError("need at least one prompt, and no prompt may be empty.")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}.")
    was_training = model.training
    model.eval()
    try:
        if isinstance(model, GPT):
            return _gpt_greedy(model, prompts, max_new_tokens, stop_id, pad_id)
        device = next(model.parameters()).device
        longest = max(len(prompt) for prompt in prompts)
        ids = torch.full((len(prompts), longest), pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, prompt in enumerate(prompts):
            ids[row, longest - len(prompt) :] = torch.tensor(list(prompt))
            mask[row, longest - len(prompt) :] = 1
        out = model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            do_sample=False,
            max_new_tokens=max_new_tokens,
            eos_token_id=stop_id,
            pad_token_id=pad_id,
        )
        return [_until_stop(row.tolist(), stop_id) for row in out[:, longest:].cpu()]
    finally:
        model.train(was_training)


@dataclass(frozen=True)
class Prediction:
    """A model's greedy ``answer`` to ``example`` and whether it is an exact match."""

    example: Instruction
    answer: str
    correct: bool


def evaluate_exact_match(
    model: nn.Module,
    examples: Sequence[Instruction],
    template: ChatTemplate,
    tokenizer: TextCodec,
    stop_id: int,
    pad_id: int,
    batch_size: int = 64,
    slack_tokens: int = 3,
) -> list[Prediction]:
    """Answer every example greedily and score it with
    :func:`llmzero.data.instructions.is_correct`.

    Prompts are the user message plus the template's generation prompt. Each batch (of
    examples sorted by prompt length) may write up to ``slack_tokens`` more tokens than
    its longest reference answer: enough for a final full stop or spaces, which
    ``is_correct`` forgives; any longer answer could not be correct anyway. Predictions
    come back in the order of ``examples``.
    """
    if not examples:
        raise ValueError("need at least one example to evaluate.")
    prompts = [
        tokenize_chat(instruction_messages(e, False), template, tokenizer, True).input_ids
        for e in examples
    ]
    budgets = [len(tokenizer.encode(e.response)) + slack_tokens for e in examples]
    order = sorted(range(len(examples)), key=lambda i: len(prompts[i]))
    answers: dict[int, str] = {}
    for first in range(0, len(order), batch_size):
        chunk = order[first : first + batch_size]
        outputs = greedy_generate(
            model, [prompts[i] for i in chunk], max(budgets[i] for i in chunk), stop_id, pad_id
        )
        for index, output in zip(chunk, outputs, strict=True):
            answers[index] = tokenizer.decode(output)
    return [
        Prediction(example, answers[i], is_correct(example, answers[i]))
        for i, example in enumerate(examples)
    ]


def accuracy_by_task(predictions: Sequence[Prediction]) -> dict[str, float]:
    """Exact-match accuracy per task, plus ``"all"`` over every prediction."""
    if not predictions:
        raise ValueError("no predictions to score.")
    by_task: dict[str, list[bool]] = defaultdict(list)
    for prediction in predictions:
        by_task[prediction.example.task].append(prediction.correct)
    scores = {task: sum(hits) / len(hits) for task, hits in by_task.items()}
    scores["all"] = sum(p.correct for p in predictions) / len(predictions)
    return scores
