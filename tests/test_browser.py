"""The built site in a real browser: headless system Chromium driven by Playwright.

The site (``_build/html``) is served on 127.0.0.1 and every page of the book is visited
once (tests/browser.py collects what the per-page tests check): no console errors, no
request to any other host, math rendered, images loaded with alt text, working sidebar
and next/previous links, no horizontal scrolling on a phone, a page weight under the
limit. Chapter pages (notebooks) also need correct Colab and Binder links, a download
menu offering the notebook, collapsed solutions that open, and rendered SVG outputs.
Search, dark mode and the mobile sidebar are tested on one page each.

Side products for people: screenshots of every page with a gallery,
``_build/screenshots/index.html``, and the page-weight report ``_build/page-weights.txt``
(printed at the end of the run by conftest.py).
"""

from __future__ import annotations

import os
import re
import shutil
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import (
    CHROMIUM_ARGS,
    MAX_PAGE_BYTES,
    MOBILE,
    SCREENSHOTS,
    TIMEOUT_MS,
    WEIGHTS_REPORT,
    Page,
    Visit,
    book_pages,
    contrast_ratio,
    declared_figures,
    find_chromium,
    local_file,
    new_context,
    page_weight,
    parse_css_color,
    relative_luminance,
    rendered_contrast,
    serve,
    settle,
    source_has_math,
    visit_page,
    watch_page,
    weights_report,
    write_gallery,
)
from conftest import ROOT, SITE

pytestmark = pytest.mark.browser

PAGES = book_pages(SITE)
CHAPTERS = [page for page in PAGES if page.is_chapter]
NO_CHAPTERS = pytest.param(
    None, marks=pytest.mark.skip(reason="no chapter (.ipynb) pages in the built site yet")
)
MIN_TEXT_CONTRAST = 4.5  # WCAG AA for body text
MIN_FIGURE_CONTRAST = 3.0  # a figure's lightest vs darkest pixels, as rendered
PHONE_SLACK_PX = 2


def _ids(page: Page | None) -> str:
    return page.name if page else "none"


per_page = pytest.mark.parametrize("page", PAGES, ids=_ids)
per_chapter = pytest.mark.parametrize("page", CHAPTERS or [NO_CHAPTERS], ids=_ids)


