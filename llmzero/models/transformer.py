"""The pieces of a Transformer block: multi-head attention, LayerNorm, feed-forward.

Part III's chapter *Multi-head attention and the Transformer block* builds each piece step
by step and checks it against PyTorch's own (``nn.MultiheadAttention``, ``nn.LayerNorm``,
``nn.TransformerEncoderLayer``) with the same weights::

    from llmzero.models.transformer import TransformerBlock

    block = TransformerBlock(d_model=64, n_heads=4, pre_norm=True)
    y = block(x, causal=True)                       # x, y: (batch, seq, d_model)

- :class:`MultiHeadAttention`: project to queries, keys and values, split them into
  ``n_heads`` heads, attend in every head at once, merge the heads, project back.
- :class:`LayerNorm`: normalize each token's vector to mean 0 and variance 1, then scale
  and shift it (Ba et al., 2016).
- :class:`FeedForward`: the position-wise two-layer network, ``d_model -> d_ff -> d_model``.
- :class:`TransformerBlock`: attention and feed-forward, each wrapped in a residual
  connection and a LayerNorm, either **pre-LN** (``x + f(norm(x))``, GPT-2 and most LLMs
  since) or **post-LN** (``norm(x + f(x))``, the original Transformer).

Masks follow :mod:`llmzero.models.attention`: a boolean ``True`` means "may attend". PyTorch's
``nn.MultiheadAttention`` uses the opposite convention (``True`` = blocked); see
:meth:`MultiHeadAttention.forward`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmzero.models.attention import causal_mask, padding_mask, scaled_dot_product_attention

__all__ = ["FeedForward", "LayerNorm", "MultiHeadAttention", "TransformerBlock"]


def _check_sizes(d_model: int, n_heads: int) -> None:
    for name, value in (("d_model", d_model), ("n_heads", n_heads)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    if d_model % n_heads:
        raise ValueError(
            f"d_model ({d_model}) must be divisible by n_heads ({n_heads}): each head gets "
            "d_model // n_heads dimensions."
        )


def _check_dropout(dropout: float) -> None:
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}.")


def _check_input(x: object, name: str, d_model: int) -> None:
    if not isinstance(x, Tensor) or x.ndim != 3 or x.shape[-1] != d_model:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must have shape (batch, seq, {d_model}), got {shape}.")


class MultiHeadAttention(nn.Module):
    r"""Multi-head attention (Vaswani et al., 2017), batch first.

    .. math::
        \mathrm{MHA}(X) = \mathrm{Concat}(\mathrm{head}_1, \dots, \mathrm{head}_h)\, W^O,
        \qquad \mathrm{head}_j = \mathrm{Attention}(X W^Q_j, X W^K_j, X W^V_j)

    The ``h`` heads' projections are stored as one ``d_model x d_model`` matrix each for
    queries, keys and values; head ``j`` uses columns ``j*d_head ... (j+1)*d_head - 1`` of
    the projected vectors, with ``d_head = d_model // n_heads``.

    Args:
        d_model: the width of the input and output vectors.
        n_heads: the number of heads; must divide ``d_model``.
        dropout: dropout on the attention weights while training.
        bias: whether the four projections have biases (``nn.MultiheadAttention`` does).
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        _check_sizes(d_model, n_heads)
        _check_dropout(dropout)
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def split_heads(self, x: Tensor) -> Tensor:
        """``(batch, seq, d_model)`` -> ``(batch, n_heads, seq, d_head)``."""
        batch, seq, _ = x.shape
        return x.view(batch, seq, self.n_heads, self.d_head).transpose(1, 2)

    def merge_heads(self, x: Tensor) -> Tensor:
        """``(batch, n_heads, seq, d_head)`` -> ``(batch, seq, d_model)`` (undoes split)."""
        batch, _, seq, _ = x.shape
        return x.transpose(1, 2).reshape(batch, seq, self.d_model)

    def forward(
        self,
        query: Tensor,
        key: Tensor | None = None,
        value: Tensor | None = None,
        *,
        mask: Tensor | None = None,
        attention_mask: Tensor | None = None,
        causal: bool = False,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Attend from every query position to every key position, in every head.

        Self-attention: pass only ``query``. Cross-attention: pass ``key`` (and ``value``,
        which defaults to ``key``) from another sequence.

        Args:
            query: ``(batch, seq_q, d_model)``.
            key: ``(batch, seq_k, d_model)``; default ``query``.
            value: ``(batch, seq_k, d_model)``; default ``key``.
            mask: optional boolean tensor broadcastable to ``(batch, n_heads, seq_q,
                seq_k)``, ``True`` where a query may attend to a key. (For
                ``nn.MultiheadAttention``'s ``attn_mask``, pass ``~mask``.)
            attention_mask: optional ``(batch, seq_k)`` tensor, 1 (or ``True``) at real
                tokens and 0 at padding, as tokenizers return it. (For
                ``nn.MultiheadAttention``'s ``key_padding_mask``, pass
                ``attention_mask == 0``.)
            causal: also forbid attending to later positions (needs ``seq_q == seq_k``).
            need_weights: also return the attention weights. Then the attention is
                computed by :func:`llmzero.models.attention.scaled_dot_product_attention`;
                otherwise by PyTorch's faster ``F.scaled_dot_product_attention``, which
                computes the same function without returning the weights.

        Returns:
            ``(output, weights)``: ``output`` of shape ``(batch, seq_q, d_model)``;
            ``weights`` of shape ``(batch, n_heads, seq_q, seq_k)`` (each head's, not
            averaged), or ``None`` unless ``need_weights``. A query whose every key is
            masked gets zero weights (``nn.MultiheadAttention`` gives ``nan`` there).

        Raises:
            ValueError: a shape does not fit, or ``causal`` with ``seq_q != seq_k``.
        """
        key = query if key is None else key
        value = key if value is None else value
        _check_input(query, "query", self.d_model)
        _check_input(key, "key", self.d_model)
        _check_input(value, "value", self.d_model)
        batch, seq_q, _ = query.shape
        seq_k = key.shape[1]
        if value.shape[:2] != key.shape[:2] or key.shape[0] != batch:
            raise ValueError(
                "query, key and value must share the batch size, and key and value the "
                f"length: got {tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}."
            )

        if mask is not None and (not isinstance(mask, Tensor) or mask.dtype != torch.bool):
            raise ValueError("mask must be a boolean tensor, True where a query may attend.")
        allowed = mask  # None, or bool broadcastable to (batch, heads, seq_q, seq_k)
        if causal:
            if seq_q != seq_k:
                raise ValueError(f"causal needs seq_q == seq_k, got {seq_q} and {seq_k}.")
            future = causal_mask(seq_q, device=query.device)  # (seq, seq)
            allowed = future if allowed is None else allowed & future
        if attention_mask is not None:
            if attention_mask.shape != (batch, seq_k):
                raise ValueError(
                    f"attention_mask must have shape (batch, seq_k) = ({batch}, {seq_k}), "
                    f"got {tuple(attention_mask.shape)}."
                )
            real = padding_mask(attention_mask)  # (batch, 1, 1, seq_k)
            allowed = real if allowed is None else allowed & real

        q = self.split_heads(self.q_proj(query))  # (batch, heads, seq_q, d_head)
        k = self.split_heads(self.k_proj(key))  # (batch, heads, seq_k, d_head)
        v = self.split_heads(self.v_proj(value))  # (batch, heads, seq_k, d_head)
        dropout_p = self.dropout if self.training else 0.0
        if need_weights:  # the course's version, which returns the weights
            out, weights = scaled_dot_product_attention(
                q, k, v, mask=allowed, dropout_p=dropout_p, training=self.training
            )
            # out: (batch, heads, seq_q, d_head), weights: (batch, heads, seq_q, seq_k)
        else:  # PyTorch's fused kernel: the same function, faster, but no weights
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout_p)
            weights = None  # out: (batch, heads, seq_q, d_head)
        out = self.out_proj(self.merge_heads(out))  # (batch, seq_q, d_model)
        return out, weights

    @classmethod
    def from_torch(cls, module: nn.MultiheadAttention) -> MultiHeadAttention:
        """A copy of a batch-first ``nn.MultiheadAttention`` with the same weights.

        PyTorch stores the query, key and value projections stacked in one
        ``(3 * d_model, d_model)`` matrix ``in_proj_weight``; we split it in three.

        Raises:
            ValueError: ``module`` is not batch first, or has separate key/value sizes
                (``kdim``/``vdim``), bias only on some projections, or ``add_bias_kv``.
        """
        if not module.batch_first:
            raise ValueError("module must be built with batch_first=True.")
        if not module._qkv_same_embed_dim or module.bias_k is not None:
            raise ValueError("only modules without kdim/vdim and add_bias_kv are supported.")
        has_bias = module.in_proj_bias is not None
        if has_bias != (module.out_proj.bias is not None):
            raise ValueError("module must have biases on all projections or on none.")
        copy = cls(module.embed_dim, module.num_heads, dropout=module.dropout, bias=has_bias)
        copy = copy.to(device=module.in_proj_weight.device, dtype=module.in_proj_weight.dtype)
        with torch.no_grad():
            for index, proj in enumerate((copy.q_proj, copy.k_proj, copy.v_proj)):
                rows = slice(index * module.embed_dim, (index + 1) * module.embed_dim)
                proj.weight.copy_(module.in_proj_weight[rows])  # (d_model, d_model)
                if has_bias:
                    proj.bias.copy_(module.in_proj_bias[rows])  # (d_model,)
            copy.out_proj.load_state_dict(module.out_proj.state_dict())
        return copy


class LayerNorm(nn.Module):
    r"""Layer normalization (Ba et al., 2016), written out.

    .. math::
        \mathrm{LN}(x) = \gamma \odot \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta,
        \qquad \mu = \tfrac1d \textstyle\sum_i x_i, \quad
        \sigma^2 = \tfrac1d \textstyle\sum_i (x_i - \mu)^2

    The statistics are taken over the last dimension, separately for every token (not
    over the batch, as batch normalization does). The parameters are named ``weight``
    (:math:`\gamma`) and ``bias`` (:math:`\beta`) like ``nn.LayerNorm``'s, so state dicts
    load either way.

    Args:
        d_model: the size of the last dimension.
        eps: added to the variance to avoid dividing by zero.
        bias: whether to learn :math:`\beta` (some LLMs drop it).
    """

    def __init__(self, d_model: int, eps: float = 1e-5, bias: bool = True) -> None:
        super().__init__()
        _check_sizes(d_model, 1)
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps}.")
        self.d_model, self.eps = d_model, eps
        self.weight = nn.Parameter(torch.ones(d_model))  # gamma: (d_model,)
        self.bias = nn.Parameter(torch.zeros(d_model)) if bias else None  # beta: (d_model,)

    def forward(self, x: Tensor) -> Tensor:
        """Normalize ``x`` of shape ``(..., d_model)``; the result has the same shape."""
        if x.shape[-1] != self.d_model:
            raise ValueError(
                f"the last dimension of x must be d_model = {self.d_model}, "
                f"got shape {tuple(x.shape)}."
            )
        mean = x.mean(dim=-1, keepdim=True)  # (..., 1)
        var = x.var(dim=-1, keepdim=True, correction=0)  # (..., 1): divide by d, not d - 1
        x_hat = (x - mean) / torch.sqrt(var + self.eps)  # (..., d_model)
        out = x_hat * self.weight  # (..., d_model)
        return out + self.bias if self.bias is not None else out

    def extra_repr(self) -> str:
        return f"{self.d_model}, eps={self.eps}, bias={self.bias is not None}"


_ACTIVATIONS = {
    "gelu": nn.GELU,  # x * Phi(x), exact (with erf)
    "gelu_tanh": lambda: nn.GELU(approximate="tanh"),  # GPT-2's approximation
    "relu": nn.ReLU,  # max(0, x), the original Transformer's
}


class FeedForward(nn.Module):
    """The position-wise feed-forward network: ``Linear -> activation -> Linear``.

    The same two-layer network is applied to every position on its own: tokens do not
    exchange information here (attention did that); each token's vector is transformed.

    Args:
        d_model: input and output width.
        d_ff: hidden width (default ``4 * d_model``, as in the original Transformer).
        activation: ``"gelu"`` (default), ``"gelu_tanh"`` or ``"relu"``.
        bias: whether the two linear layers have biases.
    """

    def __init__(
        self,
        d_model: int,
        d_ff: int | None = None,
        activation: str = "gelu",
        bias: bool = True,
    ) -> None:
        super().__init__()
        d_ff = 4 * d_model if d_ff is None else d_ff
        _check_sizes(d_model, 1)
        _check_sizes(d_ff, 1)
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}."
            )
        self.fc1 = nn.Linear(d_model, d_ff, bias=bias)
        self.activation = _ACTIVATIONS[activation]()
        self.fc2 = nn.Linear(d_ff, d_model, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        """``(..., d_model)`` -> ``(..., d_model)``."""
        return self.fc2(self.activation(self.fc1(x)))  # (..., d_ff) inside


class TransformerBlock(nn.Module):
    """One Transformer block: self-attention, then feed-forward, each with a residual.

    With ``pre_norm=True`` (pre-LN; GPT-2 and most LLMs since)::

        x = x + dropout(attn(norm1(x)))
        x = x + dropout(ff(norm2(x)))

    With ``pre_norm=False`` (post-LN; the original Transformer and BERT)::

        x = norm1(x + dropout(attn(x)))
        x = norm2(x + dropout(ff(x)))

    In pre-LN the residual stream ``x`` is never normalized inside the block, so a stack
    of pre-LN blocks needs one final LayerNorm before the output layer.

    Args:
        d_model: the width of the residual stream.
        n_heads: attention heads; must divide ``d_model``.
        d_ff: feed-forward hidden width (default ``4 * d_model``).
        dropout: dropout on attention weights and on both residual branches.
        pre_norm: pre-LN (``True``) or post-LN (``False``).
        activation: the feed-forward activation (see :class:`FeedForward`).
        eps: the LayerNorms' epsilon.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int | None = None,
        dropout: float = 0.0,
        pre_norm: bool = True,
        activation: str = "gelu",
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        _check_dropout(dropout)
        self.pre_norm = pre_norm
        self.attn = MultiHeadAttention(d_model, n_heads, dropout=dropout)
        self.norm1 = LayerNorm(d_model, eps=eps)
        self.ff = FeedForward(d_model, d_ff, activation=activation)
        self.norm2 = LayerNorm(d_model, eps=eps)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        *,
        mask: Tensor | None = None,
        attention_mask: Tensor | None = None,
        causal: bool = False,
    ) -> Tensor:
        """``(batch, seq, d_model)`` -> ``(batch, seq, d_model)``.

        ``mask``, ``attention_mask`` and ``causal`` go to the attention; see
        :meth:`MultiHeadAttention.forward`.
        """
        masks = {"mask": mask, "attention_mask": attention_mask, "causal": causal}
        if self.pre_norm:
            x = x + self.dropout(self.attn(self.norm1(x), **masks)[0])  # (batch, seq, d_model)
            x = x + self.dropout(self.ff(self.norm2(x)))
        else:
            x = self.norm1(x + self.dropout(self.attn(x, **masks)[0]))
            x = self.norm2(x + self.dropout(self.ff(x)))
        return x

    @classmethod
    def from_torch(cls, layer: nn.TransformerEncoderLayer) -> TransformerBlock:
        """A copy of a batch-first ``nn.TransformerEncoderLayer`` with the same weights.

        ``norm_first`` maps to ``pre_norm``; the activation must be GELU or ReLU. (PyTorch's
        layer also applies dropout inside the feed-forward network; with dropout 0, or in
        eval mode, the two compute the same function.)

        Raises:
            ValueError: the layer's activation is not GELU or ReLU, or it is not batch first.
        """
        act = layer.activation
        if act is F.gelu or (isinstance(act, nn.GELU) and act.approximate == "none"):
            activation = "gelu"
        elif act is F.relu or isinstance(act, nn.ReLU):
            activation = "relu"
        else:
            raise ValueError(f"unsupported activation {act!r}: use GELU or ReLU.")
        attn = MultiHeadAttention.from_torch(layer.self_attn)
        block = cls(
            attn.d_model,
            attn.n_heads,
            d_ff=layer.linear1.out_features,
            dropout=layer.dropout.p,
            pre_norm=layer.norm_first,
            activation=activation,
            eps=layer.norm1.eps,
        ).to(device=layer.linear1.weight.device, dtype=layer.linear1.weight.dtype)
        block.attn = attn
        block.ff.fc1.load_state_dict(layer.linear1.state_dict())
        block.ff.fc2.load_state_dict(layer.linear2.state_dict())
        block.norm1.load_state_dict(layer.norm1.state_dict())
        block.norm2.load_state_dict(layer.norm2.state_dict())
        return block
