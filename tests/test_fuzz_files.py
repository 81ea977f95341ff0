"""Hostile files: every loader and the config parser either succeed with finite data or raise a
:class:`HarkitError` naming the file (and line or field), and a failed load caches nothing.

The harness (seed datasets, mutations, :func:`check`) is shared with ``benchmarks/fuzz.py``,
which runs it on >= 10,000 generated inputs. Seeds are small copies of each dataset's layout
written by the loaders' own test fixtures, or, for datasets with no fixture writer, a few files
of the real copy in ``../shared/data`` (those targets are skipped when it is absent).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import shutil
import signal
import tempfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harkit.data import load_dataset
from harkit.data.dataset import WindowedDataset
from harkit.data.recording import RecordingDataset
from harkit.errors import ConfigError, DataFormatError, HarkitError

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HARKIT_TEST_DATA_DIR", REPO.parent / "shared" / "data"))

settings.register_profile("fuzz", derandomize=True, max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.function_scoped_fixture])

# --- seeds ---------------------------------------------------------------------------------


@dataclass
class Target:
    """A loader under fuzz: ``build(root)`` writes a valid seed under ``root`` and returns the
    files that may be mutated (relative to ``root``); ``load(root)`` loads it."""

    name: str
    build: Callable[[Path], list[str]]
    load: Callable[[Path], Any]
    binary: bool = False  # seed files are not text (only byte-level mutations make sense)


def _rel(root: Path, paths: Any) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in paths if p.is_file())


def _build_uci(root: Path) -> list[str]:
    from tests.conftest import write_uci_fixture

    write_uci_fixture(root / "uci-har", zipped=False, n_subjects_train=2, n_subjects_test=1,
                      per_subject=3)
    return _rel(root, (root / "uci-har").rglob("*.txt"))


def _build_hapt(root: Path) -> list[str]:
    from tests.test_hapt import write_hapt_fixture

    write_hapt_fixture(root / "hapt", zipped=False, n_users=2)
    return _rel(root, (root / "hapt").rglob("*.txt"))


def _build_wisdm(root: Path) -> list[str]:
    from tests.test_wisdm import make_raw, write_wisdm_fixture

    write_wisdm_fixture(root / "wisdm", make_raw(range(1, 4)).text, layout="dir")
    return ["wisdm/WISDM_ar_v1.1/WISDM_ar_v1.1_raw.txt"]


def _build_pamap2(root: Path) -> list[str]:
    from tests.test_pamap2 import write_pamap2_fixture

    write_pamap2_fixture(root / "pamap2", zipped=False)
    return _rel(root, (root / "pamap2").rglob("*.dat"))


def _build_opportunity(root: Path) -> list[str]:
    from tests.test_opportunity import write_opportunity_fixture

    write_opportunity_fixture(root / "opportunity", layout="dir")
    return _rel(root, (root / "opportunity").rglob("*.txt")) + _rel(
        root, (root / "opportunity").rglob("S1-*.dat"))


def _build_skoda(root: Path) -> list[str]:
    from tests.test_skoda import write_skoda_fixture

    write_skoda_fixture(root / "skoda", zipped=False)
    return _rel(root, (root / "skoda").rglob("right_*.mat"))


def _build_csv(root: Path) -> list[str]:
    from tests.test_csv_source import write_logs

    write_logs(root / "logs", n_subjects=2, seconds=9.0)
    return _rel(root, (root / "logs").glob("*.csv"))


def _build_ts(root: Path) -> list[str]:
    from tests.test_ts import EQUAL_TEST, EQUAL_TRAIN, write_pair

    write_pair(root / "Toy", "Toy", EQUAL_TRAIN, EQUAL_TEST)
    return ["Toy/Toy_TRAIN.ts", "Toy/Toy_TEST.ts"]


def _build_openpose(root: Path) -> list[str]:
    from tests.test_openpose import write_dataset

    write_dataset(root / "clips", n_subjects=2)
    files = _rel(root, (root / "clips").rglob("*.json"))
    return ["clips/labels.csv", *files[:: max(1, len(files) // 8)]]


def _build_ntu(root: Path) -> list[str]:
    from tests.test_ntu import write_release

    write_release(root / "ntu")
    return [*_rel(root, (root / "ntu").rglob("*.skeleton")),
            "ntu/NTU_RGBD_samples_with_missing_skeletons.txt"]


def _build_msr(root: Path) -> list[str]:
    from tests.test_skeleton_sources import write_msr

    rng = np.random.default_rng(0)
    skel = root / "msr-action3d" / "skeletons"
    for a in (1, 2):
        for s in (1, 2):
            write_msr(skel, f"a0{a}_s0{s}_e01", rng.normal(size=(5, 20, 3)))
    return _rel(root, skel.glob("*.txt"))


def _build_berkeley(root: Path) -> list[str]:
    from tests.test_berkeley_mhad import write_mhad_fixture

    write_mhad_fixture(root / "berkeley-mhad", zipped=False, subjects=(1, 9), actions=(1,),
                       reps=(1,))
    files = _rel(root, (root / "berkeley-mhad").rglob("*.txt"))
    return files


def _build_mhad_pose(root: Path) -> list[str]:
    from tests.test_mhad_pose import write_release

    write_release(root / "mhad-pose", subjects=(1, 9))
    return _rel(root, (root / "mhad-pose").glob("*.txt"))


def _build_uci_zip(root: Path) -> list[str]:
    from tests.conftest import write_uci_fixture

    write_uci_fixture(root / "uci-har", zipped=True, n_subjects_train=2, n_subjects_test=1,
                      per_subject=3)
    return ["uci-har/UCI HAR Dataset.zip"]


def _build_hapt_zip(root: Path) -> list[str]:
    from tests.test_hapt import write_hapt_fixture

    write_hapt_fixture(root / "hapt", zipped=True, n_users=2)
    return ["hapt/HAPT Data Set.zip"]


def _build_wisdm_tar(root: Path) -> list[str]:
    from tests.test_wisdm import make_raw, write_wisdm_fixture

    write_wisdm_fixture(root / "wisdm", make_raw(range(1, 4)).text, layout="tar")
    return ["wisdm/WISDM_ar_latest.tar.gz"]


def _build_ntu_zip(root: Path) -> list[str]:
    from tests.test_ntu import write_release

    write_release(root / "ntu", zipped=True)
    return ["ntu/nturgbd_skeletons_s001_to_s017.zip"]


def _copy_real(root: Path, rel: str, pick: Callable[[Path], bool]) -> list[Path]:
    src = SHARED_DATA / rel
    if not src.is_dir():
        pytest.skip(f"{src} not found (real data seeds)")
    out = []
    for p in sorted(src.rglob("*")):
        if p.is_file() and pick(p):
            dst = root / rel / p.relative_to(src)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, dst)
            out.append(dst)
    return out


def _build_natops(root: Path) -> list[str]:
    files = _copy_real(root, "uea/NATOPS", lambda p: p.suffix == ".ts")
    for p in files:  # keep the header and a few cases of each file
        lines = p.read_bytes().split(b"\n")
        start = next(i for i, ln in enumerate(lines) if ln.strip().lower() == b"@data")
        p.write_bytes(b"\n".join(lines[: start + 13]) + b"\n")
    return _rel(root, files)


def _build_utkinect(root: Path) -> list[str]:
    keep = ("joints_s01_e01.txt", "joints_s02_e01.txt", "actionLabel.txt",
            "actionLabel_modified.txt")
    files = _copy_real(root, "utkinect", lambda p: p.name in keep)
    return _rel(root, files)


def _build_penn(root: Path) -> list[str]:
    names = sorted(p.name for p in (SHARED_DATA / "penn-action" / "labels").glob("*.mat"))[:6] \
        if (SHARED_DATA / "penn-action" / "labels").is_dir() else []
    files = _copy_real(root, "penn-action", lambda p: p.name in names)
    return _rel(root, files)


TARGETS: dict[str, Target] = {t.name: t for t in [
    Target("uci-har", _build_uci, lambda r: load_dataset("uci-har", data_dir=r)),
    Target("uci-har.zip", _build_uci_zip, lambda r: load_dataset("uci-har", data_dir=r),
           binary=True),
    Target("hapt.zip", _build_hapt_zip, lambda r: load_dataset("hapt", data_dir=r),
           binary=True),
    Target("wisdm.tar.gz", _build_wisdm_tar, lambda r: load_dataset("wisdm", data_dir=r),
           binary=True),
    Target("hapt", _build_hapt, lambda r: load_dataset("hapt", data_dir=r)),
    Target("wisdm", _build_wisdm, lambda r: load_dataset("wisdm", data_dir=r)),
    Target("pamap2", _build_pamap2, lambda r: load_dataset("pamap2", data_dir=r)),
    Target("opportunity", _build_opportunity, lambda r: load_dataset("opportunity", data_dir=r)),
    Target("skoda", _build_skoda, lambda r: load_dataset("skoda", data_dir=r), binary=True),
    Target("csv", _build_csv, lambda r: load_dataset("csv", data_dir=r / "logs")),
    Target("ts", _build_ts, lambda r: load_dataset("ts", data_dir=r, problem="Toy")),
    Target("openpose", _build_openpose,
           lambda r: load_dataset("openpose", data_dir=r / "clips", length=8,
                                  test_subjects=[2])),
    Target("ntu", _build_ntu, lambda r: load_dataset("ntu", data_dir=r, policy="pad",
                                                     length=50)),
    Target("ntu.zip", _build_ntu_zip, lambda r: load_dataset("ntu", data_dir=r, policy="pad",
                                                             length=50), binary=True),
    Target("msr-action3d", _build_msr,
           lambda r: load_dataset("msr-action3d", data_dir=r, length=8)),
    Target("berkeley-mhad", _build_berkeley,
           lambda r: load_dataset("berkeley-mhad", data_dir=r)),
    Target("mhad-pose", _build_mhad_pose, lambda r: load_dataset("mhad-pose", data_dir=r)),
    Target("natops", _build_natops, lambda r: load_dataset("natops", data_dir=r)),
    Target("utkinect", _build_utkinect, lambda r: load_dataset("utkinect", data_dir=r)),
    Target("penn-action", _build_penn, lambda r: load_dataset("penn-action", data_dir=r),
           binary=True),
]}

# --- mutations -----------------------------------------------------------------------------


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def _pick_line(lines: list[bytes], rng: random.Random) -> int:
    full = [i for i, ln in enumerate(lines) if ln.strip()]
    return rng.choice(full) if full else 0


def _sep(line: bytes) -> bytes:
    for s in (b",", b"\t", b":"):
        if s in line:
            return s
    return b" "


def _edit_field(data: bytes, rng: random.Random, token: bytes) -> bytes:
    lines = _lines(data)
    i = _pick_line(lines, rng)
    sep = _sep(lines[i])
    fields = lines[i].split(sep)
    fields[rng.randrange(len(fields))] = token
    lines[i] = sep.join(fields)
    return b"\n".join(lines)


def m_truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def m_empty(data: bytes, rng: random.Random) -> bytes:
    return rng.choice([b"", b"\n", b"   \n\n", b"\x00"])


def m_drop_column(data: bytes, rng: random.Random) -> bytes:
    lines = _lines(data)
    rows = rng.sample(range(len(lines)), k=rng.choice([1, max(1, len(lines) // 2), len(lines)]))
    for i in rows:
        sep = _sep(lines[i])
        f = lines[i].split(sep)
        if len(f) > 1:
            del f[rng.randrange(len(f))]
        lines[i] = sep.join(f)
    return b"\n".join(lines)


def m_add_column(data: bytes, rng: random.Random) -> bytes:
    lines = _lines(data)
    i = _pick_line(lines, rng)
    sep = _sep(lines[i])
    lines[i] = lines[i] + sep + rng.choice([b"1.5", b"", b"x", b"7"])
    return b"\n".join(lines)


def m_non_numeric(data: bytes, rng: random.Random) -> bytes:
    return _edit_field(data, rng, rng.choice([b"abc", b"1.2.3", b"--", b"0x1F", b"1e", b"?",
                                              b"[]", b"{", b"\"", b"null", b"true"]))


def m_nan_inf(data: bytes, rng: random.Random) -> bytes:
    return _edit_field(data, rng, rng.choice([b"nan", b"NaN", b"inf", b"-inf", b"Infinity",
                                              b"-nan"]))


def m_huge(data: bytes, rng: random.Random) -> bytes:
    return _edit_field(data, rng, rng.choice([b"1e308", b"-1.7e308", b"1e999", b"9" * 400,
                                              b"1" + b"0" * 30, b"-" + b"9" * 25, b"1e-400", b"7" * 5000,
                                              b"4294967297", b"-1"]))


def m_dup_header(data: bytes, rng: random.Random) -> bytes:
    lines = _lines(data)
    k = rng.randint(1, min(3, len(lines)))
    at = rng.choice([0, rng.randrange(len(lines) + 1)])
    return b"\n".join(lines[:at] + lines[:k] + lines[at:])


def m_drop_lines(data: bytes, rng: random.Random) -> bytes:
    lines = _lines(data)
    a = rng.randrange(len(lines))
    b = min(len(lines), a + rng.choice([1, 2, 10, len(lines)]))
    return b"\n".join(lines[:a] + lines[b:])


def m_dup_lines(data: bytes, rng: random.Random) -> bytes:
    lines = _lines(data)
    a = rng.randrange(len(lines))
    return b"\n".join(lines[: a + 1] + lines[a: a + rng.choice([1, 5])] + lines[a + 1:])


def m_encoding(data: bytes, rng: random.Random) -> bytes:
    how = rng.choice(["utf16", "latin1", "invalid", "bom", "nul"])
    if how == "utf16":
        return data.decode("latin-1").encode("utf-16")
    if how == "latin1":
        return _edit_field(data, rng, "caf\u00e9".encode("latin-1"))
    if how == "invalid":
        at = rng.randrange(len(data) + 1)
        return data[:at] + rng.choice([b"\xff\xfe", b"\xc3", b"\x80\x81", b"\xed\xa0\x80"]) + data[at:]
    if how == "bom":
        return b"\xef\xbb\xbf" + data
    at = rng.randrange(len(data) + 1)
    return data[:at] + b"\x00" * rng.randint(1, 4) + data[at:]


def m_deep_nesting(data: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(data) + 1)
    k = rng.choice([100, 100_000])
    return data[:at] + rng.choice([b"[", b"{\"a\":"]) * k + data[at:]


def m_byte_flip(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if b:
            b[rng.randrange(len(b))] = rng.randrange(256)
    return bytes(b)


def m_line_endings(data: bytes, rng: random.Random) -> bytes:
    return rng.choice([data.replace(b"\n", b"\r\n"), data.replace(b"\n", b"\r"),
                       data.replace(b" ", b"\t"), data.rstrip(b"\n")])


MUTATIONS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "truncate": m_truncate, "empty": m_empty, "drop-column": m_drop_column,
    "add-column": m_add_column, "non-numeric": m_non_numeric, "nan-inf": m_nan_inf,
    "huge": m_huge, "dup-header": m_dup_header, "drop-lines": m_drop_lines,
    "dup-lines": m_dup_lines, "deep-nesting": m_deep_nesting, "encoding": m_encoding,
    "byte-flip": m_byte_flip,
    "line-endings": m_line_endings,
}
BINARY_MUTATIONS = ("truncate", "empty", "byte-flip", "encoding")

# --- running one input ---------------------------------------------------------------------

ODD_DIRS = ["plain", "with spaces", "n\u00f6n-\u00e4scii \u6570\u636e", "caf\u00e9 dir"]


@dataclass
class Outcome:
    """What one load did: ``ok``, ``harkit`` (a HarkitError) or ``uncaught``."""

    kind: str
    error: str = ""  # type and message
    trace: str = ""
    names_file: bool = True  # a HarkitError's message names a file (or field) it was about
    cached_on_failure: bool = False
    bad_output: str = ""  # a success whose data is not finite


class _Timeout(BaseException):
    pass


@contextlib.contextmanager
def _alarm(seconds: int) -> Iterator[None]:
    def fire(signum: int, frame: Any) -> None:
        raise _Timeout(f"load did not finish in {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@contextlib.contextmanager
def _env(key: str, value: str) -> Iterator[None]:
    old = os.environ.get(key)
    os.environ[key] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def _finite_problem(ds: Any) -> str:
    """Why a loaded dataset is not usable data ("" when it is)."""
    if isinstance(ds, WindowedDataset):
        for split, d in ds.splits.items():
            if not np.isfinite(np.asarray(d.X)).all():
                return f"split {split}: non-finite values"
    elif isinstance(ds, RecordingDataset):
        for r in ds.recordings:
            if not np.isfinite(r.signal).all():
                return f"recording {r.session}: non-finite values"
    return ""


def _names_file(e: HarkitError, root: Path, mutated: str) -> bool:
    msg = str(e)
    if isinstance(e, DataFormatError):
        return str(root) in e.path or Path(mutated).name in e.path
    return Path(mutated).name in msg or str(root) in msg or Path(mutated).parent.name in msg


class Seeds:
    """Seed copies of each target, built once, in a private temporary folder."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="harkit-fuzz-"))
        self.built: dict[str, list[str]] = {}
        self.n = 0

    def files(self, name: str) -> list[str]:
        if name not in self.built:
            self.built[name] = TARGETS[name].build(self.base / "seeds" / name)
        return self.built[name]

    def instance(self, name: str, odd: str) -> Path:
        """A fresh copy of ``name``'s seed (hard links: only the mutated file is rewritten)."""
        self.files(name)
        self.n += 1
        dst = self.base / "runs" / f"{self.n:06d} {odd}" / "data"
        shutil.copytree(self.base / "seeds" / name, dst, copy_function=os.link)
        return dst

    def close(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


def mutate(data: bytes, mutation: str, rng: random.Random) -> bytes:
    out = MUTATIONS[mutation](data, rng)
    return out


def run_input(seeds: Seeds, target: str, mutation: str, seed: int,
              timeout: int = 20) -> tuple[Outcome, str]:
    """Load ``target``'s seed with one file mutated by ``mutation`` (random choices from
    ``seed``); return the outcome and the mutated file (relative path)."""
    rng = random.Random(seed)
    files = seeds.files(target)
    rel = rng.choice(files)
    root = seeds.instance(target, rng.choice(ODD_DIRS))
    path = root / rel
    data = path.read_bytes()
    path.unlink()  # a hard link to the seed: replace, never write through
    path.write_bytes(mutate(data, mutation, rng))
    cache = root.parent / "cache"
    try:
        return check(lambda: TARGETS[target].load(root), root, rel, cache, timeout), rel
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)


