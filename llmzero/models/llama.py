"""A Llama-style decoder, in one readable file, in the spirit of nanoGPT's ``model.py``.

Part III's chapter *A modern LLM architecture* builds every piece of this file step by
step, then checks that this module computes the same numbers and that it reproduces
Hugging Face's ``LlamaForCausalLM`` on the real SmolLM2-135M-Instruct weights. The
architecture is Llama's (Touvron et al., 2023), which most open models since then share:

- token embeddings and **no** position embeddings: position enters inside attention,
  through **rotary position embeddings** (RoPE; Su et al., 2021) applied to queries and
  keys, in the "rotate-half" layout of Hugging Face's Llama code (dimension ``i`` is
  paired with dimension ``i + head_dim / 2``), so its checkpoints load as they are;
- ``n_layer`` pre-norm blocks, ``x + attn(attn_norm(x))`` then ``x + mlp(mlp_norm(x))``,
  with **RMSNorm** (Zhang & Sennrich, 2019) instead of LayerNorm;
- causal **grouped-query attention** (Ainslie et al., 2023): ``n_head`` query heads share
  ``n_kv_head`` key/value heads (``n_kv_head == n_head`` is ordinary multi-head
  attention, ``n_kv_head == 1`` is multi-query attention);
- a **SwiGLU** MLP (Shazeer, 2020): ``down(silu(gate(x)) * up(x))``;
- no biases by default; a final RMSNorm and a language-model head that may share its
  weight matrix with the token embedding (``tie_embeddings``).

The same file covers the small variations later open models made to this recipe, so their
checkpoints load unchanged (the tests prove equal logits with Hugging Face's classes):

- Llama 3.1/3.2/3.3's RoPE frequency scaling for long context (``rope_scaling``, type
  ``llama3``: :class:`Llama3RopeScaling`), and Llama's optional ``attention_bias`` and
  ``mlp_bias``;
- Qwen2/Qwen2.5's biases on the query, key and value projections (``qkv_bias``);
- Qwen3's RMSNorm on each head's queries and keys before RoPE (``qk_norm``).

Usage::

    from llmzero.models.llama import Llama

    model = Llama.from_hf(model_dir)             # a Hugging Face Llama checkpoint folder
    logits = model(idx)                          # idx (batch, seq) -> (batch, seq, vocab)
    out = model.generate(idx, max_new_tokens=30, temperature=0.0, eos_token_id=2)

Shapes in comments use ``B`` (batch), ``T`` (sequence length), ``C`` (``n_embd``),
``H`` (``n_head``), ``K`` (``n_kv_head``), ``D`` (``head_dim``), ``F`` (``hidden_dim``,
the MLP width) and ``V`` (``vocab_size``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmzero.models.decoding import KVCache
from llmzero.models.positional import rope_frequencies, rotate_half

__all__ = [
    "SUPPORTED_MODEL_TYPES",
    "Attention",
    "Block",
    "Llama",
    "Llama3RopeScaling",
    "LlamaConfig",
    "RMSNorm",
    "SwiGLU",
    "apply_rope",
    "config_from_hf",
    "hf_name_to_ours",
    "kv_cache_bytes",
    "parameter_breakdown",
    "repeat_kv",
    "rope_cos_sin",
]


@dataclass(frozen=True)
class Llama3RopeScaling:
    """Llama 3.1's RoPE frequency scaling (``rope_type: llama3`` in ``config.json``).

    Rotation frequencies whose wavelength is longer than the pretraining context divided
    by ``low_freq_factor`` are slowed down by ``factor``; those with wavelengths shorter
    than that context divided by ``high_freq_factor`` are kept; those in between are
    interpolated smoothly. This stretches the slow dimensions over a longer context
    without disturbing the fast ones that encode nearby positions.
    """

    factor: float = 8.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_position_embeddings: int = 8192

    def apply(self, inv_freq: Tensor) -> Tensor:
        """Scale RoPE's inverse frequencies ``(D/2,)`` as Meta's Llama 3.1 code does."""
        context = self.original_max_position_embeddings
        low_freq_wavelen = context / self.low_freq_factor
        high_freq_wavelen = context / self.high_freq_factor
        wavelen = 2 * math.pi / inv_freq  # (D/2,)
        scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / self.factor, inv_freq)
        smooth = (context / wavelen - self.low_freq_factor) / (
            self.high_freq_factor - self.low_freq_factor
        )
        smoothed = (1 - smooth) * scaled / self.factor + smooth * scaled
        medium = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen)
        return torch.where(medium, smoothed, scaled)  # (D/2,)


@dataclass
class LlamaConfig:
    """The hyper-parameters of a Llama-style model. The defaults are SmolLM2-135M's."""

    #: The longest sequence the model is meant to read (RoPE itself has no hard limit).
    block_size: int = 8192
    #: How many distinct tokens there are; SmolLM2's tokenizer has 49,152.
    vocab_size: int = 49152
    #: How many Transformer blocks are stacked.
    n_layer: int = 30
    #: Query heads per block.
    n_head: int = 9
    #: Key/value heads per block; must divide ``n_head``. Equal to ``n_head`` gives
    #: multi-head attention, 1 gives multi-query attention, values in between give
    #: grouped-query attention.
    n_kv_head: int = 3
    #: The width of the residual stream (the embedding dimension).
    n_embd: int = 576
    #: The size of each head; ``None`` means ``n_embd // n_head``.
    head_dim: int | None = None
    #: The width of the SwiGLU MLP, called ``intermediate_size`` by Hugging Face.
    hidden_dim: int = 1536
    #: The epsilon inside every RMSNorm.
    norm_eps: float = 1e-5
    #: RoPE's wavelength scale ("base"); 10,000 in RoFormer and Llama 2.
    rope_theta: float = 100000.0
    #: Whether the LM head reuses the token-embedding matrix (weight tying).
    tie_embeddings: bool = True
    #: Llama 3.1-style RoPE scaling for long context, or ``None`` for plain RoPE.
    rope_scaling: Llama3RopeScaling | None = None
    #: Biases on the query, key and value projections (Qwen2, or Llama's attention_bias).
    qkv_bias: bool = False
    #: A bias on the attention output projection (Llama's attention_bias).
    out_bias: bool = False
    #: Biases in the SwiGLU MLP (Llama's mlp_bias).
    mlp_bias: bool = False
    #: RMSNorm each head's queries and keys before RoPE (Qwen3's "QK-norm").
    qk_norm: bool = False

    def __post_init__(self) -> None:
        for name in ("block_size", "vocab_size", "n_layer", "n_head", "n_kv_head", "n_embd"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.hidden_dim < 1:
            raise ValueError(f"hidden_dim must be at least 1, got {self.hidden_dim}.")
        if self.head_dim is None:
            if self.n_embd % self.n_head != 0:
                raise ValueError(
                    f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}), "
                    "or give head_dim explicitly."
                )
            self.head_dim = self.n_embd // self.n_head
        if self.head_dim < 2 or self.head_dim % 2:
            raise ValueError(
                f"head_dim must be even (RoPE rotates pairs of dimensions), got {self.head_dim}."
            )
        if self.n_head % self.n_kv_head != 0:
            raise ValueError(
                f"n_kv_head ({self.n_kv_head}) must divide n_head ({self.n_head}): each "
                "key/value head serves the same number of query heads."
            )
        if not self.rope_theta > 1.0:
            raise ValueError(f"rope_theta must be greater than 1, got {self.rope_theta}.")


