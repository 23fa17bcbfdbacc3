"""The book's pipeline stages as steps of Hugging Face's ``datatrove`` (Part IV).

Built in the chapter *Data at scale*. ``datatrove`` runs a list of *pipeline steps* over
a stream of documents, split into *tasks* that run on local processes
(``LocalPipelineExecutor``) or on a cluster (``SlurmPipelineExecutor``). Any stage that
looks at one document at a time becomes a step by subclassing ``BaseFilter`` (return
``True`` to keep a document) or ``PipelineStep`` (a generator over documents)::

    from llmzero.data import trove

    executor = trove.LocalExecutor(
        pipeline=[trove.ReadJsonl("crawl/"), trove.HtmlToTextStep(), ..., trove.WriteJsonl("out/")],
        tasks=2, workers=2, logging_dir="logs/",
    )
    executor.run()

Deduplication does *not* look at one document at a time, so, as in datatrove's own MinHash
deduplication, it takes three runs: every task writes its documents' signatures
(:class:`SignatureStep`), one task clusters all signatures (:class:`DedupClusterStep`),
then every task drops the duplicates (:class:`DropDuplicatesStep`).

The steps call the same functions as :func:`llmzero.data.pipeline.run_pipeline`, so both
keep the same documents; the chapter checks it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import multiprocess
import numpy as np
from datatrove.data import Document, DocumentsPipeline
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.formatters.base import BaseFormatter
from loguru import logger

from llmzero.data import dedup, pii, quality
from llmzero.data.extract import html_to_text
from llmzero.data.langid import CharNgramLanguageID
from llmzero.data.pipeline import gopher_quality_for

__all__ = [
    "C4LinesStep",
    "DedupClusterStep",
    "DropDuplicatesStep",
    "GopherQualityStep",
    "GopherRepetitionStep",
    "HtmlToTextStep",
    "LanguageStep",
    "LocalExecutor",
    "PiiStep",
    "ReadJsonl",
    "SignatureStep",
    "WriteJsonl",
    "read_jsonl",
    "write_pages",
]


def write_pages(pages: Sequence, folder: str | Path, n_files: int = 2) -> list[Path]:
    """Write crawl pages (objects with ``id``, ``url``, ``html``) as JSON Lines, page ``i``
    to file ``i % n_files``, recording its position in the crawl in its metadata."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"pages_{number:05d}.jsonl" for number in range(n_files)]
    handles = [path.open("w", encoding="utf-8") for path in paths]
    with contextlib.ExitStack() as stack:
        for handle in handles:
            stack.enter_context(handle)
        for position, page in enumerate(pages):
            row = {
                "id": page.id,
                "text": page.html,
                "metadata": {"url": page.url, "position": position},
            }
            handles[position % n_files].write(json.dumps(row, ensure_ascii=False) + "\n")
    return paths


