"""Sentence embeddings with all-MiniLM-L6-v2: one unit-length vector per text.

Built step by step in the chapter *Linear algebra for language models*; semantic search,
retrieval-augmented generation and zero-shot classification reuse it::

    from llmzero.models.embeddings import encode

    vectors = encode(["A cat sleeps.", "A kitten naps."])  # (2, 384), each row has norm 1
    similarity = vectors @ vectors.T                         # cosine similarities, (2, 2)

The recipe is the one the sentence-transformers library uses for this model: run the
BERT-style encoder, average its output vectors over the real (non-padding) tokens, and
scale the average to length 1.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

__all__ = ["DEFAULT_MODEL", "SentenceEncoder", "encode", "mean_pool"]

DEFAULT_MODEL = "all-MiniLM-L6-v2"
"""The asset name of the default sentence encoder (384-dimensional embeddings)."""

_MAX_LENGTH = 256  # the model's max_seq_length in its sentence_bert_config.json


def mean_pool(token_embeddings: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the token vectors of each text, ignoring padding.

    Args:
        token_embeddings: the encoder's output, shape ``(batch, seq, d_model)``.
        attention_mask: 1 for real tokens and 0 for padding, shape ``(batch, seq)``.

    Returns:
        One vector per text, shape ``(batch, d_model)``.

    Raises:
        ValueError: the shapes do not fit together.
    """
    if token_embeddings.ndim != 3 or attention_mask.shape != token_embeddings.shape[:2]:
        raise ValueError(
            "expected token_embeddings (batch, seq, d_model) and attention_mask (batch, seq), "
            f"got {tuple(token_embeddings.shape)} and {tuple(attention_mask.shape)}."
        )
    mask = attention_mask.unsqueeze(-1).to(token_embeddings.dtype)  # (batch, seq, 1)
    summed = (token_embeddings * mask).sum(dim=1)  # (batch, d_model)
    counts = mask.sum(dim=1).clamp_min(1e-9)  # (batch, 1), no division by zero
    return summed / counts  # (batch, d_model)


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Hide transformers' weight-loading progress bar (it writes to stderr), then restore it."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


class SentenceEncoder:
    """A pretrained sentence encoder that maps texts to unit-length vectors.

    Args:
        model_dir: a folder for ``from_pretrained``; by default the all-MiniLM-L6-v2 asset,
            loaded through :func:`llmzero.data.assets.hf_model`.
        device: where the model runs; by default :func:`llmzero.core.runtime.get_device`.
        max_length: texts longer than this many tokens are truncated (256 for MiniLM).

    Attributes:
        tokenizer: the Hugging Face tokenizer.
        model: the Hugging Face encoder (``AutoModel``), in eval mode on ``device``.
        device: the device the model runs on.
    """

    def __init__(
        self,
        model_dir: str | Path | None = None,
        device: str | torch.device | None = None,
        max_length: int = _MAX_LENGTH,
    ) -> None:
        from transformers import AutoModel, AutoTokenizer

        from llmzero.core.runtime import get_device
        from llmzero.data import assets

        folder = Path(model_dir) if model_dir is not None else assets.hf_model(DEFAULT_MODEL)
        self.device = torch.device(device) if device is not None else get_device()
        self.max_length = max_length
        with _quiet_transformers():
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
            self.model = AutoModel.from_pretrained(folder).to(self.device).eval()

    @property
    def dim(self) -> int:
        """The length of each embedding (384 for MiniLM)."""
        return int(self.model.config.hidden_size)

    @torch.no_grad()
    def encode(self, texts: Sequence[str], batch_size: int = 32) -> torch.Tensor:
        """Embed ``texts``: encoder, mean pooling over real tokens, then L2 normalisation.

        Args:
            texts: a list of strings (pass ``[text]`` for a single one).
            batch_size: how many texts go through the model at once.

        Returns:
            A float32 tensor of shape ``(len(texts), dim)`` on the CPU; every row has norm 1,
            so ``vectors @ vectors.T`` gives cosine similarities.

        Raises:
            TypeError: ``texts`` is a single string or contains a non-string.
            ValueError: ``batch_size`` is not positive.
        """
        if isinstance(texts, str) or not all(isinstance(text, str) for text in texts):
            raise TypeError("texts must be a list of strings; wrap a single text as [text].")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        chunks = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(
                list(texts[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)  # input_ids and attention_mask: (batch, seq)
            hidden = self.model(**batch).last_hidden_state  # (batch, seq, d_model)
            pooled = mean_pool(hidden, batch["attention_mask"])  # (batch, d_model)
            chunks.append(F.normalize(pooled, p=2, dim=-1).float().cpu())  # unit rows
        if not chunks:
            return torch.empty(0, self.dim)
        return torch.cat(chunks)  # (n, d_model)


@functools.lru_cache(maxsize=4)
def _cached_encoder(model_dir: str | None, device: str | None) -> SentenceEncoder:
    return SentenceEncoder(model_dir, device)


def encode(
    texts: Sequence[str],
    model_dir: str | Path | None = None,
    batch_size: int = 32,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Embed ``texts`` with a :class:`SentenceEncoder`, loaded once and then reused.

    Args:
        texts: a list of strings.
        model_dir: a model folder; by default the all-MiniLM-L6-v2 asset.
        batch_size: how many texts go through the model at once.
        device: where the model runs; by default :func:`llmzero.core.runtime.get_device`.

    Returns:
        A float32 tensor of shape ``(len(texts), 384)`` on the CPU with unit-length rows.
    """
    encoder = _cached_encoder(
        str(model_dir) if model_dir is not None else None,
        str(device) if device is not None else None,
    )
    return encoder.encode(texts, batch_size=batch_size)
