"""A small encoder–decoder Transformer, in one readable file, in the spirit of nanoGPT.

Part III's chapter *Encoders and encoder–decoders* builds cross-attention step by step and
trains this model on a transduction task (numbers written with digits to English words).
The architecture is the original Transformer's (Vaswani et al., 2017) with the pre-LayerNorm
blocks that T5 and most later models use:

- one token embedding shared by the encoder, the decoder and the output layer (**weight
  tying**, as in T5 and BART), plus learned position embeddings, one table for source
  positions and one for target positions;
- an **encoder**: ``n_encoder_layers`` blocks of *bidirectional* self-attention (every
  source token sees every real source token) and a feed-forward network;
- a **decoder**: ``n_decoder_layers`` blocks of *causal* self-attention (a target token
  sees only itself and earlier target tokens), then **cross-attention** (queries from the
  decoder, keys and values from the encoder's output), then a feed-forward network;
- greedy decoding: encode the source once, then append the most probable next token until
  every sequence has produced the end-of-sequence token; and beam search
  (:meth:`Seq2Seq.beam_search`), which runs :func:`llmzero.models.decoding.beam_search` on
  the decoder with the source encoded once.

The attention and feed-forward layers are :class:`llmzero.models.transformer.MultiHeadAttention`
and :class:`llmzero.models.transformer.FeedForward`; cross-attention is the same module called with
a second sequence as its keys and values. Usage::

    from llmzero.models.seq2seq import Seq2Seq, Seq2SeqConfig

    model = Seq2Seq(Seq2SeqConfig(vocab_size=48, max_src_len=8, max_tgt_len=10))
    logits, loss = model(src_ids, tgt_in, targets)    # (B, T, V) and a scalar
    out = model.generate(src_ids, max_new_tokens=10)  # (B, <= 10) token ids
    best = model.beam_search(src_ids[:1], max_new_tokens=10, num_beams=4)  # (<= 10,)

Shapes in comments use ``B`` (batch), ``S`` (source length), ``T`` (target length), ``C``
(``d_model``), ``H`` (``n_heads``) and ``V`` (``vocab_size``). Sources are padded on the
right with ``pad_id`` and must hold at least one real token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmzero.models.decoding import ModelRunner, beam_search
from llmzero.models.gpt import GPT
from llmzero.models.positional import LearnedPositionalEmbedding
from llmzero.models.transformer import FeedForward, MultiHeadAttention

__all__ = [
    "IGNORE_INDEX",
    "DecoderBlock",
    "DecoderRunner",
    "EncoderBlock",
    "Seq2Seq",
    "Seq2SeqConfig",
]

#: Target positions holding this value are left out of the loss (the default
#: ``ignore_index`` of PyTorch's cross-entropy, and Hugging Face's convention).
IGNORE_INDEX = -100


@dataclass
class Seq2SeqConfig:
    """The hyper-parameters of a :class:`Seq2Seq` model."""

    #: How many distinct tokens there are (source and target share one vocabulary).
    vocab_size: int
    #: The longest source the encoder can read.
    max_src_len: int = 32
    #: The longest target the decoder can read (decoder input, including the start token).
    max_tgt_len: int = 32
    #: The width of the residual stream.
    d_model: int = 64
    #: Attention heads per attention layer; ``d_model`` must be a multiple of it.
    n_heads: int = 4
    #: Blocks in the encoder.
    n_encoder_layers: int = 2
    #: Blocks in the decoder.
    n_decoder_layers: int = 2
    #: The hidden width of each feed-forward network (usually ``4 * d_model``).
    d_ff: int = 256
    #: Dropout probability (embeddings, attention weights, residual branches).
    dropout: float = 0.0
    #: The padding token; padded source positions are hidden from every query.
    pad_id: int = 0
    #: The token the decoder starts from (beginning of sequence).
    bos_id: int = 1
    #: The token that ends a target sequence (end of sequence).
    eos_id: int = 2

    def __post_init__(self) -> None:
        names = ("vocab_size", "max_src_len", "max_tgt_len", "d_model", "n_heads", "d_ff")
        for name in (*names, "n_encoder_layers", "n_decoder_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads}): "
                "each head gets d_model // n_heads dimensions."
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")
        for name in ("pad_id", "bos_id", "eos_id"):
            if not 0 <= getattr(self, name) < self.vocab_size:
                raise ValueError(f"{name} must be a token id below vocab_size={self.vocab_size}.")


class EncoderBlock(nn.Module):
    """Bidirectional self-attention and a feed-forward network, each pre-LayerNorm + residual."""

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        self.ln_attn = nn.LayerNorm(config.d_model)
        self.self_attn = MultiHeadAttention(config.d_model, config.n_heads, config.dropout)
        self.ln_ff = nn.LayerNorm(config.d_model)
        self.ff = FeedForward(config.d_model, config.d_ff)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, src_attention: Tensor) -> Tensor:
        """One encoder block.

        Args:
            x: the encoder's stream, ``(B, S, C)``.
            src_attention: ``(B, S)``, 1 at real source tokens and 0 at padding.

        Returns:
            The new stream, ``(B, S, C)``.
        """
        attended, _ = self.self_attn(self.ln_attn(x), attention_mask=src_attention)  # (B, S, C)
        x = x + self.dropout(attended)
        return x + self.dropout(self.ff(self.ln_ff(x)))  # (B, S, C)


class DecoderBlock(nn.Module):
    """Causal self-attention, cross-attention to the encoder, then a feed-forward network."""

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        self.ln_self = nn.LayerNorm(config.d_model)
        self.self_attn = MultiHeadAttention(config.d_model, config.n_heads, config.dropout)
        self.ln_cross = nn.LayerNorm(config.d_model)
        self.cross_attn = MultiHeadAttention(config.d_model, config.n_heads, config.dropout)
        self.ln_ff = nn.LayerNorm(config.d_model)
        self.ff = FeedForward(config.d_model, config.d_ff)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self, x: Tensor, memory: Tensor, src_attention: Tensor, need_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """One decoder block.

        Args:
            x: the decoder's stream, ``(B, T, C)``.
            memory: the encoder's output, ``(B, S, C)``.
            src_attention: ``(B, S)``, 1 at real source tokens and 0 at padding.
            need_weights: also return the cross-attention weights.

        Returns:
            The new stream ``(B, T, C)`` and the cross-attention weights ``(B, H, T, S)``
            (``None`` unless ``need_weights``).
        """
        attended, _ = self.self_attn(self.ln_self(x), causal=True)  # (B, T, C)
        x = x + self.dropout(attended)
        # Cross-attention: queries from the decoder, keys and values from the encoder. No
        # causal mask here: the whole source is known before decoding starts.
        looked_up, cross_weights = self.cross_attn(
            self.ln_cross(x), memory, attention_mask=src_attention, need_weights=need_weights
        )  # (B, T, C), (B, H, T, S) or None
        x = x + self.dropout(looked_up)
        return x + self.dropout(self.ff(self.ln_ff(x))), cross_weights  # (B, T, C)


class Seq2Seq(nn.Module):
    """An encoder–decoder Transformer: read a source sequence, write a target sequence."""

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.d_model)  # (V, C)
        self.src_position = LearnedPositionalEmbedding(config.max_src_len, config.d_model)
        self.tgt_position = LearnedPositionalEmbedding(config.max_tgt_len, config.d_model)
        self.dropout = nn.Dropout(config.dropout)
        self.encoder = nn.ModuleList(EncoderBlock(config) for _ in range(config.n_encoder_layers))
        self.ln_encoder = nn.LayerNorm(config.d_model)
        self.decoder = nn.ModuleList(DecoderBlock(config) for _ in range(config.n_decoder_layers))
        self.ln_decoder = nn.LayerNorm(config.d_model)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.apply(GPT._init_weights)  # GPT-2's: N(0, 0.02) weights, zero biases
        self.lm_head.weight = self.token_embedding.weight  # weight tying: one (V, C) matrix

    def num_parameters(self) -> int:
        """The number of trainable parameters (the tied output matrix counted once)."""
        return sum(p.numel() for p in self.parameters())

    def source_attention(self, src_ids: Tensor) -> Tensor:
        """``(B, S)`` token ids -> ``(B, S)`` attention mask: 1 at real tokens, 0 at padding.

        Raises:
            ValueError: a source holds only padding (no key would be left to attend to).
        """
        real = (src_ids != self.config.pad_id).long()  # (B, S)
        if not bool(real.any(dim=1).all()):
            raise ValueError("every source must hold at least one token that is not pad_id.")
        return real

    def encode(self, src_ids: Tensor) -> Tensor:
        """Read the source: ``(B, S)`` token ids -> the encoder's output ``(B, S, C)``.

        Raises:
            ValueError: ``S`` is larger than ``max_src_len``, or a source is all padding.
        """
        src_len = src_ids.shape[1]  # S
        if src_len > self.config.max_src_len:
            raise ValueError(
                f"source length {src_len} exceeds max_src_len={self.config.max_src_len}."
            )
        src_attention = self.source_attention(src_ids)  # (B, S)
        positions = torch.arange(src_len, device=src_ids.device)  # (S,)
        x = self.token_embedding(src_ids) + self.src_position(positions)  # (B, S, C)
        x = self.dropout(x)
        for block in self.encoder:
            x = block(x, src_attention)  # (B, S, C)
        return self.ln_encoder(x)  # (B, S, C): the "memory" the decoder looks up

    def decode(
        self, tgt_ids: Tensor, memory: Tensor, src_attention: Tensor, need_weights: bool = False
    ) -> tuple[Tensor, list[Tensor]]:
        """Write: ``(B, T)`` decoder inputs and the encoder's output -> next-token logits.

        Args:
            tgt_ids: decoder inputs ``(B, T)``, starting with ``bos_id``.
            memory: the encoder's output ``(B, S, C)``.
            src_attention: ``(B, S)``, 1 at real source tokens, 0 at padding.
            need_weights: also return the cross-attention weights.

        Returns:
            The logits ``(B, T, V)`` (position ``t`` predicts target token ``t``, having seen
            decoder inputs ``0..t``) and, with ``need_weights``, each decoder layer's
            cross-attention weights, a list of ``n_decoder_layers`` tensors ``(B, H, T, S)``
            (otherwise an empty list).

        Raises:
            ValueError: ``T`` is larger than ``max_tgt_len``.
        """
        tgt_len = tgt_ids.shape[1]  # T
        if tgt_len > self.config.max_tgt_len:
            raise ValueError(
                f"target length {tgt_len} exceeds max_tgt_len={self.config.max_tgt_len}."
            )
        positions = torch.arange(tgt_len, device=tgt_ids.device)  # (T,)
        x = self.token_embedding(tgt_ids) + self.tgt_position(positions)  # (B, T, C)
        x = self.dropout(x)
        cross_weights = []
        for block in self.decoder:
            x, weights = block(x, memory, src_attention, need_weights)  # (B, T, C)
            if weights is not None:
                cross_weights.append(weights)  # (B, H, T, S)
        return self.lm_head(self.ln_decoder(x)), cross_weights  # (B, T, V)

    def forward(
        self, src_ids: Tensor, tgt_ids: Tensor, targets: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Logits for every target position, and the loss if ``targets`` are given.

        Args:
            src_ids: source token ids, ``(B, S)``, padded on the right with ``pad_id``.
            tgt_ids: decoder inputs, ``(B, T)``: ``bos_id`` followed by the target shifted
                right by one (**teacher forcing**).
            targets: optional ``(B, T)``, the token each position should predict; positions
                set to :data:`IGNORE_INDEX` (-100) do not count.

        Returns:
            ``(logits, loss)``: logits ``(B, T, V)``; the mean cross-entropy over the
            counted target positions, or ``None`` without ``targets``.
        """
        memory = self.encode(src_ids)  # (B, S, C)
        logits, _ = self.decode(tgt_ids, memory, self.source_attention(src_ids))  # (B, T, V)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX
        )
        return logits, loss

    @torch.no_grad()
    def generate(self, src_ids: Tensor, max_new_tokens: int) -> Tensor:
        """Greedy decoding: at every step append the most probable next token.

        The source is encoded once; the decoder then re-reads its whole output so far at
        every step (no key–value cache, to keep the code short). A sequence that has
        produced ``eos_id`` is padded with ``pad_id`` afterwards; decoding stops when every
        sequence has ended or after ``max_new_tokens`` tokens. Call ``model.eval()`` first
        if the model uses dropout.

        Args:
            src_ids: ``(B, S)`` source token ids.
            max_new_tokens: at most this many tokens per sequence (at most ``max_tgt_len``).

        Returns:
            ``(B, n)`` generated token ids, without the start token, ``n <= max_new_tokens``;
            each row ends with ``eos_id`` (then padding) unless it ran out of steps.

        Raises:
            ValueError: ``max_new_tokens`` is not between 1 and ``max_tgt_len``.
        """
        if not 1 <= max_new_tokens <= self.config.max_tgt_len:
            raise ValueError(
                f"max_new_tokens must be between 1 and max_tgt_len={self.config.max_tgt_len}, "
                f"got {max_new_tokens}."
            )
        memory = self.encode(src_ids)  # (B, S, C)
        src_attention = self.source_attention(src_ids)  # (B, S)
        batch = src_ids.shape[0]  # B
        out = torch.full((batch, 1), self.config.bos_id, dtype=torch.long, device=src_ids.device)
        finished = torch.zeros(batch, dtype=torch.bool, device=src_ids.device)  # (B,)
        for _ in range(max_new_tokens):
            logits, _ = self.decode(out, memory, src_attention)  # (B, t, V)
            next_id = logits[:, -1].argmax(dim=-1)  # (B,): the most probable next token
            next_id = torch.where(finished, self.config.pad_id, next_id)  # pad ended rows
            out = torch.cat([out, next_id[:, None]], dim=1)  # (B, t + 1)
            finished |= next_id == self.config.eos_id
            if bool(finished.all()):
                break
        return out[:, 1:]  # drop the start token

    @torch.no_grad()
    def beam_search(
        self,
        src_ids: Tensor,
        max_new_tokens: int,
        num_beams: int,
        length_penalty: float = 1.0,
    ) -> Tensor:
        """Beam search for one source, with :func:`llmzero.models.decoding.beam_search`.

        The source is encoded once; every beam reads the same encoder output. Hypotheses are
        ranked by total log-probability divided by ``length ** length_penalty`` (Hugging
        Face's rule). With ``num_beams=1`` the result is the greedy one.

        Args:
            src_ids: ``(1, S)`` source token ids (one source; loop over a batch).
            max_new_tokens: at most this many tokens (at most ``max_tgt_len``).
            num_beams: how many partial translations are kept at each step.
            length_penalty: the exponent of the length normalisation.

        Returns:
            ``(n,)`` token ids of the best hypothesis, without the start token; it ends with
            ``eos_id`` unless it ran out of steps.

        Raises:
            ValueError: ``src_ids`` holds more than one source, or ``max_new_tokens`` is not
                between 1 and ``max_tgt_len``.
        """
        if src_ids.dim() != 2 or src_ids.shape[0] != 1:
            raise ValueError(
                f"beam_search takes one source of shape (1, S), got {tuple(src_ids.shape)}; "
                "loop over the sources."
            )
        if not 1 <= max_new_tokens <= self.config.max_tgt_len:
            raise ValueError(
                f"max_new_tokens must be between 1 and max_tgt_len={self.config.max_tgt_len}, "
                f"got {max_new_tokens}."
            )
        runner = DecoderRunner(self, src_ids)
        start = torch.full((1, 1), self.config.bos_id, dtype=torch.long, device=src_ids.device)
        result = beam_search(
            runner,
            start,
            max_new_tokens,
            num_beams,
            eos_token_id=self.config.eos_id,
            length_penalty=length_penalty,
            use_cache=False,
        )
        return result.sequences[0, 1:]  # drop the start token


