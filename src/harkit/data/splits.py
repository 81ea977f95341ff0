"""Subject-wise splits. Splitting happens on subjects, before any windowing or fitting."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from harkit.data.dataset import WindowSet
from harkit.errors import ConfigError


def choose_val_subjects(subjects: Sequence[int], n: int, seed: int) -> list[int]:
    """Draw ``n`` validation subjects from the training subjects, reproducibly.

    Example:
        >>> choose_val_subjects([1, 3, 5, 6, 7], 2, seed=0) == choose_val_subjects([7, 6, 5, 3, 1], 2, seed=0)
        True
    """
    pool = sorted(set(int(s) for s in subjects))
    if not 0 < n < len(pool):
        raise ConfigError(
            f"data.n_val_subjects={n}: need at least 1 and fewer than the {len(pool)} "
            "training subjects"
        )
    rng = np.random.default_rng(seed)
    return sorted(int(s) for s in rng.choice(pool, size=n, replace=False))


def subject_holdout(ws: WindowSet, val_subjects: Sequence[int]) -> tuple[WindowSet, WindowSet]:
    """Split ``ws`` into (train, validation) so that no subject is on both sides."""
    val = sorted(set(int(s) for s in val_subjects))
    present = set(ws.subject_ids())
    unknown = [s for s in val if s not in present]
    if unknown:
        raise ConfigError(
            f"data.val_subjects: subject(s) {unknown} are not among the training subjects "
            f"{sorted(present)}"
        )
    mask = np.isin(ws.subjects, val)
    if mask.all():
        raise ConfigError("data.val_subjects: every training subject was put in validation")
    return ws.select(~mask), ws.select(mask)


def leave_one_subject_out(ws: WindowSet) -> Iterator[tuple[int, WindowSet, WindowSet]]:
    """Yield ``(subject, train, held_out)`` for every subject of ``ws``."""
    for s in ws.subject_ids():
        mask = ws.subjects == s
        yield s, ws.select(~mask), ws.select(mask)
