"""Word2vec: skip-gram with negative sampling (SGNS), in PyTorch.

Built step by step in the chapter *Representing text*. The recipe is the one of Mikolov
et al. (2013): every word gets two vectors, a *center* vector used when the word is in the
middle of a window and a *context* vector used when it is one of the neighbours. Training
pushes the dot product of a real (center, context) pair up and that of the center with a
few random *negative* words down::

    from llmzero.text.word2vec import (
        SkipGramNS,
        build_vocab,
        noise_distribution,
        sample_negatives,
        skipgram_pairs,
    )

    vocab = build_vocab(tokens, min_count=5)
    ids = vocab.encode(tokens)                              # (n_tokens,)
    centers, contexts = skipgram_pairs(ids, window=2)       # (n_pairs,) each
    noise = noise_distribution(vocab.counts)                # (vocab,), unigram ** 0.75
    model = SkipGramNS(len(vocab), dim=64)
    negatives = sample_negatives(noise, (len(centers), 5))  # (n_pairs, 5)
    loss = model(centers, contexts, negatives)              # a scalar to minimise

After training, ``model.embeddings()`` holds one vector per word; :func:`nearest_neighbours`
and :func:`analogy` query them by cosine similarity.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "SkipGramNS",
    "Vocabulary",
    "analogy",
    "build_vocab",
    "keep_probabilities",
    "nearest_neighbours",
    "noise_distribution",
    "sample_negatives",
    "sgns_loss",
    "skipgram_pairs",
    "subsample_mask",
]


@dataclass
class Vocabulary:
    """The words a model knows, most frequent first, with their corpus counts.

    Args:
        words: the known words; a word's position in this list is its id.
        counts: how often each word occurs in the training text, shape ``(vocab,)``.

    ``vocab.index[word]`` is a word's id, ``word in vocab`` tests membership and
    ``len(vocab)`` is the number of words.
    """

    words: list[str]
    counts: torch.Tensor
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.words) != len(self.counts):
            raise ValueError(f"{len(self.words)} words but {len(self.counts)} counts.")
        self.index = {word: i for i, word in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    def encode(self, tokens: Iterable[str]) -> torch.Tensor:
        """The ids of ``tokens``, leaving out words that are not in the vocabulary.

        Returns:
            An int64 tensor of shape ``(n_known_tokens,)``.
        """
        ids = [self.index[token] for token in tokens if token in self.index]
        return torch.tensor(ids, dtype=torch.long)


def build_vocab(
    tokens: Iterable[str], min_count: int = 5, max_size: int | None = None
) -> Vocabulary:
    """Count ``tokens`` and keep the words seen at least ``min_count`` times.

    Words are sorted by count, most frequent first (ties in order of first appearance);
    ``max_size`` keeps only that many of the most frequent words.
    """
    if min_count < 1:
        raise ValueError(f"min_count must be at least 1, got {min_count}.")
    counted = [(w, c) for w, c in Counter(tokens).most_common(max_size) if c >= min_count]
    words = [w for w, _ in counted]
    counts = torch.tensor([c for _, c in counted], dtype=torch.long)
    return Vocabulary(words, counts)


def keep_probabilities(counts: torch.Tensor, threshold: float = 1e-4) -> torch.Tensor:
    r"""The probability of keeping each occurrence of a word when subsampling frequent words.

    A word with relative frequency :math:`f` is kept with probability
    :math:`\min\bigl(1, \sqrt{t / f}\bigr)` (Mikolov et al., 2013, section 2.3): words
    rarer than the threshold :math:`t` are always kept, and "the" (:math:`f \approx 0.06`)
    is mostly dropped.

    Args:
        counts: word counts, shape ``(vocab,)``.
        threshold: the frequency :math:`t` above which words start being dropped.

    Returns:
        Keep probabilities in ``(0, 1]``, shape ``(vocab,)``.
    """
    frequency = counts.double() / counts.sum()  # (vocab,)
    return torch.sqrt(threshold / frequency).clamp(max=1.0).float()


def subsample_mask(
    ids: torch.Tensor, keep_probs: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw which tokens survive subsampling: ``True`` with probability ``keep_probs[id]``.

    Args:
        ids: token ids, shape ``(n_tokens,)``.
        keep_probs: from :func:`keep_probabilities`, shape ``(vocab,)``.
        generator: a seeded ``torch.Generator`` for reproducible draws.

    Returns:
        A boolean mask of shape ``(n_tokens,)``; ``ids[mask]`` is the subsampled text.
    """
    draws = torch.rand(ids.shape, generator=generator)  # (n_tokens,)
    return draws < keep_probs[ids]


