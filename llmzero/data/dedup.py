"""Deduplication: exact (hashing) and near-duplicate (MinHash + LSH), from scratch (Part IV).

Built in the chapter *Data at scale*. The web is full of copies: mirrors, syndicated
articles, pages that differ by a date or a banner. Training on them wastes compute and
makes a model memorise. Two tools find them:

- **exact**: hash each document's normalized text; equal hashes are copies
  (:func:`exact_duplicates`);
- **near**: compare documents as *sets of shingles* (word n-grams) with the Jaccard
  similarity :math:`J(A, B) = |A \\cap B| / |A \\cup B|`. MinHash compresses each set into
  ``num_perm`` numbers whose agreement rate estimates :math:`J` (:func:`minhash`), and
  locality-sensitive hashing (LSH) cuts each signature into ``bands`` of ``rows`` values so
  that only documents sharing a whole band are ever compared (:func:`lsh_candidates`).
  A pair shares a band with probability :math:`1 - (1 - J^r)^b`, an S-curve
  (:func:`lsh_probability`).

The MinHash here uses the same permutation family and seeds as ``datasketch`` 2.0 (its
default ``affine32`` scheme) and, in :func:`shingle_hashes`, the same 32-bit SHA-1 shingle
hash, so its signatures are identical to ``datasketch.MinHash(num_perm, seed)``'s bit for
bit; the chapter and ``tests/test_dedup.py`` check it.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections import defaultdict
from collections.abc import Iterable, Sequence
from itertools import combinations

import numpy as np

__all__ = [
    "UnionFind",
    "cluster_signatures",
    "dedup_normalize",
    "exact_duplicates",
    "exact_hash",
    "fast_shingle_hashes",
    "jaccard",
    "lsh_candidates",
    "lsh_probability",
    "lsh_threshold",
    "minhash",
    "minhash_permutations",
    "near_duplicates",
    "sha1_hash32",
    "shingle_hashes",
    "shingles",
]

_NON_WORD = re.compile(r"[\W_]+")


def dedup_normalize(text: str) -> str:
    """Lower-case and keep only letters and digits, one space between words: the form in
    which two copies that differ only in case, punctuation or spacing become equal."""
    return _NON_WORD.sub(" ", text.lower()).strip()


def exact_hash(text: str) -> str:
    """SHA-1 (hex) of ``dedup_normalize(text)``: equal for texts equal up to normalization."""
    return hashlib.sha1(dedup_normalize(text).encode("utf-8")).hexdigest()


def exact_duplicates(texts: Sequence[str]) -> dict[int, int]:
    """Map the index of every exact copy to the index of the first text with its hash.

    >>> exact_duplicates(["A b.", "c", "a  B"])
    {2: 0}
    """
    first: dict[str, int] = {}
    copies = {}
    for index, text in enumerate(texts):
        digest = exact_hash(text)
        if digest in first:
            copies[index] = first[digest]
        else:
            first[digest] = index
    return copies


def shingles(text: str, n: int = 5) -> set[str]:
    """The set of word ``n``-grams of ``dedup_normalize(text)``, each joined by spaces.

    A text shorter than ``n`` words is one shingle (itself), so it is never an empty set.
    """
    if n < 1:
        raise ValueError(f"n must be a positive number of words, got {n}.")
    words = dedup_normalize(text).split()
    if len(words) <= n:
        return {" ".join(words)}
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    """:math:`|A \\cap B| / |A \\cup B|` (1.0 for two empty sets)."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def sha1_hash32(data: bytes) -> int:
    """The first 4 bytes of ``data``'s SHA-1 as a little-endian integer (``datasketch``'s
    default hash function)."""
    return struct.unpack_from("<I", hashlib.sha1(data).digest())[0]


def shingle_hashes(shingle_set: Iterable[str]) -> np.ndarray:
    """The 32-bit SHA-1 hash (:func:`sha1_hash32`) of each shingle, as a ``uint32`` array.

    Simple and the same as ``datasketch``'s, but one SHA-1 per shingle is the slowest part
    of MinHash in Python; :func:`fast_shingle_hashes` computes the same *sets* faster.
    """
    return np.array([sha1_hash32(s.encode("utf-8")) for s in shingle_set], dtype=np.uint32)


_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


def fast_shingle_hashes(text: str, n: int = 5, cache: dict[str, int] | None = None) -> np.ndarray:
    """32-bit hashes of the distinct word ``n``-gram shingles of ``text``, computed from
    word hashes instead of shingle strings.

    Each distinct word is hashed once with :func:`sha1_hash32` (``cache`` keeps them across
    calls); a shingle's hash is a polynomial of its words' hashes in wrap-around ``uint64``
    arithmetic, folded to 32 bits. Equal shingles get equal hashes, so MinHash estimates
    the same Jaccard similarity, but the values differ from :func:`shingle_hashes`.
    Returns a sorted ``uint32`` array without repeats (one value per shingle).
    """
    if n < 1:
        raise ValueError(f"n must be a positive number of words, got {n}.")
    cache = {} if cache is None else cache
    words = dedup_normalize(text).split()
    for word in set(words).difference(cache):
        cache[word] = sha1_hash32(word.encode("utf-8"))
    word_hashes = np.fromiter(map(cache.__getitem__, words), dtype=np.uint64, count=len(words))
    count = max(len(words) - n + 1, 1 if words else 0)
    keys = np.zeros(count, dtype=np.uint64)
    for offset in range(min(n, len(words))):
        keys = keys * _MULTIPLIER + word_hashes[offset : offset + count]
    folded = (keys ^ (keys >> np.uint64(32))) & np.uint64(0xFFFFFFFF)
    return np.unique(folded.astype(np.uint32))


