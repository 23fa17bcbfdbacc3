"""The study plan covers the whole book, links only what exists, and computes its times."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import ROOT, SITE, source_of, toc_files

from llmzero.book import studyplan

PLAN = ROOT / "chapters" / "00-front" / "study-plan.md"
LOAD = re.compile(r"\{plan-load\}`([^`]*)`")
REF = re.compile(r"\{(?:ref|numref)\}`(?:[^`<]*<)?([\w.-]+)>?`")
LABEL = re.compile(r"^\(([\w.-]+)\)=\s*$", re.MULTILINE)
EXERCISE_LABEL = re.compile(r"^:label:\s*([\w.-]+)\s*$", re.MULTILINE)


def _markdown(path: Path) -> str:
    return studyplan.notebook_markdown(path)


def _chapter_labels() -> dict[str, str]:
    """Label of every notebook chapter in the table of contents -> its page."""
    labels = {}
    for page in toc_files():
        source = source_of(page)
        if source.suffix == ".ipynb":
            first = LABEL.search(_markdown(source))
            assert first, f"{page} does not start with a (label)= line"
            labels[first.group(1)] = page
    return labels


def _section(text: str, label: str) -> str:
    """The part of the plan from the ``(label)=`` line to the next level-2 heading's label."""
    start = text.index(f"({label})=")
    following = [m.start() for m in LABEL.finditer(text) if m.start() > start]
    level2 = [i for i in following if text[i:].split("\n", 2)[1].startswith("## ")]
    return text[start : level2[0] if level2 else len(text)]


def _days(section: str) -> list[list[str]]:
    return [m.group(1).split() for m in LOAD.finditer(section)]


def test_every_chapter_is_in_the_14_day_plan_exactly_once():
    plan = _section(PLAN.read_text(encoding="utf-8"), "study-plan-14-days")
    days = _days(plan)
    assert len(days) == 14
    planned = [label for day in days for label in day]
    assert sorted(planned) == sorted(_chapter_labels())
    whole_plan = _days(PLAN.read_text(encoding="utf-8"))[0]  # the total, in the introduction
    assert sorted(whole_plan) == sorted(planned)


def test_each_day_links_the_chapters_it_counts():
    plan = _section(PLAN.read_text(encoding="utf-8"), "study-plan-14-days")
    for day in re.split(r"^### ", plan, flags=re.MULTILINE)[1:]:
        counted = {label for labels in _days(day) for label in labels}
        linked = set(REF.findall(day))
        assert counted <= linked, f"day {day.splitlines()[0]!r} counts unlinked {counted - linked}"


def test_the_7_day_and_4_week_routes_each_cover_every_chapter():
    text = PLAN.read_text(encoding="utf-8")
    chapters = set(_chapter_labels())
    seven = _section(text, "study-plan-7-days")
    rows = [line for line in seven.splitlines() if re.match(r"\| \d ", line)]
    assert len(rows) == 7
    linked = [label for row in rows for label in REF.findall(row) if label in chapters]
    assert sorted(linked) == sorted(chapters)  # each chapter read or skimmed once
    weeks = _section(text, "study-plan-4-weeks")
    assert sorted(label for week in _days(weeks) for label in week) == sorted(chapters)


def test_every_label_the_plan_links_exists():
    known: set[str] = set()
    for path in [
        *ROOT.joinpath("chapters").rglob("*.md"),
        *ROOT.joinpath("chapters").rglob("*.ipynb"),
    ]:
        if "_templates" in path.parts or ".ipynb_checkpoints" in path.parts:
            continue
        text = _markdown(path)
        known |= set(LABEL.findall(text)) | set(EXERCISE_LABEL.findall(text))
    text = PLAN.read_text(encoding="utf-8")
    linked = set(REF.findall(text)) | {label for day in _days(text) for label in day}
    assert linked - known == set()


def test_every_chapter_states_the_reading_time_the_plan_adds_up():
    for label, page in _chapter_labels().items():
        minutes = studyplan.reading_minutes(_markdown(source_of(page)))
        assert minutes is not None and 10 <= minutes <= 180, (label, minutes)


def test_reading_minutes_reads_the_time_line_of_the_chapter_standard():
    line = "*Time:* about 75 minutes to read and 1 to 2 minutes to run on 2 CPU cores."
    assert studyplan.reading_minutes(f"# Title\n\n{line}\n") == 75
    assert studyplan.reading_minutes("*Time:* an hour or so") is None


