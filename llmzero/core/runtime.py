"""Where code runs and how a re-run gives the same numbers.

- :func:`get_device` picks the fastest device there is (``cuda``, then Apple's ``mps``,
  then ``cpu``), so no chapter hard-codes one.
- :func:`seed_everything` seeds Python, NumPy and PyTorch together.
- :func:`to_device` moves a whole batch (tensors inside tuples, lists and dicts) at once.
- :func:`memory_by_dtype` counts the bytes a model's weights take, per dtype, so a chapter
  can compare float32 with bfloat16 (or a half-quantized model) by measurement.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

__all__ = ["get_device", "memory_by_dtype", "seed_everything", "to_device"]


def get_device(prefer: str | None = None) -> torch.device:
    """Pick the fastest available device: ``cuda``, then Apple's ``mps``, then ``cpu``.

    ``prefer`` (e.g. ``"cpu"``) overrides the choice, so a knobs cell can force one.
    """
    if prefer is not None:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch so a re-run gives the same numbers on the same machine."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)


def to_device(batch: Any, device: torch.device | str) -> Any:
    """Move every tensor in ``batch`` to ``device``, looking inside tuples, lists and dicts.

    Anything that is not a tensor or a container (strings, numbers) is returned as is,
    so a batch like ``{"input_ids": ids, "text": ["a", "b"]}`` is fine.
    """
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        moved = {key: to_device(value, device) for key, value in batch.items()}
        try:
            return type(batch)(moved)  # keep dict subclasses (e.g. transformers' BatchEncoding)
        except Exception:
            return moved
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # a namedtuple
        return type(batch)(*(to_device(item, device) for item in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(item, device) for item in batch)
    return batch


def memory_by_dtype(
    module: torch.nn.Module, *, include_buffers: bool = True
) -> dict[torch.dtype, int]:
    """Bytes held by ``module``'s parameters (and buffers), grouped by dtype, largest first.

    Each tensor counts ``numel() * element_size()`` bytes, as it is stored. A tensor
    registered under two names (tied weights, such as an embedding shared with the output
    layer) is counted once, as PyTorch stores it once. With ``include_buffers`` (the default)
    the total equals ``transformers``' ``model.get_memory_footprint()``. Activations,
    gradients and optimizer state are not weights and are not counted.

    >>> memory_by_dtype(torch.nn.Linear(4, 2))  # 8 weights + 2 biases, 4 bytes each
    {torch.float32: 40}
    """
    if not isinstance(module, torch.nn.Module):
        raise TypeError(
            f"memory_by_dtype expects a torch.nn.Module, got {type(module).__name__}; "
            "pass the model itself (for a pipeline, its .model)."
        )
    tensors = list(module.parameters())
    if include_buffers:
        tensors += list(module.buffers())
    totals: dict[torch.dtype, int] = {}
    seen: set[int] = set()
    for tensor in tensors:
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        totals[tensor.dtype] = totals.get(tensor.dtype, 0) + tensor.numel() * tensor.element_size()
    return dict(sorted(totals.items(), key=lambda item: -item[1]))
