"""Metrics for generated text, written from scratch (Part V, *Evaluating LLMs*).

- :func:`corpus_bleu` (with :func:`tokenize_13a`, :func:`bleu_statistics` and
  :func:`bleu_from_statistics`): corpus BLEU exactly as ``sacrebleu`` 2.6 computes it by
  default (13a tokenisation, 4-grams, exponential smoothing of empty precisions);
- :func:`rouge_n` and :func:`rouge_l` (with :func:`tokenize_rouge`): ROUGE-N and ROUGE-L
  precision, recall and F1 exactly as Google's ``rouge-score`` 0.1.2 computes them;
- :func:`ngram_overlap`: the share of a text's word n-grams that occur in a reference
  corpus, the core of n-gram contamination detectors.

The chapter checks every function against the library it imitates, and
``tests/test_generation_metrics.py`` does so on fixed texts.

Usage::

    from llmzero.evaluation import generation

    generation.corpus_bleu(["the cat sat on the mat"], ["a cat sat on the mat"])  # 0..100
    generation.rouge_n("a cat sat on the mat", "the cat sat on the mat", n=2).fmeasure
    generation.rouge_l("a cat sat on the mat", "the cat sat on the mat").fmeasure
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from llmzero.data.dedup import shingles

__all__ = [
    "RougeScore",
    "bleu_from_statistics",
    "bleu_statistics",
    "corpus_bleu",
    "lcs_length",
    "ngram_counts",
    "ngram_overlap",
    "rouge_l",
    "rouge_n",
    "tokenize_13a",
    "tokenize_rouge",
]

MAX_ORDER = 4
"""BLEU's longest n-gram (BLEU-4, the standard)."""

# --- tokenisation ---------------------------------------------------------------------------

# mteval-v13a's rules, as sacrebleu's TokenizerRegexp applies them, in this order.
_13A_RULES = [
    # punctuation and symbols become tokens of their own
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),
    # a period or comma is split off unless it sits between digits (3.14, 1,000)
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),
    # a dash after a digit is split off
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),
]


def tokenize_13a(text: str) -> list[str]:
    """Split ``text`` into words the way BLEU's standard ``13a`` tokenizer does.

    The rules of the ``mteval-v13a.pl`` script of the WMT evaluations: undo a few HTML
    entities, join lines, then put spaces around punctuation and symbols, except periods
    and commas inside numbers. Case is kept (BLEU is case-sensitive by default).
    """
    if not isinstance(text, str):
        raise TypeError(f"expected a string, got {type(text).__name__}.")
    line = text.rstrip().replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    for entity, char in (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">")):
        line = line.replace(entity, char)
    line = f" {line} "
    for pattern, replacement in _13A_RULES:
        line = pattern.sub(replacement, line)
    return line.split()


_NON_ALPHANUMERIC = re.compile(r"[^a-z0-9]+")


def tokenize_rouge(text: str, stemmer: Callable[[str], str] | None = None) -> list[str]:
    """Split ``text`` into words the way ``rouge-score`` does.

    Lowercase, replace every run of characters other than ``a-z`` and ``0-9`` by a space,
    split. So accents, non-Latin scripts and punctuation vanish: ROUGE as published is
    for English. With a ``stemmer`` (e.g. ``nltk.stem.PorterStemmer().stem``) words longer
    than 3 characters are stemmed, as ``use_stemmer=True`` does.
    """
    if not isinstance(text, str):
        raise TypeError(f"expected a string, got {type(text).__name__}.")
    tokens = _NON_ALPHANUMERIC.sub(" ", text.lower()).split()
    if stemmer is not None:
        tokens = [stemmer(token) if len(token) > 3 else token for token in tokens]
    return [token for token in tokens if token]


