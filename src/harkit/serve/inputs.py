"""Reading what clients send: JSON arrays of numbers checked against the model's window contract.

Torch-free and web-framework-free, so the checks are tested on their own. Every problem is an
:class:`InputError` with an HTTP status and a message that names the field, the position
(``windows[3][17][2]``) and what was expected; nothing a client sends raises anything else.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np


class InputError(Exception):
    """A request the server refuses: ``status`` (400, 413 or 422) and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_json(data: bytes | str, what: str = "body") -> Any:
    """Decode JSON text; bare ``NaN`` / ``Infinity`` are read as floats (refused later, by
    position, with the other non-finite values).

    Raises:
        InputError: 400 for text that is not UTF-8 or not JSON.
    """
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputError(400, f"{what} is not UTF-8 text (byte {e.start})") from None
    if not data.strip():
        raise InputError(400, f"{what} is empty; expected a JSON object")
    try:
        return json.loads(data)
    except json.JSONDecodeError as e:
        raise InputError(400, f"{what} is not valid JSON: {e.msg} at line {e.lineno} "
                              f"column {e.colno}") from None
    except RecursionError:
        raise InputError(400, f"{what} is nested too deeply") from None


def _kind(v: Any) -> str:
    """A JSON type name for error messages."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"a boolean ({'true' if v else 'false'})"
    if isinstance(v, str):
        shown = v if len(v) <= 20 else v[:20] + "..."
        return f"a string ({shown!r})"
    if isinstance(v, dict):
        return "an object"
    if isinstance(v, list):
        return f"a list of {len(v)}"
    return f"the number {v!r}"


def _explain(value: Any, field: str, dims: Sequence[tuple[int | None, str, str]],
             allow_missing: bool = False) -> None:
    """Walk ``value`` and raise the InputError for its first problem (shape, type or value).

    ``dims`` gives, per axis, the expected length (None: any, at least 1), what the items of
    that axis are and why that length, for messages (``(128, "samples", " (window_len)")``).
    """
    def walk(v: Any, path: str, depth: int) -> None:
        if depth == len(dims):
            if allow_missing and (v is None or (isinstance(v, float) and not math.isfinite(v))):
                return
            if isinstance(v, bool) or not isinstance(v, int | float):
                if isinstance(v, str):
                    try:
                        special = not math.isfinite(float(v))
                    except ValueError:
                        special = False
                    if special:
                        raise InputError(422, f"{path} is the string {v!r}: values must be "
                                              "finite numbers (NaN and infinities are refused, "
                                              "as numbers or as strings)")
                raise InputError(422, f"{path} is {_kind(v)}; expected a number")
            if isinstance(v, int):  # math.isfinite would overflow on a huge int
                if abs(v) > _F32_MAX:
                    raise InputError(422, f"{path} is an integer of {len(str(abs(v)))} "
                                          "digits; too large for float32")
                return
            if not math.isfinite(v) or abs(v) > _F32_MAX:
                raise InputError(422, f"{path} is {v!r}; expected a finite number (float32)")
            return
        want, item, why = dims[depth]
        if not isinstance(v, list):
            raise InputError(422, f"{path} is {_kind(v)}; expected a list of {item}")
        if want is None and not v:
            raise InputError(422, f"{path} is empty: no {item} to predict")
        if want is not None and len(v) != want:
            raise InputError(422, f"{path} has {len(v)} {item}; expected {want}{why}")
        for i, x in enumerate(v):
            walk(x, f"{path}[{i}]", depth + 1)

    walk(value, field, 0)


_F32_MAX = float(np.finfo(np.float32).max)


def to_float_array(value: Any, field: str, dims: Sequence[tuple[int | None, str, str]],
                   strict_types: bool = True, allow_missing: bool = False) -> np.ndarray:
    """``value`` (nested JSON lists) as a float32 array of the shape ``dims`` describes.

    Fast path: numpy converts well-formed input at once; only input it cannot take as a
    regular array of numbers is walked in Python, to name the first bad position. Booleans
    mixed into numbers look like numbers to numpy (0/1): ``strict_types=True`` walks every
    value to refuse them; callers pass False when the JSON text holds no ``true``/``false``.

    ``allow_missing=True`` takes ``null``, ``NaN`` and infinities as missing values (NaN),
    for a stream that repairs them (``nan=repair``).

    Raises:
        InputError: 422 naming the position of a wrong type, length or non-finite value.
    """
    arr: np.ndarray | None = None
    if isinstance(value, list):
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError, OverflowError):  # ragged, or ints beyond 64 bits
            arr = None
    regular = (arr is not None and arr.dtype.kind in "iuf" and arr.ndim == len(dims)
               and all(n > 0 and (w is None or w == n)
                       for (w, _, _), n in zip(dims, arr.shape, strict=True)))
    if not regular or strict_types:
        _explain(value, field, dims, allow_missing)  # any problem but a non-finite float32
    if arr is None or not regular:  # walked: regular lists of numbers (huge ints, say)
        arr = np.array(value, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        out = arr.astype(np.float32)
    finite = np.isfinite(out)
    if allow_missing:
        out[~finite] = np.nan
        finite |= ~np.isfinite(arr.astype(np.float64))  # missing as sent: not an overflow
    if not finite.all():
        pos = tuple(int(i) for i in np.argwhere(~finite)[0])
        where = field + "".join(f"[{i}]" for i in pos)
        raise InputError(422, f"{where} is {float(arr[pos])!r}; expected a finite number "
                              "(float32)")
    return out


def check_keys(obj: Any, allowed: Sequence[str], what: str) -> dict[str, Any]:
    """``obj`` as a dict whose keys are all in ``allowed``.

    Raises:
        InputError: 422 for another JSON type or an unknown key.
    """
    if not isinstance(obj, dict):
        raise InputError(422, f"{what} is {_kind(obj)}; expected a JSON object with "
                              f"{' or '.join(repr(a) for a in allowed[:2])}")
    unknown = [k for k in obj if k not in allowed]
    if unknown:
        raise InputError(422, f"unknown field {unknown[0]!r} in {what}; expected "
                              f"{', '.join(repr(a) for a in allowed)}")
    return obj


def positive_int(v: Any, field: str, limit: int | None = None) -> int:
    """A JSON integer >= 1 (and <= ``limit``), or a 422 InputError naming ``field``."""
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise InputError(422, f"{field} is {_kind(v)}; expected a positive integer")
    if limit is not None and v > limit:
        raise InputError(422, f"{field} is {v}; at most {limit} is accepted")
    return v


def positive_float(v: Any, field: str, limit: float) -> float:
    """A JSON number > 0 and <= ``limit``, or a 422 InputError naming ``field``."""
    if isinstance(v, bool) or not isinstance(v, int | float) or not (0 < v <= limit):
        raise InputError(422, f"{field} is {_kind(v)}; expected a number in (0, {limit:g}]")
    return float(v)


__all__ = ["InputError", "check_keys", "parse_json", "positive_float", "positive_int",
           "to_float_array"]
