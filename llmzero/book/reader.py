"""Reader notebooks: the chapters as Jupyter, Colab and Binder show them.

The chapter notebooks are written in MyST Markdown: roles and directives such as
``{glue:text}``, ``{exercise}``, ``{ref}`` and ``{cite}`` that only the book's Sphinx build
understands. Opened in Jupyter, Colab or Binder they show that markup raw. This module turns
the executed chapters into *reader notebooks*, which the build writes to ``_build/notebooks``
(and into the site under ``notebooks/``; CI publishes them on the ``notebooks`` branch, which
the site's Colab, Binder and download buttons open). A reader notebook has

- the chapter's code cells, unchanged and in the same order, without outputs; cells tagged
  ``remove-cell`` (the ``glue`` bookkeeping that feeds numbers to the site) are left out;
- Markdown that Jupyter renders natively: labels ``(name)=`` dropped (an HTML anchor stays
  where the notebook links to it); admonitions as block quotes with a bold title, dropdown
  ones as ``<details>``; exercises as numbered headings; solutions collapsed in
  ``<details>``; ``{ref}``, ``{numref}`` and ``{doc}`` as links to the page on the published
  site, or within the notebook when the target is in it; ``{term}`` linked to the glossary;
  ``{cite}`` as "(Author, year)" linked to the bibliography; ``{glue:text}`` and ``{glue}``
  as the value from the book's own run, marked †;
- after each numbered figure's code cell, a Markdown cell with the figure's number and
  caption (``{glue:figure}`` points there).

Exercise and figure numbers and every link target come from the Sphinx build itself:
:mod:`llmzero.book.sphinxext` writes them to ``_build/reader-index.json``. The glued values
come from myst-nb's record of the build's execution (``jupyter_execute/<page>.glue.json``) and
are formatted with the same function, and the same format specifications, as on the site.
Syntax this module cannot convert is an error, so nothing is silently lost.
"""

from __future__ import annotations

import codecs
import contextlib
import copy
import html
import json
import re
import shutil
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "GLUE_MARK",
    "INDEX_FILE",
    "BookIndex",
    "ReaderError",
    "Target",
    "convert_markdown",
    "format_glue",
    "load_index",
    "parse_bibliography",
    "reader_notebook",
    "site_url",
    "write_reader_notebooks",
]

GLUE_MARK = "†"
INDEX_FILE = "reader-index.json"  # written next to the HTML folder by llmzero.book.sphinxext
NOTEBOOKS_DIR = "notebooks"  # _build/notebooks, and <site>/notebooks