def check(load: Callable[[], Any], root: Path, rel: str, cache: Path,
          timeout: int = 20) -> Outcome:
    """Run ``load`` with a private empty cache and classify what happened."""
    cache.mkdir(parents=True, exist_ok=True)
    with _env("HARKIT_CACHE_DIR", str(cache)):
        try:
            with _alarm(timeout):
                ds = load()
        except HarkitError as e:
            parsed = cache / "parsed"
            # an entry, not the lock file that serialises parses (harmless; never removed,
            # since deleting a lock others may wait on would break the locking)
            left = parsed.is_dir() and any(not p.name.endswith(".lock")
                                           for p in parsed.iterdir())
            return Outcome("harkit", f"{type(e).__name__}: {e}",
                           names_file=_names_file(e, root, rel), cached_on_failure=left)
        except (Exception, _Timeout, RecursionError, MemoryError) as e:
            return Outcome("uncaught", f"{type(e).__name__}: {str(e)[:300]}",
                           trace=traceback.format_exc(limit=-8))
    return Outcome("ok", bad_output=_finite_problem(ds))


# --- config --------------------------------------------------------------------------------

CONFIG_KEYS = ["data.dataset", "data.window", "data.hop", "train.lr", "train.epochs",
               "model.name", "train.batch_size", "seed", "data.options.x", "nope", "train.nope",
               "data", "train.lr.x", "", ".", "data..window", "tracking.enabled"]
