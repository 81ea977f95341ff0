"""Model-agnostic training: the Trainer and atomic, checksummed checkpoints."""

from harkit.training.checkpoint import load_checkpoint, save_checkpoint
from harkit.training.trainer import EpochResult, Trainer

__all__ = ["EpochResult", "Trainer", "load_checkpoint", "save_checkpoint"]
