"""A small Sphinx extension for the course site (listed in ``_config.yml``).

It records how long each notebook took to execute (``_build/exec-times.json``, printed
by :mod:`llmzero.book.build`), and it serves MathJax from the site itself instead of a CDN,
so pages render offline and where CDNs are slow or blocked. The MathJax files come from
the PyPI package ``django-static-mathjax`` (MathJax 3.2.2, pinned in ``requirements.txt``),
which installs them as the Python package ``mathjax``; they are copied to
``_static/mathjax`` in the built site.

It also keeps a cell's printed text in its place among the cell's other outputs: myst-nb's
``nb_merge_streams`` gathers *all* of a cell's printed text into its first text output, so
a line printed after a table or progress bar would show above it. Here only consecutive
text outputs are merged (:func:`coalesce_adjacent_streams`).

For the reader notebooks (:mod:`llmzero.book.reader`) it saves what the build knows about
labels, numbers, glossary terms and citations (``_build/reader-index.json``,
:func:`reader_index`), and it points each chapter's Colab, Binder and ``.ipynb`` download
buttons at the chapter's reader notebook instead of its MyST source (:func:`on_branch`).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path
from typing import Any

MATHJAX_ENTRY = "mathjax/tex-chtml.js"
# What tex-chtml.js needs at run time: itself, its fonts, and the parts it may load on
# demand (TeX extensions, the accessibility menu's speech-rule engine).
_MATHJAX_PARTS = [
    "tex-chtml.js",
    "output/chtml/fonts/woff-v2",
    "input/tex/extensions",
    "a11y",
    "sre",
    "ui",
    "adaptors",
]


def mathjax_source() -> Path:
    """The folder of the installed MathJax ``es5`` build."""
    try:
        import mathjax
    except ImportError as error:  # the build cannot render math without it
        raise RuntimeError(
            "MathJax is missing: install the book's toolchain with "
            "`pip install -r requirements.txt` (it pins django-static-mathjax)."
        ) from error
    return Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"


def _config_inited(app: Any, config: Any) -> None:
    config.mathjax_path = MATHJAX_ENTRY


def _copy_mathjax(app: Any, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    source = mathjax_source()
    target = Path(app.outdir) / "_static" / "mathjax"
    for part in _MATHJAX_PARTS:
        origin = source / part
        if not origin.exists():
            continue
        if origin.is_dir():
            shutil.copytree(origin, target / part, dirs_exist_ok=True)
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target / part)


def _write_exec_times(app: Any, exception: Exception | None) -> None:
    from myst_nb.sphinx_ import NbMetadataCollector

    times = {}
    for docname in sorted(app.env.found_docs):
        data = NbMetadataCollector.get_doc_data(app.env).get(docname, {}).get("exec_data")
        if data:
            times[docname] = {
                "seconds": round(float(data["runtime"]), 2),
                "method": data["method"],
                "succeeded": bool(data["succeeded"]),
            }
    out = Path(app.outdir).parent / "exec-times.json"
    out.write_text(json.dumps(times, indent=2), encoding="utf-8")


def _dedupe_scripts(
    app: Any, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    """Drop repeated script tags (Sphinx 7.4 writes late-registered inline scripts twice,
    which makes every page throw "Identifier ... has already been declared")."""
    seen, unique = set(), []
    for script in context.get("script_files", []):
        key = (script.filename or "", script.priority, tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


_CARRIAGE_RETURN = re.compile(r".*\r(?=[^\n])")  # text a later \r overwrote on its line
_BACKSPACE = re.compile("[^\n]\x08")  # a character and the backspace (\x08) after it


def coalesce_adjacent_streams(outputs: list[Any]) -> list[Any]:
    """Merge consecutive stdout (or stderr) outputs of a cell into one, keeping the order.

    A kernel sends printed text in chunks as it is flushed, so one ``print`` loop can give
    several outputs in a row; they are joined. Text separated by a table, a figure or any
    other display output stays on its side of it. As in myst-nb, text that a carriage return
    or a backspace erased in a terminal is removed.
    """
    merged: list[Any] = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (
            output["output_type"] == "stream"
            and previous is not None
            and previous["output_type"] == "stream"
            and previous["name"] == output["name"]
        ):
            previous["text"] += output["text"]
        else:
            # A copy: myst-nb may pass the same outputs again (it writes the executed
            # notebook and renders the page), and they must not grow each time.
            merged.append(copy.copy(output))
    for output in merged:
        if output["output_type"] == "stream":
            text = output["text"]
            while _BACKSPACE.search(text):
                text = _BACKSPACE.sub("", text)
            output["text"] = _CARRIAGE_RETURN.sub("", text)
    return merged


def _number_text(number: Any) -> str:
    return ".".join(str(part) for part in number)


def reader_index(app: Any) -> dict[str, Any]:
    """What :mod:`llmzero.book.reader` needs from this build to write the reader notebooks.

    Every label with its page, anchor, title and, if numbered, its number as this build
    computed it (figures, exercises); the glossary's terms; the bibliography's anchors; each
    notebook page's title and exercises in reading order.
    """
    env = app.env
    numbers = {
        (doc, node_id): (figtype, _number_text(number))
        for doc, figtypes in env.toc_fignumbers.items()
        for figtype, ids in figtypes.items()
        for node_id, number in ids.items()
    }
    std = env.domaindata["std"]
    labels = {}
    for label, (doc, anchor, title) in std["labels"].items():
        figtype, number = numbers.get((doc, anchor), ("", ""))
        labels[label] = {
            "doc": doc,
            "anchor": anchor,
            "title": str(title),
            "figtype": figtype,
            "number": number,
        }
    terms = {
        name.lower(): {"doc": doc, "anchor": anchor, "title": name}
        for (kind, name), (doc, anchor) in std["objects"].items()
        if kind == "term"
    }
    citations = {}
    for citation in env.domaindata.get("cite", {}).get("citations", []):
        citations[citation.key] = {
            "doc": citation.bibliography_key.docname,
            "anchor": citation.citation_id,
        }
    order = getattr(env, "sphinx_exercise_node_order", {})
    exercises = {}
    for doc in sorted(env.found_docs):
        if Path(env.doc2path(doc)).suffix == ".ipynb":
            items = sorted(order.get(doc, []), key=lambda item: item.get("line") or 0)
            exercises[doc] = [item["label"] for item in items if item["type"] == "exercise"]
    return {
        "book_title": app.config.html_title or app.config.project,
        "titles": {doc: title.astext() for doc, title in env.titles.items()},
        "numfig_format": dict(app.config.numfig_format),
        "labels": labels,
        "terms": terms,
        "citations": citations,
        "exercises": exercises,
        "glossary_doc": next((t["doc"] for t in terms.values()), ""),
        "bibliography_doc": next((c["doc"] for c in citations.values()), ""),
    }


def _write_reader_index(app: Any, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    from llmzero.book.reader import INDEX_FILE

    out = Path(app.outdir).parent / INDEX_FILE
    out.write_text(json.dumps(reader_index(app), indent=1, ensure_ascii=False), encoding="utf-8")


def on_branch(url: str, branch: str, new_branch: str) -> str:
    """A Colab or Binder launch URL for ``branch`` moved to ``new_branch``.

    ``https://colab.research.google.com/github/OWNER/REPO/blob/main/PATH`` and
    ``https://mybinder.org/v2/gh/OWNER/REPO/main?urlpath=...`` name the branch in one place;
    a URL of another shape is an error, so a theme update cannot silently break the buttons.
    """
    old = re.escape(branch)
    colab = re.sub(rf"(/github/[^/]+/[^/]+/blob/){old}/", rf"\g<1>{new_branch}/", url)
    if colab != url:
        return colab
    binder = re.sub(rf"(/v2/gh/[^/]+/[^/]+/){old}(?=[?/]|$)", rf"\g<1>{new_branch}", url)
    if binder != url:
        return binder
    raise ValueError(f"cannot point the launch button {url!r} at the branch {new_branch!r}")


def _point_buttons_at_reader_notebooks(
    app: Any, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    """Colab, Binder and the .ipynb download open the chapter's reader notebook.

    sphinx-book-theme points them at the source notebook (MyST markup, no numbers). The reader
    notebooks are on the ``reader_notebooks_branch`` of the repository (same paths) and in the
    site under ``notebooks/`` (:mod:`llmzero.book.reader`).
    """
    if context.get("page_source_suffix") != ".ipynb":
        return
    from llmzero.book.reader import NOTEBOOKS_DIR

    branch = app.config.html_theme_options.get("repository_branch") or "main"
    reader_branch = app.config.reader_notebooks_branch
    for group in context.get("header_buttons", []):
        for button in group.get("buttons", []):
            url = button.get("url", "")
            if group.get("label") == "launch-buttons" and url.startswith("http"):
                button["url"] = on_branch(url, branch, reader_branch)
            elif button.get("label") == "download-source-button" and url.endswith(".ipynb"):
                button["url"] = context["pathto"](f"{NOTEBOOKS_DIR}/{pagename}.ipynb", 1)
                button["tooltip"] = "Download the notebook (for Jupyter, Colab or Binder)"


def setup(app: Any) -> dict[str, Any]:
    """Register the hooks with Sphinx."""
    import myst_nb.core.render

    # myst-nb looks this function up in its render module when nb_merge_streams is on.
    myst_nb.core.render.coalesce_streams = coalesce_adjacent_streams
    app.connect("config-inited", _config_inited, priority=900)
    app.connect("build-finished", _copy_mathjax)
    app.connect("build-finished", _write_exec_times)
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    # The repository branch the reader notebooks are published on (CI pushes them there).
    app.add_config_value("reader_notebooks_branch", "notebooks", "html")
    app.connect("build-finished", _write_reader_index)
    # After sphinx-book-theme (priority 501) has made the buttons.
    app.connect("html-page-context", _point_buttons_at_reader_notebooks, priority=600)
    # The study plan's {plan-load} role: reading and running time computed by this build.
    from llmzero.book import studyplan

    studyplan.setup(app)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
