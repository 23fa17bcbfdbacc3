"""Build the whole book the way CI does: ``python -m llmzero.book.build --force``.

Runs Jupyter Book 1's Sphinx build with warnings as errors (``-W``), nitpicky
cross-reference checks (``-n``) and ``--keep-going``, executing notebooks in parallel
(one Sphinx worker per CPU core) and, with ``--force``, re-executing every notebook
instead of using the local execution cache. Prints each notebook's execution time,
slowest first, and exits non-zero if anything failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


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
    from jupyter_book.sphinx import build_sphinx

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
    jobs = int(args.jobs) if args.jobs != "auto" else (os.cpu_count() or 1)
    # Notebook kernels inherit this. With several notebooks executing at once, more math
    # threads than free cores make PyTorch's small training steps many times slower (the
    # GPT chapter's model on a busy 2-core machine: 169 ms per step with 1 thread, 2,276 ms
    # with 2), so each kernel gets its share of the cores. Readers' own runs are unaffected.
    threads = str(max(1, (os.cpu_count() or 1) // max(1, jobs)))
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(variable, threads)
    start = time.monotonic()
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
    elapsed = time.monotonic() - start
    times_file = output.parent / "exec-times.json"
    if times_file.is_file():
        print("\nNotebook execution times (slowest first):")
        print(exec_table(json.loads(times_file.read_text(encoding="utf-8"))))
    print(
        f"\nBuild finished in {elapsed:.0f} s with status {status}; site: {output / 'index.html'}"
    )
    # Reader notebooks: the chapters as Jupyter, Colab and Binder show them.
    readers_ok = write_reader_notebooks(root, output)
    return 0 if status == 0 and readers_ok else 1


if __name__ == "__main__":
    sys.exit(main())
