"""A sparse mixture-of-experts (MoE) feed-forward layer, and a GPT that uses it.

Part VII's chapter *Mixture of experts* builds every piece of this file step by step and
checks it (a one-expert MoE equals the dense MLP; the vectorised dispatch equals a loop
over tokens; the balancing loss equals Hugging Face's Mixtral one up to its factor
``top_k``). The design follows the Switch Transformer (Fedus et al., 2022) and Mixtral
(Jiang et al., 2024):

- a **router**, one linear map ``n_embd -> n_experts`` whose softmax gives each token a
  probability for every expert; each token goes to its ``top_k`` most probable experts;
- ``n_experts`` **experts**, each a GPT MLP (``n_embd -> expert_hidden -> n_embd`` with
  GELU), stored as stacked weight tensors so that all experts run as one batched matmul;
- a **capacity**: each expert takes at most ``ceil(capacity_factor * N * top_k /
  n_experts)`` of the ``N`` tokens of a batch; the assignments past that are **dropped**
  (the token's output from that expert is zero, so only the residual stream carries it);
- the Switch Transformer's **load-balancing loss** ``n_experts * sum_i f_i * P_i``, with
  ``f_i`` the share of the ``N * top_k`` assignments that chose expert ``i`` and ``P_i`` the
  mean router probability of expert ``i``; it is 1 when routing is uniform.

Usage::

    from llmzero.models.moe import GPTMoE, MoEConfig, MoELayer

    layer = MoELayer(MoEConfig(n_embd=64, n_experts=8, top_k=2))
    y, stats = layer(x)                 # x, y: (B, T, C); stats.aux_loss is a scalar
    model = GPTMoE(gpt_config, MoEConfig(n_embd=gpt_config.n_embd, n_experts=8, top_k=2))
    logits, lm_loss = model(idx, targets)
    loss = lm_loss + 0.01 * model.aux_loss()   # the balancing loss of the last forward

Shapes in comments use ``N`` (tokens, ``B * T``), ``C`` (``n_embd``), ``E``
(``n_experts``), ``k`` (``top_k``), ``H`` (``expert_hidden``) and ``S`` (the capacity,
slots per expert).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmzero.models.gpt import GPT, MLP, GPTConfig

__all__ = [
    "GPTMoE",
    "MoEConfig",
    "MoELayer",
    "MoEStats",
    "Router",
    "expert_capacity",
    "load_balancing_loss",
    "moe_parameter_counts",
    "routing_entropy",
]


@dataclass
class MoEConfig:
    """The hyper-parameters of a mixture-of-experts feed-forward layer."""

    #: The width of the residual stream (the tokens' vectors).
    n_embd: int
    #: How many experts the layer has.
    n_experts: int = 8
    #: How many experts each token is sent to (1 in Switch, 2 in Mixtral).
    top_k: int = 2
    #: The hidden width of each expert; ``None`` means ``4 * n_embd // top_k``, so that the
    #: ``top_k`` experts a token uses hold as many weights as GPT's dense MLP.
    expert_hidden: int | None = None
    #: Slots per expert as a multiple of the fair share ``N * top_k / n_experts``;
    #: ``None`` means no limit (no token is ever dropped).
    capacity_factor: float | None = None
    #: Whether a token's ``top_k`` gate values are renormalised to sum to 1 (Mixtral). With
    #: ``top_k=1`` that makes every gate 1 and the router gets no gradient from the language
    #: model loss, so Switch (top-1) keeps the raw probability: set it ``False`` there.
    normalize_top_k: bool = True
    #: Whether the experts' Linear layers have biases (GPT-2's MLP does).
    bias: bool = True
    #: Which GELU the experts use, ``"tanh"`` (GPT-2) or ``"none"`` (exact).
    gelu_approximate: str = "tanh"
    #: Dropout on the layer's output, as on GPT's MLP.
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("n_embd", "n_experts", "top_k"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.top_k > self.n_experts:
            raise ValueError(
                f"top_k ({self.top_k}) cannot exceed n_experts ({self.n_experts}): a token "
                "is sent to top_k different experts."
            )
        if self.expert_hidden is None:
            self.expert_hidden = max(1, 4 * self.n_embd // self.top_k)
        if self.expert_hidden < 1:
            raise ValueError(f"expert_hidden must be at least 1, got {self.expert_hidden}.")
        if self.capacity_factor is not None and self.capacity_factor <= 0:
            raise ValueError(
                f"capacity_factor must be positive (or None for no limit), "
                f"got {self.capacity_factor}."
            )
        if self.gelu_approximate not in ("tanh", "none"):
            raise ValueError(
                f"gelu_approximate must be 'tanh' or 'none', got {self.gelu_approximate!r}."
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")


@dataclass
class MoEStats:
    """What one forward pass of a :class:`MoELayer` reports about its routing."""

    #: The load-balancing loss ``E * sum_i f_i * P_i`` (a scalar with gradient).
    aux_loss: Tensor
    #: The share ``f`` of the ``N * k`` assignments that chose each expert, ``(E,)``.
    expert_fraction: Tensor
    #: The mean router probability ``P`` of each expert over the tokens, ``(E,)``.
    router_prob: Tensor
    #: The share of the ``N * k`` assignments dropped for lack of capacity (0 without a limit).
    dropped_fraction: float
    #: The slots per expert used in this pass.
    capacity: int


def expert_capacity(
    n_tokens: int, n_experts: int, top_k: int, capacity_factor: float | None
) -> int:
    """Slots per expert: ``ceil(capacity_factor * n_tokens * top_k / n_experts)``.

    ``None`` means no limit; a token picks an expert at most once, so ``n_tokens`` slots
    can never overflow. Raises ``ValueError`` on a non-positive factor.
    """
    if capacity_factor is None:
        return n_tokens
    if capacity_factor <= 0:
        raise ValueError(f"capacity_factor must be positive, got {capacity_factor}.")
    return min(n_tokens, math.ceil(capacity_factor * n_tokens * top_k / n_experts))


def load_balancing_loss(router_probs: Tensor, expert_index: Tensor) -> Tensor:
    """The Switch Transformer's auxiliary loss ``E * sum_i f_i * P_i``.

    ``router_probs``: ``(N, E)`` softmax outputs of the router; ``expert_index``: ``(N, k)``
    the experts each token chose. ``f_i`` (the share of assignments to expert ``i``) is a
    count and carries no gradient; ``P_i`` (the mean probability) does, so the gradient
    pushes probability away from overloaded experts. The loss is 1 for uniform routing and
    reaches ``E`` when every token picks the same expert with probability 1. (Hugging
    Face's Mixtral ``load_balancing_loss_func`` counts each of the ``k`` choices as its own
    share and returns ``k`` times this value.)
    """
    if router_probs.dim() != 2 or expert_index.dim() != 2:
        raise ValueError(
            "router_probs must be (N, E) and expert_index (N, k), got "
            f"{tuple(router_probs.shape)} and {tuple(expert_index.shape)}."
        )
    n_experts = router_probs.shape[1]
    counts = torch.bincount(expert_index.reshape(-1), minlength=n_experts)  # (E,)
    fraction = counts.to(router_probs.dtype) / expert_index.numel()  # f: (E,), sums to 1
    mean_prob = router_probs.mean(dim=0)  # P: (E,), sums to 1
    return n_experts * (fraction * mean_prob).sum()


def routing_entropy(expert_fraction: Tensor) -> float:
    """The entropy (in bits) of the experts' share of tokens; ``log2(E)`` is perfect balance."""
    p = expert_fraction[expert_fraction > 0]
    return float(-(p * p.log2()).sum())