def read_jsonl(folder: str | Path) -> list[dict]:
    """Every row of every ``*.jsonl`` file in ``folder``, sorted by ``metadata.position``."""
    rows = [
        json.loads(line)
        for path in sorted(Path(folder).glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]
    return sorted(rows, key=lambda row: row["metadata"]["position"])


class ReadJsonl(PipelineStep):
    """Read documents from the ``*.jsonl`` files of a folder; task ``r`` of ``n`` reads files
    ``r, r + n, ...`` (datatrove's ``JsonlReader`` does the same, but needs ``orjson``)."""

    name = "📖 read jsonl"
    type = "📖 - READER"

    def __init__(self, folder: str | Path) -> None:
        super().__init__()
        self.folder = str(folder)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for path in sorted(Path(self.folder).glob("*.jsonl"))[rank::world_size]:
            with path.open(encoding="utf-8") as handle:
                for line in handle:
                    row = json.loads(line)
                    self.stat_update("documents")
                    yield Document(text=row["text"], id=row["id"], metadata=row["metadata"])


class WriteJsonl(PipelineStep):
    """Write each task's documents to ``folder/rank_XXXXX.jsonl`` and pass them on."""

    name = "💾 write jsonl"
    type = "💽 - WRITER"

    def __init__(self, folder: str | Path) -> None:
        super().__init__()
        self.folder = str(folder)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        Path(self.folder).mkdir(parents=True, exist_ok=True)
        with (Path(self.folder) / f"rank_{rank:05d}.jsonl").open("w", encoding="utf-8") as out:
            for document in data:
                row = {"id": document.id, "text": document.text, "metadata": document.metadata}
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                self.stat_update("documents")
                yield document


def _verdict(reason: str | None) -> bool | tuple[bool, str]:
    """A llmzero reason (``None`` keeps) as a datatrove filter result."""
    return True if reason is None else (False, reason)


class HtmlToTextStep(BaseFilter):
    """Extract the page's text (:func:`~llmzero.data.extract.html_to_text`); drop empty pages."""

    name = "🧹 html_to_text"

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        doc.text = html_to_text(doc.text)
        return _verdict(None if doc.text else "empty")


class LanguageStep(BaseFilter):
    """Identify the language (stored in ``metadata["language"]``); keep ``languages``."""

    name = "🌐 language"

    def __init__(self, model: CharNgramLanguageID, languages: Sequence[str] = ("en",)) -> None:
        super().__init__()
        self.model = model
        self.languages = tuple(languages)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        language = self.model.predict([doc.text])[0]
        doc.metadata["language"] = language
        return _verdict(None if language in self.languages else language)


class C4LinesStep(BaseFilter):
    """:func:`~llmzero.data.quality.c4_line_filter`: drop boilerplate lines, reject pages."""

    name = "⛰ c4 lines"

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        doc.text, reason = quality.c4_line_filter(doc.text)
        return _verdict(reason)


class GopherRepetitionStep(BaseFilter):
    """:func:`~llmzero.data.quality.gopher_repetition`."""

    name = "👯 gopher repetition"

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return _verdict(quality.gopher_repetition(doc.text))


class GopherQualityStep(BaseFilter):
    """:func:`~llmzero.data.pipeline.gopher_quality_for` the page's language."""

    name = "🥇 gopher quality"

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        words = quality.split_words(doc.text)
        return _verdict(gopher_quality_for(doc.text, words, doc.metadata["language"]))


class SignatureStep(PipelineStep):
    """Write each document's exact hash and MinHash signature to ``folder`` (one file per
    task), with its crawl position, and pass the document on unchanged."""

    name = "✍️ signatures"
    type = "🫂 - DEDUP"

    def __init__(self, folder: str | Path, num_perm: int = 128, seed: int = 1) -> None:
        super().__init__()
        self.folder, self.num_perm, self.seed = str(folder), num_perm, seed

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        permutations = dedup.minhash_permutations(self.num_perm, self.seed)
        cache: dict[str, int] = {}
        Path(self.folder).mkdir(parents=True, exist_ok=True)
        with (Path(self.folder) / f"rank_{rank:05d}.jsonl").open("w") as out:
            for document in data:
                signature = dedup.minhash(
                    dedup.fast_shingle_hashes(document.text, 5, cache), permutations
                )
                row = {
                    "id": document.id,
                    "position": document.metadata["position"],
                    "exact": dedup.exact_hash(document.text),
                    "minhash": signature.tolist(),
                }
                out.write(json.dumps(row) + "\n")
                yield document


class DedupClusterStep(PipelineStep):
    """Read every task's signatures, find exact copies and then near duplicates among the
    rest (keeping the earliest page of each group in crawl order, as ``run_pipeline``
    does), and write ``{removed id: kept id}`` to ``output_file``. Run it as one task."""

    name = "🔗 dedup clusters"
    type = "🫂 - DEDUP"

    def __init__(
        self,
        signature_folder: str | Path,
        output_file: str | Path,
        threshold: float = 0.8,
        bands: int = 16,
        rows: int = 8,
    ) -> None:
        super().__init__()
        self.signature_folder, self.output_file = str(signature_folder), str(output_file)
        self.threshold, self.bands, self.rows = threshold, bands, rows

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if world_size != 1:
            raise ValueError("DedupClusterStep needs all signatures in one task: use tasks=1.")
        rows = [
            json.loads(line)
            for path in sorted(Path(self.signature_folder).glob("*.jsonl"))
            for line in path.read_text().splitlines()
        ]
        rows.sort(key=lambda row: row["position"])
        first_with_hash: dict[str, str] = {}
        removed, alive = {}, []
        for row in rows:
            if row["exact"] in first_with_hash:
                removed[row["id"]] = first_with_hash[row["exact"]]
            else:
                first_with_hash[row["exact"]] = row["id"]
                alive.append(row)
        signatures = np.array([row["minhash"] for row in alive], dtype=np.uint32)
        copies = dedup.cluster_signatures(
            signatures, threshold=self.threshold, bands=self.bands, rows=self.rows
        )
        removed |= {alive[copy]["id"]: alive[original]["id"] for copy, original in copies.items()}
        self.stat_update("exact_copies", value=len(rows) - len(alive))
        self.stat_update("near_copies", value=len(copies))
        Path(self.output_file).write_text(json.dumps(removed, sort_keys=True))
        yield from ()


class DropDuplicatesStep(BaseFilter):
    """Drop the documents listed in a :class:`DedupClusterStep` output file."""

    name = "🗑 drop duplicates"

    def __init__(self, removed_file: str | Path) -> None:
        super().__init__()
        self.removed_file = str(removed_file)
        self._removed: dict[str, str] | None = None

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        if self._removed is None:
            self._removed = json.loads(Path(self.removed_file).read_text())
        return _verdict("duplicate" if doc.id in self._removed else None)


class PiiStep(BaseFormatter):
    """Replace e-mail addresses, phone numbers and IPs (:func:`~llmzero.data.pii.scrub`)."""

    name = "📞 pii"

    def format(self, text: str) -> str:
        return pii.scrub(text).text


class LocalExecutor(LocalPipelineExecutor):
    """datatrove's ``LocalPipelineExecutor``, with its log messages kept out of the console.

    datatrove logs with ``loguru``: every task logs to its own file in
    ``logging_dir/logs/`` *and* to the process's stderr, and the main process logs a
    summary to stderr. In a notebook that stderr becomes red text between the outputs.
    Here, during :meth:`run`, messages from ``datatrove`` modules in the main process are
    switched off (``logger.disable("datatrove")``, undone afterwards), and each worker
    process sends its stderr to ``logging_dir/logs/worker_<pid>.log`` instead. The per-task
    log files and ``stats.json`` are written as usual. Nothing else changes.
    """

    def run(self):  # type: ignore[no-untyped-def]
        """Run every task (see ``LocalPipelineExecutor.run``) with datatrove's console
        messages switched off in this process; returns the merged ``PipelineStats``."""
        logger.disable("datatrove")
        try:
            return super().run()
        finally:
            logger.enable("datatrove")

    def _launch_run_for_rank(self, rank, ranks_q, completed=None, completed_lock=None):  # type: ignore[no-untyped-def]
        if multiprocess.parent_process() is not None:  # in a worker process of the pool
            folder = Path(self.logging_dir.path) / "logs"
            folder.mkdir(parents=True, exist_ok=True)
            sys.stderr = (folder / f"worker_{os.getpid()}.log").open("a", buffering=1)
        return super()._launch_run_for_rank(rank, ranks_q, completed, completed_lock)
