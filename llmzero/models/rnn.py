"""A character-level LSTM language model, in one readable file.

Part II's chapter *Language models before Transformers* builds this model step by step
and compares it with n-gram models. The architecture is the classic recurrent language
model (Hochreiter & Schmidhuber, 1997; Karpathy's char-rnn): embed each token, run an
LSTM over the sequence, and map every hidden state to logits for the next token::

    from llmzero.models.rnn import CharLSTM, CharLSTMConfig, get_batch, heldout_nll

    model = CharLSTM(CharLSTMConfig(vocab_size=65, n_embd=32, n_hidden=256))
    inputs, targets = get_batch(train_ids, batch_size=32, block_size=64, generator=gen)
    logits, loss, state = model(inputs, targets)     # (B, T, V), scalar, (h, c)
    out = model.generate(prompt, max_new_tokens=200, temperature=0.8, generator=gen)
    nll = heldout_nll(model, heldout_ids)            # nats per token, state carried

Unlike a Transformer, the model has no context window: the recurrent state ``(h, c)``
carries everything it remembers from the past, so it can read text of any length, one
token at a time, at constant cost per token.

Shapes in comments use ``B`` (batch), ``T`` (sequence length), ``E`` (``n_embd``),
``H`` (``n_hidden``), ``L`` (``n_layer``) and ``V`` (``vocab_size``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmzero.core.information import sample_with_temperature

__all__ = ["CharLSTM", "CharLSTMConfig", "RandomBatches", "get_batch", "heldout_nll"]


@dataclass
class CharLSTMConfig:
    """The hyper-parameters of a :class:`CharLSTM`."""

    #: How many distinct tokens there are (65 characters for tiny Shakespeare).
    vocab_size: int = 65
    #: The size of each token's embedding vector.
    n_embd: int = 32
    #: The size of the LSTM's hidden and cell states (all the model can remember).
    n_hidden: int = 256
    #: How many LSTM layers are stacked.
    n_layer: int = 1
    #: Dropout between stacked LSTM layers and before the output layer (0.0 turns it off).
    dropout: float = 0.0
    #: The initial bias of the forget gate. A positive value starts the gate near "keep",
    #: which helps gradients flow through long sequences (Jozefowicz et al., 2015, use 1).
    forget_bias: float = 1.0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_embd", "n_hidden", "n_layer"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")


class CharLSTM(nn.Module):
    """An LSTM language model: embedding, ``n_layer`` LSTM layers, linear head.

    ``forward(idx, targets=None, state=None)`` returns ``(logits, loss, state)``: logits
    of shape ``(B, T, V)`` for every position, the mean cross-entropy against ``targets``
    (``None`` without targets; targets equal to ``-1`` are ignored), and the final
    recurrent state, which can be passed back in to continue reading the same text.
    """

    def __init__(self, config: CharLSTMConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.n_embd)
        self.lstm = nn.LSTM(
            config.n_embd,
            config.n_hidden,
            num_layers=config.n_layer,
            batch_first=True,
            dropout=config.dropout if config.n_layer > 1 else 0.0,
        )
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.n_hidden, config.vocab_size)
        with torch.no_grad():
            # PyTorch orders each LSTM bias as [input, forget, cell, output] gates, H each;
            # the two biases (b_ih, b_hh) add up, so put the whole forget bias in one.
            hidden = config.n_hidden
            for name, parameter in self.lstm.named_parameters():
                if name.startswith("bias_ih"):
                    parameter[hidden : 2 * hidden].fill_(config.forget_bias)
                elif name.startswith("bias_hh"):
                    parameter[hidden : 2 * hidden].zero_()
            # A small output layer makes the first predictions nearly uniform: loss ~ ln V.
            nn.init.normal_(self.head.weight, mean=0.0, std=0.01)
            nn.init.zeros_(self.head.bias)

    def num_parameters(self) -> int:
        """How many parameters the model has."""
        return sum(p.numel() for p in self.parameters())

    def forward(
        self,
        idx: Tensor,
        targets: Tensor | None = None,
        state: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor | None, tuple[Tensor, Tensor]]:
        """Logits for every position of ``idx`` (``(B, T)`` token ids), the loss, the state.

        ``state`` is the recurrent state ``(h, c)``, hidden and cell states of shape
        ``(L, B, H)`` each, as returned by an earlier call; ``None`` starts from zeros
        (nothing read yet).
        """
        if idx.dim() != 2:
            raise ValueError(f"idx must have shape (batch, seq), got {tuple(idx.shape)}.")
        batch, seq = idx.shape  # (B, T)
        x = self.embedding(idx)  # (B, T, E)
        hidden, state = self.lstm(x, state)  # (B, T, H); state: (L, B, H) twice
        logits = self.head(self.drop(hidden))  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(
                logits.reshape(batch * seq, -1),  # (B*T, V)
                targets.reshape(batch * seq),  # (B*T,)
                ignore_index=-1,
            )
        return logits, loss, state

    @torch.no_grad()
    def generate(
        self,
        idx: Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Extend ``idx`` (``(B, T)`` token ids, ``T >= 1``) by ``max_new_tokens`` tokens.

        The prompt is read once; then each new token is sampled from
        ``softmax(logits / temperature)`` with ``generator`` (on the model's device; pass
        a seeded one for reproducible samples) and fed back in with the carried state, so
        each step costs the same however long the text already is. Dropout is off while
        generating; the model's train/eval mode is restored afterwards. Returns
        ``(B, T + max_new_tokens)``.
        """
        if idx.dim() != 2 or idx.shape[1] < 1:
            raise ValueError(f"idx must have shape (batch, seq) with seq >= 1, got {idx.shape}.")
        was_training = self.training
        self.eval()
        try:
            logits, _, state = self(idx)  # read the prompt: (B, T, V)
            out = [idx]
            for _ in range(max_new_tokens):
                next_id = sample_with_temperature(logits[:, -1, :], temperature, generator)  # (B,)
                next_id = next_id[:, None]  # (B, 1)
                out.append(next_id)
                logits, _, state = self(next_id, state=state)  # (B, 1, V)
        finally:
            self.train(was_training)
        return torch.cat(out, dim=1)  # (B, T + max_new_tokens)


