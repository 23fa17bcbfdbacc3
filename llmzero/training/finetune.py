"""Fine-tuning a pretrained encoder for classification, with a plain PyTorch loop.

Built step by step in the chapter *Fine-tuning an encoder for classification* (Part V);
the LoRA chapter reuses it to compare parameter-efficient with full fine-tuning::

    from llmzero.training.finetune import EncoderClassifier, finetune, make_batches

    model = EncoderClassifier.from_pretrained(assets.hf_model("all-MiniLM-L6-v2"), num_labels=2)
    batches = make_batches(tokenizer, texts, labels, batch_size=16, max_length=64, seed=0)
    log = finetune(model, batches, lr=5e-5, warmup_steps=2, seed=0)

The pieces:

- :class:`ClassificationHead` and :class:`EncoderClassifier`: a pretrained encoder, mean
  pooling over the real tokens, dropout and one linear layer. Like the classes of
  ``transformers``, ``forward`` returns a dictionary with ``logits`` and, when ``labels``
  are given, the cross-entropy ``loss``, so ``transformers.Trainer`` can train it as is.
- :func:`freeze_except` and :func:`count_parameters`: choose which parameters train.
- :func:`parameter_groups` and :func:`linear_warmup_schedule`: AdamW without weight decay
  on biases and LayerNorm weights, and a learning rate that rises linearly for the warm-up
  steps and then falls linearly to 0 (the defaults of ``transformers.Trainer``).
- :func:`make_batches`, :func:`finetune` and :func:`predict_logits`: the data, the loop
  (forward, loss, backward, clip, step, schedule) and inference.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from llmzero.core.runtime import seed_everything, to_device
from llmzero.models.embeddings import mean_pool

__all__ = [
    "ClassificationHead",
    "EncoderClassifier",
    "FinetuneLog",
    "count_parameters",
    "finetune",
    "freeze_except",
    "linear_warmup_schedule",
    "make_batches",
    "parameter_groups",
    "predict_logits",
]

Batch = Mapping[str, torch.Tensor]


def _outputs(logits: torch.Tensor, labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """``{"logits": ...}`` plus the mean cross-entropy ``loss`` when labels are given."""
    outputs = {"logits": logits}
    if labels is not None:
        outputs["loss"] = F.cross_entropy(logits, labels)
    return outputs


def load_encoder(model_dir: str | Path) -> nn.Module:
    """A ``transformers`` encoder from a local folder, in float32, without a progress bar."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # its weight-loading bar writes to stderr
    try:
        return AutoModel.from_pretrained(Path(model_dir), dtype=torch.float32)
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


