"""Evaluate stage: test metrics and plots into reports/ and into the run that trained the model."""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from dlpipe.config.compose import TRUSTED, launch, user_errors
from dlpipe.config.schema.validate import validate

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


@hydra.main(config_path=str(CONF_DIR), config_name="config", execution_whitelist=TRUSTED)
def main(cfg: DictConfig) -> None:
    with user_errors():
        validate(cfg)
        # Imported once the config holds: torch and MLflow take longer to load than that.
        from hydra.core.hydra_config import HydraConfig

        from dlpipe.evaluation.evaluate import evaluate

        # The model and its data come from the training's record; the command line's own
        # overrides are checked against it (under DVC there are none: params.yaml holds all).
        metrics = evaluate(cfg, overrides=HydraConfig.get().overrides.task)
    print(" ".join(f"{key} {value:.4f}" for key, value in metrics.items()))


if __name__ == "__main__":
    launch(main, CONF_DIR)
