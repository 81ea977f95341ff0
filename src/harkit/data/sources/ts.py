"""Any classification problem in the UEA / UCR ``.ts`` text format (the sktime / aeon format).

On-disk format (one ``<Problem>_TRAIN.ts`` and one ``<Problem>_TEST.ts`` file)::

    # free-text comment lines, anywhere
    @problemName BasicMotions
    @timeStamps false              (true, "(t,v)" tuples, is not supported)
    @missing false                 missing values are "?" (or NaN)
    @univariate false
    @dimensions 6                  channels per case
    @equalLength true
    @seriesLength 100              when equalLength is true
    @classLabel true Standing Running Walking Badminton
    @data
    v,v,...,v:v,v,...,v: ... :Standing

Each line after ``@data`` is one case: its dimensions separated by ``:``, the values of a
dimension by ``,``, the class label last. Header keys are case-insensitive; unknown headers
are ignored.

How cases become harkit windows ``(cases, time, channels)``:

- Classes keep the order of ``@classLabel``; the train and test files must list the same.
- Channels are named by ``channel_names=[...]``, else by a numbered comment list ``#1. ...``
  to ``#D. ...`` in the header when it has exactly one entry per dimension (NATOPS has one),
  else ``dim_0 ... dim_{D-1}``.
- Missing values are linearly interpolated within their dimension (the nearest value at the
  ends; a dimension with no value at all becomes zeros). In a file declaring
  ``@equalLength false``, trailing time steps that are missing in every dimension are taken
  as padding and removed.
- Unequal lengths: ``length="pad"`` repeats each case's last value up to ``series_length``
  (default: the longest case of both files; longer cases are cut) and adds a channel
  ``_valid`` (1 on real samples, 0 on padding) so a model can tell padding apart;
  ``length="resample"`` linearly interpolates every case to ``series_length`` samples (no
  extra channel). Files whose cases all have ``series_length`` samples are left as they are.
- UEA problems have no subject ids, so every case is its own "subject": train cases are
  subjects ``1..n_train`` and test cases ``n_train + 1 ...``. Validation subjects carved from
  the training split (``data.n_val_subjects``) are therefore held-out cases.
- The sampling rate is not part of the format: ``sampling_rate`` (default 1.0, i.e. time in
  samples) only labels durations.
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harkit.data.dataset import WindowedDataset, WindowSet
from harkit.data.sources import DATASETS
from harkit.data.store import cached_parse, configured_data_dir
from harkit.data.textio import FLOAT32_MAX, plain_int
from harkit.data.windowing import to_length
from harkit.errors import ConfigError, DataFormatError, DatasetNotFoundError

CACHE_VERSION = 1
LENGTH_POLICIES = ("pad", "resample")
MASK_CHANNEL = "_valid"
_MISSING = ("?", "nan", "NaN", "NAN")
_NUMBERED = re.compile(r"#\s*(\d+)\.\s*(\S.*)$")


@dataclass
class TsFile:
    """The cases of one ``.ts`` file.

    Attributes:
        problem: ``@problemName`` (None when absent).
        classes: the ``@classLabel`` labels, in their order.
        channels: channel names (see the module docstring).
        cases: float32 ``(time, dimensions)`` per case, missing values filled.
        labels: int64 class index per case.
        equal_length: the ``@equalLength`` header (None when absent).
    """

    problem: str | None
    classes: list[str]
    channels: list[str]
    cases: list[np.ndarray]
    labels: np.ndarray
    equal_length: bool | None = None


def _slug(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", text.lower()).strip("_")


def _bool(value: str, name: str, key: str, line: int) -> bool:
    v = value.strip().lower()
    if v not in ("true", "false"):
        raise DataFormatError(name, f"@{key} {value!r}: expected true or false", line)
    return v == "true"


def _positive_int(value: str, name: str, key: str, line: int) -> int:
    number = plain_int(value.strip())
    if number is None or number < 1:
        raise DataFormatError(name, f"@{key} {value[:40]!r}: expected a positive integer", line)
    return number


def fill_missing(x: np.ndarray) -> np.ndarray:
    """Linearly interpolate NaNs along time in each column of ``(time, dims)`` (the nearest
    value at the ends; an all-NaN column becomes zeros).

    Example:
        >>> fill_missing(np.array([[np.nan], [1.0], [np.nan], [3.0], [np.nan]]))[:, 0].tolist()
        [1.0, 1.0, 2.0, 3.0, 3.0]
    """
    bad = np.isnan(x)
    if not bad.any():
        return x
    x = x.copy()
    idx = np.arange(len(x))
    for c in np.flatnonzero(bad.any(axis=0)):
        ok = ~bad[:, c]
        x[:, c] = np.interp(idx, idx[ok], x[ok, c]) if ok.any() else 0.0
    return x


def _parse_values(text: str, name: str, line: int, dim: int) -> np.ndarray:
    tokens = text.split(",")
    try:
        vals = np.array([np.nan if t.strip() in _MISSING else float(t) for t in tokens])
    except ValueError:
        for j, tok in enumerate(tokens, 1):
            if tok.strip() not in _MISSING:
                try:
                    float(tok)
                except ValueError:
                    raise DataFormatError(name, f"dimension {dim}, value {j} is {tok[:40]!r}, "
                                                "expected a number or ?", line) from None
        raise  # pragma: no cover
    with np.errstate(invalid="ignore"):  # NaN is a missing value, filled later
        big = np.abs(vals) > FLOAT32_MAX  # cases end up float32: these would become infinite
    if np.isinf(vals).any():
        j = int(np.flatnonzero(np.isinf(vals))[0]) + 1
        raise DataFormatError(name, f"dimension {dim}, value {j} is infinite", line)
    if big.any():
        j = int(np.flatnonzero(big)[0]) + 1
        raise DataFormatError(name, f"dimension {dim}, value {j} is {vals[j - 1]:g}, beyond the "
                                    "float32 range", line)
    return vals


def parse_ts(data: bytes, name: str) -> TsFile:
    """Parse the text of a ``.ts`` classification file.

    Args:
        data: the file's bytes.
        name: how errors name the file.

    Raises:
        DataFormatError: naming ``name``, the 1-based line and what was expected (a wrong
            number of dimensions, an unknown class label, a value that is not a number, ...).

    Example:
        >>> f = parse_ts(b"@dimensions 2\\n@classLabel true a b\\n@data\\n1,2:3,?:b\\n", "x.ts")
        >>> f.classes, f.channels, f.cases[0].tolist(), f.labels.tolist()
        (['a', 'b'], ['dim_0', 'dim_1'], [[1.0, 3.0], [2.0, 3.0]], [1])
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:  # comments in some archive files are Latin-1
        text = data.decode("latin-1")
    header: dict[str, Any] = {}
    classes: list[str] | None = None
    numbered: dict[int, str] = {}
    cases: list[np.ndarray] = []
    labels: list[int] = []
    case_lines: list[int] = []
    in_data = False
    for i, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            m = _NUMBERED.match(line)
            if m and not in_data:
                numbered.setdefault(int(m.group(1)), m.group(2).strip())
            continue
        if not in_data and line.startswith("@"):
            key, _, value = line[1:].partition(" ")
            key = key.lower()
            value = value.strip()
            if key == "data":
                if classes is None:
                    raise DataFormatError(name, "@data before @classLabel: harkit needs "
                                                "class-labelled cases", i)
                in_data = True
            elif key == "problemname":
                header["problem"] = value
            elif key in ("timestamps", "missing", "univariate", "equallength"):
                header[key] = _bool(value, name, key, i)
                if key == "timestamps" and header[key]:
                    raise DataFormatError(name, "@timeStamps true (time-stamped values) is not "
                                                "supported", i)
            elif key in ("dimensions", "serieslength"):
                header[key] = _positive_int(value, name, key, i)
            elif key == "classlabel":
                flag, _, rest = value.partition(" ")
                if not _bool(flag, name, key, i):
                    raise DataFormatError(name, "@classLabel false: the cases have no class "
                                                "labels, harkit needs them", i)
                classes = rest.split()
                if not classes or len(set(classes)) != len(classes):
                    raise DataFormatError(name, "@classLabel true must list distinct class "
                                                f"labels, found {classes}", i)
            elif key == "targetlabel" and _bool(value, name, key, i):
                raise DataFormatError(name, "@targetLabel true (a regression problem) is not "
                                            "supported", i)
            continue
        if not in_data:
            raise DataFormatError(name, f"expected a @header or a # comment before @data, "
                                        f"found {line[:40]!r}", i)
        assert classes is not None
        fields = line.split(":")
        label = fields[-1].strip()
        dims = header.get("dimensions", 1 if header.get("univariate") else None)
        if dims is None:
            dims = header["dimensions"] = len(fields) - 1
        if len(fields) - 1 != dims:
            raise DataFormatError(name, f"case has {len(fields) - 1} dimensions, expected "
                                        f"{dims}", i)
        if label not in classes:
            raise DataFormatError(name, f"class label {label[:40]!r} is not one of @classLabel "
                                        f"{classes}", i)
        series = [_parse_values(f, name, i, d + 1) for d, f in enumerate(fields[:-1])]
        lengths = {len(s) for s in series}
        if len(lengths) != 1:
            raise DataFormatError(name, f"dimensions have different lengths "
                                        f"{[len(s) for s in series]}", i)
        x = np.stack(series, axis=1)  # (time, dims)
        if header.get("equallength") is False:  # NaN tails are padding to the longest case
            valid = np.flatnonzero(~np.isnan(x).all(axis=1))
            x = x[: valid[-1] + 1] if len(valid) else x[:1]
        n = header.get("serieslength")
        if header.get("equallength") and n is not None and len(x) != n:
            raise DataFormatError(name, f"case has {len(x)} values per dimension, expected "
                                        f"{n} (@seriesLength)", i)
        cases.append(fill_missing(x).astype(np.float32))
        labels.append(classes.index(label))
        case_lines.append(i)
    if not in_data:
        raise DataFormatError(name, "no @data line: not a .ts file")
    if not cases:
        raise DataFormatError(name, "no cases after @data")
    if header.get("equallength"):
        first = len(cases[0])
        for x, i in zip(cases, case_lines, strict=True):
            if len(x) != first:
                raise DataFormatError(name, f"case has {len(x)} values per dimension, the first "
                                            f"case {first} (@equalLength true)", i)
    d = cases[0].shape[1]
    if sorted(numbered) == list(range(1, d + 1)):
        channels = [_slug(numbered[k]) or f"dim_{k - 1}" for k in range(1, d + 1)]
        if len(set(channels)) != d:
            channels = [f"dim_{k}" for k in range(d)]
    else:
        channels = [f"dim_{k}" for k in range(d)]
    assert classes is not None
    return TsFile(header.get("problem"), classes, channels, cases,
                  np.array(labels, dtype=np.int64), header.get("equallength"))