CONFIG_VALUES = ["1", "-1", "0", "1e308", "1e999", "9" * 400, "nan", "inf", "true", "yes",
                 "null", "~", "[1, 2", "{a: 1}", "[]", "abc", "'x'", "\"", "1.5", "0x10",
                 "- a\n- b", ": :", "!!python/object:os.system x", "\x00", "\u00e9\u6570",
                 "*anchor", "&a [*a]", "2026-01-01", ""]


def run_config(text: str | None, overrides: list[str], tmp: Path) -> Outcome:
    """Load a YAML config file holding ``text`` (if any) with ``overrides``."""
    from harkit.config import ExperimentConfig, apply_overrides, load_config

    path = tmp / "config with spaces \u00e9.yaml"
    if text is not None:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")

    def load() -> Any:
        cfg = load_config(path) if text is not None else ExperimentConfig()
        return apply_overrides(cfg, overrides)

    out = check(load, tmp, path.name, tmp / "cache")
    if out.kind == "harkit":  # a config error names the file or the field
        msg = out.error
        fields = [o.split("=", 1)[0].strip() for o in overrides] + [repr(o) for o in overrides]
        fields.append(path.name)
        out.names_file = any(f and f in msg for f in fields)
    return out


def config_input(rng: random.Random) -> tuple[str | None, list[str]]:
    """A random YAML document and ``--set`` overrides."""
    text: str | None = None
    if rng.random() < 0.7:
        kind = rng.choice(["map", "scalar", "list", "broken", "bytes", "deep"])
        if kind == "map":
            parts = []
            for _ in range(rng.randint(1, 4)):
                key = rng.choice(CONFIG_KEYS)
                if "." in key:
                    a, b = key.split(".", 1)
                    parts.append(f"{a or 'x'}:\n  {b or 'y'}: {rng.choice(CONFIG_VALUES)}")
                else:
                    parts.append(f"{key or 'x'}: {rng.choice(CONFIG_VALUES)}")
            text = "\n".join(parts) + "\n"
        elif kind == "scalar":
            text = rng.choice(CONFIG_VALUES)
        elif kind == "list":
            text = "- 1\n- 2\n"
        elif kind == "broken":
            text = rng.choice(["a: [1, 2\n", "a: b: c\n", "\t- x", "{", "key: 'unterminated",
                               "a:\n  - b\n c: d\n", "%YAML 9.9\n---\na: 1",
                               "1: 2\nnull: 3\n2026-01-01: x\n", "? [a]\n: 1\n",
                               "a: !!binary xyz\n", "a: &x 1\nb: *y\n"])
        elif kind == "bytes":
            text = "data:\n  window: \udcff\n"
        else:
            k = rng.choice([300, 600])  # 600: beyond what PyYAML's recursive parser takes
            text = "data: " + "[" * k + "]" * k + "\n"
    overrides = []
    for _ in range(rng.randint(0, 3)):
        if rng.random() < 0.2:
            overrides.append(rng.choice(["novalue", "=1", "a=b=c", "data.window=", " = "]))
        else:
            overrides.append(f"{rng.choice(CONFIG_KEYS)}={rng.choice(CONFIG_VALUES)}")
    return text, overrides


