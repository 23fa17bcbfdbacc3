"""This book's own text, as plain-text sections: a corpus for Part VI's applications.

The retrieval chapter searches the book, and the summarization chapter summarises its
chapters and scores the summaries against the chapters' own takeaways. Both need the
prose of the chapter notebooks without the site's markup::

    from llmzero.data import booktext

    sections = booktext.load_sections()            # every section of every chapter
    sections[0].chapter_label, sections[0].heading  # ('ch-python-numpy', 'Knobs') or similar
    print(sections[0].text[:200])                  # plain text, MyST roles resolved

Only markdown cells are read (code is left out), and numbers the site inserts from the code
(``{glue:text}`` roles) are not available without running the chapter: they become
``[value]``. The chapters are found in the repository the package runs from: the current
folder or one above it (a clone, Binder, CI), ``/content/llms-from-zero`` (the clone the
Colab setup cell makes), or the folder named by ``LLMZERO_BOOK_DIR``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Section", "clean_myst", "find_book_dir", "load_sections"]

BOOK_DIR_ENV = "LLMZERO_BOOK_DIR"
COLAB_CLONE = Path("/content/llms-from-zero")

_LABEL = re.compile(r"^\s*\(([^()\s]+)\)=\s*$")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(`{3,}|~{3,}|:{3,})\s*(\{[^}]*\})?(.*)$")
_OPTION = re.compile(r"^:[\w-]+:.*$")
_GLUE = re.compile(r"\{glue(?::\w+)?\}`[^`]*`")
_EXPLICIT_ROLE = re.compile(r"\{(?:ref|numref|doc|term|download)\}`([^`<]*?)\s*<[^`>]*>`")
_PLAIN_ROLE = re.compile(r"\{(?:ref|numref|doc|term|download|abbr|sub-ref)\}`([^`]*)`")
_CITE = re.compile(r"\{cite(?::\w+)?\}`([^`]*)`")
_MATH_ROLE = re.compile(r"\{math\}`([^`]*)`")
_OTHER_ROLE = re.compile(r"\{[\w:.-]+\}`([^`]*)`")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")


@dataclass(frozen=True)
class Section:
    """One section of a chapter: the text under a heading, up to the next heading."""

    chapter_label: str  # the chapter's cross-reference label, e.g. "ch-gpt"
    chapter_title: str  # the chapter's title (its level-1 heading)
    heading: str  # this section's heading ("" for the text before the first one)
    level: int  # 1 for the chapter's introduction, 2 for "##", 3 for "###" ...
    path: str  # the notebook, relative to the book folder
    text: str  # plain text of the section's markdown

    @property
    def citation(self) -> str:
        """A short human-readable source, e.g. ``"ch-gpt § Generation"``."""
        return f"{self.chapter_label} § {self.heading}" if self.heading else self.chapter_label


def _is_book(folder: Path) -> bool:
    return (folder / "_toc.yml").is_file() and (folder / "chapters").is_dir()


def find_book_dir(start: str | Path | None = None) -> Path:
    """Return the folder that holds the book (``_toc.yml`` and ``chapters/``).

    Looks at ``LLMZERO_BOOK_DIR``, then ``start`` (default: the current folder) and the
    folders above it, then the Colab clone. Raises :class:`FileNotFoundError` that says
    what to do when none of them holds the book.
    """
    candidates: list[Path] = []
    if os.environ.get(BOOK_DIR_ENV):
        candidates.append(Path(os.environ[BOOK_DIR_ENV]).expanduser())
    here = Path(start if start is not None else Path.cwd()).resolve()
    candidates += [here, *here.parents, COLAB_CLONE]
    for folder in candidates:
        if _is_book(folder):
            return folder
    raise FileNotFoundError(
        f"The book's chapters were not found in {here} or any folder above it, nor in "
        f"{COLAB_CLONE}. Run this from a clone of the book's repository (git clone "
        "https://github.com/llms-from-zero/llms-from-zero), or set the environment "
        f"variable {BOOK_DIR_ENV} to the folder that contains _toc.yml and chapters/."
    )


def clean_myst(markdown: str) -> str:
    """Turn a MyST markdown cell into plain text.

    Directive fences and their options go (their content stays), labels go, roles keep
    their visible text (citations become ``[key]``, glued numbers ``[value]``), and
    markdown links keep their text.
    """
    lines = []
    for line in markdown.splitlines():
        if _LABEL.match(line) or _OPTION.match(line.strip()):
            continue
        fence = _FENCE.match(line)
        if fence:
            title = fence.group(3).strip() if fence.group(2) else ""
            if title:
                lines.append(title)
            continue
        lines.append(line)
    text = "\n".join(lines)
    text = _GLUE.sub("[value]", text)
    text = _EXPLICIT_ROLE.sub(r"\1", text)
    text = _PLAIN_ROLE.sub(r"\1", text)
    text = _CITE.sub(lambda m: "[" + m.group(1).replace(",", ", ") + "]", text)
    text = _MATH_ROLE.sub(r"$\1$", text)
    text = _OTHER_ROLE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _chapter_sections(notebook: Path, book_dir: Path) -> list[Section]:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    markdown = "\n\n".join(
        "".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown"
    )
    label_match = _LABEL.match(markdown.splitlines()[0]) if markdown else None
    label = label_match.group(1) if label_match else notebook.stem
    title, heading, level, body = "", "", 1, []
    sections: list[Section] = []

    def close() -> None:
        text = clean_myst("\n".join(body))
        if text:
            relative = notebook.relative_to(book_dir).as_posix()
            sections.append(Section(label, title, heading, level, relative, text))

    fences: list[tuple[str, bool]] = []  # open fences: (marker, is a MyST directive)
    for line in markdown.splitlines():
        fence = _FENCE.match(line)
        if fence:
            marker, info = fence.group(1), (fence.group(2) or "") + fence.group(3)
            top = fences[-1][0] if fences else ""
            if top and marker[0] == top[0] and len(marker) >= len(top) and not info.strip():
                fences.pop()
            elif info.strip() or not fences:
                fences.append((marker, bool(fence.group(2))))
        in_code = any(not directive for _, directive in fences)
        match = None if in_code or fence else _HEADING.match(line)
        if match:
            close()
            level, heading, body = len(match.group(1)), clean_myst(match.group(2)), []
            if level == 1:
                title, heading = heading, ""
            continue
        body.append(line)
    close()
    return [section for section in sections if section.chapter_title]


def load_sections(book_dir: str | Path | None = None) -> list[Section]:
    """Every section of every chapter notebook under ``chapters/``, in book order.

    ``book_dir`` defaults to :func:`find_book_dir`. Appendix pages and templates (which
    are not notebooks of a Part) are left out.
    """
    root = Path(book_dir) if book_dir is not None else find_book_dir()
    if not _is_book(root):
        raise FileNotFoundError(
            f"{root} does not hold the book (no _toc.yml and chapters/ there); "
            "pass the folder of a clone of the book's repository."
        )
    notebooks = sorted((root / "chapters").glob("0[1-9]-*/*.ipynb"))
    return [section for notebook in notebooks for section in _chapter_sections(notebook, root)]
