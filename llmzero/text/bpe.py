"""Byte-level byte-pair encoding (BPE), written from scratch to be read.

The chapter *Tokenizers for LLMs* (Part III) builds this step by step, then checks that
this module learns the same merges. The whole algorithm fits in three ideas:

1. **Bytes first.** Text is turned into its UTF-8 bytes, so the starting vocabulary is the
   256 possible byte values and *any* string can be encoded: there is no unknown token.
2. **Train by merging.** Count every pair of adjacent tokens in the training text, give
   the most frequent pair a new id, replace it everywhere, repeat until the vocabulary has
   ``vocab_size`` entries. The list of merges, in order, *is* the tokenizer.
3. **Encode by replaying merges.** Split new text into bytes and apply the learned merges,
   earliest-learned first, until none applies.

Usage::

    from llmzero.text import bpe

    tokenizer = bpe.train(text, vocab_size=512)   # 256 bytes + 256 merges
    ids = tokenizer.encode("To be, or not to be")  # list[int]
    assert tokenizer.decode(ids) == "To be, or not to be"
    tokenizer.save("shakespeare-bpe.json")          # plain JSON, never pickle
    same = bpe.BPETokenizer.load("shakespeare-bpe.json")

Like GPT-2 (Radford et al., 2019), the text is first cut into chunks with a regular
expression (words with their leading space, runs of digits, runs of punctuation, runs of
whitespace), and merges never cross a chunk boundary. Pass ``pattern=None`` to train on the
raw text as one chunk (fine for small demos; encoding long text that way is slow).

Ties are broken deterministically: among pairs with the same count, the pair with the
smallest ids, compared as a tuple ``(left, right)``, is merged first. Training is therefore
a pure function of ``(text, vocab_size, pattern)``.
"""

from __future__ import annotations

import heapq
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

__all__ = [
    "GPT2_SPLIT_PATTERN",
    "N_BYTES",
    "BPETokenizer",
    "merge_pair",
    "pair_counts",
    "pre_split",
    "train",
]

#: How many base tokens there are (one per byte value, ids 0 to 255).
N_BYTES = 256

#: GPT-2's pre-tokenization pattern, written for Python's built-in ``re`` module. GPT-2's
#: original uses the third-party ``regex`` module's Unicode classes ``\p{L}`` (letters) and
#: ``\p{N}`` (numbers); here letters are ``[^\W\d_]`` (word characters that are neither
#: decimal digits nor ``_``) and numbers are ``\d``. The two agree on ordinary text; they
#: differ only on non-decimal number characters such as ``²`` or ``Ⅻ`` (letters here,
#: numbers there), on the control characters U+001C-U+001F (whitespace here) and on code
#: points that one Unicode database assigns and the other does not. Alternatives, in order:
#: English contractions, an optional space plus letters, an optional space plus digits, an
#: optional space plus other symbols, whitespace not followed by a non-space (so that
#: ``"  word"`` leaves one space to attach to the word), and any other whitespace.
GPT2_SPLIT_PATTERN = r"'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"

_FORMAT = "llmzero-bpe"
_FORMAT_VERSION = 1


def pre_split(text: str, pattern: str | None = GPT2_SPLIT_PATTERN) -> list[str]:
    """Cut ``text`` into the chunks that merges may not cross.

    The pattern's alternatives cover every character, so ``"".join(chunks) == text``.
    With ``pattern=None`` the whole text is a single chunk (no chunks for empty text).
    """
    if pattern is None:
        return [text] if text else []
    return re.findall(pattern, text)


def pair_counts(
    ids: Sequence[int], counts: dict[tuple[int, int], int] | None = None, weight: int = 1
) -> dict[tuple[int, int], int]:
    """Count adjacent pairs in ``ids``, adding ``weight`` per occurrence to ``counts``.

    Returns ``counts`` (a new dict if none is given). Overlapping pairs all count:
    ``[7, 7, 7]`` holds the pair ``(7, 7)`` twice.
    """
    counts = {} if counts is None else counts
    for pair in pairwise(ids):
        counts[pair] = counts.get(pair, 0) + weight
    return counts


