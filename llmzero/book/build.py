"""Build the whole book the way CI does: ``python -m llmzero.book.build --force``.

Runs Jupyter Book 1's Sphinx build with warnings as errors (``-W``), nitpicky
cross-reference checks (``-n``) and ``--keep-going``, executing notebooks in parallel
(one Sphinx worker per CPU core) and, with ``--force``, re-executing every notebook
instead of using the local execution cache. Prints each notebook's execution time,
slowest first, and exits non-zero if anything failed.

Before Sphinx starts, a preflight (:func:`llmzero.data.assets.preflight`) checks in seconds
that every asset the notebooks need can be loaded, and stops with one summary if not. When
a notebook fails, the build says which cell failed and why: the cell's number and first
lines, the exception and its full message, and the path of a full log
(``_build/notebook-failures/``), instead of Sphinx's bare ``ExecutionError``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def exec_table(times: dict[str, dict[str, object]]) -> str:
    """Format per-notebook execution times as a table, slowest first, with the total."""
    rows = sorted(times.items(), key=lambda item: -float(item[1]["seconds"]))  # type: ignore[arg-type]
    width = max([len("notebook")] + [len(name) for name in times])
    lines = [f"{'notebook':{width}}  {'seconds':>8}  status", "-" * (width + 20)]
    for name, info in rows:
        status = "ok" if info["succeeded"] else "FAILED"
        lines.append(f"{name:{width}}  {float(info['seconds']):8.1f}  {status}")  # type: ignore[arg-type]
    total = sum(float(info["seconds"]) for info in times.values())  # type: ignore[arg-type]
    lines.append("-" * (width + 20))
    lines.append(f"{'total (' + str(len(times)) + ' notebooks)':{width}}  {total:8.1f}")
    return "\n".join(lines)


def _single_page_toc(root: Path, page: str) -> str:
    """A table of contents with the book's root, one page and the appendices (for --only)."""
    import yaml

    full = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    kept = [
        {**part, "chapters": [c for c in part["chapters"] if c["file"] != page]}
        for part in full["parts"]
        if part.get("caption") in {"Start here", "Appendices"}
    ]
    kept = [part for part in kept if part["chapters"]]
    toc = {
        "format": "jb-book",
        "root": full["root"],
        "parts": [kept[0], {"caption": "This page", "chapters": [{"file": page}]}, *kept[1:]],
    }
    return yaml.safe_dump(toc, sort_keys=False)


# --------------------------------------------------------------------------- preflight


def toc_notebooks(root: Path, toc: Path) -> list[Path]:
    """The notebooks a table of contents lists (pages without an ``.ipynb`` file are skipped)."""
    import yaml

    data = yaml.safe_load(toc.read_text(encoding="utf-8"))
    pages = [data["root"]]

    def walk(entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            if "file" in entry:
                pages.append(entry["file"])
            for key in ("parts", "chapters", "sections"):
                walk(entry.get(key, []))

    walk(data.get("parts", []) + data.get("chapters", []) + data.get("sections", []))
    candidates = [root / f"{page.removesuffix('.ipynb')}.ipynb" for page in pages]
    return [path for path in candidates if path.is_file()]


def _preflight(root: Path, toc: Path) -> bool:
    """Check the assets of the notebooks in ``toc``; print the summary; True if all are there."""
    from llmzero.data import assets

    checks = assets.preflight(toc_notebooks(root, toc))
    ok = all(check.available for check in checks)
    print(assets.format_preflight(checks), file=sys.stdout if ok else sys.stderr, flush=True)
    return ok


# --------------------------------------------------------------------------- failures

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_CELL_LINE = re.compile(r"Cell In\[\d*\], line (\d+)")
_SOURCE_LINES = 8  # how much of the failing cell the terminal shows


def _failing_cell(notebook: Any, error: BaseException) -> int | None:
    """The index of the cell whose execution failed (nbclient executes the notebook in place)."""
    cells = notebook.cells
    for index, cell in enumerate(cells):
        if any(output.get("output_type") == "error" for output in cell.get("outputs", [])):
            return index
    message = str(error)
    for index, cell in enumerate(cells):  # a timeout: nbclient quotes the cell's source
        if cell.cell_type == "code" and cell.source.strip() and cell.source.strip() in message:
            return index
    executed = [i for i, c in enumerate(cells) if c.get("execution_count") is not None]
    return executed[-1] if executed else None


def _slug(relative: str) -> str:
    return re.sub(r"[^\w.-]+", "--", relative.removesuffix(".ipynb")).strip("-")


def _record_failure(folder: Path, root: Path, client: Any, error: BaseException) -> None:
    """Write what the terminal needs about a failed notebook (JSON) and a full log beside it."""
    cause = error.__cause__ if error.__cause__ is not None else error
    path = Path(client.path) if client.path is not None else None
    relative = (
        (path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path))
        if path is not None
        else "(a notebook)"
    )
    notebook = client.notebook
    index = _failing_cell(notebook, cause)
    source = notebook.cells[index].source if index is not None else ""
    details = _ANSI.sub("", str(cause))
    line = _CELL_LINE.search(details)
    code_cells = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
    record = {
        "notebook": relative,
        "cell": None if index is None else index + 1,
        "cells": len(notebook.cells),
        "code_cell": code_cells.index(index) + 1 if index in code_cells else None,
        "line": int(line.group(1)) if line else None,
        "source": source,
        "ename": getattr(cause, "ename", None) or type(cause).__name__,
        "evalue": getattr(cause, "evalue", None) if hasattr(cause, "ename") else str(cause),
    }
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"{_slug(relative)}.log"
    record["log"] = str(log)
    trace = "".join(traceback.format_exception(cause)) if not hasattr(cause, "ename") else ""
    log.write_text(
        f"Notebook: {relative}\nCell: {record['cell']} of {record['cells']}\n\n"
        f"--- the cell's source ---\n{source}\n\n--- what the kernel reported ---\n"
        f"{details}\n{_ANSI.sub('', trace)}",
        encoding="utf-8",
    )
    (folder / f"{_slug(relative)}.json").write_text(json.dumps(record, indent=2), "utf-8")


