"""Stage 1 of the pretraining-data pipeline: from an HTML page to clean, normalized text.

Built in the chapter *Data at scale* (Part IV). A web page is mostly not the article:
scripts, style sheets, navigation bars, headers and footers surround a few paragraphs of
text. :func:`html_to_text` keeps the paragraphs and drops the rest, then puts the text into
one canonical form so that two copies of the same page give the same string::

    html_to_text("<nav>Home | About</nav><p>Caf&eacute;  au lait.</p><footer>(c) 2024</footer>")
    # 'Café au lait.'

It is a regular-expression extractor, which is enough for well-formed pages. Real crawls
use a parser-based main-content extractor (trafilatura, resiliparse, jusText), which also
scores paragraphs by link density and length.
"""

from __future__ import annotations

import re

from llmzero.text.cleaning import clean, normalize

__all__ = ["BLOCK_TAG", "DROPPED_ELEMENTS", "html_to_text"]

DROPPED_ELEMENTS = ("script", "style", "noscript", "nav", "header", "footer", "aside", "form")
"""Elements whose whole content is dropped (code, styling and page furniture, not text)."""

_DROPPED = re.compile(
    r"<(" + "|".join(DROPPED_ELEMENTS) + r")\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL
)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_HEAD = re.compile(r"<head\b[^>]*>.*?</head\s*>", re.IGNORECASE | re.DOTALL)

BLOCK_TAG = re.compile(
    r"</?(?:p|div|br|li|ul|ol|h[1-6]|tr|table|section|article|main|blockquote|pre|hr)\b[^>]*>",
    re.IGNORECASE,
)
"""Tags that end a line of text when a browser renders the page (paragraphs, breaks, lists)."""


def html_to_text(html: str) -> str:
    """Extract the visible text of an HTML page, one paragraph or line per text line.

    Steps, in order:

    1. drop comments, the ``<head>`` and every element in ``DROPPED_ELEMENTS`` with its
       content (scripts and navigation are text a reader never sees as the article);
    2. turn block-level tags (``BLOCK_TAG``) into line breaks;
    3. clean each line with :func:`llmzero.text.cleaning.clean` (remaining tags removed,
       entities decoded, whitespace collapsed; URLs kept);
    4. put each line into Unicode NFC, so composed and decomposed accents compare equal;
    5. drop empty lines.

    Args:
        html: the page as a string (plain text without tags passes through, tidied).

    Returns:
        The text, lines joined by ``"\\n"``; ``""`` for a page with no visible text.

    Raises:
        TypeError: ``html`` is not a string (for example bytes that still need decoding).
    """
    if not isinstance(html, str):
        raise TypeError(
            f"html_to_text expects a str, got {type(html).__name__}; decode bytes first, "
            "e.g. page.decode('utf-8', errors='replace')."
        )
    text = _COMMENT.sub(" ", html)
    text = _HEAD.sub(" ", text)
    text = _DROPPED.sub("\n", text)
    text = BLOCK_TAG.sub("\n", text)
    # clean() turns every run of whitespace, newlines included, into one space. To keep the
    # line breaks, mark them with a character that is not whitespace (NUL, which no text
    # contains), clean the whole page in one call, then split at the marks.
    cleaned = clean(text.replace("\0", "").replace("\n", " \0 "), url_token=None)
    lines = (line.strip() for line in cleaned.split("\0"))
    return normalize("\n".join(line for line in lines if line), "NFC")
