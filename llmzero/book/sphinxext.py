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
"""

from __future__ import annotations

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
            merged.append(output)
    for output in merged:
        if output["output_type"] == "stream":
            text = output["text"]
            while _BACKSPACE.search(text):
                text = _BACKSPACE.sub("", text)
            output["text"] = _CARRIAGE_RETURN.sub("", text)
    return merged


def setup(app: Any) -> dict[str, Any]:
    """Register the hooks with Sphinx."""
    import myst_nb.core.render

    # myst-nb looks this function up in its render module when nb_merge_streams is on.
    myst_nb.core.render.coalesce_streams = coalesce_adjacent_streams
    app.connect("config-inited", _config_inited, priority=900)
    app.connect("build-finished", _copy_mathjax)
    app.connect("build-finished", _write_exec_times)
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
