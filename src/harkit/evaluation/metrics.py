"""Classification metrics (scikit-learn), reported per class and as confusion matrices."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harkit.io import atomic_write_text


def basic_scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> tuple[float, float]:
    """(accuracy, macro F1), the F1 averaged over the classes that occur in ``y_true`` or
    ``y_pred``: a class absent from a small validation set and never predicted is not scored
    as 0 (which would cap macro F1 below 1 for a perfect model).

    Example:
        >>> basic_scores(np.array([0, 1, 1]), np.array([0, 1, 1]), n_classes=4)
        (1.0, 1.0)
    """
    from sklearn.metrics import accuracy_score, f1_score

    acc = float(accuracy_score(y_true, y_pred))
    present = np.union1d(y_true, y_pred)
    labels = [int(c) for c in present if 0 <= c < n_classes]
    f1 = float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0))
    return acc, f1


@dataclass
class EvalReport:
    """Everything one evaluation produced (JSON-serialisable via :meth:`to_dict`).

    ``confusion[i][j]`` counts windows of true class ``i`` predicted as ``j``; the
    row-normalised matrix divides each row by its true-class count (so rows sum to 1 and the
    diagonal is per-class recall).
    """

    split: str
    n_windows: int
    accuracy: float
    macro_f1: float
    weighted_f1: float
    classes: list[str]
    per_class: dict[str, dict[str, float]]
    confusion: list[list[int]]
    confusion_normalized: list[list[float]]
    # With a NULL class (OPPORTUNITY, Skoda): macro F1 over the other classes, and accuracy on
    # windows whose true class is not NULL. None when the dataset has no NULL class.
    null_class: str | None = None
    macro_f1_without_null: float | None = None
    accuracy_without_null: float | None = None
    # subject id (as a string, for JSON) -> {"n_windows", "accuracy", "macro_f1"}
    per_subject: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> EvalReport:
        return cls(**json.loads(Path(path).read_text(encoding="utf-8")))


NULL_NAMES = ("null", "null_class", "none", "other")


def find_null_class(classes: list[str]) -> int | None:
    """Index of the NULL (background) class, recognised by name, or None.

    Example:
        >>> find_null_class(["NULL", "open door"]), find_null_class(["walk", "run"])
        (0, None)
    """
    for i, c in enumerate(classes):
        if c.strip().lower() in NULL_NAMES:
            return i
    return None


def evaluate_predictions(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str],
                         split: str = "test", subjects: np.ndarray | None = None) -> EvalReport:
    """Compute the full report for class indices ``y_true`` vs ``y_pred``.

    With ``subjects`` (one id per window) the report also scores each subject separately;
    with a NULL class (see :func:`find_null_class`) it also reports scores without it.

    Example:
        >>> r = evaluate_predictions(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), ["a", "b"])
        >>> r.accuracy, r.confusion, r.confusion_normalized[0]
        (0.75, [[1, 1], [0, 2]], [0.5, 0.5])
    """
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    labels = list(range(len(classes)))
    acc = float(np.mean(y_true == y_pred)) if len(y_true) else 0.0
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    rows = cm.sum(axis=1, keepdims=True)
    cmn = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    per_class = {
        c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
            "support": int(s[i])}
        for i, c in enumerate(classes)
    }
    null = find_null_class(classes)
    f1_nn = acc_nn = None
    if null is not None:
        others = [int(i) for i in np.union1d(y_true, y_pred) if i != null]
        f1_nn = float(f1_score(y_true, y_pred, labels=others, average="macro", zero_division=0))
        keep = y_true != null
        acc_nn = float(np.mean(y_pred[keep] == y_true[keep])) if keep.any() else 0.0
    per_subject = {}
    if subjects is not None:
        for subj in np.unique(subjects):
            m = subjects == subj
            per_subject[str(int(subj))] = {
                "n_windows": int(m.sum()), "accuracy": float(np.mean(y_true[m] == y_pred[m])),
                "macro_f1": float(f1_score(y_true[m], y_pred[m], average="macro",
                                           labels=np.unique(y_true[m]), zero_division=0)),
            }
    # Macro averages run over the classes that occur (in the truth or the predictions): a
    # class absent from this split and never predicted (a rare transition in one subject's
    # leave-one-subject-out fold) is not counted as an F1 of 0.
    seen = [int(c) for c in np.union1d(y_true, y_pred)] or labels
    return EvalReport(
        null_class=None if null is None else classes[null], macro_f1_without_null=f1_nn,
        accuracy_without_null=acc_nn, per_subject=per_subject,
        split=split, n_windows=len(y_true), accuracy=acc,
        macro_f1=float(f1_score(y_true, y_pred, labels=seen, average="macro", zero_division=0)),
        weighted_f1=float(f1_score(y_true, y_pred, labels=seen, average="weighted",
                                   zero_division=0)),
        classes=list(classes), per_class=per_class, confusion=cm.tolist(),
        confusion_normalized=np.round(cmn, 6).tolist(),
    )


def report_table(report: EvalReport) -> Any:
    """A Rich table: per-class precision/recall/F1/support and the overall scores."""
    from rich.table import Table

    title = (f"{report.split}: {report.n_windows} windows — accuracy {report.accuracy:.4f}, "
             f"macro F1 {report.macro_f1:.4f}, weighted F1 {report.weighted_f1:.4f}")
    if report.macro_f1_without_null is not None:
        title += f"; without {report.null_class}: macro F1 {report.macro_f1_without_null:.4f}"
    t = Table(title=title)
    for col in ("class", "precision", "recall", "F1", "support"):
        t.add_column(col, justify="left" if col == "class" else "right")
    for c, m in report.per_class.items():
        t.add_row(c, f"{m['precision']:.4f}", f"{m['recall']:.4f}", f"{m['f1']:.4f}",
                  str(m["support"]))
    return t
