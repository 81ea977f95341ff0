"""The code MLflow runs to load a logged harkit model ("models from code", no pickling).

``harkit.tracking.pyfunc.log_pyfunc_model`` logs this file as the model's ``python_model``;
MLflow copies it into the model and runs it at load time, and it names the model class. The
weights, normaliser and label map come from the checkpoint artifact, not from this file.
"""

from mlflow.models import set_model

from harkit.tracking.pyfunc import HarkitPyfunc

set_model(HarkitPyfunc())
