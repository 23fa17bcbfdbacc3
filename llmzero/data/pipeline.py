"""The whole pretraining-data pipeline, stage by stage, and the cleaned corpus (Part IV).

Built in the chapter *Data at scale*; the chapters that pretrain models on the result
(*Pretraining a small GPT*, *Masked language modelling*) load it with one call::

    from llmzero.data.pipeline import pretraining_corpus

    texts = pretraining_corpus()          # list[str]: the cleaned English pages

The stages run in the order real pipelines (CCNet, RefinedWeb, FineWeb) use, cheapest and
most selective first:

1. ``extract``: HTML to text, Unicode NFC (:func:`llmzero.data.extract.html_to_text`);
2. ``language``: keep pages whose language is in ``languages`` (:mod:`~llmzero.data.langid`);
3. ``c4_lines``: drop boilerplate lines, reject placeholder and code pages
   (:func:`~llmzero.data.quality.c4_line_filter`);
4. ``gopher_repetition``: reject repetitive pages (:mod:`~llmzero.data.quality`);
5. ``gopher_quality``: reject short, symbol-heavy or stop-word-free pages;
6. ``exact_dedup``: drop exact copies (:mod:`~llmzero.data.dedup`);
7. ``near_dedup``: drop near copies (MinHash + LSH), keeping the first page of each group
   in crawl order;
8. ``pii``: replace e-mail addresses, phone numbers and IPs (:mod:`~llmzero.data.pii`).

The pipeline reads only each page's ``id``, ``url`` and ``html``: never its ground truth.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

from llmzero.data import dedup, langid, pii, quality
from llmzero.data.extract import html_to_text

__all__ = [
    "NO_WORD_SPACES",
    "STAGES",
    "KeptDocument",
    "Page",
    "PipelineResult",
    "gopher_quality_for",
    "pretraining_corpus",
    "run_pipeline",
]

STAGES = (
    "extract",
    "language",
    "c4_lines",
    "gopher_repetition",
    "gopher_quality",
    "exact_dedup",
    "near_dedup",
    "pii",
)
"""The stages of :func:`run_pipeline`, in the order they run."""

NO_WORD_SPACES = frozenset({"zh", "ja"})
"""Languages written without spaces between words, to which Gopher's word rules do not apply."""


class Page(Protocol):
    """Anything with an ``id``, a ``url`` and ``html``, such as a ``CrawlDocument``."""

    id: str
    url: str
    html: str


@dataclass(frozen=True)
class KeptDocument:
    """A page that survived every stage: its id and URL, clean text and language."""

    id: str
    url: str
    text: str
    language: str


@dataclass
class PipelineResult:
    """What :func:`run_pipeline` returns.

    Attributes:
        documents: the kept pages, in crawl order.
        counts: pages remaining after each stage, ``{"crawl": n, "extract": ..., ...}``.
        removed: ``{page id: reason}`` for every page dropped, e.g. ``"language:fr"``,
            ``"gopher_quality:gopher_short_doc"``, ``"near_dedup:doc-00042"``.
        pii: ``{page id: matches}`` for every kept page in which identifiers were replaced.
        seconds: wall-clock seconds spent in each stage (not compared by ``==``).
    """

    documents: list[KeptDocument]
    counts: dict[str, int]
    removed: dict[str, str]
    pii: dict[str, tuple[pii.PiiMatch, ...]]
    seconds: dict[str, float] = field(default_factory=dict, compare=False)

    @property
    def texts(self) -> list[str]:
        """The kept documents' texts."""
        return [document.text for document in self.documents]

    @property
    def ids(self) -> list[str]:
        """The kept documents' ids."""
        return [document.id for document in self.documents]


