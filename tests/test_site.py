"""Checks of the built HTML site (run after `make book`; CI builds it first)."""

from __future__ import annotations

import re
import urllib.parse
from functools import cache
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from conftest import SITE, source_of, toc_files

pytestmark = pytest.mark.site

# Attributes through which a page makes the browser fetch something by itself.
FETCHING = {
    "script": "src",
    "img": "src",
    "iframe": "src",
    "source": "src",
    "video": "src",
    "audio": "src",
    "embed": "src",
    "object": "data",
}
FETCHING_LINK_RELS = {
    "stylesheet",
    "preload",
    "modulepreload",
    "icon",
    "shortcut",
    "manifest",
    "prefetch",
    "preconnect",
    "dns-prefetch",
}


@cache
def _soup(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def _pages() -> list[Path]:
    if not SITE.is_dir():
        return []
    return sorted(p for p in SITE.rglob("*.html") if "_static" not in p.parts)


def _chapter_pages() -> list[str]:
    pages = []
    for page in toc_files():
        try:
            if source_of(page).suffix == ".ipynb":
                pages.append(page)
        except FileNotFoundError:
            pass  # reported by test_repository.py::test_every_toc_entry_has_a_source_file
    return pages


def test_every_toc_entry_produced_a_page(site):
    for page in toc_files():
        assert (site / f"{page}.html").is_file(), f"no HTML page for {page}"


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(SITE)))
def test_page_shows_no_error_output_or_traceback(page):
    soup = _soup(page)
    for selector in (".output.traceback", ".output.error", ".output.stderr", "div.stderr"):
        assert not soup.select(selector), f"{page.name} shows {selector}"
    # A chapter may print a caught exception's message on purpose; a traceback never.
    assert "Traceback (most recent call last)" not in soup.get_text()


def _reader_notebook(page: str) -> Path:
    """Where the build wrote the chapter's reader notebook (llmzero.book.reader)."""
    return SITE.parent / "notebooks" / f"{page}.ipynb"


@pytest.mark.parametrize("page", _chapter_pages())
def test_chapter_has_colab_and_binder_links_to_its_reader_notebook(site, config, page):
    soup = _soup(site / f"{page}.html")
    repo = urllib.parse.urlsplit(config["repository"]["url"]).path.strip("/")
    branch = config["sphinx"]["config"]["reader_notebooks_branch"]
    hrefs = [a.get("href", "") for a in soup.find_all("a")]
    colab = [h for h in hrefs if h.startswith("https://colab.research.google.com/github/")]
    binder = [h for h in hrefs if h.startswith("https://mybinder.org/v2/gh/")]
    assert colab and binder, f"{page}: launch buttons missing"
    assert colab[0] == f"https://colab.research.google.com/github/{repo}/blob/{branch}/{page}.ipynb"
    assert f"/{repo}/{branch}?urlpath=tree/{page}.ipynb" in binder[0]
    # CI publishes _build/notebooks on that branch, at the same paths.
    assert _reader_notebook(page).is_file(), f"{page}: no reader notebook was built"


@pytest.mark.parametrize("page", _chapter_pages())
def test_chapter_offers_its_reader_notebook_for_download(site, page):
    hrefs = [a.get("href", "") for a in _soup(site / f"{page}.html").find_all("a")]
    downloads = [h for h in hrefs if h.endswith(".ipynb") and not urllib.parse.urlsplit(h).scheme]
    assert downloads, f"{page}: no .ipynb download link"
    assert all("_sources" not in h for h in downloads), f"{page}: links the MyST source"
    target = ((site / page).parent / downloads[0]).resolve()
    assert target == (site / "notebooks" / f"{page}.ipynb").resolve()
    assert target.read_bytes() == _reader_notebook(page).read_bytes()