def _save(f: TsFile, out: Any) -> None:
    np.savez(out, values=np.concatenate(f.cases), lengths=np.array([len(x) for x in f.cases]),
             labels=f.labels, classes=np.array(f.classes), channels=np.array(f.channels),
             problem=np.array(f.problem or ""),
             equal_length=np.array(-1 if f.equal_length is None else int(f.equal_length)))


def _load(path: Path) -> TsFile:
    with np.load(path) as z:
        a = {k: z[k] for k in z.files}
    bounds = np.concatenate([[0], np.cumsum(a["lengths"])])
    eq = int(a["equal_length"])
    return TsFile(str(a["problem"]) or None, [str(c) for c in a["classes"]],
                  [str(c) for c in a["channels"]],
                  [a["values"][s:e] for s, e in itertools.pairwise(bounds)],
                  a["labels"], None if eq < 0 else bool(eq))


def read_ts(path: str | os.PathLike[str], use_cache: bool = True) -> TsFile:
    """Parse a ``.ts`` file once; later calls read the cached arrays (``HARKIT_CACHE_DIR``)."""
    p = Path(path)
    if not p.is_file():
        raise DatasetNotFoundError(f"ts: no such file {p}")

    def parse(src: Path) -> TsFile:
        return parse_ts(src.read_bytes(), str(src))

    return cached_parse("ts", CACHE_VERSION, p, parse, _save, _load, use_cache)


