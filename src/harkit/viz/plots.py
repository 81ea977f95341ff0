"""Learning curves and confusion-matrix heatmaps, written as PNG files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harkit.io import atomic_open


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path, metadata: dict[str, str] | None = None) -> Path:
    """Write ``fig`` as a PNG (``metadata``: PNG text fields such as ``Description``)."""
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120, bbox_inches="tight", metadata=metadata)
    _pyplot().close(fig)
    return path


def plot_history(history: Sequence[dict[str, Any]], path: str | Path,
                 title: str = "") -> Path:
    """Train vs validation loss (left) and accuracy / macro F1 (right) per epoch.

    Training is drawn solid with circles, validation dashed with squares, in different
    colours, so the curves can be told apart in colour and in greyscale.
    """
    plt = _pyplot()
    ep = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    # The training loss is measured on augmented batches with the configured label smoothing,
    # so it can sit above the (plain cross-entropy) validation loss.
    ax1.plot(ep, [h["train_loss"] for h in history], "o-", color="tab:blue",
             label="train loss (augmented, label-smoothed)")
    ax1.plot(ep, [h["val_loss"] for h in history], "s--", color="tab:orange",
             label="validation loss")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("cross-entropy loss")
    ax1.set_title("loss")
    ax1.legend()
    ax1.grid(alpha=0.3)
    ax2.plot(ep, [h["train_acc"] for h in history], "o-", color="tab:blue",
             label="train accuracy")
    ax2.plot(ep, [h["val_acc"] for h in history], "s--", color="tab:orange",
             label="validation accuracy")
    ax2.plot(ep, [h["val_f1"] for h in history], "^:", color="tab:green",
             label="validation macro F1")
    best = max(history, key=lambda h: h["val_f1"]) if history else None
    if best is not None:
        ax2.axvline(best["epoch"], color="grey", lw=0.8, ls=":")
        ax2.annotate(f"best val F1 {best['val_f1']:.3f}", (best["epoch"], best["val_f1"]),
                     textcoords="offset points", xytext=(-80, -30), fontsize=8,
                     arrowprops={"arrowstyle": "->", "color": "grey"})
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("score")
    ax2.set_title("accuracy and F1")
    ax2.legend(loc="lower right")
    ax2.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return _save(fig, Path(path))


def plot_confusion_matrix(confusion: Sequence[Sequence[int]], classes: Sequence[str],
                          path: str | Path, title: str = "") -> Path:
    """Heatmap of the row-normalised confusion matrix (rows = true class), counts annotated."""
    plt = _pyplot()
    cm = np.asarray(confusion, dtype=float)
    rows = cm.sum(axis=1, keepdims=True)
    cmn = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    n = len(classes)
    size = max(5.0, 0.75 * n + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(cmn, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    ax.set_xticks(range(n), labels=list(classes), rotation=45, ha="right")
    ax.set_yticks(range(n), labels=list(classes))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            if cm[i, j] == 0:
                continue
            ax.text(j, i, f"{cmn[i, j]:.2f}\n({int(cm[i, j])})", ha="center", va="center",
                    fontsize=7, color="white" if cmn[i, j] > 0.5 else "black")
    ax.set_title(title or "confusion matrix (row-normalised; counts in brackets)")
    return _save(fig, Path(path))


def plot_folds(rows: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Accuracy and macro F1 of every cross-validation fold as grouped bars, with the mean
    of each as a dashed line (folds labelled by their test subjects)."""
    plt = _pyplot()
    names = [str(r.get("test_subjects", r.get("fold", i))) for i, r in enumerate(rows)]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(rows) + 3), 4))
    for off, key, label, colour in ((-0.2, "accuracy", "accuracy", "tab:blue"),
                                    (0.2, "macro_f1", "macro F1", "tab:orange")):
        vals = np.array([float(r[key]) for r in rows])
        ax.bar(x + off, vals, width=0.4, label=f"{label} (mean {vals.mean():.3f})", color=colour)
        ax.axhline(vals.mean(), color=colour, linestyle="--", linewidth=1)
    ax.set_xticks(x, names, rotation=90 if len(rows) > 12 else 0)
    ax.set_xlabel("test subjects of the fold")
    ax.set_ylim(max(0.0, min(float(r["macro_f1"]) for r in rows) - 0.1), 1.0)
    ax.legend(loc="lower right")
    ax.set_title(title)
    return _save(fig, Path(path))
