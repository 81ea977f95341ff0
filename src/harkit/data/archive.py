"""Uniform read access to a dataset's files, zipped or unpacked, with file-naming errors."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from harkit.errors import DataFormatError


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
            try:
                zf = zipfile.ZipFile(path)
            except zipfile.BadZipFile:
                raise DataFormatError(path, "not a valid zip archive (truncated download?)") from None
            names = zf.namelist()
            wrapped = [n for n in names if inner_zip and n.endswith(inner_zip)]
            if full_marker not in names and wrapped:
                zf = zipfile.ZipFile(io.BytesIO(zf.read(wrapped[0])))
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
            try:
                return self._zip.read(self._prefix + rel)
            except KeyError:
                raise DataFormatError(self.name(rel), "file missing from the archive") from None
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
