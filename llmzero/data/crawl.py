"""A small, deliberately dirty web crawl built from offline text (Part IV).

Real pretraining data starts as a web crawl: billions of HTML pages, most of them
boilerplate, spam, duplicates or the wrong language. The chapter *Data at scale* needs a
crawl it can clean in seconds and whose dirt is *known*, so that every stage of the
cleaning pipeline can be scored. :func:`make_crawl` builds one from the course's offline
corpora (NLTK's Brown, State of the Union, inaugural addresses, movie reviews, web text,
the UDHR and CoNLL-2002 in other languages, tiny Shakespeare, Tang poems) and pollutes it
the way the web is polluted:

- every page is wrapped in a site template: ``<head>``, scripts, navigation, cookie
  banners, share buttons, footers, HTML entities, sometimes decomposed Unicode;
- spam and low-quality pages (keyword stuffing, link farms, repeated lines, lorem ipsum,
  product tables, hashtag walls, error pages);
- exact duplicates (mirrors of a page, some with different whitespace or Unicode form)
  and near duplicates (copies with a few words changed, a line added or one dropped);
- e-mail addresses, phone numbers and IP addresses planted in some pages;
- pages in 17 languages, and English pages with a paragraph in another language.

Each :class:`CrawlDocument` carries the page (``id``, ``url``, ``html``) and, separately, its
:class:`GroundTruth`. A cleaning pipeline must read only the page; the ground truth is
there to score it afterwards::

    from llmzero.data.crawl import make_crawl

    crawl = make_crawl(seed=0)
    page = crawl[0]
    page.url, page.html[:60]      # what a crawler fetched
    page.truth.language           # what the evaluation knows
"""

from __future__ import annotations

import html as html_module
import ipaddress
import json
import random
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import lru_cache

from llmzero.data import assets
from llmzero.data.langid import udhr_split

__all__ = ["SITES", "CrawlDocument", "GroundTruth", "SiteTemplate", "make_crawl", "render_page"]


@dataclass(frozen=True)
class GroundTruth:
    """What the crawl's builder knows about a page, for scoring a pipeline (never as input).

    Attributes:
        source: the corpus the text came from (``"brown"``, ``"spam"``, ...).
        category: the kind of site (``"news"``, ``"government"``, ``"reviews"``, ...).
        language: ISO 639-1 code of the page's main text.
        is_spam: the page was generated as spam or low-quality filler.
        duplicate_of: id of the page this one copies, or ``None``.
        duplicate_kind: ``"exact"`` (the same page, maybe re-encoded), ``"near"`` (edited
            copy) or ``None``.
        pii: the e-mail addresses, phone numbers and IP addresses planted in the page.
    """

    source: str
    category: str
    language: str
    is_spam: bool = False
    duplicate_of: str | None = None
    duplicate_kind: str | None = None
    pii: tuple[str, ...] = ()


@dataclass(frozen=True)
class CrawlDocument:
    """One fetched page: its ``id``, ``url`` and raw ``html``, plus its ``truth``."""

    id: str
    url: str
    html: str
    truth: GroundTruth


@dataclass(frozen=True)
class SiteTemplate:
    """The furniture a web site wraps around every article it serves."""

    domain: str
    category: str
    nav: tuple[str, ...]
    footer: str
    banner: str | None = None  # a cookie or JavaScript notice inside the page body
    share: str | None = None  # a share-buttons line after the article


