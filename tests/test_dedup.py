"""Tests for llmzero.data.dedup: exact hashing, MinHash, LSH banding, against datasketch."""

from __future__ import annotations

import random

import numpy as np
import pytest

from llmzero.data.dedup import (
    exact_duplicates,
    fast_shingle_hashes,
    jaccard,
    lsh_candidates,
    lsh_probability,
    minhash,
    minhash_permutations,
    near_duplicates,
    shingle_hashes,
    shingles,
)

WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "pi",
    "rho",
]


def _random_text(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choice(WORDS) + str(rng.randrange(50)) for _ in range(n_words))


def _edit(text: str, rng: random.Random, n_edits: int) -> str:
    words = text.split()
    for _ in range(n_edits):
        words[rng.randrange(len(words))] = "edited" + str(rng.randrange(10**6))
    return " ".join(words)


def test_exact_duplicates_ignore_case_punctuation_and_spacing() -> None:
    texts = ["Hello, World!", "something else", "hello   world", "HELLO WORLD."]
    assert exact_duplicates(texts) == {2: 0, 3: 0}


def test_minhash_signatures_equal_datasketch_bit_for_bit() -> None:
    datasketch = pytest.importorskip("datasketch")
    rng = random.Random(0)
    shingle_set = shingles(_random_text(rng, 300))
    ours = minhash(shingle_hashes(shingle_set), minhash_permutations(128, seed=1))
    theirs = datasketch.MinHash(num_perm=128, seed=1)
    theirs.update_batch([s.encode("utf-8") for s in shingle_set])
    np.testing.assert_array_equal(ours, theirs.hashvalues)


def test_minhash_estimate_is_within_tolerance_of_exact_jaccard() -> None:
    rng = random.Random(1)
    permutations = minhash_permutations(256, seed=1)
    errors = []
    for n_edits in (2, 10, 30, 60, 120):
        base = _random_text(rng, 400)
        copy = _edit(base, rng, n_edits)
        exact = jaccard(shingles(base), shingles(copy))
        estimate = np.mean(
            minhash(fast_shingle_hashes(base), permutations)
            == minhash(fast_shingle_hashes(copy), permutations)
        )
        errors.append(abs(estimate - exact))
    # The estimate's standard error is sqrt(J(1-J)/256) <= 0.031; allow about 3 of them.
    assert max(errors) < 0.1, errors


def test_fast_shingle_hashes_count_each_distinct_shingle_once() -> None:
    text = "one two three four five six one two three four five six seven"
    assert len(fast_shingle_hashes(text, 5)) == len(shingles(text, 5)) == 7
    assert len(fast_shingle_hashes("too short", 5)) == len(shingles("too short", 5)) == 1


def test_lsh_probability_is_the_banding_s_curve() -> None:
    assert lsh_probability(1.0, 16, 8) == pytest.approx(1.0)
    assert lsh_probability(0.0, 16, 8) == pytest.approx(0.0)
    assert lsh_probability(0.8, 16, 8) == pytest.approx(1 - (1 - 0.8**8) ** 16)
    values = lsh_probability(np.linspace(0, 1, 11), 20, 5)
    assert np.all(np.diff(values) >= 0)


def test_lsh_candidates_match_datasketch_lsh_on_the_same_signatures() -> None:
    datasketch = pytest.importorskip("datasketch")
    rng = random.Random(2)
    permutations = minhash_permutations(128, seed=1)
    texts = []
    for _ in range(30):
        base = _random_text(rng, 200)
        texts += [base, _edit(base, rng, rng.randrange(1, 25))]
    signatures = np.stack([minhash(shingle_hashes(shingles(t)), permutations) for t in texts])
    ours = lsh_candidates(signatures, bands=16, rows=8)
    index = datasketch.MinHashLSH(num_perm=128, params=(16, 8))
    sketches = []
    for number, text in enumerate(texts):
        sketch = datasketch.MinHash(num_perm=128, seed=1)
        sketch.update_batch([s.encode("utf-8") for s in shingles(text)])
        index.insert(number, sketch)
        sketches.append(sketch)
    theirs = {
        (min(i, j), max(i, j))
        for i, sketch in enumerate(sketches)
        for j in index.query(sketch)
        if i != j
    }
    assert ours == theirs


def test_near_duplicates_recall_and_precision_on_planted_copies() -> None:
    rng = random.Random(3)
    texts, planted = [], set()
    for _ in range(60):
        base = _random_text(rng, 300)
        texts.append(base)
        if rng.random() < 0.5:
            texts.append(_edit(base, rng, 3))  # Jaccard about 0.9
            planted.add(len(texts) - 1)
    found = near_duplicates(texts, threshold=0.8)
    true_positives = len(set(found) & planted)
    assert true_positives / len(planted) >= 0.95
    assert true_positives / max(len(found), 1) >= 0.95
    assert all(texts[original] == texts[copy - 1] for copy, original in found.items())


def test_lsh_rejects_more_bands_than_the_signature_holds() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        lsh_candidates(np.zeros((2, 64), dtype=np.uint32), bands=16, rows=8)
