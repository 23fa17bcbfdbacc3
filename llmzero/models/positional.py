"""Positional information for Transformers: sinusoidal, learned and rotary (RoPE).

Attention treats its input as a *set*: permute the tokens and the outputs are permuted the
same way, nothing else changes. A language model must know word order, so every
Transformer adds position information somewhere. Part III's chapter *Multi-head attention
and the Transformer block* builds the three standard ways, which live here:

- :func:`sinusoidal_encoding`: the fixed sines and cosines of the original Transformer
  (Vaswani et al., 2017), added to the token embeddings;
- :class:`LearnedPositionalEmbedding`: one trained vector per position, as in GPT-2;
- :func:`rope_frequencies` and :func:`apply_rope`: rotary position embedding (Su et al.,
  2021), which rotates queries and keys so that their dot product depends only on the
  *relative* position. It uses the "rotate-half" layout of Hugging Face's Llama code
  (dimension ``i`` is paired with dimension ``i + head_dim / 2``)::

    from llmzero.models.positional import apply_rope

    positions = torch.arange(seq)                 # (seq,)
    q = apply_rope(q, positions)                  # q: (batch, heads, seq, head_dim)
    k = apply_rope(k, positions)
    scores = q @ k.transpose(-2, -1)              # depends on m - n only
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = [
    "LearnedPositionalEmbedding",
    "apply_rope",
    "rope_frequencies",
    "rotate_half",
    "sinusoidal_encoding",
]


def _check_positive_int(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def _check_even_dim(value: object, name: str) -> None:
    _check_positive_int(value, name)
    if value % 2:  # type: ignore[operator]
        raise ValueError(
            f"{name} must be even (dimensions come in sine/cosine pairs), got {value}."
        )


def sinusoidal_encoding(
    seq_len: int,
    d_model: int,
    base: float = 10000.0,
    device: torch.device | str | None = None,
) -> Tensor:
    r"""The fixed sinusoidal position encodings of the original Transformer.

    .. math::
        PE_{p, 2i} = \sin\!\left(p\, \omega_i\right), \qquad
        PE_{p, 2i+1} = \cos\!\left(p\, \omega_i\right), \qquad
        \omega_i = \mathrm{base}^{-2i / d_\text{model}}

    Each pair of dimensions ``(2i, 2i + 1)`` is a point on a circle that turns with the
    position, slowly for large ``i``, fast for small ``i``.

    Args:
        seq_len: the number of positions ``0, ..., seq_len - 1``.
        d_model: the embedding width; must be even.
        base: the wavelength scale (10,000 in the paper).
        device: where to create the tensor.

    Returns:
        A float32 tensor of shape ``(seq_len, d_model)``, to be added to token embeddings
        of shape ``(batch, seq_len, d_model)`` (it broadcasts over the batch).

    Raises:
        ValueError: ``seq_len`` is not a positive integer, ``d_model`` is not a positive
            even integer, or ``base`` is not greater than 1.
    """
    _check_positive_int(seq_len, "seq_len")
    _check_even_dim(d_model, "d_model")
    if not base > 1.0:
        raise ValueError(f"base must be greater than 1, got {base}.")
    positions = torch.arange(seq_len, dtype=torch.float32, device=device)  # (seq,)
    frequencies = rope_frequencies(d_model, base=base, device=device)  # (d_model / 2,)
    angles = positions[:, None] * frequencies[None, :]  # (seq, d_model / 2)
    encoding = torch.empty(seq_len, d_model, device=device)  # (seq, d_model)
    encoding[:, 0::2] = torch.sin(angles)  # even dimensions
    encoding[:, 1::2] = torch.cos(angles)  # odd dimensions
    return encoding


class LearnedPositionalEmbedding(nn.Module):
    """One trainable vector per position, as GPT-2 and BERT use.

    A thin wrapper around :class:`torch.nn.Embedding` that says clearly what went wrong
    when a position is past ``max_len``: a learned table has no vector for positions it
    never saw, which is why such models cannot read past their context window.

    Args:
        max_len: the number of positions with a vector (the context window).
        d_model: the embedding width.
    """

    def __init__(self, max_len: int, d_model: int) -> None:
        super().__init__()
        _check_positive_int(max_len, "max_len")
        _check_positive_int(d_model, "d_model")
        self.max_len = max_len
        self.embedding = nn.Embedding(max_len, d_model)  # weight: (max_len, d_model)
        nn.init.normal_(self.embedding.weight, std=0.02)  # GPT-2's initialization

    def forward(self, positions: Tensor) -> Tensor:
        """Look up the vectors of integer ``positions`` of any shape ``(...)``.

        Returns a tensor of shape ``(..., d_model)``; e.g. ``positions = torch.arange(seq)``
        gives ``(seq, d_model)``, which broadcasts against ``(batch, seq, d_model)``.

        Raises:
            ValueError: ``positions`` is not an integer tensor, or holds a position below
                0 or at least ``max_len``.
        """
        if not isinstance(positions, Tensor) or positions.is_floating_point():
            raise ValueError("positions must be an integer tensor, e.g. torch.arange(seq).")
        if positions.numel() and (positions.min() < 0 or positions.max() >= self.max_len):
            raise ValueError(
                f"positions must be in [0, {self.max_len}); got values from "
                f"{int(positions.min())} to {int(positions.max())}. A learned table has no "
                "vector for positions beyond its max_len (the model's context window)."
            )
        return self.embedding(positions)  # (..., d_model)


def rope_frequencies(
    head_dim: int, base: float = 10000.0, device: torch.device | str | None = None
) -> Tensor:
    r"""The rotation speeds of RoPE, one per pair of dimensions.

    .. math:: \theta_i = \mathrm{base}^{-2i / d}, \qquad i = 0, \dots, d/2 - 1

    These are the same frequencies the sinusoidal encoding uses: dimension pair ``i``
    turns by ``position * theta_i`` radians.

    Args:
        head_dim: the size ``d`` of each attention head; must be even.
        base: the wavelength scale (10,000 in RoFormer and Llama 2; some later models use
            larger values for longer contexts).
        device: where to create the tensor.

    Returns:
        A float32 tensor of shape ``(head_dim // 2,)``, decreasing from 1.

    Raises:
        ValueError: ``head_dim`` is not a positive even integer or ``base`` is not > 1.
    """
    _check_even_dim(head_dim, "head_dim")
    if not base > 1.0:
        raise ValueError(f"base must be greater than 1, got {base}.")
    exponents = torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim
    return 1.0 / (base**exponents)  # (head_dim / 2,)


def rotate_half(x: Tensor) -> Tensor:
    """Map each pair ``(x_i, x_{i + d/2})`` to ``(-x_{i + d/2}, x_i)``: a 90° turn.

    ``x`` has shape ``(..., d)`` with ``d`` even; the result has the same shape.
    """
    half = x.shape[-1] // 2
    first, second = x[..., :half], x[..., half:]  # (..., d/2) each
    return torch.cat([-second, first], dim=-1)  # (..., d)


def apply_rope(x: Tensor, positions: Tensor, base: float = 10000.0) -> Tensor:
    r"""Rotate queries or keys by their positions (rotary position embedding).

    Dimension pair ``(i, i + d/2)`` of the vector at position ``m`` is turned by the
    angle ``m * theta_i`` (see :func:`rope_frequencies`):

    .. math:: \mathrm{RoPE}(x, m) = x \cos(m\theta) + \mathrm{rotate\_half}(x) \sin(m\theta)

    Rotations preserve lengths, and a dot product of two rotated vectors depends only on
    the *difference* of their angles, so ``apply_rope(q, m) · apply_rope(k, n)`` depends on
    ``m - n`` and not on ``m`` and ``n`` separately. Apply it to queries and keys (never to
    values) after the head split.

    Args:
        x: queries or keys, shape ``(..., seq, head_dim)``, e.g.
            ``(batch, heads, seq, head_dim)`` or ``(batch, seq, head_dim)``.
        positions: the position of each of the ``seq`` vectors: shape ``(seq,)`` (the same
            for every sequence) or ``(batch, seq)`` (one row per sequence, e.g. with left
            padding). Integers, or floats for interpolated positions.
        base: the wavelength scale (see :func:`rope_frequencies`).

    Returns:
        The rotated tensor, same shape and dtype as ``x``.

    Raises:
        ValueError: ``x`` has fewer than 2 dimensions or an odd last dimension, or
            ``positions`` does not have one entry per position of ``x``.
    """
    if not isinstance(x, Tensor) or x.ndim < 2:
        raise ValueError("x must be a tensor of shape (..., seq, head_dim).")
    head_dim, seq_len = x.shape[-1], x.shape[-2]
    _check_even_dim(head_dim, "head_dim (the last dimension of x)")
    positions = torch.as_tensor(positions, device=x.device)
    if positions.ndim not in (1, 2) or positions.shape[-1] != seq_len:
        raise ValueError(
            f"positions must have shape (seq,) or (batch, seq) with seq = {seq_len} "
            f"(x has shape {tuple(x.shape)}), got {tuple(positions.shape)}."
        )
    # Angles in float32 (float64 for float64 inputs), then cos and sin in x's dtype.
    compute_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    frequencies = rope_frequencies(head_dim, base=base, device=x.device).to(compute_dtype)
    angles = positions[..., None].to(compute_dtype) * frequencies  # (..., seq, d/2)
    angles = torch.cat([angles, angles], dim=-1)  # (..., seq, d): pair i and i + d/2 share
    if positions.ndim == 2 and x.ndim == 4:  # (batch, seq, d) -> (batch, 1, seq, d)
        angles = angles[:, None]  # the same angles for every head
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    return x * cos + rotate_half(x) * sin  # (..., seq, d)
