"""Tests for llmzero.data.trove: the pipeline's stages as datatrove steps, run with 2 workers."""

from __future__ import annotations

import pytest

pytest.importorskip("datatrove")

from llmzero.data import langid, trove
from llmzero.data.crawl import make_crawl
from llmzero.data.pipeline import run_pipeline


def test_datatrove_with_two_workers_keeps_the_same_documents_as_run_pipeline(
    tmp_path, capfd
) -> None:
    pages = make_crawl(0)[:240]
    model = langid.default_model()
    trove.write_pages(pages, tmp_path / "crawl", n_files=2)
    trove.LocalExecutor(
        pipeline=[
            trove.ReadJsonl(tmp_path / "crawl"),
            trove.HtmlToTextStep(),
            trove.LanguageStep(model, ("en",)),
            trove.C4LinesStep(),
            trove.GopherRepetitionStep(),
            trove.GopherQualityStep(),
            trove.SignatureStep(tmp_path / "signatures"),
            trove.WriteJsonl(tmp_path / "filtered"),
        ],
        tasks=2,
        workers=2,
        logging_dir=str(tmp_path / "logs" / "filter"),
    ).run()
    trove.LocalExecutor(
        pipeline=[trove.DedupClusterStep(tmp_path / "signatures", tmp_path / "removed.json")],
        tasks=1,
        logging_dir=str(tmp_path / "logs" / "cluster"),
    ).run()
    trove.LocalExecutor(
        pipeline=[
            trove.ReadJsonl(tmp_path / "filtered"),
            trove.DropDuplicatesStep(tmp_path / "removed.json"),
            trove.PiiStep(),
            trove.WriteJsonl(tmp_path / "final"),
        ],
        tasks=2,
        workers=2,
        logging_dir=str(tmp_path / "logs" / "final"),
    ).run()
    rows = trove.read_jsonl(tmp_path / "final")
    ours = run_pipeline(pages, model=model)
    assert [row["id"] for row in rows] == ours.ids
    assert [row["text"] for row in rows] == ours.texts
    # The workers' log messages went to files, not to the console.
    captured = capfd.readouterr()
    assert "datatrove" not in captured.err and "datatrove" not in captured.out
    assert (tmp_path / "logs" / "filter" / "stats.json").is_file()


def test_cluster_step_refuses_to_run_split_across_tasks(tmp_path) -> None:
    step = trove.DedupClusterStep(tmp_path, tmp_path / "removed.json")
    with pytest.raises(ValueError, match="tasks=1"):
        list(step.run(None, rank=0, world_size=2))
