"""Checks for LLMs in specialised domains (Part VI, *LLMs in specialised domains*).

- :func:`words` and :func:`fertility`: how many tokens a tokenizer spends per word of a
  text, the first sign that a domain's vocabulary is foreign to a model;
- :func:`parse_bibtex`, :func:`find_citations` and :func:`verify_citations`: a check for
  hallucinated references. A model asked for sources writes author–year citations; each is
  looked up in a trusted bibliography (for example the book's own ``references.bib``) by
  first author's surname and year, so the share of citations that exist can be measured.

Usage::

    from llmzero.applications import domains

    domains.fertility(lambda text: tokenizer(text)["input_ids"], "Habeas corpus applies.")
    entries = domains.parse_bibtex(open("references.bib").read())
    found = domains.find_citations("As Vaswani et al. (2017) showed ...")
    domains.verify_citations(found, entries)  # [True]

A matching surname and year is a *necessary* condition for a real citation, not a
sufficient one: a model can pair a real author with a real year and an invented title.
So the check gives an upper bound on the share of real citations: read the titles too.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from llmzero.data import booktext

__all__ = [
    "CITATION",
    "WORD",
    "BibEntry",
    "Citation",
    "CitationCheck",
    "fertility",
    "find_bibliography",
    "find_citations",
    "parse_bibtex",
    "verify_citations",
    "words",
]

WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
"""Runs of letters with inner apostrophes or hyphens (``don't``, ``well-being``) are words."""


def words(text: str) -> list[str]:
    """The words of ``text``: runs of letters, keeping inner apostrophes and hyphens.

    Numbers and punctuation are not words, so every tokenizer is divided by the same count.
    """
    return WORD.findall(text)


def fertility(tokenize: Callable[[str], Sequence[int]], text: str) -> float:
    """Tokens per word: ``len(tokenize(text)) / len(words(text))``.

    ``tokenize`` must return the token ids of ``text`` without special tokens (no
    ``[CLS]``/``[SEP]`` or beginning-of-text token), or short texts look worse than they are.
    """
    n_words = len(words(text))
    if n_words == 0:
        raise ValueError("the text has no words; fertility needs at least one word.")
    return len(tokenize(text)) / n_words


@dataclass(frozen=True)
class BibEntry:
    """One BibTeX entry: its key, the authors' surnames (in order), year and title."""

    key: str
    surnames: tuple[str, ...]
    year: int | None
    title: str


@dataclass(frozen=True)
class Citation:
    """An author–year citation found in text: the first author's surname and the year."""

    surname: str
    year: int
    text: str


@dataclass(frozen=True)
class CitationCheck:
    """A citation and what the bibliography says about it: ``exists`` when an entry has
    that first author and year, and the ``key`` of that entry (``None`` if none)."""

    citation: Citation
    exists: bool
    key: str | None


def _fold(name: str) -> str:
    # Surnames compared without accents, braces, case or spaces: {\"o} and ö and o agree.
    name = re.sub(r"\\[`'^\"~=.uvHc]\s*", "", name)
    name = unicodedata.normalize("NFKD", name.replace("{", "").replace("}", ""))
    return "".join(c for c in name if c.isalpha()).lower()


def _field(body: str, name: str) -> str:
    # The value of one field, in braces (nested allowed) or quotes, or a bare number.
    found = re.search(rf"(?<![\w-]){name}\s*=\s*", body, flags=re.IGNORECASE)
    if not found:
        return ""
    rest = body[found.end() :]
    if rest.startswith("{"):
        depth = 0
        for index, char in enumerate(rest):
            depth += {"{": 1, "}": -1}.get(char, 0)
            if depth == 0:
                return rest[1:index]
        raise ValueError(f"unbalanced braces in the {name} field: {rest[:60]!r}")
    if rest.startswith('"'):
        return rest[1 : rest.index('"', 1)]
    return re.match(r"[\w-]*", rest).group()


def _surname(author: str) -> str:
    author = author.strip()
    if author.startswith("{") and author.endswith("}"):  # {United Nations}: keep whole
        return author[1:-1]
    if "," in author:  # "Vaswani, Ashish"
        return author.split(",")[0]
    return author.split()[-1] if author.split() else ""  # "Ashish Vaswani"


def parse_bibtex(text: str) -> list[BibEntry]:
    """The entries of a BibTeX file: key, authors' surnames, year and title.

    A small reader for well-formed files such as the book's ``references.bib`` (fields in
    braces or quotes, authors separated by ``and``); ``@comment``, ``@string`` and
    ``@preamble`` blocks are skipped. Use a full parser (``bibtexparser``) for anything else.
    """
    entries = []
    for head in re.finditer(r"@(\w+)\s*\{\s*([^,\s]+)\s*,", text):
        if head.group(1).lower() in {"comment", "string", "preamble"}:
            continue
        following = text.find("\n@", head.end())
        body = text[head.end() : following if following != -1 else len(text)]
        authors = re.split(r"\s+and\s+", _field(body, "author")) if _field(body, "author") else []
        surnames = tuple(_surname(a) for a in authors if a.strip() and a.strip() != "others")
        year_match = re.search(r"\d{4}", _field(body, "year"))
        year = int(year_match.group()) if year_match else None
        title = re.sub(r"[{}]", "", _field(body, "title"))
        entries.append(BibEntry(head.group(2), surnames, year, title))
    return entries


_NAME = r"[A-Z][\w'’-]+(?:\s(?:van|von|de|der|di|du|le|la)\s[A-Z][\w'’-]+)?"
CITATION = re.compile(
    rf"(?P<name>{_NAME})"  # the first author's surname
    rf"(?:\s*,?\s+(?:et\s+al\.?|(?:and|&)\s+{_NAME})|,\s+(?:[A-Z]\.\s*)+)?"  # co-authors
    r"[,.]?\s*\(?\s*(?P<year>(?:19|20)\d{2})[a-z]?\b"  # the year, maybe in brackets
)
"""``Surname (2019)``, ``Surname et al. (2019)``, ``(Surname and Other, 2019)``,
``Surname, A. (2019)`` and ``Surname 2019``: the author–year forms models write."""

_NOT_NAMES = {"In", "The", "A", "An", "See", "From", "Since", "By", "And", "January", "May"}


def find_citations(text: str) -> list[Citation]:
    """Every author–year citation in ``text``, in order (see :data:`CITATION`).

    Capitalised words that are not surnames (``In 2019``, ``The 2020 ...``, month names)
    are skipped.
    """
    found = []
    for match in CITATION.finditer(text):
        name = match.group("name")
        if name in _NOT_NAMES:
            continue
        found.append(Citation(name, int(match.group("year")), match.group()))
    return found


def verify_citations(
    citations: Iterable[Citation], entries: Sequence[BibEntry]
) -> list[CitationCheck]:
    """Look each citation up by first author's surname and year.

    A citation *exists* when some entry's first author has the same surname (compared
    without case or accents) and the same year. The book cites by first author, so a
    citation naming the second author of a real paper does not count.
    """
    index: dict[tuple[str, int | None], str] = {}
    for entry in entries:
        if entry.surnames:
            index.setdefault((_fold(entry.surnames[0]), entry.year), entry.key)
    checks = []
    for citation in citations:
        key = index.get((_fold(citation.surname), citation.year))
        checks.append(CitationCheck(citation, key is not None, key))
    return checks


def find_bibliography(start: str | Path | None = None) -> Path:
    """The book's ``references.bib``, in the folder :func:`llmzero.data.booktext.find_book_dir`
    finds (``LLMZERO_BOOK_DIR``, ``start`` or a folder above it, or the Colab clone).

    Raises :class:`FileNotFoundError` that says what to do when there is none.
    """
    path = booktext.find_book_dir(start) / "references.bib"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: the book's folder has no bibliography. Restore it with "
            "git checkout references.bib, or pass the folder of a complete clone."
        )
    return path
