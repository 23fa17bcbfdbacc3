"""Scaffolding every chapter of the book's Parts must have (see the chapter standard).

For each chapter notebook listed in ``_toc.yml`` under a Part (not the front matter or the
appendices) the tests check:

- a reading-and-running time estimate right under the learning objectives, in the form
  ``*Time:* about 60 minutes to read, 2 minutes to run on 2 CPU cores.``;
- at least two self-checking coding exercises: in the Exercises section, a solution cell
  (tagged ``hide-input``, starting with ``# Solution``) followed by a visible code cell that
  checks the reader's answer with a real ``assert`` statement or an ``assert_*`` call
  (``torch.testing.assert_close``, ``np.testing.assert_allclose``).
"""

from __future__ import annotations

import ast
import itertools
import json
import re
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, source_of

# Chapters that do not meet the standard yet, each with the reason; the integrator empties
# this list as the fixes land. A chapter here is skipped, not expected to fail: remove it as
# soon as it passes (test_pending_chapters_still_need_the_fix says when).
PENDING: dict[str, str] = {}

# A paragraph such as "*Time:* about 60 minutes to read, 2 minutes to run on 2 CPU cores."
# (it may wrap over several lines, say "to read and", and add a remark after the cores).
TIME_PARAGRAPH = re.compile(
    r"\*Time:\* about \d+(?:[–-]\d+)? minutes to read(?:,| and) .+? to run on 2 CPU cores\b"
)
MIN_CHECKED_EXERCISES = 2