def minhash_permutations(num_perm: int = 128, seed: int = 1) -> np.ndarray:
    """``num_perm`` random affine maps :math:`h \\mapsto (a h + b) \\bmod 2^{32}`, ``a`` odd.

    An odd ``a`` makes each map a *permutation* of the 32-bit numbers. Returns a ``(2,
    num_perm)`` ``uint32`` array ``[a, b]``, drawn exactly as ``datasketch`` draws them.
    """
    if num_perm < 1:
        raise ValueError(f"num_perm must be positive, got {num_perm}.")
    generator = np.random.RandomState(seed)
    a = generator.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = generator.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return np.array([a, b])


def _fmix32(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer: a fixed bijection that scrambles every bit."""
    values = values ^ (values >> np.uint32(16))
    values = values * np.uint32(0x85EBCA6B)
    values = values ^ (values >> np.uint32(13))
    values = values * np.uint32(0xC2B2AE35)
    return values ^ (values >> np.uint32(16))


def minhash(hashes: np.ndarray, permutations: np.ndarray) -> np.ndarray:
    """The MinHash signature of a set given its 32-bit element hashes: ``(num_perm,)``.

    Signature value ``k`` is the smallest image of the set under permutation ``k``. For two
    sets, ``P(signature values agree) = J(A, B)``, so the fraction of agreeing positions
    is an unbiased estimate of the Jaccard similarity.

    Args:
        hashes: ``(n_elements,)`` ``uint32`` hashes (``shingle_hashes``), ``n_elements > 0``.
        permutations: ``(2, num_perm)`` from :func:`minhash_permutations`.
    """
    if len(hashes) == 0:
        raise ValueError("minhash needs a non-empty set; shingles() never returns one.")
    a, b = permutations
    mixed = _fmix32(np.asarray(hashes, dtype=np.uint32))[:, None]  # (n_elements, 1)
    return (mixed * a + b).min(axis=0)  # uint32 arithmetic wraps: mod 2^32; (num_perm,)


def lsh_probability(similarity: np.ndarray | float, bands: int, rows: int) -> np.ndarray:
    """Probability that two sets of Jaccard ``similarity`` share at least one LSH band:
    :math:`1 - (1 - s^r)^b`."""
    return 1 - (1 - np.asarray(similarity, dtype=float) ** rows) ** bands


def lsh_threshold(bands: int, rows: int) -> float:
    """The S-curve's approximate midpoint :math:`(1/b)^{1/r}`."""
    return (1 / bands) ** (1 / rows)


def lsh_candidates(signatures: np.ndarray, bands: int, rows: int) -> set[tuple[int, int]]:
    """Pairs ``(i, j)``, ``i < j``, of rows of ``signatures`` (``(n_docs, num_perm)``) that
    agree on all ``rows`` values of at least one of ``bands`` bands."""
    n_docs, num_perm = signatures.shape
    if bands * rows > num_perm:
        raise ValueError(
            f"bands * rows = {bands * rows} exceeds the {num_perm} values of each signature; "
            "use fewer bands or rows, or longer signatures."
        )
    pairs: set[tuple[int, int]] = set()
    for band in range(bands):
        buckets: dict[bytes, list[int]] = defaultdict(list)
        block = np.ascontiguousarray(signatures[:, band * rows : (band + 1) * rows])
        for index in range(n_docs):
            buckets[block[index].tobytes()].append(index)
        for members in buckets.values():
            pairs.update(combinations(members, 2))
    return pairs


class UnionFind:
    """Disjoint sets over ``0..n-1``: ``union(i, j)`` joins two groups, ``find(i)`` names
    the group (its smallest member, so results do not depend on the order of unions)."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, item: int) -> int:
        root = item
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[item] != root:  # path compression
            self.parent[item], item = root, self.parent[item]
        return root

    def union(self, first: int, second: int) -> None:
        a, b = self.find(first), self.find(second)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def near_duplicates(
    texts: Sequence[str],
    *,
    threshold: float = 0.8,
    num_perm: int = 128,
    bands: int = 16,
    rows: int = 8,
    n: int = 5,
    seed: int = 1,
) -> dict[int, int]:
    """Find near-duplicate texts with MinHash + LSH; map each copy to the first of its group.

    Candidate pairs from :func:`lsh_candidates` are kept when their *estimated* Jaccard
    similarity (signature agreement) is at least ``threshold``; kept pairs are joined into
    groups with :class:`UnionFind` (so A~B and B~C puts A, B, C together), and every member
    but the first (smallest index) is reported as a copy of it.
    """
    permutations = minhash_permutations(num_perm, seed)
    cache: dict[str, int] = {}
    signatures = np.stack(
        [minhash(fast_shingle_hashes(text, n, cache), permutations) for text in texts]
    )
    return cluster_signatures(signatures, threshold=threshold, bands=bands, rows=rows)


def cluster_signatures(
    signatures: np.ndarray, *, threshold: float = 0.8, bands: int = 16, rows: int = 8
) -> dict[int, int]:
    """Group rows of ``signatures`` (``(n_docs, num_perm)``) whose LSH candidates agree on at
    least ``threshold`` of their values; map each member but the first of a group to the
    first. The second half of :func:`near_duplicates`, usable on signatures computed
    elsewhere (on other machines, in a distributed pipeline)."""
    groups = UnionFind(len(signatures))
    for i, j in sorted(lsh_candidates(signatures, bands, rows)):
        if np.mean(signatures[i] == signatures[j]) >= threshold:
            groups.union(i, j)
    return {i: groups.find(i) for i in range(len(signatures)) if groups.find(i) != i}
