"""Named-entity recognition as token classification with a sub-word encoder.

Built in the chapter *Named-entity recognition and information extraction* (Part VI)::

    from llmzero.applications import ner

    train = ner.read_conll(assets.path("wnut17") / "wnut17train.conll")  # [(words, tags)]
    labels = ner.label_list(tags for _, tags in train)  # ["O", "B-corporation", ...]
    model = ner.TokenClassifier.from_pretrained(model_dir, num_labels=len(labels))
    batches = ner.make_token_batches(tokenizer, train, labels, batch_size=16, max_length=64)
    finetune(model, batches, lr=1e-4)  # llmzero.training.finetune's loop, unchanged
    predicted = ner.predict_tags(model, tokenizer, [words for words, _ in test], labels)

The data are words with one IOB2 tag each; the encoder reads sub-word tokens. The
*alignment* between the two is the heart of it:

- training (:func:`align_labels`): the first sub-token of each word gets the word's label,
  the other sub-tokens and the special tokens ``[CLS]``/``[SEP]`` get ``-100``, which
  PyTorch's cross-entropy ignores (``strategy="all"`` copies the label instead, to show why
  that is worse);
- prediction (:func:`word_predictions`): each word takes the label predicted for its first
  sub-token, so predictions line up one to one with the gold words.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from llmzero.core.runtime import to_device
from llmzero.training.finetune import load_encoder

__all__ = [
    "IGNORE_INDEX",
    "TokenClassifier",
    "align_labels",
    "encode",
    "label_list",
    "make_token_batches",
    "predict_tags",
    "read_conll",
    "word_predictions",
]

#: The label of positions the loss skips (PyTorch's ``cross_entropy`` default ``ignore_index``).
IGNORE_INDEX = -100

Sentence = tuple[list[str], list[str]]  # (words, IOB2 tags)


def read_conll(path: str | Path) -> list[Sentence]:
    """Sentences of a CoNLL-style file: one ``word<TAB>tag`` per line, blank lines between.

    Only the first and the last column are read (the word and its tag), so files with extra
    columns (part-of-speech tags, chunks) work too. Returns a list of ``(words, tags)``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a non-blank line without a tag (the message gives its line number).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; load data through llmzero.data.assets.")
    sentences: list[Sentence] = []
    words: list[str] = []
    tags: list[str] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate([*lines, ""], start=1):
        if line.strip():
            columns = line.split("\t") if "\t" in line else line.split()
            if len(columns) < 2:
                raise ValueError(f"{path}, line {number}: expected 'word<TAB>tag', got {line!r}.")
            words.append(columns[0])
            tags.append(columns[-1].strip())
        elif words:
            sentences.append((words, tags))
            words, tags = [], []
    return sentences


def label_list(tag_lists: Iterable[Sequence[str]]) -> list[str]:
    """The label set of IOB2 tag lists: ``"O"`` first, then ``B-`` and ``I-`` of each type.

    Types are sorted by name, so the same data always give the same label ids.
    """
    kinds = {tag[2:] for tags in tag_lists for tag in tags if tag != "O"}
    return ["O"] + [f"{prefix}-{kind}" for kind in sorted(kinds) for prefix in ("B", "I")]


