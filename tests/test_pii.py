"""Tests for llmzero.data.pii: what the scrubber must and must not catch."""

from __future__ import annotations

import pytest

from llmzero.data.pii import find_pii, scrub

MUST_CATCH = [
    ("email", "Write to anna.smith@mailbox.net today."),
    ("email", "Contact j_doe+news@company.co.uk, please."),
    ("email", "(maria_garcia@university.edu)"),
    ("phone", "Call (415) 555-0199 now."),
    ("phone", "Call 415-555-0199."),
    ("phone", "Call 415.555.0199."),
    ("phone", "Ring +44 20 7946 0958 in London."),
    ("phone", "Ring +49 30 1234567 in Berlin."),
    ("phone", "Dial +1 415 555 0199."),
    ("ip", "Logged from 81.2.69.160 at noon."),
    ("ip", "Server 8.8.8.8, port 53."),
]

MUST_NOT_CATCH = [
    "The war lasted from 1939-1945 and 1914-1918.",
    "It costs $1,234.56 or 12.50 euros.",
    "Meet on 2023-10-05 at 10:30.",
    "Install version 2.4.1 of the package.",
    "Our router is at 192.168.0.1 and the loopback is 127.0.0.1.",
    "The documentation uses 203.0.113.7 as an example.",
    "Not an address: 999.10.10.10.",
    "CSS rules begin with @import and @media.",
    "Tweet at @nasa or email me at home.",
    "Call me at noon; the score was 3-2.",
    "Page 12, line 345, item 6789.",
    "Population 8,336,817 in 2020.",
    "ISBN 978-0-13-110362-7.",
]


@pytest.mark.parametrize(("kind", "text"), MUST_CATCH)
def test_must_catch(kind: str, text: str) -> None:
    matches = find_pii(text)
    assert [match.kind for match in matches] == [kind], matches


@pytest.mark.parametrize("text", MUST_NOT_CATCH)
def test_must_not_catch(text: str) -> None:
    assert find_pii(text) == [], find_pii(text)


def test_scrub_replaces_each_identifier_with_its_placeholder() -> None:
    result = scrub("Mail ann.lee@mailbox.net or call (415) 555-0199 from 81.2.69.160.")
    assert result.text == "Mail <EMAIL> or call <PHONE> from <IP>."
    assert [match.text for match in result.matches] == [
        "ann.lee@mailbox.net",
        "(415) 555-0199",
        "81.2.69.160",
    ]


def test_each_character_is_in_at_most_one_match() -> None:
    matches = find_pii("Mail admin@host-81.2.69.160.example.com or 81.2.69.160.")
    assert [(match.kind, match.text) for match in matches] == [
        ("email", "admin@host-81.2.69.160.example.com"),
        ("ip", "81.2.69.160"),
    ]
