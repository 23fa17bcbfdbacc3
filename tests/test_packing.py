"""Tests for llmzero.data.packing: packing documents with a separator, shards, mixtures."""

from __future__ import annotations

import numpy as np
import pytest

from llmzero.data.packing import mixture_plan, pack_documents, read_shards, write_shards


def test_pack_puts_a_separator_after_every_document() -> None:
    stream = pack_documents([[5, 6], [], [7]], separator_id=0)
    assert stream.tolist() == [5, 6, 0, 0, 7, 0]
    assert stream.dtype == np.uint16


def test_pack_refuses_ids_that_do_not_fit_the_dtype() -> None:
    with pytest.raises(ValueError, match="uint32"):
        pack_documents([[1, 70_000]], separator_id=0)
    assert pack_documents([[1, 70_000]], separator_id=0, dtype=np.uint32)[1] == 70_000
    with pytest.raises(ValueError, match="separator"):
        pack_documents([[1]], separator_id=-1)


def test_shards_round_trip_through_memory_maps(tmp_path) -> None:
    rng = np.random.default_rng(0)
    documents = [rng.integers(1, 50_000, size=rng.integers(1, 300)).tolist() for _ in range(40)]
    stream = pack_documents(documents, separator_id=50_256)
    paths = write_shards(stream, tmp_path, tokens_per_shard=1000)
    assert len(paths) == -(-len(stream) // 1000)
    assert all(len(np.load(path, mmap_mode="r")) == 1000 for path in paths[:-1])
    single = read_shards(paths[:1])
    assert isinstance(single, np.memmap)
    back = read_shards(paths)
    np.testing.assert_array_equal(back, stream)
    # Splitting the stream at the separators gives back the documents.
    cuts = np.flatnonzero(back == 50_256)
    pieces = np.split(np.asarray(back), cuts + 1)[:-1]
    assert [piece[:-1].tolist() for piece in pieces] == documents


def test_write_shards_rejects_bad_arguments(tmp_path) -> None:
    with pytest.raises(ValueError, match="positive"):
        write_shards(np.arange(5), tmp_path, 0)
    with pytest.raises(ValueError, match="1-D"):
        write_shards(np.zeros((2, 2)), tmp_path, 2)
    with pytest.raises(ValueError, match="at least one"):
        read_shards([])


def test_mixture_plan_normalises_weights_and_counts_epochs() -> None:
    plan = {
        p.source: p for p in mixture_plan({"web": 1000, "books": 100}, {"web": 3, "books": 1}, 800)
    }
    assert plan["web"].tokens == 600 and plan["books"].tokens == 200
    assert plan["web"].weight == pytest.approx(0.75)
    assert plan["books"].epochs == pytest.approx(2.0)
    with pytest.raises(ValueError, match="no tokens"):
        mixture_plan({"web": 10}, {"wiki": 1.0}, 5)
