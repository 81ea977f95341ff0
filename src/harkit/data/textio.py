"""Strict parsers for whitespace-separated numeric text files, with line-level errors."""

from __future__ import annotations

import numpy as np

from harkit.errors import DataFormatError


def decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataFormatError(name, "not UTF-8/ASCII text (a binary or wrongly encoded file?)",
                              line) from None


def text_lines(data: bytes, name: str, expected: str) -> tuple[str, list[str]]:
    """A text file's decoded text and its lines, blank lines at the end dropped.

    Raises:
        DataFormatError: not UTF-8, or no line left (``file is empty; expected {expected}``).

    Example:
        >>> text_lines(b"1 2\\n\\n", "t.txt", "rows of numbers")[1]
        ['1 2']
    """
    text = decode(data, name)
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise DataFormatError(name, f"file is empty; expected {expected}")
    return text, lines


def parse_numeric_table(
    data: bytes, name: str, n_cols: int | None, dtype: type = np.float32
) -> np.ndarray:
    """Parse whitespace-separated numbers into ``(rows, n_cols)``.

    Every non-empty line must hold exactly ``n_cols`` finite numbers (``n_cols=None``: the
    number on the first line). Errors name ``name``, the 1-based line and what was expected.

    Example:
        >>> parse_numeric_table(b"1 2\\n3 4\\n", "t.txt", 2).tolist()
        [[1.0, 2.0], [3.0, 4.0]]
    """
    text, lines = text_lines(data, name, "rows of numbers")
    if n_cols is None:
        n_cols = len(lines[0].split())
    tokens = text.split()
    arr: np.ndarray | None = None
    if len(tokens) == len(lines) * n_cols:
        try:
            arr = np.asarray(tokens, dtype=np.float64).reshape(len(lines), n_cols)
        except ValueError:
            arr = None
    if arr is None:  # slow path: find the first offending line
        for i, line in enumerate(lines, 1):
            fields = line.split()
            if len(fields) != n_cols:
                what = "an empty line" if not fields else f"{len(fields)} values"
                raise DataFormatError(name, f"expected {n_cols} numbers, found {what}", i)
            for j, tok in enumerate(fields, 1):
                try:
                    float(tok)
                except ValueError:
                    raise DataFormatError(
                        name, f"value {j} is {tok[:40]!r}, expected a number", i
                    ) from None
        raise DataFormatError(name, "could not parse numbers")  # pragma: no cover
    bad = ~np.isfinite(arr)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataFormatError(
            name, f"value {c + 1} is {arr[r, c]}, expected a finite number", int(r) + 1
        )
    if np.issubdtype(dtype, np.integer):
        if not np.all(arr == np.round(arr)):
            r, c = np.argwhere(arr != np.round(arr))[0]
            raise DataFormatError(name, f"value {c + 1} is {arr[r, c]}, expected an integer",
                                  int(r) + 1)
        return arr.astype(dtype)
    return arr.astype(dtype)
