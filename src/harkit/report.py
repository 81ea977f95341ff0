"""HTML reports: one self-contained file describing a run or a cross-validation.

``write_report(dir)`` writes ``<dir>/report.html`` for a run directory (see
:mod:`harkit.runs`) or a cross-validation directory (see :mod:`harkit.cv`). The file stands
alone: every image is embedded as a ``data:image/png;base64`` URI, the CSS is inline, there
is no JavaScript and nothing is fetched (a Content-Security-Policy forbids it), so it can be
mailed or attached to an issue as it is. Every piece of text from the run (class names,
subject ids, the config) is HTML-escaped.

A run's report::

    Summary                 dataset, model, status, timings, epochs, split (test /
                            validation / refit subjects, windows per split), channels,
                            classes, versions; test and validation scores
    Config                  config.yaml as written by the run
    Learning curves         plots/learning_curves.png (redrawn from history.csv when
                            missing) and the final fit's curve (refit_history.csv)
    Confusion matrix        plots/confusion_matrix.png
    Per-class scores        precision, recall, F1, support: worst F1 first
    Per-subject scores      windows, accuracy, macro F1: worst macro F1 first
    Worst-classified test windows
                            the final model's most confidently wrong test windows, drawn
                            as signals (sensor data) or skeleton frames (skeleton data)

A cross-validation's report: summary with mean +/- std over folds and the pooled scores,
the per-fold plot and table, the pooled confusion matrix, the per-subject table, the config,
and a short section per fold (its scores and learning curves) linked from the fold table.

Anything not there yet (a stopped run has no ``metrics.json``; a running cross-validation
no ``summary.json``) is reported as missing, with what would produce it.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import logging
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harkit.errors import CheckpointError, ConfigError, HarkitError
from harkit.io import atomic_write_text

if TYPE_CHECKING:
    from harkit.config import ExperimentConfig
    from harkit.data import WindowedDataset

log = logging.getLogger(__name__)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# The scores of a report, in the order they are shown, with their column headings.
SCORE_COLUMNS = (("accuracy", "accuracy"), ("macro_f1", "macro F1"),
                 ("weighted_f1", "weighted F1"), ("macro_f1_without_null", "macro F1 w/o NULL"),
                 ("accuracy_without_null", "accuracy w/o NULL"))

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222;
       margin: 0 auto; max-width: 1100px; padding: 0 1.5em 3em; }
h1 { margin-bottom: 0.2em; }
h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
nav { margin: 0.8em 0; line-height: 2; }
nav a { margin-right: 1em; }
table { border-collapse: collapse; margin: 0.6em 0 1em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.kv th { width: 13em; vertical-align: top; }
tr.worst td { background: #fde2e1; }
p.missing { background: #fff4d6; border-left: 4px solid #e0a800; padding: 0.5em 0.8em; }
p.note { color: #555; }
pre { background: #f6f8fa; border: 1px solid #ddd; padding: 0.8em; overflow-x: auto;
      font-size: 12px; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: 13px; }
div.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(460px, 1fr));
           gap: 0 1.2em; }
"""


class Html(str):
    """Markup that is already safe: inserted as it is, where any other text is escaped."""


def esc(value: Any) -> Html:
    """``value`` as text, HTML-escaped (quotes too, so it is safe in attributes).

    Example:
        >>> esc('<script>"x"</script>')
        '&lt;script&gt;&quot;x&quot;&lt;/script&gt;'
    """
    return value if isinstance(value, Html) else Html(html.escape(str(value), quote=True))


