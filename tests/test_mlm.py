"""Tests for llmzero.training.mlm: BERT's masking procedure and next-sentence-prediction pairs."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmzero.training.mlm import IGNORE_INDEX, SentencePair, make_nsp_pairs, mask_tokens

VOCAB = 1000
MASK, CLS, SEP, PAD = 103, 101, 102, 0
SPECIAL = {PAD, CLS, SEP, MASK}


def batch_with_specials(rows: int = 400, seq: int = 256, seed: int = 0) -> torch.Tensor:
    """Random ids in [200, VOCAB) framed as ``[CLS] ... [SEP] [PAD] [PAD]``."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(200, VOCAB, (rows, seq), generator=generator)  # (rows, seq)
    ids[:, 0], ids[:, -3], ids[:, -2:] = CLS, SEP, PAD
    return ids


def corrupt(ids: torch.Tensor, seed: int = 1, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return mask_tokens(ids, MASK, VOCAB, SPECIAL, generator=generator, **kwargs)


def within(observed: float, expected: float, n: int, sigmas: float = 5.0) -> bool:
    """Is a binomial proportion from ``n`` trials within ``sigmas`` standard errors?"""
    return abs(observed - expected) <= sigmas * math.sqrt(expected * (1 - expected) / n)


def test_about_15_percent_of_ordinary_positions_are_selected() -> None:
    ids = batch_with_specials()
    _, labels = corrupt(ids)
    ordinary = ~torch.isin(ids, torch.tensor(sorted(SPECIAL)))
    rate = (labels[ordinary] != IGNORE_INDEX).float().mean().item()
    assert within(rate, 0.15, int(ordinary.sum()))


def test_selected_positions_split_80_10_10() -> None:
    ids = batch_with_specials()
    inputs, labels = corrupt(ids)
    selected = labels != IGNORE_INDEX
    n = int(selected.sum())
    masked = (inputs[selected] == MASK).float().mean().item()
    unchanged = (inputs[selected] == ids[selected]).float().mean().item()
    randomized = 1.0 - masked - unchanged
    assert within(masked, 0.8, n)
    assert within(randomized, 0.1 * (1 - 1 / VOCAB), n)  # a random draw can hit the original
    assert within(unchanged, 0.1 + 0.1 / VOCAB, n)


def test_custom_replacement_shares_are_respected() -> None:
    ids = batch_with_specials()
    inputs, labels = corrupt(
        ids, mlm_probability=0.3, mask_replace_prob=0.5, random_replace_prob=0.5
    )
    selected = labels != IGNORE_INDEX
    n = int(selected.sum())
    assert within((inputs[selected] == MASK).float().mean().item(), 0.5, n)
    assert (inputs[selected] == ids[selected]).float().mean().item() < 0.01  # only by chance


def test_special_tokens_are_never_selected_or_changed() -> None:
    ids = batch_with_specials()
    inputs, labels = corrupt(ids, mlm_probability=0.9)
    special = torch.isin(ids, torch.tensor(sorted(SPECIAL)))
    assert special.sum() > 0
    assert (labels[special] == IGNORE_INDEX).all()
    assert torch.equal(inputs[special], ids[special])


def test_labels_are_minus_100_exactly_where_not_selected() -> None:
    ids = batch_with_specials(rows=50)
    inputs, labels = corrupt(ids)
    selected = labels != IGNORE_INDEX
    assert torch.equal(labels[selected], ids[selected])  # the original token, where chosen
    assert (labels[~selected] == IGNORE_INDEX).all()
    assert torch.equal(inputs[~selected], ids[~selected])  # nothing else is touched


def test_input_is_not_modified_and_seeded_runs_repeat() -> None:
    ids = batch_with_specials(rows=8)
    before = ids.clone()
    first = corrupt(ids, seed=7)
    second = corrupt(ids, seed=7)
    assert torch.equal(ids, before)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert not torch.equal(first[0], corrupt(ids, seed=8)[0])


@settings(max_examples=30, deadline=None)
@given(
    p=st.floats(0.0, 1.0),
    mask_share=st.floats(0.0, 1.0),
    random_share=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_only_selected_positions_change_for_any_probabilities(
    p: float, mask_share: float, random_share: float, seed: int
) -> None:
    random_share = min(random_share, 1.0 - mask_share)
    ids = batch_with_specials(rows=4, seq=32, seed=seed)
    inputs, labels = corrupt(
        ids,
        seed=seed,
        mlm_probability=p,
        mask_replace_prob=mask_share,
        random_replace_prob=random_share,
    )
    changed = inputs != ids
    assert (labels[changed] != IGNORE_INDEX).all()
    assert inputs.shape == labels.shape == ids.shape and inputs.dtype == ids.dtype
    assert ((inputs >= 0) & (inputs < VOCAB)).all()


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"input_ids": torch.rand(2, 3)}, TypeError),
        ({"mlm_probability": 1.5}, ValueError),
        ({"mask_replace_prob": 0.7, "random_replace_prob": 0.4}, ValueError),
        ({"mask_token_id": VOCAB}, ValueError),
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict, error: type[Exception]) -> None:
    arguments = {
        "input_ids": torch.ones(2, 3, dtype=torch.long),
        "mask_token_id": MASK,
        "vocab_size": VOCAB,
        "special_token_ids": SPECIAL,
        **kwargs,
    }
    with pytest.raises(error):
        mask_tokens(**arguments)


# ---------------------------------------------------------------- next-sentence prediction


def documents(n_docs: int = 200, n_sentences: int = 12) -> list[list[str]]:
    return [[f"d{d} s{s}" for s in range(n_sentences)] for d in range(n_docs)]


def position(sentence: str) -> tuple[int, int]:
    doc, sent = sentence.split()
    return int(doc[1:]), int(sent[1:])


def test_nsp_pairs_are_half_is_next() -> None:
    pairs = make_nsp_pairs(documents(), generator=torch.Generator().manual_seed(0))
    share = sum(pair.is_next for pair in pairs) / len(pairs)
    assert within(share, 0.5, len(pairs))


def test_is_next_pairs_are_consecutive_and_not_next_come_from_other_documents() -> None:
    pairs = make_nsp_pairs(documents(), generator=torch.Generator().manual_seed(1))
    assert all(isinstance(pair, SentencePair) for pair in pairs)
    assert len(pairs) == 200 * 11  # every sentence with a successor is sentence A once
    for first, second, is_next in pairs:
        (doc_a, sent_a), (doc_b, sent_b) = position(first), position(second)
        if is_next:
            assert (doc_b, sent_b) == (doc_a, sent_a + 1)
        else:
            assert doc_b != doc_a


def test_single_document_not_next_is_neither_sentence_a_nor_its_successor() -> None:
    sentences = [f"d0 s{s}" for s in range(30)]
    pairs = make_nsp_pairs(sentences, generator=torch.Generator().manual_seed(2))
    not_next = [pair for pair in pairs if not pair.is_next]
    assert not_next
    for first, second, _ in not_next:
        assert position(second)[1] not in (position(first)[1], position(first)[1] + 1)


def test_nsp_needs_enough_sentences() -> None:
    with pytest.raises(ValueError):
        make_nsp_pairs([["only one"], ["another one"]])
    with pytest.raises(ValueError):
        make_nsp_pairs(["a", "b"])
