"""Checkpoints: one file, written atomically, with a SHA-256 of its payload.

Layout: ``HARKIT-CKPT 1\\n`` + hex SHA-256 of the payload + ``\\n`` + ``torch.save`` payload.
A truncated or altered file fails the checksum and is refused with a clear message.

A checkpoint saved with ``keep_previous`` (the per-epoch ``last.pt``) keeps the one it
replaces as ``last.prev.pt``; :func:`load_first_good` resumes from the first of several
candidates that passes the checks, logging why each one before it was refused.
"""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path
from typing import Any

import torch

from harkit.errors import CheckpointError
from harkit.io import atomic_write_bytes

MAGIC = b"HARKIT-CKPT 1\n"
FORMAT_VERSION = 1

log = logging.getLogger(__name__)


def previous_path(path: str | Path) -> Path:
    """Where :func:`save_checkpoint` keeps the checkpoint that ``path`` held before.

    Example:
        >>> previous_path("run/checkpoints/last.pt").name
        'last.prev.pt'
    """
    p = Path(path)
    return p.with_name(f"{p.stem}.prev{p.suffix}")


def save_checkpoint(path: str | Path, payload: dict[str, Any], keep_previous: bool = False
                    ) -> None:
    """Serialise ``payload`` (tensors, numbers, strings, lists, dicts) to ``path`` atomically.

    With ``keep_previous``, the checkpoint that ``path`` held moves to :func:`previous_path`;
    at every moment one of the two is complete, whenever the process is killed.
    """
    buf = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, **payload}, buf)
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest().encode()
    atomic_write_bytes(path, MAGIC + digest + b"\n" + data,
                       previous=previous_path(path) if keep_previous else None)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and verify a checkpoint written by :func:`save_checkpoint`.

    Raises:
        CheckpointError: missing file, wrong format, failed checksum (truncated or corrupt).
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{p}: checkpoint not found") from None
    if not raw.startswith(MAGIC):
        raise CheckpointError(f"{p}: not a harkit checkpoint (bad header)")
    rest = raw[len(MAGIC):]
    digest, sep, data = rest.partition(b"\n")
    if not sep or hashlib.sha256(data).hexdigest().encode() != digest:
        raise CheckpointError(f"{p}: checkpoint is corrupt or truncated (checksum mismatch)")
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # the checksum passed, so this is a format/version problem
        raise CheckpointError(f"{p}: cannot read checkpoint payload ({e})") from None
    if not isinstance(obj, dict) or obj.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{p}: unsupported checkpoint format version "
                              f"{obj.get('format_version') if isinstance(obj, dict) else '?'}")
    return obj


def load_first_good(candidates: list[Path]) -> tuple[Path, dict[str, Any]] | None:
    """The first of ``candidates`` (in order of preference) that loads and passes the checks.

    Missing files are skipped; each refused one is logged as a warning naming the file, why
    it was refused and which one is tried next.

    Returns:
        (path, checkpoint), or None when none of the candidates exists.

    Raises:
        CheckpointError: candidates exist but every one was refused (the message lists them).
    """
    present = [p for p in candidates if p.exists()]
    refused: list[str] = []
    for i, p in enumerate(present):
        try:
            ckpt = load_checkpoint(p)
        except CheckpointError as e:
            refused.append(str(e))
            nxt = f"trying {present[i + 1].name}" if i + 1 < len(present) else "none left"
            log.warning("refused checkpoint %s; %s", e, nxt)
            continue
        if refused:
            log.warning("resuming from %s (epoch %s) after refusing %d newer checkpoint(s)",
                        p, ckpt.get("epoch", "?"), len(refused))
        return p, ckpt
    if refused:
        raise CheckpointError("no usable checkpoint to resume from: " + "; ".join(refused)
                              + " (delete these files to train this phase again from the start)")
    return None