def _fmt(value: Any) -> str:
    """A table cell's text: floats with 4 decimals, None as a dash, markup as it is."""
    if isinstance(value, Html):
        return value
    if value is None:
        return "\u2014"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]],
           highlight: Iterable[bool] | None = None, css: str = "") -> Html:
    """A table; numbers are right-aligned, rows flagged in ``highlight`` get class ``worst``."""
    rows = list(rows)
    flags = list(highlight) if highlight is not None else [False] * len(rows)
    out = [f'<table class="{esc(css)}">' if css else "<table>", "<thead><tr>"]
    out += [f"<th>{esc(h)}</th>" for h in headers]
    out.append("</tr></thead><tbody>")
    for row, flag in zip(rows, flags, strict=True):
        out.append('<tr class="worst">' if flag else "<tr>")
        for v in row:
            num = isinstance(v, (int, float)) and not isinstance(v, bool)
            out.append(f'<td class="num">{esc(_fmt(v))}</td>' if num else f"<td>{esc(_fmt(v))}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return Html("".join(out))


def _kv(pairs: Iterable[tuple[str, Any]]) -> Html:
    """A two-column table of names and values."""
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(_fmt(v))}</td></tr>" for k, v in pairs)
    return Html(f'<table class="kv"><tbody>{body}</tbody></table>')


def _missing(text: str) -> Html:
    return Html(f'<p class="missing">{esc(text)}</p>')


def _note(text: str) -> Html:
    return Html(f'<p class="note">{esc(text)}</p>')


def _png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _figure(data: bytes, alt: str, caption: str = "") -> Html:
    """An embedded PNG with its alt text and caption."""
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return Html(f'<figure><img src="{_png_data_uri(data)}" alt="{esc(alt)}">{cap}</figure>')


def _image(path: Path, alt: str, caption: str = "",
           redraw: Callable[[Path], Path | None] | None = None) -> Html:
    """``path`` embedded; when it is missing (or not a PNG), ``redraw(tmp_path)`` draws it
    afresh into a temporary file, and failing that the report says what is missing."""
    problem = f"{path.name} is missing"
    if path.is_file():
        data = path.read_bytes()
        if data.startswith(PNG_SIGNATURE):
            return _figure(data, alt, caption)
        problem = f"{path.name} is not a PNG file"
    if redraw is not None:
        with tempfile.TemporaryDirectory(prefix="harkit-report-") as tmp:
            drawn = redraw(Path(tmp) / path.name)
            if drawn is not None:
                return _figure(drawn.read_bytes(), alt, caption + " (redrawn for this report)")
    return _missing(f"{alt}: {problem} ({path}).")


class _Page:
    """Sections of a report, rendered with a table of contents."""

    def __init__(self, title: str, subtitle: str) -> None:
        self.title = title
        self.subtitle = subtitle
        self.sections: list[tuple[str, str, list[str]]] = []  # anchor, heading, parts

    def section(self, anchor: str, heading: str, *parts: str) -> None:
        self.sections.append((anchor, heading, list(parts)))

    def render(self) -> str:
        from harkit import __version__

        nav = "".join(f'<a href="#{esc(a)}">{esc(h)}</a>' for a, h, _ in self.sections)
        body = "".join(f'<section id="{esc(a)}"><h2>{esc(h)}</h2>{"".join(parts)}</section>'
                       for a, h, parts in self.sections)
        # No request may leave the file: images are data: URIs, styles inline, no scripts.
        csp = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
        return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n'
                '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
                f"<title>{esc(self.title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
                f"<header><h1>{esc(self.title)}</h1>{_note(self.subtitle)}"
                f"<nav>{nav}</nav></header>\n<main>{body}</main>\n"
                f"<footer>{_note(f'Written by harkit {__version__}.')}</footer>\n"
                "</body>\n</html>\n")


# --- shared pieces ------------------------------------------------------------------------

def _read_json(path: Path) -> dict[str, Any] | None:
    """A JSON file's object, or None when it is missing or unreadable (logged)."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        log.warning("%s: cannot read (%s)", path, e)
        return None
    return data if isinstance(data, dict) else None


def _read_csv(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV file with numbers converted (ints, then floats); [] when missing."""
    if not path.is_file():
        return []
    rows = []
    for raw in csv.DictReader(path.read_text(encoding="utf-8").splitlines()):
        row: dict[str, Any] = {}
        for k, v in raw.items():
            row[k] = _number(v)
        rows.append(row)
    return rows


