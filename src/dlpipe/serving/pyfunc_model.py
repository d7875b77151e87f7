"""The MLflow pyfunc model of a dlpipe training, logged as code (MLflow's "models from code").

MLflow runs this file to load the model, so nothing is unpickled: `load_context` rebuilds
the network from the logged settings.json and reads weights.pt as weights only. The
registry logs the file by its path; it is not imported by dlpipe itself.
"""

from mlflow.models import set_model
from mlflow.pyfunc import PythonModel

from dlpipe.serving.predictor import Predictor


class DlpipeModel(PythonModel):
    """Raw inputs in (a table's rows, or arrays shaped as the training inputs, or texts),
    predictions out: the class and per-class probabilities, values in the targets' units,
    or a language model's text (generation's settings as params)."""

    # Inputs are a DataFrame or an array, by model, and MLflow checks them against the
    # signature logged with the model; this tells MLflow (which pins no type for them
    # otherwise, and warns at every load) not to look for type hints on predict.
    _skip_type_hint_validation = True

    def load_context(self, context) -> None:
        self.predictor = Predictor.load(context.artifacts["settings"], context.artifacts["weights"])

    def predict(self, context, model_input, params=None):
        return self.predictor.predict(model_input, params)


set_model(DlpipeModel())