# ------------------------------------------------------------------------------ formulas


def parameter_breakdown(config: LlamaConfig) -> dict[str, int]:
    """The number of parameters of each part of a :class:`Llama`, by formula (no model built).

    With ``C = n_embd``, ``D = head_dim``, ``H = n_head``, ``K = n_kv_head``,
    ``F = hidden_dim``, ``V = vocab_size`` and ``L = n_layer``: token embedding ``V C``;
    per block, attention ``C H D`` (queries) ``+ 2 C K D`` (keys, values) ``+ H D C``
    (output), MLP ``3 C F`` and two RMSNorm weights ``2 C``; final RMSNorm ``C``; an untied
    LM head adds ``V C``. Optional biases and QK-norm gains are added where the config
    turns them on. The values sum to :meth:`Llama.num_parameters`.
    """
    c, d, layers = config.n_embd, config.head_dim, config.n_layer
    assert d is not None  # set by __post_init__
    query_and_output = 2 * c * config.n_head * d  # q_proj (C, H D) and o_proj (H D, C)
    keys_and_values = 2 * c * config.n_kv_head * d  # k_proj and v_proj, (C, K D) each
    attention = query_and_output + keys_and_values
    attention += (config.n_head + 2 * config.n_kv_head) * d if config.qkv_bias else 0
    attention += c if config.out_bias else 0
    attention += 2 * d if config.qk_norm else 0  # one (D,) gain for queries, one for keys
    mlp = 3 * c * config.hidden_dim + (2 * config.hidden_dim + c if config.mlp_bias else 0)
    parts = {
        "token embedding": config.vocab_size * c,
        "attention (all blocks)": layers * attention,
        "MLP (all blocks)": layers * mlp,
        "RMSNorms (blocks + final)": layers * 2 * c + c,
    }
    if not config.tie_embeddings:
        parts["LM head"] = config.vocab_size * c
    return parts


