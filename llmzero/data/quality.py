"""Quality filters for web text: C4-style line cleaning and Gopher's document heuristics.

Built in the chapter *Data at scale* (Part IV). Each filter is a plain function of one
document's text, so it can run on any number of machines at once:

- :func:`c4_line_filter` removes boilerplate *lines* (JavaScript notices, cookie and
  policy banners) and rejects whole pages that contain ``lorem ipsum`` or a curly bracket,
  after the C4 data set's rules (Raffel et al., 2020);
- :func:`gopher_repetition` rejects pages that repeat themselves (duplicate lines and
  paragraphs, one n-gram everywhere), after Gopher's MassiveText rules (Rae et al., 2021);
- :func:`gopher_quality` rejects pages that are too short or too long, whose words are too
  short or too long, that are mostly symbols, bullets or ellipses, or that lack the
  common English stop words that any real English prose contains.

Each returns ``None`` to keep a document, or a short *reason* string that names the rule
that rejected it (the same names Hugging Face's ``datatrove`` uses, so the two can be
compared). The thresholds are the published ones.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = [
    "GOPHER_STOP_WORDS",
    "POLICY_SUBSTRINGS",
    "c4_line_filter",
    "gopher_quality",
    "gopher_repetition",
    "ngram_fingerprints",
    "split_words",
]

GOPHER_STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
"""The eight English stop words of Gopher's rule. A page needs at least two of them."""

POLICY_SUBSTRINGS = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)
"""Phrases that mark a line as site boilerplate. C4 drops any line that contains one."""

_END_PUNCTUATION = (".", "?", "!", '"', "'")
_PARAGRAPHS = re.compile(r"\n{2,}")
_LINES = re.compile(r"\n+")
_HAS_WORD_CHAR = re.compile(r"\w")  # a token with a letter or digit is a word, not a symbol
# A whitespace-separated token made only of digits, "_", punctuation and symbols: no letter.
_TOKEN_WITHOUT_LETTER = re.compile(r"(?<!\S)(?:[^\w\s]|[\d_])+(?!\S)")


@lru_cache(maxsize=16)
def _stop_word_pattern(stop_words: frozenset[str]) -> re.Pattern[str]:
    """A regex that finds any of ``stop_words`` as a whole word, whatever its case."""
    alternatives = "|".join(sorted(map(re.escape, stop_words)))
    return re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE)


def split_words(text: str) -> list[str]:
    """Split text into words at whitespace: ``"It's 5 p.m.!"`` gives ``["It's", "5",
    "p.m.!"]``. Gopher's rules count whitespace-separated words; punctuation stays attached,
    so ``"said,"`` is one word with letters. Chinese or Japanese text without spaces comes
    out as a few very long "words", so the word rules do not apply to it."""
    return text.split()


def c4_line_filter(
    text: str,
    *,
    require_terminal_punctuation: bool = False,
    min_words_per_line: int = 0,
) -> tuple[str, str | None]:
    """Clean a page line by line with C4's rules; return ``(kept text, reason or None)``.

    Always applied: a page containing ``lorem ipsum`` (placeholder text) or ``{`` (code)
    is rejected whole; lines mentioning ``javascript`` or any of ``POLICY_SUBSTRINGS`` are
    dropped. Off by default, because they delete verse, dialogue and lists (see the
    chapter's examples), but part of the original C4 recipe:

    Args:
        text: the page text, one paragraph or line per line.
        require_terminal_punctuation: keep only lines ending in ``. ? ! " '`` (and not in
            an ellipsis), C4's strongest rule.
        min_words_per_line: drop lines with fewer words (C4 used 3).

    Returns:
        The kept lines joined by ``"\\n"``, and ``None``, or ``("", reason)`` when the page
        is rejected: ``"lorem_ipsum"``, ``"curly_bracket"`` or ``"empty_after_lines"``.
    """
    kept = []
    for line in text.split("\n"):
        line = line.strip()
        lowered = line.lower()
        if "lorem ipsum" in lowered:
            return "", "lorem_ipsum"
        if "{" in line:
            return "", "curly_bracket"
        if require_terminal_punctuation and (
            not line.endswith(_END_PUNCTUATION) or line.endswith("...")
        ):
            continue
        if len(line.split()) < min_words_per_line:
            continue
        if "javascript" in lowered or any(phrase in lowered for phrase in POLICY_SUBSTRINGS):
            continue
        if line:
            kept.append(line)
    if not kept:
        return "", "empty_after_lines"
    return "\n".join(kept), None