@contextlib.contextmanager
def record_notebook_failures(folder: Path, root: Path) -> Iterator[None]:
    """While the build runs, record every notebook whose execution fails into ``folder``.

    myst-nb raises a bare ``ExecutionError(path)``; in a parallel build Sphinx passes on only
    that line, and in a serial build it prints a traceback of its own code and asks for a bug
    report. Here the notebook client is wrapped so that each failure is written to a file as
    it happens (also in Sphinx's forked workers), and Sphinx's report of it is replaced by
    a pointer to :func:`failure_report`. Other exceptions keep Sphinx's report.
    """
    import jupyter_book.sphinx
    from myst_nb.core.execute.base import ExecutionError, NotebookClientBase

    enter = NotebookClientBase.__enter__
    handle_exception = jupyter_book.sphinx.handle_exception

    def recording_enter(client: Any) -> Any:
        try:
            return enter(client)
        except Exception as error:
            with contextlib.suppress(Exception):  # never hide the error itself
                _record_failure(folder, root, client, error)
            raise

    def report(app: Any, args: Any, exception: BaseException, stderr: Any = sys.stderr) -> None:
        recorded = any(folder.glob("*.json"))
        if recorded:
            print("\nThe build stopped because a notebook failed (details below).", file=stderr)
        elif isinstance(exception, ExecutionError) or "ExecutionError" in str(exception):
            print(f"\nThe build stopped because a notebook failed: {exception}", file=stderr)
        else:
            handle_exception(app, args, exception, stderr)

    folder.mkdir(parents=True, exist_ok=True)
    for old in [*folder.glob("*.json"), *folder.glob("*.log")]:
        old.unlink()
    NotebookClientBase.__enter__ = recording_enter  # type: ignore[method-assign]
    jupyter_book.sphinx.handle_exception = report
    try:
        yield
    finally:
        NotebookClientBase.__enter__ = enter  # type: ignore[method-assign]
        jupyter_book.sphinx.handle_exception = handle_exception


def failure_report(folder: Path) -> str:
    """For each notebook that failed: its cell, the error and its full message, the log."""
    records = [
        json.loads(file.read_text(encoding="utf-8")) for file in sorted(folder.glob("*.json"))
    ]
    blocks = []
    for record in records:
        rule = "=" * 78
        where = (
            f"cell {record['cell']} of {record['cells']}"
            + (f" (code cell {record['code_cell']})" if record["code_cell"] else "")
            + (f", line {record['line']}" if record["line"] else "")
            if record["cell"]
            else "a cell that could not be identified"
        )
        lines = [rule, f"NOTEBOOK FAILED: {record['notebook']}", f"at {where}:"]
        source = record["source"].splitlines()
        lines += [f"    {text}".rstrip() for text in source[:_SOURCE_LINES]]
        if len(source) > _SOURCE_LINES:
            lines.append(f"    ... ({len(source) - _SOURCE_LINES} more lines)")
        log = Path(record["log"])
        with contextlib.suppress(ValueError):
            log = log.relative_to(Path.cwd())
        lines += [
            "",
            f"{record['ename']}: {record['evalue']}",
            "",
            f"Full log (the cell, its output and the traceback): {log}",
            rule,
        ]
        blocks.append("\n".join(lines))
    if records:
        blocks.append(
            "Sphinx stops at the first failed notebook: notebooks that had not run yet were not "
            "checked."
        )
    return "\n".join(blocks)


