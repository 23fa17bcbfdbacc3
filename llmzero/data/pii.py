"""Scrubbing personal data from web text: e-mail addresses, phone numbers, IP addresses.

Built in the chapter *Data at scale* (Part IV). A language model can memorise and repeat
what it was trained on, so pretraining pipelines replace personal identifiers with
placeholders before training::

    from llmzero.data.pii import scrub

    scrub("Mail ann.lee@mailbox.net or call (415) 555-0199 from 81.2.69.160.").text
    # 'Mail <EMAIL> or call <PHONE> from <IP>.'

Regular expressions catch identifiers that have a *format*. They cannot catch names,
street addresses or anything else that looks like ordinary words; that needs a named-
entity recogniser (Part II) and still misses much. The patterns are tuned to miss dates,
years, prices, version numbers and private network addresses, and the tests list what
each must and must not catch.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

__all__ = ["EMAIL", "IPV4", "PHONE", "PLACEHOLDERS", "PiiMatch", "ScrubResult", "find_pii", "scrub"]

EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+"
    r"[A-Za-z]{2,}(?![\w-])"
)
"""A user name of letters, digits and ``._%+-`` (starting with a letter or digit), ``@``,
then a domain of dot-separated labels ending in a letter-only top-level domain. Misses
``@import`` (no user name) and ``user@localhost`` (no top-level domain)."""

PHONE = re.compile(
    r"(?<![\w+.$/-])(?:"
    r"\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,4}[ .-]?\d{3,4}"  # international: +44 20 7946 0958
    r"|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}"  # (415) 555-0199
    r"|\d{3}[ .-]\d{3}[ .-]\d{4}"  # 415-555-0199, 415.555.0199
    r")(?![\w.-]*\d)"
)
"""International numbers (``+`` and a country code, then groups of digits) and North
American ten-digit numbers with separators. Bare digit runs (``4155550199``) are not
caught: too many are order numbers, prices or counts."""

IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]*\d)")
"""Four dot-separated numbers; :func:`find_pii` keeps only valid, *global* addresses
(not ``10.x``, ``192.168.x``, ``127.0.0.1`` or documentation ranges), like datatrove."""

PLACEHOLDERS = {"email": "<EMAIL>", "phone": "<PHONE>", "ip": "<IP>"}
"""What each kind of identifier is replaced with."""


@dataclass(frozen=True)
class PiiMatch:
    """One identifier found in a text: its kind, the matched string and its span."""

    kind: str
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class ScrubResult:
    """The scrubbed text and the identifiers that were replaced."""

    text: str
    matches: tuple[PiiMatch, ...]


def _is_global_ip(candidate: str) -> bool:
    try:
        return ipaddress.IPv4Address(candidate).is_global
    except ValueError:  # an octet above 255, or a leading zero
        return False


def find_pii(text: str) -> list[PiiMatch]:
    """Every e-mail address, phone number and global IPv4 address in ``text``, in order.

    E-mail addresses are found first; phone numbers and IP addresses that overlap an
    e-mail address or each other are skipped, so each character is in at most one match.
    """
    matches: list[PiiMatch] = []
    taken = bytearray(len(text))  # 1 where a match already covers the character

    def add(kind: str, found: re.Match[str]) -> None:
        start, end = found.span()
        if any(taken[start:end]):
            return
        taken[start:end] = b"\x01" * (end - start)
        matches.append(PiiMatch(kind, found.group(), start, end))

    for found in EMAIL.finditer(text):
        add("email", found)
    for found in IPV4.finditer(text):
        if _is_global_ip(found.group()):
            add("ip", found)
    for found in PHONE.finditer(text):
        add("phone", found)
    return sorted(matches, key=lambda match: match.start)


def scrub(text: str) -> ScrubResult:
    """Replace every identifier :func:`find_pii` finds with its ``PLACEHOLDERS`` entry."""
    matches = find_pii(text)
    pieces, position = [], 0
    for match in matches:
        pieces += [text[position : match.start], PLACEHOLDERS[match.kind]]
        position = match.end
    pieces.append(text[position:])
    return ScrubResult("".join(pieces), tuple(matches))
