"""Attention for long sequences: local, sparse, linear and tiled (FlashAttention-style).

Built in the chapter *Efficient attention and long context* (Part VII). Every function here
computes causal self-attention over ``q, k, v`` of shape ``(..., seq, head_dim)``, e.g.
``(batch, heads, seq, head_dim)``, and each one equals dense attention with a mask
(:func:`sliding_window_mask`, :func:`block_sparse_mask`, or none) up to float rounding,
while never building the full ``(seq, seq)`` score matrix::

    from llmzero.models import efficient_attention as ea

    out = ea.sliding_window_attention(q, k, v, window=256)  # memory O(seq * window)
    out = ea.block_sparse_attention(q, k, v, block_size=64, local_blocks=2, global_blocks=1)
    out = ea.linear_attention(q, k, v)  # elu + 1 features: a different model, O(seq)
    out = ea.online_softmax_attention(q, k, v, block_size=128)  # exact, tiled

Also: the cost of dense attention by formula (:func:`attention_flops`,
:func:`attention_scores_bytes`), the key/value cache of multi-head, grouped-query,
multi-query and sliding-window attention (:func:`kv_cache_bytes`), RoPE position
interpolation (:func:`interpolated_positions`) and a tracker of the memory held by tensors
that works on any device (:class:`TensorMemoryTracker`).
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

__all__ = [
    "TensorMemoryTracker",
    "attention_flops",
    "attention_scores_bytes",
    "block_sparse_attention",
    "block_sparse_mask",
    "elu_feature_map",
    "interpolated_positions",
    "kv_cache_bytes",
    "linear_attention",
    "linear_attention_reference",
    "online_softmax_attention",
    "sliding_window_attention",
    "sliding_window_mask",
]


def _check_positive_int(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def _check_qkv(q: Tensor, k: Tensor, v: Tensor) -> None:
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not isinstance(x, Tensor) or not x.is_floating_point() or x.ndim < 2:
            raise ValueError(
                f"{name} must be a floating-point tensor of shape (..., seq, head_dim), got "
                f"{type(x).__name__ if not isinstance(x, Tensor) else tuple(x.shape)}."
            )
    if not (q.shape[:-1] == k.shape[:-1] == v.shape[:-1]) or q.shape[-1] != k.shape[-1]:
        raise ValueError(
            "causal self-attention needs q, k, v with the same (..., seq) dimensions and q, k "
            f"with the same head_dim; got q {tuple(q.shape)}, k {tuple(k.shape)}, "
            f"v {tuple(v.shape)}."
        )


# ------------------------------------------------------------------------- costs by formula


def attention_flops(seq_len: int, head_dim: int, n_heads: int = 1, batch_size: int = 1) -> int:
    """Multiply-adds counted as 2 FLOPs of dense attention: ``Q K^T`` and ``weights @ V``.

    Each is ``seq_len * seq_len * head_dim`` multiply-adds per head, so the total is
    ``4 * batch * heads * seq_len**2 * head_dim``: quadratic in the sequence length. (The
    causal mask halves the useful work, but dense kernels usually compute all of it.)
    """
    for name, value in (("seq_len", seq_len), ("head_dim", head_dim)):
        _check_positive_int(value, name)
    return 4 * batch_size * n_heads * seq_len * seq_len * head_dim


def attention_scores_bytes(
    seq_len: int, n_heads: int = 1, batch_size: int = 1, bytes_per_value: int = 4
) -> int:
    """Bytes of one ``(batch, heads, seq, seq)`` score (or weight) matrix of dense attention."""
    _check_positive_int(seq_len, "seq_len")
    return batch_size * n_heads * seq_len * seq_len * bytes_per_value


def kv_cache_bytes(
    n_layer: int,
    n_kv_head: int,
    head_dim: int,
    seq_len: int,
    batch_size: int = 1,
    bytes_per_value: int = 2,
    window: int | None = None,
) -> int:
    """The memory of a key/value cache, by formula.

    Every layer keeps a key and a value vector of ``head_dim`` numbers per key/value head
    and per cached token: ``2 * n_layer * n_kv_head * head_dim * tokens * batch_size``
    numbers of ``bytes_per_value`` bytes (2 for float16/bfloat16). Multi-head attention has
    ``n_kv_head == n_head``, grouped-query attention fewer, multi-query attention 1. With a
    sliding ``window``, only the last ``window`` tokens are kept: ``tokens = min(seq_len,
    window)``; otherwise ``tokens = seq_len``.

    Raises:
        ValueError: a size is not a positive integer.
    """
    for name, value in (
        ("n_layer", n_layer),
        ("n_kv_head", n_kv_head),
        ("head_dim", head_dim),
        ("seq_len", seq_len),
        ("batch_size", batch_size),
        ("bytes_per_value", bytes_per_value),
    ):
        _check_positive_int(value, name)
    tokens = seq_len
    if window is not None:
        _check_positive_int(window, "window")
        tokens = min(seq_len, window)
    return 2 * n_layer * n_kv_head * head_dim * tokens * batch_size * bytes_per_value


# ------------------------------------------------------------------------------------ masks


def sliding_window_mask(
    seq_len: int, window: int, device: torch.device | str | None = None
) -> Tensor:
    """Causal local attention: query ``i`` may see keys ``j`` with ``i - window < j <= i``.

    Returns a boolean ``(seq_len, seq_len)`` tensor (``True`` = may attend), usable as the
    ``mask`` of :func:`llmzero.models.attention.scaled_dot_product_attention`. With
    ``window >= seq_len`` it is the ordinary causal mask.
    """
    _check_positive_int(seq_len, "seq_len")
    _check_positive_int(window, "window")
    pos = torch.arange(seq_len, device=device)
    return _sliding_allowed(pos, pos, window)


def _sliding_allowed(query_pos: Tensor, key_pos: Tensor, window: int) -> Tensor:
    offset = query_pos[:, None] - key_pos[None, :]  # (n_q, n_k): how far back the key is
    return (offset >= 0) & (offset < window)


def block_sparse_mask(
    seq_len: int,
    block_size: int,
    local_blocks: int = 1,
    global_blocks: int = 1,
    device: torch.device | str | None = None,
) -> Tensor:
    """A causal block-sparse pattern: local blocks plus a few global blocks at the start.

    Positions are cut into blocks of ``block_size``. A query in block ``b`` may see keys in
    blocks ``b - local_blocks + 1, ..., b`` (its own block and the ones just before) and in
    the first ``global_blocks`` blocks, and never a key after itself. Sparse Transformers
    and Longformer/BigBird use patterns of this kind. Returns a boolean
    ``(seq_len, seq_len)`` tensor.
    """
    _check_positive_int(seq_len, "seq_len")
    pos = torch.arange(seq_len, device=device)
    return _block_sparse_allowed(pos, pos, block_size, local_blocks, global_blocks)


def _block_sparse_allowed(
    query_pos: Tensor, key_pos: Tensor, block_size: int, local_blocks: int, global_blocks: int
) -> Tensor:
    _check_positive_int(block_size, "block_size")
    _check_positive_int(local_blocks, "local_blocks")
    if isinstance(global_blocks, bool) or not isinstance(global_blocks, int) or global_blocks < 0:
        raise ValueError(f"global_blocks must be an integer >= 0, got {global_blocks!r}.")
    q_block = (query_pos // block_size)[:, None]  # (n_q, 1)
    k_block = (key_pos // block_size)[None, :]  # (1, n_k)
    local = (q_block - k_block >= 0) & (q_block - k_block < local_blocks)
    causal = key_pos[None, :] <= query_pos[:, None]
    return causal & (local | (k_block < global_blocks))  # (n_q, n_k)


# ----------------------------------------------------------- chunked exact sparse attention


def _attend(q: Tensor, k: Tensor, v: Tensor, allowed: Tensor) -> Tensor:
    """Softmax attention of queries ``(..., n_q, d)`` over keys ``(..., n_k, d)`` where allowed."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., n_q, n_k)
    scores = scores.masked_fill(~allowed, float("-inf"))
    return scores.softmax(dim=-1) @ v  # (..., n_q, d_v)