class Router(nn.Module):
    """A linear router: softmax scores over the experts, each token's ``top_k`` best."""

    def __init__(self, config: MoEConfig) -> None:
        super().__init__()
        self.top_k = config.top_k
        self.normalize_top_k = config.normalize_top_k
        self.gate = nn.Linear(config.n_embd, config.n_experts, bias=False)
        nn.init.normal_(self.gate.weight, std=0.02)  # GPT's init: routing starts near uniform

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``x``: ``(N, C)``. Returns the probabilities ``(N, E)``, the chosen experts
        ``(N, k)`` (most probable first) and their gate weights ``(N, k)``."""
        probs = F.softmax(self.gate(x), dim=-1)  # (N, E)
        gate_weights, expert_index = probs.topk(self.top_k, dim=-1)  # (N, k) each
        if self.normalize_top_k:
            gate_weights = gate_weights / gate_weights.sum(dim=-1, keepdim=True)
        return probs, expert_index, gate_weights


class MoELayer(nn.Module):
    """A mixture-of-experts feed-forward layer: route, dispatch to experts, combine.

    ``forward(x)`` takes ``(B, T, C)`` (or ``(N, C)``) and returns the output of the same
    shape and a :class:`MoEStats`. The experts' weights are stacked: ``w_in`` is ``(E, C,
    H)`` and ``w_out`` ``(E, H, C)``, so that expert ``e`` computes ``gelu(x @ w_in[e] +
    b_in[e]) @ w_out[e] + b_out[e]``, GPT's MLP with its own weights.
    """

    def __init__(self, config: MoEConfig) -> None:
        super().__init__()
        self.config = config
        n_exp, width, hidden = config.n_experts, config.n_embd, config.expert_hidden
        assert hidden is not None  # set by MoEConfig.__post_init__
        self.capacity_factor = config.capacity_factor  # may be changed after training
        self.router = Router(config)
        self.w_in = nn.Parameter(torch.randn(n_exp, width, hidden) * 0.02)  # (E, C, H)
        self.w_out = nn.Parameter(torch.randn(n_exp, hidden, width) * 0.02)  # (E, H, C)
        self.b_in = nn.Parameter(torch.zeros(n_exp, hidden)) if config.bias else None
        self.b_out = nn.Parameter(torch.zeros(n_exp, width)) if config.bias else None
        self.gelu = nn.GELU(approximate=config.gelu_approximate)
        self.dropout = nn.Dropout(config.dropout)

    def expert(self, e: int, x: Tensor) -> Tensor:
        """Expert ``e`` on its own: ``(n, C) -> (n, C)`` (for checks and loops)."""
        hidden = x @ self.w_in[e]  # (n, H)
        if self.b_in is not None:
            hidden = hidden + self.b_in[e]
        out = self.gelu(hidden) @ self.w_out[e]  # (n, C)
        return out + self.b_out[e] if self.b_out is not None else out

    def load_dense_mlp(self, mlp: MLP) -> None:
        """Copy a GPT :class:`~llmzero.models.gpt.MLP` into every expert (in place).

        With one expert this layer then computes exactly the MLP's function. Raises
        ``ValueError`` if the widths or the biases do not match."""
        c_fc, c_proj = mlp.c_fc, mlp.c_proj
        if tuple(c_fc.weight.shape) != (self.w_in.shape[2], self.w_in.shape[1]):
            raise ValueError(
                f"MLP c_fc is {tuple(c_fc.weight.shape)}, the experts need "
                f"({self.w_in.shape[2]}, {self.w_in.shape[1]}): set expert_hidden to the "
                "MLP's width."
            )
        if (c_fc.bias is None) != (self.b_in is None):
            raise ValueError("the MLP and the experts must both have biases or both not.")
        with torch.no_grad():
            self.w_in.copy_(c_fc.weight.t().expand_as(self.w_in))
            self.w_out.copy_(c_proj.weight.t().expand_as(self.w_out))
            if self.b_in is not None and self.b_out is not None:
                self.b_in.copy_(c_fc.bias.expand_as(self.b_in))
                self.b_out.copy_(c_proj.bias.expand_as(self.b_out))

    def forward(self, x: Tensor) -> tuple[Tensor, MoEStats]:
        shape = x.shape
        if x.dim() not in (2, 3) or shape[-1] != self.config.n_embd:
            raise ValueError(
                f"x must have shape (batch, seq, {self.config.n_embd}) or "
                f"(tokens, {self.config.n_embd}), got {tuple(shape)}."
            )
        tokens = x.reshape(-1, shape[-1])  # (N, C)
        n_tokens, n_exp, top_k = tokens.shape[0], self.config.n_experts, self.config.top_k
        probs, expert_index, gate_weights = self.router(tokens)  # (N, E), (N, k), (N, k)

        # The N * k assignments, first choices of all tokens before any second choice (so
        # a full expert drops second choices first), and each one's place in its queue.
        flat_expert = expert_index.t().reshape(-1)  # (k N,)
        flat_token = torch.arange(n_tokens, device=x.device).repeat(top_k)  # (k N,)
        flat_gate = gate_weights.t().reshape(-1)  # (k N,)
        one_hot = F.one_hot(flat_expert, n_exp)  # (k N, E)
        position = (one_hot.cumsum(dim=0) * one_hot).sum(dim=1) - 1  # (k N,): 0, 1, ...
        capacity = expert_capacity(n_tokens, n_exp, top_k, self.capacity_factor)
        kept = position < capacity  # (k N,) bool: False = dropped
        slot_expert, slot, slot_token = flat_expert[kept], position[kept], flat_token[kept]

        # Dispatch: every expert gets a (S, C) buffer of its tokens; run all at once.
        buffer = tokens.new_zeros(n_exp, capacity, shape[-1])  # (E, S, C)
        buffer[slot_expert, slot] = tokens[slot_token]
        hidden = torch.bmm(buffer, self.w_in)  # (E, S, H)
        if self.b_in is not None:
            hidden = hidden + self.b_in[:, None, :]
        expert_out = torch.bmm(self.gelu(hidden), self.w_out)  # (E, S, C)
        if self.b_out is not None:
            expert_out = expert_out + self.b_out[:, None, :]

        # Combine: each token sums its experts' outputs weighted by its gates.
        weighted = expert_out[slot_expert, slot] * flat_gate[kept, None]  # (kept, C)
        out = tokens.new_zeros(tokens.shape).index_add_(0, slot_token, weighted)  # (N, C)
        stats = MoEStats(
            aux_loss=load_balancing_loss(probs, expert_index),
            expert_fraction=one_hot.sum(dim=0).float().detach() / one_hot.shape[0],
            router_prob=probs.mean(dim=0).detach(),
            dropped_fraction=float(1.0 - kept.float().mean()),
            capacity=capacity,
        )
        return self.dropout(out).reshape(shape), stats


class _MoEFeedForward(nn.Module):
    """A :class:`MoELayer` in the place of GPT's MLP: returns only the output, keeps the
    stats of its last forward in ``last_stats``."""

    def __init__(self, config: MoEConfig) -> None:
        super().__init__()
        self.moe = MoELayer(config)
        self.last_stats: MoEStats | None = None

    def forward(self, x: Tensor) -> Tensor:
        out, self.last_stats = self.moe(x)
        return out


class GPTMoE(GPT):
    """:class:`~llmzero.models.gpt.GPT` with every block's MLP replaced by a :class:`MoELayer`.

    ``forward`` returns ``(logits, lm_loss)`` exactly as GPT does (so evaluation code works
    unchanged); :meth:`aux_loss` is the mean load-balancing loss of the layers in the last
    forward, to be added to the language-model loss with a small coefficient while
    training, and :meth:`routing_stats` their :class:`MoEStats`.
    """

    def __init__(self, config: GPTConfig, moe_config: MoEConfig) -> None:
        if moe_config.n_embd != config.n_embd:
            raise ValueError(
                f"moe_config.n_embd ({moe_config.n_embd}) must equal config.n_embd "
                f"({config.n_embd})."
            )
        super().__init__(config)
        self.moe_config = moe_config
        for block in self.transformer.h:
            block.mlp = _MoEFeedForward(moe_config)
            # GPT-2's scaled init for the layers that write into the residual stream.
            nn.init.normal_(block.mlp.moe.w_out, std=0.02 / math.sqrt(2 * config.n_layer))

    def moe_layers(self) -> list[MoELayer]:
        """The :class:`MoELayer` of every block, in order."""
        return [block.mlp.moe for block in self.transformer.h]

    def routing_stats(self) -> list[MoEStats]:
        """The routing statistics of every layer in the last forward pass."""
        stats = [block.mlp.last_stats for block in self.transformer.h]
        if any(s is None for s in stats):
            raise RuntimeError("routing_stats() needs a forward pass first.")
        return stats  # type: ignore[return-value]

    def aux_loss(self) -> Tensor:
        """The mean load-balancing loss of the layers in the last forward pass."""
        return torch.stack([s.aux_loss for s in self.routing_stats()]).mean()

    def set_capacity_factor(self, capacity_factor: float | None) -> None:
        """Change every layer's capacity factor (``None``: no token is dropped)."""
        if capacity_factor is not None and capacity_factor <= 0:
            raise ValueError(f"capacity_factor must be positive, got {capacity_factor}.")
        for layer in self.moe_layers():
            layer.capacity_factor = capacity_factor


def moe_parameter_counts(model: nn.Module) -> dict[str, int]:
    """Total and *active* parameters of a model with :class:`MoELayer` s (or none).

    Active parameters are those one token uses: all of them except the experts it was not
    routed to, ``(E - k) / E`` of each MoE layer's expert weights. For a dense model the
    two counts are equal.
    """
    total = sum(p.numel() for p in model.parameters())
    inactive = 0
    for module in model.modules():
        if isinstance(module, MoELayer):
            expert_params = sum(
                p.numel()
                for p in (module.w_in, module.w_out, module.b_in, module.b_out)
                if p is not None
            )
            cfg = module.config
            inactive += expert_params * (cfg.n_experts - cfg.top_k) // cfg.n_experts
    return {"total": total, "active": total - inactive}
