"""Uniform read access to a dataset's files, zipped or unpacked, with file-naming errors."""

from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path

from harkit.errors import DataFormatError

# What a damaged zip raises besides BadZipFile: zlib and seek errors on truncated or flipped
# bytes, NotImplementedError for an unknown compression method, RuntimeError for encryption.
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError,
              RuntimeError)


def open_zip(source: Path | io.BytesIO, name: str | Path) -> zipfile.ZipFile:
    """``zipfile.ZipFile(source)``; a damaged archive is a :class:`DataFormatError` naming
    ``name``."""
    try:
        return zipfile.ZipFile(source)
    except ZIP_ERRORS as e:
        raise DataFormatError(name, f"not a valid zip archive ({_reason(e)}; truncated "
                                    "download?)") from None


def read_member(zf: zipfile.ZipFile, member: str, name: str) -> bytes:
    """The bytes of ``member``; a damaged one is a :class:`DataFormatError` naming ``name``
    (``archive.zip:member``)."""
    try:
        return zf.read(member)
    except KeyError:
        raise DataFormatError(name, "file missing from the archive") from None
    except ZIP_ERRORS as e:
        raise DataFormatError(name, f"damaged zip member ({_reason(e)}; truncated "
                                    "download?)") from None


def _reason(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


class Archive:
    """Files of a dataset under ``root`` inside a zip archive or a directory.

    Args:
        path: a zip archive (possibly wrapping the original archive in another zip, as the
            UCI site does) or a directory (holding ``root``, or being it).
        marker: a file every valid copy contains, relative to ``root``.
        root: the dataset's top folder inside the archive ("" when files sit at the top).
        inner_zip: name of an archive wrapped inside ``path`` to open instead, when present.
    """

    def __init__(self, path: Path, marker: str, root: str = "",
                 inner_zip: str | None = None) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self._prefix = root + "/" if root else ""
        full_marker = self._prefix + marker
        if path.is_file():
            zf = open_zip(path, path)
            names = zf.namelist()
            wrapped = [n for n in names if inner_zip and n.endswith(inner_zip)]
            if full_marker not in names and wrapped:
                inner = f"{path}:{wrapped[0]}"
                zf = open_zip(io.BytesIO(read_member(zf, wrapped[0], inner)), inner)
                names = zf.namelist()
            if full_marker not in names:
                tops = sorted({n.split("/", 1)[0] for n in names})
                raise DataFormatError(path, f"archive has no '{full_marker}'; top-level "
                                            f"entries: {tops}")
            self._zip = zf
        else:
            if root and (path / root).is_dir():
                self.path = path / root
            self._prefix = ""

    def read(self, rel: str) -> bytes:
        """Bytes of ``rel`` (relative to the dataset root)."""
        if self._zip is not None:
            return read_member(self._zip, self._prefix + rel, self.name(rel))
        p = self.path / rel
        try:
            return p.read_bytes()
        except FileNotFoundError:
            raise DataFormatError(p, "file missing") from None

    def list(self, folder: str) -> list[str]:
        """Relative paths of the files directly inside ``folder``."""
        if self._zip is not None:
            pre = self._prefix + folder.rstrip("/") + "/"
            return sorted(n[len(self._prefix):] for n in self._zip.namelist()
                          if n.startswith(pre) and "/" not in n[len(pre):] and n != pre)
        d = self.path / folder
        return sorted(f"{folder}/{p.name}" for p in d.iterdir() if p.is_file()) if d.is_dir() else []

    def name(self, rel: str) -> str:
        """How errors name ``rel``: ``archive.zip:inner/path`` or the file path."""
        if self._zip is not None:
            return f"{self.path}:{self._prefix}{rel}"
        return str(self.path / rel)