def sliding_window_attention(
    q: Tensor, k: Tensor, v: Tensor, window: int, chunk_size: int | None = None
) -> Tensor:
    """Causal sliding-window attention without a ``(seq, seq)`` matrix.

    Queries are processed in chunks of ``chunk_size`` (default ``window``); a chunk
    starting at ``s`` needs only the keys from ``s - window + 1`` on, so each score block
    is at most ``chunk_size x (chunk_size + window - 1)``: time and memory grow as
    ``seq * window``, not ``seq**2``. Equal to dense attention with
    :func:`sliding_window_mask` (up to float rounding).

    Args:
        q, k, v: ``(..., seq, head_dim)``.
        window: how many positions each query sees, itself included.
        chunk_size: queries per chunk.

    Returns:
        ``(..., seq, head_dim_v)``.
    """
    _check_qkv(q, k, v)
    _check_positive_int(window, "window")
    chunk_size = window if chunk_size is None else chunk_size
    _check_positive_int(chunk_size, "chunk_size")
    seq = q.shape[-2]
    pos = torch.arange(seq, device=q.device)
    outputs = []
    for start in range(0, seq, chunk_size):
        stop = min(start + chunk_size, seq)
        first_key = max(0, start - window + 1)
        allowed = _sliding_allowed(pos[start:stop], pos[first_key:stop], window)
        outputs.append(
            _attend(
                q[..., start:stop, :], k[..., first_key:stop, :], v[..., first_key:stop, :], allowed
            )
        )
    return torch.cat(outputs, dim=-2)  # (..., seq, d_v)


