"""Search this book: chunking, BM25, a dense faiss index, hybrid fusion, scores and RAG.

Built step by step in the chapter *Semantic search and retrieval-augmented generation over
this book*; the agents chapter uses :class:`BookSearch` as a tool::

    from llmzero.applications.retrieval import BookSearch

    search = BookSearch.from_book(method="bm25")  # instant; "dense" and "hybrid" embed
    for hit in search.search("What does a KV cache store?", k=3):
        print(f"{hit.score:.2f}  {hit.chunk.citation}")

The pieces:

- :func:`chunk_sections` cuts the book's sections (:func:`llmzero.data.booktext.load_sections`)
  into overlapping windows of words; every chunk stays inside one section, so it has one
  citation such as ``"ch-gpt § Weight tying"``.
- :class:`BM25` is Okapi BM25 with the same formulas as ``rank_bm25.BM25Okapi`` (equal
  scores on the same tokens; ``tests/test_retrieval.py`` checks it).
- :class:`DenseIndex` embeds texts with all-MiniLM-L6-v2 (unit vectors) into a
  ``faiss.IndexFlatIP``: exact inner-product search, which equals cosine similarity here.
- :func:`reciprocal_rank_fusion` merges rankings; :func:`recall_at_k` and
  :func:`mean_reciprocal_rank` score them against a gold set.
- :func:`ask_book` answers a question with SmolLM2-135M-Instruct from retrieved chunks and
  cites them as ``[1]``, ``[2]`` ...

Embedding is the expensive step on a CPU (MiniLM reads a few hundred to a few thousand
tokens per second on one thread), so :class:`DenseIndex` reads only the first
``max_tokens`` tokens of each chunk, and :meth:`BookSearch.from_book` keeps the vectors in
memory: building a second search over the same chunks does not embed them again.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "BM25",
    "METHODS",
    "Answer",
    "BookSearch",
    "Chunk",
    "DenseIndex",
    "Hit",
    "ask_book",
    "attribute",
    "build_prompt",
    "chunk_sections",
    "cited_sources",
    "content_words",
    "first_relevant_rank",
    "generate_replies",
    "mean_reciprocal_rank",
    "recall_at_k",
    "reciprocal_rank_fusion",
    "support_score",
    "tokenize",
]

METHODS = ("bm25", "dense", "hybrid")
"""The retrievers :class:`BookSearch` offers."""

_TOKEN = re.compile(r"[a-z0-9]+")

# Function words left out when comparing an answer with its sources (not in BM25).
_FUNCTION_WORDS = """
    a an and are as at be been but by can do does for from has have how i if in into is it its
    of on or so such than that the their them then there these they this to was we were what
    when where which while who why will with you your our not no also more most one two each
    other only any all same very just about over
"""
_STOPWORDS = frozenset(_FUNCTION_WORDS.split())


@dataclass(frozen=True)
class Chunk:
    """A window of words from one section of the book."""

    chunk_id: int  # its position in the list of chunks
    text: str  # "Chapter title > Heading: " followed by the words of the window
    citation: str  # the section it comes from, e.g. "ch-gpt § Weight tying"


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk and the retriever's score for it (higher is better)."""

    chunk: Chunk
    score: float


def tokenize(text: str) -> list[str]:
    """Lower-case runs of letters and digits: the tokens BM25 counts.

    >>> tokenize("BM25's k1 (1.5), e.g.")
    ['bm25', 's', 'k1', '1', '5', 'e', 'g']
    """
    return _TOKEN.findall(text.lower())


def chunk_sections(sections: Iterable[Any], max_words: int = 200, overlap: int = 50) -> list[Chunk]:
    """Cut sections into windows of at most ``max_words`` words that overlap by ``overlap``.

    Args:
        sections: objects with ``chapter_title``, ``heading``, ``text`` and ``citation``
            (the :class:`llmzero.data.booktext.Section` objects of
            :func:`~llmzero.data.booktext.load_sections`).
        max_words: the length of a window in words (whitespace-separated).
        overlap: how many words a window shares with the one before it, so that a sentence
            cut at a boundary is whole in one of the two.

    Returns:
        Chunks in book order, ``chunk_id`` counting from 0. A window never crosses a section
        boundary; a section shorter than ``max_words`` is one chunk. Each chunk's text starts
        with ``"Chapter title > Heading: "``, so that a window from the middle of a section
        still says what it is about.

    Raises:
        ValueError: ``max_words`` is not positive or ``overlap`` is not in ``[0, max_words)``.
    """
    if max_words < 1:
        raise ValueError(f"max_words must be at least 1, got {max_words}.")
    if not 0 <= overlap < max_words:
        raise ValueError(
            f"overlap must be at least 0 and below max_words={max_words}, got {overlap}; "
            "a window must move forward by at least one word."
        )
    step = max_words - overlap
    chunks: list[Chunk] = []
    for section in sections:
        words = section.text.split()
        header = section.chapter_title + (f" > {section.heading}" if section.heading else "")
        starts = range(0, max(len(words) - overlap, 1), step)
        for start in starts:
            window = " ".join(words[start : start + max_words])
            chunks.append(Chunk(len(chunks), f"{header}: {window}", section.citation))
    return chunks


