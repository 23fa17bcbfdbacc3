"""Tests for llmzero.text.bpe: byte-level BPE training, encoding, decoding and saving."""

from __future__ import annotations

import json
from collections import Counter
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmzero.data import assets
from llmzero.text import bpe

# Small enough to train in well under a second, large enough to learn real merges.
SHAKESPEARE_CHARS = 100_000
CORPUS_VOCAB = 600

# Chinese (CJK Unified Ideographs and punctuation), emoji and a few accented letters.
MULTILINGUAL = st.text(
    alphabet=st.one_of(
        st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),  # CJK ideographs
        st.characters(min_codepoint=0x3000, max_codepoint=0x303F),  # CJK punctuation
        st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF),  # emoji and pictographs
        st.sampled_from("aeiou éüñ ,.!?\n\t'’"),
    )
)


def _corpus() -> str:
    """Tiny Shakespeare's start plus the Tang poems: English and Chinese, both real."""
    try:
        shakespeare = assets.path("tinyshakespeare").read_text(encoding="utf-8")
        tang = json.loads(assets.path("tang300").read_text(encoding="utf-8"))
    except assets.AssetError as error:  # no offline folder, no download allowed
        pytest.skip(f"corpus not available: {error}")
    poems = [
        line
        for group in tang["content"]
        for poem in group["content"]
        for line in poem["paragraphs"]
    ]
    return shakespeare[:SHAKESPEARE_CHARS] + "\n".join(poems)


@pytest.fixture(scope="module")
def corpus() -> str:
    return _corpus()


@pytest.fixture(scope="module")
def tokenizer(corpus: str) -> bpe.BPETokenizer:
    return bpe.train(corpus, CORPUS_VOCAB)


def naive_train(text: str, n_merges: int, pattern: str | None) -> list[tuple[int, int]]:
    """The textbook loop: recount every pair after every merge (slow, obviously right)."""
    freqs = Counter(bpe.pre_split(text, pattern))
    words = {chunk: list(chunk.encode("utf-8")) for chunk in freqs}
    merges = []
    for step in range(n_merges):
        counts: Counter = Counter()
        for chunk, freq in freqs.items():
            for pair in pairwise(words[chunk]):
                counts[pair] += freq
        if not counts:
            break
        best = max(counts, key=lambda p: (counts[p], -p[0], -p[1]))  # ties: smallest pair
        merges.append(best)
        words = {chunk: bpe.merge_pair(ids, best, 256 + step) for chunk, ids in words.items()}
    return merges


# --------------------------------------------------------------------------- building blocks


def test_merge_pair_replaces_occurrences_left_to_right() -> None:
    assert bpe.merge_pair([1, 2, 3, 1, 2], (1, 2), 9) == [9, 3, 9]
    assert bpe.merge_pair([7, 7, 7], (7, 7), 9) == [9, 7]
    assert bpe.merge_pair([7, 7, 7, 7], (7, 7), 9) == [9, 9]
    assert bpe.merge_pair([1, 3], (1, 2), 9) == [1, 3]
    assert bpe.merge_pair([], (1, 2), 9) == []


def test_pair_counts_counts_overlapping_pairs_with_weights() -> None:
    assert bpe.pair_counts([7, 7, 7]) == Counter({(7, 7): 2})
    counts = bpe.pair_counts([1, 2, 3], weight=5)
    assert counts == Counter({(1, 2): 5, (2, 3): 5})
    assert bpe.pair_counts([4], counts) is counts  # adds into the given counter


def test_pre_split_keeps_leading_space_with_word() -> None:
    chunks = bpe.pre_split("Hello world! It's 2024;  ok\n\n你好，世界")
    english = ["Hello", " world", "!", " It", "'s", " 2024", ";", " ", " ok"]
    # "\n\n" before a non-space splits in two, as in GPT-2: the last newline stands alone.
    assert chunks == [*english, "\n", "\n", "你好", "，", "世界"]
    assert bpe.pre_split("some text", None) == ["some text"]
    assert bpe.pre_split("", None) == []


@given(st.text())
def test_pre_split_covers_every_character(text: str) -> None:
    assert "".join(bpe.pre_split(text)) == text


def test_pre_split_agrees_with_gpt2_regex_on_ordinary_text(corpus: str) -> None:
    regex = pytest.importorskip("regex")
    gpt2 = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
    sample = corpus[:20_000] + corpus[-5_000:] + " naïve café 3.14 😀 _x_ don't\t\tend  "
    assert bpe.pre_split(sample) == regex.findall(gpt2, sample)


# --------------------------------------------------------------------------- training


@pytest.mark.parametrize("pattern", [bpe.GPT2_SPLIT_PATTERN, None])
def test_train_learns_the_same_merges_as_the_naive_loop(corpus: str, pattern: str | None) -> None:
    text = corpus[:8_000] + corpus[-1_500:]  # English and Chinese; small: the loop is slow
    n_merges = 60
    tokenizer = bpe.train(text, bpe.N_BYTES + n_merges, pattern=pattern)
    assert tokenizer.merges == naive_train(text, n_merges, pattern)


def test_training_is_deterministic(corpus: str) -> None:
    first = bpe.train(corpus[:50_000], 400)
    second = bpe.train(corpus[:50_000], 400)
    assert first.merges == second.merges


def test_smaller_vocabulary_learns_a_prefix_of_the_merges(corpus: str) -> None:
    small = bpe.train(corpus[:50_000], 300)
    large = bpe.train(corpus[:50_000], 400)
    assert large.merges[: len(small.merges)] == small.merges


