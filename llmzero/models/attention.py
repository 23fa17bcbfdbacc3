"""Scaled dot-product attention and the two masks every Transformer uses.

Built step by step in the chapter *Attention from scratch* (Part III); the multi-head
attention, GPT and BERT chapters build on these versions::

    from llmzero.models.attention import causal_mask, padding_mask, scaled_dot_product_attention

    mask = causal_mask(seq) & padding_mask(attention_mask)  # (batch, 1, seq, seq), bool
    out, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    # q, k: (batch, heads, seq, d_k)   v: (batch, heads, seq, d_v)
    # out: (batch, heads, seq, d_v)    weights: (batch, heads, seq, seq)

Masks are boolean with the same meaning as in
``torch.nn.functional.scaled_dot_product_attention``: ``True`` means "this query may attend
to this key", ``False`` means "never". A query whose every key is masked gets all-zero
weights and a zero output vector rather than ``nan`` (PyTorch's function does the same).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from llmzero.core.functional import _check_float_tensor

__all__ = ["causal_mask", "padding_mask", "scaled_dot_product_attention"]


def _check_sequence_tensor(x: object, name: str) -> None:
    _check_float_tensor(x, name)
    if x.ndim < 2:  # type: ignore[union-attr]
        raise ValueError(
            f"{name} must have at least 2 dimensions (..., seq, features), "
            f"got shape {tuple(x.shape)}."
        )


def _check_shapes(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    """Raise a ValueError that names the mismatch if q, k and v cannot be combined."""
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            "q and k must have the same feature size d_k (last dimension): got q "
            f"{tuple(q.shape)} and k {tuple(k.shape)}, {q.shape[-1]} != {k.shape[-1]}."
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            "k and v must have one row per key (same second-to-last dimension): got k "
            f"{tuple(k.shape)} and v {tuple(v.shape)}, {k.shape[-2]} != {v.shape[-2]}."
        )
    try:
        torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except RuntimeError:
        raise ValueError(
            "the leading (batch, heads, ...) dimensions of q, k and v must broadcast: got "
            f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}."
        ) from None


def _check_mask(mask: object, scores_shape: torch.Size) -> None:
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        kind = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise TypeError(
            f"mask must be a boolean tensor (True = may attend), got {kind}; for a 0/1 "
            "attention_mask use padding_mask(attention_mask) or mask.bool()."
        )
    try:
        broadcast = torch.broadcast_shapes(mask.shape, scores_shape)
    except RuntimeError:
        broadcast = None
    if broadcast != scores_shape:
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not broadcast to the scores' shape "
            f"{tuple(scores_shape)} = (..., n_queries, n_keys); e.g. a padding mask should "
            "be (batch, 1, 1, n_keys) and a causal mask (n_queries, n_keys)."
        )


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    training: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Attention of every query over every key, returning the outputs and the weights.

    .. math:: \mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(
              \frac{Q K^\top}{\sqrt{d_k}}\right) V

    Masked scores are set to :math:`-\infty` before the softmax, so masked keys get weight
    exactly 0 and each row of weights sums to 1 over the keys the query may see. A query
    row whose every key is masked gets weights of 0 everywhere and an output of 0 (not
    ``nan``), the same as ``torch.nn.functional.scaled_dot_product_attention``.

    Args:
        q: queries, shape ``(..., n_queries, d_k)``, e.g. ``(batch, heads, seq, d_k)``.
        k: keys, shape ``(..., n_keys, d_k)``.
        v: values, shape ``(..., n_keys, d_v)``.
        mask: optional boolean tensor broadcastable to ``(..., n_queries, n_keys)``;
            ``True`` where the query may attend to the key. See :func:`causal_mask` and
            :func:`padding_mask`; combine masks with ``&``.
        dropout_p: probability of zeroing each weight (applied only when ``training``);
            surviving weights are scaled by ``1 / (1 - dropout_p)``.
        training: apply dropout (as ``nn.Module.training`` would say).

    Returns:
        ``(output, weights)``: ``output`` of shape ``(..., n_queries, d_v)`` and the weights
        that produced it, shape ``(..., n_queries, n_keys)`` (after dropout, if any, so
        that ``output == weights @ v``).

    Raises:
        TypeError: an input is not a floating-point tensor, or ``mask`` is not boolean.
        ValueError: the shapes of ``q``, ``k``, ``v`` or ``mask`` do not fit together, or
            ``dropout_p`` is not in ``[0, 1)``.
    """
    for name, x in (("q", q), ("k", k), ("v", v)):
        _check_sequence_tensor(x, name)
    _check_shapes(q, k, v)
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}.")

    d_k = q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)  # (..., n_q, d_k) @ (..., d_k, n_k)
    if mask is not None:
        _check_mask(mask, scores.shape)
        scores = scores.masked_fill(~mask, float("-inf"))  # (..., n_q, n_k)

    # A softmax over the keys that also survives rows of only -inf (fully masked queries).
    row_max = scores.amax(dim=-1, keepdim=True)  # (..., n_q, 1)
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    exps = (scores - row_max).exp()  # (..., n_q, n_k), masked entries are exactly 0
    totals = exps.sum(dim=-1, keepdim=True)  # (..., n_q, 1): >= 1, or 0 if fully masked
    totals = torch.where(totals > 0, totals, torch.ones_like(totals))  # 0 / 1 = 0, not nan
    weights = exps / totals  # (..., n_q, n_k): each row sums to 1 (or is all 0)

    if training and dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p, training=True)
    output = weights @ v  # (..., n_q, n_k) @ (..., n_k, d_v) -> (..., n_q, d_v)
    return output, weights


