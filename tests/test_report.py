"""HTML reports of runs and cross-validations: sections, numbers, embedded images, escaping,
missing pieces, and rendering in headless Chromium."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import shutil
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import harkit
from harkit.cv import cross_validate
from harkit.errors import CheckpointError, ConfigError
from harkit.report import most_confident_mistakes, write_report
from harkit.runs import RunDir
from harkit.viz.signals import channel_panels, plot_window_signals
from tests.conftest import BrowserPage, write_uci_fixture

# A class name that must come out as text, never as markup.
EVIL = "<script>alert('x&y')</script>"
RUN_SECTIONS = ["Summary", "Config", "Learning curves", "Confusion matrix", "Per-class scores",
                "Per-subject scores", "Worst-classified test windows"]
CV_SECTIONS = ["Summary", "Per-fold scores", "Pooled confusion matrix", "Per-subject scores",
               "Config", "Folds"]
FAST = ["train.batch_size=32", "model.width=4", "model.hidden=8", "train.num_threads=1",
        "tracking.enabled=false"]
N_WORST = 4


class Parsed(HTMLParser):
    """What a test needs from a report: headings, ids, links, images, tables, text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.h2: list[str] = []
        self.h3: list[str] = []
        self.ids: list[str] = []
        self.hrefs: list[str] = []
        self.imgs: list[dict[str, str]] = []
        self.tags: list[str] = []
        self.tables: list[list[tuple[str, list[str]]]] = []  # rows: (tr class, cell texts)
        self.pre: list[str] = []
        self.text: list[str] = []
        self._heading: str | None = None
        self._buf: list[str] = []
        self._cell: list[str] | None = None
        self._in_pre = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "a":
            self.hrefs.append(a.get("href", ""))
        elif tag == "img":
            self.imgs.append(a)
        elif tag in ("h2", "h3"):
            self._heading, self._buf = tag, []
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append((a.get("class", ""), []))
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "pre":
            self._in_pre, self._buf = True, []

    def handle_endtag(self, tag: str) -> None:
        if tag == self._heading:
            (self.h2 if tag == "h2" else self.h3).append("".join(self._buf).strip())
            self._heading = None
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1][1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "pre":
            self.pre.append("".join(self._buf))
            self._in_pre = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._heading or self._in_pre:
            self._buf.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def table(self, first_header: str) -> list[tuple[str, list[str]]]:
        """The body rows of the first table whose first column heading is ``first_header``."""
        for t in self.tables:
            if t and t[0][1] and t[0][1][0] == first_header:
                return t[1:]
        raise AssertionError(f"no table headed {first_header!r}")

    def kv(self) -> dict[str, str]:
        """The summary's name -> value table."""
        return {cells[0]: cells[1] for t in self.tables for _, cells in t if len(cells) == 2}

    def all_text(self) -> str:
        return " ".join(" ".join(self.text).split())


def _png(img: dict[str, str]) -> Image.Image:
    """The PNG an <img> embeds (it must be a base64 data URI)."""
    prefix = "data:image/png;base64,"
    assert img["src"].startswith(prefix), img["src"][:40]
    data = base64.b64decode(img["src"][len(prefix):], validate=True)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    im = Image.open(io.BytesIO(data))
    im.load()
    assert im.format == "PNG" and im.width > 50 and im.height > 50
    return im


def _close(cell: str, value: float) -> bool:
    return abs(float(cell) - value) <= 5e-5  # cells show 4 decimals


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A finished tiny run (selection + refit) on the UCI fixture, whose first class is named
    :data:`EVIL`."""
    root = tmp_path_factory.mktemp("report-run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARKIT_CACHE_DIR", str(root / "cache"))
        mp.delenv("HARKIT_DATA_DIR", raising=False)
        mp.setenv("HARKIT_TRACKING", "0")
        write_uci_fixture(root / "data" / "uci-har", zipped=False)
        labels = root / "data" / "uci-har" / "UCI HAR Dataset" / "activity_labels.txt"
        labels.write_text(labels.read_text().replace("1 WALKING\n", f"1 {EVIL}\n"))
        r = harkit.train(overrides=[f"data.data_dir={root / 'data'}", f"run_root={root}",
                                    "data.n_val_subjects=2", "train.epochs=3", *FAST,
                                    "name=run"], progress=False)
        assert r.finished and r.test is not None and r.test.classes[0] == EVIL
        yield r.run_dir


@pytest.fixture(scope="module")
def run_report(run_dir: Path) -> Path:
    return write_report(run_dir, n_worst=N_WORST)


def test_run_report_sections_scores_and_tables(run_dir: Path, run_report: Path) -> None:
    assert run_report == run_dir / "report.html"
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".report.html")]  # atomic
    text = run_report.read_text(encoding="utf-8")
    page = Parsed(text)
    assert page.h2 == RUN_SECTIONS
    assert {h[1:] for h in page.hrefs} <= set(page.ids)  # every link is to an anchor here
    assert "script" not in page.tags

    metrics = json.loads((run_dir / "metrics.json").read_text())
    val = json.loads((run_dir / "metrics_val.json").read_text())
    kv = page.kv()
    assert kv["dataset"] == "uci-har" and kv["model"] == "harcnn" and kv["status"] == "finished"
    assert kv["test subjects"] == "7 8 (dataset-defined)"
    cfg = RunDir(run_dir).config()
    assert kv["validation subjects"].startswith(" ".join(map(str, cfg.data.val_subjects or [])))
    assert kv["refit subjects"] == "1 2 3 4 5 6"
    assert kv["windows per split"] == "train 96, validation 48, refit (all training) 144, test 48"
    assert kv["channels"].startswith("9: body_acc_x")
    assert kv["epochs (selection)"] == "3" and kv["selected epoch"] == "3 (train.select = last)"

    scores = {cells[0]: cells for _, cells in page.table("split")}
    test_row, val_row = scores["test (final model)"], scores["validation (selected checkpoint)"]
    assert int(test_row[1]) == metrics["n_windows"] == 48
    for cell, key in zip(test_row[2:5], ("accuracy", "macro_f1", "weighted_f1"), strict=True):
        assert _close(cell, metrics[key]), key
    for cell, key in zip(val_row[2:5], ("accuracy", "macro_f1", "weighted_f1"), strict=True):
        assert _close(cell, val[key]), key

    per_class = page.table("class")
    assert sorted(cells[0] for _, cells in per_class) == sorted(metrics["classes"])
    f1s = [float(cells[3]) for _, cells in per_class]
    assert f1s == sorted(f1s)  # worst first
    for css, (name, p, r, f, s) in per_class:
        m = metrics["per_class"][name]
        assert _close(p, m["precision"]) and _close(r, m["recall"]) and _close(f, m["f1"])
        assert int(s) == m["support"]
        assert (css == "worst") == (m["f1"] < metrics["macro_f1"]), name

    per_subject = page.table("subject")
    assert sorted(cells[0] for _, cells in per_subject) == ["7", "8"]
    mean = np.mean([m["macro_f1"] for m in metrics["per_subject"].values()])
    for css, (subj, n, acc, f1) in per_subject:
        m = metrics["per_subject"][subj]
        assert int(n) == m["n_windows"] and _close(acc, m["accuracy"]) and _close(f1, m["macro_f1"])
        assert (css == "worst") == (m["macro_f1"] < mean)
    assert [float(c[3]) for _, c in per_subject] == sorted(float(c[3]) for _, c in per_subject)

    assert page.pre == [(run_dir / "config.yaml").read_text()]


def test_run_report_embeds_every_image_as_png(run_dir: Path, run_report: Path) -> None:
    page = Parsed(run_report.read_text(encoding="utf-8"))
    # learning curves, final-fit curves, confusion matrix, the worst windows
    assert len(page.imgs) == 3 + N_WORST
    for img in page.imgs:
        _png(img)
        assert img["alt"]
    by_alt = {img["alt"]: img["src"] for img in page.imgs}
    for alt, name in (("learning curves", "learning_curves.png"),
                      ("confusion matrix", "confusion_matrix.png")):
        embedded = base64.b64decode(by_alt[alt].split(",", 1)[1])
        assert embedded == (run_dir / "plots" / name).read_bytes()  # the run's own file
    for i in range(1, N_WORST + 1):
        im = _png({"src": by_alt[f"worst-classified window {i}"]})
        assert im.height > im.width / 2  # three signal panels stacked, not a skeleton strip
    # nothing outside the file: no external source, link or stylesheet
    text = run_report.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:|#)""", text)
    assert "<link" not in text and "@import" not in text and "url(" not in text


