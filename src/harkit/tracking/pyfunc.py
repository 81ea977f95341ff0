"""A harkit checkpoint as an MLflow pyfunc model: raw windows in, labels and probabilities out.

``mlflow.pyfunc.load_model("runs:/<run id>/model").predict(windows)`` takes raw (unnormalised)
windows ``(N, time, channels)`` float32, in the channel order of the signature, and returns a
DataFrame with the predicted ``label``, its ``probability`` and one ``p_<class>`` column per
class. The checkpoint travels as the model's artifact, with its normaliser, channel order and
label map, so the MLflow model predicts exactly as ``harkit predict`` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd


class HarkitPyfunc(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined,unused-ignore]
    """Wraps :class:`harkit.inference.Predictor` for MLflow."""

    def load_context(self, context: Any) -> None:
        from harkit.inference import Predictor

        self._predictor = Predictor.from_checkpoint(context.artifacts["checkpoint"])

    # ``np.ndarray`` is a hint MLflow derives no input schema from (the signature gives it);
    # without any hint MLflow prints a warning when the model is logged.
    def predict(self, context: Any, model_input: np.ndarray,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        return predictions_frame(self._predictor, model_input)


def predictions_frame(predictor: Any, windows: Any) -> pd.DataFrame:
    """Labels, their probability and every class's probability for raw windows."""
    X = np.asarray(windows, dtype=np.float32)
    if X.ndim == 2:  # one window (T, C)
        X = X[None]
    proba = predictor.predict_proba(X)
    classes = list(predictor.classes)
    out = pd.DataFrame({"label": [classes[i] for i in proba.argmax(1)],
                        "probability": proba.max(1).astype(np.float64)})
    for i, c in enumerate(classes):
        out[f"p_{c}"] = proba[:, i].astype(np.float64)
    return out


def requirements() -> list[str]:
    """Pinned to what trained the model (inferring them would import the model in a subprocess)."""
    import sklearn
    import torch

    import harkit

    return [f"harkit=={harkit.__version__}", f"torch=={torch.__version__.split('+')[0]}",
            f"numpy=={np.__version__}", f"pandas=={pd.__version__}",
            f"scikit-learn=={sklearn.__version__}", f"mlflow=={mlflow.__version__}"]


def signature(preprocessing: dict[str, Any]) -> Any:
    """Input: raw windows ``(-1, window_len, n_channels)`` float32; output: the prediction
    frame's columns (built from the checkpoint, so logging never runs the model)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    shape = (-1, int(preprocessing["window_len"]), len(preprocessing["channels"]))
    outputs: list[ColSpec | TensorSpec] = [ColSpec("string", "label"),
                                           ColSpec("double", "probability")]
    outputs += [ColSpec("double", f"p_{c}") for c in preprocessing["classes"]]
    return ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), shape)]),
                          outputs=Schema(outputs))


def log_pyfunc_model(run_id: str, checkpoint: Path, preprocessing: dict[str, Any],
                     example: np.ndarray) -> None:
    """Log ``checkpoint`` as the pyfunc model ``model`` of MLflow run ``run_id`` (tracking URI
    already set), with a signature and ``example`` (raw windows) as the input example."""
    nested = mlflow.active_run() is not None
    with mlflow.start_run(run_id=run_id, nested=nested):
        mlflow.pyfunc.log_model(name="model",
                                python_model=str(Path(__file__).with_name("mlflow_model.py")),
                                artifacts={"checkpoint": str(checkpoint)},
                                signature=signature(preprocessing),
                                input_example=np.asarray(example, dtype=np.float32),
                                pip_requirements=requirements())
