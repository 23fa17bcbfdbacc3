"""Looking inside a Transformer language model: hooks, the logit lens, patching, induction.

Part VII's chapter *Interpretability* builds each function here step by step. They work on
the book's Llama (:class:`llmzero.models.llama.Llama`, e.g. SmolLM2 loaded into our own
code); :func:`induction_score`, :func:`previous_token_score` and :func:`ablate_head` work on
any attention model.

- :func:`residual_stream`: the residual stream after the embedding and after every block,
  captured with forward hooks, ``(L + 1, B, T, C)``;
- :func:`logit_lens`: the final norm and the LM head applied to any layer's residual;
- :func:`attention_patterns`: every head's attention weights, and the norm of what each
  head writes from each position, ``||W_O^h v_j||`` (Kobayashi et al., 2020);
- :func:`patch_residual`: run a (corrupted) input while one layer's residual is replaced,
  at chosen positions, by another run's (activation patching);
- :func:`head_outputs` and :func:`ablate_head`: each head's output before the output
  projection, and a context manager that replaces (or zeroes) one head's output;
- :func:`induction_score` and :func:`previous_token_score`: how much a head attends to the
  token after the previous occurrence of the current token, or to the previous token.

Shapes use ``L`` (layers), ``B`` (batch), ``T`` (sequence), ``C`` (model width), ``H``
(heads), ``D`` (head size) and ``V`` (vocabulary).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from llmzero.models.llama import Llama, apply_rope, repeat_kv

__all__ = [
    "ablate_head",
    "attention_patterns",
    "head_outputs",
    "induction_score",
    "logit_lens",
    "patch_residual",
    "previous_token_score",
    "residual_stream",
]


def _check_ids(idx: object) -> None:
    if not isinstance(idx, Tensor) or idx.dim() != 2 or idx.dtype != torch.long:
        raise ValueError(
            "idx must be a LongTensor of token ids with shape (batch, seq), got "
            f"{getattr(idx, 'shape', type(idx).__name__)}."
        )


def _check_layer(model: Llama, layer: int, allow_embedding: bool) -> None:
    low = 0 if allow_embedding else 1
    if not low <= layer <= model.config.n_layer:
        raise ValueError(
            f"layer must be between {low} and {model.config.n_layer} (0 is the embedding "
            f"output, l the output of block l), got {layer}."
        )


def _residual_module(model: Llama, layer: int) -> nn.Module:
    # The module whose output is the residual stream at `layer` (0: the embedding).
    return model.tok_embeddings if layer == 0 else model.layers[layer - 1]


@torch.no_grad()
def residual_stream(model: Llama, idx: Tensor) -> Tensor:
    """The residual stream of ``model`` on ``idx`` ``(B, T)``: ``(L + 1, B, T, C)``.

    Entry 0 is the token embedding, entry ``l`` the output of block ``l`` (the input of
    block ``l + 1``); entry ``L`` is what the final norm and the LM head read. Captured
    with forward hooks, which are removed afterwards even if the forward pass fails.
    """
    _check_ids(idx)
    captured: list[Tensor] = []
    modules = [_residual_module(model, layer) for layer in range(model.config.n_layer + 1)]
    handles = [m.register_forward_hook(lambda _m, _i, out: captured.append(out)) for m in modules]
    try:
        model(idx)
    finally:
        for handle in handles:
            handle.remove()
    return torch.stack(captured)  # (L + 1, B, T, C)


def logit_lens(model: Llama, residual: Tensor) -> Tensor:
    """Read a residual stream ``(..., C)`` as next-token logits ``(..., V)``.

    Applies the model's final RMSNorm and LM head, as if the layers after it were skipped
    (nostalgebraist's *logit lens*). At the last layer this is exactly the model's output.
    """
    if residual.shape[-1] != model.config.n_embd:
        raise ValueError(
            f"residual's last dimension must be n_embd = {model.config.n_embd}, got "
            f"{residual.shape[-1]}."
        )
    return model.lm_head(model.norm(residual))


@torch.no_grad()
def _inputs_of(model: nn.Module, modules: list[nn.Module], idx: Tensor) -> list[tuple[Any, ...]]:
    """Run ``model(idx)`` once and return the positional inputs each of ``modules`` received."""
    inputs: list[tuple[Any, ...]] = []
    handles = [m.register_forward_pre_hook(lambda _m, args: inputs.append(args)) for m in modules]
    try:
        model(idx)
    finally:
        for handle in handles:
            handle.remove()
    return inputs


@torch.no_grad()
def attention_patterns(model: Llama, idx: Tensor) -> tuple[Tensor, Tensor]:
    """Every head's attention weights and the norm of what it writes from each position.

    Returns ``weights`` ``(L, B, H, T, T)`` (row ``i`` is query ``i``'s distribution over
    keys) and ``value_norms`` ``(L, B, H, T)``: ``||W_O^h v_j||``, the length of the vector
    head ``h`` adds to the residual stream per unit of attention to position ``j``.
    ``weights * value_norms[..., None, :]`` is Kobayashi et al.'s norm-based attention.
    The weights are recomputed from each attention layer's inputs, captured with hooks.
    """
    _check_ids(idx)
    inputs = _inputs_of(model, [block.attn for block in model.layers], idx)
    all_weights, all_norms = [], []
    for block, (x, cos, sin, mask, *_rest) in zip(model.layers, inputs, strict=True):
        attn = block.attn
        batch, seq, _ = x.shape
        q = attn.q_proj(x).view(batch, seq, attn.n_head, attn.head_dim)  # (B, T, H, D)
        k = attn.k_proj(x).view(batch, seq, attn.n_kv_head, attn.head_dim)  # (B, T, K, D)
        v = attn.v_proj(x).view(batch, seq, attn.n_kv_head, attn.head_dim)  # (B, T, K, D)
        if attn.q_norm is not None and attn.k_norm is not None:
            q, k = attn.q_norm(q), attn.k_norm(k)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        group = attn.n_head // attn.n_kv_head
        k, v = repeat_kv(k, group), repeat_kv(v, group)  # (B, H, T, D)
        scores = q @ k.transpose(-2, -1) / math.sqrt(attn.head_dim)  # (B, H, T, T)
        weights = scores.masked_fill(~mask, float("-inf")).float().softmax(dim=-1)
        w_out = attn.o_proj.weight.view(-1, attn.n_head, attn.head_dim)  # (C, H, D)
        written = torch.einsum("bhtd,chd->bhtc", v, w_out)  # (B, H, T, C)
        all_weights.append(weights)
        all_norms.append(written.norm(dim=-1))
    return torch.stack(all_weights), torch.stack(all_norms)


@torch.no_grad()
def patch_residual(model: Llama, idx: Tensor, layer: int, patch: Tensor, where: Tensor) -> Tensor:
    """Run ``model`` on ``idx`` with the residual stream at ``layer`` partly replaced.

    ``patch`` ``(B, T, C)`` (or anything broadcastable, e.g. ``(T, C)``) holds the values
    to write, typically another run's :func:`residual_stream` at the same layer;
    ``where`` ``(B, T)`` booleans says at which positions of which sequence they replace
    the run's own. ``layer`` 0 is the embedding output, ``l`` the output of block ``l``.
    Batching several patches (one per sequence) costs one forward pass. Returns the
    logits ``(B, T, V)``.
    """
    _check_ids(idx)
    _check_layer(model, layer, allow_embedding=True)
    if where.shape != idx.shape or where.dtype != torch.bool:
        raise ValueError(
            f"where must be a boolean tensor shaped like idx {tuple(idx.shape)}, got "
            f"{where.dtype} {tuple(where.shape)}."
        )

    def replace(_module: nn.Module, _inputs: Any, output: Tensor) -> Tensor:
        return torch.where(where[..., None], patch.to(output.dtype), output)  # (B, T, C)

    handle = _residual_module(model, layer).register_forward_hook(replace)
    try:
        return model(idx)
    finally:
        handle.remove()


@torch.no_grad()
def head_outputs(model: Llama, idx: Tensor) -> Tensor:
    """Each head's output before the output projection: ``(L, B, T, H, D)``.

    Block ``l``'s attention adds ``o_proj(concat_h y_h)`` to the residual stream; these are
    the ``y_h``, captured with a forward pre-hook on every ``o_proj``.
    """
    _check_ids(idx)
    captured = [args[0] for args in _inputs_of(model, [b.attn.o_proj for b in model.layers], idx)]
    n_head, head_dim = model.config.n_head, model.config.head_dim
    return torch.stack([y.view(*y.shape[:2], n_head, head_dim) for y in captured])


@contextmanager
def ablate_head(
    out_proj: nn.Linear, head: int, n_head: int, value: Tensor | None = None
) -> Iterator[None]:
    """Inside the ``with`` block, replace head ``head``'s slice of ``out_proj``'s input.

    ``out_proj`` is an attention layer's output projection, whose input is the ``n_head``
    heads' outputs concatenated: ``(..., n_head * D)``. ``value`` ``(..., D)`` (broadcast
    against the slice, e.g. a clean run's :func:`head_outputs` for that head) is written
    instead; ``None`` zeroes the head (zero ablation). The hook is removed on exit.
    """
    width = out_proj.in_features
    if width % n_head or not 0 <= head < n_head:
        raise ValueError(
            f"head must be in [0, {n_head}) and n_head must divide the projection's input "
            f"width {width}; got head={head}, n_head={n_head}."
        )
    head_dim = width // n_head

    def replace(_module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        heads = args[0].clone()  # (..., H * D)
        part = heads[..., head * head_dim : (head + 1) * head_dim]
        part.copy_(torch.zeros_like(part) if value is None else value.expand_as(part))
        return (heads, *args[1:])

    handle = out_proj.register_forward_pre_hook(replace)
    try:
        yield
    finally:
        handle.remove()


def _check_pattern(weights: Tensor, tokens: Tensor) -> None:
    if tokens.dim() != 2 or weights.dim() < 4:
        raise ValueError(
            "weights must be (..., B, H, T, T) and tokens (B, T); got "
            f"{tuple(weights.shape)} and {tuple(tokens.shape)}."
        )
    batch, seq = tokens.shape
    if weights.shape[-4] != batch or weights.shape[-2:] != (seq, seq):
        raise ValueError(
            f"weights {tuple(weights.shape)} do not match tokens {tuple(tokens.shape)}: "
            "expected (..., B, H, T, T) with the same B and T."
        )


def induction_score(weights: Tensor, tokens: Tensor) -> Tensor:
    """How much each head attends from a token to the token after its previous occurrence.

    For every query position ``i`` whose token appeared before, at positions ``j < i``, the
    head's score is the attention mass on the positions ``j + 1`` (summed over all earlier
    occurrences); scores are averaged over those query positions and the batch. A perfect
    induction head scores 1. ``weights`` ``(..., B, H, T, T)``, ``tokens`` ``(B, T)``;
    returns ``(..., H)``. Queries whose token never appeared before are left out.
    """
    _check_pattern(weights, tokens)
    seq = tokens.shape[1]
    same = tokens[:, :, None] == tokens[:, None, :]  # (B, T_query, T_key)
    earlier = torch.ones(seq, seq, dtype=torch.bool, device=tokens.device).tril(-1)
    previous = same & earlier  # j < i with the same token
    targets = torch.zeros_like(previous)
    targets[:, :, 1:] = previous[:, :, :-1]  # the position after each earlier occurrence
    valid = previous.any(dim=-1)  # (B, T): queries that have a previous occurrence
    if not valid.any():
        raise ValueError("No token repeats in `tokens`: the induction score is undefined.")
    mass = (weights * targets[:, None].to(weights.dtype)).sum(dim=-1)  # (..., B, H, T)
    mass = mass * valid[:, None, :].to(weights.dtype)
    return mass.sum(dim=(-3, -1)) / valid.sum()  # (..., H)


def previous_token_score(weights: Tensor) -> Tensor:
    """The mean attention from each position ``i >= 1`` to position ``i - 1``: ``(..., H)``.

    ``weights`` ``(..., B, H, T, T)``; a perfect previous-token head scores 1.
    """
    if weights.dim() < 4 or weights.shape[-1] != weights.shape[-2] or weights.shape[-1] < 2:
        raise ValueError(f"weights must be (..., B, H, T, T) with T >= 2, got {weights.shape}.")
    diagonal = weights.diagonal(offset=-1, dim1=-2, dim2=-1)  # (..., B, H, T - 1)
    return diagonal.mean(dim=(-3, -1))
