"""Small, predictable text clean-up: Unicode normalization, case folding and regex cleaning.

Built step by step in the chapter *What NLP is*; Part IV's data pipeline reuses it::

    from llmzero.text.cleaning import clean, normalize

    normalize("ＬＬＭｓ ﬁne-tuning")                  # 'LLMs fine-tuning'
    normalize("Straße", casefold=True)              # 'strasse'
    clean("<p>Read   this:&nbsp;https://example.com/a.</p>")  # 'Read this: [URL].'

Every function here is a pure ``str -> str`` function: it never looks at anything but its
input, so the same text always gives the same output, whatever machine runs it.
"""

from __future__ import annotations

import html
import re
import unicodedata

__all__ = ["HTML_TAG", "NORMALIZATION_FORMS", "URL", "WHITESPACE", "clean", "normalize"]

NORMALIZATION_FORMS = ("NFC", "NFD", "NFKC", "NFKD")
"""The four Unicode normalization forms that ``unicodedata.normalize`` accepts."""

HTML_TAG = re.compile(r"<[A-Za-z/!][^>]*>")
"""An HTML tag, comment or doctype (``<``, then a letter, ``/`` or ``!``, up to the next ``>``).

Requiring a letter, ``/`` or ``!`` after ``<`` keeps text such as ``<3`` or ``a < b``. The
pattern stops at the first ``>``, so a ``>`` inside a quoted attribute value ends the tag
early: regular expressions cannot parse HTML in general, only strip well-behaved tags.
"""

URL = re.compile(r"(?:https?://|www\.)\S+?(?=[.,;:!?)\]}'\"]*(?:\s|$))")
"""A web address (``http://``, ``https://`` or ``www.``, then non-space characters).

The lazy ``\\S+?`` with the look-ahead leaves punctuation that ends a sentence (``.``,
``,``, ``)`` ...) outside the match, so ``"see https://x.org."`` keeps its full stop.
"""

WHITESPACE = re.compile(r"\s+")
"""One or more whitespace characters of any kind (spaces, tabs, newlines, no-break spaces)."""


def normalize(text: str, form: str = "NFKC", casefold: bool = False) -> str:
    """Put ``text`` into a Unicode normalization form, optionally case-folded.

    Args:
        text: any string.
        form: ``"NFC"`` (compose; changes no visible character), ``"NFD"`` (decompose),
            ``"NFKC"`` (the default: also fold compatibility characters such as full-width
            letters, ligatures and superscripts into their plain forms) or ``"NFKD"``.
        casefold: also apply ``str.casefold`` (aggressive lower-casing for caseless
            matching: ``"ß"`` becomes ``"ss"``), then normalize again, because case folding
            can produce sequences that are no longer in the requested form.

    Returns:
        The normalized string. Normalizing twice gives the same result as once.

    Raises:
        ValueError: ``form`` is not one of ``NORMALIZATION_FORMS``.
    """
    if form not in NORMALIZATION_FORMS:
        raise ValueError(f"form must be one of {NORMALIZATION_FORMS}, got {form!r}.")
    text = unicodedata.normalize(form, text)
    if casefold:
        text = unicodedata.normalize(form, text.casefold())
    return text


def clean(text: str, url_token: str | None = "[URL]", strip_html: bool = True) -> str:
    """Clean web-style text: drop HTML tags, decode entities, mark URLs, tidy whitespace.

    The steps run in this order, which matters:

    1. remove HTML tags (``HTML_TAG``), replacing each by a space so that words on either
       side stay apart;
    2. decode HTML entities (``&amp;`` to ``&``, ``&lt;`` to ``<``, ``&nbsp;`` to a no-break
       space) *after* removing tags, so that an escaped ``&lt;b&gt;`` in the text is kept
       as the visible characters ``<b>`` instead of being removed as a tag;
    3. replace each URL (``URL``) by ``url_token``, unless ``url_token`` is ``None``;
    4. turn every run of whitespace into one space and strip both ends.

    Args:
        text: the raw text.
        url_token: what replaces a URL; ``None`` keeps URLs unchanged.
        strip_html: whether to do steps 1 and 2.

    Returns:
        The cleaned text.
    """
    if strip_html:
        text = HTML_TAG.sub(" ", text)
        text = html.unescape(text)
    if url_token is not None:
        text = URL.sub(url_token, text)
    return WHITESPACE.sub(" ", text).strip()