def test_class_names_are_escaped(run_report: Path) -> None:
    text = run_report.read_text(encoding="utf-8")
    assert "<script" not in text.lower()
    assert "&lt;script&gt;alert(&#x27;x&amp;y&#x27;)&lt;/script&gt;" in text
    page = Parsed(text)
    assert EVIL in [cells[0] for _, cells in page.table("class")]  # shown as text
    assert EVIL in page.kv()["classes"]


def test_worst_windows_are_the_most_confident_mistakes(run_dir: Path, run_report: Path) -> None:
    page = Parsed(run_report.read_text(encoding="utf-8"))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    n_wrong = round((1 - metrics["accuracy"]) * metrics["n_windows"])
    assert f"{n_wrong} of 48 test windows are misclassified by the final model" in page.all_text()
    caption = re.compile(r"(\d)\. test window (\d+) \(subject (\d+)\): true (.+?), predicted "
                         r"(.+?) \(p = ([\d.]+)\); p\(true class\) = ([\d.]+)")
    found = [m.groups() for m in caption.finditer(page.all_text())]
    assert len(found) == min(N_WORST, n_wrong)
    assert [int(g[0]) for g in found] == list(range(1, len(found) + 1))
    # the probabilities come from the final model: recompute them independently
    from harkit.api import _load
    from harkit.inference import Predictor

    ds = _load(RunDir(run_dir).config())
    test = ds.splits["test"]
    probs = Predictor.from_run(run_dir).predict_proba(test.X)
    pred = probs.argmax(1)
    assert int(np.sum(pred != test.y)) == n_wrong  # the report's model is metrics.json's model
    conf = probs.max(1)
    shown = [int(g[1]) for g in found]
    for _, i, subj, true, predicted, p, p_true in found:
        w = int(i)
        assert test.y[w] != pred[w] and int(subj) == test.subjects[w]
        assert true == ds.classes[test.y[w]] and predicted == ds.classes[pred[w]]
        assert abs(float(p) - conf[w]) < 1e-3 and abs(float(p_true) - probs[w, test.y[w]]) < 1e-3
    ps = [conf[w] for w in shown]
    assert ps == sorted(ps, reverse=True)
    others = [conf[w] for w in np.flatnonzero(pred != test.y) if w not in shown]
    assert not others or max(others) <= min(ps)


