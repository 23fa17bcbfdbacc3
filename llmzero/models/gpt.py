"""GPT, in one readable file, in the spirit of nanoGPT's ``model.py``.

Part III's chapter *Building GPT from scratch* builds every piece of this file step by
step, then checks that this module computes exactly the same numbers. The architecture is
GPT-2's (Radford et al., 2019):

- token embeddings plus **learned** position embeddings;
- ``n_layer`` pre-LayerNorm blocks: ``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))``;
- causal multi-head self-attention, and an MLP of width ``4 * n_embd`` with GELU (the
  tanh approximation, as GPT-2 used);
- a final LayerNorm and a language-model head that shares its weight matrix with the
  token embedding (**weight tying**).

Two switches turn it into the variant nanoGPT trains from scratch (Karpathy, 2022):
``bias=False`` drops every bias of the Linear and LayerNorm layers, and
``gelu_approximate="none"`` uses the exact GELU. The defaults are GPT-2's.

Names follow GPT-2's released checkpoint (``wte``, ``wpe``, ``h``, ``ln_1``, ``c_attn``,
``c_proj``, ``c_fc``, ``ln_f``), so :meth:`GPT.from_hf_gpt2` can copy Hugging Face's
``GPT2LMHeadModel`` weights across by name::

    from llmzero.models.gpt import GPT, GPTConfig

    model = GPT(GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128))
    logits, loss = model(idx, targets)          # (batch, seq, vocab), scalar
    out = model.generate(idx, max_new_tokens=100, temperature=0.8, top_k=20)

Shapes in comments use ``B`` (batch), ``T`` (sequence length), ``C`` (``n_embd``),
``H`` (``n_head``), ``D`` (head size ``C // H``) and ``V`` (``vocab_size``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmzero.models.decoding import KVCache

__all__ = ["GPT", "MLP", "Block", "CausalSelfAttention", "GPTConfig", "parameter_breakdown"]


def _register_cpu_attention_flops() -> None:
    """Let ``torch.utils.flop_counter.FlopCounterMode`` count attention run on a CPU.

    PyTorch's FLOP counter knows the CUDA kernels behind ``F.scaled_dot_product_attention``
    but not the CPU one (``_scaled_dot_product_flash_attention_for_cpu``, as of torch
    2.13), so on a CPU it would count the attention of this model as 0 FLOPs. This gives
    the CPU kernel and its backward the counter's own formulas for the other kernels (the
    full ``T x T`` products, ``4 B H T^2 D`` FLOPs forward, as if nothing were masked),
    unless the installed PyTorch already has one.
    """
    from torch.utils import flop_counter

    def forward_flops(query: Any, key: Any, value: Any, *args: Any, **kwargs: Any) -> int:
        return flop_counter.sdpa_flop_count(query, key, value)  # arguments are shapes

    def backward_flops(
        grad: Any, query: Any, key: Any, value: Any, *args: Any, **kwargs: Any
    ) -> int:
        return flop_counter.sdpa_backward_flop_count(grad, query, key, value)

    aten = torch.ops.aten
    for name, formula in (
        ("_scaled_dot_product_flash_attention_for_cpu", forward_flops),
        ("_scaled_dot_product_flash_attention_for_cpu_backward", backward_flops),
    ):
        op = getattr(aten, name, None)
        if op is not None and op not in flop_counter.flop_registry:
            flop_counter.register_flop_formula(op)(formula)


_register_cpu_attention_flops()


@dataclass
class GPTConfig:
    """The hyper-parameters of a GPT. The defaults are GPT-2 small's (124M parameters)."""

    #: The longest sequence the model can read (the context window); GPT-2 uses 1024.
    block_size: int = 1024
    #: How many distinct tokens there are; GPT-2's byte-level BPE has 50,257.
    vocab_size: int = 50257
    #: How many Transformer blocks are stacked.
    n_layer: int = 12
    #: Attention heads per block; ``n_embd`` must be a multiple of it.
    n_head: int = 12
    #: The width of the residual stream (the embedding dimension).
    n_embd: int = 768
    #: Dropout probability (embeddings, attention weights, residual branches). GPT-2's
    #: released configuration uses 0.1 for training; 0.0 turns it off.
    dropout: float = 0.0
    #: The epsilon inside every LayerNorm (GPT-2 uses 1e-5).
    layer_norm_eps: float = 1e-5
    #: Whether the Linear layers and LayerNorms have biases, as GPT-2's do. ``False`` drops
    #: them all (the LM head never has one), as nanoGPT trains: fewer parameters, faster.
    bias: bool = True
    #: Which GELU the MLP uses. ``"tanh"`` is GPT-2's tanh approximation (Hugging Face's
    #: ``"gelu_new"``); ``"none"`` is the exact GELU, ``x * Phi(x)``, as nanoGPT uses.
    gelu_approximate: str = "tanh"

    def __post_init__(self) -> None:
        for name in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}): "
                "each head gets n_embd // n_head dimensions."
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")
        if self.gelu_approximate not in ("tanh", "none"):
            raise ValueError(
                f"gelu_approximate must be 'tanh' (GPT-2) or 'none' (exact GELU), "
                f"got {self.gelu_approximate!r}."
            )


