"""The wisdm source: WISDM_ar_v1.1_raw.txt with the malformations of the published file."""

from __future__ import annotations

import io
import logging
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from harkit.data import load_dataset
from harkit.data.recording import RecordingDataset
from harkit.data.sources.wisdm import CLASSES, parse_raw, read_raw
from harkit.errors import ConfigError, DataFormatError

PER_USER = 160  # records per user: 80 of one activity, then 80 of another, 20 Hz


@dataclass
class Fixture:
    text: str
    expected: list[tuple[int, int, float, float, float]] = field(default_factory=list)
    lines: dict[str, int] = field(default_factory=dict)  # malformation -> its line number


def _num(v: float) -> str:
    return str(np.float32(v))  # the file's float32 spelling: 12.680544, -0.6946377


def make_raw(users: range = range(1, 37)) -> Fixture:
    """Records of every user, one per line, with the published file's glitches mixed in
    (inside user 2's stream); ``expected`` lists (user, timestamp, x, y, z) of the usable ones."""
    rng = np.random.default_rng(0)
    out: list[str] = []
    fx = Fixture("")
    for u in users:
        t = 40_000_000_000_000 + u * 10**12
        for i in range(PER_USER):
            act = CLASSES[(u + (i >= PER_USER // 2)) % 6]
            t += 50_000_000 + int(rng.integers(-2, 3)) * 1_000_000
            if u == 3 and i == 100:
                t += 30 * 10**9  # a 30 s pause: a new recording
            k = CLASSES.index(act)
            x, y, z = (_num(rng.normal(k, 0.5)) for _ in range(3))
            out.append(f"{u},{act},{t},{x},{y},{z};")
            fx.expected.append((u, t, float(x), float(y), float(z)))
    b = PER_USER  # index of user 2's first record
    glitch = {}
    out[b + 10] = glitch["trailing comma"] = out[b + 10][:-1] + ",;"  # kept
    f12 = out[b + 12].split(",")
    out[b + 12] = glitch["empty field"] = ",".join(f12[:5]) + ",;"  # "...,4.4,4.4,;": skipped
    f14 = out[b + 14].split(",")
    out[b + 14] = glitch["zero timestamp"] = ",".join([*f14[:2], "0", *f14[3:]])  # skipped
    del fx.expected[b + 14], fx.expected[b + 12]
    r16 = out[b + 16]
    cut = len(r16) - 9
    out[b + 16] = r16[:cut] + "\n" + r16[cut:]  # one record split across two lines
    glitch["split"] = r16[:cut]
    out[b + 18] = glitch["two on a line"] = out[b + 18] + out[b + 19]
    del out[b + 19]
    out[b + 19] = glitch["no semicolon"] = out[b + 19][:-1]  # (was record 20)
    text_lines = "\n".join(out).split("\n")
    for what, g in glitch.items():
        fx.lines[what] = text_lines.index(g) + 1
    fx.text = "\n".join(text_lines) + "\n\n"
    return fx


ABOUT = ("Fields:\n*user\n\tnominal, 1..36\n*activity\n\tnominal, { Walking Jogging Sitting Standing "
         "Upstairs Downstairs }\n*timestamp\n\tnumeric, generally the phone's uptime in "
         "nanoseconds\n")


def write_wisdm_fixture(root: Path, text: str, layout: str = "tar") -> Path:
    """``tar``: WISDM_ar_latest.tar.gz holding WISDM_ar_v1.1/; ``dir``: that folder; ``raw``:
    the raw file alone."""
    files = {"WISDM_ar_v1.1_raw.txt": text.encode(), "WISDM_ar_v1.1_raw_about.txt": ABOUT.encode(),
             "readme.txt": b"fixture\n", "WISDM_ar_v1.1_transformed.arff": b"@relation fixture\n"}
    root.mkdir(parents=True, exist_ok=True)
    if layout == "tar":
        path = root / "WISDM_ar_latest.tar.gz"
        with tarfile.open(path, "w:gz") as tf:
            for rel, data in files.items():
                info = tarfile.TarInfo(f"WISDM_ar_v1.1/{rel}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
        return path
    if layout == "raw":
        (root / "WISDM_ar_v1.1_raw.txt").write_bytes(files["WISDM_ar_v1.1_raw.txt"])
        return root / "WISDM_ar_v1.1_raw.txt"
    (root / "WISDM_ar_v1.1").mkdir(exist_ok=True)
    for rel, data in files.items():
        (root / "WISDM_ar_v1.1" / rel).write_bytes(data)
    return root / "WISDM_ar_v1.1"


@pytest.fixture(scope="module")
def fixture_text() -> Fixture:
    return make_raw()


@pytest.mark.parametrize("layout", ["tar", "dir", "raw"])
def test_records_recordings_and_warning(tmp_path: Path, layout: str, fixture_text: Fixture,
                                        caplog: pytest.LogCaptureFixture) -> None:
    write_wisdm_fixture(tmp_path / "wisdm", fixture_text.text, layout)
    with caplog.at_level(logging.WARNING, logger="harkit"):
        ds = load_dataset("wisdm", data_dir=tmp_path)
    assert isinstance(ds, RecordingDataset)
    assert ds.classes == CLASSES and ds.channels == ["acc_x", "acc_y", "acc_z"]
    assert ds.sampling_rate == 20.0 and (ds.window, ds.hop) == (200, 100)
    assert sum(len(r) for r in ds.recordings) == len(fixture_text.expected)
    assert ds.subject_ids() == list(range(1, 37)) and ds.test_subjects == list(range(27, 37))
    # one recording per user, two for user 3 (30 s pause)
    assert len(ds.recordings) == 37
    assert [len(r) for r in ds.recordings if r.subject == 3] == [100, 60]
    assert [r.session for r in ds.recordings if r.subject == 3] == ["user03_001", "user03_002"]
    r1 = ds.recordings[0]
    assert (r1.labels[:80] == 1).all() and (r1.labels[80:] == 2).all()  # Jogging, then Sitting
    assert r1.signal.dtype == np.float32 and r1.meta["tick_s"] == 1e-9
    msg = caplog.text
    assert "skipped 2 of" in msg and "joined 1 record(s) split across lines" in msg
    assert f"1 empty field (first at line {fixture_text.lines['empty field']})" in msg
    assert f"1 zero timestamp (first at line {fixture_text.lines['zero timestamp']})" in msg


def test_glitched_records_keep_their_values(fixture_text: Fixture) -> None:
    p = parse_raw(fixture_text.text.encode(), "raw.txt")
    want = np.array(fixture_text.expected)
    assert p.user.tolist() == want[:, 0].astype(int).tolist()
    assert p.time.tolist() == [e[1] for e in fixture_text.expected]
    assert np.array_equal(p.xyz, want[:, 2:].astype(np.float32))
    assert p.line[PER_USER + 10] == fixture_text.lines["trailing comma"]
    assert p.line[PER_USER + 14] == fixture_text.lines["split"]  # 2 records earlier were skipped
    assert p.line[PER_USER + 17] == fixture_text.lines["two on a line"]  # its second record


def test_windows_after_user_split(tmp_path: Path, fixture_text: Fixture) -> None:
    write_wisdm_fixture(tmp_path / "wisdm", fixture_text.text)
    ds = load_dataset("wisdm", data_dir=tmp_path)
    assert isinstance(ds, RecordingDataset)
    w = ds.to_windows(window=40, hop=20)
    assert w.splits["test"].subject_ids() == list(range(27, 37))
    assert max(w.splits["train"].subject_ids()) == 26 and w.splits["train"].X.shape[1:] == (40, 3)
    assert set(np.unique(w.splits["train"].y).tolist()) == set(range(6))
    split = load_dataset("wisdm", data_dir=tmp_path, max_gap_s=60)
    assert isinstance(split, RecordingDataset)
    assert len(split.recordings) == 36  # the 30 s pause no longer cuts
    with pytest.raises(ConfigError, match="max_gap_s"):
        load_dataset("wisdm", data_dir=tmp_path, max_gap_s=0)


def test_strict_mode_names_file_and_line(tmp_path: Path, fixture_text: Fixture) -> None:
    path = write_wisdm_fixture(tmp_path / "wisdm", fixture_text.text)
    with pytest.raises(DataFormatError) as e:
        load_dataset("wisdm", data_dir=tmp_path, strict=True)
    line = fixture_text.lines["empty field"]
    assert f"{path}:WISDM_ar_v1.1/WISDM_ar_v1.1_raw.txt, line {line}: record" in str(e.value)
    assert "empty field" in str(e.value)


@pytest.mark.parametrize(("text", "message", "line"), [
    ("user;activity;time\n1;2;3\n", "0 of 6 records are usable", 1),
    ("1,Walking,10,1,2,3;\n\n2,Flying,20,1,2,3;\n3,Swimming,30,1,2,3;\n",
     "1 of 3 records are usable", 3),
    ("", "0 of 0 records", 1),
])
def test_not_wisdm_is_rejected(tmp_path: Path, text: str, message: str, line: int) -> None:
    with pytest.raises(DataFormatError) as e:
        parse_raw(text.encode(), "raw.txt")
    assert f"raw.txt, line {line}:" in str(e.value) and message in str(e.value)


def test_broken_tarball(tmp_path: Path) -> None:
    (tmp_path / "WISDM_ar_latest.tar.gz").write_bytes(b"<html>moved</html>")
    with pytest.raises(DataFormatError, match=r"not a readable tar\.gz archive"):
        read_raw(tmp_path / "WISDM_ar_latest.tar.gz")


def test_real_wisdm(real_data_dir: Path) -> None:
    if not (real_data_dir / "wisdm").exists():
        pytest.skip("no wisdm copy in the real-data directory")
    ds = load_dataset("wisdm", data_dir=real_data_dir)
    assert isinstance(ds, RecordingDataset)
    assert ds.subject_ids() == list(range(1, 37))
    assert sum(len(r) for r in ds.recordings) > 1_000_000  # 1,098,207 records published