SITES: tuple[SiteTemplate, ...] = (
    SiteTemplate(
        "www.dailyherald-news.com",
        "news",
        ("Home", "World", "Politics", "Sports", "Weather"),
        "© 2023 Daily Herald Media. All rights reserved.",
        "This site uses cookies to give you the best experience. By continuing you accept "
        "our cookie policy.",
        "Share this story: Facebook | Twitter | Email",
    ),
    SiteTemplate(
        "archive.citizensgazette.org",
        "news",
        ("Front page", "Archive", "Letters", "Subscribe"),
        "Citizens Gazette Archive | Privacy Policy | Terms of Use",
        None,
        "Print this article",
    ),
    SiteTemplate(
        "speeches.govrecords.net",
        "government",
        ("Presidents", "Speeches", "Documents", "Search"),
        "Public records project. Contact | Privacy Policy",
        "Please enable JavaScript to use the search and the speech player.",
        None,
    ),
    SiteTemplate(
        "www.filmfan-reviews.com",
        "reviews",
        ("Reviews", "New releases", "Top 100", "Forum", "Log in"),
        "FilmFan © 2001-2024 — Advertise with us",
        "We use cookies and similar technologies to personalise ads.",
        "Was this review helpful? Yes | No",
    ),
    SiteTemplate(
        "forum.webchatter.net",
        "forum",
        ("Forums", "Members", "Search", "Help", "Register"),
        "Powered by BoardSoft. Terms of Use",
        "Our forum uses cookies. Read the cookie policy.",
        "Reply | Quote | Report",
    ),
    SiteTemplate(
        "www.classic-texts.org",
        "books",
        ("Library", "Authors", "Plays", "Poetry", "About"),
        "Texts are in the public domain. Site design © Classic Texts",
        None,
        "Download as PDF | EPUB | TXT",
    ),
    SiteTemplate(
        "poems.tangdynasty.cn",
        "poetry",
        ("首页", "唐诗", "宋词", "作者"),
        "© 唐诗网 版权所有",
        None,
        None,
    ),
    SiteTemplate(
        "www.noticias-y-mas.eu",
        "international",
        ("Inicio", "Noticias", "Deportes", "Contacto"),
        "© Noticias y más | Aviso legal",
        "Utilizamos cookies propias y de terceros.",
        None,
    ),
    SiteTemplate(
        "deals.bestprice-outlet.biz",
        "spam",
        ("HOT DEALS", "CHEAP", "BUY NOW", "CASINO"),
        "bestprice-outlet.biz",
        None,
        None,
    ),
)
"""The site templates of the crawl, one or more per category of page."""

_SITES_BY_CATEGORY: dict[str, list[SiteTemplate]] = {}
for _site in SITES:
    _SITES_BY_CATEGORY.setdefault(_site.category, []).append(_site)


def render_page(
    title: str,
    paragraphs: list[str],
    site: SiteTemplate,
    rng: random.Random,
    url_path: str,
    verse: bool = False,
) -> str:
    """Wrap ``paragraphs`` in ``site``'s HTML, with the scripts, styles and page furniture
    of a real page. With ``verse=True`` each paragraph's lines are joined by ``<br>``."""
    escape = html_module.escape
    nav = " | ".join(
        f'<a href="/{item.lower().replace(" ", "-")}">{escape(item)}</a>' for item in site.nav
    )
    body = []
    for paragraph in paragraphs:
        text = escape(paragraph, quote=False)
        if "'" in text and rng.random() < 0.5:
            text = text.replace("'", "&#8217;")
        if verse:
            text = "<br>\n".join(text.split("\n"))
        body.append(f"<p>{text}</p>")
    if site.banner and rng.random() < 0.7:
        body.insert(rng.randrange(len(body) + 1), f'<div class="notice">{site.banner}</div>')
    if rng.random() < 0.15:
        body.insert(rng.randrange(len(body) + 1), '<div class="ad"><!-- ad slot 3 --></div>')
    share = f'\n<div class="share">{site.share}</div>' if site.share else ""
    article = "\n".join(body)
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n"
        f'<meta charset="utf-8">\n<title>{escape(title)} | {site.domain}</title>\n'
        "<style>body{font-family:Georgia,serif} .nav a{margin:0 4px}</style>\n"
        "<script>window.dataLayer=window.dataLayer||[];"
        f"dataLayer.push({{'page':'{url_path}'}});</script>\n"
        f'</head>\n<body>\n<header><nav class="nav">{nav}</nav></header>\n'
        f"<main>\n<h1>{escape(title)}</h1>\n{article}{share}\n</main>\n"
        f"<footer>{escape(site.footer)}</footer>\n"
        '<script src="/static/analytics.js"></script>\n</body>\n</html>\n'
    )


# --------------------------------------------------------------------------- source texts


@dataclass(frozen=True)
class _Article:
    source: str
    category: str
    language: str
    title: str
    paragraphs: tuple[str, ...]
    verse: bool = False
    is_spam: bool = False


_OPENING_QUOTES = re.compile(r"``\s*")
_CLOSING_QUOTES = re.compile(r"\s*''")
_SPACE_BEFORE = re.compile(r" ([.,;:!?%)\]}]|n't|'s|'re|'ve|'ll|'d|'m)(?=\s|$)")
_SPACE_AFTER = re.compile(r"([(\[{$]) ")