def merge_pair(ids: Sequence[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of ``pair`` in ``ids`` by ``new_id``, scanning left to right.

    ``merge_pair([1, 2, 3, 1, 2], (1, 2), 9) == [9, 3, 9]``; an overlapping run is merged
    from the left: ``merge_pair([7, 7, 7], (7, 7), 9) == [9, 7]``.
    """
    merged: list[int] = []
    i = 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            merged.append(new_id)
            i += 2
        else:
            merged.append(ids[i])
            i += 1
    return merged


@dataclass
class BPETokenizer:
    """A trained byte-level BPE tokenizer: the ordered merges and the split pattern.

    Merge ``k`` (counting from 0) joins the pair ``merges[k]`` into the new token id
    ``256 + k``; ids 0-255 are the single bytes. Build one with :func:`train` or
    :meth:`load`. ``vocab`` maps every id to the bytes it stands for.
    """

    merges: list[tuple[int, int]]
    pattern: str | None = GPT2_SPLIT_PATTERN
    vocab: dict[int, bytes] = field(init=False, repr=False)
    _ranks: dict[tuple[int, int], int] = field(init=False, repr=False)
    _cache: dict[str, list[int]] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.merges = [(int(left), int(right)) for left, right in self.merges]
        self.vocab = {i: bytes([i]) for i in range(N_BYTES)}
        self._ranks = {}
        for rank, (left, right) in enumerate(self.merges):
            new_id = N_BYTES + rank
            if left >= new_id or right >= new_id or min(left, right) < 0:
                raise ValueError(f"merge {rank} uses an id that does not exist yet: {left, right}")
            if (left, right) in self._ranks:
                raise ValueError(f"merge {rank} repeats the pair {left, right}")
            self._ranks[(left, right)] = rank
            self.vocab[new_id] = self.vocab[left] + self.vocab[right]

    @property
    def vocab_size(self) -> int:
        """256 byte tokens plus one token per merge."""
        return N_BYTES + len(self.merges)

    def __len__(self) -> int:
        return self.vocab_size

    def _encode_chunk(self, chunk: str) -> list[int]:
        """Encode one pre-split chunk by replaying merges, lowest rank (earliest) first."""
        if chunk in self._cache:
            return self._cache[chunk]
        ids = list(chunk.encode("utf-8"))
        while len(ids) >= 2:
            # The pair in this chunk that was learned earliest; unknown pairs rank last.
            pair = min(pairwise(ids), key=lambda p: self._ranks.get(p, len(self._ranks)))
            if pair not in self._ranks:
                break  # no learned merge applies any more
            ids = merge_pair(ids, pair, N_BYTES + self._ranks[pair])
        self._cache[chunk] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        """Token ids for ``text``; every string can be encoded (there is no unknown token)."""
        ids: list[int] = []
        for chunk in pre_split(text, self.pattern):
            ids.extend(self._encode_chunk(chunk))
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """The text for ``ids``. Byte sequences that are not valid UTF-8 (possible when a
        list of ids is cut in the middle of a character) decode to U+FFFD, as in GPT-2."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The raw bytes the ids stand for, concatenated."""
        try:
            return b"".join(self.vocab[i] for i in ids)
        except KeyError as error:
            raise ValueError(
                f"token id {error.args[0]} is not in this vocabulary (size {self.vocab_size})"
            ) from None

    def token_strings(self, ids: Iterable[int]) -> list[str]:
        """Each id's bytes shown as text, for reading tokenizations (may hold U+FFFD for a
        token that is only part of a multi-byte character)."""
        return [self.vocab[i].decode("utf-8", errors="replace") for i in ids]

    def to_dict(self) -> dict:
        """A JSON-ready description: format tag, pattern and merges."""
        return {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "pattern": self.pattern,
            "merges": [list(pair) for pair in self.merges],
        }

    def save(self, path: str | Path) -> None:
        """Write the tokenizer to ``path`` as JSON (never pickle: loading runs no code)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def from_dict(cls, data: dict) -> BPETokenizer:
        """Rebuild a tokenizer from :meth:`to_dict`'s output, checking its format."""
        if data.get("format") != _FORMAT or data.get("version") != _FORMAT_VERSION:
            raise ValueError(
                f"not an {_FORMAT} v{_FORMAT_VERSION} file: "
                f"format={data.get('format')!r}, version={data.get('version')!r}"
            )
        return cls(merges=[tuple(pair) for pair in data["merges"]], pattern=data["pattern"])

    @classmethod
    def load(cls, path: str | Path) -> BPETokenizer:
        """Read a tokenizer written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def train(text: str, vocab_size: int, pattern: str | None = GPT2_SPLIT_PATTERN) -> BPETokenizer:
    """Learn ``vocab_size - 256`` merges from ``text`` and return the tokenizer.

    The result is the same as the textbook loop (count all pairs, merge the most frequent,
    repeat) but much faster: identical chunks are counted once with their frequency, and
    after each merge only the chunks that contained the merged pair are recounted.
    Training stops early, with a smaller vocabulary, if no pair is left to merge.
    """
    if vocab_size < N_BYTES:
        raise ValueError(f"vocab_size must be at least {N_BYTES} (one token per byte)")

    # Each distinct chunk once, as a list of byte ids, with how often it occurs.
    chunk_freqs = Counter(pre_split(text, pattern))
    words = [list(chunk.encode("utf-8")) for chunk in chunk_freqs]
    freqs = list(chunk_freqs.values())

    counts: dict[tuple[int, int], int] = {}  # pair -> occurrences in the whole text
    where: defaultdict[tuple[int, int], set[int]] = defaultdict(set)  # pair -> word indices
    for index, (ids, freq) in enumerate(zip(words, freqs, strict=True)):
        pair_counts(ids, counts, freq)
        for pair in pairwise(ids):
            where[pair].add(index)

    # A max-heap of (count, pair), as a min-heap of (-count, pair): ties pop the smallest
    # pair. Entries go stale when a count changes; a fresh entry is pushed for every change
    # and a stale one is recognised (its count differs from `counts`) and skipped.
    heap = [(-count, pair) for pair, count in counts.items()]
    heapq.heapify(heap)

    merges: list[tuple[int, int]] = []
    while len(merges) < vocab_size - N_BYTES and heap:
        negative_count, pair = heapq.heappop(heap)
        if counts.get(pair, 0) != -negative_count or negative_count == 0:
            continue  # stale entry
        new_id = N_BYTES + len(merges)
        merges.append(pair)
        changed: set[tuple[int, int]] = set()
        for index in where.pop(pair):
            old = words[index]
            new = merge_pair(old, pair, new_id)
            if len(new) == len(old):
                continue  # an earlier merge already removed the pair from this word
            freq = freqs[index]
            for old_pair in pairwise(old):  # take the word's old pairs out ...
                counts[old_pair] -= freq
                changed.add(old_pair)
            for new_pair in pairwise(new):  # ... and put its new pairs in
                counts[new_pair] = counts.get(new_pair, 0) + freq
                changed.add(new_pair)
                where[new_pair].add(index)
            words[index] = new
        for changed_pair in changed:
            if counts[changed_pair] > 0:
                heapq.heappush(heap, (-counts[changed_pair], changed_pair))
            else:
                del counts[changed_pair]
    return BPETokenizer(merges=merges, pattern=pattern)
