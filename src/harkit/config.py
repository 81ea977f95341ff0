"""Typed experiment configuration: dataclasses per component, YAML in, dotted overrides.

Every field has a default, so ``ExperimentConfig()`` is a valid config. Unknown keys are
rejected with the dotted path that was wrong. Model hyperparameters live in the free-form
``model.params`` mapping and are validated against the model's own signature when it is built.

Example:
    >>> cfg = apply_overrides(ExperimentConfig(), ["train.lr=0.01", "model.name=gru"])
    >>> cfg.train.lr, cfg.model.name
    (0.01, 'gru')
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harkit.errors import ConfigError


@dataclass
class DataConfig:
    """Which dataset, where it lives and how it is split and normalised."""

    dataset: str = "uci-har"
    data_dir: str | None = None
    # Validation subjects are carved from the training subjects only. Either name them, or
    # give how many to draw (seeded); the test split is never touched for validation.
    # n_val_subjects=0: no validation at all: one fit on every training subject for
    # train.epochs epochs (no selection, early stopping or refit; the last epoch is the model).
    val_subjects: list[int] | None = None
    n_val_subjects: int = 4
    normalize: str = "standard"  # per channel, fitted on training windows: "standard" (z-score),
    # "minmax" (to [0, 1]) or "none". On a skeleton dataset "standard" (or "skeleton") is one
    # mean / std per coordinate dim shared by all joints and bodies; "minmax" is refused there.
    channels: list[str] | None = None  # subset of the dataset's channels, in this order
    options: dict[str, Any] = field(default_factory=dict)  # source options: hapt activities=12
    # Continuous sources (recordings): split by subject first, then window each recording.
    # Window length and hop: an integer number of samples, or a duration string ("2.56s",
    # "500ms"); default: the dataset's customary window. `overlap` (a fraction in [0, 1)) is
    # an alternative to `hop`.
    window: int | str | None = None
    hop: int | str | None = None
    overlap: float | None = None
    sampling_rate: float | None = None  # resample every recording to this rate (anti-aliased)
    label_policy: str = "majority"  # window label: majority | last | centre
    min_labeled: float = 0.5  # drop windows with a smaller fraction of labelled samples
    min_purity: float = 0.0  # drop windows whose majority class covers less (1.0: pure only)
    test_subjects: list[int] | None = None  # override the dataset-defined test subjects
    # How training windows are held: "off" (materialised, N x T x C floats), "memory" (the
    # samples once, windows gathered per batch) or "mmap" (the samples memory-mapped from a
    # window cache file beside the parsed-data cache): for windows larger than RAM
    window_cache: str = "off"


@dataclass
class ModelConfig:
    """Registered model name and its keyword arguments."""

    name: str = "harcnn"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class AugmentConfig:
    """Training-only augmentations, applied on the fly to each batch."""

    scale: float = 0.1  # std of a per-window, per-channel multiplicative gain around 1
    # (skeletons: one gain for all coordinates, about the body centre)
    jitter: float = 0.05  # std of additive Gaussian noise, in normalised units
    rotate_deg: float = 10.0  # max random 3D rotation of each xyz sensor triplet, in degrees
    # (skeletons: of the whole 3D skeleton about its centre; 2D skeletons: in the image plane)
    # Skeleton datasets only (an error on sensor data); one draw per sequence:
    shear: float = 0.0  # max off-diagonal entry of a random shear of the coordinates
    shift: float = 0.0  # max translation, as a fraction of each coordinate's training std
    joint_dropout: float = 0.0  # probability that a joint of a frame is dropped (set to 0, as
    # a missed detection)
    time_crop: float = 0.0  # max fraction of the valid frames cut off (a random crop of the
    # rest is stretched back to the full length)


@dataclass
class TrainConfig:
    """Optimisation settings for the model-agnostic Trainer."""

    epochs: int = 25
    batch_size: int = 64
    optimizer: str = "adamw"  # adam | adamw | rmsprop
    lr: float = 1e-3
    weight_decay: float = 1e-2
    rmsprop_alpha: float = 0.99  # RMSprop's decay of the squared-gradient average (rho)
    scheduler: str = "onecycle"  # none | step | cosine | plateau | onecycle
    step_size: int = 10  # step scheduler: epochs between decays
    gamma: float = 0.5  # step / plateau decay factor
    max_lr: float | None = None  # onecycle peak (defaults to 3 x lr)
    class_weights: bool = False  # weight the loss by inverse class frequency (training split)
    label_smoothing: float = 0.1
    grad_clip: float | None = None  # max gradient L2 norm
    early_stopping: int | None = None  # patience in epochs on validation macro F1
    ema_decay: float | None = 0.995  # keep an exponential moving average of the weights (per
    # step); validation, checkpoints and prediction then use the averaged weights
    # Which epoch of the selection phase counts: "last" (default: a one-cycle schedule ends at
    # its best, and a few validation subjects are a noisy signal to pick epochs on) or "best"
    # (highest validation macro F1).
    select: str = "last"
    refit: bool = True  # then train a fresh model on all training subjects for that many
    # epochs (normaliser refitted on them); that model is the run's final model
    seed: int = 0
    deterministic: bool = True
    num_threads: int | None = None  # torch intra-op threads; None = one per physical core
    device: str = "cpu"
    # Arithmetic of the forward/backward pass: "fp32"; "bf16" (autocast to bfloat16: on CPUs
    # with AVX512-BF16/AMX and on recent GPUs, weights and optimiser stay fp32); "fp16" (CUDA
    # only, with loss scaling). Checkpoints are fp32 whatever the precision.
    precision: str = "fp32"
    compile: bool = False  # torch.compile the training forward pass (pays a warm-up once)
    # Multi-process training (harkit train --nproc N, DDP): BatchNorm statistics over the
    # global batch of all processes, as in a single-process run (false: each process
    # normalises with its own share's statistics)
    sync_batchnorm: bool = True
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class TrackingConfig:
    """Experiment tracking with MLflow (``pip install "harkit[mlflow]"``); on by default."""

    enabled: bool = True  # also switched off by the environment variable HARKIT_TRACKING=0
    # None: $MLFLOW_TRACKING_URI, else MLflow's own default (a local SQLite store, mlflow.db in
    # the working directory, which `mlflow ui` started there shows); or a server's http(s) URL
    uri: str | None = None
    experiment: str = "harkit"
    log_model: bool = True  # log the final model as an MLflow pyfunc model (raw windows in)


@dataclass
class ExperimentConfig:
    """Everything needed to reproduce one run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    run_root: str = "runs"
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _show(value: Any, limit: int = 80) -> str:
    """``repr(value)``, shortened: an error message should not quote a whole document."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check (and gently convert) ``value`` against the annotation ``tp``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {_show(value)}")
    if _is_dataclass_type(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {_show(value)}")
        return from_dict(tp, value, where)
    if origin is list:
        (inner,) = typing.get_args(tp)
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {_show(value)}")
        return [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {_show(value)}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {_show(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {_show(value)}")
    if tp is float:
        number: float | None = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an integer beyond the float range
                number = math.inf
        elif isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                number = float(value)
            except ValueError:
                pass
        if number is not None and math.isfinite(number):
            return number
        what = "a finite number" if number is not None else "a number"
        raise ConfigError(f"{where}: expected {what}, got {_show(value)}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {_show(value)}")
    return value


def from_dict(cls: type, data: dict[str, Any], where: str = "") -> Any:
    """Build dataclass ``cls`` from a nested mapping, rejecting unknown keys."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names, key=str)  # YAML keys may be numbers, dates, null
    if unknown:
        path = ", ".join(f"{where}.{k}".lstrip(".") for k in unknown)
        raise ConfigError(f"unknown config key(s): {path}; known: {', '.join(sorted(names))}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}".lstrip(".")) for k, v in data.items()}
    return cls(**kwargs)


