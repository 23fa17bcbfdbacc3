"""Language identification from character n-grams, written from scratch (Part IV).

Built in the chapter *Data at scale*. Each language is a bag of character n-grams
(1 to 3 characters by default); a page is assigned to the language whose n-gram
distribution makes it most likely, a multinomial naive Bayes classifier::

    from llmzero.data import langid

    train, heldout = langid.udhr_split()          # the UDHR in 17 languages, cut in two
    model = langid.CharNgramLanguageID().fit(train)
    model.predict(["Alle Menschen sind frei und gleich an Würde und Rechten geboren."])
    # ['de']

The training text is the Universal Declaration of Human Rights (NLTK's ``udhr`` corpus):
the same text in every language, so differences between languages are differences of
language, not of topic. :func:`udhr_split` keeps the first part of each translation for
training and the rest for evaluation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from llmzero.data import assets

__all__ = [
    "UDHR_FILES",
    "CharNgramLanguageID",
    "char_ngram_keys",
    "default_model",
    "prepare",
    "udhr_segments",
    "udhr_split",
    "udhr_texts",
]

UDHR_FILES: dict[str, tuple[str, str]] = {
    "en": ("English-Latin1", "latin-1"),
    "fr": ("French_Francais-Latin1", "latin-1"),
    "de": ("German_Deutsch-Latin1", "latin-1"),
    "es": ("Spanish-Latin1", "latin-1"),
    "pt": ("Portuguese_Portugues-Latin1", "latin-1"),
    "it": ("Italian-Latin1", "latin-1"),
    "nl": ("Dutch_Nederlands-Latin1", "latin-1"),
    "da": ("Danish_Dansk-Latin1", "latin-1"),
    "no": ("Norwegian-Latin1", "latin-1"),
    "sv": ("Swedish_Svenska-Latin1", "latin-1"),
    "fi": ("Finnish_Suomi-Latin1", "latin-1"),
    "pl": ("Polish-Latin2", "cp1250"),
    "cs": ("Czech-Latin2", "cp1250"),
    "sk": ("Slovak-Latin2", "cp1250"),
    "ru": ("Russian-UTF8", "utf-8"),
    "uk": ("Ukrainian-UTF8", "utf-8"),
    "zh": ("Chinese_Mandarin-GB2312", "gb2312"),
}
"""ISO 639-1 code -> (NLTK ``udhr`` file id, the file's real encoding).

The ``-Latin2`` files of NLTK's copy are really Windows-1250 (``Š`` is byte 0x8A, which
ISO 8859-2 leaves undefined), so they are decoded as ``cp1250`` here.
"""

_CJK = "\u3000-\u303f\u4e00-\u9fff\uff00-\uffef"  # CJK punctuation, ideographs, full-width forms
_CJK_SPACE = re.compile(rf"(?<=[{_CJK}]) +| +(?=[{_CJK}])")
_NON_LETTERS = re.compile(r"[\W\d_]+")


@lru_cache(maxsize=1)
def udhr_texts() -> dict[str, str]:
    """The UDHR in each language of ``UDHR_FILES``, decoded and with whitespace tidied.

    Chinese is written without spaces between words; NLTK's copy puts a space between
    every character, which is removed here so the text looks like real Chinese.
    """
    assets.nltk("udhr")
    from nltk.corpus import udhr

    texts = {}
    for code, (fileid, encoding) in UDHR_FILES.items():
        with udhr.abspath(fileid).open() as handle:
            raw = handle.read()
        text = raw.decode(encoding, errors="replace") if isinstance(raw, bytes) else raw
        if code == "zh":
            text = _CJK_SPACE.sub("", text)
        lines = (" ".join(line.split()) for line in text.splitlines())
        texts[code] = "\n".join(line for line in lines if line)
    return texts


def udhr_split(train_fraction: float = 0.6) -> tuple[dict[str, str], dict[str, str]]:
    """Cut each translation at a line break: the first ``train_fraction`` of its characters
    for training, the rest held out. Returns ``(train, heldout)``, each ``{code: text}``."""
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}.")
    train, heldout = {}, {}
    for code, text in udhr_texts().items():
        cut = text.find("\n", int(len(text) * train_fraction))
        cut = len(text) if cut < 0 else cut
        train[code], heldout[code] = text[:cut], text[cut + 1 :]
    return train, heldout


def udhr_segments(texts: Mapping[str, str], length: int = 100) -> list[tuple[str, str]]:
    """Cut each text into consecutive pieces of about ``length`` characters, ending at a
    space where there is one, and return ``(code, piece)`` pairs (the evaluation set)."""
    if length < 1:
        raise ValueError(f"length must be a positive number of characters, got {length}.")
    pairs = []
    for code, text in texts.items():
        flat = " ".join(text.split())
        start = 0
        while start < len(flat):
            end = min(start + length, len(flat))
            space = flat.rfind(" ", start + length // 2, end) if end < len(flat) else -1
            end = space if space > start else end
            piece = flat[start:end].strip()
            if len(piece) >= length // 2:
                pairs.append((code, piece))
            start = end + 1 if space > start else end
    return pairs


def prepare(text: str) -> str:
    """Lower-case the text and keep letters only: every run of digits, punctuation and
    whitespace becomes one space, and the text gets a space at each end (so that n-grams
    see where words begin and end)."""
    return " " + _NON_LETTERS.sub(" ", text.lower()).strip() + " "


def char_ngram_keys(text: str, orders: Sequence[int] = (1, 2, 3)) -> np.ndarray:
    """All character n-grams of ``prepare(text)`` for each n in ``orders``, as int64 keys.

    An n-gram's key packs its code points, 21 bits each (every Unicode code point is below
    :math:`2^{21}`): ``"ab"`` becomes ``ord("a") << 21 | ord("b")``. No prepared text holds
    code point 0, so n-grams of different lengths never share a key, and no dictionary of
    strings is needed.
    """
    if not orders or min(orders) < 1 or max(orders) > 3:
        raise ValueError(f"orders must be n-gram lengths between 1 and 3, got {orders}.")
    points = np.frombuffer(prepare(text).encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    keys = []
    for order in orders:
        if len(points) < order:
            continue
        n_grams = len(points) - order + 1
        key = np.zeros(n_grams, dtype=np.int64)
        for offset in range(order):
            key = (key << 21) | points[offset : offset + n_grams]
        keys.append(key)
    return np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64)


@dataclass
class CharNgramLanguageID:
    """Multinomial naive Bayes over character n-grams.

    For a text with n-gram counts :math:`c_g` the score of language :math:`\\ell` is
    :math:`\\log P(\\ell) + \\sum_g c_g \\log P(g \\mid \\ell)`, with add-``alpha``
    (Lidstone) smoothing :math:`P(g \\mid \\ell) = (N_{g\\ell} + \\alpha) / (N_\\ell +
    \\alpha V)` over the vocabulary of :math:`V` n-grams seen in training. N-grams never
    seen in training are skipped (they say nothing about any language). The prior is
    uniform: the training texts are translations of each other, so their sizes say
    nothing about how common each language is on the web.

    Args:
        orders: n-gram lengths to use (each between 1 and 3).
        alpha: the smoothing constant (1.0 is Laplace smoothing).
        max_chars: only the first ``max_chars`` characters of a text are read when
            predicting (``None``: all); a page's language is clear long before its end.
    """

    orders: tuple[int, ...] = (1, 2, 3)
    alpha: float = 0.1
    max_chars: int | None = 1000
    languages: list[str] = field(default_factory=list, init=False)
    vocabulary: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), init=False)
    log_probs: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)), init=False)

    def fit(self, texts: Mapping[str, str]) -> CharNgramLanguageID:
        """Count n-grams per language in ``{code: training text}``; returns ``self``."""
        if not texts:
            raise ValueError("fit needs at least one language: pass {code: training text}.")
        if self.alpha <= 0:
            raise ValueError(f"alpha must be positive (it avoids log 0), got {self.alpha}.")
        self.languages = sorted(texts)
        keys = [char_ngram_keys(texts[code], self.orders) for code in self.languages]
        self.vocabulary = np.unique(np.concatenate(keys))
        counts = np.zeros((len(self.vocabulary), len(self.languages)))  # (V, L)
        for column, language_keys in enumerate(keys):
            unique, count = np.unique(language_keys, return_counts=True)
            counts[np.searchsorted(self.vocabulary, unique), column] = count
        totals = counts.sum(axis=0, keepdims=True)  # (1, L)
        self.log_probs = np.log(counts + self.alpha) - np.log(
            totals + self.alpha * len(self.vocabulary)
        )  # (V, L)
        return self

    def counts(self, texts: Iterable[str]) -> np.ndarray:
        """The n-gram count matrix of ``texts`` over the vocabulary: ``(n_texts, V)``."""
        self._check_fitted()
        texts = list(texts)
        matrix = np.zeros((len(texts), len(self.vocabulary)))
        for row, text in enumerate(texts):
            index = self._known_indices(text)
            np.add.at(matrix[row], index, 1)
        return matrix

    def _known_indices(self, text: str) -> np.ndarray:
        keys = char_ngram_keys(text[: self.max_chars] if self.max_chars else text, self.orders)
        index = np.searchsorted(self.vocabulary, keys).clip(max=len(self.vocabulary) - 1)
        return index[self.vocabulary[index] == keys]

    def log_likelihoods(self, texts: Iterable[str]) -> np.ndarray:
        """:math:`\\sum_g c_g \\log P(g \\mid \\ell)` per text and language: ``(n_texts, L)``."""
        self._check_fitted()
        return np.stack([self.log_probs[self._known_indices(text)].sum(axis=0) for text in texts])

    def predict(self, texts: Iterable[str]) -> list[str]:
        """The most likely language code of each text."""
        scores = self.log_likelihoods(list(texts))
        return [self.languages[i] for i in scores.argmax(axis=1)]

    def predict_proba(self, texts: Iterable[str]) -> np.ndarray:
        """Posterior probabilities under the uniform prior: ``(n_texts, L)``, rows sum to 1.

        Naive Bayes treats overlapping n-grams as independent evidence, so these
        probabilities are far too confident (nearly always 0 or 1 for a page); use them
        to rank languages, not as calibrated confidences.
        """
        scores = self.log_likelihoods(list(texts))
        scores -= scores.max(axis=1, keepdims=True)
        probs = np.exp(scores)
        return probs / probs.sum(axis=1, keepdims=True)

    def _check_fitted(self) -> None:
        if not self.languages:
            raise RuntimeError("This CharNgramLanguageID is not trained yet: call fit(texts).")


@lru_cache(maxsize=4)
def default_model(train_fraction: float = 0.6) -> CharNgramLanguageID:
    """A :class:`CharNgramLanguageID` trained on the first ``train_fraction`` of the UDHR
    in every language of ``UDHR_FILES`` (cached: the pipeline calls it once per process)."""
    train, _ = udhr_split(train_fraction)
    return CharNgramLanguageID().fit(train)
