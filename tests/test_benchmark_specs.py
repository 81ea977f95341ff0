"""benchmarks/common.py: model and ensemble specs, as the benchmark scripts read them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from common import model_overrides, split_ensemble, split_model


def test_model_spec_with_a_list_value_keeps_the_list_whole() -> None:
    spec = "stgcn[widths=[16,16,32],data.options.length=32,inputs=joint+bone]"
    assert split_model(spec) == ("stgcn", {"widths": "[16,16,32]", "data.options.length": "32",
                                           "inputs": "joint+bone"})
    assert model_overrides(spec) == ["model.name=stgcn", "model.widths=[16,16,32]",
                                     "data.options.length=32", "model.inputs=joint+bone"]
    assert split_model("minirocket") == ("minirocket", {})
    assert split_model("minirocket[]") == ("minirocket", {})


def test_ensemble_splits_only_outside_brackets() -> None:
    assert split_ensemble("stgcn[widths=[8,16],inputs=joint+bone]+minirocket[streams=a+b]+hydra") \
        == ["stgcn[widths=[8,16],inputs=joint+bone]", "minirocket[streams=a+b]", "hydra"]


@pytest.mark.parametrize("bad, why", [
    ("stgcn[widths=[16,32]", "balanced"),        # the spec's own bracket never closes
    ("stgcn[seed=1]]", "balanced"),
    ("stgcn[seed=1]x", "balanced"),
    ("stgcn[seed]", "'seed' is not key=value"),
    ("stgcn[=3]", "'=3' is not key=value"),
])
def test_malformed_model_spec_is_named_not_dropped(bad: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as err:
        split_model(bad)
    assert repr(bad) in str(err.value)
