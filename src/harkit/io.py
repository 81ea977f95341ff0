"""Atomic file writes: write to a temporary file in the same folder, fsync, then rename.

A temporary file is named ``.{name}.{pid}.tmp-XXXXXXXX{suffix}`` after its target and the
writing process, so a file left by a killed process is never mistaken for a real one and can
be removed once that process is gone (:func:`remove_stale_temp_files`).

Test hook: with ``HARKIT_FAULT_SLOW_WRITE=SECONDS`` in the environment,
:func:`atomic_write_bytes` and :func:`atomic_write_text` sleep that long after writing half of
the bytes to the temporary file (only for targets whose file name matches the glob
``HARKIT_FAULT_SLOW_WRITE_MATCH``, default every file), so a crash test can kill the process in
the middle of a write (``benchmarks/kill_soak.py``). Unset, it costs one environment lookup.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

SLOW_WRITE_ENV = "HARKIT_FAULT_SLOW_WRITE"
SLOW_WRITE_MATCH_ENV = "HARKIT_FAULT_SLOW_WRITE_MATCH"

# ``.{name}.{pid}.tmp-{random}{suffix}``: what atomic_path names its temporary files
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.tmp-[^.]+(?:\.[^.]+)?$")


def _temp_prefix(target: Path) -> str:
    return f".{target.name}.{os.getpid()}.tmp-"


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp",
                previous: str | Path | None = None) -> Iterator[Path]:
    """A temporary sibling of ``path`` (an empty file named ``...{suffix}``) for a writer
    that wants a file name; renamed over ``path`` on success, removed on an exception.

    ``suffix`` serves writers that pick the format from the name (``.gif``). With
    ``previous``, the file that ``path`` held is kept there (see :func:`_keep_previous`).

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "out.txt"
        >>> with atomic_path(target) as tmp:
        ...     _ = tmp.write_text("done")
        >>> target.read_text()
        'done'
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(target), suffix=suffix, dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        if previous is not None and target.exists():
            _keep_previous(target, Path(previous))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)  # the rename itself survives a power loss


def _keep_previous(target: Path, previous: Path) -> None:
    """Make ``previous`` a copy of ``target`` without a moment where neither holds it: a hard
    link renamed over ``previous`` (``target`` stays in place); where the file system has no
    hard links, ``target`` is renamed to ``previous`` (``previous`` then holds it)."""
    link = previous.with_name(f"{_temp_prefix(previous)}link")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(link)
    try:
        os.link(target, link)
    except OSError:
        os.replace(target, previous)
        return
    os.replace(link, previous)


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries to disk (a no-op where folders cannot be opened: Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb", *, previous: str | Path | None = None,
                **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; rename it over ``path`` on success.

    A crash or exception leaves either the old file or no file, never a partial one. With
    ``previous``, the old file is kept there.
    """
    with atomic_path(path, previous=previous) as tmp, open(tmp, mode, **kwargs) as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


def _write(f: IO[Any], data: str | bytes, target: Path) -> None:
    """``f.write(data)``, pausing half-way under the ``HARKIT_FAULT_SLOW_WRITE`` test hook."""
    delay = os.environ.get(SLOW_WRITE_ENV)
    if delay and fnmatch.fnmatch(target.name, os.environ.get(SLOW_WRITE_MATCH_ENV) or "*"):
        half = len(data) // 2
        f.write(data[:half])
        f.flush()  # the half-written temporary file is visible while the process sleeps
        time.sleep(float(delay))
        data = data[half:]
    f.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as f:
        _write(f, text, Path(path))


def atomic_write_bytes(path: str | Path, data: bytes, previous: str | Path | None = None
                       ) -> None:
    """Write ``data`` to ``path`` atomically; with ``previous``, keep the old file there."""
    with atomic_open(path, "wb", previous=previous) as f:
        _write(f, data, Path(path))


def atomic_save(path: str | Path, writer: Callable[[IO[Any]], None]) -> None:
    """Call ``writer(f)`` on a temporary binary file and rename it into place."""
    with atomic_open(path, "wb") as f:
        writer(f)


def is_temp_file(path: str | Path) -> bool:
    """Whether ``path`` is a temporary file of :func:`atomic_path` (never a real file).

    Example:
        >>> is_temp_file(".last.pt.4242.tmp-k2j4_x9a.tmp"), is_temp_file("last.pt")
        (True, False)
    """
    return _TEMP_NAME.match(Path(path).name) is not None


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` may still be running (always True on Windows, where asking
    with ``os.kill`` would end it)."""
    if pid == os.getpid() or os.name == "nt":  # Windows' os.kill would end the process
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else (or no signals on this platform)
        return True
    return True


def remove_stale_temp_files(folder: str | Path) -> list[Path]:
    """Remove the temporary files that killed processes left under ``folder`` (recursively);
    those of processes still running are kept. Returns the removed paths."""
    removed = []
    for p in sorted(Path(folder).rglob(".*")):
        m = _TEMP_NAME.match(p.name)
        if m is None or not p.is_file() or process_alive(int(m["pid"])):
            continue
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            removed.append(p)
    return removed