class BM25:
    """Okapi BM25 over tokenised documents, with ``rank_bm25.BM25Okapi``'s formulas.

    The score of document ``d`` for query tokens ``q_1 .. q_n`` (a repeated token counts
    again) is the sum over ``i`` of
    ``idf(q_i) * f(q_i, d) * (k1 + 1) / (f(q_i, d) + k1 * (1 - b + b * len(d) / avgdl))``,
    where ``f(t, d)`` counts ``t`` in ``d`` and ``avgdl`` is the mean document length.
    ``idf(t) = ln(N - n_t + 0.5) - ln(n_t + 0.5)`` for a term in ``n_t`` of the ``N``
    documents; a negative idf (a term in more than half of the documents) is replaced by
    ``epsilon`` times the mean idf, as ``rank_bm25`` does.

    Args:
        documents: the texts to index (tokenised with ``tokenizer``).
        k1: how fast the score saturates with a term's count in a document.
        b: how much a document's length discounts its counts (0: not at all, 1: fully).
        epsilon: the floor for negative idf values, as a fraction of the mean idf.
        tokenizer: text to tokens; :func:`tokenize` by default.
    """

    def __init__(
        self,
        documents: Sequence[str],
        k1: float = 1.5,
        b: float = 0.75,
        epsilon: float = 0.25,
        tokenizer: Any = tokenize,
    ) -> None:
        if isinstance(documents, str) or len(documents) == 0:
            raise ValueError("BM25 needs a non-empty list of document texts (not a single str).")
        self.k1, self.b, self.epsilon, self.tokenizer = k1, b, epsilon, tokenizer
        tokenised = [tokenizer(text) for text in documents]
        self.doc_len = np.array([len(tokens) for tokens in tokenised], dtype=float)  # (N,)
        self.avgdl = float(self.doc_len.sum() / len(tokenised))
        postings: dict[str, tuple[list[int], list[int]]] = {}  # term -> (doc ids, counts)
        for doc_id, tokens in enumerate(tokenised):
            for term, count in Counter(tokens).items():
                ids, counts = postings.setdefault(term, ([], []))
                ids.append(doc_id)
                counts.append(count)
        self.postings = {
            term: (np.array(ids), np.array(counts, dtype=float))
            for term, (ids, counts) in postings.items()
        }
        n_docs = len(tokenised)
        idf = {
            term: math.log(n_docs - len(ids) + 0.5) - math.log(len(ids) + 0.5)
            for term, (ids, _) in self.postings.items()
        }
        floor = epsilon * sum(idf.values()) / len(idf)
        self.idf = {term: (value if value >= 0 else floor) for term, value in idf.items()}

    def __len__(self) -> int:
        return len(self.doc_len)

    def scores(self, query: str) -> np.ndarray:
        """The BM25 score of every document for ``query`` (a text), shape ``(N,)``."""
        scores = np.zeros(len(self))
        for term in self.tokenizer(query):
            if term not in self.postings:
                continue  # an unknown term adds nothing
            ids, counts = self.postings[term]
            norm = self.k1 * (1 - self.b + self.b * self.doc_len[ids] / self.avgdl)
            scores[ids] += self.idf[term] * (counts * (self.k1 + 1) / (counts + norm))
        return scores


@functools.lru_cache(maxsize=4)
def _sentence_encoder(max_tokens: int) -> Any:
    from llmzero.models.embeddings import SentenceEncoder

    return SentenceEncoder(max_length=max_tokens)


