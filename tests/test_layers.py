"""The package's layers import downwards only (import-linter contracts in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(package_parent: Path, config: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(config), "--no-cache"],
        cwd=package_parent,
        env={"PYTHONPATH": str(package_parent), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )


def test_every_layer_imports_only_the_layers_below_it():
    result = _lint_imports(ROOT, ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    # A copy of the package where the lowest layer imports a model: the contract must fail,
    # or the test above proves nothing.
    shutil.copytree(ROOT / "llmzero", tmp_path / "llmzero")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    functional = tmp_path / "llmzero" / "core" / "functional.py"
    functional.write_text(
        functional.read_text(encoding="utf-8") + "\nfrom llmzero.models import gpt  # noqa\n",
        encoding="utf-8",
    )
    result = _lint_imports(tmp_path, tmp_path / "pyproject.toml")
    assert result.returncode != 0
    assert "llmzero.core.functional -> llmzero.models.gpt" in result.stdout


def test_every_subpackage_says_what_lives_there_and_what_it_may_import():
    for init in sorted((ROOT / "llmzero").glob("*/__init__.py")):
        docstring = init.read_text(encoding="utf-8")
        assert docstring.startswith('"""'), f"{init.parent.name} has no docstring"
        if init.parent.name != "book":
            assert "Imports:" in docstring, f"{init.parent.name} does not say what it may import"