class ClassificationHead(nn.Module):
    """Dropout, then a linear layer from a feature vector to one score (logit) per class.

    The weights start as in BERT: normal with standard deviation 0.02, biases 0.

    Args:
        hidden_size: the length of the input feature vectors.
        num_labels: the number of classes.
        dropout: the dropout probability applied to the features while training.
    """

    def __init__(self, hidden_size: int, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        if hidden_size < 1 or num_labels < 2:
            raise ValueError(
                f"need hidden_size >= 1 and num_labels >= 2, got {hidden_size} and {num_labels}."
            )
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(hidden_size, num_labels)
        nn.init.normal_(self.linear.weight, std=0.02)
        nn.init.zeros_(self.linear.bias)

    def forward(
        self, features: torch.Tensor, labels: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Logits ``(batch, num_labels)`` for features ``(batch, hidden_size)``; and the loss."""
        return _outputs(self.linear(self.dropout(features)), labels)


class EncoderClassifier(nn.Module):
    """A pretrained encoder with a classification head on its mean-pooled token vectors.

    Args:
        encoder: a module called as ``encoder(input_ids=..., attention_mask=...)`` that
            returns an object with ``last_hidden_state`` of shape ``(batch, seq, hidden)``,
            e.g. a ``transformers.AutoModel`` (a BERT-style encoder).
        num_labels: the number of classes.
        dropout: dropout on the pooled vector before the linear layer.
        hidden_size: the encoder's output width; read from ``encoder.config.hidden_size``
            when not given.

    Parameter names start with ``encoder.`` or ``head.``, e.g.
    ``encoder.encoder.layer.5.output.dense.weight`` for the last block of MiniLM.

    BERT's ``pooler`` (a layer on the ``[CLS]`` vector) is not used by mean pooling; if the
    encoder has one, it is removed (``encoder.pooler = None``), so that its weights are not
    counted, or handed to the optimizer, as trainable parameters that never get a gradient.
    """

    def __init__(
        self,
        encoder: nn.Module,
        num_labels: int = 2,
        dropout: float = 0.1,
        hidden_size: int | None = None,
    ) -> None:
        super().__init__()
        if hidden_size is None:
            config = getattr(encoder, "config", None)
            hidden_size = getattr(config, "hidden_size", None)
            if hidden_size is None:
                raise ValueError(
                    "could not read encoder.config.hidden_size; pass hidden_size= explicitly."
                )
        if getattr(encoder, "pooler", None) is not None:
            encoder.pooler = None  # unused: we pool by the mean, not through [CLS]
        self.encoder = encoder
        self.head = ClassificationHead(int(hidden_size), num_labels, dropout)

    @classmethod
    def from_pretrained(
        cls, model_dir: str | Path, num_labels: int = 2, dropout: float = 0.1
    ) -> EncoderClassifier:
        """Load a ``transformers`` encoder from a local folder and add a new head.

        The head's weights are drawn from PyTorch's global generator: seed it first.
        """
        return cls(load_encoder(model_dir), num_labels=num_labels, dropout=dropout)

    def pool(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The mean of the encoder's output vectors over real tokens: ``(batch, hidden)``."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        return mean_pool(hidden.last_hidden_state, attention_mask)  # (batch, hidden)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Logits ``(batch, num_labels)`` for token ids ``(batch, seq)``; and the loss.

        Args:
            input_ids: token ids, shape ``(batch, seq)``.
            attention_mask: 1 for real tokens and 0 for padding, shape ``(batch, seq)``.
            labels: optional class indices, shape ``(batch,)``.

        Returns:
            ``{"logits": ...}``, plus ``"loss"`` (mean cross-entropy) when labels are given.
        """
        return self.head(self.pool(input_ids, attention_mask), labels)


# --------------------------------------------------------------------------------------
# Which parameters train
# --------------------------------------------------------------------------------------


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """The number of parameters of ``model`` (only those with ``requires_grad`` if asked).

    A tensor shared between two modules (tied weights) is counted once.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def freeze_except(model: nn.Module, prefixes: Sequence[str]) -> int:
    """Freeze every parameter whose name does not start with one of ``prefixes``.

    ``freeze_except(model, ["head."])`` trains only the head of an
    :class:`EncoderClassifier`; ``["encoder.encoder.layer.5.", "head."]`` also its last
    block; ``[""]`` unfreezes everything.

    Args:
        model: the model; its parameters' ``requires_grad`` flags are changed in place.
        prefixes: beginnings of parameter names (as in ``model.named_parameters()``).

    Returns:
        The number of trainable parameters afterwards.

    Raises:
        ValueError: ``prefixes`` is a single string, or one of them matches no parameter
            (usually a typo; the message lists some real names).
    """
    if isinstance(prefixes, str):
        raise ValueError(f"prefixes must be a list of strings; wrap one prefix as [{prefixes!r}].")
    names = [name for name, _ in model.named_parameters()]
    unused = [prefix for prefix in prefixes if not any(n.startswith(prefix) for n in names)]
    if unused:
        examples = ", ".join(names[:2] + names[-2:])
        raise ValueError(
            f"no parameter name starts with {unused}; names look like: {examples}. "
            "List them with [name for name, _ in model.named_parameters()]."
        )
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(any(name.startswith(prefix) for prefix in prefixes))
    return count_parameters(model, trainable_only=True)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW parameter groups: weight decay on weight matrices, none on biases and norms.

    Only trainable parameters are included. The rule is the one ``transformers.Trainer``
    uses: no decay for parameters of ``nn.LayerNorm`` modules or whose name contains
    ``bias`` or ``norm`` (e.g. ``LayerNorm.weight``).
    """
    no_decay = set()
    for module_name, module in model.named_modules():
        for parameter_name, _ in module.named_parameters(recurse=False):
            full_name = f"{module_name}.{parameter_name}" if module_name else parameter_name
            lowered = full_name.lower()
            if isinstance(module, nn.LayerNorm) or "bias" in lowered or "norm" in lowered:
                no_decay.add(full_name)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("the model has no trainable parameters; see freeze_except().")
    return [
        {"params": [p for n, p in named if n not in no_decay], "weight_decay": weight_decay},
        {"params": [p for n, p in named if n in no_decay], "weight_decay": 0.0},
    ]


def linear_warmup_schedule(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Learning rate x ``step / warmup_steps`` during warm-up, then linearly down to 0.

    The factor at step ``s`` (counting from 0) is ``s / warmup_steps`` for
    ``s < warmup_steps`` and ``(total_steps - s) / (total_steps - warmup_steps)`` after,
    the formula of ``transformers.get_linear_schedule_with_warmup``.
    """
    if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
        raise ValueError(
            f"need total_steps >= 1 and 0 <= warmup_steps <= total_steps, "
            f"got warmup_steps={warmup_steps}, total_steps={total_steps}."
        )

    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# --------------------------------------------------------------------------------------
# Data, the loop, inference
# --------------------------------------------------------------------------------------


def make_batches(
    tokenizer: Callable[..., Any],
    texts: Sequence[str],
    labels: Sequence[int] | None = None,
    *,
    batch_size: int,
    max_length: int,
    seed: int | None = None,
) -> list[dict[str, torch.Tensor]]:
    """Tokenize ``texts`` and cut them into padded batches of dictionaries of tensors.

    Each batch has ``input_ids`` and ``attention_mask`` of shape ``(batch, longest)``, padded
    only to the longest text *in that batch*, and ``labels`` ``(batch,)`` if labels are given.

    Args:
        tokenizer: a ``transformers`` tokenizer (called with ``truncation`` and ``padding``).
        texts: the texts.
        labels: one class index per text, or None for unlabelled data.
        batch_size: texts per batch (the last batch may be smaller).
        max_length: longer texts are truncated to this many tokens.
        seed: if given, shuffle the texts with this seed first; if None, keep their order.

    Raises:
        TypeError: ``texts`` is a single string.
        ValueError: bad sizes, or a different number of labels than texts.
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings; wrap a single text as [text].")
    if batch_size < 1 or max_length < 2:
        raise ValueError(
            f"need batch_size >= 1 and max_length >= 2, got {batch_size}, {max_length}."
        )
    if labels is not None and len(labels) != len(texts):
        raise ValueError(f"got {len(texts)} texts but {len(labels)} labels.")
    order = np.arange(len(texts))
    if seed is not None:
        order = np.random.default_rng(seed).permutation(len(texts))
    batches = []
    for start in range(0, len(texts), batch_size):
        rows = order[start : start + batch_size]
        batch = tokenizer(
            [texts[i] for i in rows],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        batch = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        if labels is not None:
            batch["labels"] = torch.tensor([int(labels[i]) for i in rows])
        batches.append(batch)
    return batches


@dataclass
class FinetuneLog:
    """What :func:`finetune` records, one entry per optimizer step."""

    #: The training loss of each step's batch (before that step's update).
    losses: list[float] = field(default_factory=list)
    #: The learning rate used at each step.
    learning_rates: list[float] = field(default_factory=list)
    #: The gradient norm at each step, before clipping.
    grad_norms: list[float] = field(default_factory=list)
    #: Wall-clock seconds of the whole run.
    seconds: float = 0.0


def finetune(
    model: nn.Module,
    batches: Sequence[Batch],
    *,
    lr: float,
    weight_decay: float = 0.01,
    warmup_steps: int = 0,
    max_grad_norm: float = 1.0,
    epochs: int = 1,
    total_steps: int | None = None,
    seed: int | None = None,
    device: torch.device | str | None = None,
) -> FinetuneLog:
    """Train ``model`` on ``batches`` with AdamW, gradient clipping and a linear schedule.

    Every step: forward (``model(**batch)["loss"]``), backward, clip the gradient norm to
    ``max_grad_norm``, optimizer step, schedule step, zero the gradients. The batches are
    used in the given order, ``epochs`` times; only parameters with ``requires_grad`` train
    (see :func:`freeze_except`). The model is left in eval mode.

    Args:
        model: returns a dictionary with a scalar ``"loss"`` when called on a batch.
        batches: dictionaries of tensors, e.g. from :func:`make_batches`.
        lr: the peak learning rate.
        weight_decay: AdamW's decoupled weight decay (not on biases and norms).
        warmup_steps: steps of linear warm-up; then linear decay to 0 at the last step.
        max_grad_norm: the largest gradient norm allowed (``math.inf`` turns clipping off).
        epochs: passes over ``batches``.
        total_steps: the length of the learning-rate schedule; by default
            ``len(batches) * epochs``. A larger value runs only the first steps of a longer
            run (same learning rates), e.g. to check them against another implementation.
        seed: if given, :func:`~llmzero.core.runtime.seed_everything` right before the
            first step, so that dropout draws the same masks as another run seeded alike.
        device: where to train; by default the device of the model's first parameter.

    Returns:
        A :class:`FinetuneLog` with the loss, learning rate and gradient norm of every step.
    """
    if len(batches) == 0 or epochs < 1:
        raise ValueError(f"need at least one batch and one epoch, got {len(batches)}, {epochs}.")
    if device is None:
        device = next(model.parameters()).device
    model.to(device)
    steps = len(batches) * epochs
    if total_steps is None:
        total_steps = steps
    elif total_steps < steps:
        raise ValueError(f"total_steps ({total_steps}) is less than the {steps} steps to run.")
    optimizer = torch.optim.AdamW(parameter_groups(model, weight_decay), lr=lr)
    schedule = linear_warmup_schedule(optimizer, warmup_steps, total_steps)
    trainable = [p for p in model.parameters() if p.requires_grad]
    log = FinetuneLog()
    if seed is not None:
        seed_everything(seed)
    start = time.perf_counter()
    model.train()
    for _ in range(epochs):
        for batch in batches:
            loss = model(**to_device(batch, device))["loss"]  # forward: a scalar
            loss.backward()  # gradients of every trainable parameter
            grad_norm = torch.nn.utils.clip_grad_norm_(trainable, max_grad_norm)
            log.learning_rates.append(schedule.get_last_lr()[0])
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            log.losses.append(loss.item())
            log.grad_norms.append(grad_norm.item())
            if not math.isfinite(log.losses[-1]):
                raise FloatingPointError(
                    f"the loss became {log.losses[-1]} at step {len(log.losses)}; "
                    "lower the learning rate or check the labels."
                )
    model.eval()
    log.seconds = time.perf_counter() - start
    return log


@torch.no_grad()
def predict_logits(
    model: nn.Module, batches: Iterable[Batch], device: torch.device | str | None = None
) -> torch.Tensor:
    """The logits of ``model`` (in eval mode, without gradients) for every batch, stacked.

    Labels in the batches are ignored. Returns a float tensor ``(examples, num_labels)`` on
    the CPU.
    """
    if device is None:
        device = next(model.parameters()).device
    model.eval()
    chunks = []
    for batch in batches:
        inputs = {key: value for key, value in batch.items() if key != "labels"}
        chunks.append(model(**to_device(inputs, device))["logits"].float().cpu())
    if not chunks:
        raise ValueError("no batches to predict.")
    return torch.cat(chunks)
