"""A trained network with its serving settings: raw inputs in, predictions out.

Saved as two files, settings.json and weights.pt (the state dict alone), and loaded by
rebuilding the network from the settings and reading the weights with
`torch.load(weights_only=True)`: no pickled module, so loading a model runs no code of its
own and does not depend on how torch serialises classes.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dlpipe import files
from dlpipe.errors import DataError
from dlpipe.record import RunRecord
from dlpipe.serving import settings as serving_settings
from dlpipe.serving import text, transform
from dlpipe.training import checkpoints
from dlpipe.training.checkpoints import build_network

SETTINGS_FILE, WEIGHTS_FILE = "settings.json", "weights.pt"
# Rows per forward pass: bounds memory on large inputs.
_BATCH = 256


class Predictor:
    """Predictions of one trained network, from the inputs its training data was made of."""

    def __init__(self, network: torch.nn.Module, settings: dict):
        self.network = network.eval()
        self.settings = settings

    @classmethod
    def from_checkpoint(cls, checkpoint: Path, record: RunRecord, meta: dict) -> "Predictor":
        """The network a training saved in `checkpoint`, as `record` (its models/run.json)
        describes it, served with the statistics of the prepared data `meta`."""
        settings = serving_settings.describe(record, meta)
        network = build_network(settings)
        checkpoints.load_into(network, checkpoint, "give the checkpoint a training saved")
        return cls(network, settings)

    @classmethod
    def load(cls, settings_file: Path | str, weights_file: Path | str) -> "Predictor":
        """A predictor saved by `save`."""
        settings = files.read_json(settings_file)
        network = build_network(settings)
        try:
            weights = torch.load(weights_file, map_location="cpu", weights_only=True)
            network.load_state_dict(weights)
        except (OSError, RuntimeError) as exc:
            raise DataError(f"model weights {weights_file} cannot be loaded: {exc}") from exc
        return cls(network, settings)

    def save(self, folder: Path) -> dict[str, str]:
        """Write settings.json and weights.pt into `folder`; return their paths by name, as
        MLflow's pyfunc `artifacts` take them."""
        paths = {"settings": Path(folder) / SETTINGS_FILE, "weights": Path(folder) / WEIGHTS_FILE}
        files.write_json(paths["settings"], self.settings)
        with files.atomic_path(paths["weights"]) as tmp:
            torch.save(self.network.state_dict(), tmp)
        return {name: str(path) for name, path in paths.items()}

    @torch.inference_mode()
    def predict(self, raw: pd.DataFrame | np.ndarray, params: dict | None = None) -> pd.DataFrame:
        """Predictions for raw inputs: a table's rows, or samples shaped as the training's
        (or flattened to one row each); texts. A language model continues each text, as
        `params` say (see dlpipe.serving.text.written)."""
        if self.settings["task"] == "language_model":
            return text.written(self.network, self.settings, raw, params)
        if self.settings["task"] == "token_classification":
            return text.tagged(self.network, self.settings, raw)
        x = transform.model_input(self.settings, raw)
        outputs = torch.cat([self.network(x[i : i + _BATCH]) for i in range(0, len(x), _BATCH)])
        return transform.predictions(self.settings, outputs)
