"""Shared fixtures: the repository root, the book's configuration and the built site."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"


def toc_files() -> list[str]:
    """Every page listed in _toc.yml, as paths without extension (the root first)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]]
    for part in toc.get("parts", []):
        for chapter in part.get("chapters", []):
            files.append(chapter["file"])
            files.extend(section["file"] for section in chapter.get("sections", []))
    return files


def source_of(page: str) -> Path:
    """The source file (.ipynb or .md) of a table-of-contents entry."""
    for suffix in (".ipynb", ".md"):
        if (ROOT / f"{page}{suffix}").is_file():
            return ROOT / f"{page}{suffix}"
    raise FileNotFoundError(f"{page} in _toc.yml has no .ipynb or .md file")


def notebooks() -> list[Path]:
    """Every chapter notebook in the book (templates excluded)."""
    return sorted(
        p
        for p in (ROOT / "chapters").rglob("*.ipynb")
        if "_templates" not in p.parts and ".ipynb_checkpoints" not in p.parts
    )


def tiny_bert(words: str, **config_overrides):
    """A word-level BERT tokenizer over the space-separated ``words``, and the config of a
    2-layer, 16-wide BERT with that vocabulary: fast random-weight models for tests."""
    import transformers

    vocab = {word: index for index, word in enumerate(words.split())}
    settings = dict(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    settings.update(config_overrides)
    return transformers.BertTokenizer(vocab=vocab), transformers.BertConfig(**settings)


@pytest.fixture(scope="session")
def config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def site() -> Path:
    """The built site; in CI a missing build is a failure, locally the site tests skip."""
    if not (SITE / "index.html").is_file():
        if os.environ.get("CI"):
            pytest.fail("The site was not built: run `make book` (CI runs `make test`).")
        pytest.skip("build the site first: make book")
    return SITE


_RUN_STARTED = pytest.StashKey[float]()


def pytest_sessionstart(session):
    import time

    session.config.stash[_RUN_STARTED] = time.time()


def pytest_terminal_summary(terminalreporter, config):
    """Print the page-weight report tests/test_browser.py wrote during this run."""
    report = ROOT / "_build" / "page-weights.txt"
    started = config.stash.get(_RUN_STARTED, 0.0)
    if report.is_file() and report.stat().st_mtime >= started:
        terminalreporter.write_sep("-", "page weights (tests/test_browser.py)")
        terminalreporter.write(report.read_text(encoding="utf-8"))


# --- fixtures for the asset loader's tests (test_assets.py, test_preflight.py) -----------


@pytest.fixture()
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh asset cache, no offline folder, no mirrors, downloads allowed."""
    from llmzero.data import assets

    monkeypatch.setenv(assets.ENV_CACHE, str(tmp_path / "cache"))
    for variable in (
        assets.ENV_OFFLINE_DIR,
        assets.ENV_NO_DOWNLOAD,
        assets.ENV_MIRROR,
        assets.ENV_NLTK_MIRROR,
        assets.ENV_HF_ENDPOINT,
        assets.ENV_HF_HUB_ENDPOINT,
    ):
        monkeypatch.delenv(variable, raising=False)
    return tmp_path


@pytest.fixture()
def closed_port() -> str:
    """The URL of a port on this machine where nothing listens: connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