@cache
def _anchors(page: Path) -> frozenset[str]:
    """The ids and names a link's #fragment can point to on ``page`` (computed once: the API
    reference links to itself thousands of times)."""
    soup = _soup(page)
    ids = {tag.get("id") for tag in soup.find_all(id=True)}
    return frozenset(ids | {tag.get("name") for tag in soup.find_all(attrs={"name": True})})


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(SITE)))
def test_internal_links_and_anchors_resolve(page):
    soup = _soup(page)
    for anchor in soup.find_all("a", href=True):
        href = anchor["href"]
        parts = urllib.parse.urlsplit(href)
        if parts.scheme or href.startswith(("mailto:", "//")):
            continue
        target = page if not parts.path else (page.parent / urllib.parse.unquote(parts.path))
        target = target.resolve()
        if target.is_dir():
            target = target / "index.html"
        assert target.exists(), f"{page.name}: broken link {href}"
        if parts.fragment and target.suffix == ".html":
            assert urllib.parse.unquote(parts.fragment) in _anchors(target), (
                f"{page.name}: anchor #{parts.fragment} not found in {target.name}"
            )


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(SITE)))
def test_page_loads_nothing_from_external_hosts(page):
    soup = _soup(page)
    offenders = []
    for tag, attribute in FETCHING.items():
        for element in soup.find_all(tag):
            url = element.get(attribute, "")
            if urllib.parse.urlsplit(url).scheme in {"http", "https"} or url.startswith("//"):
                offenders.append(f"<{tag} {attribute}={url}>")
    for link in soup.find_all("link", href=True):
        rels = set(link.get("rel", []))
        url = link["href"]
        remote = urllib.parse.urlsplit(url).scheme in {"http", "https"} or url.startswith("//")
        if rels & FETCHING_LINK_RELS and remote:
            offenders.append(f"<link rel={sorted(rels)} href={url}>")
    for style in soup.find_all("style"):
        offenders += re.findall(r"@import\s+url\((?:https?:)?//[^)]+\)", style.get_text())
    assert not offenders, f"{page.name} fetches from other hosts: {offenders}"


def test_mathjax_is_served_from_the_site(site):
    page = _soup(site / "chapters/00-front/welcome.html")
    sources = [s.get("src", "") for s in page.find_all("script")]
    mathjax = [s for s in sources if "tex-chtml" in s]
    assert mathjax and not mathjax[0].startswith(("http", "//")), sources
    assert (site / "_static/mathjax/tex-chtml.js").is_file()
    assert (site / "_static/mathjax/output/chtml/fonts/woff-v2").is_dir()


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(SITE)))
def test_page_has_no_jupyter_widgets(page):
    # A widget (typically a tqdm progress bar drawn by a library in a notebook) is a live
    # object: on a static page it shows nothing useful, and it needs scripts from a CDN.
    widgets = _soup(page).find_all("script", type=re.compile(r"application/vnd\.jupyter\.widget"))
    assert not widgets, (
        f"{page.name} has {len(widgets)} Jupyter widget outputs: turn the library's progress "
        "bar off in that cell, or print progress as text"
    )


# --- Numbering: chapters run on through the Parts (llmzero.book.numbering), and every
# figure, table, listing, equation and exercise number belongs to one place on the site.

_NUMBER = re.compile(r"\d+(?:\.\d+)*")


def _article(soup: BeautifulSoup) -> BeautifulSoup:
    """The page's own content, without the sidebar and the previous/next links."""
    return soup.select_one("article") or soup


def _numbered_items(soup: BeautifulSoup) -> list[str]:
    """The numbers a page gives its own figures, tables, listings, equations and exercises,
    in page order, as shown: "Fig. 8.1", "Exercise 8.1", "Equation (8.1)"."""
    shown = []
    for span in _article(soup).select("span.caption-number, span.eqno"):
        if "eqno" in span.get("class", []):
            shown.append(f"Equation {span.find(string=True).strip()}")
        else:
            shown.append(span.get_text(" ", strip=True))
    return shown


def _heading_number(heading) -> str | None:
    span = heading.select_one("span.section-number")
    return span.get_text(strip=True).rstrip(".") if span else None


def _chapter_number(soup: BeautifulSoup) -> str | None:
    """The section number of the page's title ("8" for chapter 8), if it has one."""
    title = _article(soup).select_one("section h1")
    return _heading_number(title) if title else None