def test_null_scores_redrawn_plots_and_no_examples(run_dir: Path, tmp_path: Path) -> None:
    """Scores without a NULL class appear when the run has them; a deleted confusion matrix
    is redrawn from metrics.json; n_worst=0 draws no window (and runs no model)."""
    copy = shutil.copytree(run_dir, tmp_path / "copy", ignore=shutil.ignore_patterns("*.pt", "report.html"))
    metrics = json.loads((copy / "metrics.json").read_text())
    metrics.update(null_class=EVIL, macro_f1_without_null=0.123456, accuracy_without_null=0.5)
    (copy / "metrics.json").write_text(json.dumps(metrics))
    (copy / "plots" / "confusion_matrix.png").unlink()
    out = write_report(copy, tmp_path / "elsewhere" / "r.html", n_worst=0)
    assert out == tmp_path / "elsewhere" / "r.html" and not (copy / "report.html").exists()
    page = Parsed(out.read_text(encoding="utf-8"))
    header, *rows = page.tables[[t[0][1][0] for t in page.tables].index("split")]
    assert header[1][-2:] == ["macro F1 w/o NULL", "accuracy w/o NULL"]
    test_row = rows[0][1]
    assert test_row[-2:] == ["0.1235", "0.5000"]
    assert rows[1][1][-2:] == ["\u2014", "\u2014"]  # validation has no NULL-free scores
    assert [i["alt"] for i in page.imgs] == ["learning curves", "final fit curves",
                                             "confusion matrix"]
    assert "(redrawn for this report)" in page.all_text()
    assert "Not drawn (n_worst = 0)." in page.all_text()


def test_most_confident_mistakes() -> None:
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.6, 0.4, 0.0],
                      [0.0, 0.7, 0.3], [0.5, 0.2, 0.3]])
    y = np.array([1, 1, 0, 0, 2, 2])  # wrong: 0 (0.9), 2 (0.8), 4 (0.7), 5 (0.5)
    assert most_confident_mistakes(probs, y, 3).tolist() == [0, 2, 4]
    assert most_confident_mistakes(probs, y, 10).tolist() == [0, 2, 4, 5]
    assert most_confident_mistakes(probs, y, 0).tolist() == []
    tie = np.array([[0.6, 0.4], [0.4, 0.6], [0.6, 0.4]])
    assert most_confident_mistakes(tie, np.array([1, 0, 1]), 3).tolist() == [0, 1, 2]
    assert most_confident_mistakes(probs, probs.argmax(1), 3).tolist() == []


