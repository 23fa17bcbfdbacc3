"""Optimizers and a learning-rate schedule, written from scratch.

Part I's optimization chapter builds these step by step and proves each one equal to its
``torch.optim`` counterpart; later chapters (Part IV's pretraining in particular) use them
or ``torch.optim`` interchangeably. Each class is a :class:`torch.optim.Optimizer`, so it
has ``param_groups``, ``zero_grad()``, ``state_dict()`` and works with
``torch.optim.lr_scheduler``. The update rules follow PyTorch's formulation exactly (also
the order of floating-point operations), so the parameters match ``torch.optim`` to the
last bit or nearly so.

Notation in the comments: ``θ`` the parameters, ``g`` the gradient, ``η`` the learning
rate ``lr``, ``λ`` the weight decay, ``t`` the step number counted from 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import Optimizer

__all__ = ["SGD", "Adam", "AdamW", "warmup_cosine"]


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with momentum and L2 weight decay.

    With ``momentum=0`` this is plain (stochastic) gradient descent, ``θ ← θ - η g``.
    With momentum ``μ > 0`` it is PyTorch's heavy-ball form::

        v ← g               on the first step
        v ← μ v + g         afterwards
        θ ← θ - η v         (or θ ← θ - η (g + μ v) with nesterov=True)

    ``weight_decay=λ`` adds ``λ θ`` to the gradient first, which is exactly the gradient
    of an L2 penalty ``λ/2 ‖θ‖²`` added to the loss.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(
                f"lr ({lr}), momentum ({momentum}) and weight_decay ({weight_decay}) must be >= 0"
            )
        if nesterov and momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Update every parameter that has a gradient; return ``closure()``'s loss if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad  # same shape as param
                if wd != 0:
                    grad = grad.add(param, alpha=wd)  # g ← g + λ θ   (L2 penalty)
                if mu != 0:
                    state = self.state[param]
                    if "momentum_buffer" not in state:
                        buf = grad.detach().clone()  # v ← g on the first step
                        state["momentum_buffer"] = buf
                    else:
                        buf = state["momentum_buffer"]
                        buf.mul_(mu).add_(grad)  # v ← μ v + g
                    # heavy ball: step along v; Nesterov: look ahead, g + μ v
                    grad = grad.add(buf, alpha=mu) if group["nesterov"] else buf
                param.add_(grad, alpha=-lr)  # θ ← θ - η · (update direction)
        return loss


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), with optional *coupled* L2 weight decay.

    For each parameter, with ``β₁, β₂ = betas``::

        g ← g + λ θ                          (only if weight_decay λ > 0: L2, as torch.optim.Adam)
        m ← β₁ m + (1 - β₁) g                (running mean of gradients)
        v ← β₂ v + (1 - β₂) g²               (running mean of squared gradients)
        m̂ = m / (1 - β₁ᵗ),  v̂ = v / (1 - β₂ᵗ)  (bias correction: m and v start at 0)
        θ ← θ - η m̂ / (√v̂ + ε)

    Because the L2 term passes through the division by ``√v̂``, parameters with large
    gradients are decayed less; :class:`AdamW` fixes that by decaying ``θ`` directly.
    """

    decoupled_weight_decay: bool = False

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise ValueError(
                f"lr ({lr}), eps ({eps}) and weight_decay ({weight_decay}) must be >= 0"
            )
        if not all(0.0 <= beta < 1.0 for beta in betas):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Update every parameter that has a gradient; return ``closure()``'s loss if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad  # same shape as param
                state = self.state[param]
                if not state:  # first step: moments start at zero
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(param)  # m
                    state["exp_avg_sq"] = torch.zeros_like(param)  # v
                state["step"] += 1
                t = state["step"]
                m, v = state["exp_avg"], state["exp_avg_sq"]

                if wd != 0:
                    if self.decoupled_weight_decay:
                        param.mul_(1 - lr * wd)  # AdamW: θ ← θ - η λ θ, outside the moments
                    else:
                        grad = grad.add(param, alpha=wd)  # Adam: g ← g + λ θ, through the moments

                m.lerp_(grad, 1 - beta1)  # m ← β₁ m + (1 - β₁) g
                v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)  # v ← β₂ v + (1 - β₂) g²
                bias_correction1 = 1 - beta1**t
                bias_correction2 = 1 - beta2**t
                # θ ← θ - η m̂ / (√v̂ + ε), computed as PyTorch does: the 1/(1-β₁ᵗ) of m̂
                # folds into the step size and the 1/√(1-β₂ᵗ) of √v̂ into the denominator.
                denom = (v.sqrt() / bias_correction2**0.5).add_(eps)
                param.addcdiv_(m, denom, value=-lr / bias_correction1)
        return loss


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter, 2019): Adam with *decoupled* weight decay.

    Before the Adam update, every parameter shrinks by ``θ ← θ (1 - η λ)``, independently
    of its gradient history; the default ``weight_decay=0.01`` matches ``torch.optim.AdamW``.
    Pass parameter groups to exempt some parameters (biases, norms) from decay.
    """

    decoupled_weight_decay = True

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def warmup_cosine(
    step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0
) -> float:
    """Learning-rate multiplier: linear warmup from 0 to 1, then cosine decay to ``min_lr_ratio``.

    ``step / warmup_steps`` for ``step < warmup_steps``; then, with
    ``progress = (step - warmup_steps) / (total_steps - warmup_steps)``,
    ``min_lr_ratio + (1 - min_lr_ratio) · (1 + cos(π · progress)) / 2``, which is 1 at the
    end of warmup and ``min_lr_ratio`` at ``total_steps`` (and stays there afterwards).
    Multiply a peak learning rate by it, e.g. with
    ``LambdaLR(optimizer, lambda s: warmup_cosine(s, 100, 1000, 0.1))``.
    """
    if warmup_steps < 0 or total_steps < warmup_steps:
        raise ValueError(f"need 0 <= warmup_steps ({warmup_steps}) <= total_steps ({total_steps})")
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio}")
    if step < warmup_steps:
        return step / warmup_steps  # linear warmup: 0 at step 0, → 1
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)  # 0 → 1 over the decay
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))  # 1 → 0
    return min_lr_ratio + (1.0 - min_lr_ratio) * cosine
