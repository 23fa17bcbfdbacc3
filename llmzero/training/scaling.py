"""What training a GPT costs, and how its loss falls with size and data.

Part IV's chapter *Scaling* builds each piece of this module step by step and checks it
against a measurement:

- **Compute.** :func:`forward_flops_per_token` counts the floating-point operations of a
  forward pass of :class:`llmzero.models.gpt.GPT` (2 per weight per token, plus the
  attention scores and the language-model head); :func:`training_flops_per_token` adds the
  backward pass, which costs twice the forward (a little more for a fused attention kernel,
  which recomputes the scores); :func:`approx_training_flops` is the familiar rule
  ``C ≈ 6 N D``; :func:`count_training_flops` measures a real training step with PyTorch's
  ``FlopCounterMode``; :func:`uses_fused_attention` tells which attention a model runs.
- **Memory.** :func:`training_state_bytes` gives the bytes that live for the whole run
  (weights, gradients, Adam's two moments); :func:`activation_bytes` the bytes autograd
  keeps from the forward pass for the backward pass, for this package's GPT;
  :func:`measure_activation_bytes` measures them with saved-tensor hooks.
- **Scaling laws.** :func:`fit_scaling_law` fits ``L(N, D) = E + A / N**alpha + B / D**beta``
  (Hoffmann et al., 2022) to the final losses of a sweep and returns a :class:`ScalingLaw`,
  which predicts losses and splits a compute budget into the compute-optimal model size and
  number of tokens; :func:`fit_power_law` fits a plain power law ``y = a * x**b`` by least
  squares on logarithms; :func:`isoflop_minimum` finds the best model size along one
  IsoFLOP curve (Hoffmann et al.'s "approach 2").

Conventions: ``N`` counts parameters, ``D`` training tokens, ``C`` FLOPs (a multiply and
an add count as 2); ``d`` is ``n_embd``, ``L`` ``n_layer``, ``T`` the sequence length,
``V`` the vocabulary size, ``B`` the batch size.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from llmzero.models.gpt import GPTConfig

__all__ = [
    "ScalingLaw",
    "activation_bytes",
    "approx_training_flops",
    "count_training_flops",
    "fit_power_law",
    "fit_scaling_law",
    "forward_flops_per_token",
    "isoflop_minimum",
    "measure_activation_bytes",
    "training_flops_per_token",
    "training_state_bytes",
    "uses_fused_attention",
]


# --------------------------------------------------------------------------------------
# Compute
# --------------------------------------------------------------------------------------


def _sequence_length(config: GPTConfig, seq_len: int | None) -> int:
    seq = config.block_size if seq_len is None else seq_len
    if not 1 <= seq <= config.block_size:
        raise ValueError(
            f"seq_len must be between 1 and the model's block_size ({config.block_size}), "
            f"got {seq}."
        )
    return seq


def forward_flops_per_token(config: GPTConfig, seq_len: int | None = None) -> dict[str, int]:
    """FLOPs of one forward pass of :class:`~llmzero.models.gpt.GPT`, per token, by part.

    Only matrix products are counted (as ``FlopCounterMode`` does): a product of an
    ``(m, k)`` and a ``(k, n)`` matrix costs ``2 m k n``. Per token:

    - ``"weight matrices"``: ``2 * 12 L d**2``, two FLOPs for each weight of the four
      matrices of every block (``c_attn``, attention ``c_proj``, ``c_fc``, MLP ``c_proj``);
    - ``"attention"``: ``4 L T d``, the scores ``q k^T`` and the weighted sum of the values,
      each ``2 T d`` per layer over the **full** ``T x T`` matrix, as the implementation
      computes it (half of it is masked away, so a causal kernel could skip half);
    - ``"LM head"``: ``2 d V``, the product with the (tied) embedding matrix.

    Embedding lookups, LayerNorms, GELU, softmax and biases are left out; they are a few
    operations per activation, not per weight. ``seq_len`` defaults to ``block_size``.
    """
    seq = _sequence_length(config, seq_len)
    d, n_layer = config.n_embd, config.n_layer
    return {
        "weight matrices": 2 * 12 * n_layer * d * d,
        "attention": 4 * n_layer * seq * d,
        "LM head": 2 * d * config.vocab_size,
    }


def training_flops_per_token(
    config: GPTConfig, seq_len: int | None = None, fused_attention: bool = False
) -> int:
    """FLOPs of one training step (forward and backward), per token.

    The backward pass of a product ``Y = X W`` computes ``dX = dY W^T`` and ``dW = X^T dY``,
    two products of the same size as the forward one, so a training step costs three
    forward passes: ``3 * sum(forward_flops_per_token(config, seq_len).values())``.

    With ``fused_attention=True`` (``F.scaled_dot_product_attention``, see
    :func:`uses_fused_attention`) the attention's backward pass first recomputes the
    scores it did not store, five products instead of four: the attention term costs
    ``3.5`` times its forward FLOPs instead of 3, as ``FlopCounterMode`` counts it.
    """
    forward = forward_flops_per_token(config, seq_len)
    attention = forward.pop("attention")
    return 3 * sum(forward.values()) + (7 * attention // 2 if fused_attention else 3 * attention)


def approx_training_flops(n_params: float, n_tokens: float) -> float:
    """The rule of thumb ``C = 6 N D``: 2 FLOPs per parameter per token forward, 4 backward.

    It leaves out the attention scores and (if ``N`` excludes the embeddings) the LM head,
    so it underestimates small models with long contexts or large vocabularies; compare
    :func:`training_flops_per_token`.
    """
    if n_params < 0 or n_tokens < 0:
        raise ValueError(f"n_params and n_tokens must be >= 0, got {n_params}, {n_tokens}.")
    return 6.0 * n_params * n_tokens


def _cpu_attention_flop_formulas() -> dict[Any, Any]:
    """``FlopCounterMode`` formulas for the CPU kernel of fused attention, if it lacks them.

    PyTorch's counter knows the CUDA kernels behind ``F.scaled_dot_product_attention`` but
    (as of torch 2.13) not the CPU one, which it would count as 0 FLOPs. We give the CPU
    kernel and its backward the counter's own formulas for the others (the full ``T x T``
    products, as if nothing were masked).
    """
    from torch.utils import flop_counter

    def forward(query: Any, key: Any, value: Any, *args: Any, **kwargs: Any) -> int:
        return flop_counter.sdpa_flop_count(query, key, value)  # arguments are shapes

    def backward(grad: Any, query: Any, key: Any, value: Any, *args: Any, **kwargs: Any) -> int:
        return flop_counter.sdpa_backward_flop_count(grad, query, key, value)

    mapping: dict[Any, Any] = {}
    for name, formula in (
        ("_scaled_dot_product_flash_attention_for_cpu", forward),
        ("_scaled_dot_product_flash_attention_for_cpu_backward", backward),
    ):
        op = getattr(torch.ops.aten, name, None)
        if op is not None and op not in flop_counter.flop_registry:
            mapping[op] = formula
    return mapping


def count_training_flops(model: nn.Module, idx: Tensor, targets: Tensor) -> dict[str, int]:
    """Measure the FLOPs of one forward and one backward pass with ``FlopCounterMode``.

    ``model(idx, targets)`` must return ``(logits, loss)`` like
    :class:`~llmzero.models.gpt.GPT`. Returns ``{"forward": ..., "backward": ...}`` for the
    whole batch. The gradients the backward pass leaves behind are cleared again
    (``model.zero_grad(set_to_none=True)``), so the model is as it was. Fused attention on
    a CPU is counted too (PyTorch's counter alone would count it as 0).
    """
    formulas = _cpu_attention_flop_formulas()
    with FlopCounterMode(display=False, custom_mapping=formulas) as forward_counter:
        _, loss = model(idx, targets)
    if loss is None:
        raise ValueError("model(idx, targets) returned no loss; pass the targets.")
    with FlopCounterMode(display=False, custom_mapping=formulas) as backward_counter:
        loss.backward()
    model.zero_grad(set_to_none=True)
    return {
        "forward": forward_counter.get_total_flops(),
        "backward": backward_counter.get_total_flops(),
    }


# --------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------


def training_state_bytes(n_params: int, mixed_precision: bool = False) -> dict[str, int]:
    """Bytes of the state that lives for the whole run, for Adam or AdamW.

    In float32 (``mixed_precision=False``): weights 4, gradients 4 and Adam's two moments
    ``m`` and ``v`` 8 bytes per parameter, 16 in all. With mixed precision as Rajbhandari
    et al. (2020) count it: 16-bit weights (2) and gradients (2), and an optimizer state of
    12 bytes (a float32 master copy of the weights plus ``m`` and ``v``), again 16 in all.
    Activations come on top (:func:`activation_bytes`).
    """
    if n_params < 0:
        raise ValueError(f"n_params must be >= 0, got {n_params}.")
    weight, gradient, optimizer = (2, 2, 12) if mixed_precision else (4, 4, 8)
    return {
        "weights": weight * n_params,
        "gradients": gradient * n_params,
        "optimizer state": optimizer * n_params,
    }


def activation_bytes(
    config: GPTConfig,
    batch_size: int,
    seq_len: int | None = None,
    bytes_per_value: int = 4,
    fused_attention: bool = False,
) -> dict[str, int]:
    """Bytes autograd saves in a training forward pass of :class:`~llmzero.models.gpt.GPT`.

    Counted tensor by tensor (float32 by default), per token:

    - each block keeps ``16 d + 4`` values for everything but the attention weights: the
      inputs of both LayerNorms and of the four linear layers (``d, d, d, d`` and ``4d``
      for the MLP's second layer), the input of GELU (``4d``), the queries, keys and values
      (``3d``) and the two LayerNorms' means and inverse deviations (4);
    - plus, with attention written out step by step (``fused_attention=False``, Part III's
      version), the attention weights: ``H T`` values, one row of the ``T x T`` matrix per
      head; with PyTorch's fused kernel (``fused_attention=True``) only ``H`` values, the
      log-sum-exp of each row, from which the backward pass recomputes the weights;
    - after the blocks, the final LayerNorm's input, output and statistics (``2 d + 2``)
      and the log-softmax output of the loss (``V``);
    - the token ids and targets (8 bytes each, int64).

    Per batch come the positions (``8 T`` bytes), one scalar of the loss and, step by
    step only, each block's boolean causal mask (``T**2`` bytes). The sum equals what
    :func:`measure_activation_bytes` measures on a CPU (the tests check both kinds of
    attention; a GPU kernel may keep a few more bytes of state). The formula assumes
    ``dropout = 0``, as the chapter's models use; dropout would add a mask per dropout
    layer.
    """
    if config.dropout != 0.0:
        raise ValueError(
            "activation_bytes counts a model without dropout (dropout layers save a mask "
            f"each); got dropout={config.dropout}. Use GPTConfig(dropout=0.0)."
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    seq = _sequence_length(config, seq_len)
    tokens = batch_size * seq
    d, n_layer, n_head = config.n_embd, config.n_layer, config.n_head
    per_row = n_head if fused_attention else n_head * seq  # attention values per token
    masks = 0 if fused_attention else n_layer * seq * seq
    return {
        "blocks": tokens * n_layer * (16 * d + per_row + 4) * bytes_per_value,
        "final LayerNorm": tokens * (2 * d + 2) * bytes_per_value,
        "log-softmax of the logits": tokens * config.vocab_size * bytes_per_value,
        "token ids, positions, masks": 16 * tokens + 8 * seq + masks,
        "loss": bytes_per_value,
    }


def uses_fused_attention(model: nn.Module) -> bool:
    """Whether ``model``'s forward pass calls ``torch.nn.functional.scaled_dot_product_attention``.

    PyTorch's fused attention kernel never stores the ``T x T`` attention weights, which
    changes the activation memory and the FLOPs of the backward pass
    (:func:`activation_bytes`, :func:`training_flops_per_token`). We run one token through
    the model under a ``torch.overrides.TorchFunctionMode`` that watches for that function.
    """
    from torch.nn import functional
    from torch.overrides import TorchFunctionMode

    class Watch(TorchFunctionMode):
        called = False

        def __torch_function__(
            self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None
        ) -> Any:
            if func is functional.scaled_dot_product_attention:
                self.called = True
            return func(*args, **(kwargs or {}))

    device = next(model.parameters()).device
    with Watch() as watch, torch.no_grad():
        model(torch.zeros(1, 1, dtype=torch.long, device=device))
    return watch.called


def measure_activation_bytes(model: nn.Module, idx: Tensor, targets: Tensor) -> int:
    """Bytes of the tensors autograd saves for the backward pass of ``model(idx, targets)``.

    PyTorch calls the *pack* hook of :func:`torch.autograd.graph.saved_tensors_hooks` once
    for every tensor an operation saves for its backward pass. We record the memory block
    (storage) behind each one, so that several views of one tensor count once, and leave
    out the model's parameters and buffers, which are saved too but exist anyway. Tensors
    that share memory count once: passing the same tensor as ``idx`` and ``targets``
    measures 8 bytes per token less than :func:`activation_bytes`. The forward pass runs
    with gradients on; nothing is changed.
    """
    already_there = {t.untyped_storage().data_ptr() for t in model.parameters()}
    already_there |= {t.untyped_storage().data_ptr() for t in model.buffers()}
    saved: dict[int, int] = {}  # storage address -> bytes

    def pack(tensor: Tensor) -> Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in already_there:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(idx, targets)
    return sum(saved.values())


# --------------------------------------------------------------------------------------
# Scaling laws
# --------------------------------------------------------------------------------------


def _positive_array(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}.")
    if not np.all(np.isfinite(array)) or np.any(array <= 0):
        raise ValueError(f"{name} must be finite and positive (it is fitted on logarithms).")
    return array


def fit_power_law(
    x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray
) -> tuple[float, float, float]:
    """Fit ``y = a * x**b`` by least squares on ``log y = log a + b log x``.

    Returns ``(a, b, b_stderr)``: the coefficient, the exponent and the exponent's standard
    error from the residuals (``nan`` with only two points, where the line fits exactly).
    Needs at least two distinct positive ``x`` and positive ``y``.
    """
    log_x = np.log(_positive_array(x, "x"))
    log_y = np.log(_positive_array(y, "y"))
    if len(log_x) != len(log_y):
        raise ValueError(f"x and y must have the same length, got {len(log_x)} and {len(log_y)}.")
    if len(np.unique(log_x)) < 2:
        raise ValueError("need at least two distinct x values to fit a power law.")
    design = np.stack([np.ones_like(log_x), log_x], axis=1)  # (n, 2)
    (log_a, b), *_ = np.linalg.lstsq(design, log_y, rcond=None)
    dof = len(log_x) - 2
    if dof == 0:
        return float(np.exp(log_a)), float(b), math.nan
    residuals = log_y - design @ np.array([log_a, b])
    sigma2 = residuals @ residuals / dof
    covariance = sigma2 * np.linalg.inv(design.T @ design)
    return float(np.exp(log_a)), float(b), float(np.sqrt(covariance[1, 1]))


@dataclass(frozen=True)
class ScalingLaw:
    """``L(N, D) = E + A / N**alpha + B / D**beta`` (Hoffmann et al., 2022, eq. 2).

    ``E`` is the loss no model reaches on this data (the *irreducible* loss); ``A / N**alpha``
    is what a finite model gives away, ``B / D**beta`` what finite data gives away.
    :func:`fit_scaling_law` returns one with the standard errors of the fitted
    parameters (``stderr``; ``E``, ``A`` and ``B`` are fitted as logarithms, so theirs are
    the standard errors of ``log E``, ``log A`` and ``log B``).
    """

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    stderr: dict[str, float] = field(default_factory=dict)
    #: Root-mean-square of ``log(predicted) - log(observed)`` over the fitted points.
    rms_log_residual: float = math.nan

    def loss(self, n_params: float | np.ndarray, n_tokens: float | np.ndarray) -> np.ndarray:
        """The predicted loss of a model with ``n_params`` parameters after ``n_tokens`` tokens."""
        n = np.asarray(n_params, dtype=float)
        d = np.asarray(n_tokens, dtype=float)
        return self.E + self.A / n**self.alpha + self.B / d**self.beta

    def compute_optimal(
        self, compute: float | np.ndarray, flops_per_param_token: float = 6.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``(N, D)`` with the lowest loss for ``compute`` FLOPs, where ``C = k N D``.

        Minimising ``L(N, C / (k N))`` over ``N`` gives (Hoffmann et al., 2022, eq. 4)
        ``N_opt = G (C / k)**(beta / (alpha + beta))`` with
        ``G = (alpha A / (beta B))**(1 / (alpha + beta))``, and ``D_opt = C / (k N_opt)``.
        ``k = flops_per_param_token`` is 6 for the usual ``C = 6 N D``.
        """
        c = np.asarray(compute, dtype=float)
        if np.any(c <= 0) or flops_per_param_token <= 0:
            raise ValueError("compute and flops_per_param_token must be positive.")
        exponent_sum = self.alpha + self.beta
        scale = (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / exponent_sum)
        n_opt = scale * (c / flops_per_param_token) ** (self.beta / exponent_sum)
        return n_opt, c / (flops_per_param_token * n_opt)


def _log_loss_model(
    theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``log L`` for ``theta = (log E, log A, log B, alpha, beta)`` and its Jacobian.

    ``log L = logsumexp(log E, log A - alpha log N, log B - beta log D)``, computed stably;
    the derivative of a log-sum-exp is the softmax of its terms, which gives the Jacobian
    (one row per run, one column per parameter).
    """
    log_e, log_a, log_b, alpha, beta = theta
    terms = np.stack([np.full_like(log_n, log_e), log_a - alpha * log_n, log_b - beta * log_d])
    top = terms.max(axis=0)
    weights = np.exp(terms - top)  # (3, runs)
    total = weights.sum(axis=0)
    weights /= total  # softmax over the three terms
    jacobian = np.stack(
        [weights[0], weights[1], weights[2], -weights[1] * log_n, -weights[2] * log_d], axis=1
    )  # (runs, 5)
    return top + np.log(total), jacobian


def _grid_starts(
    n_params: np.ndarray,
    n_tokens: np.ndarray,
    losses: np.ndarray,
    fixed_E: float | None,
    count: int = 6,
) -> list[ScalingLaw]:
    """Starting points for :func:`fit_scaling_law`: good, well-separated ``(alpha, beta)``.

    For fixed exponents the law is linear in ``(E, A, B)``; dividing each row by the
    observed loss makes the residuals relative, which is what the log residuals are to
    first order, and ``scipy.optimize.nnls`` keeps the coefficients non-negative. The
    objective has several valleys, so we return the best ``count`` grid points that are at
    least 0.15 apart in both exponents, best first.
    """
    from scipy.optimize import nnls

    grid = np.linspace(0.02, 1.5, 38)
    target = np.ones_like(losses) if fixed_E is None else 1.0 - fixed_E / losses
    scored = []
    for alpha, beta in itertools.product(grid, grid):
        columns = [n_params**-alpha, n_tokens**-beta]
        if fixed_E is None:
            columns.insert(0, np.ones_like(losses))
        design = np.stack(columns, axis=1) / losses[:, None]  # (runs, 2 or 3)
        coefficients, residual_norm = nnls(design, target)
        scored.append((residual_norm, alpha, beta, coefficients))
    scored.sort(key=lambda item: item[0])
    tiny = 1e-3 * float(losses.min())  # a zero coefficient would have no logarithm
    starts: list[ScalingLaw] = []
    for _, alpha, beta, coefficients in scored:
        if any(abs(alpha - s.alpha) < 0.15 and abs(beta - s.beta) < 0.15 for s in starts):
            continue
        if fixed_E is None:
            e_coef, a_coef, b_coef = coefficients
        else:
            (a_coef, b_coef), e_coef = coefficients, fixed_E
        law = ScalingLaw(E=max(e_coef, tiny), A=max(a_coef, tiny), B=max(b_coef, tiny),
                         alpha=alpha, beta=beta)  # fmt: skip
        starts.append(law)
        if len(starts) == count:
            break
    return starts


def fit_scaling_law(
    n_params: Sequence[float] | np.ndarray,
    n_tokens: Sequence[float] | np.ndarray,
    losses: Sequence[float] | np.ndarray,
    *,
    fixed_E: float | None = None,
    start: ScalingLaw | None = None,
) -> ScalingLaw:
    """Fit :class:`ScalingLaw` to final losses ``losses[i]`` of runs ``(n_params[i], n_tokens[i])``.

    As Hoffmann et al. (2022) do, the residuals are taken between *logarithms* of predicted
    and observed losses, and the parameters are ``(log E, log A, log B, alpha, beta)`` so
    that ``E``, ``A`` and ``B`` stay positive. The least-squares problem has several local
    minima. We take the best well-separated points of a grid over ``(alpha, beta)``, where
    the law is linear in ``E``, ``A`` and ``B`` and those follow from a non-negative
    least-squares solve (residuals divided by the loss, close to log residuals), polish each
    with ``scipy.optimize.least_squares`` on the exact objective (exact Jacobian, exponents
    bounded to ``[0, 3]``, ``E`` below the smallest loss) and keep the best. Pass ``start``
    (e.g. an earlier fit, when refitting resampled data) to polish that point only.
    ``fixed_E`` holds the irreducible loss at a given value and fits the other four.

    Standard errors come from the Jacobian at the solution, ``s**2 (J^T J)^-1`` with ``s**2``
    the residual variance; they describe the scatter of *these* points around the law, not
    the run-to-run noise of training or how the law extrapolates, and they are unreliable
    when parameters trade off against each other (the chapter shows such a case). Fitting
    ``k`` free parameters needs at least ``k + 1`` runs.
    """
    from scipy.optimize import least_squares

    log_n = np.log(_positive_array(n_params, "n_params"))
    log_d = np.log(_positive_array(n_tokens, "n_tokens"))
    log_l = np.log(_positive_array(losses, "losses"))
    if not len(log_n) == len(log_d) == len(log_l):
        raise ValueError("n_params, n_tokens and losses must have the same length.")
    if fixed_E is not None and not 0 < fixed_E < np.exp(log_l).min():
        raise ValueError(
            f"fixed_E must be positive and below the smallest loss (no model beats the "
            f"irreducible loss), got {fixed_E}."
        )
    n_free = 5 if fixed_E is None else 4
    if len(log_l) <= n_free:
        raise ValueError(
            f"fitting {n_free} parameters needs at least {n_free + 1} runs, got {len(log_l)}."
        )

    def full(free: np.ndarray) -> np.ndarray:  # free parameters -> (log E, log A, ...)
        return free if fixed_E is None else np.concatenate([[math.log(fixed_E)], free])

    def residuals(free: np.ndarray) -> np.ndarray:
        return _log_loss_model(full(free), log_n, log_d)[0] - log_l

    def jacobian(free: np.ndarray) -> np.ndarray:
        return _log_loss_model(full(free), log_n, log_d)[1][:, 5 - n_free :]

    smallest = float(np.min(log_l))
    # E lies below every observed loss (and above e**-8 of the smallest, i.e. "about 0");
    # without these bounds a fit that wants E = 0 runs log E off towards minus infinity.
    lower = np.array([smallest - 8.0, -np.inf, -np.inf, 0.0, 0.0])
    upper = np.array([smallest, np.inf, np.inf, 3.0, 3.0])
    if start is None:
        starts = _grid_starts(np.exp(log_n), np.exp(log_d), np.exp(log_l), fixed_E)
    else:
        starts = [start]
    free = slice(5 - n_free, 5)
    best = None
    for law in starts:
        theta0 = np.array([math.log(law.E), math.log(law.A), math.log(law.B), law.alpha, law.beta])
        theta0 = np.clip(theta0, lower + 1e-9, upper - 1e-9)
        result = least_squares(
            residuals, theta0[free], jac=jacobian, bounds=(lower[free], upper[free])
        )
        if best is None or result.cost < best.cost:
            best = result
    assert best is not None  # there is at least one start
    dof = len(log_l) - n_free
    covariance = (2.0 * best.cost / dof) * np.linalg.pinv(best.jac.T @ best.jac)
    names = ("log E", "log A", "log B", "alpha", "beta")[5 - n_free :]
    stderr = {name: float(np.sqrt(max(covariance[i, i], 0.0))) for i, name in enumerate(names)}
    theta = full(best.x)
    return ScalingLaw(
        E=float(np.exp(theta[0])),
        A=float(np.exp(theta[1])),
        B=float(np.exp(theta[2])),
        alpha=float(theta[3]),
        beta=float(theta[4]),
        stderr=stderr,
        rms_log_residual=float(np.sqrt(2.0 * best.cost / len(log_l))),
    )


def isoflop_minimum(
    n_params: Sequence[float] | np.ndarray, losses: Sequence[float] | np.ndarray
) -> float:
    """The model size with the lowest loss along one IsoFLOP curve (equal compute per run).

    Fits a parabola to loss against ``log N`` and returns ``N`` at its vertex (Hoffmann et
    al., 2022, approach 2). Needs at least three sizes; raises ``ValueError`` if the
    parabola has no minimum (the losses do not curve upwards), which means the sweep does
    not bracket the optimum: add smaller or larger models.
    """
    log_n = np.log(_positive_array(n_params, "n_params"))
    loss = np.asarray(losses, dtype=float)
    if len(log_n) != len(loss):
        raise ValueError("n_params and losses must have the same length.")
    if len(np.unique(log_n)) < 3:
        raise ValueError("an IsoFLOP minimum needs at least three different model sizes.")
    curvature, slope, _ = np.polyfit(log_n, loss, 2)
    if curvature <= 0:
        raise ValueError(
            "the losses do not curve upwards in log N, so this IsoFLOP curve has no minimum "
            "inside the sweep: add smaller or larger models around the best one."
        )
    return float(np.exp(-slope / (2.0 * curvature)))