def load_config(path: str | Path) -> ExperimentConfig:
    """Read an ExperimentConfig from a YAML file (missing fields keep their defaults)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{p}: cannot read config file ({e.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: config file is not UTF-8 text") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{p}{line}: invalid YAML ({getattr(e, 'problem', e)})") from None
    except RecursionError:
        raise ConfigError(f"{p}: invalid YAML (nested too deeply)") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return from_dict(ExperimentConfig, data)  # type: ignore[no-any-return,unused-ignore]
    except ConfigError as e:
        raise ConfigError(f"{p}: {e}") from None


def save_config(cfg: ExperimentConfig, path: str | Path) -> None:
    """Write ``cfg`` as YAML (atomically)."""
    from harkit.io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def parse_value(text: str) -> Any:
    """Parse an override's right-hand side as YAML (numbers, booleans, lists, null); text that
    is not YAML (or nested too deeply to parse) stays a string."""
    try:
        return yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError):
        return text


def apply_overrides(cfg: ExperimentConfig, overrides: list[str]) -> ExperimentConfig:
    """Return a copy of ``cfg`` with ``key.path=value`` overrides applied.

    ``model.<name>=value`` for a name that is not a ModelConfig field sets a model parameter
    (``model.hidden=64`` is ``model.params.hidden=64``).
    """
    data = cfg.to_dict()
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value, e.g. train.lr=0.001")
        key, _, raw = item.partition("=")
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"override {item!r}: {key.strip()!r} is not a dotted key, e.g. "
                              "train.lr=0.001")
        if parts[0] == "model" and len(parts) == 2 and parts[1] not in ("name", "params"):
            parts = ["model", "params", parts[1]]
        node: Any = data
        for i, part in enumerate(parts[:-1]):
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"override {key!r}: unknown key {'.'.join(parts[: i + 1])!r}")
            if node[part] is None:
                node[part] = {}
            node = node[part]
        if not isinstance(node, dict):
            raise ConfigError(f"override {key!r}: {'.'.join(parts[:-1])!r} is not a section")
        in_params = len(parts) >= 3 and parts[-2] in ("params", "options")  # free-form maps
        if parts[-1] not in node and not in_params:
            raise ConfigError(f"override {key!r}: unknown key {key!r}")
        node[parts[-1]] = parse_value(raw)
    return from_dict(ExperimentConfig, data)  # type: ignore[no-any-return,unused-ignore]


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten a nested mapping into dotted keys (for tables and trackers)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out
