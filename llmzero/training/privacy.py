"""Differentially private SGD (Abadi et al., 2016) from scratch, with ``torch.func``.

One DP-SGD step computes every example's gradient (``vmap`` over ``grad``), clips each to an
L2 norm of at most ``max_norm``, sums them, adds Gaussian noise of standard deviation
``noise_multiplier * max_norm`` and divides by the batch size. The privacy budget (epsilon)
of a whole run is then computed by an accountant (e.g. the RDP or PRV accountants of Opacus);
this module does not compute it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call, grad, vmap


def per_example_gradients(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """The gradient of ``loss_fn(model(x), y)`` for each example, by parameter name.

    Each value has shape ``(batch, *parameter.shape)``. ``loss_fn`` receives a batch of one.
    """
    params = {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}

    def loss_of_one(parameters, x, y):
        prediction = functional_call(model, parameters, (x.unsqueeze(0),))
        return loss_fn(prediction, y.unsqueeze(0))

    return vmap(grad(loss_of_one), in_dims=(None, 0, 0))(params, inputs, targets)


def clip_per_example(
    gradients: dict[str, torch.Tensor], max_norm: float
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Scale each example's gradient (over all parameters) to an L2 norm of at most ``max_norm``.

    Returns the clipped gradients and the per-example norms before clipping, ``(batch,)``.
    """
    if max_norm <= 0:
        raise ValueError(f"max_norm must be positive, got {max_norm}.")
    batch = next(iter(gradients.values())).shape[0]
    squared = sum(g.reshape(batch, -1).pow(2).sum(dim=1) for g in gradients.values())
    norms = squared.sqrt()  # (batch,)
    scale = (max_norm / (norms + 1e-12)).clamp(max=1.0)  # (batch,)
    clipped = {name: g * scale.view(-1, *([1] * (g.dim() - 1))) for name, g in gradients.items()}
    return clipped, norms


def dp_sgd_step(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    learning_rate: float,
    max_norm: float,
    noise_multiplier: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One DP-SGD update of ``model`` in place; returns the per-example gradient norms.

    The update is ``-lr * (sum of clipped gradients + N(0, (noise_multiplier*max_norm)^2)) / B``.
    """
    if noise_multiplier < 0:
        raise ValueError(f"noise_multiplier must be >= 0, got {noise_multiplier}.")
    clipped, norms = clip_per_example(
        per_example_gradients(model, loss_fn, inputs, targets), max_norm
    )
    batch = inputs.shape[0]
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name not in clipped:
                continue
            noise = torch.randn(
                parameter.shape, generator=generator, device="cpu", dtype=parameter.dtype
            ).to(parameter.device)
            noisy_sum = clipped[name].sum(dim=0) + noise_multiplier * max_norm * noise
            parameter -= learning_rate * noisy_sum / batch
    return norms
