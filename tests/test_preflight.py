"""The preflight: which assets the chapters need, whether each can be loaded, and the summary."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
from conftest import ROOT, notebooks

from llmzero.data import assets
from llmzero.data.assets import Asset, AssetFile

PAYLOAD = b"First Citizen:\n" * 100


def _notebook(folder: Path, name: str, *cells: str) -> Path:
    """A notebook with these code cells (no kernel needed: the preflight only reads them)."""
    content = {
        "cells": [
            {"cell_type": "code", "metadata": {}, "outputs": [], "source": source}
            for source in cells
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = folder / f"{name}.ipynb"
    path.write_text(json.dumps(content), encoding="utf-8")
    return path


@pytest.fixture()
def answering():
    """A local HTTP server that serves PAYLOAD at every path and records the requests."""
    import http.server
    import threading

    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", requests
    httpd.shutdown()
    httpd.server_close()


def _toy(monkeypatch: pytest.MonkeyPatch, url: str, *mirrors: str) -> None:
    asset = Asset(
        name="toy",
        kind="files",
        description="a toy text",
        license="MIT",
        homepage="",
        size=1_234_567,
        files=(AssetFile("data/toy/toy.txt", "0" * 64, url=url, mirrors=mirrors),),
        extra={"main": "data/toy/toy.txt"},
    )
    monkeypatch.setitem(assets.REGISTRY, "toy", asset)


# --- which assets a notebook needs, derived from its code


def test_quoted_names_in_a_notebook_that_uses_the_loader_are_needed(tmp_path):
    direct = _notebook(tmp_path, "direct", 'text = assets.path("tinyshakespeare").read_text()')
    constant = _notebook(
        tmp_path,
        "constant",
        'MODEL_NAME = "all-MiniLM-L6-v2"  # knobs',
        "%matplotlib inline\nmodel_dir = assets.hf_model(MODEL_NAME)",
    )
    loop = _notebook(tmp_path, "loop", 'for name in ["treebank", "names"]:\n    assets.nltk(name)')
    needed = assets.needed_assets([direct, constant, loop])
    assert needed == {
        "tinyshakespeare": [str(direct)],
        "names": [str(loop)],
        "treebank": [str(loop)],
        "all-MiniLM-L6-v2": [str(constant)],
    }


def test_a_notebook_without_the_loader_needs_nothing_even_if_it_says_names(tmp_path):
    plain = _notebook(tmp_path, "plain", 'columns = ["names", "words"]')
    assert assets.needed_assets([plain]) == {}


def test_importing_a_module_that_loads_assets_needs_them(tmp_path):
    corpora = _notebook(tmp_path, "corpora", "from llmzero.data import corpora")
    encoder = _notebook(tmp_path, "encoder", "from llmzero.models.embeddings import encode")
    mention = _notebook(tmp_path, "mention", "# see llmzero.data.corpora for the data")
    needed = assets.needed_assets([corpora, encoder, mention])
    assert set(needed) == {"movie_reviews", "sentence_polarity", "all-MiniLM-L6-v2"}
    assert needed["all-MiniLM-L6-v2"] == [str(encoder)]
    assert str(mention) not in needed["movie_reviews"]


def test_every_literal_loader_call_in_the_chapters_is_found():
    chapters = notebooks()
    needed = assets.needed_assets(chapters)
    call = re.compile(r"""assets\.(?:path|nltk|spacy|hf_model)\(\s*["']([^"']+)["']""")
    for notebook in chapters:
        code = "\n".join(assets._notebook_cells(notebook))
        for name in call.findall(code):
            assert str(notebook) in needed.get(name, []), (notebook.name, name)


def test_indirect_uses_in_the_chapters_are_found():
    needed = assets.needed_assets(notebooks())
    users = {name: {Path(p).stem for p in paths} for name, paths in needed.items()}
    assert "02-linear-algebra" in users["all-MiniLM-L6-v2"]  # assets.hf_model(MODEL_NAME)
    assert {"treebank", "universal_tagset"} <= {
        n for n, u in users.items() if "03-linguistic-structure" in u
    }


# --- availability, and the summary when something is missing


def test_refused_connections_make_a_missing_asset_with_the_fix(isolated, closed_port, monkeypatch):
    _toy(monkeypatch, f"{closed_port}/toy.txt", f"{closed_port}/mirror/toy.txt")
    chapter = _notebook(isolated, "chapter", 'assets.path("toy")')
    start = time.monotonic()
    checks = assets.preflight([chapter], timeout=2)
    assert time.monotonic() - start < 5
    (check,) = checks
    assert not check.available and check.needed_by == (str(chapter),)
    summary = assets.format_preflight(checks)
    assert "1 of the 1 asset the chapters need is not available" in summary
    assert re.search(r"toy\s+1\.2 MB\s+data", summary)
    assert "refused" in summary.lower() and "127.0.0.1" in summary
    assert "python -m llmzero.data.assets fetch toy" in summary
    assert "fetch all" in summary and str(isolated / "cache") in summary
    assert assets.ENV_OFFLINE_DIR in summary and assets.ENV_MIRROR in summary
    assert "how-to-use" in summary


def test_an_answering_source_counts_as_available_and_nothing_is_downloaded(
    isolated, answering, monkeypatch
):
    url, requests = answering
    _toy(monkeypatch, f"{url}/toy.txt")
    checks = assets.preflight([_notebook(isolated, "chapter", 'assets.path("toy")')])
    assert checks[0].available and checks[0].where == f"download from {url[7:]}"
    assert requests == ["/toy.txt"]
    assert not (isolated / "cache" / "data").exists()
    assert assets.format_preflight(checks).startswith("Preflight: the asset the chapters need is")


def test_a_blocked_source_with_a_reachable_mirror_is_available(
    isolated, closed_port, answering, monkeypatch
):
    url, _ = answering
    _toy(monkeypatch, f"{closed_port}/toy.txt", f"{url}/mirror/toy.txt")
    checks = assets.preflight([_notebook(isolated, "chapter", 'assets.path("toy")')])
    assert checks[0].available


def test_offline_mode_makes_no_network_request(isolated, answering, monkeypatch):
    url, requests = answering
    _toy(monkeypatch, f"{url}/toy.txt")
    monkeypatch.setenv(assets.ENV_NO_DOWNLOAD, "1")
    checks = assets.preflight([_notebook(isolated, "chapter", 'assets.path("toy")')])
    assert not checks[0].available and requests == []
    summary = assets.format_preflight(checks)
    assert "Downloads are turned off (LLMZERO_OFFLINE=1)" in summary
    assert f"unset {assets.ENV_NO_DOWNLOAD}" in summary


def test_files_in_the_cache_or_offline_folder_need_no_network(isolated, answering, monkeypatch):
    url, requests = answering
    _toy(monkeypatch, f"{url}/toy.txt")
    chapter = _notebook(isolated, "chapter", 'assets.path("toy")')
    cached = isolated / "cache" / "data/toy/toy.txt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(PAYLOAD)
    assert assets.preflight([chapter])[0].where == "cache"
    offline = isolated / "offline" / "data/toy/toy.txt"
    offline.parent.mkdir(parents=True)
    offline.write_bytes(PAYLOAD)
    cached.unlink()
    monkeypatch.setenv(assets.ENV_OFFLINE_DIR, str(isolated / "offline"))
    assert assets.preflight([chapter])[0].where == "offline folder"
    assert requests == []


def test_cli_exits_nonzero_with_the_summary(isolated, closed_port, monkeypatch, capsys):
    _toy(monkeypatch, f"{closed_port}/toy.txt")
    chapter = _notebook(isolated, "chapter", 'assets.path("toy")')
    assert assets.main(["preflight", str(chapter), "--timeout", "2"]) == 1
    assert "fetch toy" in capsys.readouterr().err
    assert assets.main(["preflight", str(isolated / "no-such-folder")]) == 2


# --- the real chapters, as CI runs them: offline folder set, downloads off


@pytest.mark.skipif(
    not os.environ.get(assets.ENV_OFFLINE_DIR), reason=f"{assets.ENV_OFFLINE_DIR} not set"
)
def test_ci_preflight_passes_instantly_without_network(monkeypatch, capsys):
    monkeypatch.setenv(assets.ENV_NO_DOWNLOAD, "1")

    def no_network(*args: object) -> str:
        raise AssertionError("the preflight probed the network in offline mode")

    monkeypatch.setattr(assets, "_probe", no_network)
    monkeypatch.chdir(ROOT)
    start = time.monotonic()
    assert assets.main(["preflight"]) == 0
    assert time.monotonic() - start < 5
    assert capsys.readouterr().out.startswith("Preflight: all ")


def test_make_book_and_test_run_the_preflight_first():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(
        r"^preflight: install\n\t\$\(BIN\)/python -m llmzero.data.assets preflight$", makefile, re.M
    )
    for target in ("book", "book-ci", "test"):
        assert re.search(rf"^{target}: preflight$", makefile, re.M), target