def kv_cache_bytes(
    config: LlamaConfig, seq_len: int, batch_size: int = 1, bytes_per_value: int = 2
) -> int:
    """The memory a key/value cache needs for ``batch_size`` sequences of ``seq_len`` tokens.

    Every layer stores one key and one value vector of ``head_dim`` numbers per key/value
    head and per token: ``2 * n_layer * n_kv_head * head_dim * seq_len * batch_size``
    numbers, each ``bytes_per_value`` bytes (2 for bfloat16/float16, 4 for float32).
    """
    assert config.head_dim is not None
    values = 2 * config.n_layer * config.n_kv_head * config.head_dim * seq_len * batch_size
    return values * bytes_per_value


# ------------------------------------------------------------------------------ pieces


class RMSNorm(nn.Module):
    r"""Root-mean-square normalisation: :math:`y = x / \sqrt{\mathrm{mean}(x^2) + \epsilon}
    \cdot g`.

    Unlike LayerNorm it does not subtract the mean and has no bias: it only rescales each
    vector to unit root-mean-square, then multiplies by a learned gain ``g`` (``weight``,
    initialised to ones). The statistics are computed in float32 whatever the input dtype,
    as Hugging Face's Llama does.
    """

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))  # (C,)

    def forward(self, x: Tensor) -> Tensor:
        x32 = x.float()  # (..., C)
        inv_rms = torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + self.eps)  # (..., 1)
        return self.weight * (x32 * inv_rms).to(x.dtype)  # (..., C)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