def skipgram_pairs(
    ids: torch.Tensor, window: int, segments: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """All (center, context) pairs of words at most ``window`` positions apart.

    Every token is a center; each neighbour up to ``window`` positions to its left and
    right is a context, so a token far from the edges gives ``2 * window`` pairs.

    Args:
        ids: token ids of a running text, shape ``(n_tokens,)``.
        window: the largest distance between a center and a context word (at least 1).
        segments: optional sentence (or document) number of each token, shape
            ``(n_tokens,)``; pairs whose two words lie in different segments are dropped.

    Returns:
        ``(centers, contexts)``, two int64 tensors of shape ``(n_pairs,)``, ordered by
        offset (all pairs at distance 1 first) rather than by position.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}.")
    if ids.ndim != 1 or (segments is not None and segments.shape != ids.shape):
        raise ValueError("ids must be 1-D, and segments (if given) must have the same shape.")
    centers, contexts = [], []
    for offset in range(1, window + 1):
        left, right = ids[:-offset], ids[offset:]  # (n_tokens - offset,) each: word i, i+offset
        keep = slice(None) if segments is None else segments[:-offset] == segments[offset:]
        centers += [left[keep], right[keep]]  # the pair in both directions
        contexts += [right[keep], left[keep]]
    if not centers:
        empty = torch.empty(0, dtype=torch.long)
        return empty, empty.clone()
    return torch.cat(centers), torch.cat(contexts)  # (n_pairs,) each


def noise_distribution(counts: torch.Tensor, power: float = 0.75) -> torch.Tensor:
    r"""The distribution negatives are drawn from: :math:`P(w) \propto \text{count}(w)^{0.75}`.

    Raising the unigram counts to the power 3/4 (Mikolov et al., 2013) flattens them: rare
    words are drawn more often than their frequency, frequent words less often.

    Returns:
        Probabilities summing to 1, shape ``(vocab,)``, dtype float64.
    """
    weights = counts.double().pow(power)  # (vocab,)
    return weights / weights.sum()


def sample_negatives(
    noise_probs: torch.Tensor, shape: tuple[int, ...], generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw word ids independently from ``noise_probs`` (inverse-CDF sampling).

    Args:
        noise_probs: from :func:`noise_distribution`, shape ``(vocab,)``.
        shape: the shape of the result, e.g. ``(batch, k)`` for ``k`` negatives per pair.
        generator: a seeded ``torch.Generator`` for reproducible draws.

    Returns:
        An int64 tensor of ids with the requested shape.
    """
    cdf = torch.cumsum(noise_probs.double(), dim=0)  # (vocab,), increasing to 1
    uniform = torch.rand(shape, generator=generator, dtype=torch.float64) * cdf[-1]
    ids = torch.searchsorted(cdf, uniform, right=True)  # first index whose cdf exceeds u
    return ids.clamp_(max=len(noise_probs) - 1)


def sgns_loss(
    center_vecs: torch.Tensor, context_vecs: torch.Tensor, negative_vecs: torch.Tensor
) -> torch.Tensor:
    r"""The skip-gram negative-sampling loss of each pair.

    .. math:: \ell = -\log \sigma(u_o \cdot v_c) - \sum_{k=1}^{K} \log \sigma(-u_k \cdot v_c)

    Args:
        center_vecs: center vectors :math:`v_c`, shape ``(batch, dim)``.
        context_vecs: context vectors :math:`u_o` of the true neighbours, shape
            ``(batch, dim)``.
        negative_vecs: context vectors :math:`u_k` of the negatives, shape
            ``(batch, k, dim)``.

    Returns:
        The loss of each pair, shape ``(batch,)``.
    """
    positive = (center_vecs * context_vecs).sum(dim=-1)  # (batch,)
    negative = torch.einsum("bkd,bd->bk", negative_vecs, center_vecs)  # (batch, k)
    return -F.logsigmoid(positive) - F.logsigmoid(-negative).sum(dim=-1)  # (batch,)


class SkipGramNS(nn.Module):
    """Skip-gram with negative sampling: two embedding tables and a logistic loss.

    Center vectors start small and random, context vectors at zero, as in the original
    word2vec code.

    Args:
        vocab_size: the number of words.
        dim: the length of each word vector.
        sparse: give the embedding tables sparse gradients, so that an optimizer that
            accepts them (``torch.optim.SGD``, ``torch.optim.SparseAdam``) updates only the
            rows a batch used; much faster on a CPU when the vocabulary is large.
    """

    def __init__(self, vocab_size: int, dim: int, sparse: bool = False) -> None:
        super().__init__()
        self.center = nn.Embedding(vocab_size, dim, sparse=sparse)  # v_w: the vectors we keep
        self.context = nn.Embedding(vocab_size, dim, sparse=sparse)  # u_w: training only
        nn.init.uniform_(self.center.weight, -0.5 / dim, 0.5 / dim)
        nn.init.zeros_(self.context.weight)

    def forward(
        self, centers: torch.Tensor, contexts: torch.Tensor, negatives: torch.Tensor
    ) -> torch.Tensor:
        """The mean SGNS loss of a batch of pairs.

        Args:
            centers: center word ids, shape ``(batch,)``.
            contexts: context word ids, shape ``(batch,)``.
            negatives: negative word ids, shape ``(batch, k)``.

        Returns:
            The loss of each pair from :func:`sgns_loss`, averaged over the batch (a
            scalar tensor).
        """
        center_vecs = self.center(centers)  # (batch, dim)
        context_vecs = self.context(contexts)  # (batch, dim)
        negative_vecs = self.context(negatives)  # (batch, k, dim)
        return sgns_loss(center_vecs, context_vecs, negative_vecs).mean()

    def embeddings(self) -> torch.Tensor:
        """The trained word vectors (the center table), detached, shape ``(vocab, dim)``."""
        return self.center.weight.detach()


def nearest_neighbours(
    embeddings: torch.Tensor, vocab: Vocabulary, word: str, k: int = 5
) -> list[tuple[str, float]]:
    """The ``k`` words whose vectors have the highest cosine similarity with ``word``'s.

    Args:
        embeddings: one vector per vocabulary word, shape ``(vocab, dim)``.
        vocab: the vocabulary the rows belong to.
        word: the query word (itself left out of the answer).
        k: how many neighbours to return.

    Returns:
        ``(word, similarity)`` pairs, most similar first.

    Raises:
        KeyError: ``word`` is not in the vocabulary.
    """
    if word not in vocab:
        raise KeyError(f"{word!r} is not in the vocabulary.")
    return _most_similar(embeddings, vocab, embeddings[vocab.index[word]], {word}, k)


def analogy(
    embeddings: torch.Tensor, vocab: Vocabulary, a: str, b: str, c: str, k: int = 1
) -> list[tuple[str, float]]:
    """Answer "``a`` is to ``b`` as ``c`` is to ?" by vector arithmetic (3CosAdd).

    The query is ``unit(b) - unit(a) + unit(c)`` (each vector scaled to length 1); the
    answer is the word most cosine-similar to it, leaving out ``a``, ``b`` and ``c``
    themselves, as in Mikolov et al.'s evaluation.

    Returns:
        The ``k`` best ``(word, similarity)`` pairs, best first.

    Raises:
        KeyError: one of the three words is not in the vocabulary.
    """
    missing = [word for word in (a, b, c) if word not in vocab]
    if missing:
        raise KeyError(f"not in the vocabulary: {missing}.")
    unit = F.normalize(embeddings, dim=-1)  # (vocab, dim)
    query = unit[vocab.index[b]] - unit[vocab.index[a]] + unit[vocab.index[c]]  # (dim,)
    return _most_similar(embeddings, vocab, query, {a, b, c}, k)


def _most_similar(
    embeddings: torch.Tensor, vocab: Vocabulary, query: torch.Tensor, exclude: set[str], k: int
) -> list[tuple[str, float]]:
    """The ``k`` rows most cosine-similar to ``query``, skipping the words in ``exclude``."""
    sims = F.normalize(embeddings, dim=-1) @ F.normalize(query, dim=-1)  # (vocab,)
    sims = sims.clone()
    for word in exclude:
        sims[vocab.index[word]] = -float("inf")
    top = torch.topk(sims, min(k, len(vocab) - len(exclude)))
    return [(vocab.words[i], float(s)) for s, i in zip(top.values, top.indices, strict=True)]
