"""Strict parsers for whitespace-separated numeric text files, with line-level errors."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from harkit.errors import DataFormatError


def decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataFormatError(name, "not UTF-8/ASCII text (a binary or wrongly encoded file?)",
                              line) from None


def plain_int(token: str) -> int | None:
    """``token`` as a non-negative integer if it is 1 to 18 ASCII digits, else None (``str.isdigit``
    also accepts "²", which ``int`` rejects, and ``int`` refuses more than 4300 digits).

    Example:
        >>> plain_int("12"), plain_int("\u00b2"), plain_int("9" * 5000), plain_int("-1")
        (12, None, None, None)
    """
    ok = 0 < len(token) <= 18 and token.isascii() and token.isdigit()
    return int(token) if ok else None


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
    check_range(arr, name, lambda r: r + 1)
    if np.issubdtype(dtype, np.integer):
        if not np.all(arr == np.round(arr)):
            r, c = np.argwhere(arr != np.round(arr))[0]
            raise DataFormatError(name, f"value {c + 1} is {arr[r, c]}, expected an integer",
                                  int(r) + 1)
        info = np.iinfo(dtype)
        out = (arr < info.min) | (arr > info.max)
        if out.any():
            r, c = np.argwhere(out)[0]
            raise DataFormatError(name, f"value {c + 1} is {arr[r, c]:g}, outside the range of "
                                        f"{np.dtype(dtype).name}", int(r) + 1)
        return arr.astype(dtype)
    return arr.astype(dtype)


# Every signal ends up as float32: a larger magnitude would silently become infinity.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_range(arr: np.ndarray, name: str, line_of: Callable[[int], int],
                what: str = "value") -> None:
    """Reject values beyond the float32 range (``NaN`` passes) in a ``(rows, cols)`` table.

    Raises:
        DataFormatError: naming ``name``, the line ``line_of(row)`` and the column.

    Example:
        >>> check_range(np.array([[1e39]]), "t.txt", lambda r: r + 1)
        Traceback (most recent call last):
        ...
        harkit.errors.DataFormatError: t.txt, line 1: value 1 is 1e+39, beyond the float32 range
    """
    with np.errstate(invalid="ignore"):
        big = np.abs(arr) > FLOAT32_MAX
    if big.any():
        r, c = np.argwhere(big.reshape(len(arr), -1))[0]
        raise DataFormatError(name, f"{what} {c + 1} is {arr.reshape(len(arr), -1)[r, c]:g}, "
                                    "beyond the float32 range",
                              line_of(int(r)))
