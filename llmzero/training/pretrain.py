"""The reusable pieces of a pretraining run (Part IV).

Built in the chapter *Pretraining a small GPT*, which writes each of them out in full
first and then checks that these versions give the same numbers:

- :func:`configure_optimizer`: AdamW with weight decay on the weight matrices and
  embeddings only (two parameter groups), as GPT-2-style models are trained;
- :func:`get_batch`: random windows of a token stream (a ``numpy.memmap`` of shards),
  as inputs and next-token targets;
- :func:`evaluate_bits_per_byte` and :func:`bits_per_byte`: validation loss in bits per
  byte of text, a unit that does not depend on the tokenizer, so models with different
  vocabularies (and gzip) can be compared;
- :func:`palm_flops_per_token`, :func:`measure_matmul_flops` and
  :func:`model_flops_utilization`: how much of the machine's arithmetic a run uses (MFU).

Usage::

    from llmzero.training import pretrain

    optimizer = pretrain.configure_optimizer(model, learning_rate=3e-3, weight_decay=0.1)
    inputs, targets = pretrain.get_batch(train_tokens, 16, 128, generator)  # (B, T) each
    bpb = pretrain.evaluate_bits_per_byte(model, val_tokens, token_bytes, block_size=128)
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from llmzero.models.gpt import GPTConfig, parameter_breakdown

__all__ = [
    "bits_per_byte",
    "configure_optimizer",
    "evaluate_bits_per_byte",
    "get_batch",
    "measure_matmul_flops",
    "model_flops_utilization",
    "palm_flops_per_token",
]


def configure_optimizer(
    model: nn.Module,
    learning_rate: float,
    weight_decay: float = 0.1,
    betas: tuple[float, float] = (0.9, 0.95),
    eps: float = 1e-8,
    fused: bool | None = None,
) -> torch.optim.AdamW:
    """AdamW with two parameter groups: decay for tensors of 2+ dimensions, none for the rest.

    Weight decay pulls weights towards zero. That is a sensible prior for the weight
    matrices and the embeddings (2-D), but not for biases or LayerNorm gains (1-D): decaying
    a LayerNorm gain towards 0 would switch the layer's output off. A tied weight (the
    token embedding that is also the LM head) is one parameter and appears once.

    ``fused=None`` uses PyTorch's fused AdamW kernel when every parameter is on a CPU or a
    CUDA GPU (one kernel for all tensors instead of a loop over them: the same update,
    faster), and its default implementation elsewhere.

    Raises:
        ValueError: the model has no trainable parameters, or ``weight_decay < 0``.
    """
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}.")
    parameters = [p for p in model.parameters() if p.requires_grad]  # a tied one once
    if not parameters:
        raise ValueError("the model has no trainable parameters to optimize.")
    groups = [
        {"params": [p for p in parameters if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in parameters if p.dim() < 2], "weight_decay": 0.0},
    ]
    if fused is None:
        fused = all(p.device.type in ("cpu", "cuda") for p in parameters)
    return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, eps=eps, fused=fused)


def get_batch(
    tokens: np.ndarray,
    batch_size: int,
    block_size: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` random windows of ``tokens``: inputs and the same shifted by one.

    Window ``b`` starts at a position drawn uniformly (with ``generator``, so a seeded
    generator gives the same batches) from the ``len(tokens) - block_size`` possible ones;
    inputs are ``tokens[s : s + block_size]`` and targets ``tokens[s + 1 : s + block_size
    + 1]``. ``tokens`` may be a ``numpy.memmap``: only the windows drawn are read.

    Returns:
        ``(inputs, targets)``, each a ``(batch_size, block_size)`` int64 tensor on ``device``.

    Raises:
        ValueError: ``tokens`` is not 1-D or is too short for one window.
    """
    if tokens.ndim != 1:
        raise ValueError(f"tokens must be a 1-D stream of ids, got shape {tokens.shape}.")
    if len(tokens) <= block_size:
        raise ValueError(
            f"a window needs block_size + 1 = {block_size + 1} tokens, the stream has "
            f"{len(tokens)}; use a smaller block_size or more data."
        )
    starts = torch.randint(0, len(tokens) - block_size, (batch_size,), generator=generator)
    windows = np.stack([tokens[s : s + block_size + 1] for s in starts.tolist()])  # (B, T+1)
    windows = torch.from_numpy(windows.astype(np.int64)).to(device)
    return windows[:, :-1], windows[:, 1:]  # (B, T) inputs, (B, T) targets


def bits_per_byte(mean_loss_nats: float, n_tokens: int, n_bytes: int) -> float:
    """Convert a mean cross-entropy (nats per token) over ``n_tokens`` into bits per byte.

    The total code length of the text is ``mean_loss_nats * n_tokens`` nats, which is that
    divided by ``ln 2`` bits; spread over the ``n_bytes`` UTF-8 bytes those tokens stand
    for, it is ``mean_loss_nats * n_tokens / (n_bytes * ln 2)``.
    """
    if n_tokens < 1 or n_bytes < 1:
        raise ValueError(f"need n_tokens >= 1 and n_bytes >= 1, got {n_tokens}, {n_bytes}.")
    return mean_loss_nats * n_tokens / (n_bytes * math.log(2))


