"""Numerically stable building blocks on torch tensors: softmax, log-softmax, cosine similarity.

Built step by step in the chapter *Linear algebra for language models*; later chapters
(attention, language-model losses, semantic search) use these versions::

    from llmzero.core.functional import cosine_similarity, log_softmax, softmax

    probs = softmax(logits)                     # (..., vocab), each row sums to 1
    scores = cosine_similarity(queries, docs)   # (n, d) and (m, d) -> (n, m)

Each function checks its inputs and raises a ``ValueError`` (bad shape or ``dim``) or a
``TypeError`` (not a floating-point tensor) that says what was expected.
"""

from __future__ import annotations

import torch

__all__ = ["cosine_similarity", "log_softmax", "softmax"]


def _check_float_tensor(x: object, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}.")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor, got dtype {x.dtype}; "
            f"convert it first, e.g. {name}.float()."
        )


def _check_dim(x: torch.Tensor, dim: int) -> None:
    if x.ndim == 0:
        raise ValueError("softmax needs a tensor with at least one dimension, got a 0-d scalar.")
    if not -x.ndim <= dim < x.ndim:
        raise ValueError(
            f"dim={dim} is out of range for a tensor of shape {tuple(x.shape)} "
            f"(valid: {-x.ndim} to {x.ndim - 1})."
        )


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    r"""Softmax along ``dim``, computed without overflow.

    .. math:: \mathrm{softmax}(x)_i = \frac{e^{x_i - c}}{\sum_j e^{x_j - c}},
              \quad c = \max_j x_j

    Subtracting the maximum does not change the result (it cancels between numerator and
    denominator) but makes the largest exponent :math:`e^0 = 1`, so nothing overflows and
    the denominator is at least 1. Entries equal to ``-inf`` (masked positions) get
    probability 0.

    Args:
        x: scores (logits) of any shape ``(..., n, ...)``, floating point.
        dim: the dimension that sums to 1.

    Returns:
        A tensor of the same shape and dtype as ``x``.

    Raises:
        TypeError: ``x`` is not a floating-point tensor.
        ValueError: ``x`` is 0-d or ``dim`` is out of range.
    """
    _check_float_tensor(x, "x")
    _check_dim(x, dim)
    shifted = x - x.amax(dim=dim, keepdim=True)  # same shape as x, max along dim is 0
    exps = shifted.exp()  # values in [0, 1]
    return exps / exps.sum(dim=dim, keepdim=True)  # denominator >= 1


def log_softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    r"""Logarithm of :func:`softmax` along ``dim``, computed stably (log-sum-exp trick).

    .. math:: \log \mathrm{softmax}(x)_i = (x_i - c) - \log \sum_j e^{x_j - c},
              \quad c = \max_j x_j

    Taking ``softmax(x).log()`` instead would turn tiny probabilities into ``-inf``; this
    form keeps them as finite, very negative numbers.

    Args:
        x: scores (logits) of any shape, floating point.
        dim: the dimension to normalise over.

    Returns:
        A tensor of the same shape and dtype as ``x``; ``exp`` of it sums to 1 along ``dim``.

    Raises:
        TypeError: ``x`` is not a floating-point tensor.
        ValueError: ``x`` is 0-d or ``dim`` is out of range.
    """
    _check_float_tensor(x, "x")
    _check_dim(x, dim)
    shifted = x - x.amax(dim=dim, keepdim=True)  # same shape as x
    return shifted - shifted.exp().sum(dim=dim, keepdim=True).log()


def cosine_similarity(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    r"""Cosine similarity of every row of ``a`` with every row of ``b``.

    .. math:: \cos(a, b) = \frac{a \cdot b}{\max(\lVert a \rVert, \epsilon)\,
              \max(\lVert b \rVert, \epsilon)}

    Rows are scaled to unit length and then multiplied like ``a @ b.T``, so the shapes
    follow matrix multiplication:

    ====================  ====================  ===========
    ``a``                 ``b``                 result
    ====================  ====================  ===========
    ``(d,)``              ``(d,)``              ``()``
    ``(n, d)``            ``(d,)``              ``(n,)``
    ``(d,)``              ``(m, d)``            ``(m,)``
    ``(n, d)``            ``(m, d)``            ``(n, m)``
    ====================  ====================  ===========

    A zero vector has similarity 0 with everything (its norm is clamped to ``eps``, as in
    ``torch.nn.functional.cosine_similarity``).

    Args:
        a: one vector ``(d,)`` or a batch of vectors ``(n, d)``.
        b: one vector ``(d,)`` or a batch of vectors ``(m, d)``.
        eps: the smallest norm used in the division.

    Returns:
        Similarities in ``[-1, 1]``, shaped as in the table above.

    Raises:
        TypeError: an input is not a floating-point tensor.
        ValueError: an input is not 1-D or 2-D, or the vector sizes ``d`` differ.
    """
    _check_float_tensor(a, "a")
    _check_float_tensor(b, "b")
    for name, x in (("a", a), ("b", b)):
        if x.ndim not in (1, 2):
            raise ValueError(
                f"{name} must be a vector (d,) or a batch of vectors (n, d), "
                f"got shape {tuple(x.shape)}."
            )
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(
            f"a and b must have vectors of the same size, got a: {tuple(a.shape)} "
            f"and b: {tuple(b.shape)} (last dimensions {a.shape[-1]} != {b.shape[-1]})."
        )
    a_unit = a / a.norm(dim=-1, keepdim=True).clamp_min(eps)  # (n, d) or (d,)
    b_unit = b / b.norm(dim=-1, keepdim=True).clamp_min(eps)  # (m, d) or (d,)
    return a_unit @ (b_unit.T if b_unit.ndim == 2 else b_unit)  # (n, m), (n,), (m,) or ()
