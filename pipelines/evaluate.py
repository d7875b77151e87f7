"""Evaluate stage: test metrics and plots into reports/ and into the run that trained the model."""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from dlpipe.app import TRUSTED, launch, user_errors

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


@hydra.main(config_path=str(CONF_DIR), config_name="config", execution_whitelist=TRUSTED)
def main(cfg: DictConfig) -> None:
    from dlpipe.evaluate import evaluate

    with user_errors():
        metrics = evaluate(cfg)
    print(" ".join(f"{key} {value:.4f}" for key, value in metrics.items()))


if __name__ == "__main__":
    launch(main, CONF_DIR)