_ADMONITIONS = {
    "admonition": "",
    "attention": "Attention",
    "caution": "Caution",
    "danger": "Danger",
    "error": "Error",
    "hint": "Hint",
    "important": "Important",
    "note": "Note",
    "seealso": "See also",
    "tip": "Tip",
    "warning": "Warning",
}
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,}|:{3,})(?P<info>.*)$")
_DIRECTIVE = re.compile(r"^\{(?P<name>[A-Za-z][\w:.+-]*)\}\s*(?P<arg>.*)$")
_LABEL = re.compile(r"^\s{0,3}\((?P<label>[^()\s]+)\)=\s*$")
_HEADING = re.compile(r"^(?P<hashes>#{1,6})(?P<rest>(?:\s.*)?)$")
_OPTION = re.compile(r"^:(?P<key>[\w-]+):(?:\s+(?P<value>.*))?$")
_INLINE = re.compile(
    r"\{(?P<role>[A-Za-z][\w:+-]*)\}(?P<rticks>`+)(?P<content>.+?)(?P=rticks)"
    r"|(?P<ticks>`+).+?(?P=ticks)",
    re.DOTALL,
)
_EXPLICIT = re.compile(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>$", re.DOTALL)
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")


class ReaderError(ValueError):
    """The Markdown uses something a reader notebook cannot show; the message says what."""


@dataclass(frozen=True)
class Target:
    """Where a label, glossary term or citation points in the built book."""

    doc: str  # the page, e.g. "chapters/03-transformer/03-gpt-from-scratch"
    anchor: str = ""  # the HTML id in that page ("" for the page itself)
    title: str = ""  # section title, figure caption, or term
    figtype: str = ""  # "figure", "exercise", "table", "code-block" if numbered
    number: str = ""  # the number the build gave it, e.g. "2" or "3.1"


@dataclass
class BookIndex:
    """What the Sphinx build knows about the book, as :mod:`llmzero.book.sphinxext` saved it."""

    site_url: str  # the published site, ending in "/"
    book_title: str = ""
    titles: dict[str, str] = field(default_factory=dict)  # page -> title
    labels: dict[str, Target] = field(default_factory=dict)
    terms: dict[str, Target] = field(default_factory=dict)  # lower-cased term -> glossary entry
    citations: dict[str, Target] = field(default_factory=dict)  # BibTeX key -> bibliography entry
    exercises: dict[str, list[str]] = field(default_factory=dict)  # page -> labels in order
    numfig_format: dict[str, str] = field(
        default_factory=lambda: {"figure": "Fig. %s", "exercise": "Exercise %s"}
    )
    references: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (authors, year)
    glossary_doc: str = "chapters/99-appendix/glossary"
    bibliography_doc: str = "chapters/99-appendix/bibliography"

    def url(self, target: Target) -> str:
        """The address of ``target`` on the published site."""
        page = f"{self.site_url}{target.doc}.html"
        return f"{page}#{target.anchor}" if target.anchor else page

    def numbered(self, target: Target) -> str:
        """ "Fig. 2", "Exercise 3.1": the build's number in the site's format."""
        template = self.numfig_format.get(target.figtype, "%s")
        return template % target.number if target.number else target.title


def site_url(config: dict[str, Any]) -> str:
    """The published site's address: ``html.baseurl`` if set, else GitHub Pages of the repository.

    ``repository.url`` in ``_config.yml`` is the one place the repository is named;
    ``https://github.com/OWNER/REPO`` is published at ``https://OWNER.github.io/REPO/``.
    """
    base = str((config.get("html") or {}).get("baseurl") or "").strip()
    if base:
        return base.rstrip("/") + "/"
    url = str((config.get("repository") or {}).get("url") or "")
    parts = urllib.parse.urlsplit(url)
    path = [p for p in parts.path.split("/") if p]
    if parts.netloc.lower() != "github.com" or len(path) < 2:
        raise ReaderError(
            f"cannot derive the site's address from repository.url {url!r} in _config.yml: "
            "set html.baseurl to the published site"
        )
    owner, repo = path[0], path[1].removesuffix(".git")
    return f"https://{owner.lower()}.github.io/{repo}/"


def _latex_to_text(text: str) -> str:
    """``Lebr{\\'o}n`` -> ``Lebrón``: decode LaTeX accents and drop protective braces."""
    import latexcodec  # noqa: F401  (registers the "ulatex" codec; a pybtex dependency)

    with contextlib.suppress(ValueError):
        text = codecs.decode(text, "ulatex")
    return text.replace("{", "").replace("}", "").strip()


def parse_bibliography(path: Path) -> dict[str, tuple[str, str]]:
    """Each BibTeX entry's author text and year, as the site's author-year citations show them.

    One author: "Vaswani"; two: "Kingma and Ba"; three or more: "Brown et al.".
    """
    from pybtex.database import parse_file

    references = {}
    for key, entry in parse_file(str(path)).entries.items():
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [
            _latex_to_text(" ".join([*person.prelast_names, *person.last_names]))
            for person in people
        ]
        names = [name for name in names if name and name.lower() != "others"]
        others = any(str(person) == "others" for person in people)
        if not names:
            authors = _latex_to_text(entry.fields.get("organization", "") or key)
        elif len(names) == 1 and not others:
            authors = names[0]
        elif len(names) == 2 and not others:
            authors = f"{names[0]} and {names[1]}"
        else:
            authors = f"{names[0]} et al."
        references[key] = (authors, _latex_to_text(entry.fields.get("year", "n.d.")))
    return references


def load_index(path: Path, *, site: str, bibliography: Path | None = None) -> BookIndex:
    """Read the index :mod:`llmzero.book.sphinxext` wrote (``reader-index.json``)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))

    def targets(entries: dict[str, dict[str, str]]) -> dict[str, Target]:
        return {name: Target(**value) for name, value in entries.items()}

    index = BookIndex(
        site_url=site,
        book_title=data.get("book_title", ""),
        titles=data.get("titles", {}),
        labels=targets(data.get("labels", {})),
        terms=targets(data.get("terms", {})),
        citations=targets(data.get("citations", {})),
        exercises=data.get("exercises", {}),
        references=parse_bibliography(bibliography) if bibliography else {},
    )
    index.numfig_format.update(data.get("numfig_format", {}))
    for name in ("glossary_doc", "bibliography_doc"):
        if data.get(name):
            setattr(index, name, data[name])
    return index


def format_glue(bundle: dict[str, Any], spec: str | None) -> str:
    """A glued value as the site shows it.

    ``spec`` is the format after the name in ``{glue:text}`name:.2f```; ``None`` stands for
    the plain ``{glue}`name``` role, which shows the value's ``text/plain`` form as it is.
    Formatting uses myst-nb's own function, so the notebook and the site agree.
    """
    data = bundle.get("data", bundle)
    text = data.get("text/plain")
    if isinstance(text, list):
        text = "".join(text)
    if text is None:
        kinds = ", ".join(sorted(data)) or "nothing"
        raise ReaderError(f"the glued value has no text form (it has {kinds})")
    if spec is None:
        return text
    from myst_nb.core.variables import format_plain_text

    return format_plain_text(text, spec or "s")


def _split_explicit(content: str) -> tuple[str | None, str]:
    match = _EXPLICIT.match(content.strip())
    if match:
        return match.group("text").strip() or None, match.group("target").strip()
    return None, content.strip()


def _plain(markdown: str) -> str:
    """Markdown for a ``<summary>``: links reduced to their text, HTML characters escaped."""
    return html.escape(_LINK.sub(r"\1", markdown), quote=False)


def _quote(lines: list[str]) -> list[str]:
    return [f"> {line}" if line.strip() else ">" for line in lines]


def _details(summary: str, body: list[str]) -> list[str]:
    return ["<details>", f"<summary>{summary}</summary>", "", *body, "", "</details>"]


def _trim(lines: list[str]) -> list[str]:
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end]


@dataclass
class _Exercise:
    label: str
    heading: str  # "Exercise 3.1"
    title: str  # Markdown, may be ""


class _Converter:
    """Converts one notebook's Markdown cells; keeps what they share (labels, exercises)."""

    def __init__(
        self,
        doc: str,
        index: BookIndex,
        glue: dict[str, Any] | None,
        local_labels: Iterable[str] = (),
        linked_labels: Iterable[str] = (),
        figure_cells: dict[str, str] | None = None,
    ) -> None:
        self.doc = doc
        self.index = index
        self.glue = glue
        self.local_labels = set(local_labels)  # labels whose target is in this notebook
        self.anchors = self.local_labels & set(linked_labels)  # ... that something links to
        self.figure_cells = figure_cells or {}  # glue name -> where its figure is drawn
        self.exercises: dict[str, _Exercise] = {}  # by label
        self.exercise_list: list[_Exercise] = []  # in reading order
        self.exercise_count = 0  # exercises converted so far
        self.heading_level = 1
        self.glued = 0

    # --- exercises ------------------------------------------------------------------------

    def register_exercise(self, arg: str, options: dict[str, str]) -> _Exercise:
        order = self.index.exercises.get(self.doc)
        position = len(self.exercise_list)
        label = options.get("label", "")
        if order is not None:
            if position >= len(order):
                raise ReaderError(
                    f"{self.doc}: exercise {position + 1} is not in the build's index; "
                    "rebuild the book"
                )
            if label and label != order[position]:
                raise ReaderError(
                    f"{self.doc}: exercise {position + 1} is {label!r} here but "
                    f"{order[position]!r} in the build's index; rebuild the book"
                )
            label = order[position]
        target = self.index.labels.get(label) if label else None
        if "nonumber" in options:
            heading = self.index.numfig_format.get("exercise", "Exercise %s").replace(" %s", "")
        elif target is not None and target.number:
            heading = self.index.numbered(target)
        else:  # no build index (unit tests): number within the chapter
            heading = self.index.numfig_format.get("exercise", "Exercise %s") % (position + 1)
        exercise = _Exercise(label=label, heading=heading, title=self.inline(arg.strip()))
        if label:
            self.exercises[label] = exercise
        self.exercise_list.append(exercise)
        return exercise

    def prescan(self, markdown: str) -> None:
        """Number the exercises of a cell before any solution or reference needs them."""
        for options, arg in _exercise_directives(markdown.splitlines()):
            self.register_exercise(arg, options)

    # --- blocks ---------------------------------------------------------------------------

    def block(self, lines: list[str], depth: int = 0) -> list[str]:
        out: list[str] = []
        text: list[str] = []
        anchors: list[str] = []

        def flush() -> None:
            if text:
                out.extend(self.inline("\n".join(text)).split("\n"))
                text.clear()

        i = 0
        while i < len(lines):
            line = lines[i]
            fence = _FENCE.match(line)
            if fence:
                end = _closing(lines, i)
                info = fence.group("info").strip()
                directive = _DIRECTIVE.match(info) if fence.group("fence")[0] != "~" else None
                if directive is None and fence.group("fence")[0] == ":":
                    raise ReaderError(f"{self.doc}: a ':::' fence without a directive: {line!r}")
                flush()
                if directive:
                    body = [b[len(fence.group("indent")) :] for b in lines[i + 1 : end]]
                    converted = self.directive(
                        directive.group("name"), directive.group("arg"), body, depth
                    )
                    if out and out[-1].strip():
                        out.append("")  # a block of its own: blank lines around it
                    out.extend([*self._anchored(anchors, converted), ""])
                    anchors = []
                else:
                    out.extend(lines[i : end + 1])  # a code block: verbatim
                i = end + 1
                continue
            label = _LABEL.match(line)
            if label:
                anchors.append(label.group("label"))
                i += 1
                continue
            if line.strip().startswith("$$"):
                end = i
                if line.strip() == "$$" or not line.strip()[2:].rstrip().endswith("$$"):
                    end = i + 1
                    while end < len(lines) and "$$" not in lines[end]:
                        end += 1
                flush()
                out.extend(self._anchored(anchors, lines[i : end + 1]))
                anchors = []
                i = end + 1
                continue
            heading = _HEADING.match(line)
            if heading and depth == 0:
                self.heading_level = len(heading.group("hashes"))
            if anchors and line.strip():
                line = self._anchor_line(anchors, line)
                anchors = []
            text.append(line)
            i += 1
        flush()
        if anchors:
            out.extend(self._anchored(anchors, []))
        return _trim(out)

    def _anchor_html(self, labels: list[str]) -> str:
        """HTML anchors for the labels the notebook links to (the others are just dropped)."""
        return "".join(f'<a id="{label}"></a>' for label in labels if label in self.anchors)

    def _anchor_line(self, labels: list[str], line: str) -> str:
        anchor = self._anchor_html(labels)
        heading = _HEADING.match(line)
        if heading and heading.group("rest").strip():
            return f"{heading.group('hashes')} {anchor}{heading.group('rest').strip()}"
        return anchor + line

    def _anchored(self, labels: list[str], lines: list[str]) -> list[str]:
        anchor = self._anchor_html(labels)
        if not anchor:
            return lines
        return [anchor, "", *lines]

    # --- directives ---------------------------------------------------------------------

    def directive(self, name: str, arg: str, body: list[str], depth: int) -> list[str]:
        options, body = _options(body)
        if name == "exercise":
            return self._exercise(arg, options, body, depth)
        if name == "solution":
            return self._solution(arg, options, body, depth)
        if name in _ADMONITIONS:
            return self._admonition(name, arg, options, body, depth)
        if name == "math":
            return ["$$", *body, "$$"]
        if name in ("code-block", "code", "sourcecode"):
            return [f"```{arg.strip()}", *body, "```"]
        if name in ("glue:figure", "glue", "glue:any"):
            return self._glue_figure(arg.strip(), options, body, depth)
        if name in ("glue:md",):
            key = arg.strip()
            return [self._glue_value(key, "md")]
        if name == "glue:math":
            return ["$$", self._glue_value(arg.strip(), "math"), "$$"]
        raise ReaderError(
            f"{self.doc}: the reader notebooks cannot show the MyST directive {{{name}}}; "
            "add a conversion to llmzero/book/reader.py or use plain Markdown"
        )

    def _exercise(
        self, arg: str, options: dict[str, str], body: list[str], depth: int
    ) -> list[str]:
        if self.exercise_count >= len(self.exercise_list):  # not prescanned
            self.register_exercise(arg, options)
        exercise = self.exercise_list[self.exercise_count]
        self.exercise_count += 1
        level = "#" * min(6, self.heading_level + 1)
        title = f" ({exercise.title})" if exercise.title else ""
        anchor = self._anchor_html([exercise.label]) if exercise.label else ""
        content = self.block(_trim(body), depth + 1)
        return [f"{level} {anchor}{exercise.heading}{title}", "", *content]

    def _solution(
        self, arg: str, options: dict[str, str], body: list[str], depth: int
    ) -> list[str]:
        label = arg.strip()
        exercise = self.exercises.get(label)
        if exercise is None:
            target = self.index.labels.get(label)
            if target is None:
                raise ReaderError(f"{self.doc}: a solution to an unknown exercise {label!r}")
            summary = f"Solution to {_plain(self.index.numbered(target))}"
        else:
            title = f" ({exercise.title})" if exercise.title else ""
            summary = f"Solution to {_plain(exercise.heading + title)}"
        return _details(summary, self.block(_trim(body), depth + 1))

    def _admonition(
        self, name: str, arg: str, options: dict[str, str], body: list[str], depth: int
    ) -> list[str]:
        if name == "admonition":
            if not arg.strip():
                raise ReaderError(f"{self.doc}: an {{admonition}} without a title")
            title = self.inline(arg.strip())
        else:
            title = _ADMONITIONS[name]
            if arg.strip():  # for these directives the argument is the first line of the body
                body = [arg.strip(), *body]
        content = self.block(_trim(body), depth + 1)
        if "dropdown" in options.get("class", "").split():
            return _details(f"<strong>{_plain(title)}</strong>", content)
        return _quote([f"**{title}**", "", *content])

    def _glue_figure(
        self, key: str, options: dict[str, str], body: list[str], depth: int
    ) -> list[str]:
        where = self.figure_cells.get(key)
        if where is None:
            raise ReaderError(f"{self.doc}: no code cell glues the figure {key!r}")
        label = options.get("name", "")
        target = self.index.labels.get(label) if label else None
        number = self.index.numbered(target) if target and target.number else "Figure"
        caption = " ".join(self.block(_trim(body), depth + 1)).strip()
        anchor = self._anchor_html([label]) if label else ""
        pointer = f"*(drawn by {where}: run it to see the figure)*"
        return [f"{anchor}**{number}.** {caption} {pointer}".replace("  ", " ")]

    # --- roles ------------------------------------------------------------------------------

    def inline(self, text: str) -> str:
        converted = _INLINE.sub(self._inline_match, text)
        return converted.replace(f"{GLUE_MARK}%", f"%{GLUE_MARK}")  # "48%†", not "48†%"

    def _inline_match(self, match: re.Match[str]) -> str:
        if match.group("role") is None:
            return match.group(0)  # inline code stays as it is
        return self.role(match.group("role"), match.group("content"))

    def role(self, name: str, content: str) -> str:
        if name == "glue:text":
            key, _, spec = content.rpartition(":")
            if not key:
                key, spec = content, "s"
            return self._glue_value(key.strip(), spec) + GLUE_MARK
        if name in ("glue", "glue:", "glue:any"):
            return self._glue_value(content.strip(), None) + GLUE_MARK
        if name == "glue:md":
            return self._glue_value(content.rpartition(":")[0] or content, "md") + GLUE_MARK
        if name in ("ref", "numref", "doc"):
            return self._reference(name, content)
        if name == "term":
            return self._term(content)
        if name.startswith("cite"):
            return self._cite(name, content)
        if name == "math":
            return f"${content}$"
        if name in ("sub", "sup", "kbd"):
            return f"<{name}>{html.escape(content, quote=False)}</{name}>"
        if name == "abbr":
            return _split_explicit(content)[0] or content
        raise ReaderError(
            f"{self.doc}: the reader notebooks cannot show the MyST role {{{name}}}; "
            "add a conversion to llmzero/book/reader.py"
        )

    def _glue_value(self, key: str, spec: str | None) -> str:
        if self.glue is None:
            raise ReaderError(f"{self.doc}: glued value {key!r} but no record of the build's run")
        if "::" in key:
            raise ReaderError(f"{self.doc}: glue from another page ({key}) is not supported")
        if key not in self.glue:
            raise ReaderError(
                f"{self.doc}: the build's run glued no value named {key!r}; rebuild the book"
            )
        self.glued += 1
        bundle = self.glue[key]
        if spec == "md":
            data = bundle.get("data", bundle)
            text = data.get("text/markdown") or data.get("text/plain", "")
            return "".join(text) if isinstance(text, list) else text
        if spec == "math":
            data = bundle.get("data", bundle)
            text = data.get("text/latex") or data.get("text/plain", "")
            return ("".join(text) if isinstance(text, list) else text).strip("$")
        try:
            return format_glue(bundle, spec)
        except ReaderError as error:
            raise ReaderError(f"{self.doc}: glued value {key!r}: {error}") from None

    def _reference(self, role: str, content: str) -> str:
        text, target_name = _split_explicit(content)
        if role == "doc":
            doc = _resolve_doc(self.doc, target_name)
            title = self.index.titles.get(doc)
            if title is None:
                raise ReaderError(f"{self.doc}: {{doc}} to an unknown page {target_name!r}")
            return f"[{text or title}]({self.index.url(Target(doc))})"
        target = self.index.labels.get(target_name)
        if target is None:
            raise ReaderError(f"{self.doc}: {{{role}}} to an unknown label {target_name!r}")
        numbered = role == "numref" or (role == "ref" and target.figtype == "exercise")
        if text is None:
            text = self.index.numbered(target) if numbered else (target.title or target_name)
        elif role == "numref":
            text = text.replace("%s", target.number).replace("{number}", target.number)
            text = text.replace("{name}", target.title)
        if target_name in self.anchors:
            return f"[{text}](#{target_name})"
        return f"[{text}]({self.index.url(target)})"

    def _term(self, content: str) -> str:
        text, term = _split_explicit(content)
        term = " ".join(term.split())
        target = self.index.terms.get(term.lower())
        if target is None:
            raise ReaderError(f"{self.doc}: {{term}} {term!r} is not in the glossary")
        return f"[{text or term}]({self.index.url(target)})"

    def _cite(self, role: str, content: str) -> str:
        style = role.partition(":")[2] or "p"
        keys = [key.strip() for key in content.split(",") if key.strip()]
        cited = []
        for key in keys:
            if key not in self.index.references:
                raise ReaderError(f"{self.doc}: {{cite}} key {key!r} is not in references.bib")
            authors, year = self.index.references[key]
            target = self.index.citations.get(key, Target(self.index.bibliography_doc))
            cited.append((authors, year, self.index.url(target)))
        if style in ("p", "ps"):
            return "(" + "; ".join(f"[{a}, {y}]({u})" for a, y, u in cited) + ")"
        if style in ("t", "ts"):
            return "; ".join(f"[{a}]({u}) ({y})" for a, y, u in cited)
        if style == "author":
            return "; ".join(f"[{a}]({u})" for a, y, u in cited)
        if style == "year":
            return "; ".join(f"[{y}]({u})" for a, y, u in cited)
        if style == "yearpar":
            return "(" + "; ".join(f"[{y}]({u})" for a, y, u in cited) + ")"
        raise ReaderError(f"{self.doc}: the citation role {{{role}}} is not supported")


def _closing(lines: list[str], start: int) -> int:
    """The index of the line that closes the fence opened at ``start`` (or the last line)."""
    opening = _FENCE.match(lines[start])
    assert opening is not None
    char, length = opening.group("fence")[0], len(opening.group("fence"))
    close = re.compile(rf"^ {{0,3}}{re.escape(char)}{{{length},}}\s*$")
    for index in range(start + 1, len(lines)):
        if close.match(lines[index]):
            return index
    return len(lines)


def _options(body: list[str]) -> tuple[dict[str, str], list[str]]:
    """A directive's ``:key: value`` options (or a ``---`` YAML block) and the rest of its body."""
    options: dict[str, str] = {}
    index = 0
    if body and body[0].strip() == "---":
        import yaml

        end = next((i for i in range(1, len(body)) if body[i].strip() == "---"), None)
        if end is None:
            raise ReaderError("a directive's options block (---) is not closed")
        loaded = yaml.safe_load("\n".join(body[1:end])) or {}
        options = {str(k): "" if v is None else str(v) for k, v in loaded.items()}
        index = end + 1
    else:
        while index < len(body):
            match = _OPTION.match(body[index])
            if not match:
                break
            options[match.group("key")] = (match.group("value") or "").strip()
            index += 1
    return options, body[index:]


def _exercise_directives(lines: list[str]) -> Iterable[tuple[dict[str, str], str]]:
    """The options and argument of every ``{exercise}`` directive, nested ones included."""
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if not fence:
            index += 1
            continue
        end = _closing(lines, index)
        directive = _DIRECTIVE.match(fence.group("info").strip())
        if directive:
            options, body = _options(lines[index + 1 : end])
            if directive.group("name") == "exercise":
                yield options, directive.group("arg")
            yield from _exercise_directives(body)
        index = end + 1


def _resolve_doc(current: str, target: str) -> str:
    target = target.removesuffix(".md").removesuffix(".ipynb")
    if target.startswith("/"):
        return target.lstrip("/")
    parts = [*current.split("/")[:-1], *target.split("/")]
    resolved: list[str] = []
    for part in parts:
        if part == "..":
            if resolved:
                resolved.pop()
        elif part not in ("", "."):
            resolved.append(part)
    return "/".join(resolved)


def _source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _tags(cell: dict[str, Any]) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _kept(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [cell for cell in cells if "remove-cell" not in _tags(cell)]


def _labels_in(cells: list[dict[str, Any]]) -> set[str]:
    """Every label defined in these cells: ``(name)=``, ``:label:``, figure names."""
    labels = set()
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            text = _source(cell)
            labels.update(m.group("label") for m in map(_LABEL.match, text.splitlines()) if m)
            labels.update(re.findall(r"^:(?:label|name):\s*(\S+)", text, flags=re.MULTILINE))
        name = cell.get("metadata", {}).get("mystnb", {}).get("figure", {}).get("name")
        if name:
            labels.add(name)
    return labels


def _links_in(cells: list[dict[str, Any]]) -> set[str]:
    """Every label a ``{ref}`` or ``{numref}`` in these cells points to."""
    targets = set()
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            for match in re.finditer(r"\{(?:ref|numref)\}`([^`]+)`", _source(cell)):
                targets.add(_split_explicit(match.group(1))[1])
    return targets


def _figure_cells(cells: list[dict[str, Any]]) -> dict[str, str]:
    """For each glued name, which code cell (of those a reader sees) draws it."""
    where: dict[str, str] = {}
    last_kept = ""
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        source = _source(cell)
        if "remove-cell" not in _tags(cell):
            first = next((line for line in source.splitlines() if line.strip()), "").strip()
            last_kept = f"the code cell above that starts with `{first[:60]}`"
        for key in re.findall(r"\bglue\(\s*f?[\"']([^\"']+)[\"']", source):
            where.setdefault(key, last_kept or "a code cell above")
    return where


def _converter(
    cells: list[dict[str, Any]], doc: str, index: BookIndex, glue: dict[str, Any] | None
) -> _Converter:
    kept = _kept(cells)
    converter = _Converter(
        doc, index, glue, _labels_in(kept), _links_in(kept), _figure_cells(cells)
    )
    for cell in kept:
        if cell.get("cell_type") == "markdown":
            converter.prescan(_source(cell))
    return converter


def convert_markdown(
    text: str, doc: str, index: BookIndex, glue: dict[str, Any] | None = None
) -> str:
    """One Markdown cell's MyST turned into plain Markdown, as in a reader notebook."""
    cells = [{"cell_type": "markdown", "metadata": {}, "source": text}]
    return "\n".join(_converter(cells, doc, index, glue).block(text.split("\n")))


def _new_cell(cell: dict[str, Any], kind: str, text: str, suffix: str = "") -> dict[str, Any]:
    new: dict[str, Any] = {"cell_type": kind, "metadata": {}, "source": text}
    if "id" in cell:
        new["id"] = f"{cell['id']}{suffix}"[:64]
    if kind == "code":
        new.update(execution_count=None, outputs=[])
    return new


def _caption_cell(cell: dict[str, Any], converter: _Converter) -> dict[str, Any] | None:
    """A figure's number and caption, for the Markdown cell after the code that draws it."""
    figure = cell.get("metadata", {}).get("mystnb", {}).get("figure")
    if not figure or not (figure.get("caption") or figure.get("name")):
        return None
    name = figure.get("name", "")
    target = converter.index.labels.get(name) if name else None
    number = converter.index.numbered(target) if target and target.number else "Figure"
    caption = converter.inline(" ".join(str(figure.get("caption", "")).split()))
    anchor = converter._anchor_html([name]) if name else ""
    return _new_cell(cell, "markdown", f"{anchor}**{number}.** {caption}".rstrip(), "-caption")


def _intro(doc: str, index: BookIndex, glued: bool) -> str:
    title = index.titles.get(doc, "")
    book = f" of *{index.book_title}*" if index.book_title else ""
    text = (
        f"> This notebook is the chapter [{title or doc}]({index.url(Target(doc))}){book}, "
        "ready to run in Jupyter, Colab or Binder: run the cells in order from the top (on "
        "Colab, the first one installs the course package)."
    )
    if glued:
        text += (
            f" Numbers marked {GLUE_MARK} in the text come from the book's own run of this "
            "notebook; yours may differ slightly."
        )
    return text


def _with_intro(markdown: str, intro: str) -> str:
    """The first Markdown cell with the introduction after its title (or at its top)."""
    lines = markdown.split("\n")
    for position, line in enumerate(lines):
        if line.startswith("# ") or re.match(r"^# <a id=", line):
            return "\n".join([*lines[: position + 1], "", intro, *lines[position + 1 :]])
    return f"{intro}\n\n{markdown}"


def reader_notebook(
    notebook: dict[str, Any],
    doc: str,
    index: BookIndex,
    glue: dict[str, Any] | None = None,
    source_path: str = "",
) -> dict[str, Any]:
    """The reader notebook of one chapter (see the module's docstring for what changes).

    ``notebook`` is the chapter (the source or the executed notebook: outputs are dropped),
    ``doc`` its page name, ``glue`` the values the build's run glued (myst-nb's
    ``<page>.glue.json``), ``source_path`` the source file named in a comment at the top.
    """
    cells_in = notebook["cells"]
    converter = _converter(cells_in, doc, index, glue)
    cells: list[dict[str, Any]] = []
    for cell in _kept(cells_in):
        kind = cell.get("cell_type")
        if kind == "markdown":
            converted = "\n".join(converter.block(_source(cell).split("\n")))
            cells.append(_new_cell(cell, "markdown", converted))
        elif kind == "code":
            code = _new_cell(cell, "code", _source(cell))
            tags = _tags(cell)
            if tags:
                code["metadata"]["tags"] = tags
            if {"hide-input", "hide-cell"} & set(tags):
                code["metadata"]["jupyter"] = {"source_hidden": True}  # collapsed in JupyterLab
            cells.append(code)
            caption = _caption_cell(cell, converter)
            if caption is not None:
                cells.append(caption)
        else:
            cells.append(copy.deepcopy(cell))
    first = next((c for c in cells if c["cell_type"] == "markdown"), None)
    if first is not None:
        first["source"] = _with_intro(first["source"], _intro(doc, index, converter.glued > 0))
        if source_path:
            first["source"] = (
                f"<!-- Generated from {source_path} by llmzero.book.reader: edit that file, "
                f"not this one. -->\n{first['source']}"
            )
    for cell in cells:
        cell["source"] = cell["source"].splitlines(keepends=True)
    metadata = {k: v for k, v in notebook.get("metadata", {}).items() if k in _KEPT_METADATA}
    return {
        "cells": cells,
        "metadata": metadata,
        "nbformat": notebook.get("nbformat", 4),
        "nbformat_minor": notebook.get("nbformat_minor", 5),
    }


_KEPT_METADATA = ("kernelspec", "language_info")


def scan_labels(root: Path, pages: Iterable[str]) -> dict[str, Target]:
    """Labels that head a section, read from the sources (titles, no numbers).

    Only for pages a partial build (``--only``) did not read; the full build's index has them all.
    """
    found: dict[str, Target] = {}
    for page in pages:
        for suffix in (".ipynb", ".md"):
            path = root / f"{page}{suffix}"
            if not path.is_file():
                continue
            if suffix == ".ipynb":
                cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
                text = "\n".join(_source(c) for c in cells if c["cell_type"] == "markdown")
            else:
                text = path.read_text(encoding="utf-8")
            lines = text.splitlines()
            for position, line in enumerate(lines):
                label = _LABEL.match(line)
                if label:
                    after = next((n for n in lines[position + 1 :] if n.strip()), "")
                    heading = _HEADING.match(after)
                    title = heading.group("rest").strip() if heading else ""
                    found[label.group("label")] = Target(page, label.group("label"), title)
    return found


def _check_same_code(source: dict[str, Any], executed: dict[str, Any], doc: str) -> None:
    code = [_source(c) for c in source["cells"] if c["cell_type"] == "code"]
    ran = [_source(c) for c in executed["cells"] if c["cell_type"] == "code"]
    if code != ran:
        raise ReaderError(
            f"{doc}: the executed notebook in the build is older than the source; rebuild the book"
        )


def write_reader_notebooks(
    root: Path,
    build: Path,
    site: Path | None = None,
    config: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Write the reader notebook of every chapter the build executed; return their paths.

    ``build`` is the build's folder (``_build``, or ``_build/only/<page>`` for ``--only``),
    holding ``reader-index.json`` and ``jupyter_execute/``; the notebooks go to
    ``<build>/notebooks/<page>.ipynb`` and, if ``site`` is given, are copied to
    ``<site>/notebooks/`` for the site's download button.
    """
    import yaml

    root, build = Path(root), Path(build)
    config = config or yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    index_file = build / INDEX_FILE
    if not index_file.is_file():
        raise ReaderError(f"{index_file} is missing: the Sphinx build did not finish")
    bib = [root / name for name in config.get("bibtex_bibfiles", [])]
    index = load_index(index_file, site=site_url(config), bibliography=bib[0] if bib else None)
    index.book_title = str(config.get("title", "")) or index.book_title
    pages = list(index.exercises)  # every notebook page the build read
    missing = scan_labels(root, _toc_pages(root))
    index.labels = {**missing, **index.labels}
    for page, title in ((t.doc, t.title) for t in missing.values()):
        index.titles.setdefault(page, title)

    out_dir = build / NOTEBOOKS_DIR
    written = []
    for page in sorted(pages):
        source_path = root / f"{page}.ipynb"
        executed_path = build / "jupyter_execute" / f"{page}.ipynb"
        if not source_path.is_file():
            continue
        if not executed_path.is_file():
            raise ReaderError(f"{page}: the build did not execute it ({executed_path} is missing)")
        source = json.loads(source_path.read_text(encoding="utf-8"))
        _check_same_code(source, json.loads(executed_path.read_text(encoding="utf-8")), page)
        glue_path = executed_path.with_name(f"{executed_path.stem}.glue.json")
        glue = json.loads(glue_path.read_text(encoding="utf-8")) if glue_path.is_file() else {}
        notebook = reader_notebook(source, page, index, glue, f"{page}.ipynb")
        target = out_dir / f"{page}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", "utf-8")
        written.append(target)
    out_dir.mkdir(parents=True, exist_ok=True)  # also when the build ran no notebook
    (out_dir / "README.md").write_text(_readme(config, index), encoding="utf-8")
    if site is not None:
        shutil.rmtree(site / NOTEBOOKS_DIR, ignore_errors=True)
        shutil.copytree(out_dir, site / NOTEBOOKS_DIR)
    log(f"Reader notebooks: {len(written)} in {out_dir}")
    return written


def _toc_pages(root: Path) -> list[str]:
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    pages = [toc["root"]]
    for part in toc.get("parts", []):
        for chapter in part.get("chapters", []):
            pages.append(chapter["file"])
            pages.extend(section["file"] for section in chapter.get("sections", []))
    return pages


def _readme(config: dict[str, Any], index: BookIndex) -> str:
    title = config.get("title", "the book")
    repository = (config.get("repository") or {}).get("url", "")
    return (
        f"# {title}: the chapters as Jupyter notebooks\n\n"
        "These notebooks are generated by the book's build from the chapter sources "
        f"([{repository}]({repository}), `chapters/`): the same code, with the prose converted "
        "to Markdown that Jupyter, JupyterLab, Colab and Binder show as it is meant to be read. "
        f"Numbers marked {GLUE_MARK} come from the book's own run. Do not edit them here: "
        "change the sources instead.\n\n"
        f"Read the book online at <{index.site_url}>. Open a chapter under `chapters/` and run "
        "its cells from the top.\n"
    )
