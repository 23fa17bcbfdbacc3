"""Tokenize-and-pack: turn cleaned documents into token shards a trainer can stream (Part IV).

Built in the chapter *Data at scale*. A pretraining run never sees "documents": it sees one
long stream of token ids, cut into fixed-length windows. Packing makes that stream:

1. :func:`pack_documents` concatenates the documents' token ids with a *separator* token
   (GPT-2's ``<|endoftext|>``) between them, so the model learns where a text ends and a
   window that straddles two documents still says so;
2. :func:`write_shards` cuts the stream into files of ``tokens_per_shard`` tokens, small
   enough to copy and to split among workers, written as ``.npy`` files;
3. :func:`read_shards` memory-maps them back: the operating system reads only the pages a
   training batch touches, so a corpus far larger than RAM trains the same way.

A *data mixture* says what share of the training tokens each source supplies;
:func:`mixture_plan` turns the weights into token counts and epochs per source.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["MixturePart", "mixture_plan", "pack_documents", "read_shards", "write_shards"]


def pack_documents(
    token_id_lists: Sequence[Sequence[int]], separator_id: int, dtype: type = np.uint16
) -> np.ndarray:
    """Concatenate documents' token ids into one flat array, ``separator_id`` after each one.

    ``[[5, 6], [7]]`` with separator 0 gives ``[5, 6, 0, 7, 0]``: every document, the last
    included, ends with the separator, so the stream can be cut and re-joined anywhere.

    Args:
        token_id_lists: one sequence of token ids per document.
        separator_id: the id of the end-of-document token.
        dtype: the integer type to store; ``uint16`` holds vocabularies up to 65,536
            tokens in half the memory of ``int32``.

    Returns:
        A 1-D array of ``sum(len(doc) + 1)`` ids.

    Raises:
        ValueError: an id (or the separator) does not fit in ``dtype``.
    """
    info = np.iinfo(dtype)
    if not info.min <= separator_id <= info.max:
        raise ValueError(f"separator_id {separator_id} does not fit in {np.dtype(dtype).name}.")
    total = sum(len(ids) + 1 for ids in token_id_lists)
    stream = np.empty(total, dtype=dtype)
    position = 0
    for ids in token_id_lists:
        array = np.asarray(ids, dtype=np.int64)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise ValueError(
                f"token id {int(array.max())} does not fit in {np.dtype(dtype).name} "
                f"(max {info.max}); pass dtype=np.uint32 for a vocabulary that large."
            )
        stream[position : position + len(array)] = array
        stream[position + len(array)] = separator_id
        position += len(array) + 1
    return stream


def write_shards(tokens: np.ndarray, directory: str | Path, tokens_per_shard: int) -> list[Path]:
    """Write ``tokens`` as ``shard_00000.npy``, ``shard_00001.npy``, ... in ``directory``.

    Every shard holds ``tokens_per_shard`` tokens except the last, which holds the rest.
    The files are NumPy ``.npy`` arrays (a small header that records dtype and length,
    then the raw ids), readable with ``numpy.load(path, mmap_mode="r")`` or, skipping the
    header, with ``numpy.memmap``. Existing shards in ``directory`` are not deleted.

    Returns:
        The paths written, in order.
    """
    if tokens_per_shard < 1:
        raise ValueError(f"tokens_per_shard must be positive, got {tokens_per_shard}.")
    tokens = np.asarray(tokens)
    if tokens.ndim != 1:
        raise ValueError(f"tokens must be a 1-D stream of ids, got shape {tokens.shape}.")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, start in enumerate(range(0, len(tokens), tokens_per_shard)):
        path = directory / f"shard_{number:05d}.npy"
        np.save(path, tokens[start : start + tokens_per_shard])
        paths.append(path)
    return paths


def read_shards(paths: Sequence[str | Path]) -> np.ndarray:
    """Open shards written by :func:`write_shards` as memory maps and join them.

    With one shard the result *is* the memory map (nothing is read until it is indexed);
    with several, ``numpy.concatenate`` copies them into one array in memory. A trainer on
    a corpus larger than RAM samples windows shard by shard instead (see the chapter).
    """
    if not paths:
        raise ValueError("read_shards needs at least one shard path.")
    maps = [np.load(Path(path), mmap_mode="r") for path in paths]
    dtypes = {array.dtype for array in maps}
    if len(dtypes) != 1:
        raise ValueError(f"shards have different dtypes {sorted(map(str, dtypes))}.")
    return maps[0] if len(maps) == 1 else np.concatenate(maps)


@dataclass(frozen=True)
class MixturePart:
    """One source's share of a training mixture."""

    source: str
    weight: float  # the share of the training tokens, after normalising the weights
    available_tokens: int
    tokens: int  # how many training tokens it supplies
    epochs: float  # tokens / available_tokens: above 1 means repeated data


def mixture_plan(
    available_tokens: Mapping[str, int], weights: Mapping[str, float], total_tokens: int
) -> list[MixturePart]:
    """How many tokens each source supplies to a run of ``total_tokens``, given weights.

    Weights are normalised to sum to 1; source ``s`` supplies ``round(w_s * total)``
    tokens, which is ``tokens / available`` epochs of it. Small, high-quality sources
    given a large weight are repeated (epochs > 1), as GPT-3 repeated Wikipedia.
    """
    missing = set(weights) - set(available_tokens)
    if missing:
        raise ValueError(f"weights name sources with no tokens: {sorted(missing)}.")
    if any(weight < 0 for weight in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError("weights must be non-negative and not all zero.")
    total_weight = sum(weights.values())
    parts = []
    for source, weight in weights.items():
        share = weight / total_weight
        tokens = round(share * total_tokens)
        available = available_tokens[source]
        epochs = tokens / available if available else float("inf")
        parts.append(MixturePart(source, share, available, tokens, epochs))
    return parts
