"""Typed config: YAML, dotted overrides, clear rejections."""

from __future__ import annotations

from pathlib import Path

import pytest

from harkit.config import ExperimentConfig, apply_overrides, flatten, load_config, save_config
from harkit.errors import ConfigError


def test_overrides_types_and_model_params() -> None:
    cfg = apply_overrides(ExperimentConfig(), [
        "train.lr=0.01", "train.epochs=7", "model.name=gru", "model.hidden=32",
        "data.val_subjects=[1, 3]", "train.grad_clip=1.5", "train.augment.rotate_deg=0",
    ])
    assert cfg.train.lr == 0.01 and cfg.train.epochs == 7 and cfg.model.name == "gru"
    assert cfg.model.params == {"hidden": 32} and cfg.data.val_subjects == [1, 3]
    assert cfg.train.grad_clip == 1.5 and cfg.train.augment.rotate_deg == 0.0


@pytest.mark.parametrize(("override", "message"), [
    ("train.lrr=0.1", "unknown key 'train.lrr'"),
    ("nope.x=1", "unknown key 'nope'"),
    ("train.epochs=many", "train.epochs: expected an integer, got 'many'"),
    ("train.lr", "expected key=value"),
    ("train.deterministic=3", "expected true or false"),
])
def test_bad_overrides_are_named(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        apply_overrides(ExperimentConfig(), [override])


def test_yaml_roundtrip_and_errors(tmp_path: Path) -> None:
    cfg = apply_overrides(ExperimentConfig(), ["train.lr=0.002", "model.width=16"])
    p = tmp_path / "c.yaml"
    save_config(cfg, p)
    assert load_config(p) == cfg
    (tmp_path / "bad.yaml").write_text("train:\n  epochs: 3\n  bogus: 1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown config key\(s\): train.bogus"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "broken.yaml").write_text("train:\n  epochs: [3\n")
    with pytest.raises(ConfigError, match=r"broken.yaml, line \d+: invalid YAML"):
        load_config(tmp_path / "broken.yaml")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml")


def test_flatten() -> None:
    flat = flatten(ExperimentConfig().to_dict())
    assert flat["train.augment.rotate_deg"] == 10.0 and flat["model.name"] == "harcnn"
