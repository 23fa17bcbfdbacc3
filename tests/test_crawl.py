"""Tests for llmzero.data.crawl and llmzero.data.extract: the polluted crawl and HTML to text."""

from __future__ import annotations

import unicodedata
from collections import Counter

import pytest

from llmzero.data.crawl import make_crawl
from llmzero.data.extract import html_to_text


@pytest.fixture(scope="module")
def crawl():
    return make_crawl(seed=0)


def test_crawl_is_deterministic_and_ids_are_unique(crawl) -> None:
    again = make_crawl(seed=0)
    assert [d.id for d in again] == [d.id for d in crawl]
    assert [d.html for d in again] == [d.html for d in crawl]
    assert len({d.id for d in crawl}) == len(crawl)
    assert len({d.url for d in crawl}) == len(crawl)
    other = make_crawl(seed=1)
    assert [d.html for d in other] != [d.html for d in crawl]


def test_crawl_holds_every_kind_of_dirt(crawl) -> None:
    truths = [d.truth for d in crawl]
    kinds = Counter(t.duplicate_kind for t in truths)
    assert kinds["exact"] >= 30 and kinds["near"] >= 30
    assert sum(t.is_spam for t in truths) >= 50
    assert sum(bool(t.pii) for t in truths) >= 50
    assert len({t.language for t in truths}) >= 15
    assert all("<script" in d.html and "<nav" in d.html for d in crawl)


def test_planted_duplicates_point_at_an_original_in_the_crawl(crawl) -> None:
    by_id = {d.id: d for d in crawl}
    for document in crawl:
        original = document.truth.duplicate_of
        if original is None:
            continue
        assert by_id[original].truth.duplicate_of is None
        if document.truth.duplicate_kind == "exact":
            # The same page, possibly re-encoded: equal once extracted and normalized.
            assert " ".join(html_to_text(document.html).split()) == " ".join(
                html_to_text(by_id[original].html).split()
            )


def test_planted_pii_appears_verbatim_in_the_page(crawl) -> None:
    for document in crawl:
        for item in document.truth.pii:
            assert item in html_to_text(document.html), (document.id, item)


def test_html_to_text_drops_furniture_decodes_entities_and_composes_accents() -> None:
    page = (
        "<html><head><title>T</title><script>var x = 1;</script></head><body>"
        "<nav><a href='/'>Home</a> | About</nav><!-- comment -->"
        "<p>Caf\u0065\u0301 &amp; cr&egrave;me,&nbsp;  10 &lt; 20.</p><p>Second<br>line</p>"
        "<footer>(c) 2024</footer></body></html>"
    )
    text = html_to_text(page)
    assert text == "Café & crème, 10 < 20.\nSecond\nline"
    assert unicodedata.is_normalized("NFC", text)


def test_html_to_text_explains_bytes_input() -> None:
    with pytest.raises(TypeError, match="decode"):
        html_to_text(b"<p>hi</p>")
