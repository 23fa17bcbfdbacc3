"""Checks of the repository itself: notebooks, table of contents, configuration, workflows."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, notebooks, source_of, toc_files

TEMPLATE = ROOT / "chapters" / "_templates" / "chapter-template.ipynb"
ALLOWED_NOTEBOOK_METADATA = {"kernelspec", "language_info"}
ALLOWED_CELL_METADATA = {"tags", "mystnb"}


def _cells(path):
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _source(cell) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _setup_cell_text() -> str:
    code = [c for c in _cells(TEMPLATE) if c["cell_type"] == "code"]
    return _source(code[0])


def test_every_toc_entry_has_a_source_file():
    for page in toc_files():
        assert source_of(page).is_file()


def test_every_chapter_notebook_is_in_the_toc():
    listed = {str(source_of(page).relative_to(ROOT)) for page in toc_files()}
    for notebook in notebooks():
        assert str(notebook.relative_to(ROOT)) in listed, f"{notebook} is not in _toc.yml"


@pytest.mark.parametrize("notebook", notebooks(), ids=lambda p: p.stem)
def test_notebook_is_named_by_part_and_number(notebook):
    assert re.fullmatch(r"\d\d-[a-z0-9-]+", notebook.parent.name), notebook.parent.name
    assert re.fullmatch(r"\d\d-[a-z0-9-]+", notebook.stem), notebook.stem


@pytest.mark.parametrize("notebook", notebooks(), ids=lambda p: p.stem)
def test_chapter_starts_with_the_standard_setup_cell(notebook):
    first_code = next(c for c in _cells(notebook) if c["cell_type"] == "code")
    assert _source(first_code) == _setup_cell_text(), (
        "The first code cell must be the setup cell of chapters/_templates/chapter-template.ipynb, "
        "unchanged."
    )
    assert "hide-cell" in first_code["metadata"].get("tags", [])


def test_setup_cell_clones_the_repository_named_in_config(config):
    url = config["repository"]["url"]
    assert url in _setup_cell_text()
    assert (ROOT / "_config.yml").read_text(encoding="utf-8").count(url) == 1


@pytest.mark.parametrize("notebook", [*notebooks(), TEMPLATE], ids=lambda p: p.stem)
def test_notebook_has_no_outputs_counts_or_personal_metadata(notebook):
    content = json.loads(notebook.read_text(encoding="utf-8"))
    extra = set(content["metadata"]) - ALLOWED_NOTEBOOK_METADATA
    assert not extra, f"notebook metadata to strip: {sorted(extra)}"
    for index, cell in enumerate(content["cells"]):
        where = f"{notebook.name} cell {index}"
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], f"{where} has outputs (run nbstripout)"
            assert cell["execution_count"] is None, f"{where} has an execution count"
        extra = set(cell.get("metadata", {})) - ALLOWED_CELL_METADATA
        assert not extra, f"{where} has metadata to strip: {sorted(extra)}"


@pytest.mark.parametrize("notebook", notebooks(), ids=lambda p: p.stem)
def test_chapter_has_the_standard_parts(notebook):
    cells = _cells(notebook)
    markdown = "\n".join(_source(c) for c in cells if c["cell_type"] == "markdown")
    for heading in ("Learning objectives", "Takeaways", "Exercises", "Further reading"):
        assert heading in markdown, f"{notebook.name} lacks a '{heading}' section"
    assert markdown.count("{exercise}") >= 3, "at least three exercises"
    assert ":class: dropdown" in markdown, "solutions go in collapsed dropdowns"
    code = [c for c in cells if c["cell_type"] == "code"]
    assert any("SEED" in _source(c) for c in code[1:3]), "a knobs cell with SEED near the top"
    checked = any(
        "hide-input" in c["metadata"].get("tags", []) and "assert" in _source(code[i + 1])
        for i, c in enumerate(code[:-1])
    )
    assert checked, "a coding exercise: a collapsed solution cell followed by a cell of asserts"


def test_github_workflows_are_valid():
    checker = shutil.which("check-jsonschema", path=str(ROOT / ".venv" / "bin")) or shutil.which(
        "check-jsonschema"
    )
    assert checker, "check-jsonschema is installed by requirements.txt"
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    assert workflows
    result = subprocess.run(
        [checker, "--builtin-schema", "vendor.github-workflows", *map(str, workflows)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_code_and_notebooks_are_ruff_clean():
    ruff = [sys.executable, "-m", "ruff"]
    for command in (["check", "."], ["format", "--check", "."]):
        result = subprocess.run([*ruff, *command], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def _documented_modules() -> list[str]:
    api = (ROOT / "chapters" / "99-appendix" / "api.md").read_text(encoding="utf-8")
    return re.findall(r"^\.\. automodule:: (\S+)", api, flags=re.MULTILINE)


def test_api_reference_documents_only_modules_in_the_repository():
    for module in _documented_modules():
        parts = module.split(".")
        as_file = ROOT.joinpath(*parts).with_suffix(".py")
        as_package = ROOT.joinpath(*parts) / "__init__.py"
        assert as_file.is_file() or as_package.is_file(), (
            f"api.md documents {module}, which is not in the repository: add its file "
            "or remove its section"
        )


def test_every_llmzero_module_is_in_the_api_reference():
    documented = set(_documented_modules())
    package = ROOT / "llmzero"
    for path in sorted(package.rglob("*.py")):
        if path.name.startswith("_") and path.name != "__init__.py":
            continue
        parts = path.relative_to(ROOT).with_suffix("").parts
        module = ".".join(parts[:-1] if path.name == "__init__.py" else parts)
        if module == "llmzero":
            continue
        assert module in documented, f"{module} has no section in chapters/99-appendix/api.md"


@pytest.mark.parametrize("notebook", notebooks(), ids=lambda p: p.stem)
def test_chapter_prerequisites_link_to_earlier_pages(notebook):
    markdown = "\n".join(_source(c) for c in _cells(notebook) if c["cell_type"] == "markdown")
    match = re.search(r"\*\*Prerequisites?:?\*\*(.*?)(?:\n\n|$)", markdown, flags=re.DOTALL)
    assert match, f"{notebook.name} has no **Prerequisites:** paragraph"
    assert "{ref}`" in match.group(1), (
        "prerequisites are links ({ref}`label`), so the build checks them"
    )


# Words that promise a chapter the book does not have (the finished book keeps no promises
# open: a page may not say that something is planned or still to be written).
UNWRITTEN = re.compile(
    r"\b(planned|not yet (?:written|published)|coming soon|to be written|written later)\b",
    re.IGNORECASE,
)


def _reader_facing_pages():
    pages = [ROOT / "README.md", ROOT / "CONTRIBUTING.md"]
    pages += [source_of(page) for page in toc_files()]
    return pages


def _reader_text(path) -> str:
    if path.suffix == ".ipynb":
        return "\n".join(_source(c) for c in _cells(path) if c["cell_type"] == "markdown")
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("page", _reader_facing_pages(), ids=lambda p: p.stem)
def test_no_page_says_a_chapter_is_planned_or_not_yet_written(page):
    found = [m.group(0) for m in UNWRITTEN.finditer(_reader_text(page))]
    assert not found, f"{page.relative_to(ROOT)} says {found}: the book has no unwritten parts"


def test_readme_links_only_files_that_exist_and_lists_every_chapter():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\((?!https?:|#|mailto:)([^)#\s]+)", readme)
    missing = [target for target in targets if not (ROOT / target).exists()]
    assert not missing, f"README.md links files that do not exist: {missing}"
    chapters = {str(source_of(page).relative_to(ROOT)) for page in toc_files()}
    unlisted = sorted(chapters - set(targets) - {"chapters/00-front/welcome.md"})
    assert not unlisted, f"README.md's contents table does not list {unlisted}"


def test_pages_link_only_chapter_files_that_exist():
    for page in _reader_facing_pages():
        text = _reader_text(page)
        for target in re.findall(r"\]\((?!https?:|#|mailto:)([^)#\s]+\.(?:ipynb|md))", text):
            resolved = (page.parent / target) if not target.startswith("/") else ROOT / target[1:]
            assert resolved.exists(), (
                f"{page.relative_to(ROOT)} links {target}, which does not exist"
            )