def test_a_load_adds_reading_and_running_and_says_when_a_chapter_did_not_run(tmp_path):
    first, second = tmp_path / "a.md", tmp_path / "b.md"
    first.write_text("*Time:* about 50 minutes to read, a minute to run.", encoding="utf-8")
    second.write_text("*Time:* about 70 minutes to read, two minutes to run.", encoding="utf-8")
    load = studyplan.chapter_load([first, second], [30.0, 96.0])
    assert load.describe() == "2 chapters · reading about 2 h · running 2.1 min"
    one = studyplan.chapter_load([first], [None])
    assert one.describe() == f"1 chapter · reading about 50 min · running {studyplan.NOT_RUN}"
    third = tmp_path / "c.md"
    third.write_text("no time line", encoding="utf-8")
    with pytest.raises(ValueError, match="minutes to read"):
        studyplan.chapter_load([third], [1.0])


@pytest.mark.site
def test_the_built_plan_shows_a_measured_load_for_every_day(site):
    from bs4 import BeautifulSoup

    page = BeautifulSoup((SITE / "chapters/00-front/study-plan.html").read_text(), "html.parser")
    loads = [span.get_text() for span in page.select("span.plan-load")]
    assert len(loads) == len(_days(PLAN.read_text(encoding="utf-8")))
    assert all("reading about" in text and studyplan.NOT_RUN not in text for text in loads)
    times = json.loads((ROOT / "_build" / "exec-times.json").read_text(encoding="utf-8"))
    total = sum(times[page]["seconds"] for page in _chapter_labels().values()) / 60
    running = re.search(r"running ([\d.]+) min", loads[0])  # the whole plan's total
    assert running and abs(float(running.group(1)) - total) <= 0.06  # the JSON rounds to 0.01 s


def _notebook(title_label: str, minutes: int, code: str) -> str:
    cells = [
        {
            "cell_type": "markdown",
            "id": "intro",
            "metadata": {},
            "source": f"({title_label})=\n# Title\n\n*Time:* about {minutes} minutes to read.",
        },
        {
            "cell_type": "code",
            "id": "work",
            "metadata": {},
            "source": code,
            "execution_count": None,
            "outputs": [],
        },
    ]
    kernel = {"display_name": "Python 3", "language": "python", "name": "python3"}
    return json.dumps(
        {"cells": cells, "metadata": {"kernelspec": kernel}, "nbformat": 4, "nbformat_minor": 5}
    )


@pytest.fixture(scope="module")
def fixture_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-chapter book with a plan page, built by the book's own build command."""
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("plan") / "book"
    root.mkdir()
    config = (
        "title: Fixture\nonly_build_toc_files: true\nexecute:\n  execute_notebooks: force\n"
        "html:\n  use_multitoc_numbering: false\n  baseurl: https://example.org/fixture/\n"
        "latex:\n  use_jupyterbook_latex: false\n"
        "sphinx:\n  extra_extensions:\n    - llmzero.book.sphinxext\n"
    )
    (root / "_config.yml").write_text(config, encoding="utf-8")
    toc = "format: jb-book\nroot: index\nchapters:\n  - file: plan\n  - file: one\n  - file: two\n"
    (root / "_toc.yml").write_text(toc, encoding="utf-8")
    (root / "index.md").write_text("# Fixture\n", encoding="utf-8")
    plan = "# Plan\n\nDay: {plan-load}`ch-one ch-two`\n\nAlone: {plan-load}`ch-two`\n"
    (root / "plan.md").write_text(plan, encoding="utf-8")
    (root / "one.ipynb").write_text(_notebook("ch-one", 40, "print(1)"), encoding="utf-8")
    slow = "import time\ntime.sleep(1.5)"
    (root / "two.ipynb").write_text(_notebook("ch-two", 50, slow), encoding="utf-8")
    build = [sys.executable, "-m", "llmzero.book.build", "--root", str(root), "--jobs", "1"]
    done = subprocess.run(build, cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return root


def test_the_role_renders_reading_and_measured_running_time(fixture_book):
    from bs4 import BeautifulSoup

    html = (fixture_book / "_build" / "html" / "plan.html").read_text(encoding="utf-8")
    loads = [s.get_text() for s in BeautifulSoup(html, "html.parser").select("span.plan-load")]
    times = json.loads((fixture_book / "_build" / "exec-times.json").read_text(encoding="utf-8"))
    expected = [
        (
            "2 chapters · reading about 1 h 30 min",
            times["one"]["seconds"] + times["two"]["seconds"],
        ),
        ("1 chapter · reading about 50 min", times["two"]["seconds"]),
    ]
    for load, (reading, seconds) in zip(loads, expected, strict=True):
        head, running = load.split(" · running ")
        assert head == reading
        assert abs(float(running.removesuffix(" min")) - seconds / 60) <= 0.06  # JSON rounds
    assert times["two"]["seconds"] >= 1.5  # the sleep was measured, not a typed number