def _duplicates(items: Sequence[str]) -> tuple[int, int]:
    """How many items repeat an earlier one, and how many characters those repeats hold."""
    seen: set[str] = set()
    count = chars = 0
    for item in items:
        if item in seen:
            count += 1
            chars += len(item)
        else:
            seen.add(item)
    return count, chars


_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd: multiplying by it mixes the bits


def ngram_fingerprints(word_ids: np.ndarray, n: int) -> np.ndarray:
    """A 64-bit fingerprint of every n-gram of a sequence of word ids: ``(len - n + 1,)``.

    ``f = (((id_0 * M + id_1) * M + id_2) ...)`` with wrap-around ``uint64`` arithmetic, a
    polynomial hash. Equal n-grams get equal fingerprints; two different n-grams collide
    with probability about :math:`2^{-64}`, which a document of a million words never meets.
    """
    count = len(word_ids) - n + 1
    if count <= 0:
        return np.zeros(0, dtype=np.uint64)
    ids = np.asarray(word_ids).astype(np.uint64) + np.uint64(1)
    keys = np.zeros(count, dtype=np.uint64)
    for offset in range(n):
        keys = keys * _MULTIPLIER + ids[offset : offset + count]
    return keys


def _top_ngram_chars(keys: np.ndarray, char_starts: np.ndarray, n: int) -> int:
    """Characters covered by the most frequent n-gram (``len(" ".join(gram)) * count``);
    among equally frequent n-grams the one that occurs first, as ``Counter.most_common``."""
    _, first, counts = np.unique(keys, return_index=True, return_counts=True)
    best = counts.max()
    position = first[counts == best].min()
    length = char_starts[position + n] - char_starts[position] + n - 1
    return int(length * best)


def _duplicated_ngram_chars(keys: np.ndarray, char_starts: np.ndarray, n: int) -> int:
    """Characters of words inside n-grams that repeat an earlier one, scanning left to right
    and jumping past each repeat (so overlapping repeats are not counted twice)."""
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    # A position can repeat an earlier n-gram only if it is not that n-gram's first place.
    candidates = np.flatnonzero(first[inverse] < np.arange(len(keys)))
    seen: set[int] = set()
    repeated = index = 0
    for position in candidates.tolist():
        if position < index:
            continue
        seen.update(keys[index:position].tolist())  # all new n-grams up to the candidate
        if int(keys[position]) in seen:
            repeated += int(char_starts[position + n] - char_starts[position])
            index = position + n
        else:
            seen.add(int(keys[position]))
            index = position + 1
    return repeated


@dataclass(frozen=True)
class _RepetitionLimits:
    dup_line_frac: float = 0.30
    dup_para_frac: float = 0.30
    dup_line_char_frac: float = 0.20
    dup_para_char_frac: float = 0.20
    top_ngrams: tuple[tuple[int, float], ...] = ((2, 0.20), (3, 0.18), (4, 0.16))
    dup_ngrams: tuple[tuple[int, float], ...] = (
        (5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10),
    )  # fmt: skip


_LIMITS = _RepetitionLimits()