def run_pipeline(
    documents: Iterable[Page],
    *,
    languages: Sequence[str] | None = ("en",),
    model: langid.CharNgramLanguageID | None = None,
    threshold: float = 0.8,
    num_perm: int = 128,
    bands: int = 16,
    rows: int = 8,
    scrub_pii: bool = True,
) -> PipelineResult:
    """Run every stage of ``STAGES`` over ``documents`` and report what each one did.

    Args:
        documents: the crawl (objects with ``id``, ``url`` and ``html``).
        languages: ISO 639-1 codes to keep; ``None`` keeps every language.
        model: the language identifier (default: :func:`llmzero.data.langid.default_model`).
        threshold: estimated Jaccard similarity at or above which two pages are near
            duplicates.
        num_perm, bands, rows: MinHash signature length and LSH banding
            (``bands * rows <= num_perm``).
        scrub_pii: replace e-mail addresses, phone numbers and IP addresses.

    Returns:
        A :class:`PipelineResult`.
    """
    documents = list(documents)
    ids = [document.id for document in documents]
    if len(set(ids)) != len(ids):
        raise ValueError("every page needs a unique id; found repeated ids in the input.")
    model = langid.default_model() if model is None else model
    if languages is not None:
        unknown = sorted(set(languages) - set(model.languages))
        if unknown:
            raise ValueError(
                f"the language model does not know {unknown}; it knows {model.languages}."
            )
    counts = {"crawl": len(documents)}
    removed: dict[str, str] = {}
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def finish(stage: str, survivors: list[int]) -> list[int]:
        nonlocal clock
        counts[stage] = len(survivors)
        now = time.perf_counter()
        seconds[stage] = now - clock
        clock = now
        return survivors

    texts = [html_to_text(document.html) for document in documents]
    alive = [i for i in range(len(documents)) if texts[i]]
    removed |= {ids[i]: "extract:empty" for i in set(range(len(documents))) - set(alive)}
    alive = finish("extract", alive)

    predicted = dict(zip(alive, model.predict([texts[i] for i in alive]), strict=True))
    if languages is not None:
        removed |= {
            ids[i]: f"language:{predicted[i]}" for i in alive if predicted[i] not in languages
        }
        alive = [i for i in alive if predicted[i] in languages]
    alive = finish("language", alive)

    survivors = []
    for i in alive:
        texts[i], reason = quality.c4_line_filter(texts[i])
        if reason:
            removed[ids[i]] = f"c4_lines:{reason}"
        else:
            survivors.append(i)
    alive = finish("c4_lines", survivors)

    words = {i: quality.split_words(texts[i]) for i in alive}
    for stage, check in (
        ("gopher_repetition", lambda i: quality.gopher_repetition(texts[i], words[i])),
        ("gopher_quality", lambda i: gopher_quality_for(texts[i], words[i], predicted[i])),
    ):
        survivors = []
        for i in alive:
            reason = check(i)
            if reason:
                removed[ids[i]] = f"{stage}:{reason}"
            else:
                survivors.append(i)
        alive = finish(stage, survivors)

    copies = dedup.exact_duplicates([texts[i] for i in alive])
    removed |= {ids[alive[c]]: f"exact_dedup:{ids[alive[o]]}" for c, o in copies.items()}
    alive = finish("exact_dedup", [i for n, i in enumerate(alive) if n not in copies])

    copies = dedup.near_duplicates(
        [texts[i] for i in alive], threshold=threshold, num_perm=num_perm, bands=bands, rows=rows
    )
    removed |= {ids[alive[c]]: f"near_dedup:{ids[alive[o]]}" for c, o in copies.items()}
    alive = finish("near_dedup", [i for n, i in enumerate(alive) if n not in copies])

    found = {}
    if scrub_pii:
        for i in alive:
            result = pii.scrub(texts[i])
            if result.matches:
                texts[i] = result.text
                found[ids[i]] = result.matches
    alive = finish("pii", alive)

    kept = [KeptDocument(ids[i], documents[i].url, texts[i], predicted[i]) for i in alive]
    return PipelineResult(kept, counts, removed, found, seconds)


def gopher_quality_for(text: str, words: Sequence[str], language: str) -> str | None:
    """:func:`~llmzero.data.quality.gopher_quality` as the pipeline applies it to a page in
    ``language``: English stop words for English, no stop-word rule for other languages,
    and no word rules at all for languages written without spaces (``NO_WORD_SPACES``)."""
    if language in NO_WORD_SPACES:
        return None  # word counts and lengths mean nothing without word segmentation
    stop_words = quality.GOPHER_STOP_WORDS if language == "en" else None
    return quality.gopher_quality(text, words, stop_words=stop_words)


@lru_cache(maxsize=8)
def _corpus(seed: int, languages: tuple[str, ...]) -> tuple[str, ...]:
    from llmzero.data.crawl import make_crawl

    return tuple(run_pipeline(make_crawl(seed), languages=languages).texts)


def pretraining_corpus(seed: int = 0, languages: Sequence[str] = ("en",)) -> list[str]:
    """The cleaned documents of the chapter's crawl: what every stage of
    :func:`run_pipeline` keeps from ``make_crawl(seed)``, in crawl order.

    Deterministic for a given seed and cached in memory, so later calls are instant.

    Args:
        seed: the crawl's seed (:func:`llmzero.data.crawl.make_crawl`).
        languages: ISO 639-1 codes to keep (``langid.UDHR_FILES`` lists the known ones).
    """
    if isinstance(languages, str):
        raise TypeError(f"languages must be a sequence of codes, e.g. ({languages!r},), not a str.")
    return list(_corpus(seed, tuple(languages)))
