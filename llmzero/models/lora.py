"""LoRA, low-rank adaptation (Hu et al., 2021), for any ``nn.Linear`` of any PyTorch model.

A frozen linear layer ``y = W x + b`` gets a trainable low-rank update::

    y = W x + b + (alpha / r) * B (A x)        A: (r, in_features), B: (out_features, r)

``A`` starts random (Kaiming-uniform, like ``nn.Linear``) and ``B`` at zero, so a freshly
wrapped model computes exactly what the original did; only ``A`` and ``B`` train, and
``r * (in_features + out_features)`` numbers replace ``in_features * out_features``. After
training the update can be **merged** into the weight, ``W <- W + (alpha / r) B A``, so the
adapted model runs as fast as the original. The chapter *Parameter-efficient fine-tuning*
(Part V) builds this step by step and shows that, with the same ``A`` and ``B``, it computes
the same outputs as the ``peft`` library. Usage::

    from llmzero.models import lora

    names = lora.inject_lora(model, ["q_proj", "v_proj"], rank=8, alpha=16)
    print(lora.count_parameters(model))          # trainable / total
    ...                                         # train: only lora_A and lora_B change
    lora.merge_lora(model)                       # W <- W + (alpha / r) B A, in place
    plain = lora.unload_lora(model)              # back to plain nn.Linear layers

Target names follow ``peft``'s rule: a module is adapted when its full name equals a target
or ends with ``"." + target`` (so ``"q_proj"`` matches ``model.layers.0.self_attn.q_proj``
in every layer). Shapes in comments: ``...`` for any leading dimensions, ``r`` the rank.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "LoRALinear",
    "ParameterCount",
    "count_parameters",
    "inject_lora",
    "lora_layers",
    "lora_state_dict",
    "merge_lora",
    "unload_lora",
    "unmerge_lora",
]


def _check_hyperparameters(rank: int, alpha: float, dropout: float) -> None:
    if isinstance(rank, bool) or not isinstance(rank, int) or rank <= 0:
        raise ValueError(f"rank must be a positive integer (typical: 4 to 64), got {rank!r}.")
    if not alpha > 0:
        raise ValueError(f"alpha must be positive (common: rank or 2 * rank), got {alpha!r}.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update ``(alpha / rank) * B A``.

    Args:
        base: the linear layer to adapt; it is kept (not copied) as ``self.base`` and its
            parameters are frozen.
        rank: ``r``, the inner dimension of the update (``1 <= r``; LoRA's gain comes from
            ``r`` far below ``min(in_features, out_features)``).
        alpha: the update is scaled by ``alpha / rank``, so changing ``r`` need not change the
            learning rate that works.
        dropout: dropout on the input of the update only (the frozen path is unaffected).

    ``lora_A`` has shape ``(rank, in_features)`` and starts Kaiming-uniform, ``lora_B`` has
    shape ``(out_features, rank)`` and starts at zero, in the dtype and on the device of the
    base weight: the same layout and initialisation as ``peft``'s ``lora_A``/``lora_B``
    weights, so values can be copied between the two directly.
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(
                f"LoRALinear wraps an nn.Linear, got {type(base).__name__}; pick target names "
                "that match linear layers only."
            )
        _check_hyperparameters(rank, alpha, dropout)
        self.base = base
        self.base.requires_grad_(False)
        self.rank = rank
        self.alpha = float(alpha)
        self.scaling = self.alpha / rank
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        weight = base.weight
        self.lora_A = nn.Parameter(
            torch.empty(rank, base.in_features, dtype=weight.dtype, device=weight.device)
        )
        self.lora_B = nn.Parameter(
            torch.zeros(base.out_features, rank, dtype=weight.dtype, device=weight.device)
        )
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # nn.Linear's (and peft's) init
        self.merged = False

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def delta_weight(self) -> Tensor:
        """The update ``(alpha / rank) * B @ A``, shape ``(out_features, in_features)``."""
        return (self.lora_B @ self.lora_A) * self.scaling

    def forward(self, x: Tensor) -> Tensor:
        """``base(x) + scaling * B(A(dropout(x)))``; only ``base(x)`` once merged."""
        result = self.base(x)  # (..., out_features)
        if self.merged:
            return result
        low_rank = F.linear(self.dropout(x), self.lora_A)  # (..., r)
        return result + F.linear(low_rank, self.lora_B) * self.scaling  # (..., out_features)

    @torch.no_grad()
    def merge(self) -> None:
        """Add the update into the base weight (``W <- W + scaling * B A``), in place."""
        if self.merged:
            raise RuntimeError("This LoRA layer is already merged; call unmerge() first.")
        self.base.weight += self.delta_weight().to(self.base.weight.dtype)
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Subtract the update again, so that ``A`` and ``B`` can train further."""
        if not self.merged:
            raise RuntimeError("This LoRA layer is not merged; there is nothing to unmerge.")
        self.base.weight -= self.delta_weight().to(self.base.weight.dtype)
        self.merged = False

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha:g}, merged={self.merged}"