def _find_pair(data_dir: str | os.PathLike[str] | None, problem: str | None
               ) -> tuple[Path, Path]:
    location = configured_data_dir(data_dir)
    if location is None:
        raise ConfigError("ts: give data_dir (or HARKIT_DATA_DIR) and problem, or train= and "
                          "test= file paths")
    root = Path(location).expanduser()
    if problem is None:  # data_dir is the folder holding exactly one pair
        found = sorted(root.glob("*_TRAIN.ts"))
        if len(found) != 1:
            raise ConfigError(f"ts: no problem given and {root} holds {len(found)} *_TRAIN.ts "
                              "files; set problem=<name>")
        problem = found[0].name[: -len("_TRAIN.ts")]
    looked = []
    for base in (root / "uea" / problem, root / "ucr" / problem, root / "ts" / problem,
                 root / problem, root):
        train, test = base / f"{problem}_TRAIN.ts", base / f"{problem}_TEST.ts"
        looked.append(str(train))
        if train.is_file() and test.is_file():
            return train, test
    raise DatasetNotFoundError(f"ts: problem {problem!r} not found; looked for "
                               + ", ".join(looked) + " (each with its _TEST.ts)")


def _stack(files: list[TsFile], length: int, policy: str, mask: bool
           ) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for f in files:
        xs = [to_length(x, length, policy) for x in f.cases]
        X = np.stack([x for x, _ in xs]) if xs else np.empty((0, length, len(f.channels)))
        if mask:
            X = np.concatenate([X, np.stack([v for _, v in xs])[:, :, None]], axis=2)
        out.append((X.astype(np.float32), f.labels))
    return out