def test_stopped_run_report_says_what_is_missing(tiny_cfg: list[str]) -> None:
    r = harkit.train(overrides=[*tiny_cfg, "tracking.enabled=false", "name=stopped"],
                     progress=False, stop_after=1)
    assert not r.finished and not (r.run_dir / "metrics.json").exists()
    (r.run_dir / "plots" / "learning_curves.png").unlink()  # redrawn from history.csv
    page = Parsed(write_report(r.run_dir).read_text(encoding="utf-8"))
    assert page.h2 == RUN_SECTIONS
    text = page.all_text()
    assert "metrics.json is missing (run status: stopped)" in text
    assert f"harkit train --resume {r.run_dir}" in text
    assert "confusion_matrix.png is missing" in text
    assert "refit_history.csv is missing" in text
    assert "the final model checkpoints/refit_last.pt does not exist yet" in text
    assert page.kv()["status"] == "stopped"
    assert len(page.imgs) == 1 and page.imgs[0]["alt"] == "learning curves"
    _png(page.imgs[0])
    assert "(redrawn for this report)" in text
    # the validation scores exist already and are shown
    val = json.loads((r.run_dir / "metrics_val.json").read_text())
    (row,) = [cells for _, cells in page.table("split")]
    assert row[0] == "validation (selected checkpoint)" and _close(row[2], val["accuracy"])


def test_cv_report(tiny_cfg: list[str]) -> None:
    r = cross_validate(overrides=[*tiny_cfg, "train.epochs=1", "train.refit=false",
                                  "data.n_val_subjects=1", "tracking.enabled=false", "name=cv"],
                       protocol="kfold", folds=2, progress=False)
    out = write_report(r.cv_dir)
    assert out == r.cv_dir / "report.html"
    page = Parsed(out.read_text(encoding="utf-8"))
    assert page.h2 == CV_SECTIONS
    assert page.h3[-2:] == [f"fold01: test on subjects {r.folds[0]['test_subjects']}",
                            f"fold02: test on subjects {r.folds[1]['test_subjects']}"]
    assert {"fold01", "fold02"} <= set(page.ids)
    assert {h[1:] for h in page.hrefs} <= set(page.ids)
    assert page.hrefs.count("#fold01") >= 2  # from the fold table and the subject table

    with open(r.cv_dir / "folds.csv") as f:
        folds = list(csv.DictReader(f))
    rows = page.table("fold")
    assert [cells[0] for _, cells in rows] == ["fold01", "fold02"]
    for (_, cells), fold in zip(rows, folds, strict=True):
        assert cells[1] == fold["test_subjects"] and cells[2] == fold["n_windows"]
        for cell, key in zip(cells[3:6], ("accuracy", "macro_f1", "weighted_f1"), strict=True):
            assert _close(cell, float(fold[key]))

    summary = json.loads((r.cv_dir / "summary.json").read_text())
    stats = {cells[0]: cells for _, cells in page.table("score")}
    for name, key in (("accuracy", "accuracy"), ("macro F1", "macro_f1")):
        s = summary[key]
        assert _close(stats[name][1], s["mean"]) and _close(stats[name][2], s["std"])
        assert stats[name][5] == f"{s['mean']:.4f} \u00b1 {s['std']:.4f}"
    with open(r.cv_dir / "subjects.csv") as f:
        subjects = {row["subject"]: row for row in csv.DictReader(f)}
    subject_rows = page.table("subject")
    assert sorted(cells[0] for _, cells in subject_rows) == sorted(subjects)
    for _, (subj, fold_name, n, acc, f1) in subject_rows:
        assert fold_name == subjects[subj]["fold"] and n == subjects[subj]["n_windows"]
        assert _close(acc, float(subjects[subj]["accuracy"]))
        assert _close(f1, float(subjects[subj]["macro_f1"]))

    # folds plot, pooled confusion matrix, one learning curve per fold
    assert [i["alt"] for i in page.imgs] == ["scores per fold", "pooled confusion matrix",
                                             "fold01 learning curves", "fold02 learning curves"]
    for img in page.imgs:
        _png(img)

    # An unfinished cross-validation: no summary yet, the second fold not started.
    (r.cv_dir / "summary.json").unlink()
    shutil.rmtree(r.cv_dir / "fold02")
    text = Parsed(write_report(r.cv_dir).read_text(encoding="utf-8")).all_text()
    assert "summary.json is missing" in text and "fold02 has not started" in text


