"""Errors harkit raises for users: each names the file, line or field that is wrong."""

from __future__ import annotations

from pathlib import Path


class HarkitError(Exception):
    """Base class of every error harkit reports to a user (the CLI prints it without traceback)."""


class ConfigError(HarkitError):
    """A configuration field is unknown or has a value of the wrong type or range."""


class DataFormatError(HarkitError):
    """A data file is missing or does not have the expected layout.

    Args:
        path: the file (or archive member) that is wrong.
        problem: what is wrong and what was expected.
        line: 1-based line number, when the problem sits on one line.
    """

    def __init__(self, path: str | Path, problem: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


class DatasetNotFoundError(HarkitError):
    """A dataset is neither in the configured data directory nor in the cache and cannot be fetched."""


class CheckpointError(HarkitError):
    """A checkpoint or run directory is missing, partial or from an incompatible version."""