@torch.no_grad()
def evaluate_bits_per_byte(
    model: nn.Module,
    tokens: np.ndarray,
    token_bytes: Sequence[int] | np.ndarray,
    block_size: int,
    batch_size: int = 32,
    max_windows: int | None = None,
) -> float:
    """The model's bits per byte on ``tokens``, every token predicted exactly once.

    The stream is cut into consecutive, non-overlapping windows of ``block_size + 1``
    tokens sharing one token at the seams (window ``w`` is ``tokens[w T : w T + T + 1]``);
    the model predicts tokens ``1..T`` of each window from the ones before it in that
    window. The code length of those predictions (in bits) is divided by the number of
    bytes they stand for, ``sum(token_bytes[target])``; special tokens such as a
    document separator have 0 bytes, so predicting them costs bits but adds no bytes.
    ``max_windows`` evaluates only the first windows (a quicker, fixed estimate). The
    model is put in eval mode and back.

    ``model(inputs)`` must return ``(logits, ...)`` with logits ``(B, T, V)``, as
    :class:`llmzero.models.gpt.GPT` does.
    """
    byte_counts = torch.as_tensor(np.asarray(token_bytes), dtype=torch.float64)
    n_windows = (len(tokens) - 1) // block_size
    if max_windows is not None:
        n_windows = min(n_windows, max_windows)
    if n_windows < 1:
        raise ValueError(f"the stream ({len(tokens)} tokens) is shorter than one window.")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total_nats, total_bytes = 0.0, 0.0
    try:
        for first in range(0, n_windows, batch_size):
            count = min(batch_size, n_windows - first)
            start, stop = first * block_size, (first + count) * block_size + 1
            stream = torch.from_numpy(np.asarray(tokens[start:stop]).astype(np.int64))
            windows = stream.unfold(0, block_size + 1, block_size)  # (count, T + 1)
            inputs, targets = windows[:, :-1].to(device), windows[:, 1:].to(device)
            logits = model(inputs)[0]  # (count, T, V)
            nats = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="sum")
            total_nats += nats.item()
            total_bytes += byte_counts[targets.flatten().cpu()].sum().item()
    finally:
        model.train(was_training)
    if total_bytes == 0:
        raise ValueError("the evaluated tokens stand for 0 bytes: check token_bytes.")
    return total_nats / (total_bytes * math.log(2))


def palm_flops_per_token(config: GPTConfig, seq_len: int | None = None) -> int:
    """FLOPs to train a :class:`~llmzero.models.gpt.GPT` on one token (forward + backward).

    ``6 N + 12 L d T``, the estimate of Chowdhery et al. (2022, PaLM, appendix B) that
    nanoGPT also uses: ``N`` counts every parameter that takes part in a matrix product
    (all of them except the position embedding; the token embedding counts through the
    tied LM head), each costing 2 FLOPs per token forward and 4 backward; the second term
    is attention's scores and weighted sums over ``T`` positions (``seq_len``, default the
    context window). LayerNorms, GELUs and the softmax are left out: they are cheap.

    This is the quick estimate used for MFU; the chapter *Scaling* counts every matrix
    product exactly, layer by layer, in :func:`llmzero.training.scaling.training_flops_per_token`.
    """
    seq_len = config.block_size if seq_len is None else seq_len
    parts = parameter_breakdown(config)
    n_params = sum(parts.values()) - parts["position embedding (wpe)"]
    return 6 * n_params + 12 * config.n_layer * config.n_embd * seq_len


def measure_matmul_flops(
    size: int = 512,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    repeats: int = 20,
) -> float:
    """The best FLOP/s of ``size x size`` matrix products on ``device``: a practical peak.

    Each product costs ``2 size^3`` FLOPs; the fastest of ``repeats`` timed runs (after a
    warm-up) is taken, because anything else the machine does can only slow a run down.
    On a GPU the device is synchronised around each run.
    """
    device = torch.device(device)
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(size, size, generator=generator, device=device).to(dtype)
    b = torch.randn(size, size, generator=generator, device=device).to(dtype)
    best = math.inf
    for repeat in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        torch.mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if repeat > 0:  # the first run is a warm-up
            best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def model_flops_utilization(
    tokens_per_second: float, flops_per_token: float, peak_flops: float
) -> float:
    """Model FLOPs utilisation: the share of ``peak_flops`` a run spends on the model's math.

    ``tokens_per_second * flops_per_token / peak_flops``, between 0 and 1 in practice.
    """
    if peak_flops <= 0:
        raise ValueError(f"peak_flops must be positive, got {peak_flops}.")
    return tokens_per_second * flops_per_token / peak_flops