def block_sparse_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    block_size: int,
    local_blocks: int = 1,
    global_blocks: int = 1,
) -> Tensor:
    """Causal block-sparse attention computed block by block (see :func:`block_sparse_mask`).

    Each query block gathers only the key blocks it may see (at most
    ``local_blocks + global_blocks`` of them), so the work grows linearly with the sequence
    length for fixed block counts. Equal to dense attention with :func:`block_sparse_mask`
    (up to float rounding). Returns ``(..., seq, head_dim_v)``.
    """
    _check_qkv(q, k, v)
    _block_sparse_allowed(torch.zeros(1), torch.zeros(1), block_size, local_blocks, global_blocks)
    seq = q.shape[-2]
    pos = torch.arange(seq, device=q.device)
    n_blocks = math.ceil(seq / block_size)
    outputs = []
    for block in range(n_blocks):
        start, stop = block * block_size, min((block + 1) * block_size, seq)
        visible = sorted(
            set(range(min(global_blocks, block + 1)))
            | set(range(max(0, block - local_blocks + 1), block + 1))
        )
        key_pos = torch.cat([pos[b * block_size : min((b + 1) * block_size, seq)] for b in visible])
        allowed = _block_sparse_allowed(
            pos[start:stop], key_pos, block_size, local_blocks, global_blocks
        )
        keys, values = k[..., key_pos, :], v[..., key_pos, :]  # (..., n_visible, d)
        outputs.append(_attend(q[..., start:stop, :], keys, values, allowed))
    return torch.cat(outputs, dim=-2)  # (..., seq, d_v)


# --------------------------------------------------------------------------- linear attention


def elu_feature_map(x: Tensor) -> Tensor:
    """``elu(x) + 1``: a positive feature map, the choice of Katharopoulos et al. (2020)."""
    return F.elu(x) + 1.0


def linear_attention_reference(
    q: Tensor, k: Tensor, v: Tensor, causal: bool = True, eps: float = 1e-6
) -> Tensor:
    r"""Kernelized attention written with the full ``(seq, seq)`` matrix, as a reference.

    The softmax's :math:`\exp(q \cdot k)` is replaced by :math:`\phi(q) \cdot \phi(k)` with
    :func:`elu_feature_map`; each row is normalised by its sum:
    :math:`y_i = \sum_{j \le i} \phi(q_i)^\top \phi(k_j) v_j / \sum_{j \le i}
    \phi(q_i)^\top \phi(k_j)`. Returns ``(..., seq, head_dim_v)``.
    """
    _check_qkv(q, k, v)
    scores = elu_feature_map(q) @ elu_feature_map(k).transpose(-2, -1)  # (..., T, T) > 0
    if causal:
        seq = q.shape[-2]
        scores = scores * torch.ones(seq, seq, device=q.device).tril()
    return (scores @ v) / (scores.sum(dim=-1, keepdim=True) + eps)