class DecoderRunner(ModelRunner):
    """The decoder of a :class:`Seq2Seq` as a causal language model over target tokens.

    ``runner(tgt_ids)`` takes decoder inputs ``(N, T)`` (any number of beams) and returns
    the next-token logits ``(N, V)``, every row reading the one source encoded at
    construction; so the decoding loops of :mod:`llmzero.models.decoding` (greedy, sampling,
    beam search) run on an encoder–decoder unchanged. No cache: each call re-reads the
    target so far, and reordering beams needs nothing, since all rows share the source.
    """

    def __init__(self, model: Seq2Seq, src_ids: Tensor) -> None:
        if src_ids.dim() != 2 or src_ids.shape[0] != 1:
            raise ValueError(f"expected one source of shape (1, S), got {tuple(src_ids.shape)}.")
        super().__init__(model, use_cache=False)
        self.memory = model.encode(src_ids)  # (1, S, C)
        self.src_attention = model.source_attention(src_ids)  # (1, S)

    def reorder(self, index: Tensor) -> None:
        """Nothing to reorder: every beam reads the same source."""

    @torch.no_grad()
    def __call__(self, ids: Tensor) -> Tensor:
        rows = ids.shape[0]  # N beams
        memory = self.memory.expand(rows, -1, -1)  # (N, S, C)
        logits, _ = self.model.decode(ids, memory, self.src_attention.expand(rows, -1))
        return logits[:, -1, :].float()  # (N, V)