def part_chapters() -> list[str]:
    """The notebooks listed under a Part in _toc.yml (captions starting with "Part")."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    return [
        chapter["file"]
        for part in toc.get("parts", [])
        if part.get("caption", "").startswith("Part")
        for chapter in part.get("chapters", [])
        if source_of(chapter["file"]).suffix == ".ipynb"
    ]


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def time_estimate_problem(cells: list[dict]) -> str | None:
    """None when the objectives are followed by a time line; otherwise what is wrong."""
    for cell in cells:
        text = _source(cell)
        if cell["cell_type"] != "markdown" or "Learning objectives" not in text:
            continue
        after = text.split("Learning objectives", 1)[1]
        if "\n```" not in after:
            return "the learning-objectives admonition is not closed in its cell"
        below = after.split("\n```", 1)[1]
        paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", below)]
        if any(TIME_PARAGRAPH.match(paragraph) for paragraph in paragraphs):
            return None
        return (
            "no paragraph '*Time:* about N minutes to read, M minutes to run on 2 CPU cores.' "
            "under the learning objectives"
        )
    return "no learning-objectives admonition"


def checks_with_assert(code: str) -> bool:
    """Whether Python code contains an assert statement or calls an ``assert*`` function."""
    lines = [line for line in code.splitlines() if not line.lstrip().startswith(("!", "%"))]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
            return True
        if isinstance(node, ast.Call):
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            if name.startswith("assert"):
                return True
    return False


def exercise_section(cells: list[dict]) -> list[dict]:
    """The cells from the '## Exercises' heading to the next level-2 heading."""
    start = None
    for index, cell in enumerate(cells):
        headings = re.findall(r"^## (.+)$", _source(cell), re.M)
        if cell["cell_type"] != "markdown" or not headings:
            continue
        if start is None and "Exercises" in headings:
            start = index
            if headings[-1] != "Exercises":  # another section follows in the same cell
                return [cell]
        elif start is not None:
            return cells[start:index]
    return cells[start:] if start is not None else []


def checked_exercises(cells: list[dict]) -> int:
    """Solution cells in the Exercises section followed by a visible cell that asserts."""
    code = [c for c in exercise_section(cells) if c["cell_type"] == "code"]
    count = 0
    for solution, check in itertools.pairwise(code):
        is_solution = "hide-input" in _tags(solution) and _source(solution).startswith("# Solution")
        hidden = {"remove-cell", "remove-input", "hide-input", "hide-cell"} & set(_tags(check))
        if is_solution and not hidden and checks_with_assert(_source(check)):
            count += 1
    return count


CHAPTERS = part_chapters()


def test_the_parts_list_chapters():
    assert len(CHAPTERS) >= 18, CHAPTERS  # Parts I-III alone have 18 chapters


def test_pending_list_names_only_chapters_in_the_toc():
    assert set(PENDING) <= set(CHAPTERS), sorted(set(PENDING) - set(CHAPTERS))


@pytest.mark.parametrize("page", CHAPTERS, ids=lambda page: page.split("/")[-1])
def test_chapter_states_its_time_under_the_objectives(page):
    if page in PENDING:
        pytest.skip(f"pending: {PENDING[page]}")
    problem = time_estimate_problem(_cells(source_of(page)))
    assert problem is None, f"{page}: {problem}"


@pytest.mark.parametrize("page", CHAPTERS, ids=lambda page: page.split("/")[-1])
def test_chapter_has_two_self_checking_coding_exercises(page):
    if page in PENDING:
        pytest.skip(f"pending: {PENDING[page]}")
    found = checked_exercises(_cells(source_of(page)))
    assert found >= MIN_CHECKED_EXERCISES, (
        f"{page}: {found} self-checking coding exercise(s); the Exercises section needs "
        f"{MIN_CHECKED_EXERCISES}, each a '# Solution' cell tagged hide-input followed by a "
        "visible cell that asserts"
    )


@pytest.mark.parametrize("page", sorted(PENDING), ids=lambda page: page.split("/")[-1])
def test_pending_chapters_still_need_the_fix(page):
    cells = _cells(source_of(page))
    done = time_estimate_problem(cells) is None
    done = done and checked_exercises(cells) >= MIN_CHECKED_EXERCISES
    assert not done, f"{page} now meets the standard: remove it from PENDING"


def test_the_checks_recognise_good_and_bad_chapters():
    def cell(kind, text, tags=()):
        return {"cell_type": kind, "source": text, "metadata": {"tags": list(tags)}}

    objectives = "```{admonition} Learning objectives\n:class: tip\n- do X\n```\n\n"
    good_time = objectives + "*Time:* about 40 minutes to read, 1 minute to run on 2 CPU cores."
    assert time_estimate_problem([cell("markdown", good_time)]) is None
    wrapped = (
        objectives + "*Time:* about 75 minutes to read and 1 to 2\nminutes to run on 2 CPU cores."
    )
    assert time_estimate_problem([cell("markdown", wrapped)]) is None
    assert time_estimate_problem([cell("markdown", objectives + "*Time:* soon.")]) is not None
    inline = objectives + "Read it all. *Time:* about 4 minutes to read, 1 to run on 2 CPU cores."
    assert time_estimate_problem([cell("markdown", inline)]) is not None
    before = "*Time:* about 40 minutes to read, 1 minute to run on 2 CPU cores.\n\n" + objectives
    assert time_estimate_problem([cell("markdown", before)]) is not None

    solution = cell("code", "# Solution (collapsed)\ndef f():\n    return 1", ["hide-input"])
    exercises = [cell("markdown", "## Exercises\n\n```{exercise} A\n```")]
    good = [solution, cell("code", "assert f() == 1\nprint('Correct!')")]
    tested = [solution, cell("code", "torch.testing.assert_close(f(), 1)")]
    weak = [solution, cell("code", "print(f())  # assert nothing")]
    hidden = [solution, cell("code", "assert f() == 1", ["remove-cell"])]
    tail = [cell("markdown", "## Further reading\n"), *good]
    assert checked_exercises(exercises + good + tested + tail) == 2
    assert checked_exercises(exercises + good + weak + hidden + tail) == 1
    assert checked_exercises(good + tested) == 0  # outside an Exercises section


MAX_CELL_LINES = 30


@pytest.mark.parametrize("page", CHAPTERS, ids=lambda page: page.split("/")[-1])
def test_code_cells_are_at_most_thirty_lines(page):
    long = [
        (number, len(_source(cell).splitlines()))
        for number, cell in enumerate(_cells(source_of(page)))
        if cell["cell_type"] == "code" and len(_source(cell).splitlines()) > MAX_CELL_LINES
    ]
    assert not long, f"{page}: code cells (number, lines) over {MAX_CELL_LINES} lines: {long}"
