"""Extractive summarization: sentence splitting, TextRank and the lead baseline.

Part VI's chapter *Machine translation and summarization* builds these step by step and
scores them with ROUGE against this book's own chapter takeaways:

- :func:`split_sentences`: paragraphs, list items and sentences of plain text, with a
  short list of abbreviations that do not end a sentence;
- :func:`similarity_graph` and :func:`pagerank`: TextRank's graph (sentences as nodes,
  cosine similarities of their embeddings as edge weights) and PageRank by power
  iteration, equal to ``networkx.pagerank`` (``tests/test_summarization.py`` checks it);
- :func:`select_within_budget`, :func:`textrank_summary` and :func:`lead_summary`: pick
  sentences by rank, or the first ones, until a word budget is used, and return them in
  the order of the document;
- :func:`ngram_support`: the share of a sentence's word n-grams found in the source, a
  crude check that an abstractive summary says only what the source says.

Usage::

    from llmzero.applications import summarization
    from llmzero.models.embeddings import encode

    sentences = summarization.split_sentences(text)
    chosen = summarization.textrank_summary(sentences, encode(sentences), max_words=200)
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from torch import Tensor

from llmzero.data.dedup import shingles

__all__ = [
    "ABBREVIATIONS",
    "lead_summary",
    "ngram_support",
    "pagerank",
    "select_within_budget",
    "similarity_graph",
    "split_sentences",
    "textrank_summary",
    "word_count",
]

#: Words ending in a period that do not end a sentence (lowercased, without the period).
ABBREVIATIONS = frozenset(
    [
        *("e.g", "i.e", "etc", "cf", "vs", "fig", "eq", "ch", "sec", "al", "approx"),
        *("dr", "mr", "mrs", "ms", "prof", "no", "vol", "p", "pp"),
    ]
)

_PARAGRAPH = re.compile(r"\n\s*\n")
_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
# a candidate boundary: . ! or ? (and closing quotes or brackets), spaces, then a capital
# letter, a digit, an opening quote or bracket
_BOUNDARY = re.compile(r"([.!?][\"')\]]*)\s+(?=[A-Z0-9\"'(\[])")


def _split_paragraph(paragraph: str) -> list[str]:
    text = " ".join(paragraph.split())
    sentences, start = [], 0
    for match in _BOUNDARY.finditer(text):
        before = text[start : match.start() + 1].split()
        last_word = before[-1].lower().rstrip(".") if before else ""
        if match.group(1).startswith(".") and (
            last_word in ABBREVIATIONS or re.fullmatch(r"[a-z]", last_word)
        ):
            continue  # "e.g. The", "J. Smith": not a boundary
        sentences.append(text[start : match.end(1)].strip())
        start = match.end()
    sentences.append(text[start:].strip())
    return [sentence for sentence in sentences if sentence]


def split_sentences(text: str) -> list[str]:
    """Split plain text into sentences.

    Blank lines separate paragraphs, and every list item (a line starting with ``-``, ``*``,
    ``+`` or ``1.``) is a unit of its own, without its marker. Inside a unit, a sentence
    ends at ``.``, ``!`` or ``?`` (possibly followed by closing quotes or brackets) when
    whitespace and a capital letter, digit, quote or bracket follow, unless the word before
    the period is in :data:`ABBREVIATIONS` or a single letter (an initial).
    """
    if not isinstance(text, str):
        raise TypeError(f"expected a string, got {type(text).__name__}.")
    sentences = []
    for paragraph in _PARAGRAPH.split(text):
        units: list[list[str]] = []
        for line in paragraph.splitlines():
            if _ITEM.match(line) or not units:
                units.append([_ITEM.sub("", line)])
            else:
                units[-1].append(line)
        for unit in units:
            sentences += _split_paragraph("\n".join(unit))
    return sentences


def word_count(text: str) -> int:
    """The number of whitespace-separated words."""
    return len(text.split())


def similarity_graph(embeddings: Tensor) -> Tensor:
    """TextRank's edge weights: cosine similarities of the rows of ``embeddings``
    ``(n, d)``, negative ones set to 0, no self-loops. Returns ``(n, n)``, symmetric."""
    if embeddings.dim() != 2 or embeddings.shape[0] == 0:
        raise ValueError(f"expected embeddings of shape (n, d), n >= 1, got {embeddings.shape}.")
    unit = torch.nn.functional.normalize(embeddings.double(), dim=-1)  # (n, d)
    weights = (unit @ unit.T).clamp(min=0.0)  # (n, n)
    weights.fill_diagonal_(0.0)
    return weights


def pagerank(
    weights: Tensor, damping: float = 0.85, tol: float = 1e-10, max_iter: int = 1000
) -> Tensor:
    """PageRank of a weighted graph by power iteration, as ``networkx.pagerank`` defines it.

    ``weights[i, j]`` is the weight of the edge from ``i`` to ``j``. A random surfer follows
    an edge with probability ``damping`` (choosing among a node's edges in proportion to
    their weights) and jumps to a uniformly random node otherwise; a node without outgoing
    weight jumps uniformly. The scores are the surfer's long-run share of time at each
    node: ``r = damping * (r P + dangling / n) + (1 - damping) / n``, iterated from the
    uniform vector until the L1 change is below ``n * tol``.

    Returns:
        ``(n,)`` float64 scores that sum to 1.

    Raises:
        ValueError: ``weights`` is not square, has negative entries, or ``damping`` is not in
            [0, 1); RuntimeError: no convergence within ``max_iter`` steps.
    """
    if weights.dim() != 2 or weights.shape[0] != weights.shape[1] or weights.shape[0] == 0:
        raise ValueError(f"weights must be a square (n, n) matrix, got {tuple(weights.shape)}.")
    if bool((weights < 0).any()):
        raise ValueError("weights must be non-negative (clip negative similarities to 0).")
    if not 0.0 <= damping < 1.0:
        raise ValueError(f"damping must be in [0, 1), got {damping}.")
    weights = weights.double()
    n = weights.shape[0]
    out_weight = weights.sum(dim=1)  # (n,)
    dangling = out_weight == 0  # nodes with no outgoing edge
    transition = weights / out_weight.clamp(min=1e-300)[:, None]  # (n, n), rows sum to 1
    scores = torch.full((n,), 1.0 / n, dtype=torch.float64)
    for _ in range(max_iter):
        leaked = scores[dangling].sum()  # the mass of dangling nodes, spread uniformly
        new = damping * (scores @ transition + leaked / n) + (1.0 - damping) / n
        if (new - scores).abs().sum() < n * tol:
            return new
        scores = new
    raise RuntimeError(f"PageRank did not converge in {max_iter} iterations; raise max_iter.")


def select_within_budget(
    order: Sequence[int], sentences: Sequence[str], max_words: int
) -> list[int]:
    """Take sentences in ``order`` (best first), skipping any that would exceed
    ``max_words`` words in total; return the chosen indices in document order."""
    if max_words < 1:
        raise ValueError(f"max_words must be positive, got {max_words}.")
    chosen, used = [], 0
    for index in order:
        length = word_count(sentences[index])
        if used + length <= max_words:
            chosen.append(index)
            used += length
    return sorted(chosen)


def textrank_summary(
    sentences: Sequence[str], embeddings: Tensor, max_words: int, damping: float = 0.85
) -> list[int]:
    """TextRank: rank ``sentences`` by the PageRank of their similarity graph (embeddings
    ``(n, d)``, one row per sentence) and keep the best within ``max_words`` words.
    Returns the indices of the chosen sentences in document order."""
    if len(sentences) != embeddings.shape[0]:
        raise ValueError(
            f"got {len(sentences)} sentences but {embeddings.shape[0]} embeddings: "
            "embed every sentence once."
        )
    scores = pagerank(similarity_graph(embeddings), damping=damping)
    order = sorted(range(len(sentences)), key=lambda i: (-float(scores[i]), i))
    return select_within_budget(order, sentences, max_words)


def lead_summary(sentences: Sequence[str], max_words: int) -> list[int]:
    """The lead baseline: the longest run of first sentences within ``max_words`` words."""
    if max_words < 1:
        raise ValueError(f"max_words must be positive, got {max_words}.")
    chosen, used = [], 0
    for index, sentence in enumerate(sentences):
        used += word_count(sentence)
        if used > max_words:
            break
        chosen.append(index)
    return chosen


def ngram_support(sentence: str, source: str | set[str], n: int = 2) -> float:
    """The share of ``sentence``'s word ``n``-grams that occur in ``source`` (a text, or the
    set ``llmzero.data.dedup.shingles(text, n)`` computed once). 1.0 for a sentence copied
    from the source; low values flag content the source does not contain, or paraphrase."""
    seen = shingles(source, n) if isinstance(source, str) else source
    grams = shingles(sentence, n)
    return sum(gram in seen for gram in grams) / len(grams)