def align_labels(
    word_ids: Sequence[int | None],
    word_labels: Sequence[int],
    strategy: str = "first",
    ignore_index: int = IGNORE_INDEX,
) -> list[int]:
    """One label per sub-word token from one label per word.

    Args:
        word_ids: for each token, the index of the word it comes from, or None for special
            tokens (what a fast tokenizer's ``encoding.word_ids()`` returns).
        word_labels: one label id per word.
        strategy: ``"first"``: the first token of each word gets its label, the others
            ``ignore_index``; ``"all"``: every token of a word gets the word's label.
        ignore_index: the label the loss ignores.

    Returns:
        One label per token; special tokens always get ``ignore_index``.

    Raises:
        ValueError: an unknown strategy, or a word index outside ``word_labels``.
    """
    if strategy not in ("first", "all"):
        raise ValueError(f"strategy must be 'first' or 'all', got {strategy!r}.")
    labels, previous = [], None
    for word in word_ids:
        if word is None:
            labels.append(ignore_index)  # [CLS], [SEP], padding
        elif not 0 <= word < len(word_labels):
            raise ValueError(
                f"token of word {word}, but only {len(word_labels)} word labels: tokenize the "
                "same words that carry the labels (is_split_into_words=True)."
            )
        elif word != previous or strategy == "all":
            labels.append(int(word_labels[word]))
        else:
            labels.append(ignore_index)  # a later piece of the same word
        previous = word
    return labels


def encode(
    tokenizer: Any,
    sentences: Sequence[Sentence],
    labels: Sequence[str],
    *,
    max_length: int,
    strategy: str = "first",
) -> list[dict[str, list[int]]]:
    """Tokenize pre-split sentences and align their tags: one dict of lists per sentence.

    Each dict has ``input_ids``, ``attention_mask``, ``labels`` (see :func:`align_labels`)
    and ``word_ids`` (None for special tokens). Words beyond ``max_length`` tokens are cut.

    Raises:
        ValueError: a slow tokenizer (no ``word_ids``), or a tag not in ``labels``.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            "need a fast tokenizer (AutoTokenizer.from_pretrained(..., use_fast=True))."
        )
    label_id = {label: i for i, label in enumerate(labels)}
    encoded = []
    for words, tags in sentences:
        unknown = [tag for tag in tags if tag not in label_id]
        if unknown:
            raise ValueError(f"tags {sorted(set(unknown))} are not in the label list {labels}.")
        enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
        word_ids = enc.word_ids()
        aligned = align_labels(word_ids, [label_id[tag] for tag in tags], strategy)
        encoded.append(
            {
                "input_ids": enc["input_ids"],
                "attention_mask": enc["attention_mask"],
                "labels": aligned,
                "word_ids": word_ids,
            }
        )
    return encoded


def _pad(rows: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    longest = max(len(row) for row in rows)
    return torch.tensor([list(row) + [value] * (longest - len(row)) for row in rows])


def make_token_batches(
    tokenizer: Any,
    sentences: Sequence[Sentence],
    labels: Sequence[str],
    *,
    batch_size: int,
    max_length: int,
    strategy: str = "first",
    seed: int | None = None,
) -> list[dict[str, torch.Tensor]]:
    """Padded batches for token classification: ``input_ids``, ``attention_mask``, ``labels``.

    Each batch is padded to its longest sentence: ids with the tokenizer's padding id, the
    mask with 0 and the labels with ``-100`` (what ``transformers``'
    ``DataCollatorForTokenClassification`` does). With a ``seed`` the sentences are shuffled
    first; without one they keep their order.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    encoded = encode(tokenizer, sentences, labels, max_length=max_length, strategy=strategy)
    order = np.arange(len(encoded))
    if seed is not None:
        order = np.random.default_rng(seed).permutation(len(encoded))
    batches = []
    for start in range(0, len(order), batch_size):
        rows = [encoded[i] for i in order[start : start + batch_size]]
        batches.append(
            {
                "input_ids": _pad([r["input_ids"] for r in rows], tokenizer.pad_token_id),
                "attention_mask": _pad([r["attention_mask"] for r in rows], 0),
                "labels": _pad([r["labels"] for r in rows], IGNORE_INDEX),
            }
        )
    return batches