def _number(text: str | None) -> Any:
    """``text`` as an int or float when it is one, else unchanged ('' becomes None)."""
    if text is None or text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _duration(seconds: Any) -> str | None:
    if not isinstance(seconds, (int, float)):
        return None
    s = float(seconds)
    if s < 60:
        return f"{s:.1f} s"
    h, rest = divmod(round(s), 3600)
    m, sec = divmod(rest, 60)
    return f"{s:.0f} s ({h}:{m:02d}:{sec:02d})"


def _list(values: Sequence[Any] | None, limit: int = 24) -> str | None:
    """Values joined by spaces, long lists shortened with their count."""
    if values is None:
        return None
    items = [str(v) for v in values]
    if len(items) > limit:
        return " ".join(items[:limit]) + f" \u2026 ({len(items)} in all)"
    return " ".join(items) if items else "none"


def _scores_table(reports: Sequence[tuple[str, dict[str, Any] | None]]) -> Html:
    """One row of scores per (name, metrics.json-like dict); columns for the NULL-free scores
    only when some report has them."""
    present = [r for _, r in reports if r is not None]
    cols = [(k, h) for k, h in SCORE_COLUMNS if any(r.get(k) is not None for r in present)]
    rows = [[name, r.get("n_windows"), *(r.get(k) for k, _ in cols)]
            for name, r in reports if r is not None]
    return _table(["split", "windows", *(h for _, h in cols)], rows)


def _per_class_table(metrics: dict[str, Any]) -> Html:
    """Per-class scores, worst F1 first; classes below the macro F1 highlighted (classes
    absent from the split, support 0, come last)."""
    per_class: dict[str, dict[str, Any]] = metrics.get("per_class", {})
    order = sorted(per_class, key=lambda c: (per_class[c]["support"] == 0, per_class[c]["f1"]))
    macro = float(metrics.get("macro_f1", 0.0))
    rows = [[c, per_class[c]["precision"], per_class[c]["recall"], per_class[c]["f1"],
             per_class[c]["support"]] for c in order]
    flags = [per_class[c]["support"] > 0 and per_class[c]["f1"] < macro for c in order]
    return Html(_note(f"Worst F1 first; highlighted: F1 below the macro F1 ({macro:.4f}).")
                + _table(["class", "precision", "recall", "F1", "support"], rows, flags))


def _subject_table(rows: list[dict[str, Any]], with_fold: bool = False) -> Html:
    """Per-subject scores, worst macro F1 first; subjects below the mean highlighted."""
    order = sorted(rows, key=lambda r: (r["macro_f1"], r["accuracy"], r["subject"]))
    mean = float(np.mean([r["macro_f1"] for r in rows]))
    headers = ["subject", *(["fold"] if with_fold else []), "windows", "accuracy", "macro F1"]
    table = []
    for r in order:
        fold = [Html(f'<a href="#{esc(r["fold"])}">{esc(r["fold"])}</a>')] if with_fold else []
        table.append([r["subject"], *fold, r["n_windows"], r["accuracy"], r["macro_f1"]])
    return Html(_note(f"Worst macro F1 first; highlighted: macro F1 below the mean over "
                      f"subjects ({mean:.4f}).")
                + _table(headers, table, [r["macro_f1"] < mean for r in order]))


def _history_redraw(run_path: Path, title: str) -> Callable[[Path], Path | None]:
    """Redraw a run's selection-phase learning curves from history.csv, when it has one."""
    def draw(target: Path) -> Path | None:
        from harkit.runs import RunDir
        from harkit.viz import plot_history

        history = RunDir(run_path).read_history()
        return plot_history(history, target, title=title) if history else None

    return draw


def _plot_fit_history(history: Sequence[dict[str, Any]], path: Path, title: str) -> Path:
    """Training loss and accuracy per epoch of a fit without validation data (the final fit
    on all training subjects, ``refit_history.csv``)."""
    from harkit.viz.plots import _pyplot, _save

    plt = _pyplot()
    ep = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6))
    ax1.plot(ep, [h["train_loss"] for h in history], "o-", color="tab:blue",
             label="train loss (augmented, label-smoothed)")
    ax1.set_ylabel("cross-entropy loss")
    ax2.plot(ep, [h["train_acc"] for h in history], "o-", color="tab:blue",
             label="train accuracy")
    ax2.set_ylabel("accuracy")
    for ax in (ax1, ax2):
        ax.set_xlabel("epoch")
        ax.legend()
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return _save(fig, Path(path))


