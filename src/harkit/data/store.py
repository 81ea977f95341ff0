"""Where datasets live: a local mirror directory, a mirror URL, or the official source.

Resolution order for a dataset file:
1. ``data_dir`` argument / ``--data-dir``, else the ``HARKIT_DATA_DIR`` environment variable.
   A local directory is searched for the dataset's known layouts (``<dir>/<dataset>/...``
   or ``<dir>/...``); an ``http(s)://`` or ``file://`` URL is a mirror with the same layout,
   downloaded into the cache.
2. The cache directory (``HARKIT_CACHE_DIR``, default ``~/.cache/harkit``), filled on first
   use by a download from the dataset's official address.

Downloads are written to a temporary file and renamed into place under a file lock, so two
processes filling the cache at once never see a partial archive.
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import hashlib
import io
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

from harkit.errors import DataFormatError, DatasetNotFoundError
from harkit.io import atomic_open, atomic_write_bytes

T = TypeVar("T")


def cache_dir() -> Path:
    """The harkit cache directory (``HARKIT_CACHE_DIR`` or ``~/.cache/harkit``)."""
    env = os.environ.get("HARKIT_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "harkit"


def configured_data_dir(data_dir: str | os.PathLike[str] | None) -> str | None:
    """The explicit ``data_dir``, else ``HARKIT_DATA_DIR``, else None."""
    if data_dir:
        return os.fspath(data_dir)
    return os.environ.get("HARKIT_DATA_DIR") or None


def is_url(location: str) -> bool:
    return urllib.parse.urlparse(location).scheme in ("http", "https", "file")


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock held on ``path`` (created if needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def download(url: str, target: Path, description: str = "") -> Path:
    """Download ``url`` to ``target`` atomically, with a progress bar; return ``target``."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with file_lock(target.with_name(target.name + ".lock")):
        if target.exists():  # another process finished it while we waited
            return target
        try:
            resp = urllib.request.urlopen(url, timeout=60)
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise DatasetNotFoundError(
                f"cannot download {description or target.name} from {url} ({e}); "
                "point harkit at a local copy with --data-dir or HARKIT_DATA_DIR"
            ) from None
        total = int(resp.headers.get("Content-Length") or 0) or None
        with (
            resp,
            atomic_open(target, "wb") as out,
            Progress(
                "[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                TransferSpeedColumn(), TimeRemainingColumn(), transient=True,
            ) as bar,
        ):
            task = bar.add_task(f"downloading {description or target.name}", total=total)
            while chunk := resp.read(1 << 20):
                out.write(chunk)
                bar.advance(task, len(chunk))
    return target


