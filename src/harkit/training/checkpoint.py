"""Checkpoints: one file, written atomically, with a SHA-256 of its payload.

Layout: ``HARKIT-CKPT 1\\n`` + hex SHA-256 of the payload + ``\\n`` + ``torch.save`` payload.
A truncated or altered file fails the checksum and is refused with a clear message.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import torch

from harkit.errors import CheckpointError
from harkit.io import atomic_write_bytes

MAGIC = b"HARKIT-CKPT 1\n"
FORMAT_VERSION = 1


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Serialise ``payload`` (tensors, numbers, strings, lists, dicts) to ``path`` atomically."""
    buf = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, **payload}, buf)
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest().encode()
    atomic_write_bytes(path, MAGIC + digest + b"\n" + data)


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