# --- worst-classified windows --------------------------------------------------------------

def most_confident_mistakes(probs: np.ndarray, y_true: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` misclassified windows whose predicted class has the highest
    probability, most confident first (ties: the earlier window first).

    Args:
        probs: class probabilities ``(windows, classes)``.
        y_true: true class indices ``(windows,)``.
        n: how many to return at most.

    Example:
        >>> p = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3]])
        >>> most_confident_mistakes(p, np.array([1, 1, 0, 0]), 5).tolist()
        [0, 2]
    """
    probs = np.asarray(probs)
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != np.asarray(y_true))
    confidence = probs[wrong, pred[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")[: max(n, 0)]]


def _worst_examples(run_path: Path, ds: WindowedDataset, n_worst: int) -> list[str]:
    """The final model's most confidently wrong test windows, one figure each."""
    from harkit.inference import Predictor

    test = ds.splits.get("test")
    if test is None or len(test) == 0:
        return [_missing(f"dataset {ds.name!r} has no test windows to draw.")]
    predictor = Predictor.from_run(run_path)
    if list(predictor.channels) != list(ds.channels):
        return [_missing(f"the final model expects channels {predictor.channels}, the dataset "
                         f"now gives {ds.channels}; examples not drawn.")]
    probs = predictor.predict_proba(test.X)
    chosen = most_confident_mistakes(probs, test.y, n_worst)
    n_wrong = int(np.sum(probs.argmax(axis=1) != test.y))
    note = _note(f"{n_wrong} of {len(test)} test windows are misclassified by the final "
                 f"model; the {len(chosen)} it is most confident about are drawn, most "
                 "confident first (p = its probability of the predicted class).")
    if not len(chosen):
        return [note]
    classes = ds.classes
    figures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="harkit-report-") as tmp:
        for rank, i in enumerate(chosen, 1):
            true, pred = classes[int(test.y[i])], classes[int(probs[i].argmax())]
            p_pred, p_true = float(probs[i].max()), float(probs[i, int(test.y[i])])
            heading = (f"test window {i} (subject {int(test.subjects[i])}): true {true}, "
                       f"predicted {pred} (p = {p_pred:.3f})")
            path = Path(tmp) / f"worst{rank:02d}.png"
            if ds.skeleton is not None:
                from harkit.data.skeleton import unflatten
                from harkit.viz.skeleton import plot_skeleton_frames

                sk = ds.skeleton
                plot_skeleton_frames(unflatten(test.X[i], sk), sk.layout, path,  # (T, C) -> (T, M, J, D)
                                     title=f"window {i}: true {true}",
                                     pred=f"{pred} (p = {p_pred:.3f})", n_frames=6,
                                     dim_names=sk.names_of_dims(),
                                     valid=test.X[i][:, -1] if sk.valid_channel else None)
            else:
                from harkit.viz.signals import plot_window_signals

                plot_window_signals(test.X[i], ds.channels, path, title=heading,
                                    sampling_rate=ds.sampling_rate, units=ds.units)
            figures.append(_figure(path.read_bytes(), f"worst-classified window {rank}",
                                   f"{rank}. {heading}; p(true class) = {p_true:.3f}"))
    # signal plots side by side; skeleton strips are wide, one per row
    grid = ' class="grid"' if ds.skeleton is None else ""
    return [note, Html(f'<div{grid}>{"".join(figures)}</div>')]


# --- a run ---------------------------------------------------------------------------------

def _run_report(path: Path, n_worst: int) -> str:
    from harkit.runs import RunDir

    run = RunDir.open(path)
    cfg = run.config()
    info = run.info()
    metrics = _read_json(path / "metrics.json")
    metrics_val = _read_json(path / "metrics_val.json")
    status = info.get("status", "unknown")
    title = f"{cfg.model.name} on {cfg.data.dataset}"
    page = _Page(f"harkit run report: {path.name}",
                 f"{title}; run directory {path.resolve()}")

    # The dataset, for the split sizes and the worst-classified windows.
    ds: WindowedDataset | None = None
    data_problem = ""
    try:
        from harkit.api import _load

        ds = _load(cfg)
    except (HarkitError, OSError) as e:
        data_problem = f"the dataset could not be loaded ({e})"

    # Summary
    test_subjects: Any = cfg.data.test_subjects
    where = "data.test_subjects"
    if test_subjects is None:
        where = "dataset-defined"
        if ds is not None and "test" in ds.splits:
            test_subjects = ds.splits["test"].subject_ids()
        elif metrics is not None and metrics.get("per_subject"):
            test_subjects = sorted(int(s) for s in metrics["per_subject"])
    val_subjects: Any = cfg.data.val_subjects or None
    val_where = "carved from the training subjects"
    if not val_subjects:
        val_where = "the dataset's validation split"
    windows = _split_sizes(cfg, ds, metrics, metrics_val)
    channels = list(ds.channels) if ds is not None else None
    classes = (metrics or {}).get("classes") or (list(ds.classes) if ds is not None else None)
    try:
        checkpoint = run.model_checkpoint(cfg).name
    except CheckpointError as e:
        checkpoint = str(e)
    versions = info.get("versions") or {}
    command = (path / "command.txt").read_text(encoding="utf-8").strip() \
        if (path / "command.txt").is_file() else None
    best = info.get("best_epoch")
    best_f1 = info.get("best_val_macro_f1")
    pairs: list[tuple[str, Any]] = [
        ("dataset", cfg.data.dataset), ("model", cfg.model.name), ("status", status),
        ("created", info.get("created")), ("training time", _duration(info.get("train_seconds"))),
        ("parameters", f"{info['n_parameters']:,}" if "n_parameters" in info else None),
        ("epochs (selection)", info.get("epochs")),
        ("best epoch", None if best is None else
         f"{best} (validation macro F1 {best_f1:.4f})" if isinstance(best_f1, float) else best),
        ("selected epoch", _selected_epoch(info, cfg.train.select)),
        ("final model", _final_model(info, cfg.train.refit, checkpoint)),
        ("test subjects", f"{_list(test_subjects)} ({where})" if test_subjects is not None
         else where),
        ("validation subjects", f"{_list(val_subjects)} ({val_where})" if val_subjects
         else val_where),
        ("refit subjects", "no refit (train.refit = false)" if not cfg.train.refit
         else _list(info["refit_subjects"]) if "refit_subjects" in info
         else "all training subjects, once the final fit has run"),
        ("windows per split", ", ".join(f"{k} {v}" for k, v in windows.items()) or None),
        ("channels", None if channels is None else f"{len(channels)}: {_list(channels)}"),
        ("classes", None if classes is None else f"{len(classes)}: {', '.join(classes)}"),
        ("versions", ", ".join(f"{k} {v}" for k, v in versions.items()) or None),
        ("command", command),
    ]
    summary: list[str] = [_kv(pairs)]
    if data_problem:
        summary.append(_missing(f"Split sizes and channels: {data_problem}."))
    summary.append(Html("<h3>Scores</h3>"))
    if metrics is None:
        summary.append(_missing(
            f"No test scores: metrics.json is missing (run status: {status}). A stopped run "
            f"gets them when it finishes: harkit train --resume {path}"))
    if metrics_val is None:
        summary.append(_missing("No validation scores: metrics_val.json is missing."))
    if metrics is not None or metrics_val is not None:
        summary.append(_scores_table([("test (final model)", metrics),
                                      ("validation (selected checkpoint)", metrics_val)]))
    page.section("summary", "Summary", *summary)

    page.section("config", "Config", Html(
        f"<pre>{esc(run.config_path.read_text(encoding='utf-8'))}</pre>"))

    # Learning curves
    curves = [_image(run.plots / "learning_curves.png", "learning curves",
                     "Selection phase: training and validation loss, accuracy and macro F1 "
                     "per epoch.", redraw=_history_redraw(path, title))]
    refit_history = run.read_history("refit_history.csv")
    if refit_history:
        with tempfile.TemporaryDirectory(prefix="harkit-report-") as tmp:
            drawn = _plot_fit_history(refit_history, Path(tmp) / "refit.png",
                                     title=f"{title}: final fit on all training subjects")
            curves.append(_figure(drawn.read_bytes(), "final fit curves",
                                  "Final fit on all training subjects (no validation data): "
                                  "training loss and accuracy per epoch."))
    elif cfg.train.refit:
        curves.append(_missing("Final fit: refit_history.csv is missing (the final fit has "
                               "not started)."))
    page.section("curves", "Learning curves", *curves)

    # Confusion matrix
    def redraw_confusion(target: Path) -> Path | None:
        from harkit.viz import plot_confusion_matrix

        if metrics is None:
            return None
        return plot_confusion_matrix(metrics["confusion"], metrics["classes"], target,
                                     title=f"{title} (test): accuracy "
                                           f"{metrics['accuracy']:.3f}, macro F1 "
                                           f"{metrics['macro_f1']:.3f}")

    page.section("confusion", "Confusion matrix", _image(
        run.plots / "confusion_matrix.png", "confusion matrix",
        "Test split, rows = true class, normalised per row (counts in brackets).",
        redraw=redraw_confusion))

    if metrics is None:
        page.section("per-class", "Per-class scores", _missing("metrics.json is missing."))
        page.section("per-subject", "Per-subject scores", _missing("metrics.json is missing."))
    else:
        page.section("per-class", "Per-class scores", _per_class_table(metrics))
        subjects = [{"subject": int(s), **m} for s, m in metrics.get("per_subject", {}).items()]
        page.section("per-subject", "Per-subject scores", _subject_table(subjects) if subjects
                     else _missing("metrics.json has no per-subject scores."))

    # Worst-classified windows
    if n_worst == 0:
        worst: list[str] = [_note("Not drawn (n_worst = 0).")]
    elif ds is None:
        worst = [_missing(f"Not drawn: {data_problem}.")]
    else:
        try:
            final = run.model_checkpoint(cfg)
        except CheckpointError as e:
            final = None
            worst = [_missing(f"Not drawn: {e}.")]
        if final is not None and not final.is_file():
            worst = [_missing(f"Not drawn: the final model {final.relative_to(path)} does not "
                              f"exist yet (run status: {status}).")]
        elif final is not None:
            try:
                worst = _worst_examples(path, ds, n_worst)
            except (HarkitError, ValueError) as e:  # a checkpoint that does not fit the data
                worst = [_missing(f"Not drawn: {e}.")]
    page.section("worst", "Worst-classified test windows", *worst)
    return page.render()


def _selected_epoch(info: dict[str, Any], select: str) -> str | None:
    """The epoch whose model the validation scores describe, and why."""
    if "epochs" not in info:
        return None
    epoch = info.get("best_epoch") if select == "best" else info["epochs"]
    early = ", stopped early" if info.get("stopped_early") else ""
    return f"{epoch} (train.select = {select}{early})"


def _final_model(info: dict[str, Any], refit: bool, checkpoint: str) -> str:
    """What the run's final model is and where it is (or will be)."""
    if not refit:
        return f"the selected checkpoint, {checkpoint} (train.refit = false)"
    if info.get("status") == "finished" and "refit_epochs" in info:
        return (f"{checkpoint}: refit on all training subjects for {info['refit_epochs']} "
                "epochs")
    done = info.get("refit_epochs", 0)
    return f"{checkpoint}: the refit on all training subjects is not finished ({done} epochs done)"


def _split_sizes(cfg: ExperimentConfig, ds: WindowedDataset | None,
                 metrics: dict[str, Any] | None,
                 metrics_val: dict[str, Any] | None) -> dict[str, int]:
    """Windows per split: from the loaded dataset, else what the saved reports count."""
    if ds is None:
        sizes = {}
        if metrics_val is not None:
            sizes["validation"] = int(metrics_val["n_windows"])
        if metrics is not None:
            sizes["test"] = int(metrics["n_windows"])
        return sizes
    from harkit.api import _all_training, _train_val, has_no_validation

    if has_no_validation(cfg):  # one fit on every training window, no validation split
        sizes = {"train (all training)": len(_all_training(ds))}
    else:
        train, val, _ = _train_val(cfg, ds)
        sizes = {"train": len(train), "validation": len(val)}
    if cfg.train.refit:
        sizes["refit (all training)"] = len(_all_training(ds))
    if "test" in ds.splits:
        sizes["test"] = len(ds.splits["test"])
    return sizes


# --- a cross-validation ---------------------------------------------------------------------

def _cv_report(path: Path) -> str:
    import yaml

    meta = _read_json(path / "cv.json")
    if meta is None:
        raise CheckpointError(f"{path / 'cv.json'}: cannot be read as JSON; expected the "
                              "cross-validation's protocol, folds and config")
    config = meta.get("config") or {}
    dataset = config.get("data", {}).get("dataset", "?")
    model = config.get("model", {}).get("name", "?")
    protocol = meta.get("protocol", "?")
    planned = meta.get("folds") or []
    folds = _read_csv(path / "folds.csv")
    subjects = _read_csv(path / "subjects.csv")
    summary = _read_json(path / "summary.json")
    page = _Page(f"harkit cross-validation report: {path.name}",
                 f"{model} on {dataset}, {protocol}; directory {path.resolve()}")

    parts: list[str] = [_kv([
        ("dataset", dataset), ("model", model), ("protocol", protocol),
        ("status", meta.get("status")), ("created", meta.get("created")),
        ("folds", f"{len(folds)} of {len(planned)} done"),
        ("command", meta.get("command") or None)])]
    if summary is None:
        parts.append(_missing(f"summary.json is missing (status: {meta.get('status')}): the "
                              f"cross-validation has not finished; continue it with harkit cv "
                              f"--resume {path}"))
    else:
        rows = [[h, s["mean"], s["std"], s["min"], s["max"],
                 f"{s['mean']:.4f} \u00b1 {s['std']:.4f}"]
                for k, h in SCORE_COLUMNS if isinstance(s := summary.get(k), dict)]
        parts.append(Html(f"<h3>Mean \u00b1 std over {summary.get('n_folds')} folds</h3>"))
        parts.append(_table(["score", "mean", "std", "min", "max", "mean \u00b1 std"], rows))
        pooled = summary.get("pooled")
        if isinstance(pooled, dict):
            parts.append(Html("<h3>Pooled over all test windows</h3>"))
            parts.append(_scores_table([("all folds", pooled)]))
    page.section("summary", "Summary", *parts)

    fold_parts: list[str] = [_image(path / "plots" / "folds.png", "scores per fold",
                                    "Accuracy and macro F1 of each fold; dashed: the mean.")]
    if folds:
        cols = [(k, h) for k, h in SCORE_COLUMNS if any(f.get(k) is not None for f in folds)]
        mean = float(np.mean([f["macro_f1"] for f in folds]))
        rows = [[Html(f'<a href="#{esc(f["fold"])}">{esc(f["fold"])}</a>'),
                 str(f["test_subjects"]), f["n_windows"], *(f.get(k) for k, _ in cols)]
                for f in folds]
        fold_parts.append(_note(f"Highlighted: macro F1 below the mean over folds "
                                f"({mean:.4f})."))
        fold_parts.append(_table(["fold", "test subjects", "windows", *(h for _, h in cols)],
                                 rows, [f["macro_f1"] < mean for f in folds]))
    else:
        fold_parts.append(_missing("folds.csv is missing: no fold has finished yet."))
    page.section("folds", "Per-fold scores", *fold_parts)

    page.section("confusion", "Pooled confusion matrix", _image(
        path / "plots" / "confusion_matrix.png", "pooled confusion matrix",
        "Every test window of every fold, rows = true class, normalised per row."))
    page.section("per-subject", "Per-subject scores", _subject_table(subjects, with_fold=True)
                 if subjects else _missing("subjects.csv is missing."))
    page.section("config", "Config", Html(
        f"<pre>{esc(yaml.safe_dump(config, sort_keys=False))}</pre>"))

    by_name = {str(f["fold"]): f for f in folds}
    details: list[str] = []
    for i, test in enumerate(planned):
        name = f"fold{i + 1:02d}"
        details.append(_fold_section(path / name, name, test, by_name.get(name)))
    page.section("fold-details", "Folds", *details or [_missing("cv.json lists no folds.")])
    return page.render()


def _fold_section(fold_dir: Path, name: str, test: list[int] | None,
                  row: dict[str, Any] | None) -> Html:
    """A fold's anchor, status, scores and learning curves."""
    label = "the dataset-defined test split" if test is None else f"subjects {_list(test)}"
    out = [f'<h3 id="{esc(name)}">{esc(name)}: test on {esc(label)}</h3>']
    if not fold_dir.is_dir():
        out.append(_missing(f"{name} has not started ({fold_dir} does not exist)."))
        return Html("".join(out))
    info = _read_json(fold_dir / "run.json") or {}
    metrics = _read_json(fold_dir / "metrics.json")
    out.append(_kv([("status", info.get("status")), ("epochs", info.get("epochs")),
                    ("best epoch", info.get("best_epoch")),
                    ("training time", _duration(info.get("train_seconds")))]))
    if metrics is not None:
        out.append(_scores_table([("test", metrics),
                                  ("validation", _read_json(fold_dir / "metrics_val.json"))]))
    elif row is not None:
        out.append(_scores_table([("test", row)]))
    else:
        out.append(_missing(f"{name}: metrics.json is missing (status: "
                            f"{info.get('status', 'unknown')})."))
    out.append(_image(fold_dir / "plots" / "learning_curves.png", f"{name} learning curves",
                      f"{name}: training and validation curves of its selection phase.",
                      redraw=_history_redraw(fold_dir, name)))
    out.append('<p class="note"><a href="#folds">back to the fold table</a></p>')
    return Html("".join(out))


# --- entry point --------------------------------------------------------------------------

def write_report(run_dir: str | Path, output: str | Path | None = None, *,
                 n_worst: int = 6) -> Path:
    """Write one self-contained HTML report of a run or a cross-validation directory.

    Args:
        run_dir: a run directory (``config.yaml``, ``run.json``, ...) or a cross-validation
            directory (``cv.json``, ``folds.csv``, ``foldNN/``, ...).
        output: the HTML file to write (default ``<run_dir>/report.html``); written
            atomically.
        n_worst: how many of the final model's most confidently wrong test windows to draw
            (run reports; 0 = none, which also skips running the model).

    Returns:
        the path of the written report.

    Raises:
        CheckpointError: ``run_dir`` is neither a run nor a cross-validation directory.
        ConfigError: ``n_worst`` is negative.

    Example:
        >>> write_report("runs/my-run")                  # doctest: +SKIP
        PosixPath('runs/my-run/report.html')
    """
    path = Path(run_dir)
    if n_worst < 0:
        raise ConfigError(f"n_worst={n_worst}: expected 0 or more windows to draw")
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such directory; expected a harkit run directory "
                              "or cross-validation directory")
    if (path / "cv.json").is_file():
        text = _cv_report(path)
    elif (path / "config.yaml").is_file():
        text = _run_report(path, n_worst)
    else:
        raise CheckpointError(f"{path}: neither a harkit run directory (no config.yaml) nor a "
                              "cross-validation directory (no cv.json)")
    out = Path(output) if output is not None else path / "report.html"
    atomic_write_text(out, text)
    return out


__all__ = ["esc", "most_confident_mistakes", "write_report"]