def _require(what: str) -> None:
    """Fail in CI, skip locally: the browser tests need a browser and Playwright."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is needed for the browser tests")
    pytest.skip(f"{what} is not installed")


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def base_url(site) -> Iterator[str]:
    with serve(site) as base:
        yield base


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    executable = find_chromium()
    if executable is None:
        _require("Chromium (chromium, chromium-browser or google-chrome)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _require("Playwright (pip install playwright)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, timeout=60_000
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def screenshots(site) -> Path:
    """The screenshot folder, emptied once per run (the gallery shows this run only)."""
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    return SCREENSHOTS


@pytest.fixture(scope="session")
def visits(site, base_url, browser, screenshots) -> Iterator[Callable[[Page], Visit]]:
    """Visit a page once (on first use); afterwards write the gallery and weight report."""
    WEIGHTS_REPORT.unlink(missing_ok=True)
    done: dict[str, Visit] = {}

    def visit(page: Page) -> Visit:
        if page.name not in done:
            done[page.name] = visit_page(browser, base_url, page)
        return done[page.name]

    yield visit

    visited = [page for page in PAGES if page.name in done]
    write_gallery(visited)
    shared = _shared_files(site, base_url, visit(PAGES[0]))
    weights = [page_weight(site, done[p.name], base_url, shared) for p in visited]
    mathjax = {
        file
        for v in done.values()
        for url in v.weighed
        if (file := local_file(site, base_url, url)) and "_static/mathjax/" in file.as_posix()
    }
    WEIGHTS_REPORT.write_text(
        weights_report(
            weights,
            [((site / path).stat().st_size, path) for path in shared],
            sum(file.stat().st_size for file in mathjax),
        ),
        encoding="utf-8",
    )


def _shared_files(site, base_url: str, root: Visit) -> set[str]:
    """Files the root page loads that every page loads too: theme files, fonts, the
    search index (the root page's own HTML and figures excluded; MathJax is counted apart).
    """
    shared = set()
    for url in root.weighed:
        file = local_file(site, base_url, url)
        if file is not None:
            path = file.relative_to(site).as_posix()
            if path.startswith("_static/mathjax/") or path.startswith(("_images/", "_sources/")):
                continue
            if path != f"{root.page.name}.html":
                shared.add(path)
    return shared


def _visit(visits, page: Page) -> Visit:
    visit = visits(page)
    if visit.error:
        pytest.fail(f"{page.name}: the visit did not complete: {visit.error}")
    return visit


def _open(
    browser, base_url: str, path: str, wait: bool = True, **options: Any
) -> tuple[Any, Any, Visit]:
    """A fresh context and page at ``path``, watched like a page visit."""
    visit = Visit(page=Page(path, path, None), url=base_url + path)
    context = new_context(browser, base_url, visit, **options)
    page = context.new_page()
    watch_page(page, base_url, visit)
    page.goto(visit.url, wait_until="load" if wait else "commit")
    if wait:
        settle(page)
    return context, page, visit


def _url(base_url: str, page: Page) -> str:
    return f"{base_url}{page.name}.html"


def _no_fragment(url: str) -> str:
    return urllib.parse.urldefrag(url)[0]


# --- every page ------------------------------------------------------------------------------


@per_page
def test_page_has_no_console_errors(visits, page):
    visit = _visit(visits, page)
    assert not visit.console_errors, f"{page.name}: console errors: {visit.console_errors}"


@per_page
def test_page_loads_only_from_the_local_server(visits, page):
    visit = _visit(visits, page)
    assert not visit.external_requests, (
        f"{page.name} requested other hosts (aborted): {visit.external_requests}"
    )
    assert not visit.failed_requests, f"{page.name}: failed requests: {visit.failed_requests}"


@per_page
def test_page_renders_its_math(visits, page):
    visit = _visit(visits, page)
    facts = visit.facts
    if source_has_math(page.source):
        assert facts["mathjax"] > 0, f"{page.name}: the source has math but MathJax rendered none"
    assert not facts["rawMath"], f"{page.name}: raw TeX visible in the text: {facts['rawMath']}"
    assert not facts["mathErrors"], f"{page.name}: MathJax errors: {facts['mathErrors']}"


@per_page
def test_page_images_load_and_have_alt_text(visits, page):
    visit = _visit(visits, page)
    broken = [img["src"] for img in visit.facts["images"] if img["naturalWidth"] == 0]
    assert not broken, f"{page.name}: images that did not load: {broken}"
    no_alt = [img["src"] for img in visit.facts["images"] if img["inArticle"] and not img["alt"]]
    assert not no_alt, f"{page.name}: images without alt text: {no_alt}"


@per_page
def test_page_images_stay_legible_in_dark_mode(visits, page):
    visit = _visit(visits, page)
    for image in visit.dark_images:
        assert image["opacity"] >= 0.5, f"{page.name}: {image['src']} is faded out in dark mode"
        assert not re.search(r"(opacity|brightness)\(0(\.[0-3])?\)", image["filter"]), (
            f"{page.name}: {image['src']} is filtered to near invisibility: {image['filter']}"
        )
        backdrop = relative_luminance(parse_css_color(image["backdrop"])[:3])
        assert not (image["transparent"] and backdrop < 0.4), (
            f"{page.name}: {image['src']} has a transparent background and shows the dark "
            f"page ({image['backdrop']}) through it; give the figure a white background"
        )


@per_page
def test_page_sidebar_and_next_previous_links_work(visits, base_url, page):
    visit = _visit(visits, page)
    facts = visit.facts
    in_sidebar = {_no_fragment(href) for href in facts["sidebar"]}
    missing = [p.name for p in PAGES if _url(base_url, p) not in in_sidebar]
    assert not missing, f"{page.name}: pages missing from the sidebar: {missing}"
    broken = [
        href
        for href in in_sidebar
        if href.startswith(base_url) and local_file(SITE, base_url, href) is None
    ]
    assert not broken, f"{page.name}: sidebar links to missing pages: {broken}"

    index = PAGES.index(page)
    expected_previous = [_url(base_url, PAGES[index - 1])] if index > 0 else []
    expected_next = [_url(base_url, PAGES[index + 1])] if index + 1 < len(PAGES) else []
    assert [_no_fragment(u) for u in facts["previous"]] == expected_previous, (
        f"{page.name}: the previous link is {facts['previous']}, expected {expected_previous}"
    )
    assert [_no_fragment(u) for u in facts["next"]] == expected_next, (
        f"{page.name}: the next link is {facts['next']}, expected {expected_next}"
    )
    if expected_previous or expected_next:
        assert visit.clicked is not None, f"{page.name}: no next/previous link was clicked"
        target, reached = visit.clicked
        assert _no_fragment(reached) == _no_fragment(target), (
            f"{page.name}: clicking next/previous led to {reached}, not {target}"
        )


@per_page
def test_page_fits_a_phone_screen(visits, page):
    visit = _visit(visits, page)
    mobile = visit.mobile
    assert mobile["scrollWidth"] <= MOBILE["width"] + PHONE_SLACK_PX, (
        f"{page.name} scrolls sideways on a {MOBILE['width']} px wide phone: the body is "
        f"{mobile['scrollWidth']} px wide; too-wide elements: {mobile['wide']}"
    )


@per_page
def test_page_weight_is_under_the_limit(visits, site, base_url, page):
    visit = _visit(visits, page)
    shared = _shared_files(site, base_url, _visit(visits, PAGES[0]))
    weight = page_weight(site, visit, base_url, shared)
    assert weight.own <= MAX_PAGE_BYTES, (
        f"{page.name} transfers {weight.own / 1e6:.1f} MB of its own "
        f"(limit {MAX_PAGE_BYTES / 1e6:.0f} MB); largest: {weight.largest}"
    )


# --- chapter pages (notebooks) ------------------------------------------------------------------


def _notebook_path(config, page: Page) -> str:
    assert page.source is not None
    path = page.source.relative_to(ROOT).as_posix()
    book = config["repository"].get("path_to_book", "").strip("/")
    return f"{book}/{path}" if book else path


@per_chapter
def test_chapter_has_colab_and_binder_links_to_its_reader_notebook(visits, config, page):
    visit = _visit(visits, page)
    repo = urllib.parse.urlsplit(config["repository"]["url"]).path.strip("/")
    branch = config["sphinx"]["config"]["reader_notebooks_branch"]  # CI publishes it
    notebook = _notebook_path(config, page)
    colab = f"https://colab.research.google.com/github/{repo}/blob/{branch}/{notebook}"
    binder = f"https://mybinder.org/v2/gh/{repo}/{branch}?urlpath=tree/{notebook}"
    assert colab in visit.facts["colab"], f"{page.name}: Colab link {visit.facts['colab']}"
    assert binder in visit.facts["binder"], f"{page.name}: Binder link {visit.facts['binder']}"


@per_chapter
def test_chapter_download_menu_offers_the_reader_notebook(visits, page):
    visit = _visit(visits, page)
    notebooks = [h for h in visit.facts["downloads"] if h.endswith(f"/notebooks/{page.name}.ipynb")]
    assert notebooks, (
        f"{page.name}: no reader notebook in the download menu: {visit.facts['downloads']}"
    )
    assert visit.download_visible, f"{page.name}: the .ipynb item did not show in the menu"
    assert visit.download_status == 200, (
        f"{page.name}: downloading the notebook returned {visit.download_status}"
    )


@per_chapter
def test_chapter_solutions_are_collapsed_until_clicked(visits, page):
    visit = _visit(visits, page)
    assert visit.solutions_before, f"{page.name} has no exercise solutions"
    shown = [i for i, s in enumerate(visit.solutions_before) if s["open"]]
    assert not shown, f"{page.name}: solutions shown before any click: {shown}"
    assert visit.solution_after and visit.solution_after["open"], (
        f"{page.name}: clicking the first solution did not open it"
    )


@per_chapter
def test_chapter_shows_its_figures(visits, page):
    visit = _visit(visits, page)
    names = declared_figures(page.source)
    assert names, f"{page.name} declares no figure (the chapter standard asks for one)"
    shown = visit.facts["figures"]
    missing = [name for name in names if not shown.get(name)]
    assert not missing, (
        f"{page.name}: figures declared in the notebook but not shown on the page: {missing} "
        "(a figure drawn with plt.show() vanishes when MPLBACKEND=Agg is set for the kernel)"
    )


@per_chapter
def test_chapter_svg_outputs_render(visits, page):
    visit = _visit(visits, page)
    svgs = [svg for svg in visit.facts["outputSvgs"] if not svg["hidden"]]
    if not svgs:
        pytest.skip(f"{page.name} has no SVG outputs")
    empty = [i for i, svg in enumerate(svgs) if svg["width"] <= 0 or svg["height"] <= 0]
    assert not empty, f"{page.name}: SVG outputs with an empty box: {empty}"


# The notebook with the most kinds of markup: admonitions, exercises, solutions, citations.
READER_NOTEBOOK = "chapters/03-transformer/03-gpt-from-scratch"
# What must never be visible in a reader notebook: MyST roles, directives and labels.
RAW_MYST = re.compile(
    r"\{(glue|exercise|solution|term|ref|numref|doc|cite|admonition|note)[:}]|```\{|:::"
    r"|^\([\w:.-]+\)=$",
    re.MULTILINE,
)
READER_JS = """() => {
  const cells = [...document.querySelectorAll('.jp-MarkdownCell .jp-RenderedMarkdown')];
  return {
    cells: cells.length,
    text: cells.map(c => c.innerText).join('\\n'),
    details: [...document.querySelectorAll('.jp-RenderedMarkdown details')].map(d => ({
      open: d.open, summary: (d.querySelector('summary') || {}).textContent || '',
      shown: [...d.children].filter(c => c.tagName !== 'SUMMARY')
        .some(c => c.checkVisibility()),
    })),
    headings: [...document.querySelectorAll('.jp-RenderedMarkdown h3')].map(h => h.innerText),
    quotes: document.querySelectorAll('.jp-RenderedMarkdown blockquote').length,
  };
}"""


def test_reader_notebook_shows_no_raw_markup_in_jupyter(browser, site, tmp_path):
    """A reader notebook as Jupyter renders it (nbconvert's JupyterLab template): no MyST
    left in the visible text, exercises as headings, solutions collapsed until clicked."""
    import nbformat
    from nbconvert import HTMLExporter

    folder = site.parent / "notebooks"
    source = folder / f"{READER_NOTEBOOK}.ipynb"
    if not source.is_file():  # a partial build: any chapter will do
        source = next(iter(sorted(folder.rglob("*.ipynb"))), source)
    if not source.is_file():
        pytest.fail(f"no reader notebooks in {folder}: the build writes them")
    notebook = nbformat.read(source, as_version=4)
    html, _ = HTMLExporter(template_name="lab").from_notebook_node(notebook)
    (tmp_path / "reader.html").write_text(html, encoding="utf-8")
    with serve(tmp_path) as base:
        context, page, _ = _open(browser, base, "reader.html", wait=False)
        try:
            page.wait_for_load_state("load")
            facts = page.evaluate(READER_JS)
            summary = page.locator(".jp-RenderedMarkdown details > summary").first
            summary.click()
            opened = page.evaluate("() => document.querySelector('details').open")
        finally:
            context.close()
    assert facts["cells"] > 10
    raw = sorted({m.group(0) for m in RAW_MYST.finditer(facts["text"])})
    assert not raw, f"raw MyST markup visible in the reader notebook: {raw}"
    assert "†" in facts["text"], "no glued number from the book's run"
    assert any(h.startswith("Exercise ") for h in facts["headings"]), facts["headings"]
    solutions = [d for d in facts["details"] if d["summary"].startswith("Solution to Exercise")]
    assert solutions, "no collapsed solutions"
    shown = [d["summary"] for d in facts["details"] if d["open"] or d["shown"]]
    assert not shown, f"<details> open before any click: {shown}"
    assert opened, "clicking a solution's summary did not open it"
    assert facts["quotes"] >= 1, "the learning objectives are not a block quote"


# --- the site as a whole -----------------------------------------------------------------------


def test_site_declares_a_favicon(visits):
    """Without one, every browser asks the server root for /favicon.ico and logs a 404."""
    visit = _visit(visits, PAGES[0])
    assert visit.facts["favicon"], (
        "no <link rel='icon'>: set html.favicon in _config.yml (browsers then stop "
        "requesting /favicon.ico, a 404 in every reader's console)"
    )


def test_index_redirects_to_the_first_page(browser, base_url):
    context, page, _ = _open(browser, base_url, "index.html", wait=False)
    try:
        page.wait_for_url(_url(base_url, PAGES[0]))
    finally:
        context.close()


def test_sidebar_link_click_navigates(browser, base_url):
    if len(PAGES) < 2:
        pytest.skip("the book has one page")
    context, page, visit = _open(browser, base_url, f"{PAGES[0].name}.html")
    try:
        target = PAGES[-1]
        page.locator("nav.bd-docs-nav a", has_text=target.title).first.click()
        page.wait_for_url(_url(base_url, target))
        assert target.title.split()[0] in page.title()
    finally:
        context.close()
    assert not visit.external_requests


def _search_case() -> tuple[str, list[Page]]:
    """What to search for and the pages the results must include."""
    attention = [p for p in PAGES if re.search(r"\battention\b", p.title, re.IGNORECASE)]
    if attention:
        return "attention", attention
    return "Colab", [p for p in PAGES if p.name.endswith("how-to-use")]


def test_search_finds_the_right_pages(browser, base_url):
    term, expected = _search_case()
    if not expected:
        pytest.skip("neither an attention chapter nor the how-to-use page is in the book")
    context, page, visit = _open(browser, base_url, f"{PAGES[0].name}.html")
    try:
        page.locator(".search-button__button:visible").first.click()
        box = page.locator("#pst-search-dialog input[name='q']")
        box.wait_for(state="visible")
        box.fill(term)
        box.press("Enter")
        page.wait_for_url(re.compile(r"/search\.html\?q="))
        page.wait_for_function(  # "Search finished, found N pages…" or "…did not match…"
            "() => /finished|did not match/i.test("
            "(document.querySelector('#search-results .search-summary') || {}).textContent)"
        )
        results = page.eval_on_selector_all(
            "#search-results ul.search a", "links => links.map(a => a.href)"
        )
    finally:
        context.close()
    found = {_no_fragment(href).split("?")[0] for href in results}
    for target in expected:
        assert _url(base_url, target) in found, (
            f"searching {term!r} did not find {target.name}; results: {sorted(found)}"
        )
    assert not visit.console_errors, f"console errors while searching: {visit.console_errors}"
    assert not visit.external_requests, f"other hosts requested: {visit.external_requests}"


def _page_with_figure(visits) -> Page:
    """A chapter with a figure if there is one, else the first page with an image."""
    for candidates in (CHAPTERS, PAGES):
        for page in candidates:
            if _visit(visits, page).dark_images:
                return page
    return PAGES[0]


COLOURS_JS = """(selectors) => {
  const backdrop = el => {
    for (let e = el; e; e = e.parentElement) {
      const c = getComputedStyle(e).backgroundColor;
      if (c && c !== 'transparent' && !/rgba\\(.*,\\s*0\\)$/.test(c)) return c;
    }
    return 'rgb(255, 255, 255)';
  };
  const out = {};
  for (const [name, selector] of Object.entries(selectors)) {
    const el = [...document.querySelectorAll(selector)].find(e => {
      const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; });
    if (el) out[name] = {color: getComputedStyle(el).color, background: backdrop(el)};
  }
  return out;
}"""
TEXT_SELECTORS = {
    "body text": "article p",
    "link": "article p a.reference",
    "heading": "article h1",
    "sidebar link": "nav.bd-docs-nav a",
    "caption": "article figcaption p, article .caption-text",
}


def test_dark_mode_is_legible(browser, base_url, visits, screenshots):
    target = _page_with_figure(visits)
    context, page, visit = _open(browser, base_url, f"{target.name}.html")
    try:
        switch = page.locator(".article-header-buttons .theme-switch-button").first
        mode = "() => document.documentElement.dataset.mode"
        for _ in range(3):  # the button cycles through the modes (auto, light, dark)
            if page.evaluate("() => document.documentElement.dataset.theme") == "dark":
                break
            before = page.evaluate(mode)
            switch.click()
            page.wait_for_function(f"() => ({mode})() !== {before!r}")
        assert page.evaluate("() => document.documentElement.dataset.theme") == "dark", (
            "the theme button never switched the page to dark"
        )
        assert page.locator("html[data-theme='dark']").count() == 1
        colours = page.evaluate(COLOURS_JS, TEXT_SELECTORS)
        assert "body text" in colours, f"{target.name}: no paragraph text found"
        ratios = {name: contrast_ratio(c["color"], c["background"]) for name, c in colours.items()}
        low = {
            name: f"{c['color']} on {c['background']}: {ratios[name]:.2f}"
            for name, c in colours.items()
            if ratios[name] < MIN_TEXT_CONTRAST
        }
        assert not low, f"{target.name}: low-contrast text in dark mode {low}"
        page_bg = relative_luminance(parse_css_color(colours["body text"]["background"])[:3])
        assert page_bg < 0.2, f"{target.name}: the dark theme's background is not dark"

        figures = page.locator("article img, article .cell_output svg")
        checked = 0
        for index in range(figures.count()):
            if checked >= 3:
                break
            figure = figures.nth(index)
            # Images load lazily: bring each into view and let it load before measuring.
            figure.scroll_into_view_if_needed(timeout=5_000)
            figure.evaluate(
                "e => e.tagName !== 'IMG' || e.complete || "
                "new Promise(r => { e.onload = e.onerror = r; setTimeout(r, 3000); })"
            )
            box = figure.bounding_box()
            if not box or box["width"] < 40 or box["height"] < 40:
                continue  # hidden, or an icon
            if figure.evaluate("e => !!e.closest('button') || !!e.parentElement.closest('svg')"):
                continue
            figure.scroll_into_view_if_needed()
            contrast = rendered_contrast(figure.screenshot(animations="disabled"))
            source = figure.get_attribute("src") or "an SVG output"
            assert contrast >= MIN_FIGURE_CONTRAST, (
                f"{target.name}: {source} is hard to see in dark mode (contrast {contrast:.1f})"
            )
            checked += 1
        (screenshots / "dark").mkdir(exist_ok=True)
        page.screenshot(path=screenshots / "dark" / f"{target.slug}.png")
    finally:
        context.close()
    assert not visit.console_errors, f"console errors after switching: {visit.console_errors}"
    if target.is_chapter:
        assert checked, f"{target.name}: no figure was checked in dark mode"


SIDEBAR_SHOWN_JS = """() => [...document.querySelectorAll('nav.bd-docs-nav a')].some(a => {
  const r = a.getBoundingClientRect();
  return r.width > 0 && r.height > 0 && r.left >= 0 && r.right <= window.innerWidth
    && r.top < window.innerHeight && r.bottom > 0 && a.checkVisibility({visibilityProperty: true});
})"""


def test_mobile_sidebar_hides_behind_a_toggle(browser, base_url, screenshots):
    context, page, visit = _open(
        browser,
        base_url,
        f"{PAGES[0].name}.html",
        viewport=MOBILE,
        is_mobile=True,
        has_touch=True,
    )
    try:
        assert not page.evaluate(SIDEBAR_SHOWN_JS), "the primary sidebar shows on a phone"
        toggle = page.locator("button.primary-toggle:visible").first
        toggle.wait_for(state="visible")
        toggle.click()
        shown = True
        try:
            page.wait_for_function(SIDEBAR_SHOWN_JS, timeout=TIMEOUT_MS // 4)
        except Exception:
            shown = False
        assert shown, (
            "on a phone, clicking the visible sidebar toggle did not show the navigation "
            "(with sphinx-book-theme 1.3 and pydata-sphinx-theme 0.17 the themes' scripts "
            "bind the first .primary-toggle in the page, a hidden one)"
        )
        (screenshots / "mobile").mkdir(exist_ok=True)
        page.screenshot(path=screenshots / "mobile" / "sidebar-open.png")
        if len(PAGES) > 1:
            target = PAGES[1]
            page.locator("nav.bd-docs-nav a:visible", has_text=target.title).first.click()
            page.wait_for_url(_url(base_url, target))
    finally:
        context.close()
    assert not visit.console_errors and not visit.external_requests