def linear_attention(
    q: Tensor, k: Tensor, v: Tensor, causal: bool = True, chunk_size: int = 64, eps: float = 1e-6
) -> Tensor:
    r"""Kernelized (linear) attention in time and memory linear in the sequence length.

    Because :math:`\sum_j \phi(q_i)^\top \phi(k_j) v_j = \phi(q_i)^\top \sum_j \phi(k_j)
    v_j^\top`, the keys and values can be summed into a ``(head_dim, head_dim_v)`` state
    once. Causally, the state is a running sum: chunks of ``chunk_size`` queries use the
    state of all earlier chunks plus a small masked ``chunk x chunk`` product inside the
    chunk. Equal to :func:`linear_attention_reference` up to float rounding.
    Returns ``(..., seq, head_dim_v)``.
    """
    _check_qkv(q, k, v)
    _check_positive_int(chunk_size, "chunk_size")
    phi_q, phi_k = elu_feature_map(q), elu_feature_map(k)  # (..., T, d), positive
    if not causal:
        state = phi_k.transpose(-2, -1) @ v  # (..., d, d_v)
        normaliser = phi_k.sum(dim=-2)  # (..., d)
        return (phi_q @ state) / ((phi_q @ normaliser[..., None]) + eps)
    state = q.new_zeros(*q.shape[:-2], q.shape[-1], v.shape[-1])  # (..., d, d_v)
    normaliser = q.new_zeros(*q.shape[:-2], q.shape[-1], 1)  # (..., d, 1)
    outputs = []
    for start in range(0, q.shape[-2], chunk_size):
        fq, fk = (
            phi_q[..., start : start + chunk_size, :],
            phi_k[..., start : start + chunk_size, :],
        )
        chunk_v = v[..., start : start + chunk_size, :]  # (..., c, d_v)
        inside = (fq @ fk.transpose(-2, -1)).tril()  # (..., c, c): causal within the chunk
        numerator = fq @ state + inside @ chunk_v  # (..., c, d_v)
        denominator = fq @ normaliser + inside.sum(dim=-1, keepdim=True)  # (..., c, 1)
        outputs.append(numerator / (denominator + eps))
        state = state + fk.transpose(-2, -1) @ chunk_v  # add this chunk's keys and values
        normaliser = normaliser + fk.sum(dim=-2)[..., None]
    return torch.cat(outputs, dim=-2)


# ---------------------------------------------------------------- online softmax (FlashAttention)


