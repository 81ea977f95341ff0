"""data.n_val_subjects=0: one fit on every training subject, no validation, no refit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import harkit
from harkit.cli import main
from harkit.errors import ConfigError
from harkit.training.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.conftest import write_uci_fixture

    root = tmp_path_factory.mktemp("noval")
    write_uci_fixture(root / "data" / "uci-har")
    return root / "data"


def _common(data_dir: Path, root: Path) -> list[str]:
    return [f"data.data_dir={data_dir}", f"run_root={root}", "train.epochs=2",
            "model.width=4", "model.hidden=8", "train.num_threads=1", "train.seed=3"]


def test_no_validation_equals_the_refit_of_a_selection_run(data_dir: Path,
                                                           tmp_path: Path) -> None:
    common = _common(data_dir, tmp_path)
    sel = harkit.train(overrides=[*common, "data.n_val_subjects=2", "name=sel"], progress=False)
    noval = harkit.train(overrides=[*common, "data.n_val_subjects=0", "name=noval"],
                         progress=False)
    assert noval.val is None and noval.test is not None and noval.finished
    assert len(noval.history) == 2 and noval.selected_epoch == 2
    run = noval.run_dir
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["best_val_macro_f1"] is None
    assert "refit_epochs" not in info
    cfg = harkit.runs.RunDir(run).config()
    assert cfg.train.refit is False and cfg.data.val_subjects == []
    assert not (run / "metrics_val.json").exists()
    assert not (run / "checkpoints" / "best.pt").exists()
    # the same seed, data (all 6 training subjects) and epochs as the selection run's refit:
    # the same weights and normaliser, and so the same test predictions
    a = load_checkpoint(sel.run_dir / "checkpoints" / "refit_last.pt")
    b = load_checkpoint(run / "checkpoints" / "last.pt")
    assert a["preprocessing"]["normalizer"].keys() == b["preprocessing"]["normalizer"].keys()
    for k, v in a["preprocessing"]["normalizer"].items():
        if isinstance(v, np.ndarray | list):
            np.testing.assert_array_equal(np.asarray(v), np.asarray(b["preprocessing"]["normalizer"][k]))
    for k, v in a["weights"].items():
        assert torch.equal(v, b["weights"][k]), k
    assert noval.test.accuracy == sel.test.accuracy
    assert noval.test.macro_f1 == sel.test.macro_f1


def test_no_validation_resumes_to_the_same_weights(data_dir: Path, tmp_path: Path) -> None:
    common = [*_common(data_dir, tmp_path), "data.n_val_subjects=0"]
    whole = harkit.train(overrides=[*common, "name=whole"], progress=False)
    part = harkit.train(overrides=[*common, "name=part"], progress=False, stop_after=1)
    assert not part.finished and part.val is None and part.test is None
    done = harkit.train(resume=part.run_dir, progress=False)
    assert done.finished and done.val is None
    a = load_checkpoint(whole.run_dir / "checkpoints" / "last.pt")["weights"]
    b = load_checkpoint(done.run_dir / "checkpoints" / "last.pt")["weights"]
    for k, v in a.items():
        assert torch.equal(v, b[k]), k


def test_no_validation_cli_and_refusals(data_dir: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    sets = [x for o in [*_common(data_dir, tmp_path), "data.n_val_subjects=0", "name=cli"]
            for x in ("--set", o)]
    assert main(["train", *sets, "--no-progress", "--no-track"]) == 0
    out = capsys.readouterr().out
    assert "no validation (data.n_val_subjects=0): 2 epochs on all training subjects" in out
    assert "test" in out
    for bad, msg in (("train.select=best", "select=last"),
                     ("train.scheduler=plateau", "another scheduler")):
        with pytest.raises(ConfigError, match=msg):
            harkit.train(overrides=[*_common(data_dir, tmp_path), "data.n_val_subjects=0",
                                    bad], progress=False)
    # nothing was created for the refused configs
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["cli"]
    # a run without validation has no validation split to score
    with pytest.raises(ConfigError, match="0 means no validation"):
        harkit.evaluate(tmp_path / "cli", "val")
    # the run listing, comparison and HTML report take such a run
    assert main(["runs", "--run-root", str(tmp_path)]) == 0
    assert main(["compare", str(tmp_path / "cli"), str(tmp_path / "cli"), "--output",
                 str(tmp_path / "compare")]) == 0
    assert main(["report", str(tmp_path / "cli")]) == 0
    html = (tmp_path / "cli" / "report.html").read_text()
    assert "train (all training)" in html and "No validation scores" in html
