"""A small BERT-style encoder with its masked-language-model head, in one readable file.

Part IV's chapter *Masked language modelling* pretrains this model; its architecture is
BERT's (Devlin et al., 2019), assembled from the blocks Part III built:

- **embeddings**: token + learned position + *segment* (token type: sentence A or B), then
  a LayerNorm (BERT normalises the sum of the three);
- ``n_layers`` :class:`llmzero.models.transformer.TransformerBlock` blocks with
  **bidirectional** self-attention: every token sees every real token, left and right,
  and only padding is hidden (``attention_mask``). ``causal=True`` gives the blocks GPT's
  causal mask instead, a twin that differs from BERT only in what each position sees;
- the **masked-LM head**: a dense layer, GELU and LayerNorm (BERT's "transform"), then the
  token embedding matrix again (**weight tying**) plus one bias per vocabulary entry.

With ``pre_norm=False`` (the default, BERT's layout) every block is post-LN,
``norm(x + f(x))``, and :meth:`Bert.from_hf_bert` loads a Hugging Face
``BertForMaskedLM`` into it with the same logits. ``pre_norm=True`` gives pre-LN blocks
and one more LayerNorm after the last block (as GPT-2 and most later models have); it is
easier to train with a high learning rate, but has no Hugging Face twin here. Usage::

    from llmzero.models.bert import Bert, BertConfig

    model = Bert(BertConfig(vocab_size=4096, max_len=128))
    logits, loss = model(input_ids, labels)            # (B, T, V) and a scalar
    logits, loss = model(input_ids, labels, selected_only=True)  # (N, V): labelled only
    hidden = model.encode(input_ids, attention_mask)   # (B, T, C) contextual vectors

``labels`` follow :func:`llmzero.training.mlm.mask_tokens`: the original token at the
positions chosen for prediction, :data:`IGNORE_INDEX` (-100) everywhere else. Shapes in
comments use ``B`` (batch), ``T`` (sequence), ``C`` (``d_model``) and ``V``
(``vocab_size``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmzero.models.gpt import GPT
from llmzero.models.positional import LearnedPositionalEmbedding
from llmzero.models.transformer import LayerNorm, TransformerBlock

__all__ = ["IGNORE_INDEX", "Bert", "BertConfig"]

#: Positions whose label is this value are left out of the loss (PyTorch's cross-entropy
#: default ``ignore_index``; :mod:`llmzero.training.mlm` uses the same value).
IGNORE_INDEX = -100


@dataclass
class BertConfig:
    """The hyper-parameters of a :class:`Bert` model (BERT-base: ``d_model=768``,
    ``n_heads=12``, ``n_layers=12``, ``max_len=512``, ``vocab_size=30522``)."""

    #: How many distinct tokens there are.
    vocab_size: int
    #: The longest sequence the model can read (rows of the position table).
    max_len: int = 128
    #: The width of the residual stream.
    d_model: int = 128
    #: Attention heads per block; ``d_model`` must be a multiple of it.
    n_heads: int = 4
    #: Transformer blocks.
    n_layers: int = 2
    #: The hidden width of each feed-forward network (``None`` means ``4 * d_model``).
    d_ff: int | None = None
    #: Dropout on embeddings, attention weights and residual branches (0.1 in BERT).
    dropout: float = 0.0
    #: How many segment (token type) ids there are, 2 in BERT (sentence A, sentence B).
    type_vocab_size: int = 2
    #: Pre-LN blocks and a final LayerNorm (``True``) or BERT's post-LN blocks (``False``).
    pre_norm: bool = False
    #: The epsilon of every LayerNorm (BERT's is 1e-12).
    layer_norm_eps: float = 1e-12
    #: Give every block GPT's causal mask (a position sees itself and earlier positions
    #: only). BERT is ``False``; ``True`` makes a left-to-right twin of the same model, for
    #: experiments that change nothing but what each position can see.
    causal: bool = False

    def __post_init__(self) -> None:
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        for name in ("vocab_size", "max_len", "d_model", "n_heads", "n_layers", "d_ff"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if isinstance(self.type_vocab_size, bool) or not isinstance(self.type_vocab_size, int):
            raise ValueError(f"type_vocab_size must be an integer, got {self.type_vocab_size!r}.")
        if self.type_vocab_size < 1:
            raise ValueError("type_vocab_size must be at least 1 (one segment).")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads}): "
                "each head gets d_model // n_heads dimensions."
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")
        if not self.layer_norm_eps > 0:
            raise ValueError(f"layer_norm_eps must be positive, got {self.layer_norm_eps}.")


class Bert(nn.Module):
    """A BERT-style bidirectional encoder with a masked-language-model head."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        d_model, eps = config.d_model, config.layer_norm_eps
        self.token_embedding = nn.Embedding(config.vocab_size, d_model)  # (V, C)
        self.position_embedding = LearnedPositionalEmbedding(config.max_len, d_model)
        self.segment_embedding = nn.Embedding(config.type_vocab_size, d_model)  # (types, C)
        self.ln_embedding = LayerNorm(d_model, eps=eps)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(
                d_model,
                config.n_heads,
                d_ff=config.d_ff,
                dropout=config.dropout,
                pre_norm=config.pre_norm,
                activation="gelu",  # BERT's exact (erf) GELU
                eps=eps,
            )
            for _ in range(config.n_layers)
        )
        # Pre-LN leaves the stream un-normalised after the last block: normalise it once.
        self.ln_final = LayerNorm(d_model, eps=eps) if config.pre_norm else nn.Identity()
        # The masked-LM head: transform each vector, then score it against every token.
        self.head_dense = nn.Linear(d_model, d_model)
        self.head_activation = nn.GELU()
        self.head_ln = LayerNorm(d_model, eps=eps)
        self.head_bias = nn.Parameter(torch.zeros(config.vocab_size))  # (V,)
        self.apply(GPT._init_weights)  # N(0, 0.02) weights, zero biases, as BERT

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """The number of trainable parameters (the tied output matrix counted once).

        ``exclude_embeddings=True`` leaves out the token, position and segment tables.
        """
        total = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            tables = (self.token_embedding, self.position_embedding.embedding)
            total -= sum(t.weight.numel() for t in (*tables, self.segment_embedding))
        return total

    def encode(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
    ) -> Tensor:
        """The contextual vector of every position: ``(B, T)`` ids -> ``(B, T, C)``.

        Args:
            input_ids: token ids ``(B, T)``, ``T <= max_len``.
            attention_mask: optional ``(B, T)``, 1 at real tokens and 0 at padding (no
                query attends to a padded key); ``None`` means no padding.
            token_type_ids: optional ``(B, T)`` segment ids (0 for sentence A, 1 for B);
                ``None`` means all 0.

        Raises:
            ValueError: ``input_ids`` is not 2-D, or longer than ``max_len``.
        """
        if not isinstance(input_ids, Tensor) or input_ids.dim() != 2:
            shape = tuple(input_ids.shape) if isinstance(input_ids, Tensor) else input_ids
            raise ValueError(f"input_ids must have shape (batch, seq), got {shape}.")
        seq = input_ids.shape[1]  # T
        if seq > self.config.max_len:
            raise ValueError(
                f"sequence length {seq} exceeds max_len={self.config.max_len}: cut the "
                f"text into windows of at most {self.config.max_len} tokens."
            )
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)  # everything is sentence A
        positions = torch.arange(seq, device=input_ids.device)  # (T,)
        x = (
            self.token_embedding(input_ids)  # (B, T, C)
            + self.position_embedding(positions)  # (T, C), broadcast over the batch
            + self.segment_embedding(token_type_ids)  # (B, T, C)
        )
        x = self.dropout(self.ln_embedding(x))  # (B, T, C)
        for block in self.blocks:
            x = block(x, attention_mask=attention_mask, causal=self.config.causal)  # (B, T, C)
        return self.ln_final(x)  # (B, T, C)

    def mlm_logits(self, hidden: Tensor) -> Tensor:
        """The masked-LM head: ``(..., C)`` vectors -> ``(..., V)`` logits over tokens."""
        h = self.head_ln(self.head_activation(self.head_dense(hidden)))  # (..., C)
        return h @ self.token_embedding.weight.T + self.head_bias  # (..., V): tied weights

    def forward(
        self,
        input_ids: Tensor,
        labels: Tensor | None = None,
        *,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        selected_only: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Masked-LM logits and, with ``labels``, the mean cross-entropy at labelled positions.

        Args:
            input_ids: (corrupted) token ids ``(B, T)``.
            labels: optional ``(B, T)``: the original token where the model must predict
                one, :data:`IGNORE_INDEX` elsewhere.
            attention_mask, token_type_ids: see :meth:`encode`.
            selected_only: run the head only at the labelled positions (needs ``labels``).
                Only about 15% of positions have a label, and the head's ``C x V`` product
                is the largest matrix product of a small model, so this saves most of the
                head's work; the loss is the same.

        Returns:
            ``(logits, loss)``. Logits are ``(B, T, V)``, or with ``selected_only`` ``(N,
            V)`` for the ``N`` labelled positions in row-major order (so they line up
            with ``labels[labels != IGNORE_INDEX]``). The loss is ``None`` without labels.

        Raises:
            ValueError: ``selected_only`` without ``labels``, or ``labels`` of another shape.
        """
        if labels is not None and labels.shape != input_ids.shape:
            raise ValueError(
                f"labels must have the shape of input_ids {tuple(input_ids.shape)}, "
                f"got {tuple(labels.shape)}."
            )
        if selected_only and labels is None:
            raise ValueError("selected_only=True needs labels to know which positions to score.")
        hidden = self.encode(input_ids, attention_mask, token_type_ids)  # (B, T, C)
        if labels is None:
            return self.mlm_logits(hidden), None
        if selected_only:
            selected = labels != IGNORE_INDEX  # (B, T)
            logits = self.mlm_logits(hidden[selected])  # (N, V)
            return logits, F.cross_entropy(logits, labels[selected])
        logits = self.mlm_logits(hidden)  # (B, T, V)
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX
        )
        return logits, loss

    # ----------------------------------------------------------------------------------
    # Loading a Hugging Face BertForMaskedLM
    # ----------------------------------------------------------------------------------

    @staticmethod
    def hf_name(name: str) -> str:
        """The Hugging Face ``BertForMaskedLM`` name of one of our parameter names."""
        fixed = {
            "token_embedding.weight": "bert.embeddings.word_embeddings.weight",
            "position_embedding.embedding.weight": "bert.embeddings.position_embeddings.weight",
            "segment_embedding.weight": "bert.embeddings.token_type_embeddings.weight",
            "ln_embedding.weight": "bert.embeddings.LayerNorm.weight",
            "ln_embedding.bias": "bert.embeddings.LayerNorm.bias",
            "head_dense.weight": "cls.predictions.transform.dense.weight",
            "head_dense.bias": "cls.predictions.transform.dense.bias",
            "head_ln.weight": "cls.predictions.transform.LayerNorm.weight",
            "head_ln.bias": "cls.predictions.transform.LayerNorm.bias",
            "head_bias": "cls.predictions.bias",
        }
        if name in fixed:
            return fixed[name]
        _, index, rest = name.split(".", 2)  # "blocks", "3", "attn.q_proj.weight"
        module, kind = rest.rsplit(".", 1)
        inside = {
            "attn.q_proj": "attention.self.query",
            "attn.k_proj": "attention.self.key",
            "attn.v_proj": "attention.self.value",
            "attn.out_proj": "attention.output.dense",
            "norm1": "attention.output.LayerNorm",
            "ff.fc1": "intermediate.dense",
            "ff.fc2": "output.dense",
            "norm2": "output.LayerNorm",
        }
        if module not in inside:
            raise KeyError(f"no Hugging Face counterpart for {name!r}.")
        return f"bert.encoder.layer.{index}.{inside[module]}.{kind}"

    @classmethod
    def from_hf_bert(cls, hf_model: Any, dropout: float = 0.0) -> Bert:
        """A :class:`Bert` with the configuration and weights of a Hugging Face
        ``transformers.BertForMaskedLM`` (pretrained or not), computing the same logits.

        Raises:
            ValueError: the model uses settings this class does not implement (another
                activation, relative positions, untied embeddings), or its weights do not
                fit.
        """
        hf = hf_model.config
        unsupported = {
            "hidden_act": hf.hidden_act != "gelu",
            "position_embedding_type": getattr(hf, "position_embedding_type", "absolute")
            != "absolute",
            "tie_word_embeddings": not getattr(hf, "tie_word_embeddings", True),
            "is_decoder": getattr(hf, "is_decoder", False),
        }
        if any(unsupported.values()):
            raise ValueError(
                "Bert implements BERT's standard encoder only; unsupported settings: "
                f"{[name for name, bad in unsupported.items() if bad]}."
            )
        config = BertConfig(
            vocab_size=hf.vocab_size,
            max_len=hf.max_position_embeddings,
            d_model=hf.hidden_size,
            n_heads=hf.num_attention_heads,
            n_layers=hf.num_hidden_layers,
            d_ff=hf.intermediate_size,
            dropout=dropout,
            type_vocab_size=hf.type_vocab_size,
            pre_norm=False,
            layer_norm_eps=hf.layer_norm_eps,
        )
        model = cls(config)
        theirs = hf_model.state_dict()
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                tensor = theirs.get(cls.hf_name(name))
                if tensor is None or tensor.shape != parameter.shape:
                    found = None if tensor is None else tuple(tensor.shape)
                    raise ValueError(
                        f"{name}: Hugging Face {cls.hf_name(name)} is {found}, "
                        f"ours is {tuple(parameter.shape)}."
                    )
                parameter.copy_(tensor)
        return model