def rope_cos_sin(
    positions: Tensor,
    head_dim: int,
    theta: float = 10000.0,
    dtype: torch.dtype = torch.float32,
    scaling: Llama3RopeScaling | None = None,
) -> tuple[Tensor, Tensor]:
    r"""The cosines and sines RoPE rotates by, for integer ``positions`` of shape ``(T,)``.

    Dimension pair ``(i, i + D/2)`` turns by the angle ``m * theta_i`` at position ``m``,
    with ``theta_i = theta ** (-2 i / D)``. Angles are computed in float32 and then cast to
    ``dtype``. Returns ``(cos, sin)``, each of shape ``(T, D)`` (the ``D/2`` angles written
    twice, once for each half of the vector). ``scaling`` adjusts the frequencies first
    (Llama 3.1's long-context RoPE).
    """
    inv_freq = rope_frequencies(head_dim, base=theta, device=positions.device)  # (D/2,)
    if scaling is not None:
        inv_freq = scaling.apply(inv_freq)
    angles = positions.float()[:, None] * inv_freq[None, :]  # (T, D/2): m * theta_i
    angles = torch.cat([angles, angles], dim=-1)  # (T, D)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate queries or keys ``x`` of shape ``(B, heads, T, D)`` by their positions.

    ``cos`` and ``sin`` come from :func:`rope_cos_sin` and have shape ``(T, D)``. Each pair
    ``(x_i, x_{i + D/2})`` is rotated: ``x * cos + rotate_half(x) * sin``.
    """
    return x * cos + rotate_half(x) * sin  # (B, heads, T, D)


def repeat_kv(x: Tensor, n_rep: int) -> Tensor:
    """Repeat each key/value head ``n_rep`` times: ``(B, K, T, D) -> (B, K * n_rep, T, D)``.

    Query head ``h`` then uses key/value head ``h // n_rep``, as in Hugging Face's Llama.
    """
    if n_rep == 1:
        return x
    return torch.repeat_interleave(x, n_rep, dim=1)  # (B, K * n_rep, T, D)


class Attention(nn.Module):
    """Causal grouped-query self-attention with rotary position embeddings.

    Biases (``qkv_bias``, ``out_bias``) and QK-norm (``qk_norm``) are off unless the config
    turns them on.
    """

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        assert config.head_dim is not None
        self.n_head, self.n_kv_head = config.n_head, config.n_kv_head
        self.head_dim = head_dim = config.head_dim
        qkv_bias = config.qkv_bias
        self.q_proj = nn.Linear(config.n_embd, config.n_head * head_dim, bias=qkv_bias)
        self.k_proj = nn.Linear(config.n_embd, config.n_kv_head * head_dim, bias=qkv_bias)
        self.v_proj = nn.Linear(config.n_embd, config.n_kv_head * head_dim, bias=qkv_bias)
        self.o_proj = nn.Linear(config.n_head * head_dim, config.n_embd, bias=config.out_bias)
        if config.qk_norm:  # one gain of size D shared by all heads, as in Qwen3
            self.q_norm = RMSNorm(head_dim, eps=config.norm_eps)
            self.k_norm = RMSNorm(head_dim, eps=config.norm_eps)
        else:
            self.q_norm = self.k_norm = None

    def forward(
        self,
        x: Tensor,
        cos: Tensor,
        sin: Tensor,
        mask: Tensor,
        cache: KVCache | None = None,
        layer: int = 0,
    ) -> Tensor:
        """``x``: ``(B, T, C)``; ``cos``, ``sin``: ``(T, D)``; ``mask``: ``(T, S)`` booleans,
        True where query ``i`` may look at key ``j``. Without a cache ``S = T``; with a
        :class:`~llmzero.models.decoding.KVCache`, the rotated keys and the values of the
        ``K`` key/value heads are appended to layer ``layer``'s and ``S`` counts the cached
        positions too. Returns ``(B, T, C)``."""
        batch, seq, _ = x.shape  # (B, T, C)
        q = self.q_proj(x).view(batch, seq, self.n_head, self.head_dim)  # (B, T, H, D)
        k = self.k_proj(x).view(batch, seq, self.n_kv_head, self.head_dim)  # (B, T, K, D)
        v = self.v_proj(x).view(batch, seq, self.n_kv_head, self.head_dim)  # (B, T, K, D)
        if self.q_norm is not None and self.k_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)  # each head's vectors, over D
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        # q: (B, H, T, D); k, v: (B, K, T, D)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)  # position enters here only
        if cache is not None:  # cache the K heads, before they are repeated (GQA's saving)
            k, v = cache.update(layer, k, v)  # (B, K, S, D): past and new positions
        k = repeat_kv(k, self.n_head // self.n_kv_head)  # (B, H, S, D)
        v = repeat_kv(v, self.n_head // self.n_kv_head)  # (B, H, S, D)

        scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)  # (B, H, T, S)
        scores = scores.masked_fill(~mask, float("-inf"))  # hide the future
        weights = F.softmax(scores.float(), dim=-1).to(q.dtype)  # (B, H, T, S)
        y = weights @ v  # (B, H, T, D)
        y = y.transpose(1, 2).reshape(batch, seq, self.n_head * self.head_dim)  # (B, T, H*D)
        return self.o_proj(y)  # (B, T, C)


class SwiGLU(nn.Module):
    """The gated MLP of Llama: ``down(silu(gate(x)) * up(x))``, biases only if ``mlp_bias``."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        bias = config.mlp_bias
        self.gate_proj = nn.Linear(config.n_embd, config.hidden_dim, bias=bias)
        self.up_proj = nn.Linear(config.n_embd, config.hidden_dim, bias=bias)
        self.down_proj = nn.Linear(config.hidden_dim, config.n_embd, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        gated = F.silu(self.gate_proj(x)) * self.up_proj(x)  # (B, T, F)
        return self.down_proj(gated)  # (B, T, C)


class Block(nn.Module):
    """One pre-norm Llama block: ``x + attn(attn_norm(x))``, then ``x + mlp(mlp_norm(x))``."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(config.n_embd, eps=config.norm_eps)
        self.attn = Attention(config)
        self.mlp_norm = RMSNorm(config.n_embd, eps=config.norm_eps)
        self.mlp = SwiGLU(config)

    def forward(
        self,
        x: Tensor,
        cos: Tensor,
        sin: Tensor,
        mask: Tensor,
        cache: KVCache | None = None,
        layer: int = 0,
    ) -> Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin, mask, cache, layer)  # (B, T, C)
        x = x + self.mlp(self.mlp_norm(x))  # (B, T, C)
        return x


# ------------------------------------------------------------------------------ the model


class Llama(nn.Module):
    """A Llama-style decoder-only language model: ``forward(idx)`` returns the logits.

    ``idx`` holds token ids of shape ``(B, T)``; the result has shape ``(B, T, V)``: a
    next-token score for every vocabulary entry at every position.
    """

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.n_embd)  # (V, C)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm = RMSNorm(config.n_embd, eps=config.norm_eps)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)  # (V, C)
        self.apply(self._init_weights)
        if config.tie_embeddings:
            self.lm_head.weight = self.tok_embeddings.weight  # one shared (V, C) matrix

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """N(0, 0.02) weights (Llama's ``initializer_range``), zero biases; RMSNorm gains
        stay at one."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_parameters(self) -> int:
        """How many parameters the model has (a tied matrix counts once)."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: Tensor, cache: KVCache | None = None) -> Tensor:
        """Logits ``(B, T, V)`` for token ids ``idx`` of shape ``(B, T)``.

        With a :class:`~llmzero.models.decoding.KVCache` (empty for the first call), ``idx``
        holds only the tokens after the cached ones: RoPE rotates them for positions
        ``past, past + 1, ...``, they attend to the cached keys and values and to each
        other (causally), and their keys and values join the cache.
        """
        if idx.dim() != 2:
            raise ValueError(f"idx must have shape (batch, seq), got {tuple(idx.shape)}.")
        seq = idx.shape[1]
        past = cache.seq_len if cache is not None else 0  # positions already in the cache
        x = self.tok_embeddings(idx)  # (B, T, C): no position embedding is added
        positions = torch.arange(past, past + seq, device=idx.device)  # (T,)
        assert self.config.head_dim is not None
        cos, sin = rope_cos_sin(
            positions,
            self.config.head_dim,
            self.config.rope_theta,
            x.dtype,
            scaling=self.config.rope_scaling,
        )
        # (T, past + T): query i (position past + i) sees keys 0 .. past + i
        mask = torch.ones(seq, past + seq, dtype=torch.bool, device=idx.device).tril(past)
        for layer, block in enumerate(self.layers):
            x = block(x, cos, sin, mask, cache, layer)  # (B, T, C)
        return self.lm_head(self.norm(x))  # (B, T, V)

    @torch.no_grad()
    def generate(
        self,
        idx: Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        eos_token_id: int | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = False,
    ) -> Tensor:
        """Extend ``idx`` (``(B, T)`` token ids) by up to ``max_new_tokens`` tokens.

        Each step runs the whole sequence (without a key/value cache, step ``t`` costs a
        forward pass over ``T + t`` tokens; ``use_cache=True`` keeps a
        :class:`~llmzero.models.decoding.KVCache` and feeds only the new token, with the
        same result up to float rounding), takes the logits at the last position,
        divides them by ``temperature`` (``0`` means greedy: always the most likely token),
        keeps the ``top_k`` largest if given, and samples with ``generator``. Generation
        stops early once every sequence has produced ``eos_token_id``; a sequence that is
        done is padded with ``eos_token_id``. The model's train/eval mode is restored
        afterwards. Returns ``(B, T + number of new tokens)``.
        """
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}.")
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}.")
        was_training = self.training
        self.eval()
        done = torch.zeros(idx.shape[0], 1, dtype=torch.bool, device=idx.device)  # (B, 1)
        cache = KVCache() if use_cache else None
        try:
            for _ in range(max_new_tokens):
                if cache is None:
                    logits = self(idx[:, -self.config.block_size :])[:, -1, :]  # (B, V)
                elif idx.shape[1] > self.config.block_size:  # full: re-run the last block
                    cache = KVCache()
                    logits = self(idx[:, -self.config.block_size :], cache=cache)[:, -1, :]
                else:  # only the tokens the cache has not seen
                    logits = self(idx[:, cache.seq_len :], cache=cache)[:, -1, :]  # (B, V)
                if temperature == 0:
                    next_id = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
                else:
                    logits = logits.float() / temperature
                    if top_k is not None:
                        kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]
                        logits = logits.masked_fill(logits < kth, float("-inf"))  # (B, V)
                    probs = F.softmax(logits, dim=-1)  # (B, V)
                    next_id = torch.multinomial(probs, num_samples=1, generator=generator)
                if eos_token_id is not None:
                    next_id = next_id.masked_fill(done, eos_token_id)  # (B, 1)
                    done = done | (next_id == eos_token_id)
                idx = torch.cat([idx, next_id], dim=1)  # (B, T + 1)
                if eos_token_id is not None and bool(done.all()):
                    break
        finally:
            self.train(was_training)
        return idx

    # ----------------------------------------------------------------------------------
    # Loading Hugging Face Llama weights
    # ----------------------------------------------------------------------------------

    def load_hf_state_dict(self, hf_state_dict: Mapping[str, Tensor]) -> None:
        """Copy a Hugging Face ``LlamaForCausalLM`` (or ``Qwen2ForCausalLM``,
        ``Qwen3ForCausalLM``) state dict into this model, in place.

        Names are translated by :func:`hf_name_to_ours`; no tensor needs transposing (both
        store ``nn.Linear`` weights as ``(out, in)``), and both use the rotate-half RoPE
        layout, so query and key weights are copied as they are. With tied embeddings a
        missing ``lm_head.weight`` is fine (tied checkpoints often omit it); a present one
        must equal the token embedding. Raises ``ValueError`` on a missing or unexpected
        name, or on a shape that does not match.
        """
        ours = self.state_dict()  # a tied matrix appears under both of its names
        theirs = {hf_name_to_ours(name): tensor for name, tensor in hf_state_dict.items()}
        theirs = {name: t for name, t in theirs.items() if not name.endswith("rotary_emb.inv_freq")}
        if self.config.tie_embeddings:
            head = theirs.pop("lm_head.weight", None)
            if head is not None and not torch.equal(head, theirs.get("tok_embeddings.weight")):
                raise ValueError(
                    "The checkpoint's lm_head differs from its token embedding, but this "
                    "model's config ties them: use tie_embeddings=False."
                )
        expected = set(ours) - ({"lm_head.weight"} if self.config.tie_embeddings else set())
        missing, unexpected = expected - set(theirs), set(theirs) - expected
        if missing or unexpected:
            raise ValueError(
                f"State dicts do not match: missing {sorted(missing)[:5]}, "
                f"unexpected {sorted(unexpected)[:5]}."
            )
        with torch.no_grad():
            for name, tensor in theirs.items():
                if tensor.shape != ours[name].shape:
                    raise ValueError(
                        f"{name}: Hugging Face shape {tuple(tensor.shape)} does not match "
                        f"ours {tuple(ours[name].shape)}."
                    )
                ours[name].copy_(tensor)  # casts to our dtype (e.g. bfloat16 -> float32)

    @classmethod
    def from_hf(cls, model_dir: str | Path, dtype: torch.dtype = torch.float32) -> Llama:
        """Build a model from a Hugging Face Llama checkpoint folder (``config.json`` and
        ``*.safetensors``), without importing transformers. Weights are cast to ``dtype``."""
        from safetensors.torch import load_file

        folder = Path(model_dir)
        config = config_from_hf(json.loads((folder / "config.json").read_text(encoding="utf-8")))
        files = sorted(folder.glob("*.safetensors"))
        if not files:
            raise FileNotFoundError(f"No *.safetensors file in {folder}.")
        state: dict[str, Tensor] = {}
        for file in files:  # one file, or the shards of a large model
            state.update(load_file(file))
        model = cls(config).to(dtype)
        model.load_hf_state_dict(state)
        return model.eval()


#: Hugging Face's module names that differ from ours (``LlamaForCausalLM`` also wraps
#: everything but the LM head in a ``LlamaModel`` called ``model``).
_HF_RENAMES = {
    "embed_tokens": "tok_embeddings",
    "self_attn": "attn",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "mlp_norm",
}


def hf_name_to_ours(name: str) -> str:
    """Translate a Hugging Face Llama parameter name into this module's name.

    >>> hf_name_to_ours("model.layers.3.self_attn.q_proj.weight")
    'layers.3.attn.q_proj.weight'
    >>> hf_name_to_ours("model.layers.3.post_attention_layernorm.weight")
    'layers.3.mlp_norm.weight'
    """
    parts = name.removeprefix("model.").split(".")
    return ".".join(_HF_RENAMES.get(part, part) for part in parts)


def _get(hf_config: Any, key: str, default: Any = None) -> Any:
    if isinstance(hf_config, Mapping):
        return hf_config.get(key, default)
    return getattr(hf_config, key, default)


def _rope_scaling_from_hf(rope: Mapping[str, Any]) -> Llama3RopeScaling | None:
    rope_type = rope.get("rope_type", rope.get("type"))
    if rope_type in (None, "default"):
        return None
    if rope_type != "llama3":
        raise ValueError(
            f"RoPE scaling of type {rope_type!r} is not implemented here (only 'llama3')."
        )
    return Llama3RopeScaling(
        factor=float(rope["factor"]),
        low_freq_factor=float(rope["low_freq_factor"]),
        high_freq_factor=float(rope["high_freq_factor"]),
        original_max_position_embeddings=int(rope["original_max_position_embeddings"]),
    )


#: The model families whose checkpoints this module loads, by ``model_type``.
SUPPORTED_MODEL_TYPES = ("llama", "qwen2", "qwen3")


def config_from_hf(hf_config: Any) -> LlamaConfig:
    """A :class:`LlamaConfig` from a Hugging Face Llama, Qwen2 or Qwen3 configuration.

    ``hf_config`` is a ``transformers`` config object or the dict read from
    ``config.json``. Llama 3.1-style RoPE scaling, Llama's ``attention_bias`` and
    ``mlp_bias``, Qwen2's query/key/value biases, Qwen3's QK-norm and tied embeddings are
    translated. Settings this module does not implement (another activation, another RoPE
    scaling type, sliding-window attention, tensor-parallel slicing) raise ``ValueError``
    rather than silently computing something different.
    """
    model_type = _get(hf_config, "model_type", "llama")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(
            f"model_type {model_type!r} is not supported; this module loads "
            f"{', '.join(SUPPORTED_MODEL_TYPES)} checkpoints."
        )
    # transformers 5 keeps RoPE settings in rope_parameters; config.json files may use
    # the older rope_theta and rope_scaling keys.
    rope = dict(_get(hf_config, "rope_scaling") or {})
    rope.update(_get(hf_config, "rope_parameters") or {})
    rope_theta = rope.get("rope_theta", _get(hf_config, "rope_theta", 10000.0))
    layer_types = _get(hf_config, "layer_types") or []
    unsupported = {
        "hidden_act": _get(hf_config, "hidden_act", "silu") != "silu",
        "pretraining_tp": _get(hf_config, "pretraining_tp", 1) not in (None, 1),
        "sliding_window attention": bool(_get(hf_config, "use_sliding_window", False))
        or any(kind != "full_attention" for kind in layer_types),
    }
    if any(unsupported.values()):
        raise ValueError(
            "This module implements the Llama architecture and its Qwen2/Qwen3 variants; "
            f"unsupported settings: {[name for name, bad in unsupported.items() if bad]}."
        )
    attention_bias = bool(_get(hf_config, "attention_bias", False))
    n_head = _get(hf_config, "num_attention_heads")
    return LlamaConfig(
        block_size=_get(hf_config, "max_position_embeddings", 2048),
        vocab_size=_get(hf_config, "vocab_size"),
        n_layer=_get(hf_config, "num_hidden_layers"),
        n_head=n_head,
        n_kv_head=_get(hf_config, "num_key_value_heads") or n_head,
        n_embd=_get(hf_config, "hidden_size"),
        head_dim=_get(hf_config, "head_dim"),
        hidden_dim=_get(hf_config, "intermediate_size"),
        norm_eps=_get(hf_config, "rms_norm_eps", 1e-6),
        rope_theta=float(rope_theta),
        tie_embeddings=bool(_get(hf_config, "tie_word_embeddings", False)),
        rope_scaling=_rope_scaling_from_hf(rope),
        # Qwen2 always has query/key/value biases; Llama and Qwen3 follow attention_bias.
        qkv_bias=model_type == "qwen2" or attention_bias,
        out_bias=model_type != "qwen2" and attention_bias,
        mlp_bias=bool(_get(hf_config, "mlp_bias", False)),
        qk_norm=model_type == "qwen3",
    )
