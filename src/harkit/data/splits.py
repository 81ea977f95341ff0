"""Subject-wise splits. Splitting happens on subjects, before any windowing or fitting.

Windows are split with :func:`subject_holdout` and :func:`leave_one_subject_out`; sources
that hold one sequence per example (skeleton clips) split their sequences with
:func:`split_sequences` / :func:`subject_split` before they become windows.
"""

from __future__ import annotations

import re
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
            "training subjects" + (" (0 means no validation at all: a run trained that way "
                                   "has no validation split to score)" if n == 0 else "")
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


SequenceSplit = tuple[list[np.ndarray], np.ndarray, np.ndarray]
"""One split of sequences: (sequences, labels ``(n,)``, subject ids ``(n,)``)."""


def subject_numbers(ids: Sequence[str]) -> dict[str, int]:
    """Subject id text -> int: integers as they are, else 1, 2, ... in sorted order.

    Example:
        >>> subject_numbers(["7", "3"]), subject_numbers(["bob", "al"])
        ({'3': 3, '7': 7}, {'al': 1, 'bob': 2})
    """
    uniq = sorted(set(ids))
    if all(re.fullmatch(r"\d+", s) for s in uniq):
        return {s: int(s) for s in uniq}
    return {s: i + 1 for i, s in enumerate(uniq)}


def default_test_subjects(subjects: Sequence[int], name: str, hint: str = "") -> list[int]:
    """A reproducible 20% of ``subjects`` (at least one, never all).

    Raises:
        ConfigError: fewer than 2 subjects (naming the dataset ``name``; ``hint`` says where
            the subject ids come from).

    Example:
        >>> len(default_test_subjects(range(1, 11), "demo"))
        2
    """
    pool = sorted(set(int(s) for s in subjects))
    if len(pool) < 2:
        raise ConfigError(f"{name}: only subject(s) {pool}; a subject-independent test split "
                          f"needs at least 2{f' ({hint})' if hint else ''}")
    n = max(1, round(0.2 * len(pool)))
    return sorted(int(s) for s in np.random.default_rng(0).choice(pool, size=n, replace=False))


def split_sequences(seqs: Sequence[np.ndarray], y: np.ndarray, subjects: np.ndarray,
                    is_test: np.ndarray) -> dict[str, SequenceSplit]:
    """``{"train": ..., "test": ...}`` of sequences by a boolean ``is_test`` per sequence
    (order kept within each split).

    Example:
        >>> seqs = [np.zeros((t, 1, 2, 3)) for t in (4, 5, 6)]
        >>> parts = split_sequences(seqs, np.array([0, 1, 0]), np.array([1, 2, 1]),
        ...                         np.array([False, True, False]))
        >>> [len(s) for s in parts["train"][0]], parts["test"][2].tolist()
        ([4, 6], [2])
    """
    y, subjects, is_test = np.asarray(y), np.asarray(subjects), np.asarray(is_test, dtype=bool)
    if not len(seqs) == len(y) == len(subjects) == len(is_test):
        raise ValueError(f"{len(seqs)} sequences, {len(y)} labels, {len(subjects)} subjects and "
                         f"{len(is_test)} split flags: expected one of each per sequence")
    out = {}
    for split, mask in (("train", ~is_test), ("test", is_test)):
        idx = np.flatnonzero(mask)
        out[split] = ([seqs[i] for i in idx.tolist()], y[idx], subjects[idx])
    return out


def subject_split(seqs: Sequence[np.ndarray], y: np.ndarray, subjects: np.ndarray,
                  test_subjects: Sequence[int] | None, name: str, hint: str = ""
                  ) -> dict[str, SequenceSplit]:
    """``{"train": ..., "test": ...}`` of sequences holding out ``test_subjects`` (default:
    :func:`default_test_subjects`, with its ``hint``).

    Raises:
        ConfigError: a test subject that is not present, or no training subject left
            (naming the dataset ``name``).
    """
    present = sorted({int(s) for s in subjects})
    if test_subjects is None:
        test = default_test_subjects(present, name, hint)
    else:
        test = sorted({int(s) for s in test_subjects})
        unknown = sorted(set(test) - set(present))
        if unknown:
            raise ConfigError(f"{name}: test_subjects {unknown} are not among the subjects "
                              f"{present}")
        if set(test) >= set(present):
            raise ConfigError(f"{name}: test_subjects {test} would leave no training subject")
    return split_sequences(seqs, y, subjects, np.isin(subjects, test))