def online_softmax_attention(
    q: Tensor, k: Tensor, v: Tensor, block_size: int = 128, causal: bool = True
) -> Tensor:
    """Exact softmax attention computed tile by tile with an online softmax.

    The idea of FlashAttention's forward pass (Dao et al., 2022) in plain PyTorch: for each
    block of queries, loop over blocks of keys, keeping per query a running maximum ``m``,
    a running sum of exponentials ``l`` and an unnormalised output ``acc``. When a new key
    block raises the maximum, the old sum and output are rescaled by
    ``exp(m_old - m_new)`` (Milakov and Gimelshein, 2018). Only ``block x block`` scores
    exist at any time; the ``(seq, seq)`` matrix is never built. Equal to dense (causal)
    attention up to float rounding. Returns ``(..., seq, head_dim_v)``.
    """
    _check_qkv(q, k, v)
    _check_positive_int(block_size, "block_size")
    seq, scale = q.shape[-2], 1.0 / math.sqrt(q.shape[-1])
    pos = torch.arange(seq, device=q.device)
    outputs = []
    for q_start in range(0, seq, block_size):
        q_block = q[..., q_start : q_start + block_size, :] * scale  # (..., bq, d)
        q_pos = pos[q_start : q_start + block_size]
        running_max = q.new_full((*q_block.shape[:-1], 1), float("-inf"))  # (..., bq, 1)
        running_sum = q.new_zeros(*q_block.shape[:-1], 1)  # (..., bq, 1)
        acc = q.new_zeros(*q_block.shape[:-1], v.shape[-1])  # (..., bq, d_v)
        last_key = int(q_pos[-1]) + 1 if causal else seq  # later key blocks are all masked
        for k_start in range(0, last_key, block_size):
            k_stop = min(k_start + block_size, last_key)
            scores = q_block @ k[..., k_start:k_stop, :].transpose(-2, -1)  # (..., bq, bk)
            if causal:
                scores = scores.masked_fill(pos[None, k_start:k_stop] > q_pos[:, None], -math.inf)
            new_max = torch.maximum(running_max, scores.amax(dim=-1, keepdim=True))
            correction = (running_max - new_max).exp()  # rescales what was summed so far
            exps = (scores - new_max).exp()  # (..., bq, bk)
            running_sum = running_sum * correction + exps.sum(dim=-1, keepdim=True)
            acc = acc * correction + exps @ v[..., k_start:k_stop, :]
            running_max = new_max
        outputs.append(acc / running_sum)
    return torch.cat(outputs, dim=-2)  # (..., seq, d_v)


# ----------------------------------------------------------------------- RoPE interpolation


def interpolated_positions(
    seq_len: int, trained_len: int, device: torch.device | str | None = None
) -> Tensor:
    """Positions for RoPE position interpolation (Chen et al., 2023).

    A model trained on ``trained_len`` positions is given ``seq_len`` positions squeezed
    into the range it knows: ``m * trained_len / seq_len`` when ``seq_len > trained_len``
    (fractional positions), and the plain ``0, 1, ..., seq_len - 1`` otherwise. Returns a
    float32 tensor ``(seq_len,)`` to pass to :func:`llmzero.models.positional.apply_rope`.
    """
    _check_positive_int(seq_len, "seq_len")
    _check_positive_int(trained_len, "trained_len")
    positions = torch.arange(seq_len, dtype=torch.float32, device=device)
    return positions * min(1.0, trained_len / seq_len)


# ------------------------------------------------------------------------- memory tracker


class TensorMemoryTracker(TorchDispatchMode):
    """Record the bytes held by tensors created inside a ``with`` block, and their peak.

    PyTorch reports peak memory on CUDA (``torch.cuda.max_memory_allocated``) but not on
    a CPU. This mode sees every tensor an operation returns, counts each storage once
    (views share it) and subtracts it when the last tensor using it is freed. Tensors that
    existed before the block (the inputs) are not counted::

        with TensorMemoryTracker() as tracker:
            out = attention(q, k, v)
        tracker.peak_bytes  # the most bytes alive at any moment, in new tensors

    Use it under ``torch.no_grad()``: autograd keeps intermediate tensors alive.
    """

    def __init__(self) -> None:
        super().__init__()
        self.current_bytes = 0
        self.peak_bytes = 0
        self._live: dict[int, list[int]] = {}  # storage address -> [tensors, bytes]

    def _release(self, address: int) -> None:
        entry = self._live.get(address)
        if entry is None:
            return
        entry[0] -= 1
        if entry[0] == 0:
            self.current_bytes -= entry[1]
            del self._live[address]

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        inputs = {
            x.untyped_storage().data_ptr()
            for x in tree_flatten((args, kwargs))[0]
            if isinstance(x, Tensor)
        }
        for tensor in tree_flatten(out)[0]:
            if not isinstance(tensor, Tensor):
                continue
            storage = tensor.untyped_storage()
            address = storage.data_ptr()
            if address in self._live:
                self._live[address][0] += 1
            elif address in inputs:
                continue  # a view of (or in-place result on) a tensor made before the block
            else:
                self._live[address] = [1, storage.nbytes()]
                self.current_bytes += storage.nbytes()
                self.peak_bytes = max(self.peak_bytes, self.current_bytes)
            weakref.finalize(tensor, self._release, address)
        return out