def _detokenize(tokens: list[str]) -> str:
    """Join word tokens back into running text (close enough for a web page)."""
    text = " ".join(tokens)
    text = _OPENING_QUOTES.sub('"', text)
    text = _CLOSING_QUOTES.sub('"', text)
    text = _SPACE_BEFORE.sub(r"\1", text)
    text = _SPACE_AFTER.sub(r"\1", text)
    return text.replace(" --", " —").replace("-- ", "— ")


def _chunks(items: list[str], max_chars: int) -> Iterator[list[str]]:
    """Group consecutive items into chunks of at most about ``max_chars`` characters."""
    chunk: list[str] = []
    size = 0
    for item in items:
        if chunk and size + len(item) > max_chars:
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += len(item)
    if chunk:
        yield chunk


def _brown(limit: int) -> list[_Article]:
    assets.nltk("brown")
    from nltk.corpus import brown

    articles = []
    for fileid in brown.fileids()[:: max(1, len(brown.fileids()) // limit)][:limit]:
        paragraphs = []
        for block in brown.raw(fileid).split("\n\n"):
            words = [token.rsplit("/", 1)[0] for token in block.split()]
            if words:
                paragraphs.append(_detokenize(words))
        title = " ".join(paragraphs[0].split()[:6]).rstrip(".,;:")
        articles.append(_Article("brown", "news", "en", title, tuple(paragraphs)))
    return articles


def _speeches(limit: int) -> list[_Article]:
    assets.nltk("state_union")
    assets.nltk("inaugural")
    from nltk.corpus import inaugural, state_union

    articles = []
    for corpus, name in ((state_union, "state_union"), (inaugural, "inaugural")):
        for fileid in corpus.fileids():
            lines = [" ".join(line.split()) for line in corpus.raw(fileid).splitlines()]
            paragraphs = [line for line in lines if line]
            title = fileid.removesuffix(".txt").replace("-", " ")
            for part, chunk in enumerate(_chunks(paragraphs, 5000)):
                heading = title if part == 0 else f"{title} (part {part + 1})"
                articles.append(_Article(name, "government", "en", heading, tuple(chunk)))
    return articles[:limit]


def _movie_reviews(limit: int) -> list[_Article]:
    assets.nltk("movie_reviews")
    from nltk.corpus import movie_reviews

    fileids = movie_reviews.fileids()
    articles = []
    for fileid in fileids[:: max(1, len(fileids) // limit)][:limit]:
        sentences = [_detokenize(line.split()) for line in movie_reviews.raw(fileid).splitlines()]
        sentences = [sentence for sentence in sentences if sentence]
        paragraphs = [" ".join(sentences[i : i + 5]) for i in range(0, len(sentences), 5)]
        title = "Review: " + " ".join(sentences[0].split()[:5])
        articles.append(_Article("movie_reviews", "reviews", "en", title, tuple(paragraphs)))
    return articles


def _webtext(limits: dict[str, int]) -> list[_Article]:
    assets.nltk("webtext")
    from nltk.corpus import webtext

    categories = {"firefox": "forum", "overheard": "forum", "singles": "forum", "wine": "reviews"}
    categories |= {"grail": "books", "pirates": "books"}
    articles = []
    for name, limit in limits.items():
        raw = webtext.raw(f"{name}.txt").replace("\r", "")
        if name == "overheard":
            units = [" \n".join(block.split("\n")) for block in raw.split("\n\n") if block.strip()]
        else:
            units = [line.strip() for line in raw.split("\n") if line.strip()]
        per_page = {"firefox": 1200, "singles": 1500, "wine": 2500}.get(name, 3500)
        for number, chunk in enumerate(list(_chunks(units, per_page))[:limit]):
            verse = name in {"overheard", "grail", "pirates"}
            paragraphs = tuple(chunk) if not verse else tuple(u.replace(" \n", "\n") for u in chunk)
            title = f"{name.title()} page {number + 1}"
            articles.append(
                _Article(f"webtext/{name}", categories[name], "en", title, paragraphs, verse)
            )
    return articles


def _shakespeare(limit: int) -> list[_Article]:
    text = assets.path("tinyshakespeare").read_text(encoding="utf-8")
    speeches = [block.strip() for block in text.split("\n\n") if block.strip()]
    articles = []
    for number, chunk in enumerate(list(_chunks(speeches, 3500))[:limit]):
        title = f"Shakespeare, selected scenes {number + 1}"
        articles.append(_Article("tinyshakespeare", "books", "en", title, tuple(chunk), True))
    return articles


def _tang(limit: int) -> list[_Article]:
    data = json.loads(assets.path("tang300").read_text(encoding="utf-8"))
    poems = [poem for group in data["content"] for poem in group["content"]]
    articles = []
    for start in range(0, min(len(poems), 8 * limit), 8):
        paragraphs = []
        for poem in poems[start : start + 8]:
            paragraphs.append(
                f"{poem['chapter']}（{poem['author']}）\n" + "\n".join(poem["paragraphs"])
            )
        title = f"唐詩三百首 {start // 8 + 1}"
        articles.append(_Article("tang300", "poetry", "zh", title, tuple(paragraphs), True))
    return articles


def _conll2002(limit: int) -> list[_Article]:
    assets.nltk("conll2002")
    from nltk.corpus import conll2002

    articles = []
    for fileid, language in (("esp.train", "es"), ("ned.train", "nl")):
        sentences = [_detokenize(list(sentence)) for sentence in conll2002.sents(fileid)[:3000]]
        sentences = [s for s in sentences if len(s.split()) > 3]
        for chunk in list(_chunks(sentences, 1500))[:limit]:
            paragraphs = [" ".join(chunk[i : i + 4]) for i in range(0, len(chunk), 4)]
            title = " ".join(chunk[0].split()[:6])
            articles.append(
                _Article("conll2002", "international", language, title, tuple(paragraphs))
            )
    return articles


def _udhr_pages() -> list[_Article]:
    _, heldout = udhr_split()
    articles = []
    for code, text in heldout.items():
        lines = text.split("\n")
        category = "poetry" if code == "zh" else "international"
        articles.append(_Article("udhr", category, code, lines[0], tuple(lines[1:])))
    return articles


# --------------------------------------------------------------------------- spam


_SPAM_WORDS = (
    "cheap", "best", "price", "buy", "now", "discount", "replica", "watches", "casino",
    "bonus", "free", "spins", "pills", "online", "deal", "sale", "outlet", "bitcoin",
)  # fmt: skip


def _spam(count: int, rng: random.Random) -> list[_Article]:
    """Generated spam and filler pages of eight kinds (none of it is real text)."""
    kinds = ["stuffing", "links", "repeat", "lorem", "table", "hashtags", "error", "script"]
    articles = []
    for number in range(count):
        kind = kinds[number % len(kinds)]
        words = rng.sample(_SPAM_WORDS, 6)
        if kind == "stuffing":
            phrase = " ".join(words[:3])
            filler = [f"{phrase} {rng.choice(_SPAM_WORDS)} {phrase}" for _ in range(40)]
            paragraphs = [" ".join(filler[i : i + 8]) + "!" for i in range(0, 40, 8)]
        elif kind == "links":
            paragraphs = [
                " | ".join(
                    f"{rng.choice(_SPAM_WORDS).title()} {rng.choice(_SPAM_WORDS)}" for _ in range(6)
                )
                for _ in range(12)
            ]
        elif kind == "repeat":
            line = f"Limited offer: {' '.join(words[:4])} — click here today!"
            paragraphs = [line] * rng.randint(15, 30)
        elif kind == "lorem":
            paragraphs = [
                "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
                "incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis "
                "nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat."
            ] * 3
        elif kind == "table":
            paragraphs = [
                f"SKU {rng.randint(10000, 99999)} | {rng.choice(_SPAM_WORDS)} | "
                f"${rng.randint(5, 500)}.{rng.randint(0, 99):02d} | qty {rng.randint(1, 50)}"
                for _ in range(30)
            ]
        elif kind == "hashtags":
            paragraphs = [
                " ".join(f"#{rng.choice(_SPAM_WORDS)}{rng.choice(_SPAM_WORDS)}" for _ in range(12))
                for _ in range(6)
            ]
        elif kind == "error":
            paragraphs = ["404 Not Found.", "The page you requested could not be found."]
        else:
            paragraphs = [
                "function init(){var s=document.createElement('script');s.src='/t.js';}",
                "if(window.location.hash){track({page:1,ref:document.referrer});}",
            ] * 5
        title = f"{words[0].title()} {words[1]} {words[2]}"
        articles.append(_Article("spam", "spam", "en", title, tuple(paragraphs), is_spam=True))
    return articles


# --------------------------------------------------------------------------- PII


_FIRST = ("anna", "james", "li", "maria", "omar", "sofia", "david", "yuki", "peter", "chloe")
_LAST = ("smith", "garcia", "chen", "novak", "okafor", "muller", "rossi", "kim", "brown", "silva")
_MAIL_HOSTS = ("mailbox.net", "inbox-mail.com", "university.edu", "company.co.uk", "post.de")


def _email(rng: random.Random) -> str:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    user = rng.choice(
        (f"{first}.{last}", f"{first[0]}{last}{rng.randint(1, 99)}", f"{first}_{last}")
    )
    return f"{user}@{rng.choice(_MAIL_HOSTS)}"


def _phone(rng: random.Random) -> str:
    area, middle, last = rng.randint(201, 989), rng.randint(200, 999), rng.randint(0, 9999)
    formats = (
        f"({area}) {middle}-{last:04d}",
        f"{area}-{middle}-{last:04d}",
        f"+1 {area} {middle} {last:04d}",
        f"+44 20 7946 {rng.randint(0, 999):03d}{rng.randint(0, 9)}",
        f"+49 30 {rng.randint(1000000, 9999999)}",
    )
    return rng.choice(formats)


def _public_ip(rng: random.Random) -> str:
    while True:
        address = ipaddress.IPv4Address(rng.randint(1 << 24, (224 << 24) - 1))
        if address.is_global:
            return str(address)


def _pii_paragraph(rng: random.Random) -> tuple[str, tuple[str, ...]]:
    email, phone, ip = _email(rng), _phone(rng), _public_ip(rng)
    choice = rng.randrange(4)
    if choice == 0:
        return f"Questions about this page? Write to {email} or call {phone}.", (email, phone)
    if choice == 1:
        return f"Posted by {email.split('@')[0]} ({email}) from {ip} on a Tuesday.", (email, ip)
    if choice == 2:
        return f"To book a visit, phone {phone} between nine and five.", (phone,)
    return f"Comment logged from address {ip}; contact the moderator at {email}.", (ip, email)


# --------------------------------------------------------------------------- duplicates


_EDITS = {"the": "a", "a": "the", "and": "&", "is": "was", "was": "is", "very": "really"}


def _near_copy(
    paragraphs: tuple[str, ...], rng: random.Random, protected: tuple[str, ...] = ()
) -> tuple[str, ...]:
    """An edited copy: one word in 400, 150, 60, 40 or 25 changed (chosen at random, so the
    copies' Jaccard similarity to the original spreads from about 0.65 to 0.98), plus an
    added or a dropped line.

    Only words made of letters are edited, and paragraphs holding a ``protected`` string
    (planted PII) are never dropped, so the copy's ground truth stays true.
    """
    new = list(paragraphs)
    n_words = sum(len(p.split()) for p in new)
    words_per_edit = rng.choice((400, 150, 60, 40, 25))
    for _ in range(max(1, n_words // words_per_edit)):
        index = rng.randrange(len(new))
        words = new[index].split(" ")
        position = rng.randrange(len(words))
        word = words[position]
        if not word.isalpha():
            continue
        words[position] = _EDITS.get(word.lower(), word[::-1] if len(word) > 3 else word + "s")
        new[index] = " ".join(words)
    change = rng.randrange(3)
    if change == 0:
        new.append("Updated: this article was corrected after publication.")
    elif change == 1 and len(new) > 8:
        index = rng.randrange(len(new))
        if not any(item in new[index] for item in protected):
            del new[index]
    return tuple(new)


def _reencode(page: str, rng: random.Random) -> str:
    """The same page as another server sends it: decomposed Unicode or reflowed spaces."""
    if rng.random() < 0.5:
        return unicodedata.normalize("NFD", page)
    return page.replace(" ", "  ").replace("\n", "\n\t")


# --------------------------------------------------------------------------- the crawl


def _slug(title: str, number: int) -> str:
    words = re.findall(r"[a-z0-9]+", unicodedata.normalize("NFKD", title).lower())[:6]
    return "-".join(words or ["page"]) + f"-{number}"


def _with_foreign_paragraph(article: _Article, rng: random.Random) -> _Article:
    _, heldout = udhr_split()
    code = rng.choice([c for c in heldout if c not in {"en", "zh"}])
    lines = heldout[code].split("\n")
    start = rng.randrange(max(1, len(lines) - 2))
    foreign = " ".join(lines[start : start + 2])
    paragraphs = list(article.paragraphs)
    paragraphs.insert(rng.randrange(1, len(paragraphs) + 1), foreign)
    return replace(article, paragraphs=tuple(paragraphs))


@lru_cache(maxsize=4)
def _make_crawl(seed: int) -> tuple[CrawlDocument, ...]:
    rng = random.Random(seed)
    articles = (
        _brown(150)
        + _speeches(300)
        + _movie_reviews(300)
        + _webtext(
            {"firefox": 40, "overheard": 80, "singles": 4, "wine": 20, "grail": 6, "pirates": 8}
        )
        + _shakespeare(160)
        + _tang(30)
        + _conll2002(40)
        + _udhr_pages()
    )
    articles += _spam(len(articles) // 12, rng)
    rng.shuffle(articles)

    pages: list[tuple[str, str, GroundTruth]] = []  # (url, html, truth) before ids are given
    for number, article in enumerate(articles):
        pii: tuple[str, ...] = ()
        if article.language == "en" and not article.is_spam:
            if rng.random() < 0.05:
                article = _with_foreign_paragraph(article, rng)
            if rng.random() < 0.1:
                line, pii = _pii_paragraph(rng)
                paragraphs = list(article.paragraphs)
                paragraphs.insert(rng.randrange(len(paragraphs) + 1), line)
                article = replace(article, paragraphs=tuple(paragraphs))
        site = rng.choice(_SITES_BY_CATEGORY[article.category])
        path = f"/{article.category}/{_slug(article.title, number)}.html"
        page = render_page(article.title, list(article.paragraphs), site, rng, path, article.verse)
        truth = GroundTruth(
            article.source, article.category, article.language, article.is_spam, pii=pii
        )
        pages.append((f"https://{site.domain}{path}", page, truth))

        if article.is_spam:
            continue
        roll = rng.random()
        if roll < 0.06:  # an exact mirror, sometimes re-encoded
            copy = page if rng.random() < 0.5 else _reencode(page, rng)
            url = f"https://mirror{rng.randint(1, 9)}.{site.domain}{path}"
            pages.append(
                (url, copy, replace(truth, duplicate_of=str(number), duplicate_kind="exact"))
            )
        elif roll < 0.12:  # a near duplicate, sometimes on another site of the same kind
            copy_site = rng.choice(_SITES_BY_CATEGORY[article.category])
            copy_path = f"/{article.category}/{_slug(article.title, number)}-copy.html"
            paragraphs = list(_near_copy(article.paragraphs, rng, pii))
            copy = render_page(article.title, paragraphs, copy_site, rng, copy_path, article.verse)
            url = f"https://{copy_site.domain}{copy_path}"
            pages.append(
                (url, copy, replace(truth, duplicate_of=str(number), duplicate_kind="near"))
            )

    # Original pages are numbered by article; copies point at that number. Shuffle the
    # copies in among the originals (a crawler meets them in any order), then give ids.
    original_index = {}
    numbered = []
    article_number = -1
    for url, page, truth in pages:
        if truth.duplicate_of is None:
            article_number += 1
            numbered.append((article_number, url, page, truth))
        else:
            numbered.append((-1, url, page, truth))
    order = list(range(len(numbered)))
    rng.shuffle(order)
    ids = {position: f"doc-{rank:05d}" for rank, position in enumerate(order)}
    for position, (number, *_rest) in enumerate(numbered):
        if number >= 0:
            original_index[number] = ids[position]
    documents = []
    for position in order:
        _number, url, page, truth = numbered[position]
        if truth.duplicate_of is not None:
            truth = replace(truth, duplicate_of=original_index[int(truth.duplicate_of)])
        documents.append(CrawlDocument(ids[position], url, page, truth))
    return tuple(documents)


def make_crawl(seed: int = 0) -> list[CrawlDocument]:
    """Build the chapter's polluted crawl: about 1,500 pages, the same for the same seed.

    The pages come in a shuffled order with ids ``doc-00000``, ``doc-00001``, ... in that
    order; planted copies point at their original through ``truth.duplicate_of``. The
    result is cached per seed (the first call reads the corpora: a few seconds).

    Args:
        seed: seeds every random choice (which pages are copied, edited, polluted).

    Returns:
        A new list of :class:`CrawlDocument` (the documents themselves are immutable).
    """
    if not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}.")
    return list(_make_crawl(seed))