def _matches(name: str, target: str) -> bool:
    return name == target or name.endswith("." + target)


def inject_lora(
    model: nn.Module,
    target_names: Iterable[str],
    rank: int,
    alpha: float,
    dropout: float = 0.0,
    freeze_base: bool = True,
) -> list[str]:
    """Replace each ``nn.Linear`` of ``model`` whose name matches a target by a LoRALinear.

    Args:
        model: any module; it is changed in place.
        target_names: names such as ``["q_proj", "v_proj"]``; a module matches when its full
            name (as in ``model.named_modules()``) equals a target or ends with
            ``"." + target``.
        rank, alpha, dropout: passed to :class:`LoRALinear`.
        freeze_base: freeze every parameter of ``model`` first, so that only the new ``A``
            and ``B`` train (unfreeze a new task head yourself afterwards).

    Returns:
        The full names of the adapted layers, in model order.

    Raises:
        ValueError: bad hyper-parameters, an empty target list, a target that matches no
            module, or a model that already holds LoRA layers.
        TypeError: a matched module that is not an ``nn.Linear``.
    """
    _check_hyperparameters(rank, alpha, dropout)
    targets = [target_names] if isinstance(target_names, str) else list(target_names)
    if not targets:
        raise ValueError("target_names is empty: name the linear layers to adapt, e.g. ['q_proj'].")
    if any(isinstance(module, LoRALinear) for module in model.modules()):
        raise ValueError(
            "This model already has LoRA layers; unload_lora(model) first to adapt it again."
        )
    named = dict(model.named_modules())
    chosen = [name for name in named if name and any(_matches(name, t) for t in targets)]
    unmatched = [t for t in targets if not any(_matches(name, t) for name in chosen)]
    if unmatched:
        linear_names = sorted(
            {n.rsplit(".", 1)[-1] for n, m in named.items() if isinstance(m, nn.Linear)}
        )
        raise ValueError(
            f"target names {unmatched} match no module of {type(model).__name__}; its linear "
            f"layers are called {linear_names}."
        )
    for name in chosen:
        if not isinstance(named[name], nn.Linear):
            raise TypeError(
                f"{name!r} is a {type(named[name]).__name__}, not an nn.Linear; LoRA here adapts "
                "linear layers only, so choose more specific target names."
            )
    if freeze_base:
        model.requires_grad_(False)
    for name in chosen:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(named[name], rank, alpha, dropout))
    return chosen


def lora_layers(model: nn.Module) -> Iterator[tuple[str, LoRALinear]]:
    """Every :class:`LoRALinear` in ``model`` with its full name, in model order."""
    for name, module in model.named_modules():
        if isinstance(module, LoRALinear):
            yield name, module


def _require_lora(model: nn.Module) -> list[tuple[str, LoRALinear]]:
    layers = list(lora_layers(model))
    if not layers:
        raise ValueError("The model has no LoRA layers; call inject_lora(model, ...) first.")
    return layers


def merge_lora(model: nn.Module) -> int:
    """Merge every LoRA layer's update into its base weight; returns how many were merged."""
    layers = _require_lora(model)
    for _, layer in layers:
        layer.merge()
    return len(layers)


def unmerge_lora(model: nn.Module) -> int:
    """Undo :func:`merge_lora`; returns how many layers were unmerged."""
    layers = _require_lora(model)
    for _, layer in layers:
        layer.unmerge()
    return len(layers)


def unload_lora(model: nn.Module, merge: bool = True) -> nn.Module:
    """Put plain ``nn.Linear`` layers back, with the update merged in (or dropped if
    ``merge=False``), and return ``model``. The base weights stay frozen."""
    for name, layer in _require_lora(model):
        if merge and not layer.merged:
            layer.merge()
        elif not merge and layer.merged:
            layer.unmerge()
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, layer.base)
    return model


def lora_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """Only the adapter: every ``lora_A``/``lora_B`` tensor by its full name (what you save
    and share instead of the whole model)."""
    return {
        name: tensor.detach().clone()
        for name, tensor in model.state_dict().items()
        if name.endswith((".lora_A", ".lora_B"))
    }


@dataclass(frozen=True)
class ParameterCount:
    """How many parameters a model has and how many of them train."""

    #: Parameters with ``requires_grad=True``.
    trainable: int
    #: All parameters; a tensor shared by two modules (tied weights) counts once.
    total: int

    @property
    def share(self) -> float:
        """``trainable / total`` (0 for an empty model)."""
        return self.trainable / self.total if self.total else 0.0

    def __str__(self) -> str:
        return f"{self.trainable:,} trainable of {self.total:,} ({100 * self.share:.3f}%)"


def count_parameters(model: nn.Module) -> ParameterCount:
    """Count ``model``'s trainable and total parameters (shared tensors once)."""
    parameters = list(model.parameters())  # deduplicated by identity
    return ParameterCount(
        trainable=sum(p.numel() for p in parameters if p.requires_grad),
        total=sum(p.numel() for p in parameters),
    )