def locate(
    dataset: str,
    candidates: Sequence[str],
    official_url: str,
    data_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Find (or fetch) one of ``candidates`` (relative paths) for ``dataset``.

    Args:
        dataset: registry name, also the sub-folder name in mirrors and the cache.
        candidates: relative paths to look for, best first (an archive or an unpacked folder).
        official_url: where the first candidate is downloaded from when nothing is local.
        data_dir: explicit local directory or mirror URL (else ``HARKIT_DATA_DIR``).

    Raises:
        DatasetNotFoundError: naming every place that was looked at.
    """
    location = configured_data_dir(data_dir)
    if location and not is_url(location):
        root = Path(location).expanduser()
        looked = []
        for base in (root / dataset, root):
            for rel in candidates:
                p = base / rel
                looked.append(str(p))
                if p.exists():
                    return p
        raise DatasetNotFoundError(
            f"{dataset}: not found in data directory {root}; looked for: " + ", ".join(looked)
        )
    cached = cache_dir() / dataset
    for rel in candidates:
        if (cached / rel).exists():
            return cached / rel
    first = candidates[0]
    if location:  # a mirror URL with the same layout as a local mirror directory
        url = location.rstrip("/") + "/" + urllib.parse.quote(f"{dataset}/{first}")
    else:
        url = official_url
    return download(url, cached / first, description=dataset)


def locate_local(dataset: str, folder: str, home_url: str, how: str,
                 data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Find ``folder`` of a dataset that is never downloaded automatically (its authors hand
    it out): in ``data_dir`` / ``HARKIT_DATA_DIR`` as :func:`locate` looks, or where a user
    put it in the cache.

    Args:
        dataset: registry name.
        folder: the relative path to find (``joints``, ``labels``, ...).
        home_url: where to get the dataset, for the error message.
        how: how it is distributed, for the error message (``"is distributed by its
            authors"``).
        data_dir: explicit local directory or mirror URL (else ``HARKIT_DATA_DIR``).

    Raises:
        DatasetNotFoundError: no data directory is configured and the cache lacks it (saying
            where to get it and what to point at), or the data directory lacks it.
    """
    if configured_data_dir(data_dir) is None and not (cache_dir() / dataset / folder).exists():
        raise DatasetNotFoundError(
            f"{dataset} {how} ({home_url}); point --data-dir or HARKIT_DATA_DIR at a folder "
            f"holding {dataset}/{folder}/")
    return locate(dataset, [folder], home_url, data_dir)


def fingerprint(path: Path) -> str:
    """A cheap identity of a file or folder: resolved path, size and mtime of its files."""
    h = hashlib.sha256(str(path.resolve()).encode())
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for p in files:
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def remove_quietly(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def cached_parse(dataset: str, version: int, src: Path, parse: Callable[[Path], T],
                 save: Callable[[T, IO[Any]], None], load: Callable[[Path], T],
                 use_cache: bool = True) -> T:
    """Parse ``src`` once and keep the result in ``<cache>/parsed``, keyed by ``src``'s path,
    size and modification time (and the parser ``version``).

    A damaged cache entry is rebuilt. A file that this module downloaded into the cache but
    that fails to parse (an error page, a changed archive) is removed, so the next run
    fetches it again instead of failing forever; nothing is cached from a failed parse.
    """
    cache = cache_dir() / "parsed" / f"{dataset}-v{version}-{fingerprint(src)}.npz"
    if not use_cache:
        return _parse_and_save(src, parse, save, cache, False)
    cached = _load_cached(cache, load)
    if cached is not None:
        return cached
    with contextlib.ExitStack() as stack:
        try:  # one process parses and fills the entry; the others wait, then read its file
            stack.enter_context(file_lock(cache.with_name(cache.name + ".lock")))
        except OSError:  # a read-only cache: parse without caching
            return _parse_and_save(src, parse, save, cache, False)
        cached = _load_cached(cache, load)
        if cached is not None:
            return cached
        return _parse_and_save(src, parse, save, cache, True)


def _load_cached(cache: Path, load: Callable[[Path], T]) -> T | None:
    if not cache.exists():
        return None
    try:
        return load(cache)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None  # a damaged entry is rebuilt


def _parse_and_save(src: Path, parse: Callable[[Path], T], save: Callable[[T, IO[Any]], None],
                    cache: Path, use_cache: bool) -> T:
    try:
        result = parse(src)
    except DataFormatError as e:
        if cache_dir() in src.resolve().parents:
            remove_quietly(src)
            raise DataFormatError(e.path, f"{e.problem} (the cached download was removed; run "
                                          "again to fetch it anew)", e.line) from None
        raise
    if use_cache:
        # Serialised now: a write held back by cache_writes_on_success must store what was
        # parsed, not what the caller has made of the result meanwhile (hapt's 6-class view
        # relabels its recordings in place).
        buf = io.BytesIO()
        save(result, buf)
        data = buf.getvalue()

        def write() -> None:
            try:
                atomic_write_bytes(cache, data)
            except OSError:
                pass  # a read-only cache only costs speed

        pending = _PENDING_WRITES.get()
        if pending is None:
            write()
        else:
            pending.append(write)
    return result


_PENDING_WRITES: contextvars.ContextVar[list[Callable[[], None]] | None] = (
    contextvars.ContextVar("harkit_pending_cache_writes", default=None))


@contextlib.contextmanager
def cache_writes_on_success() -> Iterator[None]:
    """Hold back the cache entries :func:`cached_parse` writes inside the block until the block
    ends without an error, so a load that fails part-way (its second file is malformed, its
    parsed arrays fail a later check) leaves nothing in the cache.

    Example:
        >>> with cache_writes_on_success():  # doctest: +SKIP
        ...     ds = load_dataset("ts", data_dir="data", problem="Toy")
    """
    outer = _PENDING_WRITES.get()
    pending: list[Callable[[], None]] = []
    token = _PENDING_WRITES.set(pending)
    try:
        yield
    finally:
        _PENDING_WRITES.reset(token)
    if outer is not None:  # nested: the outermost block decides
        outer.extend(pending)
    else:
        for write in pending:
            write()