def ngram_counts(tokens: Sequence[str], n: int) -> dict[tuple[str, ...], int]:
    """How often each ``n``-gram (a tuple of ``n`` consecutive tokens) occurs in ``tokens``
    (a ``collections.Counter``, so missing n-grams count 0)."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}.")
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


# --- BLEU -----------------------------------------------------------------------------------


def _as_reference_lists(
    hypotheses: Sequence[str], references: Sequence[str | Sequence[str]]
) -> list[list[str]]:
    if isinstance(hypotheses, str) or isinstance(references, str):
        raise TypeError("pass lists of strings (one hypothesis per segment), not one string.")
    if len(hypotheses) != len(references):
        raise ValueError(
            f"got {len(hypotheses)} hypotheses but {len(references)} references: give one "
            "reference (or a list of references) per hypothesis."
        )
    lists = [[ref] if isinstance(ref, str) else list(ref) for ref in references]
    if any(not refs for refs in lists):
        raise ValueError("every hypothesis needs at least one reference.")
    return lists


def bleu_statistics(
    hypotheses: Sequence[str],
    references: Sequence[str | Sequence[str]],
    max_order: int = MAX_ORDER,
) -> list[list[int]]:
    """BLEU's sufficient statistics, one row per segment.

    Each row is ``[hyp_len, ref_len, matches_1..matches_N, totals_1..totals_N]``:
    the hypothesis length in tokens, the length of the reference closest to it (the
    shorter one on a tie), and for each order ``n`` the clipped n-gram matches (an n-gram
    counts at most as often as it occurs in one reference) and the hypothesis' n-grams.
    Summing rows and calling :func:`bleu_from_statistics` gives corpus BLEU; a bootstrap
    resamples rows.

    ``references[i]`` is one string or a list of strings for ``hypotheses[i]``.
    """
    rows = []
    for hypothesis, refs in zip(
        hypotheses, _as_reference_lists(hypotheses, references), strict=True
    ):
        hyp_tokens = tokenize_13a(hypothesis)
        ref_tokens = [tokenize_13a(ref) for ref in refs]
        hyp_len = len(hyp_tokens)
        # closest reference length; a tie goes to the shorter reference
        ref_len = min((abs(len(r) - hyp_len), len(r)) for r in ref_tokens)[1]
        matches, totals = [], []
        for n in range(1, max_order + 1):
            hyp_ngrams = ngram_counts(hyp_tokens, n)
            max_ref = Counter()
            for tokens in ref_tokens:
                max_ref |= ngram_counts(tokens, n)  # elementwise max over the references
            matches.append(sum(min(c, max_ref[g]) for g, c in hyp_ngrams.items()))
            totals.append(sum(hyp_ngrams.values()))
        rows.append([hyp_len, ref_len, *matches, *totals])
    return rows


def bleu_from_statistics(statistics: Sequence[float]) -> float:
    """Corpus BLEU (0-100) from summed :func:`bleu_statistics` rows.

    BLEU is the brevity penalty times the geometric mean of the modified n-gram
    precisions ``p_n = matches_n / totals_n``:
    ``BP * exp(mean(log p_n))`` with ``BP = min(1, exp(1 - ref_len / hyp_len))``.
    A precision with 0 matches (but some n-grams) is smoothed as ``mteval-v13a`` does
    (sacrebleu's default ``"exp"``): the k-th such order gets ``1 / (2^k totals_n)``.
    If nothing matches at all, BLEU is 0.
    """
    statistics = [float(value) for value in statistics]
    if len(statistics) < 4 or (len(statistics) - 2) % 2:
        raise ValueError(
            "statistics must be [hyp_len, ref_len, matches..., totals...] with as many "
            f"matches as totals, got {len(statistics)} numbers."
        )
    order = (len(statistics) - 2) // 2
    hyp_len, ref_len = statistics[:2]
    matches, totals = statistics[2 : 2 + order], statistics[2 + order :]
    if hyp_len < ref_len:
        brevity_penalty = math.exp(1 - ref_len / hyp_len) if hyp_len > 0 else 0.0
    else:
        brevity_penalty = 1.0
    if not any(matches):
        return 0.0
    log_precisions, halvings = [], 0
    for match, total in zip(matches, totals, strict=True):
        if total == 0:  # the hypotheses are too short to have n-grams of this order
            log_precisions += [-9999999999.0] * (order - len(log_precisions))
            break
        if match == 0:
            halvings += 1
            log_precisions.append(math.log(1.0 / (2**halvings * total)))
        else:
            log_precisions.append(math.log(match / total))
    return 100.0 * brevity_penalty * math.exp(sum(log_precisions) / order)


def corpus_bleu(
    hypotheses: Sequence[str],
    references: Sequence[str | Sequence[str]],
    max_order: int = MAX_ORDER,
) -> float:
    """Corpus-level BLEU (0-100) of ``hypotheses`` against ``references``.

    Statistics are summed over all segments before the precisions are formed, so this is
    *not* the mean of sentence BLEUs. Equals ``sacrebleu.corpus_bleu(hypotheses,
    [references]).score`` (default settings) when each hypothesis has one reference; note
    that sacrebleu takes references as *streams* (``[[ref_1, ref_2, ...], [alt_1, ...]]``)
    while this function takes them per hypothesis.
    """
    if max_order < 1:
        raise ValueError(f"max_order must be at least 1, got {max_order}.")
    rows = bleu_statistics(hypotheses, references, max_order)
    if not rows:
        raise ValueError("no segments to score: pass at least one hypothesis.")
    return bleu_from_statistics([sum(column) for column in zip(*rows, strict=True)])


# --- ROUGE ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RougeScore:
    """Precision (share of the hypothesis matched), recall (share of the reference
    matched) and their harmonic mean, F1."""

    precision: float
    recall: float
    fmeasure: float


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def rouge_n(
    reference: str,
    hypothesis: str,
    n: int = 1,
    stemmer: Callable[[str], str] | None = None,
) -> RougeScore:
    """ROUGE-N: overlap of word n-grams between one ``hypothesis`` and its ``reference``.

    ``overlap = sum over n-grams of min(count in reference, count in hypothesis)``;
    precision is overlap / hypothesis n-grams, recall is overlap / reference n-grams
    (0 when there are none). The reference comes first, as in ``rouge-score``'s
    ``scorer.score(target, prediction)``.
    """
    ref_ngrams = ngram_counts(tokenize_rouge(reference, stemmer), n)
    hyp_ngrams = ngram_counts(tokenize_rouge(hypothesis, stemmer), n)
    overlap = sum(min(count, hyp_ngrams[gram]) for gram, count in ref_ngrams.items())
    precision = overlap / max(sum(hyp_ngrams.values()), 1)
    recall = overlap / max(sum(ref_ngrams.values()), 1)
    return RougeScore(precision, recall, _f1(precision, recall))


def lcs_length(first: Sequence[str], second: Sequence[str]) -> int:
    """Length of the longest common subsequence (in order, not necessarily contiguous),
    by dynamic programming in ``O(len(first) * len(second))`` time and ``O(len(second))``
    memory."""
    previous = [0] * (len(second) + 1)
    for item in first:
        current = [0]
        for j, other in enumerate(second, start=1):
            current.append(previous[j - 1] + 1 if item == other else max(previous[j], current[-1]))
        previous = current
    return previous[-1]


def rouge_l(
    reference: str, hypothesis: str, stemmer: Callable[[str], str] | None = None
) -> RougeScore:
    """ROUGE-L: precision, recall and F1 of the longest common subsequence of words.

    ``precision = LCS / len(hypothesis)``, ``recall = LCS / len(reference)``; 0 if either
    text has no words. Rewards words in the right order without asking them to be
    adjacent. (``rouge-score``'s ``rougeLsum``, for multi-sentence summaries, is not this.)
    """
    ref_tokens = tokenize_rouge(reference, stemmer)
    hyp_tokens = tokenize_rouge(hypothesis, stemmer)
    if not ref_tokens or not hyp_tokens:
        return RougeScore(0.0, 0.0, 0.0)
    common = lcs_length(ref_tokens, hyp_tokens)
    precision, recall = common / len(hyp_tokens), common / len(ref_tokens)
    return RougeScore(precision, recall, _f1(precision, recall))


# --- contamination ------------------------------------------------------------------------


def ngram_overlap(texts: Sequence[str], corpus: Iterable[str], n: int = 8) -> list[float]:
    """For each text, the share of its word ``n``-grams that also occur in ``corpus``.

    Words are those of :func:`llmzero.data.dedup.shingles` (lowercased, punctuation
    dropped); a text of at most ``n`` words is one n-gram, itself. A share near 1 means the
    text (a test item, say) is probably in the corpus (a training set): the test of
    GPT-3's contamination analysis, which used ``n = 13`` on long documents. Short items
    need a smaller ``n``, but then shared phrasing (a prompt template) also matches.
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, not one string.")
    seen: set[str] = set()
    for document in corpus:
        seen |= shingles(document, n)
    overlaps = []
    for text in texts:
        grams = shingles(text, n)
        overlaps.append(sum(gram in seen for gram in grams) / len(grams))
    return overlaps
