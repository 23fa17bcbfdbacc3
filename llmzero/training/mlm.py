"""BERT's two pretraining tasks: masked language modeling and next-sentence prediction.

Built step by step in Part III's chapter *Encoders and encoder–decoders*; Part IV's chapter
on masked language modeling pretrains a small encoder with them::

    from llmzero.training.mlm import make_nsp_pairs, mask_tokens

    inputs, labels = mask_tokens(input_ids, mask_token_id=103, vocab_size=30522,
                                 special_token_ids={0, 101, 102})
    pairs = make_nsp_pairs(documents, generator=torch.Generator().manual_seed(0))

**Masked language modeling** (Devlin et al., 2019): choose 15% of the positions that are
not special tokens; of those, replace 80% by ``[MASK]``, 10% by a random token and keep
10% unchanged; the model must predict the original token at every chosen position and
nowhere else (labels are -100 elsewhere, the value PyTorch's cross-entropy ignores). Each
position is chosen independently, as in Hugging Face's ``DataCollatorForLanguageModeling``,
so a sequence gets 15% of its positions on average, not exactly.

**Next-sentence prediction**: pairs of sentences ``(A, B)`` where half the time ``B`` is the
sentence that follows ``A`` (IsNext) and half the time a random sentence (NotNext).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["IGNORE_INDEX", "SentencePair", "make_nsp_pairs", "mask_tokens"]

#: The label of positions that do not count in the loss (``F.cross_entropy``'s default
#: ``ignore_index``).
IGNORE_INDEX = -100


def _check_probability(value: float, name: str) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value}.")


def mask_tokens(
    input_ids: Tensor,
    mask_token_id: int,
    vocab_size: int,
    special_token_ids: Collection[int],
    mlm_probability: float = 0.15,
    generator: torch.Generator | None = None,
    *,
    mask_replace_prob: float = 0.8,
    random_replace_prob: float = 0.1,
) -> tuple[Tensor, Tensor]:
    """Corrupt a batch of token ids for masked language modeling, the way BERT does.

    Every position whose token is not in ``special_token_ids`` is *selected* with
    probability ``mlm_probability``. A selected position becomes ``mask_token_id`` with
    probability ``mask_replace_prob``, a token drawn uniformly from ``range(vocab_size)``
    with probability ``random_replace_prob``, and stays unchanged otherwise (so 80/10/10 by
    default). A random token can happen to equal the original one, so slightly more than
    10% of selected positions end up unchanged (an extra ``0.1 / vocab_size``).

    Random numbers are drawn in a fixed order (selection, replacement kind, random tokens)
    from ``generator`` (or PyTorch's global generator), so a seeded generator gives the
    same result every time.

    Args:
        input_ids: integer token ids of any shape, usually ``(batch, seq)``.
        mask_token_id: the id of ``[MASK]``.
        vocab_size: random replacements are drawn from ``0 .. vocab_size - 1``.
        special_token_ids: ids never selected (``[CLS]``, ``[SEP]``, ``[PAD]``, ...).
        mlm_probability: the probability of selecting each non-special position.
        generator: the random number generator to draw from.
        mask_replace_prob: of the selected positions, the share replaced by ``[MASK]``.
        random_replace_prob: of the selected positions, the share replaced by a random token.

    Returns:
        ``(inputs, labels)``, both shaped like ``input_ids``: the corrupted ids the model
        reads, and the original ids at selected positions with :data:`IGNORE_INDEX` (-100)
        everywhere else. ``input_ids`` itself is not modified.

    Raises:
        TypeError: ``input_ids`` is not an integer tensor.
        ValueError: a probability is outside ``[0, 1]``, the two replacement shares add up
            to more than 1, or ``mask_token_id`` is not below ``vocab_size``.
    """
    if not isinstance(input_ids, Tensor) or input_ids.is_floating_point() or input_ids.is_complex():
        raise TypeError("input_ids must be an integer tensor of token ids.")
    for value, name in (
        (mlm_probability, "mlm_probability"),
        (mask_replace_prob, "mask_replace_prob"),
        (random_replace_prob, "random_replace_prob"),
    ):
        _check_probability(value, name)
    if mask_replace_prob + random_replace_prob > 1.0 + 1e-12:
        raise ValueError("mask_replace_prob + random_replace_prob must be at most 1.")
    if not 0 <= mask_token_id < vocab_size:
        raise ValueError(f"mask_token_id {mask_token_id} is not below vocab_size {vocab_size}.")

    device = generator.device if generator is not None else input_ids.device
    shape = input_ids.shape
    special_ids = torch.tensor(sorted(special_token_ids), dtype=input_ids.dtype)
    special = torch.isin(input_ids, special_ids.to(input_ids.device))  # (batch, seq)

    # 1. Select each non-special position with probability mlm_probability.
    draws = torch.rand(shape, generator=generator, device=device).to(input_ids.device)
    selected = (draws < mlm_probability) & ~special  # (batch, seq)
    # 2. One more uniform number per position decides what a selected position becomes:
    #    [0, 0.8) -> [MASK], [0.8, 0.9) -> a random token, [0.9, 1) -> unchanged.
    kind = torch.rand(shape, generator=generator, device=device).to(input_ids.device)
    to_mask = selected & (kind < mask_replace_prob)
    to_random = selected & (kind >= mask_replace_prob)
    to_random &= kind < mask_replace_prob + random_replace_prob
    random_tokens = torch.randint(vocab_size, shape, generator=generator, device=device)
    random_tokens = random_tokens.to(device=input_ids.device, dtype=input_ids.dtype)

    inputs = input_ids.clone()
    inputs[to_mask] = mask_token_id
    inputs[to_random] = random_tokens[to_random]
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    return inputs, labels


class SentencePair(NamedTuple):
    """One next-sentence-prediction example.

    Hugging Face's ``BertForPreTraining`` takes ``next_sentence_label = 0`` for IsNext and
    ``1`` for NotNext, i.e. ``int(not pair.is_next)``.
    """

    #: The first sentence, A.
    first: str
    #: The second sentence, B, which is the sentence after A (IsNext) or a random one (NotNext).
    second: str
    #: Whether ``second`` really follows ``first`` in the text.
    is_next: bool


def make_nsp_pairs(
    sentences: Sequence[str] | Sequence[Sequence[str]],
    generator: torch.Generator | None = None,
) -> list[SentencePair]:
    """Build next-sentence-prediction pairs: about half IsNext, half NotNext.

    Every sentence that has a successor in its document becomes sentence A of one pair.
    With probability 1/2, sentence B is that successor (IsNext); otherwise B is drawn
    uniformly from the sentences of the *other* documents (NotNext), as BERT drew it from
    a random document. With a single document, B is drawn from its sentences other than A
    and A's successor.

    Args:
        sentences: either one document as a list of sentences, in order, or a list of
            documents, each a list of sentences in order.
        generator: the random number generator to draw from (default: PyTorch's global).

    Returns:
        The pairs, in document order.

    Raises:
        ValueError: no document has two sentences, or a single document has fewer than
            three (there would be nothing to draw a NotNext sentence from).
    """
    if all(isinstance(sentence, str) for sentence in sentences):
        documents = [list(sentences)]  # one document
    else:
        documents = [list(document) for document in sentences]
    documents = [document for document in documents if document]  # drop empty documents
    if not any(len(document) >= 2 for document in documents):
        raise ValueError("make_nsp_pairs needs a document with at least two sentences.")
    if len(documents) == 1 and len(documents[0]) < 3:
        raise ValueError("a single document needs at least three sentences.")
    flat = [sentence for document in documents for sentence in document]
    starts, total = [], 0
    for document in documents:
        starts.append(total)
        total += len(document)

    def draw(high: int) -> int:
        return int(torch.randint(high, (1,), generator=generator))

    pairs = []
    for index, document in enumerate(documents):
        start, size = starts[index], len(document)
        for position in range(size - 1):
            if draw(2) == 0:
                pairs.append(SentencePair(document[position], document[position + 1], True))
                continue
            if len(documents) > 1:
                other = draw(total - size)  # an index into the sentences of other documents
                other += size if other >= start else 0  # skip this document's sentences
            else:  # one document: any sentence but A and its successor
                other = draw(size - 2)
                other += 2 if other >= position else 0
            pairs.append(SentencePair(document[position], flat[other], False))
    return pairs