def test_skeleton_run_draws_skeleton_frames(tmp_path: Path) -> None:
    skel = tmp_path / "data" / "msr-action3d" / "skeletons"
    skel.mkdir(parents=True)
    rng = np.random.default_rng(0)
    pose = rng.normal(size=(1, 20, 3))
    t = np.linspace(0, 2 * np.pi, 12)[:, None, None]
    for subject in range(1, 11):
        for action in (1, 2, 3):
            frames = pose + 0.3 * np.sin(action * t) + 0.05 * rng.normal(size=(12, 20, 3))
            rows = [f"{x:.5f} {y:.5f} {z:.5f} 1.0" for x, y, z in frames.reshape(-1, 3)]
            (skel / f"a{action:02d}_s{subject:02d}_e01_skeleton3D.txt").write_text(
                "\n".join(rows) + "\n")
    r = harkit.train(overrides=[f"data.data_dir={tmp_path / 'data'}", f"run_root={tmp_path}",
                                "data.dataset=msr-action3d", "data.options.length=12",
                                "data.n_val_subjects=1", "train.epochs=1", *FAST, "name=sk"],
                     progress=False)
    page = Parsed(write_report(r.run_dir, n_worst=2).read_text(encoding="utf-8"))
    worst = [i for i in page.imgs if i["alt"].startswith("worst-classified")]
    assert r.test is not None and len(worst) == min(2, round((1 - r.test.accuracy) * 15))
    for img in worst:
        im = _png(img)
        assert im.width > 3 * im.height  # a strip of skeleton frames
    assert page.kv()["channels"].startswith("60: b0.")


def test_not_a_run_or_cv_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="neither a harkit run directory"):
        write_report(tmp_path)
    with pytest.raises(CheckpointError, match="no such directory"):
        write_report(tmp_path / "nope")
    with pytest.raises(ConfigError, match="n_worst"):
        write_report(tmp_path, n_worst=-1)
    assert not list(tmp_path.iterdir())


def test_signal_plots(tmp_path: Path) -> None:
    assert channel_panels(["acc_z", "hr", "acc_x", "acc_y", "gyro_x", "gyro_y", "gyro_z"]) == [
        [0, 2, 3], [1], [4, 5, 6]]
    w = np.random.default_rng(0).normal(size=(50, 7)).astype(np.float32)
    lines = plot_window_signals(w, ["acc_x", "acc_y", "acc_z", "hr", "gx", "gy", "gz"],
                                tmp_path / "lines.png", title=EVIL, sampling_rate=25.0)
    many = plot_window_signals(np.tile(w, (1, 6)), [f"ch{i}" for i in range(42)],
                               tmp_path / "heat.png", title="many channels")
    with Image.open(lines) as a, Image.open(many) as b:
        assert a.format == b.format == "PNG"
        assert a.height > 2 * b.height / 3  # 5 stacked panels vs one heatmap of 42 rows
    with pytest.raises(ValueError, match="3 channels"):
        plot_window_signals(w, ["a", "b", "c"], tmp_path / "bad.png")


# --- in a browser -----------------------------------------------------------------------------

def test_report_renders_in_chromium(chromium_page: BrowserPage, run_report: Path) -> None:
    page = chromium_page.page
    page.goto(run_report.as_uri(), wait_until="load")
    images = page.evaluate("""() => Array.from(document.images).map(
        i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth,
               shown: i.getBoundingClientRect().width}))""")
    headings = page.evaluate(
        "() => Array.from(document.querySelectorAll('h2')).map(h => h.textContent)")
    scripts = page.evaluate("() => document.querySelectorAll('script').length")
    cells = page.evaluate("() => Array.from(document.querySelectorAll('td')).map("
                          "td => td.textContent)")
    highlight = page.evaluate("""() => getComputedStyle(
        document.querySelector('tr.worst td')).backgroundColor""")
    title = page.title()
    requests, errors = chromium_page.requests, chromium_page.errors
    assert len(images) == 3 + N_WORST
    for img in images:
        assert img["complete"] and img["width"] > 0 and img["shown"] > 0, img
    assert headings == RUN_SECTIONS
    assert scripts == 0 and EVIL in cells  # the class name is text, not a script
    assert highlight not in ("rgba(0, 0, 0, 0)", "transparent")  # the inline CSS applies
    assert title == f"harkit run report: {run_report.parent.name}"
    assert requests and all(u.startswith(("file:", "data:")) for u in requests), requests
    assert not errors, errors


def test_cv_report_survives_missing_cv_json_fields(tmp_path: Path) -> None:
    """A cv.json cut short (an interrupted start) still gives a report saying what is missing."""
    (tmp_path / "cv.json").write_text(json.dumps({"protocol": "loso", "folds": [[1], [2]]}))
    text = Parsed(write_report(tmp_path).read_text(encoding="utf-8")).all_text()
    assert "folds.csv is missing" in text and "fold01 has not started" in text
    (tmp_path / "cv.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"cv\.json"):
        write_report(tmp_path)