def write_reader_notebooks(root: Path, site: Path) -> bool:
    """The build's last step: the reader notebooks (:mod:`llmzero.book.reader`) of every
    chapter this build executed, into ``_build/notebooks`` and the site's ``notebooks/``.
    Returns whether it succeeded; a failure is printed, not raised."""
    from llmzero.book.reader import ReaderError
    from llmzero.book.reader import write_reader_notebooks as write

    try:
        write(root, site.parent, site)
    except (ReaderError, OSError) as error:
        print(f"\nReader notebooks FAILED: {error}")
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    """Build the book; return the Sphinx exit status (0 on success)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--force", action="store_true", help="re-execute every notebook")
    parser.add_argument(
        "--jobs",
        default=str(os.cpu_count() or 1),
        help="parallel Sphinx workers (default: one per CPU core)",
    )
    parser.add_argument("--root", default=".", help="the book's root folder")
    parser.add_argument(
        "--only",
        metavar="PAGE",
        help="build just this page (e.g. chapters/01-foundations/02-linear-algebra) with the "
        "front matter and appendices, into _build/only/<page>; always re-executes it",
    )
    parser.add_argument(
        "--no-preflight",
        action="store_true",
        help="skip the check that every asset the notebooks need is available (make runs it)",
    )
    args = parser.parse_args(argv)

    root = Path(args.root).resolve()
    output = root / "_build" / "html"
    # What `jupyter-book build --nitpick` passes to Sphinx, plus our overrides.
    overrides: dict[str, object] = {
        "nitpicky": True,
        "latex_individualpages": False,
        "external_toc_path": (root / "_toc.yml").as_posix(),
    }
    if args.force or args.only:
        overrides["nb_execution_mode"] = "force"
    if args.only:
        page = args.only.removesuffix(".ipynb").removesuffix(".md")
        output = root / "_build" / "only" / page.replace("/", "--") / "html"
        output.parent.mkdir(parents=True, exist_ok=True)
        toc = output.parent / "_toc.yml"
        toc.write_text(_single_page_toc(root, page), encoding="utf-8")
        overrides["external_toc_path"] = toc.as_posix()
        # Links to other chapters cannot resolve when one page is built alone; the full
        # build (CI) checks every one of them.
        overrides["suppress_warnings"] = ["mystnb.unknown_mime_type", "ref.ref"]
    if not args.no_preflight and not _preflight(root, Path(str(overrides["external_toc_path"]))):
        return 1
    from jupyter_book.sphinx import build_sphinx

    jobs = int(args.jobs) if args.jobs != "auto" else (os.cpu_count() or 1)
    # Notebook kernels inherit this. With several notebooks executing at once, more math
    # threads than free cores make PyTorch's small training steps many times slower (the
    # GPT chapter's model on a busy 2-core machine: 169 ms per step with 1 thread, 2,276 ms
    # with 2), so each kernel gets its share of the cores. Readers' own runs are unaffected.
    threads = str(max(1, (os.cpu_count() or 1) // max(1, jobs)))
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(variable, threads)
    start = time.monotonic()
    failures = output.parent / "notebook-failures"
    with record_notebook_failures(failures, root):
        status = build_sphinx(
            root,
            output,
            noconfig=True,
            path_config=str(root / "_config.yml"),
            confoverrides=overrides,
            warningiserror=True,
            keep_going=True,
            freshenv=args.force,
            jobs=jobs,
        )
    status = status if isinstance(status, int) else 1  # an exception stopped the build
    elapsed = time.monotonic() - start
    times_file = output.parent / "exec-times.json"
    times = json.loads(times_file.read_text(encoding="utf-8")) if times_file.is_file() else {}
    if times:
        print("\nNotebook execution times (slowest first):")
        print(exec_table(times))
    print(
        f"\nBuild finished in {elapsed:.0f} s with status {status}; site: {output / 'index.html'}"
    )
    report = failure_report(failures)
    if report:
        sys.stdout.flush()  # keep the report after the table when both go to one pipe
        print(f"\n{report}", file=sys.stderr, flush=True)
    # Reader notebooks: the chapters as Jupyter, Colab and Binder show them (only from a
    # build whose every notebook ran).
    readers_ok = status == 0 and write_reader_notebooks(root, output)
    return 0 if status == 0 and readers_ok else 1


if __name__ == "__main__":
    sys.exit(main())