def test_vocab_size_is_respected(tokenizer: bpe.BPETokenizer, corpus: str) -> None:
    assert tokenizer.vocab_size == len(tokenizer) == CORPUS_VOCAB
    assert len(tokenizer.vocab) == CORPUS_VOCAB
    assert len(set(tokenizer.vocab.values())) == CORPUS_VOCAB  # every token is distinct
    ids = tokenizer.encode(corpus[-3_000:])
    assert max(ids) < CORPUS_VOCAB


def test_training_stops_early_when_nothing_is_left_to_merge() -> None:
    tokenizer = bpe.train("abab", 1_000)  # one chunk "abab": (a,b) then (ab,ab)
    assert tokenizer.merges == [(ord("a"), ord("b")), (256, 256)]
    assert tokenizer.vocab_size == 258
    assert tokenizer.encode("abab") == [257]


def test_vocab_size_below_bytes_is_rejected() -> None:
    with pytest.raises(ValueError, match="at least 256"):
        bpe.train("hello", 255)


def test_merges_reduce_the_token_count(corpus: str) -> None:
    train_text, heldout = corpus[:60_000], corpus[60_000:80_000]
    lengths = [len(bpe.train(train_text, size).encode(heldout)) for size in (256, 300, 400, 600)]
    assert lengths[0] == len(heldout.encode("utf-8"))  # no merges: one token per byte
    assert lengths == sorted(lengths, reverse=True) and len(set(lengths)) == len(lengths)
    assert lengths[-1] < 0.6 * lengths[0]


def test_frequent_pair_is_merged_first() -> None:
    tokenizer = bpe.train("aa aa aa bc", 257)  # chunks "aa", " aa", " aa", " bc"
    assert tokenizer.merges == [(ord("a"), ord("a"))]
    assert tokenizer.token_strings([256]) == ["aa"]


# --------------------------------------------------------------------------- round trips


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(st.text())
def test_decode_encode_round_trips_any_unicode(tokenizer: bpe.BPETokenizer, text: str) -> None:
    assert tokenizer.decode(tokenizer.encode(text)) == text


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(MULTILINGUAL)
def test_decode_encode_round_trips_chinese_and_emoji(
    tokenizer: bpe.BPETokenizer, text: str
) -> None:
    ids = tokenizer.encode(text)
    assert tokenizer.decode(ids) == text
    assert len(ids) <= len(text.encode("utf-8"))  # merges never make text longer


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=0, max_value=400))
def test_decode_encode_round_trips_corpus_slices(
    tokenizer: bpe.BPETokenizer, corpus: str, start: int, length: int
) -> None:
    start %= len(corpus)
    text = corpus[start : start + length]
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_known_strings_round_trip_and_compress(tokenizer: bpe.BPETokenizer) -> None:
    for text in [
        "To be, or not to be",
        "白日依山盡，黃河入海流。",
        "emoji 😀🎉👍🏽 mixed 中文 text",
        "",
    ]:
        ids = tokenizer.encode(text)
        assert tokenizer.decode(ids) == text
    english = "ROMEO: What light through yonder window breaks?"
    assert len(tokenizer.encode(english)) < 0.75 * len(english.encode("utf-8"))
    # Tang poems are in the corpus, so their frequent characters became single tokens.
    poem = "白日依山盡"
    assert len(tokenizer.encode(poem)) < len(poem.encode("utf-8"))


_UNSPLIT = bpe.train("the cat sat on the mat; 猫坐在垫子上 🐈🐈 " * 20, 300, pattern=None)


@given(st.text(max_size=50))
def test_round_trip_without_pre_split(text: str) -> None:
    tokenizer = _UNSPLIT
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_decode_of_a_cut_character_gives_the_replacement_character() -> None:
    tokenizer = bpe.BPETokenizer(merges=[])
    ids = tokenizer.encode("中")  # three bytes, three tokens
    assert len(ids) == 3
    assert tokenizer.decode(ids[:2]) == "\N{REPLACEMENT CHARACTER}"
    assert tokenizer.decode_bytes(ids[:2]) == "中".encode()[:2]


def test_decode_rejects_unknown_ids() -> None:
    with pytest.raises(ValueError, match="not in this vocabulary"):
        bpe.BPETokenizer(merges=[]).decode([256])


# --------------------------------------------------------------------------- saving


def test_save_load_round_trips(tokenizer: bpe.BPETokenizer, corpus: str, tmp_path) -> None:
    path = tmp_path / "bpe.json"
    tokenizer.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))  # plain JSON
    assert data["format"] == "llmzero-bpe" and len(data["merges"]) == CORPUS_VOCAB - 256
    loaded = bpe.BPETokenizer.load(path)
    assert loaded.merges == tokenizer.merges and loaded.pattern == tokenizer.pattern
    assert loaded.vocab == tokenizer.vocab
    sample = corpus[-2_000:]
    assert loaded.encode(sample) == tokenizer.encode(sample)


def test_save_load_keeps_no_pre_split(tmp_path) -> None:
    path = tmp_path / "unsplit.json"
    _UNSPLIT.save(path)
    loaded = bpe.BPETokenizer.load(path)
    assert loaded.pattern is None and loaded.merges == _UNSPLIT.merges


def test_load_rejects_other_files(tmp_path) -> None:
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"model": {"type": "BPE"}}), encoding="utf-8")
    with pytest.raises(ValueError, match="not an llmzero-bpe"):
        bpe.BPETokenizer.load(path)


def test_invalid_merges_are_rejected() -> None:
    with pytest.raises(ValueError, match="does not exist yet"):
        bpe.BPETokenizer(merges=[(256, 1)])  # merge 0 creates 256; it cannot use it
    with pytest.raises(ValueError, match="repeats"):
        bpe.BPETokenizer(merges=[(1, 2), (1, 2)])