def causal_mask(seq_len: int, device: torch.device | str | None = None) -> torch.Tensor:
    """The mask that lets position ``i`` attend only to positions ``0, ..., i``.

    Args:
        seq_len: the number of positions (queries and keys alike).
        device: where to create the mask (default: PyTorch's default device).

    Returns:
        A boolean tensor of shape ``(seq_len, seq_len)``, ``True`` on and below the
        diagonal. It broadcasts against scores of shape ``(..., seq_len, seq_len)``.

    Raises:
        ValueError: ``seq_len`` is not a positive integer.
    """
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
        raise ValueError(f"seq_len must be a positive integer, got {seq_len!r}.")
    ones = torch.ones(seq_len, seq_len, dtype=torch.bool, device=device)  # (seq, seq)
    return torch.tril(ones)  # row i: True for keys 0..i


def padding_mask(
    lengths_or_attention_mask: torch.Tensor | Sequence[int] | Sequence[Sequence[int]],
    seq_len: int | None = None,
) -> torch.Tensor:
    """The mask that stops every query from attending to padding tokens.

    Accepts either form a batch of padded sequences usually comes with:

    - **lengths**, a 1-D tensor or list ``(batch,)``: sequence ``b`` holds real tokens at
      positions ``0, ..., lengths[b] - 1`` and padding after them (right padding).
      ``seq_len`` is the padded length (default: the largest length).
    - an **attention mask** as tokenizers return it, 2-D ``(batch, seq)``, with 1 (or
      ``True``) for real tokens and 0 (or ``False``) for padding, on either side.

    Args:
        lengths_or_attention_mask: the lengths or the attention mask, as above.
        seq_len: only with lengths: the padded sequence length.

    Returns:
        A boolean tensor of shape ``(batch, 1, 1, seq)``, ``True`` at real tokens. It
        broadcasts against scores of shape ``(batch, heads, n_queries, seq)``: it masks
        keys, the same for every head and every query.

    Raises:
        ValueError: the input is not 1-D or 2-D; lengths are negative or longer than
            ``seq_len``; an attention mask holds values other than 0 and 1; or
            ``seq_len`` is given with an attention mask.
    """
    x = torch.as_tensor(lengths_or_attention_mask)
    if x.ndim == 1:  # lengths (batch,)
        if x.is_floating_point() or x.dtype == torch.bool:
            raise ValueError(f"lengths must be integers, got dtype {x.dtype}.")
        if x.numel() == 0:
            raise ValueError("lengths is empty: the batch needs at least one sequence.")
        longest = int(x.max())
        seq_len = longest if seq_len is None else seq_len
        if int(x.min()) < 0 or longest > seq_len:
            raise ValueError(f"lengths must be between 0 and seq_len={seq_len}, got {x.tolist()}.")
        positions = torch.arange(seq_len, device=x.device)  # (seq,)
        keep = positions[None, :] < x[:, None]  # (batch, seq)
    elif x.ndim == 2:  # attention mask (batch, seq)
        if seq_len is not None:
            raise ValueError("seq_len is only for lengths; an attention mask has its own.")
        if x.dtype != torch.bool and not bool(((x == 0) | (x == 1)).all()):
            raise ValueError("an attention mask must hold only 0 and 1 (or False and True).")
        keep = x.bool()  # (batch, seq)
    else:
        raise ValueError(
            "expected lengths (batch,) or an attention mask (batch, seq), got shape "
            f"{tuple(x.shape)}."
        )
    return keep[:, None, None, :]  # (batch, 1, 1, seq): the same for every head and query
