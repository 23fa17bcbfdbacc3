"""The study plan's workload, computed when the site is built (front matter, *A 14-day plan*).

The study plan page lists, for each day, the chapters to read. Next to them it shows how
long that day takes, and none of those numbers are typed in:

- the **reading time** is the sum of the chapters' own estimates, the "*Time:* about N
  minutes to read" line every chapter states under its objectives (:func:`reading_minutes`);
- the **running time** is how long the build that made the page took to execute each
  chapter's notebook (myst-nb's execution data, the table the build also writes to
  ``_build/exec-times.json``), on one CPU core per notebook.

In the page's MyST source a day's chapters are given by their labels::

    {plan-load}`ch-python-numpy ch-linear-algebra`

which renders as, for example, "2 chapters · reading about 2 h · running 0.9 min". A label
that is not a chapter's is a build error; a chapter this build did not execute (a partial
``--only`` build) shows "not run in this build", which the site tests refuse.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docutils import nodes

READING = re.compile(r"\*Time:\*\s*about\s+(\d+)\s+minutes\s+to\s+read")
"""The chapter standard's time line, e.g. ``*Time:* about 60 minutes to read, ...``."""

PAGE = "chapters/00-front/study-plan"
"""The docname of the study plan page (rebuilt whenever a notebook is re-executed)."""

NOT_RUN = "not run in this build"


def reading_minutes(markdown: str) -> int | None:
    """The reading estimate of a chapter's markdown ("about N minutes to read"), or None."""
    match = READING.search(markdown)
    return int(match.group(1)) if match else None


def notebook_markdown(path: str | Path) -> str:
    """The markdown cells of a notebook (or the text of a ``.md`` page), joined."""
    path = Path(path)
    if path.suffix != ".ipynb":
        return path.read_text(encoding="utf-8")
    notebook = json.loads(path.read_text(encoding="utf-8"))
    return "\n".join(
        "".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "markdown"
    )


@dataclass
class Load:
    """What a group of chapters asks of the reader."""

    chapters: int
    reading_minutes: int
    run_seconds: float | None  # None when a chapter was not executed by this build

    def describe(self) -> str:
        """The rendered text, e.g. ``3 chapters · reading about 3 h 15 min · running 1.6 min``."""
        hours, minutes = divmod(self.reading_minutes, 60)
        reading = f"{hours} h {minutes} min" if hours else f"{minutes} min"
        reading = reading.removesuffix(" 0 min")
        running = NOT_RUN if self.run_seconds is None else f"{self.run_seconds / 60:.1f} min"
        noun = "chapter" if self.chapters == 1 else "chapters"
        return f"{self.chapters} {noun} · reading about {reading} · running {running}"


def chapter_load(sources: list[Path], run_seconds: list[float | None]) -> Load:
    """The load of chapters given their source files and measured execution times.

    Raises ``ValueError`` for a chapter without a reading estimate: every chapter states one.
    """
    total_reading = 0
    for source in sources:
        minutes = reading_minutes(notebook_markdown(source))
        if minutes is None:
            raise ValueError(
                f"{source} has no '*Time:* about N minutes to read' line under its objectives; "
                "the study plan sums those lines (see the chapter standard)."
            )
        total_reading += minutes
    known = [seconds for seconds in run_seconds if seconds is not None]
    total_run = sum(known) if len(known) == len(run_seconds) else None
    return Load(len(sources), total_reading, total_run)


class plan_load(nodes.inline):  # docutils names its node classes in lower case
    """Placeholder for a day's load, replaced once every notebook has been executed."""


def plan_load_role(
    name: str,
    rawtext: str,
    text: str,
    lineno: int,
    inliner: Any,
    options: dict[str, Any] | None = None,
    content: list[str] | None = None,
) -> tuple[list[nodes.Node], list[nodes.system_message]]:
    """``{plan-load}`label label ...``: the chapters' reading and running time."""
    labels = text.split()
    if not labels:
        message = inliner.reporter.error("plan-load needs at least one chapter label", line=lineno)
        return [], [message]
    return [plan_load(rawtext, "", labels=labels)], []


def _resolve_loads(app: Any, doctree: nodes.document, docname: str) -> None:
    from myst_nb.sphinx_ import NbMetadataCollector
    from sphinx.util import logging

    logger = logging.getLogger(__name__)
    env = app.env
    labels = env.domaindata["std"]["labels"]
    exec_data = NbMetadataCollector.get_doc_data(env)
    for node in list(doctree.findall(plan_load)):
        sources, seconds, missing = [], [], []
        for label in node["labels"]:
            if label not in labels:
                # type "ref" so that a one-page --only build, which lacks the chapters, passes
                logger.warning(
                    f"plan-load: no label {label!r}", location=node, type="ref", subtype="ref"
                )
                missing.append(label)
                continue
            doc = labels[label][0]
            sources.append(Path(env.doc2path(doc)))
            data = exec_data.get(doc, {}).get("exec_data")
            seconds.append(float(data["runtime"]) if data else None)
        if missing:
            text = f"{len(node['labels'])} chapters · {NOT_RUN}"
        else:
            try:
                text = chapter_load(sources, seconds).describe()
            except ValueError as error:
                logger.warning(str(error), location=node)
                text = str(error)
        node.replace_self(nodes.inline(text, text, classes=["plan-load"]))


def _rebuild_plan_after_execution(
    app: Any, env: Any, added: set[str], changed: set[str], removed: set[str]
) -> list[str]:
    # The page's numbers come from other pages' execution: re-read it when any page is.
    if PAGE in env.found_docs and (added or changed or removed):
        return [PAGE]
    return []


def setup(app: Any) -> None:
    """Register the role and the hooks that fill it in (called by :mod:`.sphinxext`)."""
    app.add_node(plan_load)
    app.add_role("plan-load", plan_load_role)
    app.connect("doctree-resolved", _resolve_loads)
    app.connect("env-get-outdated", _rebuild_plan_after_execution)