class TokenClassifier(nn.Module):
    """A pretrained encoder with dropout and a linear layer on *every* token's vector.

    The head is BERT's token-classification head (``BertForTokenClassification``): weights
    normal with standard deviation 0.02, biases 0. ``forward`` returns ``{"logits": (batch,
    seq, num_labels)}`` and, with labels, the mean cross-entropy over the tokens whose label
    is not ``-100``, so :func:`llmzero.training.finetune.finetune` trains it unchanged.
    """

    def __init__(
        self,
        encoder: nn.Module,
        num_labels: int,
        dropout: float = 0.1,
        hidden_size: int | None = None,
    ) -> None:
        super().__init__()
        if hidden_size is None:
            hidden_size = getattr(getattr(encoder, "config", None), "hidden_size", None)
            if hidden_size is None:
                raise ValueError("could not read encoder.config.hidden_size; pass hidden_size=.")
        if num_labels < 2:
            raise ValueError(f"need at least 2 labels, got {num_labels}.")
        if getattr(encoder, "pooler", None) is not None:
            encoder.pooler = None  # unused: every token gets its own prediction
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(int(hidden_size), num_labels)
        nn.init.normal_(self.classifier.weight, std=0.02)
        nn.init.zeros_(self.classifier.bias)

    @classmethod
    def from_pretrained(
        cls, model_dir: str | Path, num_labels: int, dropout: float = 0.1
    ) -> TokenClassifier:
        """Load a ``transformers`` encoder from a local folder and add a new head (seed first)."""
        return cls(load_encoder(model_dir), num_labels=num_labels, dropout=dropout)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Logits ``(batch, seq, num_labels)``; and ``loss`` given labels ``(batch, seq)``."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        logits = self.classifier(self.dropout(hidden.last_hidden_state))  # (batch, seq, labels)
        outputs = {"logits": logits}
        if labels is not None:
            outputs["loss"] = F.cross_entropy(
                logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX
            )
        return outputs


def word_predictions(
    word_ids: Sequence[int | None], token_labels: Sequence[int], n_words: int
) -> list[int | None]:
    """One prediction per word: the label of its first token (None for a word cut off)."""
    per_word: list[int | None] = [None] * n_words
    for word, label in zip(word_ids, token_labels, strict=False):
        if word is not None and per_word[word] is None:
            per_word[word] = int(label)
    return per_word


@torch.no_grad()
def predict_tags(
    model: nn.Module,
    tokenizer: Any,
    sentences: Sequence[Sequence[str]],
    labels: Sequence[str],
    *,
    batch_size: int = 64,
    max_length: int = 128,
    device: torch.device | str | None = None,
) -> list[list[str]]:
    """Predicted IOB2 tags, one per word, for pre-split sentences (lists of words).

    Sentences are run shortest first (less padding) and returned in the given order. Each
    word takes the label of its first sub-token; words cut off by ``max_length`` get ``"O"``.
    The tags are the raw argmax and may be malformed (``O I-x``): the evaluation decides how
    to read them (see :mod:`llmzero.evaluation.sequence_labeling`).
    """
    if isinstance(sentences, str) or any(isinstance(s, str) for s in sentences):
        raise ValueError("pass a list of sentences, each a list of words (pre-split).")
    if device is None:
        device = next(model.parameters()).device
    model.eval()
    dummy = [(list(words), ["O"] * len(words)) for words in sentences]
    encoded = encode(tokenizer, dummy, labels, max_length=max_length)
    order = np.argsort([len(e["input_ids"]) for e in encoded], kind="stable")
    tags: list[list[str]] = [[] for _ in sentences]
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batch = {
            "input_ids": _pad([encoded[i]["input_ids"] for i in rows], tokenizer.pad_token_id),
            "attention_mask": _pad([encoded[i]["attention_mask"] for i in rows], 0),
        }
        best = model(**to_device(batch, device))["logits"].argmax(dim=-1).cpu()  # (batch, seq)
        for row, i in enumerate(rows):
            per_word = word_predictions(
                encoded[i]["word_ids"], best[row].tolist(), len(sentences[i])
            )
            tags[i] = [labels[p] if p is not None else "O" for p in per_word]
    return tags
