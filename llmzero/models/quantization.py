"""Weight quantization and pruning, from scratch (Part VII, *Model compression*).

- :func:`quantize` and :func:`dequantize`: round a weight tensor to ``bits``-bit integers
  with one scale per tensor, per output channel (row) or per group of ``group_size``
  consecutive weights of a row; ``"absmax"`` (symmetric, zero maps to zero) or
  ``"zeropoint"`` (asymmetric: an integer zero point shifts the grid to the tensor's range);
- :func:`fake_quantize`: quantize then dequantize ("fake quantization"): the float tensor
  the quantized model computes with, used to measure what rounding costs;
- :func:`bits_per_weight`: the storage cost of a scheme, codes plus scales and zero points;
- :func:`fake_quantized` and :func:`pruned`: context managers that change a model's
  ``nn.Linear`` weights (quantized, or multiplied by a pruning mask) and restore them;
- :func:`magnitude_mask` (unstructured: the smallest weights) and :func:`structured_mask`
  (whole rows or columns with the smallest norms).

Rounding to nearest gives every weight an error of at most half a step, ``scale / 2``,
whenever the scale covers the group's range (both schemes here make sure it does)::

    from llmzero.models import quantization

    q = quantization.quantize(weight, bits=4, scheme="zeropoint", granularity="group")
    error = (quantization.dequantize(q) - weight).abs()          # <= q.scale / 2 per group
    with quantization.fake_quantized(model, bits=8, granularity="channel") as report:
        ...  # evaluate the model with its Linear weights rounded to int8
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = [
    "GRANULARITIES",
    "SCHEMES",
    "QuantizationReport",
    "QuantizedTensor",
    "bits_per_weight",
    "dequantize",
    "fake_quantize",
    "fake_quantized",
    "linear_weights",
    "magnitude_mask",
    "pruned",
    "quantize",
    "structured_mask",
]

SCHEMES = ("absmax", "zeropoint")
"""``absmax``: symmetric integers in ``[-(2^(b-1) - 1), 2^(b-1) - 1]``, zero point 0;
``zeropoint``: unsigned integers in ``[0, 2^b - 1]`` with an integer zero point."""

GRANULARITIES = ("tensor", "channel", "group")
"""One scale per tensor, per output channel (row of an ``(out, in)`` weight), or per
group of ``group_size`` consecutive weights in a row."""


@dataclass
class QuantizedTensor:
    """Integer codes and what is needed to turn them back into floats.

    ``codes`` and the per-group ``scale`` and ``zero_point`` have shape ``(rows, groups,
    group_numel)`` and ``(rows, groups, 1)``; ``dequantize`` gives ``(codes - zero_point)
    * scale`` reshaped to ``shape``.
    """

    codes: Tensor
    scale: Tensor
    zero_point: Tensor
    shape: torch.Size
    bits: int
    scheme: str

    @property
    def group_numel(self) -> int:
        """How many weights share one scale."""
        return self.codes.shape[-1]


def _check(bits: int, scheme: str, granularity: str) -> None:
    if not 2 <= bits <= 8:
        raise ValueError(f"bits must be between 2 and 8 (integer codes), got {bits}.")
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}.")
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}.")


def _grouped(weight: Tensor, granularity: str, group_size: int) -> Tensor:
    """View ``weight`` as ``(rows, groups, group_numel)``: one scale per last-axis slice."""
    if granularity == "tensor":
        return weight.reshape(1, 1, -1)
    if weight.dim() != 2:
        raise ValueError(
            f"{granularity!r} granularity needs a 2-D (out, in) weight, got shape "
            f"{tuple(weight.shape)}; use granularity='tensor'."
        )
    rows, columns = weight.shape
    if granularity == "channel":
        return weight.reshape(rows, 1, columns)
    if group_size < 1 or columns % group_size != 0:
        raise ValueError(
            f"group_size {group_size} must divide the {columns} input features of the weight; "
            "pick a divisor such as 32, 64 or 128."
        )
    return weight.reshape(rows, columns // group_size, group_size)


def quantize(
    weight: Tensor,
    bits: int = 8,
    scheme: str = "absmax",
    granularity: str = "channel",
    group_size: int = 32,
) -> QuantizedTensor:
    """Round ``weight`` to ``bits``-bit integer codes (round to nearest, ties to even).

    ``absmax``: ``scale = max|w| / (2^(b-1) - 1)`` per group, ``q = round(w / scale)``.
    ``zeropoint``: the group's range ``[min(w, 0), max(w, 0)]`` is spread over ``2^b - 1``
    steps, ``scale = (max - min) / (2^b - 1)``, ``z = round(-min / scale)`` and
    ``q = clamp(round(w / scale) + z, 0, 2^b - 1)``. Either way ``|dequantize(q) - w| <=
    scale / 2``. An all-zero group gets scale 1 (its codes are all ``z``).
    """
    _check(bits, scheme, granularity)
    groups = _grouped(weight.detach().float(), granularity, group_size)  # (R, G, N)
    if scheme == "absmax":
        q_max = 2 ** (bits - 1) - 1
        scale = groups.abs().amax(dim=-1, keepdim=True) / q_max  # (R, G, 1)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        codes = torch.clamp(torch.round(groups / scale), -q_max, q_max)
        zero_point = torch.zeros_like(scale)
    else:
        q_max = 2**bits - 1
        low = groups.amin(dim=-1, keepdim=True).clamp(max=0)  # the range includes 0
        high = groups.amax(dim=-1, keepdim=True).clamp(min=0)
        scale = (high - low) / q_max
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        zero_point = torch.clamp(torch.round(-low / scale), 0, q_max)
        codes = torch.clamp(torch.round(groups / scale) + zero_point, 0, q_max)
    dtype = torch.int8 if scheme == "absmax" else torch.uint8
    return QuantizedTensor(codes.to(dtype), scale, zero_point, weight.shape, bits, scheme)


def dequantize(quantized: QuantizedTensor) -> Tensor:
    """``(codes - zero_point) * scale``, in float32 with the original shape."""
    values = (quantized.codes.float() - quantized.zero_point) * quantized.scale
    return values.reshape(quantized.shape)


def fake_quantize(
    weight: Tensor,
    bits: int = 8,
    scheme: str = "absmax",
    granularity: str = "channel",
    group_size: int = 32,
) -> Tensor:
    """Quantize and dequantize: the float weights a quantized model effectively uses."""
    quantized = quantize(weight, bits, scheme, granularity, group_size)
    return dequantize(quantized).to(weight.dtype)


def bits_per_weight(bits: int, scheme: str, group_numel: int, scale_bits: int = 32) -> float:
    """Storage per weight: the code plus a share of its group's scale (and zero point).

    ``group_numel`` weights share one scale of ``scale_bits`` bits and, for ``zeropoint``,
    one ``bits``-bit zero point. GGUF's Q4_1, for instance, stores 32 4-bit codes with a
    16-bit scale and a 16-bit minimum: ``4 + 32 / 32 = 5`` bits per weight.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}.")
    if group_numel < 1:
        raise ValueError(f"group_numel must be at least 1, got {group_numel}.")
    overhead = scale_bits + (bits if scheme == "zeropoint" else 0)
    return bits + overhead / group_numel