class DenseIndex:
    """Sentence vectors in a ``faiss.IndexFlatIP``: exact search by cosine similarity.

    Args:
        vectors: one unit-length row per document, shape ``(N, dim)``; build from texts
            with :meth:`from_texts`.
        encoder: what embeds queries: an object with ``encode(texts) -> (n, dim)`` such as
            :class:`llmzero.models.embeddings.SentenceEncoder`; by default MiniLM.
    """

    def __init__(self, vectors: np.ndarray, encoder: Any = None) -> None:
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) == 0:
            raise ValueError(f"vectors must be a non-empty (N, dim) array, got {vectors.shape}.")
        norms = np.linalg.norm(vectors, axis=1)
        if not np.allclose(norms, 1.0, atol=1e-3):
            raise ValueError(
                "DenseIndex expects unit-length vectors (inner product = cosine); "
                "normalise them first: vectors / np.linalg.norm(vectors, axis=1, keepdims=True)."
            )
        self.vectors = vectors  # (N, dim)
        self.encoder = encoder
        self.index = faiss.IndexFlatIP(vectors.shape[1])
        self.index.add(vectors)

    @classmethod
    def from_texts(
        cls, texts: Sequence[str], max_tokens: int = 256, batch_size: int = 64
    ) -> DenseIndex:
        """Embed ``texts`` with MiniLM, reading at most ``max_tokens`` tokens of each."""
        encoder = _sentence_encoder(max_tokens)
        vectors = encoder.encode(list(texts), batch_size=batch_size).numpy()  # (N, 384)
        return cls(vectors, encoder)

    def __len__(self) -> int:
        return self.index.ntotal

    def embed_queries(self, queries: Sequence[str]) -> np.ndarray:
        """Unit vectors for ``queries``, shape ``(len(queries), dim)``."""
        encoder = self.encoder if self.encoder is not None else _sentence_encoder(256)
        return np.asarray(encoder.encode(list(queries)), dtype=np.float32)

    def search_vectors(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """faiss's exact top-``k``: (similarities, ids), each ``(n_queries, k)``."""
        k = min(k, len(self))
        return self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)

    def scores(self, query: str) -> np.ndarray:
        """The cosine similarity of ``query`` with every document, shape ``(N,)``."""
        return self.vectors @ self.embed_queries([query])[0]


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int = 60) -> list[int]:
    """Merge rankings of document ids: each id scores the sum of ``1 / (k + rank)`` over them.

    Ranks count from 1; an id missing from a ranking gets nothing from it. Returns the ids
    by decreasing fused score (ties: smaller id first). ``k`` damps the weight of the top
    ranks; 60 is the value of Cormack, Clarke and Büttcher (2009).
    """
    if k < 0:
        raise ValueError(f"k must be non-negative, got {k}.")
    fused = _fused_scores(rankings, k)
    return sorted(fused, key=lambda doc_id: (-fused[doc_id], doc_id))


def _fused_scores(rankings: Sequence[Sequence[int]], k: int) -> dict[int, float]:
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, doc_id in enumerate(ranking, start=1):
            fused[int(doc_id)] = fused.get(int(doc_id), 0.0) + 1.0 / (k + rank)
    return fused


def first_relevant_rank(retrieved: Sequence[str], relevant: str | set[str]) -> int | None:
    """The 1-based rank of the first retrieved citation in ``relevant``, or None."""
    wanted = {relevant} if isinstance(relevant, str) else set(relevant)
    for rank, citation in enumerate(retrieved, start=1):
        if citation in wanted:
            return rank
    return None


def recall_at_k(ranks: Sequence[int | None], k: int) -> float:
    """The fraction of questions whose answer is within the top ``k`` (``rank <= k``).

    With one relevant section per question this is the *hit rate* at ``k``; ``None``
    means the answer was not retrieved at all.
    """
    if len(ranks) == 0:
        raise ValueError("recall_at_k needs at least one question's rank.")
    return sum(rank is not None and rank <= k for rank in ranks) / len(ranks)


def mean_reciprocal_rank(ranks: Sequence[int | None]) -> float:
    """The mean of ``1 / rank`` over questions (0 for an answer not retrieved)."""
    if len(ranks) == 0:
        raise ValueError("mean_reciprocal_rank needs at least one question's rank.")
    return sum(1.0 / rank if rank else 0.0 for rank in ranks) / len(ranks)


_VECTOR_CACHE: dict[tuple[str, int], np.ndarray] = {}


