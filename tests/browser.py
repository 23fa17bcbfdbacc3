"""Helpers for tests/test_browser.py: serve the built site, drive the system Chromium.

One visit per page (:func:`visit_page`) collects every fact the per-page tests check, so
each page is loaded once however many tests look at it. Nothing here talks to any host
but the local server: requests elsewhere are aborted and recorded.
"""

from __future__ import annotations

import contextlib
import functools
import html
import http.server
import io
import json
import re
import shutil
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bs4 import BeautifulSoup
from conftest import ROOT, source_of, toc_files

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
DESKTOP = {"width": 1280, "height": 900}
MOBILE = {"width": 390, "height": 844}
TIMEOUT_MS = 20_000  # the longest any single wait may take
# A full-page screenshot of a very long page (the API reference is over a megabyte of HTML)
# takes longer than any other single step, on a busy 2-core machine most of all.
SCREENSHOT_TIMEOUT_MS = 90_000
# Chromium cannot capture a page taller than its largest texture (the API reference, and
# long chapters on a phone, are), and capturing tall pages is the slowest step of a visit:
# screenshots stop at this height, enough for a person to review a page's layout.
MAX_SCREENSHOT_HEIGHT = 16_384
MAX_PAGE_BYTES = 3_000_000  # a page's own bytes (theme files and MathJax excluded)
SCREENSHOTS = ROOT / "_build" / "screenshots"
WEIGHTS_REPORT = ROOT / "_build" / "page-weights.txt"