@DATASETS.register(
    "ts",
    description="any UEA/UCR .ts classification problem (problem=<name> under <data_dir>/uea, "
    "or train= / test= files): fixed-length cases, each case its own subject",
    kind="generic",
)
def load_ts(data_dir: str | os.PathLike[str] | None = None, problem: str | None = None,
            train: str | None = None, test: str | None = None, length: str = "pad",
            series_length: int | None = None, sampling_rate: float = 1.0,
            channel_names: list[str] | None = None, use_cache: bool = True) -> WindowedDataset:
    """Load a ``.ts`` train/test pair as windows ``(cases, time, channels)``.

    Args:
        data_dir: a folder holding ``uea/<problem>/``, ``<problem>/`` or the pair itself.
        problem: the problem name, e.g. ``BasicMotions`` (``<problem>_TRAIN.ts`` /
            ``<problem>_TEST.ts``); optional when the folder holds one pair.
        train, test: explicit file paths instead of ``data_dir`` / ``problem``.
        length: unequal lengths: ``pad`` (with the last value, plus a ``_valid`` channel) or
            ``resample`` (linear interpolation).
        series_length: the common length (default: the longest case).
        sampling_rate: samples per second, when known (the format does not say).
        channel_names: names for the dimensions, overriding those found in the file.

    Raises:
        DataFormatError: a malformed file, naming it and the line.
        ConfigError: inconsistent options or train / test files that disagree.

    Example:
        >>> ds = load_ts("/data", problem="BasicMotions")   # doctest: +SKIP
        >>> ds.splits["train"].X.shape, ds.classes           # doctest: +SKIP
        ((40, 100, 6), ['Standing', 'Running', 'Walking', 'Badminton'])
    """
    if length not in LENGTH_POLICIES:
        raise ConfigError(f"ts: length={length!r}, expected one of {LENGTH_POLICIES}")
    if series_length is not None and (not isinstance(series_length, int) or series_length < 1):
        raise ConfigError(f"ts: series_length={series_length!r}, expected a positive integer")
    if not (isinstance(sampling_rate, (int, float)) and sampling_rate > 0):
        raise ConfigError(f"ts: sampling_rate={sampling_rate!r}, expected a positive number")
    if (train is None) != (test is None):
        raise ConfigError("ts: give both train= and test= file paths, or neither")
    if train is not None and test is not None:
        train_path, test_path = Path(train).expanduser(), Path(test).expanduser()
    else:
        train_path, test_path = _find_pair(data_dir, problem)
    tr, te = read_ts(train_path, use_cache), read_ts(test_path, use_cache)
    if te.classes != tr.classes:
        raise ConfigError(f"ts: {test_path} lists classes {te.classes}, {train_path} "
                          f"{tr.classes}; they must be the same, in the same order")
    if len(te.channels) != len(tr.channels):
        raise ConfigError(f"ts: {test_path} has {len(te.channels)} dimensions, {train_path} "
                          f"{len(tr.channels)}")
    channels = list(tr.channels)
    if channel_names is not None:
        if len(channel_names) != len(channels) or len(set(channel_names)) != len(channels):
            raise ConfigError(f"ts: channel_names needs {len(channels)} distinct names, got "
                              f"{channel_names}")
        channels = [str(c) for c in channel_names]
    lengths = [len(x) for f in (tr, te) for x in f.cases]
    target = series_length or max(lengths)
    mask = length == "pad" and any(n != target for n in lengths)
    (Xtr, ytr), (Xte, yte) = _stack([tr, te], target, length, mask)
    if mask:
        channels.append(MASK_CHANNEL)
    n_tr = len(ytr)
    splits = {"train": WindowSet(Xtr, ytr, np.arange(1, n_tr + 1, dtype=np.int64)),
              "test": WindowSet(Xte, yte, np.arange(n_tr + 1, n_tr + len(yte) + 1, dtype=np.int64))}
    name = tr.problem or train_path.name[: -len("_TRAIN.ts")] or train_path.stem
    varied = f", lengths {min(lengths)}-{max(lengths)} ({length} to {target})" \
        if min(lengths) != max(lengths) else ""
    return WindowedDataset(
        "ts", channels, list(tr.classes), float(sampling_rate), target, splits,
        {MASK_CHANNEL: "0/1"} if mask else {},
        f"{name} (.ts): {n_tr} + {len(yte)} cases, {len(tr.channels)} dimensions, length "
        f"{target}{varied}",
    )