def gopher_repetition(text: str, words: Sequence[str] | None = None) -> str | None:
    """Gopher's repetition rules (Rae et al., 2021, Table A1); ``None`` keeps the page.

    Rejects a page when, in order: more than 30% of its paragraphs (or of its lines) repeat
    an earlier one, or such repeats hold more than 20% of its characters; the most frequent
    2-, 3- or 4-gram covers more than 20%, 18% or 16% of the characters; or repeated 5- to
    10-grams cover more than 15% down to 10% of them. Character fractions are taken
    relative to ``len(text)``, as in ``datatrove``.

    Args:
        text: the page text.
        words: ``split_words(text)``, if already computed.
    """
    if not text:
        return "empty"
    limits = _LIMITS
    paragraphs = _PARAGRAPHS.split(text.strip())
    count, chars = _duplicates(paragraphs)
    if count / len(paragraphs) > limits.dup_para_frac:
        return "dup_para_frac"
    if chars / len(text) > limits.dup_para_char_frac:
        return "dup_para_char_frac"
    lines = _LINES.split(text)
    count, chars = _duplicates(lines)
    if count / len(lines) > limits.dup_line_frac:
        return "dup_line_frac"
    if chars / len(text) > limits.dup_line_char_frac:
        return "dup_line_char_frac"
    words = split_words(text) if words is None else words
    # Python's hash of each word: equal words, equal ids (within this process), at C speed.
    word_ids = np.fromiter(map(hash, words), dtype=np.int64, count=len(words))
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    char_starts = np.concatenate([[0], np.cumsum(lengths)])
    for n, fraction in limits.top_ngrams:
        keys = ngram_fingerprints(word_ids, n)
        if len(keys) and _top_ngram_chars(keys, char_starts, n) / len(text) > fraction:
            return f"top_{n}_gram"
    for n, fraction in limits.dup_ngrams:
        keys = ngram_fingerprints(word_ids, n)
        if len(keys) and _duplicated_ngram_chars(keys, char_starts, n) / len(text) > fraction:
            return f"duplicated_{n}_n_grams"
    return None


def gopher_quality(
    text: str,
    words: Sequence[str] | None = None,
    *,
    stop_words: frozenset[str] | None = GOPHER_STOP_WORDS,
    min_words: int = 50,
    max_words: int = 100_000,
) -> str | None:
    """Gopher's quality rules (Rae et al., 2021, section A.1.1); ``None`` keeps the page.

    *Tokens* are :func:`split_words`'s whitespace-separated tokens; *words* are the tokens
    that contain a letter or digit (not runs of symbols such as ``|`` or ``***``). In
    order, reject a page with fewer than ``min_words`` or more than ``max_words`` words
    (``gopher_short_doc``, ``gopher_long_doc``), a mean word length outside 3 to 10
    characters, more than 0.1 ``#`` or ellipses per token, more than 90% of lines starting
    with a bullet or 30% ending in an ellipsis, fewer than 80% of tokens containing a
    letter, or fewer than two of ``stop_words`` (found as whole words, in any case;
    ``gopher_enough_stop_words``). Pass ``stop_words=None`` to skip this English-only rule
    for other languages.
    """
    tokens = split_words(text) if words is None else list(words)
    symbols = [token for token in tokens if not _HAS_WORD_CHAR.search(token)]
    n_words = len(tokens) - len(symbols)
    if n_words < min_words:
        return "gopher_short_doc"
    if n_words > max_words:
        return "gopher_long_doc"
    mean_length = (sum(map(len, tokens)) - sum(map(len, symbols))) / n_words
    if mean_length < 3:
        return "gopher_below_avg_threshold"
    if mean_length > 10:
        return "gopher_above_avg_threshold"
    if text.count("#") / len(tokens) > 0.1:
        return "gopher_too_many_hashes"
    if (text.count("...") + text.count("…")) / len(tokens) > 0.1:
        return "gopher_too_many_ellipsis"
    lines = text.splitlines()
    if sum(line.lstrip().startswith(("•", "-")) for line in lines) / len(lines) > 0.9:
        return "gopher_too_many_bullets"
    if sum(line.rstrip().endswith(("...", "…")) for line in lines) / len(lines) > 0.3:
        return "gopher_too_many_end_ellipsis"
    without_letter = len(_TOKEN_WITHOUT_LETTER.findall(" ".join(tokens)))
    if (len(tokens) - without_letter) / len(tokens) < 0.8:
        return "gopher_below_alpha_threshold"
    if stop_words is not None:
        present = {match.lower() for match in _stop_word_pattern(stop_words).findall(text)}
        if len(present) < 2:
            return "gopher_enough_stop_words"
    return None