# --- tests ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seeds() -> Iterator[Seeds]:
    s = Seeds()
    logging.disable(logging.WARNING)
    try:
        yield s
    finally:
        logging.disable(logging.NOTSET)
        s.close()


def _assert_clean(out: Outcome, what: str) -> None:
    assert out.kind != "uncaught", f"{what}: {out.error}\n{out.trace}"
    if out.kind == "harkit":
        assert out.names_file, f"{what}: error does not name the file or field: {out.error}"
        assert not out.cached_on_failure, f"{what}: a failed load wrote to the cache"
    else:
        assert not out.bad_output, f"{what}: {out.bad_output}"


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_seed_loads(seeds: Seeds, target: str) -> None:
    """Each unmutated seed loads: the mutations below start from valid data."""
    root = seeds.instance(target, ODD_DIRS[2])
    out = check(lambda: TARGETS[target].load(root), root, "", root.parent / "cache")
    assert out.kind == "ok", out.error + "\n" + out.trace
    assert not out.bad_output


@pytest.mark.parametrize("target", sorted(TARGETS))
@settings(settings.get_profile("fuzz"), max_examples=30)
@given(mutation=st.sampled_from(sorted(MUTATIONS)), seed=st.integers(0, 2**32 - 1))
def test_hostile_file(seeds: Seeds, target: str, mutation: str, seed: int) -> None:
    if TARGETS[target].binary and mutation not in BINARY_MUTATIONS:
        mutation = "byte-flip"
    out, rel = run_input(seeds, target, mutation, seed)
    _assert_clean(out, f"{target} / {mutation} / seed {seed} / {rel}")