def test_no_number_is_shown_on_two_pages_or_twice(site):
    first_seen: dict[str, str] = {}
    duplicates = []
    for page in _pages():
        name = str(page.relative_to(site))
        article = _article(_soup(page))
        sections = [_heading_number(h) for h in article.select("h1, h2, h3, h4, h5, h6")]
        shown = _numbered_items(_soup(page)) + [f"Section {n}" for n in sections if n]
        for number in shown:
            if number in first_seen:
                duplicates.append(f"{number} on {first_seen[number]} and {name}")
            first_seen.setdefault(number, name)
    assert any(n.startswith("Exercise ") for n in first_seen), "no numbered exercise found"
    duplicates.sort(key=lambda line: line.startswith("Section"))  # figures, exercises first
    assert not duplicates, f"{len(duplicates)} numbers shown twice:\n" + "\n".join(duplicates[:20])


def test_every_chapter_numbers_its_figures_and_exercises_from_one(site):
    checked = 0
    for page in _pages():
        soup = _soup(page)
        chapter = _chapter_number(soup)
        if chapter is None or "." in chapter:  # unnumbered pages; a chapter's section files
            continue
        by_kind: dict[str, list[str]] = {}
        for shown in _numbered_items(soup):
            kind, _, number = shown.rpartition(" ")
            by_kind.setdefault(kind, []).append(number.strip("()"))
        for kind, numbers in by_kind.items():
            expected = [f"{chapter}.{i}" for i in range(1, len(numbers) + 1)]
            assert numbers == expected, (
                f"{page.relative_to(site)} is chapter {chapter}: its {kind} numbers should be "
                f"{expected}, not {numbers}"
            )
        checked += "Exercise" in by_kind
    assert checked, "no chapter page with numbered exercises found"


def test_chapters_are_numbered_on_through_the_parts_in_the_sidebar(site):
    root = site / "chapters/00-front/welcome.html"
    sidebar = _soup(root).select_one("nav.bd-links")
    assert sidebar is not None, "no sidebar on the front page"
    chapters = []
    for link in sidebar.select("li.toctree-l1 > a.reference"):
        # Sphinx writes an entry's number as text before its title: "7. What is NLP?"
        number = re.match(r"(\d+)\.\s", link.get_text(" ", strip=True))
        if number:
            chapters.append((int(number.group(1)), link["href"]))
    assert chapters, "the sidebar shows no numbered chapters"
    assert [n for n, _ in chapters] == list(range(1, len(chapters) + 1)), (
        f"chapter numbers in the sidebar should run 1..{len(chapters)} through the Parts: "
        f"{[n for n, _ in chapters]}"
    )
    for number, href in chapters:
        page = (root.parent / urllib.parse.urlsplit(href).path).resolve()
        assert _chapter_number(_soup(page)) == str(number), f"{href}: title is not {number}"


def _target_number(element) -> str | None:
    """The number a figure, table, listing, equation, exercise or section shows."""
    span = element.select_one("span.caption-number, span.eqno, span.section-number")
    if span is None:
        return None
    match = _NUMBER.search(span.get_text(" ", strip=True))
    return match.group() if match else None


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(SITE)))
def test_numbered_references_show_their_targets_number(page):
    for link in _article(_soup(page)).select("a.reference"):
        label = link.select_one("span.std-numref")
        if label is None:
            continue
        parts = urllib.parse.urlsplit(link["href"])
        target = page if not parts.path else (page.parent / urllib.parse.unquote(parts.path))
        element = _soup(target.resolve()).find(id=urllib.parse.unquote(parts.fragment))
        assert element is not None, f"{page.name}: {link['href']} has no target"
        shown = _NUMBER.search(label.get_text(strip=True))
        assert shown and shown.group() == _target_number(element), (
            f"{page.name}: the link '{label.get_text(strip=True)}' points at "
            f"{link['href']}, which is numbered {_target_number(element)}"
        )