def linear_weights(model: nn.Module, skip: tuple[str, ...] = ("lm_head",)) -> dict[str, Tensor]:
    """The weight of every ``nn.Linear`` whose name does not start with one in ``skip``.

    A weight shared by several modules (a tied head) appears once.
    """
    found: dict[str, Tensor] = {}
    seen: set[int] = set()
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear) or name.startswith(skip):
            continue
        if id(module.weight) not in seen:
            seen.add(id(module.weight))
            found[name] = module.weight
    return found


@contextmanager
def _patched(
    model: nn.Module, transform: Callable[[str, Tensor], Tensor], skip: tuple[str, ...]
) -> Iterator[dict[str, Tensor]]:
    weights = linear_weights(model, skip)
    saved = {name: weight.detach().clone() for name, weight in weights.items()}
    try:
        with torch.no_grad():
            for name, weight in weights.items():
                weight.copy_(transform(name, weight.detach()))
        yield weights
    finally:
        with torch.no_grad():
            for name, weight in weights.items():
                weight.copy_(saved[name])


@dataclass
class QuantizationReport:
    """What :func:`fake_quantized` changed: how many weights, at what storage cost."""

    n_weights: int
    bits_per_weight: float
    max_abs_error: float

    @property
    def megabytes(self) -> float:
        """Storage of the quantized weights (codes, scales, zero points) in MB."""
        return self.n_weights * self.bits_per_weight / 8 / 1e6