@settings(settings.get_profile("fuzz"), max_examples=200)
@given(seed=st.integers(0, 2**32 - 1))
def test_hostile_config(tmp_path: Path, seed: int) -> None:
    text, overrides = config_input(random.Random(seed))
    d = Path(tempfile.mkdtemp(dir=tmp_path))
    out = run_config(text, overrides, d)
    assert out.kind != "uncaught", f"{text!r} {overrides}: {out.error}\n{out.trace}"
    if out.kind == "harkit":
        assert out.names_file, f"{text!r} {overrides}: {out.error}"


# --- regressions: bugs the fuzz run found ------------------------------------------------


def test_failed_load_leaves_no_cache_entry(tmp_path: Path) -> None:
    """The TRAIN file parses (and used to be cached) before the TEST file fails."""
    from tests.test_ts import EQUAL_TRAIN, write_pair

    write_pair(tmp_path / "Toy", "Toy", EQUAL_TRAIN, "@problemName Toy\n@data\n1,2:walk\n")
    cache = Path(os.environ["HARKIT_CACHE_DIR"]) / "parsed"
    before = set(cache.glob("*.npz")) if cache.is_dir() else set()
    with pytest.raises(DataFormatError, match=r"Toy_TEST\.ts"):
        load_dataset("ts", data_dir=tmp_path, problem="Toy")
    assert (set(cache.glob("*.npz")) if cache.is_dir() else set()) == before
    write_pair(tmp_path / "Toy", "Toy", EQUAL_TRAIN, EQUAL_TRAIN)
    load_dataset("ts", data_dir=tmp_path, problem="Toy")  # a successful load is cached
    assert len(set(cache.glob("*.npz")) - before) == 2