def get_batch(
    ids: Tensor, batch_size: int, block_size: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """A batch of ``batch_size`` random windows of ``ids`` and their next-token targets.

    Each window starts at a uniformly random offset; the targets are the same window
    shifted one token to the left, so ``targets[b, t] == ids[start_b + t + 1]``.

    Args:
        ids: a long 1-d tensor of token ids, e.g. a whole encoded text.
        batch_size: how many windows.
        block_size: the length ``T`` of each window; ``len(ids)`` must exceed it.
        generator: an optional ``torch.Generator`` for reproducible batches.

    Returns:
        ``(inputs, targets)``, each of shape ``(batch_size, block_size)``, on ``ids``'s device.
    """
    if ids.dim() != 1:
        raise ValueError(f"ids must be 1-d, got shape {tuple(ids.shape)}.")
    if len(ids) <= block_size:
        raise ValueError(f"need more than block_size={block_size} ids, got {len(ids)}.")
    starts = torch.randint(0, len(ids) - block_size, (batch_size, 1), generator=generator)  # (B, 1)
    offsets = torch.arange(block_size + 1)  # (T + 1,)
    windows = ids[(starts + offsets).to(ids.device)]  # (B, T + 1)
    return windows[:, :-1], windows[:, 1:]  # (B, T) each


class RandomBatches:
    """``n_batches`` batches from :func:`get_batch`, an iterable that ``training.loop.fit`` accepts.

    Each pass draws fresh windows from one seeded generator, so the whole sequence of
    batches is reproducible from ``seed``.
    """

    def __init__(
        self, ids: Tensor, batch_size: int, block_size: int, n_batches: int, seed: int = 0
    ) -> None:
        self.ids, self.batch_size, self.block_size = ids, batch_size, block_size
        self.n_batches = n_batches
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.n_batches

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for _ in range(self.n_batches):
            yield get_batch(self.ids, self.batch_size, self.block_size, self.generator)


@torch.no_grad()
def heldout_nll(model: CharLSTM, ids: Tensor, n_streams: int = 16, chunk_len: int = 256) -> float:
    """The mean negative log-likelihood (nats per token) of ``ids[1:]`` given what precedes it.

    The text is cut into ``n_streams`` contiguous pieces that are read side by side, in
    chunks of ``chunk_len`` tokens, with the recurrent state carried from chunk to chunk:
    every token is predicted from everything before it in its piece, not from a short
    window. (Only the first token of each piece has no context; it is not scored.) Leftover
    tokens that do not fill the last row are dropped. The model is put in eval mode.

    Args:
        model: the language model.
        ids: a 1-d tensor of token ids (the held-out text).
        n_streams: how many pieces are read in parallel (a batch).
        chunk_len: how many tokens are fed per forward call.

    Returns:
        The mean NLL in nats; ``exp`` of it is the per-token perplexity.
    """
    model.eval()
    device = next(model.parameters()).device
    piece = len(ids) // n_streams
    if piece < 2:
        raise ValueError(f"{len(ids)} ids are too few for {n_streams} streams.")
    streams = ids[: n_streams * piece].view(n_streams, piece).to(device)  # (B, piece)
    total, count, state = 0.0, 0, None
    for start in range(0, piece - 1, chunk_len):
        inputs = streams[:, start : start + chunk_len]  # (B, <= chunk_len)
        targets = streams[:, start + 1 : start + 1 + chunk_len]  # (B, <= chunk_len)
        inputs = inputs[:, : targets.shape[1]]  # the last chunk has one target fewer
        logits, _, state = model(inputs, state=state)  # (B, t, V)
        nll = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum"
        )
        total += nll.item()
        count += targets.numel()
    return total / count