class BookSearch:
    """Search chunks of the book with BM25, dense vectors, or both fused (RRF).

    Args:
        chunks: what to search (see :func:`chunk_sections`).
        method: ``"bm25"``, ``"dense"`` or ``"hybrid"`` (reciprocal rank fusion of both).
        dense_max_tokens: the tokens of each chunk MiniLM reads (dense and hybrid only).
        rrf_k: the constant of :func:`reciprocal_rank_fusion`.
        depth: how many results of each retriever hybrid search fuses.
        vectors: the chunks' unit vectors, if already computed with MiniLM reading
            ``dense_max_tokens`` tokens of each chunk (they are then not embedded again).
    """

    def __init__(
        self,
        chunks: Sequence[Chunk],
        method: str = "hybrid",
        dense_max_tokens: int = 48,
        rrf_k: int = 60,
        depth: int = 100,
        vectors: np.ndarray | None = None,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
        if not chunks:
            raise ValueError("BookSearch needs at least one chunk to search.")
        self.chunks, self.method, self.rrf_k, self.depth = list(chunks), method, rrf_k, depth
        texts = [chunk.text for chunk in self.chunks]
        self.bm25 = BM25(texts) if method in ("bm25", "hybrid") else None
        self.dense = None
        if method in ("dense", "hybrid"):
            key = (hashlib.sha1("\x00".join(texts).encode()).hexdigest(), dense_max_tokens)
            if vectors is not None:
                if len(vectors) != len(texts):
                    raise ValueError(f"got {len(vectors)} vectors for {len(texts)} chunks.")
                _VECTOR_CACHE[key] = np.asarray(vectors, dtype=np.float32)
            if key not in _VECTOR_CACHE:  # embedding is slow on a CPU: do it once
                _VECTOR_CACHE[key] = DenseIndex.from_texts(texts, dense_max_tokens).vectors
            self.dense = DenseIndex(_VECTOR_CACHE[key], _sentence_encoder(dense_max_tokens))

    @classmethod
    def from_book(
        cls,
        book_dir: str | Path | None = None,
        method: str = "hybrid",
        max_words: int = 200,
        overlap: int = 50,
        **options: Any,
    ) -> BookSearch:
        """Chunk the book's chapters (see :func:`llmzero.data.booktext.load_sections`) and
        index them; ``options`` go to :class:`BookSearch` (``dense_max_tokens``, ``rrf_k``)."""
        from llmzero.data import booktext

        sections = booktext.load_sections(book_dir)
        return cls(chunk_sections(sections, max_words, overlap), method=method, **options)

    def rank(self, query: str) -> list[tuple[int, float]]:
        """(chunk id, score) pairs, best first: all chunks, or ``depth`` of them for hybrid."""
        if not isinstance(query, str) or not query.strip():
            raise ValueError("query must be a non-empty string, e.g. 'What is BM25?'.")
        if self.method == "bm25":
            scores = self.bm25.scores(query)
        elif self.method == "dense":
            scores = self.dense.scores(query)
        else:
            rankings = [
                np.argsort(-self.bm25.scores(query), kind="stable")[: self.depth],
                np.argsort(-self.dense.scores(query), kind="stable")[: self.depth],
            ]
            fused = _fused_scores(rankings, self.rrf_k)
            order = reciprocal_rank_fusion(rankings, self.rrf_k)
            return [(doc_id, fused[doc_id]) for doc_id in order]
        order = np.argsort(-scores, kind="stable")
        return [(int(doc_id), float(scores[doc_id])) for doc_id in order]

    def search(self, query: str, k: int = 5) -> list[Hit]:
        """The ``k`` best chunks for ``query``."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}.")
        return [Hit(self.chunks[doc_id], score) for doc_id, score in self.rank(query)[:k]]


def content_words(text: str) -> list[str]:
    """The tokens of ``text`` that carry content: :func:`tokenize` minus function words."""
    return [token for token in tokenize(text) if token not in _STOPWORDS and not token.isdigit()]


def support_score(answer: str, source: str) -> float:
    """The fraction of the answer's distinct content words that occur in ``source``.

    1.0 means every content word of the answer is in the source; it measures grounding
    (copying), not truth: a wrong sentence copied from the source also scores 1.0.
    Returns 0.0 for an answer without content words.
    """
    words = set(content_words(answer))
    if not words:
        return 0.0
    return len(words & set(content_words(source))) / len(words)


def cited_sources(answer: str, n_sources: int) -> list[int]:
    """The source numbers ``[1]..[n_sources]`` an answer cites, in order of first mention."""
    cited: list[int] = []
    for match in re.finditer(r"\[(\d+)\]", answer):
        number = int(match.group(1))
        if 1 <= number <= n_sources and number not in cited:
            cited.append(number)
    return cited


def build_prompt(question: str, hits: Sequence[Hit], max_words: int = 80) -> str:
    """The user message for retrieval-augmented generation: an instruction to answer from
    the sources and cite them, the numbered sources (each cut to ``max_words`` words), then
    the question."""
    sources = "\n\n".join(
        f"[{number}] " + " ".join(hit.chunk.text.split()[:max_words])
        for number, hit in enumerate(hits, start=1)
    )
    return (
        "Use the sources to answer the question in one or two sentences. "
        "Cite the source you use as [1] or [2].\n\n"
        f"{sources}\n\nQuestion: {question}"
    )


def attribute(answer: str, hits: Sequence[Hit]) -> int:
    """The number (1-based) of the source with the highest :func:`support_score` for
    ``answer``: a citation added after generation when the model wrote none (ties go to
    the better-ranked source)."""
    if not hits:
        raise ValueError("attribute needs at least one retrieved hit.")
    scores = [support_score(answer, hit.chunk.text) for hit in hits]
    return int(np.argmax(scores)) + 1


@dataclass(frozen=True)
class Answer:
    """What :func:`ask_book` returns: the reply, the chunks it was given and the sources it
    cites (``self_cited`` is False when the model wrote no valid citation and the source
    was chosen by :func:`attribute`)."""

    text: str
    hits: tuple[Hit, ...]
    cited: tuple[int, ...]
    self_cited: bool

    def __str__(self) -> str:
        how = "cited by the model" if self.self_cited else "attributed after generation"
        sources = "\n".join(
            f"  [{number}] {self.hits[number - 1].chunk.citation}" for number in self.cited
        )
        return f"{self.text}\nSources ({how}):\n{sources}"


@functools.lru_cache(maxsize=1)
def _chat_model() -> tuple[Any, Any]:
    import torch
    import transformers

    from llmzero.core.runtime import get_device
    from llmzero.data import assets

    folder = assets.hf_model("SmolLM2-135M-Instruct")
    transformers.utils.logging.disable_progress_bar()  # its loading bar writes to stderr
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    tokenizer.padding_side = "left"  # a batch of prompts must end where generation starts
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    return tokenizer, model.to(get_device()).eval()


def generate_replies(messages: Sequence[str], max_new_tokens: int = 48) -> list[str]:
    """SmolLM2-135M-Instruct's greedy replies to user ``messages``, generated as one batch
    (left-padded, so every prompt ends where its reply starts)."""
    import torch

    if isinstance(messages, str):
        raise TypeError("messages must be a list of strings; wrap a single one as [message].")
    tokenizer, model = _chat_model()
    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": message}], tokenize=False, add_generation_prompt=True
        )
        for message in messages
    ]
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    batch = batch.to(model.device)  # input_ids and attention_mask: (n, T)
    with torch.no_grad():
        out = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
    start = batch["input_ids"].shape[1]
    return [tokenizer.decode(row[start:], skip_special_tokens=True).strip() for row in out]


def ask_book(
    question: str,
    k: int = 2,
    search: BookSearch | None = None,
    max_new_tokens: int = 48,
    max_words: int = 80,
) -> Answer:
    """Answer ``question`` from this book: retrieve ``k`` chunks, let SmolLM2 answer from
    them (see :func:`build_prompt`) and cite them as [1], [2] ...

    ``search`` defaults to a BM25 :class:`BookSearch` of the book (built once). When the
    reply cites no retrieved source, the source it overlaps most is attributed to it
    (:func:`attribute`). A 135M model often copies a sentence or misreads the sources:
    check the sources it lists.
    """
    if not isinstance(question, str) or not question.strip():
        raise ValueError("question must be a non-empty string, e.g. 'What is a KV cache?'.")
    search = search if search is not None else _default_search()
    hits = tuple(search.search(question, k))
    reply = generate_replies([build_prompt(question, hits, max_words)], max_new_tokens)[0]
    cited = cited_sources(reply, len(hits))
    if cited:
        return Answer(reply, hits, tuple(cited), True)
    return Answer(reply, hits, (attribute(reply, hits),), False)


@functools.lru_cache(maxsize=1)
def _default_search() -> BookSearch:
    return BookSearch.from_book(method="bm25")