def test_cache_writes_are_kept_only_on_success(tmp_path: Path) -> None:
    from harkit.data.store import cache_writes_on_success, cached_parse

    src = tmp_path / "src.txt"
    src.write_text("x")
    entries = Path(os.environ["HARKIT_CACHE_DIR"]) / "parsed"

    def run(fail: bool) -> None:
        with cache_writes_on_success():
            cached_parse("unit", 1, src, lambda p: np.ones(3), lambda r, f: np.save(f, r),
                         np.load)
            assert not list(entries.glob("unit-*.npz"))  # held back until the block ends
            if fail:
                raise DataFormatError(src, "later check failed")

    with pytest.raises(DataFormatError):
        run(fail=True)
    assert not list(entries.glob("unit-*.npz"))
    run(fail=False)
    assert len(list(entries.glob("unit-*.npz"))) == 1


@pytest.mark.parametrize("value", ["1e39", "-3.5e38", "1" + "0" * 40])
def test_values_beyond_float32_name_file_and_line(tmp_path: Path, value: str) -> None:
    """They used to become +-inf silently in the float32 arrays (UCI-HAR, PAMAP2, .ts, CSV)."""
    from harkit.data.sources.opportunity import parse_gappy_table
    from harkit.data.textio import parse_numeric_table

    with pytest.raises(DataFormatError, match=r"t\.txt, line 2: value 2 .*float32 range"):
        parse_numeric_table(f"1 2\n3 {value}\n".encode(), "t.txt", 2)
    with pytest.raises(DataFormatError, match=r"t\.dat, line 3: value 1 .*float32 range"):
        parse_gappy_table(f"1 NaN\n\n{value} 4\n".encode(), "t.dat", 2)
    from harkit.data.sources.ts import parse_ts
    from tests.test_ts import EQUAL_TEST

    bad = EQUAL_TEST.replace("4,3,2,1:", f"4,3,{value},1:")
    with pytest.raises(DataFormatError, match=r"x\.ts, line 10: dimension 1, value 3 .*float32"):
        parse_ts(bad.encode(), "x.ts")
    from tests.test_csv_source import write_logs

    logs = write_logs(tmp_path / "logs", n_subjects=2, seconds=9.0)
    lines = (logs / "subject02.csv").read_text().splitlines()
    f = lines[5].split(",")
    f[2] = value
    lines[5] = ",".join(f)
    (logs / "subject02.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=r"subject02\.csv, line 6: column 'acc_y'"):
        load_dataset("csv", data_dir=logs)


def test_integer_overflow_in_an_integer_column() -> None:
    from harkit.data.textio import parse_numeric_table

    with pytest.raises(DataFormatError, match=r"y\.txt, line 2: value 1 is 1e\+30, outside the "
                                              "range of int64"):
        parse_numeric_table(b"1\n1e30\n", "y.txt", 1, np.int64)


def test_csv_infinity_is_an_error_and_empty_cells_are_gaps(tmp_path: Path) -> None:
    from tests.test_csv_source import write_logs

    logs = write_logs(tmp_path / "logs", n_subjects=2, seconds=9.0)
    text = (logs / "subject01.csv").read_text().splitlines()
    f = text[3].split(",")
    f[1] = ""  # an empty cell: interpolated (documented)
    text[3] = ",".join(f)
    (logs / "subject01.csv").write_text("\n".join(text) + "\n")
    ds = load_dataset("csv", data_dir=logs)
    assert isinstance(ds, RecordingDataset)
    assert all(np.isfinite(r.signal).all() for r in ds.recordings)
    f[1] = "-inf"
    text[3] = ",".join(f)
    (logs / "subject01.csv").write_text("\n".join(text) + "\n")
    with pytest.raises(DataFormatError, match=r"subject01\.csv, line 4: column 'acc_x': "):
        load_dataset("csv", data_dir=logs)


def test_wisdm_huge_numbers_are_skipped_records() -> None:
    """Used to raise OverflowError converting the records to arrays."""
    from harkit.data.sources.wisdm import parse_raw

    good = b"1,Walking,49105962326000,-0.69,12.68,0.50;\n1,Walking,49106062271000,5.01,11.26,0.95;\n"
    p = parse_raw(good + b"1,Walking," + b"9" * 400 + b",1,2,3;\n1,Walking,49106162271000,1e39,"
                  b"1,2;\n", "raw.txt")
    assert len(p.time) == 2 and "2 number out of range (first at line 3)" in p.summary
    with pytest.raises(DataFormatError, match=r"raw\.txt, line 3: .*number out of range"):
        parse_raw(good + b"1,Walking,49106162271000,1e39,1,2;\n", "raw.txt", strict=True)


@pytest.mark.parametrize("text, message", [
    ('{"people": [{"pose_keypoints_2d": [' + ",".join(["1"] * 53) + ", 1" + "0" * 400 + "]}]}",
     r"pose_keypoints_2d\[53\] is 1000.*expected a finite number"),
    ('{"people": [{"pose_keypoints_2d": [' + ",".join(["1"] * 53) + ", 1" + "0" * 5000 + "]}]}",
     "not valid JSON: Exceeds the limit"),
    ('{"people": ' + "[" * 100_000, "not valid JSON: nested too deeply"),
])
def test_openpose_json_numbers_and_nesting(tmp_path: Path, text: str, message: str) -> None:
    """Used to raise OverflowError, ValueError and RecursionError."""
    from harkit.data.sources.openpose import read_keypoints_file

    p = tmp_path / "s p\u00e4ce" / "c_000000000000_keypoints.json"
    p.parent.mkdir()
    p.write_text(text)
    with pytest.raises(DataFormatError, match=message) as e:
        read_keypoints_file(p)
    assert str(p) in str(e.value)


def test_openpose_labels_csv_with_a_lone_carriage_return(tmp_path: Path) -> None:
    """Used to raise _csv.Error ("new-line character seen in unquoted field")."""
    from harkit.data.sources.openpose import read_labels_csv

    p = tmp_path / "labels.csv"
    p.write_bytes(b"clip,label,subject\rwave_01,waving,3\rwalk_01,walking,4\r")  # old Mac
    assert [(r.clip, r.line) for r in read_labels_csv(p)] == [("wave_01", 2), ("walk_01", 3)]
    p.write_bytes(b"clip,label,subject\nwave_01,wav\ring,3\nwalk_01,walking,4\n")
    with pytest.raises(DataFormatError, match=r"labels\.csv, line 2: empty subject"):
        read_labels_csv(p)


@pytest.mark.parametrize("damage", ["crc", "truncate", "method"])
def test_damaged_zip_members_name_the_archive(tmp_path: Path, damage: str) -> None:
    """Used to raise BadZipFile (bad CRC), zlib.error, OSError or NotImplementedError from
    inside zipfile while reading a member."""
    from tests.conftest import write_uci_fixture

    path = write_uci_fixture(tmp_path / "uci-har", zipped=True, n_subjects_train=2,
                             n_subjects_test=1, per_subject=3)
    data = bytearray(path.read_bytes())
    at = data.find(b"body_acc_x_train.txt") + len("body_acc_x_train.txt")  # its local header
    if damage == "crc":
        data[at + 40] ^= 0xFF  # inside the compressed data
    elif damage == "truncate":
        data = data[: at + 60]  # the central directory is gone too
    else:  # zipfile takes the method from the central directory entry
        central = data.rfind(b"PK\x01\x02", 0, data.rfind(b"body_acc_x_train.txt"))
        data[central + 10] = 99  # an unknown compression method
    path.write_bytes(bytes(data))
    with pytest.raises(DataFormatError, match=r"UCI HAR Dataset\.zip"):
        load_dataset("uci-har", data_dir=tmp_path)


def test_damaged_wisdm_tarball(tmp_path: Path) -> None:
    """Byte flips inside the gzip stream used to let zlib.error escape."""
    from tests.test_wisdm import make_raw, write_wisdm_fixture

    path = write_wisdm_fixture(tmp_path / "wisdm", make_raw(range(1, 3)).text)
    seed = path.read_bytes()
    failures = 0
    for k in range(20, len(seed) - 20, max(1, len(seed) // 30)):
        data = bytearray(seed)
        data[k] ^= 0x5A
        path.write_bytes(bytes(data))
        try:
            load_dataset("wisdm", data_dir=tmp_path, use_cache=False)
        except DataFormatError as e:
            assert "WISDM_ar_latest.tar.gz" in str(e)
            failures += 1
    assert failures > 10


def _config(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "my config \u00e9.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("text, message", [
    ("data: " + "[" * 600 + "]" * 600 + "\n", "nested too deeply"),  # was RecursionError
    ("1: 2\nnull: 3\nseed: 1\n", r"unknown config key\(s\): 1, None"),  # was TypeError
    ("train:\n  lr: .inf\n", "train.lr: expected a finite number, got inf"),
    ("train:\n  lr: 1e999\n", "train.lr: expected a finite number, got '1e999'"),
    ("train:\n  lr: .nan\n", "train.lr: expected a finite number, got nan"),
    ("data:\n  window: " + "[" * 100 + "]" * 100 + "\n",  # the value is shortened
     r"data\.window: expected an integer, got \[{77}\.\.\.$"),
])
def test_config_file_errors(tmp_path: Path, text: str, message: str) -> None:
    from harkit.config import load_config

    path = _config(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as e:
        load_config(path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("override, message", [
    ("=1", r"override '=1': '' is not a dotted key"),
    ("data..window=3", r"override 'data..window=3': 'data..window' is not a dotted key"),
    ("train.lr=1e999", "train.lr: expected a finite number"),
    ("train.lr=nan", "train.lr: expected a finite number"),
])
def test_override_errors(override: str, message: str) -> None:
    from harkit.config import ExperimentConfig, apply_overrides

    with pytest.raises(ConfigError, match=message):
        apply_overrides(ExperimentConfig(), [override])
    assert apply_overrides(ExperimentConfig(), ["train.lr=1e-3"]).train.lr == 1e-3


@pytest.mark.parametrize("bad_id", ["9" * 5000, "\u00b2"])
def test_activity_ids_that_int_rejects(tmp_path: Path, bad_id: str) -> None:
    """``str.isdigit`` accepted them and ``int`` then raised ValueError (HAPT, UCI-HAR)."""
    from tests.test_hapt import write_hapt_fixture

    folder = write_hapt_fixture(tmp_path / "hapt", zipped=False, n_users=2)
    labels = folder / "activity_labels.txt"
    labels.write_text(labels.read_text().replace("2 ", f"{bad_id} ", 1), encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"activity_labels\.txt, line 2: expected '<id> "):
        load_dataset("hapt", data_dir=tmp_path)


def test_ts_header_with_a_huge_series_length() -> None:
    from harkit.data.sources.ts import parse_ts
    from tests.test_ts import EQUAL_TEST

    bad = EQUAL_TEST.replace("@seriesLength 4", "@seriesLength " + "4" * 5000)
    with pytest.raises(DataFormatError, match=r"x\.ts, line 7: @serieslength '4444.*positive "):
        parse_ts(bad.encode(), "x.ts")


def test_utkinect_labels_not_utf8(tmp_path: Path) -> None:
    """``read_text`` used to let UnicodeDecodeError escape."""
    _build_utkinect(tmp_path)  # skipped without the real-data copy
    labels = tmp_path / "utkinect" / "joints" / "actionLabel_modified.txt"
    labels.write_bytes(labels.read_bytes().replace(b"walk", "w\u00e4lk".encode("latin-1"), 1))
    with pytest.raises(DataFormatError, match=r"actionLabel_modified\.txt, line \d+: not UTF-8"):
        load_dataset("utkinect", data_dir=tmp_path)


def test_held_back_cache_write_stores_what_was_parsed(tmp_path: Path) -> None:
    """A cache write held back until the load succeeds stores the parse, not the caller's
    later in-place changes (hapt's 6-class view relabels its recordings in place)."""
    from harkit.data import store

    src = tmp_path / "src.txt"
    src.write_text("1 2 3\n")

    def save(arr: np.ndarray, f: Any) -> None:
        np.save(f, arr)

    with store.cache_writes_on_success():
        arr = store.cached_parse("fixture", 1, src, lambda p: np.loadtxt(p), save, np.load)
        arr[:] = -1  # what a caller does to its copy after the parse
    again = store.cached_parse("fixture", 1, src, lambda p: np.zeros(3), save, np.load)
    assert again.tolist() == [1.0, 2.0, 3.0]