def parameter_breakdown(config: GPTConfig) -> dict[str, int]:
    """The number of parameters of each part of a :class:`GPT`, by formula (no model built).

    With ``d = n_embd``, ``V = vocab_size``, ``T = block_size`` and ``L = n_layer``:
    token embedding ``V d``; position embedding ``T d``; per block, attention
    ``4 d^2 + 4 d`` (query/key/value and output projections with biases), MLP
    ``8 d^2 + 5 d`` and two LayerNorms ``4 d``; final LayerNorm ``2 d``. The LM head
    adds nothing because it reuses the token embedding (weight tying). Without biases
    (``bias=False``) the terms are ``4 d^2``, ``8 d^2`` and ``d`` per LayerNorm. The
    values sum to :meth:`GPT.num_parameters`.
    """
    d, n_layer, b = config.n_embd, config.n_layer, int(config.bias)
    return {
        "token embedding (wte, shared with LM head)": config.vocab_size * d,
        "position embedding (wpe)": config.block_size * d,
        "attention (all blocks)": n_layer * (3 * d * d + b * 3 * d + d * d + b * d),
        "MLP (all blocks)": n_layer * (d * 4 * d + b * 4 * d + 4 * d * d + b * d),
        "LayerNorms (blocks + final)": (2 * n_layer + 1) * (1 + b) * d,
    }


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which each position sees only itself and earlier ones.

    Each head computes ``softmax(q k^T / sqrt(D) + M) v`` with ``M`` the causal mask
    (``-inf`` above the diagonal). Part III builds this step by step (scores, mask,
    softmax, weighted sum); here the same function runs as PyTorch's fused
    ``F.scaled_dot_product_attention(..., is_causal=True)``, which never materialises the
    mask and trains faster on CPUs and GPUs alike (``benchmarks/gpt_vs_nanogpt.py``). It
    returns only the outputs, not the attention weights; for the weights, run
    :func:`llmzero.models.attention.scaled_dot_product_attention` on the same ``q, k, v``.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        # queries, keys and values at once; then the projection that mixes the heads' outputs
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = config.dropout  # on the attention weights, inside the fused kernel
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, cache: KVCache | None = None, layer: int = 0) -> Tensor:
        """``x``: ``(B, T, C)``. With a :class:`~llmzero.models.decoding.KVCache`, the keys
        and values of ``x`` are appended to layer ``layer``'s and attention runs over all
        of them: ``x`` holds only the new positions, which come after the cached ones."""
        batch, seq, channels = x.shape  # (B, T, C)
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # each (B, T, C)
        head_size = channels // self.n_head
        # Split C into H heads of D dims and move the heads next to the batch dimension.
        q = q.view(batch, seq, self.n_head, head_size).transpose(1, 2)  # (B, H, T, D)
        k = k.view(batch, seq, self.n_head, head_size).transpose(1, 2)  # (B, H, T, D)
        v = v.view(batch, seq, self.n_head, head_size).transpose(1, 2)  # (B, H, T, D)
        if cache is not None:
            k, v = cache.update(layer, k, v)  # (B, H, past + T, D): the history as well
        past = k.shape[2] - seq  # positions before the first query
        # softmax(q k^T / sqrt(D) with the future masked) v, in one fused PyTorch kernel: the
        # same function as Part III's step-by-step attention (see the class docstring).
        # is_causal aligns its mask to the top left, right only without a history; one new
        # query may see every key; several new queries need the mask shifted by `past`.
        mask = None
        if past > 0 and seq > 1:
            mask = torch.ones(seq, past + seq, dtype=torch.bool, device=x.device).tril(past)
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=past == 0,
        )  # (B, H, T, D)
        y = y.transpose(1, 2).contiguous()  # (B, T, H, D)
        y = y.view(batch, seq, channels)  # (B, T, C): the heads' outputs side by side
        return self.resid_dropout(self.c_proj(y))  # (B, T, C)