def find_chromium() -> str | None:
    """The system Chromium (or Chrome): Playwright's own browser download is not used."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


# --- the local server --------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the browser closing a connection early (a redirect, a new page) is normal


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on 127.0.0.1 (a free port); yield its base URL, ending in /."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# --- the pages of the book -----------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """A page of the book: ``name`` is its path in the site without ``.html``."""

    name: str
    title: str
    source: Path | None
    front: bool = False  # the root page or a page of chapters/00-front

    @property
    def is_chapter(self) -> bool:
        return self.source is not None and self.source.suffix == ".ipynb"

    @property
    def slug(self) -> str:
        return self.name.replace("/", "--")


def _page(name: str, title: str, root: str) -> Page:
    try:
        source: Path | None = source_of(name)
    except FileNotFoundError:
        source = None
    front = name == root or (source is not None and "00-front" in source.parts)
    return Page(name, title, source, front)


def root_page(site: Path) -> str:
    """The page index.html redirects to (the book's root), without ``.html``."""
    index = site / "index.html"
    if index.is_file():
        found = re.search(r"url=([^\"'>\s]+)\.html", index.read_text(encoding="utf-8"))
        if found:
            return found.group(1)
    return toc_files()[0]


def book_pages(site: Path) -> list[Page]:
    """The pages of the built book, in reading order: the root page and its sidebar.

    The sidebar is the table of contents the site was built with, so this follows the
    build (e.g. a reduced one) rather than assuming _toc.yml; toc entries the sidebar
    lacks but that have a page are added at the end. Without a site: the toc entries.
    """
    if not (site / "index.html").is_file():
        return [_page(name, name, toc_files()[0]) for name in toc_files()]
    root = root_page(site)
    soup = BeautifulSoup((site / f"{root}.html").read_text(encoding="utf-8"), "html.parser")
    titles: dict[str, str] = {}
    for anchor in soup.select("nav.bd-docs-nav a[href]"):
        parts = urllib.parse.urlsplit(anchor["href"])
        if parts.scheme or parts.netloc:
            continue
        if not parts.path:
            name = root
        elif parts.path.endswith(".html"):
            target = urllib.parse.urljoin(f"/{root}.html", urllib.parse.unquote(parts.path))
            name = target.lstrip("/").removesuffix(".html")
        else:
            continue
        titles.setdefault(name, " ".join(anchor.get_text().split()))
    if root not in titles:
        heading = soup.select_one("article h1") or soup.select_one("title")
        titles[root] = " ".join(heading.get_text().split()).rstrip("#").strip() if heading else root
    names = [root, *(name for name in titles if name != root)]
    names += [n for n in toc_files() if n not in titles and (site / f"{n}.html").is_file()]
    return [_page(name, titles.get(name, name), root) for name in names]


MATH_IN_SOURCE = re.compile(
    r"\$\$|(?<![\\$])\$(?=\S)[^$\n]+(?<=\S)\$|\\begin\{|\\\[|\\\(|^```\{math\}|\{math\}`",
    re.MULTILINE,
)


def declared_figures(source: Path | None) -> list[str]:
    """The names of the figures a notebook declares in its cells' ``mystnb`` metadata."""
    if source is None or source.suffix != ".ipynb":
        return []
    cells = json.loads(source.read_text(encoding="utf-8"))["cells"]
    figures = [c.get("metadata", {}).get("mystnb", {}).get("figure", {}) for c in cells]
    return [f["name"] for f in figures if isinstance(f, dict) and f.get("name")]


def source_has_math(source: Path | None) -> bool:
    """Whether the page's markdown (not its code) contains TeX math."""
    if source is None:
        return False
    text = source.read_text(encoding="utf-8")
    if source.suffix == ".ipynb":
        cells = json.loads(text)["cells"]
        text = "\n".join(
            "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in cells
            if c["cell_type"] == "markdown"
        )
    text = re.sub(r"^(```+|~~~+).*?^\1", "", text, flags=re.MULTILINE | re.DOTALL)  # code
    text = re.sub(r"`[^`\n]*`", "", text)  # inline code (math roles are matched above)
    return bool(MATH_IN_SOURCE.search(text))


# --- colours -----------------------------------------------------------------------------


def parse_css_color(value: str) -> tuple[float, float, float, float]:
    """``rgb(...)``/``rgba(...)`` as computed by the browser → (r, g, b, alpha), 0–255."""
    numbers = [float(x) for x in re.findall(r"[\d.]+", value)]
    if not value.startswith("rgb") or len(numbers) < 3:
        raise ValueError(f"not a computed rgb() colour: {value!r}")
    return numbers[0], numbers[1], numbers[2], numbers[3] if len(numbers) > 3 else 1.0


def relative_luminance(rgb: tuple[float, float, float]) -> float:
    """WCAG 2 relative luminance of an sRGB colour with channels 0–255."""

    def channel(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(foreground: str, background: str) -> float:
    """WCAG contrast of a text colour over an opaque background (CSS colour strings)."""
    *fg, alpha = parse_css_color(foreground)
    bg = parse_css_color(background)[:3]
    blended = tuple(alpha * f + (1 - alpha) * b for f, b in zip(fg, bg, strict=True))
    lighter, darker = sorted((relative_luminance(blended), relative_luminance(bg)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def rendered_contrast(png: bytes, tail: float = 0.005) -> float:
    """Contrast between the lightest and darkest pixels of a screenshot (ignoring the
    ``tail`` fraction at either end): low when the content vanishes into its background."""
    from PIL import Image

    histogram = Image.open(io.BytesIO(png)).convert("L").histogram()
    total = sum(histogram)

    def level(fraction: float) -> int:
        seen = 0
        for value, count in enumerate(histogram):
            seen += count
            if seen > fraction * total:
                return value
        return 255

    dark, light = (relative_luminance((v, v, v)) for v in (level(tail), level(1 - tail)))
    return (light + 0.05) / (dark + 0.05)


# --- one visit per page ------------------------------------------------------------------

# Wait (at most `ms`) for lazy images, MathJax's first typeset and web fonts.
SETTLE_JS = """async (ms) => {
  const timeout = new Promise(resolve => setTimeout(resolve, ms));
  const images = [...document.images];
  images.forEach(img => { if (img.loading === 'lazy') img.loading = 'eager'; });
  const loaded = Promise.all(images.map(img => img.complete ? null : new Promise(resolve => {
    img.addEventListener('load', resolve, {once: true});
    img.addEventListener('error', resolve, {once: true});
  })));
  const mathjax = window.MathJax && MathJax.startup && MathJax.startup.promise;
  await Promise.race([Promise.all([loaded, mathjax || null]), timeout]);
  await Promise.race([document.fonts.ready, timeout]);
}"""

FACTS_JS = r"""() => {
  const article = document.querySelector('main article, .bd-article') || document.body;
  const skip = 'pre, code, script, style, mjx-container, .cell_output, .highlight, kbd';
  const texts = [];
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const parent = walker.currentNode.parentElement;
    if (parent && !parent.closest(skip)) texts.push(walker.currentNode.textContent);
  }
  const text = texts.join(' ');
  const rawMath = text.match(/\$\$|\\\[|\\\(|\\begin\{|\$[^$\n]*\\[A-Za-z]+[^$\n]*\$/g) || [];
  const hrefs = sel => [...document.querySelectorAll(sel)].map(a => a.href);
  return {
    title: document.title,
    mathjax: document.querySelectorAll('mjx-container').length,
    mathErrors: [...document.querySelectorAll('mjx-merror')].map(e => e.textContent.trim()),
    rawMath: rawMath.slice(0, 5),
    images: [...document.images].map(img => ({
      src: img.currentSrc || img.src, alt: (img.getAttribute('alt') || '').trim(),
      naturalWidth: img.naturalWidth, inArticle: article.contains(img),
    })),
    sidebar: hrefs('nav.bd-docs-nav a[href]'),
    previous: hrefs('.prev-next-area a.left-prev'),
    next: hrefs('.prev-next-area a.right-next'),
    colab: hrefs('a[href^="https://colab.research.google.com/"]'),
    binder: hrefs('a[href^="https://mybinder.org/"]'),
    downloads: hrefs('.dropdown-download-buttons a[href]'),
    favicon: !!document.querySelector('link[rel~="icon"]'),
    figures: Object.fromEntries([...article.querySelectorAll('figure[id], div.figure[id]')].map(f =>
      [f.id, [...f.querySelectorAll('img')].some(i => i.naturalWidth > 0) ||
             [...f.querySelectorAll('svg')].some(g => g.getBoundingClientRect().width > 0)])),
    outputSvgs: [...article.querySelectorAll('.cell_output svg')]
        .filter(svg => !svg.closest('button') && !svg.parentElement.closest('svg')).map(svg => {
      const r = svg.getBoundingClientRect();
      return {width: r.width, height: r.height, hidden: !!svg.closest('details:not([open])')};
    }),
  };
}"""

# How wide the page is at a phone's width, and which elements stick out (those not
# inside a scrolling or clipping box, which do not widen the page).
MOBILE_JS = """() => {
  const width = window.innerWidth;
  const clipped = el => {
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      if (['auto', 'scroll', 'hidden', 'clip'].includes(getComputedStyle(a).overflowX)) return true;
    }
    return false;
  };
  const wide = [...document.querySelectorAll('body *')].filter(el => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.right > width + 2 && getComputedStyle(el).position !== 'fixed'
      && !clipped(el);
  }).slice(0, 5).map(el => {
    const cls = typeof el.className === 'string' ? el.className.trim() : '';
    return el.tagName.toLowerCase() + (cls ? '.' + cls.split(/\\s+/).join('.') : '') +
      ' "' + (el.textContent || '').trim().slice(0, 40) + '"';
  });
  return {scrollWidth: document.scrollingElement.scrollWidth, width, wide};
}"""

# The solutions: sphinx-exercise's `:class: dropdown` (a toggle from sphinx-togglebutton,
# or a <details>); each entry says whether its content is shown.
SOLUTIONS_JS = """() => [...document.querySelectorAll('.solution')].map(el => {
  if (el.tagName === 'DETAILS') return {kind: 'details', open: el.open};
  const body = [...el.children].filter(c => !c.classList.contains('admonition-title'));
  const shown = body.some(c => { const r = c.getBoundingClientRect();
    return r.height > 0 && getComputedStyle(c).visibility !== 'hidden'; });
  return {kind: 'toggle', open: shown && !el.classList.contains('toggle-hidden')};
})"""


# Content images in the current theme: does the image have a transparent background
# (corners), and how light is what shows through behind it?
IMAGE_BACKDROP_JS = """() => {
  const backdrop = el => {
    for (let e = el; e; e = e.parentElement) {
      const c = getComputedStyle(e).backgroundColor;
      if (c && c !== 'transparent' && !/rgba\\(.*,\\s*0\\)$/.test(c)) return c;
    }
    return getComputedStyle(document.documentElement).backgroundColor;
  };
  const article = document.querySelector('main article, .bd-article') || document.body;
  return [...article.querySelectorAll('img')].filter(img => img.naturalWidth > 0).map(img => {
    let transparent = null;
    try {
      const w = Math.min(img.naturalWidth, 400);
      const h = Math.max(1, Math.round(w * img.naturalHeight / img.naturalWidth));
      const canvas = Object.assign(document.createElement('canvas'), {width: w, height: h});
      const ctx = canvas.getContext('2d');
      ctx.drawImage(img, 0, 0, w, h);
      const corners = [[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]];
      transparent = corners.every(([x, y]) => ctx.getImageData(x, y, 1, 1).data[3] < 16);
    } catch (e) { transparent = null; }
    const style = getComputedStyle(img);
    return {src: img.currentSrc || img.src, transparent, backdrop: backdrop(img),
            opacity: parseFloat(style.opacity), filter: style.filter};
  });
}"""


@dataclass
class Visit:
    """What one visit of a page found (see :func:`visit_page`)."""

    page: Page
    url: str
    console_errors: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)  # every URL loaded
    weighed: list[str] = field(default_factory=list)  # those the page loaded by itself
    facts: dict[str, Any] = field(default_factory=dict)
    mobile: dict[str, Any] = field(default_factory=dict)
    download_status: int | None = None
    download_visible: bool | None = None
    dark_images: list[dict[str, Any]] = field(default_factory=list)
    solutions_before: list[dict[str, Any]] = field(default_factory=list)
    solution_after: dict[str, Any] | None = None
    clicked: tuple[str, str] | None = None  # (expected URL, URL reached) after a prev/next click
    error: str | None = None


def _is_local(url: str, base: str) -> bool:
    return url.startswith(base) or url.split(":", 1)[0] in {"data", "blob", "about"}


def guard_context(context: Any, base: str, visit: Visit | None = None) -> list[str]:
    """Abort every request to another host; return the list they are recorded in."""
    external = visit.external_requests if visit else []

    def handle(route: Any) -> None:
        if route.request.url not in external:
            external.append(route.request.url)
        route.abort()

    context.route(lambda url: not _is_local(url, base), handle)
    return external


def new_context(browser: Any, base: str, visit: Visit | None = None, **options: Any) -> Any:
    """A fresh browser context whose pages may only talk to ``base``."""
    context = browser.new_context(
        viewport=options.pop("viewport", DESKTOP), service_workers="block", **options
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    guard_context(context, base, visit)
    return context


def watch_page(page: Any, base: str, visit: Visit) -> None:
    """Record console errors, uncaught exceptions and failed or external requests."""

    def on_console(message: Any) -> None:
        where = (message.location or {}).get("url", "")
        # The browser asks for /favicon.ico by itself, when it likes: checked apart
        # (test_site_declares_a_favicon) so that this check stays deterministic.
        if message.type == "error" and not where.endswith("/favicon.ico"):
            visit.console_errors.append(f"{message.text} [{where}]" if where else message.text)

    def on_request(request: Any) -> None:
        if not _is_local(request.url, base) and request.url not in visit.external_requests:
            visit.external_requests.append(request.url)

    def on_response(response: Any) -> None:
        if response.status >= 400 and response.url.startswith(base):
            visit.failed_requests.append(f"{response.status} {response.url}")

    def on_failed(request: Any) -> None:
        if request.url.startswith(base):
            visit.failed_requests.append(f"{request.failure} {request.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: visit.console_errors.append(f"uncaught: {error}"))
    page.on("request", on_request)
    page.on("response", on_response)
    page.on("requestfailed", on_failed)
    page.on("requestfinished", lambda r: visit.loaded.append(r.url))


def settle(page: Any) -> None:
    page.evaluate(SETTLE_JS, TIMEOUT_MS // 2)


RELAYOUT_JS = """async (ms) => {
  const frame = () => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  await frame();
  const running = document.getAnimations().map(a => a.finished.catch(() => null));
  await Promise.race([Promise.all(running), new Promise(r => setTimeout(r, ms))]);
  await frame();
}"""


def relayout(page: Any) -> None:
    """Wait until the page has laid out again and its CSS transitions have ended (after a
    viewport change: the theme slides its sidebars in and out)."""
    page.evaluate(RELAYOUT_JS, 3_000)


def _screenshot(page: Any, path: Path, width: int) -> None:
    """A full-page screenshot, cut at ``MAX_SCREENSHOT_HEIGHT`` pixels for very tall pages."""
    height = page.evaluate("() => document.documentElement.scrollHeight")
    clip = {"x": 0, "y": 0, "width": width, "height": min(height, MAX_SCREENSHOT_HEIGHT)}
    page.screenshot(path=path, full_page=True, clip=clip, timeout=SCREENSHOT_TIMEOUT_MS)


def visit_page(browser: Any, base: str, page_info: Page) -> Visit:
    """Load one page and collect everything the per-page tests check.

    In order: load and settle (images, MathJax, fonts); collect facts; desktop full-page
    screenshot; at a phone's width, measure horizontal overflow (and take a screenshot of
    front-matter pages); in the dark theme, look at what shows through each image; on
    chapter pages, open the download menu and the first solution; last, click the next (or
    previous) link and note where it leads.
    """
    visit = Visit(page=page_info, url=f"{base}{page_info.name}.html")
    context = new_context(browser, base, visit)
    try:
        page = context.new_page()
        watch_page(page, base, visit)
        page.goto(visit.url, wait_until="load")
        settle(page)
        visit.facts = page.evaluate(FACTS_JS)
        visit.weighed = list(visit.loaded)  # before any click loads more
        (SCREENSHOTS / "desktop").mkdir(parents=True, exist_ok=True)
        _screenshot(page, SCREENSHOTS / "desktop" / f"{page_info.slug}.png", DESKTOP["width"])

        page.set_viewport_size(MOBILE)
        relayout(page)
        visit.mobile = page.evaluate(MOBILE_JS)
        if page_info.front:
            (SCREENSHOTS / "mobile").mkdir(parents=True, exist_ok=True)
            _screenshot(page, SCREENSHOTS / "mobile" / f"{page_info.slug}.png", MOBILE["width"])
        page.set_viewport_size(DESKTOP)
        relayout(page)
        page.evaluate("() => { document.documentElement.dataset.theme = 'dark'; }")
        visit.dark_images = page.evaluate(IMAGE_BACKDROP_JS)
        page.evaluate("() => { document.documentElement.dataset.theme = 'light'; }")

        if page_info.is_chapter:
            _exercise_chapter(context, page, visit)

        target = visit.facts["next"] or visit.facts["previous"]
        if target:
            selector = "a.right-next" if visit.facts["next"] else "a.left-prev"
            page.click(f".prev-next-area {selector}")
            page.wait_for_url(target[0], wait_until="commit")
            visit.clicked = (target[0], page.url)
    except Exception as error:  # reported by every test of this page
        visit.error = f"{type(error).__name__}: {error}"
    finally:
        context.close()
    return visit


def _exercise_chapter(context: Any, page: Any, visit: Visit) -> None:
    """Open the download menu and the first solution of a chapter page."""
    toggle = page.locator(".dropdown-download-buttons button.dropdown-toggle").first
    if toggle.count():
        toggle.click()
        item = page.locator(".dropdown-download-buttons a[href$='.ipynb']").first
        try:
            item.wait_for(state="visible", timeout=5_000)
            visit.download_visible = True
        except Exception:
            visit.download_visible = False
        href = item.get_attribute("href") if item.count() else None
        if href:
            url = urllib.parse.urljoin(page.url, href)
            visit.download_status = context.request.get(url, timeout=TIMEOUT_MS).status
        page.keyboard.press("Escape")

    visit.solutions_before = page.evaluate(SOLUTIONS_JS)
    if visit.solutions_before:
        # Click where a reader would: the title's text ("Solution to Exercise 1 (...)"),
        # which is mostly the link to the exercise.
        first = page.locator(".solution").first
        if visit.solutions_before[0]["kind"] == "details":
            first.locator("summary").first.click()
        else:
            title = first.locator(".admonition-title").first
            title.scroll_into_view_if_needed()
            link, box = title.locator("a").first, title.bounding_box()
            spot = link.bounding_box() if link.count() else None
            if box and spot:  # the middle of the link's text, as a point on the title
                x = spot["x"] - box["x"] + spot["width"] / 2
                y = spot["y"] - box["y"] + spot["height"] / 2
                title.click(position={"x": x, "y": y})
            else:
                title.click()
        with contextlib.suppress(Exception):  # the check below says what happened
            page.wait_for_function(f"() => ({SOLUTIONS_JS})()[0].open", timeout=5_000)
        visit.solution_after = page.evaluate(SOLUTIONS_JS)[0]


# --- page weights ------------------------------------------------------------------------


def local_file(site: Path, base: str, url: str) -> Path | None:
    """The file in the site a local URL was served from."""
    if not url.startswith(base):
        return None
    path = urllib.parse.unquote(urllib.parse.urlsplit(url).path).lstrip("/")
    target = site / path
    if target.is_dir():
        target = target / "index.html"
    return target if target.is_file() else None


THEME_ASSETS = re.compile(
    r"^_static/(mathjax|scripts|styles|vendor|images|locales)/|^_static/[^/]+\.(css|js)$"
    r"|\.(woff2?|ttf|otf|eot)$"
)


def is_shared(path: str, shared: set[str]) -> bool:
    """Files that are not the page's own: what the root page loads (theme, fonts, the
    search index), MathJax, and the theme's assets that only some pages load (icon fonts,
    the launch buttons' logos)."""
    return path in shared or bool(THEME_ASSETS.search(path))


@dataclass
class Weight:
    page: str
    own: int
    total: int
    requests: int
    largest: list[tuple[int, str]]


def page_weight(site: Path, visit: Visit, base: str, shared: set[str]) -> Weight:
    """Bytes a page transfers (its files' sizes: the server sends them uncompressed)."""
    own, total, assets = 0, 0, []
    for url in dict.fromkeys(visit.weighed):
        file = local_file(site, base, url)
        if file is None or file.name.startswith("favicon"):  # the browser's own request
            continue
        size = file.stat().st_size
        path = file.relative_to(site).as_posix()
        total += size
        if not is_shared(path, shared):
            own += size
            assets.append((size, path))
    assets.sort(reverse=True)
    return Weight(visit.page.name, own, total, len(visit.weighed), assets[:3])


def weights_report(weights: list[Weight], shared: list[tuple[int, str]], mathjax: int) -> str:
    """The page-weight table printed at the end of the test run."""

    def kb(n: int) -> str:
        return f"{n / 1024:,.0f} KB"

    width = max([len("page"), *(len(w.page) for w in weights)])
    shared_total = sum(size for size, _ in shared)
    lines = [
        f"Page weights: the bytes each page transfers, without the files every page shares "
        f"({kb(shared_total)}: theme, fonts, search index) and MathJax (up to {kb(mathjax)}); "
        f"limit {MAX_PAGE_BYTES / 1e6:.0f} MB a page.",
        f"{'page':{width}}  {'own':>9}  {'with shared':>11}  largest own assets",
    ]
    for w in weights:
        largest = ", ".join(f"{Path(p).name} {kb(s)}" for s, p in w.largest)
        flag = "  OVER LIMIT" if w.own > MAX_PAGE_BYTES else ""
        lines.append(f"{w.page:{width}}  {kb(w.own):>9}  {kb(w.total):>11}  {largest}{flag}")
    everything = sorted({a for w in weights for a in w.largest}, reverse=True)[:10]
    if everything:
        lines.append("Largest assets of the pages:")
        lines += [f"  {kb(s):>9}  {p}" for s, p in everything]
    lines.append("Largest shared files:")
    lines += [f"  {kb(s):>9}  {p}" for s, p in sorted(shared, reverse=True)[:5]]
    return "\n".join(lines) + "\n"


# --- the screenshot gallery ----------------------------------------------------------------


def write_gallery(pages: list[Page]) -> Path:
    """``_build/screenshots/index.html``: every screenshot taken, for a human to review."""

    def shot(file: Path, label: str, kind: str) -> str:
        src = html.escape(file.relative_to(SCREENSHOTS).as_posix())
        return (
            f'<a href="{src}"><img src="{src}" alt="{html.escape(label)}" class="{kind}" '
            f'loading="lazy"></a>'
        )

    sections, shown = [], set()
    for page in pages:
        shots = []
        for kind in ("desktop", "mobile"):
            file = SCREENSHOTS / kind / f"{page.slug}.png"
            if file.is_file():
                shots.append(shot(file, f"{kind} screenshot of {page.title}", kind))
                shown.add(file)
        if shots:
            sections.append(
                f"<section><h2>{html.escape(page.title)} <small>{html.escape(page.name)}</small>"
                f"</h2>{''.join(shots)}</section>"
            )
    others = [f for f in sorted(SCREENSHOTS.rglob("*.png")) if f not in shown]
    if others:
        sections.append(
            "<section><h2>Dark mode and the mobile sidebar</h2>"
            + "".join(shot(f, f.stem, f.parent.name) for f in others)
            + "</section>"
        )
    index = SCREENSHOTS / "index.html"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    index.write_text(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<title>LLMs from Zero: screenshots</title><style>"
        "body{font-family:sans-serif;margin:2rem;background:#f4f4f4}"
        "section{background:#fff;padding:1rem;margin-bottom:1rem;border-radius:6px}"
        "h2 small{color:#666;font-weight:normal;font-size:.7em}"
        "img{vertical-align:top;border:1px solid #ccc;margin:0 1rem 1rem 0;"
        "max-height:600px;object-fit:cover;object-position:top}"
        "img.desktop,img.dark{width:480px}img.mobile{width:195px}</style></head><body>"
        "<h1>Screenshots of the built site</h1><p>Desktop 1280×900 (full page) and, for the "
        "front matter, a 390×844 phone (full page). Written by tests/test_browser.py; click a "
        f"picture for full size.</p>{''.join(sections)}</body></html>\n",
        encoding="utf-8",
    )
    return index
