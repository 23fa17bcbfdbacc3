"""Chapter numbers that run on through the book's Parts, in a parallel Sphinx build.

Jupyter Book turns every ``numbered: true`` Part of ``_toc.yml`` into a numbered toctree of
its own, and Sphinx starts each numbered toctree at chapter 1, so Part II's chapters would
be numbered 1-6 again. Sphinx's figure, table, equation and exercise counters are kept per
chapter *number* (``numfig_secnum_depth = 1``), so chapters that share a number would also
share counters: Part II's chapter 5 would open with "Fig. 5.10" and "Exercise 5.6".

This extension (listed in ``_config.yml``) numbers the chapters continuously instead: Part I
has chapters 1-6, Part II 7-12, Part III 13-18, and so on, while the front matter and the
appendices stay unnumbered. Every chapter, section, figure, table, equation and exercise
number on the site is then unique, and each chapter's counters start at 1: "Fig. 8.1" is
the first figure of chapter 8 and "Exercise 8.1" its first exercise.

It is Jupyter Book's ``use_multitoc_numbering`` (the ``sphinx-multitoc-numbering``
extension) done so that the build stays parallel: that extension does not declare itself
parallel-safe, so Sphinx reads and writes on one core when it is loaded. The numbers are
assigned where Sphinx assigns its own, in the main process after every document has been
read (the ``env-get-updated`` step of Sphinx's ``TocTreeCollector``), and stored where
Sphinx keeps them, ``env.toc_secnumbers`` and ``env.toc_fignumbers``; the sidebar, the
headings, ``{numref}`` links and sphinx-exercise's titles all read them from there.
Nothing runs in the parallel reading or writing processes, so the extension is safe for
both.
"""

from __future__ import annotations

from typing import Any, cast

from docutils import nodes
from sphinx import addnodes
from sphinx.environment.collectors.toctree import TocTreeCollector
from sphinx.errors import ExtensionError
from sphinx.util import logging, url_re

logger = logging.getLogger(__name__)


def numbered_documents_in_reading_order(env: Any) -> list[str]:
    """The documents that hold numbered toctrees, in the order a reader meets them.

    Sphinx keeps them in a set (``env.numbered_toctrees``); the chapter numbers must follow
    the table of contents, so the documents are ordered by a depth-first walk of the
    toctrees from the root document. Any not reached that way come last, by name.
    """
    order: list[str] = []
    seen: set[str] = set()
    stack = [env.config.root_doc]
    while stack:
        docname = stack.pop()
        if docname in seen:
            continue
        seen.add(docname)
        order.append(docname)
        stack.extend(reversed(env.toctree_includes.get(docname, [])))
    numbered = [docname for docname in order if docname in env.numbered_toctrees]
    return numbered + sorted(set(env.numbered_toctrees) - set(numbered))


class ContinuousTocTreeCollector(TocTreeCollector):
    """Sphinx's table-of-contents collector, with chapter numbers that never restart.

    Only :meth:`assign_section_numbers` differs from Sphinx's: it walks the numbered
    toctrees in reading order and carries the chapter counter from one to the next.
    Figure numbers are then assigned by Sphinx's own code, per chapter number.
    """

    def assign_section_numbers(self, env: Any) -> list[str]:
        """Number the headings of every document under a numbered toctree.

        Returns the documents whose numbers changed since the last build (Sphinx
        rewrites them).
        """
        rewrite_needed: list[str] = []
        assigned: set[str] = set()
        old_secnumbers = env.toc_secnumbers
        env.toc_secnumbers = {}
        # numstack[0] counts chapters over the whole book; deeper entries count the
        # sections, subsections, ... of the chapter being numbered.
        numstack = [0]

        def walk_toc(
            node: nodes.Element,
            secnums: dict[str, tuple[int, ...]],
            depth: int,
            titlenode: nodes.title | None = None,
        ) -> None:
            # The document's title gets its number too, for the previous/next links.
            for subnode in node.children:
                if isinstance(subnode, nodes.bullet_list):
                    numstack.append(0)
                    walk_toc(subnode, secnums, depth - 1, titlenode)
                    numstack.pop()
                    titlenode = None
                elif isinstance(subnode, (nodes.list_item, addnodes.only)):
                    # For ``only`` nodes it is not known yet which branch is kept, so
                    # both are numbered (as Sphinx does).
                    walk_toc(subnode, secnums, depth, titlenode)
                    titlenode = None
                elif isinstance(subnode, addnodes.compact_paragraph):
                    if "skip_section_number" in subnode:
                        continue
                    numstack[-1] += 1
                    reference = cast(nodes.reference, subnode[0])
                    number = list(numstack) if depth > 0 else None
                    secnums[reference["anchorname"]] = tuple(numstack) if depth > 0 else ()
                    reference["secnumber"] = number
                    if titlenode:
                        titlenode["secnumber"] = number
                        titlenode = None
                elif isinstance(subnode, addnodes.toctree):
                    walk_toctree(subnode, depth)

        def walk_toctree(toctreenode: addnodes.toctree, depth: int) -> None:
            if depth == 0:
                return
            for _title, ref in toctreenode["entries"]:
                if url_re.match(ref) or ref == "self":
                    continue
                if ref in assigned:
                    logger.warning(
                        "%s is already assigned section numbers (nested numbered toctree?)",
                        ref,
                        location=toctreenode,
                        type="toc",
                        subtype="secnum",
                    )
                elif ref in env.tocs:
                    secnums: dict[str, tuple[int, ...]] = {}
                    env.toc_secnumbers[ref] = secnums
                    assigned.add(ref)
                    walk_toc(env.tocs[ref], secnums, depth, env.titles.get(ref))
                    if secnums != old_secnumbers.get(ref):
                        rewrite_needed.append(ref)

        for docname in numbered_documents_in_reading_order(env):
            assigned.add(docname)
            doctree = env.get_doctree(docname)
            for toctreenode in doctree.findall(addnodes.toctree):
                depth = toctreenode.get("numbered", 0)
                if depth:
                    # A new Part: its first chapter follows the last one numbered.
                    del numstack[1:]
                    walk_toctree(toctreenode, depth)
        return rewrite_needed


def _replace_sphinx_collector(app: Any) -> None:
    for listener in list(app.events.listeners.get("env-get-updated", [])):
        collector = getattr(listener.handler, "__self__", None)
        if type(collector) is TocTreeCollector:
            collector.disable(app)
            break
    else:
        raise ExtensionError(
            "llmzero.book.numbering could not find Sphinx's TocTreeCollector to replace; "
            "this Sphinx version is not supported (use the one pinned in requirements.txt)."
        )
    app.add_env_collector(ContinuousTocTreeCollector)


def _refuse_serial_numbering(app: Any, env: Any, docnames: list[str]) -> None:
    if "sphinx_multitoc_numbering" in app.extensions:
        raise ExtensionError(
            "Both llmzero.book.numbering and sphinx-multitoc-numbering are loaded. They "
            "number chapters the same way, but the latter makes the build serial: set "
            "`use_multitoc_numbering: false` under `html:` in _config.yml."
        )


def setup(app: Any) -> dict[str, Any]:
    """Replace Sphinx's table-of-contents collector with the continuous one."""
    _replace_sphinx_collector(app)
    app.connect("env-before-read-docs", _refuse_serial_numbering)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