class MLP(nn.Module):
    """The position-wise feed-forward network: widen to ``4 * n_embd``, GELU, project back."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU(approximate=config.gelu_approximate)  # "tanh": GPT-2's "gelu_new"
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.gelu(self.c_fc(x))  # (B, T, 4C)
        return self.dropout(self.c_proj(x))  # (B, T, C)


class Block(nn.Module):
    """One pre-LayerNorm Transformer block: normalise, transform, add back to the stream."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: Tensor, cache: KVCache | None = None, layer: int = 0) -> Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer)  # (B, T, C): tokens exchange information
        x = x + self.mlp(self.ln_2(x))  # (B, T, C): each token is processed on its own
        return x


class GPT(nn.Module):
    """A GPT-2-style decoder-only language model.

    ``forward(idx, targets=None)`` returns ``(logits, loss)``: logits of shape
    ``(batch, seq, vocab_size)`` for every position, and the mean cross-entropy against
    ``targets`` (``None`` without targets; positions whose target is ``-1`` are ignored).
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            {
                "wte": nn.Embedding(config.vocab_size, config.n_embd),  # token embeddings
                "wpe": nn.Embedding(config.block_size, config.n_embd),  # position embeddings
                "drop": nn.Dropout(config.dropout),
                "h": nn.ModuleList(Block(config) for _ in range(config.n_layer)),
                "ln_f": nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias),
            }
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # Weight tying: the LM head and the token embedding are one (V, C) matrix.
        self.lm_head.weight = self.transformer.wte.weight
        self.apply(self._init_weights)
        # GPT-2 scales the layers that write into the residual stream by 1/sqrt(2 L), so the
        # stream's variance does not grow with depth (2 such layers per block).
        for name, parameter in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(parameter, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """nanoGPT's version of GPT-2's initialisation: N(0, 0.02) weights and embeddings, zero
        biases, LayerNorm at identity (GPT-2's released code used std 0.01 for ``wpe``)."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """How many parameters the model has (a tied matrix counts once).

        ``exclude_embeddings=True`` leaves out the token and position embeddings: the
        "non-embedding" count N that scaling laws (Kaplan et al., 2020) use.
        """
        total = sum(p.numel() for p in self.parameters())  # parameters() yields a tied one once
        if exclude_embeddings:
            total -= self.transformer.wte.weight.numel() + self.transformer.wpe.weight.numel()
        return total

    def forward(
        self, idx: Tensor, targets: Tensor | None = None, cache: KVCache | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Logits for every position of ``idx`` (``(B, T)`` token ids), and the loss if asked.

        With a :class:`~llmzero.models.decoding.KVCache` (empty for the first call), ``idx``
        holds only the tokens after the cached ones: they get positions ``past, past + 1,
        ...``, their keys and values are added to the cache, and the logits are those of
        the new positions. Raises ``ValueError`` if the cached and new tokens together are
        longer than ``config.block_size``: there is no position embedding for position
        ``block_size`` or later.
        """
        if idx.dim() != 2:
            raise ValueError(f"idx must have shape (batch, seq), got {tuple(idx.shape)}.")
        batch, seq = idx.shape  # (B, T)
        past = cache.seq_len if cache is not None else 0  # positions already in the cache
        if past + seq > self.config.block_size:
            raise ValueError(
                f"Cannot run a sequence of length {past + seq} ({past} cached): the model's "
                f"block_size (context window) is {self.config.block_size}. Keep only the last "
                f"{self.config.block_size} tokens, e.g. idx[:, -block_size:], and start an "
                "empty cache."
            )
        positions = torch.arange(past, past + seq, device=idx.device)  # (T,)
        token_emb = self.transformer.wte(idx)  # (B, T, C)
        position_emb = self.transformer.wpe(positions)  # (T, C), broadcast over the batch
        x = self.transformer.drop(token_emb + position_emb)  # (B, T, C)
        for layer, block in enumerate(self.transformer.h):
            x = block(x, cache, layer)  # (B, T, C)
        x = self.transformer.ln_f(x)  # (B, T, C)
        logits = self.lm_head(x)  # (B, T, V)

        loss = None
        if targets is not None:
            loss = F.cross_entropy(
                logits.view(batch * seq, -1),  # (B*T, V)
                targets.reshape(batch * seq),  # (B*T,)
                ignore_index=-1,
            )
        return logits, loss

    @torch.no_grad()
    def generate(
        self,
        idx: Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = False,
    ) -> Tensor:
        """Extend ``idx`` (``(B, T)`` token ids) by ``max_new_tokens`` sampled tokens.

        Each step feeds the last ``block_size`` tokens, takes the logits at the last
        position, divides them by ``temperature`` (``0`` means greedy: always the most
        likely token), keeps only the ``top_k`` largest if given, and samples from the
        softmax with ``generator`` (which must live on the model's device; pass a seeded
        one for reproducible samples). ``use_cache=True`` keeps a
        :class:`~llmzero.models.decoding.KVCache`, so each step feeds only the new token
        (until the context is full; from then on each step re-runs the last ``block_size``
        tokens, as without a cache). Dropout is off while generating; the model's
        train/eval mode is restored afterwards. Returns ``(B, T + max_new_tokens)``.
        """
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}.")
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}.")
        was_training = self.training
        self.eval()
        cache = KVCache() if use_cache else None
        try:
            for _ in range(max_new_tokens):
                if cache is None:
                    logits, _ = self(idx[:, -self.config.block_size :])  # (B, T, V)
                elif idx.shape[1] > self.config.block_size:  # full: re-run the last block
                    cache = KVCache()
                    logits, _ = self(idx[:, -self.config.block_size :], cache=cache)
                else:
                    logits, _ = self(idx[:, cache.seq_len :], cache=cache)  # new tokens only
                logits = logits[:, -1, :]  # (B, V): the prediction for the next token
                if temperature == 0:
                    next_id = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
                else:
                    logits = logits / temperature
                    if top_k is not None:
                        k = min(top_k, logits.size(-1))
                        kth_largest = torch.topk(logits, k).values[:, [-1]]  # (B, 1)
                        logits = logits.masked_fill(logits < kth_largest, float("-inf"))
                    probs = F.softmax(logits, dim=-1)  # (B, V)
                    next_id = torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)
                idx = torch.cat([idx, next_id], dim=1)  # (B, T + 1)
        finally:
            self.train(was_training)
        return idx

    # ----------------------------------------------------------------------------------
    # Loading Hugging Face GPT-2 weights
    # ----------------------------------------------------------------------------------

    #: The weights Hugging Face stores in ``Conv1D`` layers, as ``(in, out)``: the
    #: transpose of ``nn.Linear``'s ``(out, in)``.
    HF_TRANSPOSED = (
        "attn.c_attn.weight",
        "attn.c_proj.weight",
        "mlp.c_fc.weight",
        "mlp.c_proj.weight",
    )

    def load_hf_state_dict(self, hf_state_dict: Mapping[str, Tensor]) -> None:
        """Copy a Hugging Face ``GPT2LMHeadModel`` state dict into this model, in place.

        Names are the same as ours (both follow OpenAI's checkpoint); the four ``Conv1D``
        weights of each block (:attr:`HF_TRANSPOSED`) are transposed. ``lm_head.weight``
        is skipped (ours is tied to ``wte``) but must equal the token embedding, and the
        causal-mask buffers some versions save are ignored. Raises ``ValueError`` on a
        missing or unexpected name, or a shape that does not match.
        """
        if not self.config.bias:
            raise ValueError(
                "Hugging Face's GPT-2 has biases; build this model with GPTConfig(bias=True)."
            )
        ours = self.state_dict()  # tied weights appear under both names
        theirs = {
            name: tensor
            for name, tensor in hf_state_dict.items()
            if not name.endswith((".attn.bias", ".attn.masked_bias"))  # old mask buffers
        }
        hf_head = theirs.pop("lm_head.weight", None)
        if hf_head is not None and not torch.equal(hf_head, theirs["transformer.wte.weight"]):
            raise ValueError(
                "The Hugging Face model's lm_head is not tied to its token embedding; "
                "this GPT always ties them."
            )
        expected = {name for name in ours if name != "lm_head.weight"}
        missing, unexpected = expected - set(theirs), set(theirs) - expected
        if missing or unexpected:
            raise ValueError(
                f"State dicts do not match: missing {sorted(missing)[:5]}, "
                f"unexpected {sorted(unexpected)[:5]}."
            )
        with torch.no_grad():
            for name, tensor in theirs.items():
                if name.endswith(self.HF_TRANSPOSED):
                    tensor = tensor.t()  # Conv1D (in, out) -> Linear (out, in)
                if tensor.shape != ours[name].shape:
                    raise ValueError(
                        f"{name}: Hugging Face shape {tuple(tensor.shape)} does not match "
                        f"ours {tuple(ours[name].shape)}."
                    )
                ours[name].copy_(tensor)

    @classmethod
    def from_hf_gpt2(cls, hf_model: Any, dropout: float = 0.0) -> GPT:
        """Build a :class:`GPT` with the configuration and weights of a Hugging Face
        ``transformers.GPT2LMHeadModel`` (pretrained or not).

        Only GPT-2's standard architecture is accepted (tanh-GELU or exact GELU, MLP
        width ``4 * n_embd``, tied embeddings, plain ``1/sqrt(D)`` attention scaling);
        anything else raises ``ValueError`` rather than silently computing something
        different.
        """
        hf = hf_model.config
        gelus = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu": "none"}
        unsupported = {
            "activation_function": hf.activation_function not in gelus,
            "n_inner": hf.n_inner not in (None, 4 * hf.n_embd),
            "tie_word_embeddings": not getattr(hf, "tie_word_embeddings", True),
            "scale_attn_weights": not hf.scale_attn_weights,
            "scale_attn_by_inverse_layer_idx": hf.scale_attn_by_inverse_layer_idx,
            "reorder_and_upcast_attn": hf.reorder_and_upcast_attn,
        }
        if any(unsupported.values()):
            raise ValueError(
                "This GPT implements GPT-2's standard architecture only; unsupported "
                f"settings: {[name for name, bad in unsupported.items() if bad]}."
            )
        config = GPTConfig(
            block_size=hf.n_positions,
            vocab_size=hf.vocab_size,
            n_layer=hf.n_layer,
            n_head=hf.n_head,
            n_embd=hf.n_embd,
            dropout=dropout,
            layer_norm_eps=hf.layer_norm_epsilon,
            gelu_approximate=gelus[hf.activation_function],
        )
        model = cls(config)
        model.load_hf_state_dict(hf_model.state_dict())
        return model