@contextmanager
def fake_quantized(
    model: nn.Module,
    bits: int = 8,
    scheme: str = "absmax",
    granularity: str = "channel",
    group_size: int = 32,
    skip: tuple[str, ...] = ("lm_head",),
    scale_bits: int = 32,
) -> Iterator[QuantizationReport]:
    """Inside the ``with`` block the model's Linear weights are fake-quantized.

    The original weights come back when the block ends, even after an error. Modules whose
    names start with one in ``skip`` keep their weights (by default the LM head, which
    SmolLM2 and GPT share with the token embedding).
    """
    _check(bits, scheme, granularity)
    n_weights, total_bits, worst = 0, 0.0, 0.0

    def transform(name: str, weight: Tensor) -> Tensor:
        nonlocal n_weights, total_bits, worst
        quantized = quantize(weight, bits, scheme, granularity, group_size)
        approx = dequantize(quantized).to(weight.dtype)
        cost = bits_per_weight(bits, scheme, quantized.group_numel, scale_bits)
        n_weights += weight.numel()
        total_bits += cost * weight.numel()
        worst = max(worst, (approx - weight).abs().max().item())
        return approx

    with _patched(model, transform, skip):
        yield QuantizationReport(n_weights, total_bits / max(n_weights, 1), worst)


def magnitude_mask(weight: Tensor, sparsity: float) -> Tensor:
    """Unstructured pruning: ``False`` at the ``round(sparsity * numel)`` smallest ``|w|``.

    The threshold is the k-th smallest magnitude (``torch.kthvalue``, linear time); weights
    tied with it are pruned too, so with ties slightly more than the requested fraction
    can go.
    """
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}.")
    magnitudes = weight.detach().abs()
    n_pruned = round(sparsity * weight.numel())
    if n_pruned == 0:
        return torch.ones(weight.shape, dtype=torch.bool, device=weight.device)
    threshold = magnitudes.flatten().float().cpu().kthvalue(n_pruned).values
    return magnitudes > threshold.to(magnitudes.device)


def structured_mask(weight: Tensor, sparsity: float, dim: int = 0) -> Tensor:
    """Structured pruning: ``False`` on the whole slices along ``dim`` with the smallest L2
    norms (``dim=0``: output rows; ``dim=1``: input columns of an ``(out, in)`` weight)."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}.")
    if weight.dim() != 2 or dim not in (0, 1):
        raise ValueError("structured_mask needs a 2-D weight and dim 0 (rows) or 1 (columns).")
    norms = weight.detach().norm(dim=1 - dim)  # one norm per slice along `dim`
    n_pruned = round(sparsity * norms.numel())
    keep = torch.ones(norms.numel(), dtype=torch.bool, device=weight.device)
    if n_pruned:
        keep[norms.topk(n_pruned, largest=False).indices] = False
    return keep[:, None].expand_as(weight) if dim == 0 else keep[None, :].expand_as(weight)


@contextmanager
def pruned(
    model: nn.Module,
    mask_fn: Callable[[str, Tensor], Tensor | None],
    skip: tuple[str, ...] = ("lm_head",),
) -> Iterator[float]:
    """Inside the block, each Linear weight is multiplied by ``mask_fn(name, weight)``.

    ``mask_fn`` returns a boolean mask (``True`` keeps) or ``None`` to leave a weight
    whole. Yields the fraction of the patched weights that are zero; the weights come back
    when the block ends.
    """
    zeros, total = 0, 0

    def transform(name: str, weight: Tensor) -> Tensor:
        nonlocal zeros, total
        mask = mask_fn(name, weight)
        result = weight if mask is None else weight * mask
        zeros += int((result == 0).sum())
        total += weight.numel()
        return result

    with _patched(model, transform, skip):
        yield zeros / max(total, 1)
