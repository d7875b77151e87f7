"""Train stage: `python pipelines/train.py model=cnn optim.lr=3e-3 trainer.max_epochs=5`."""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from dlpipe.config.compose import TRUSTED, in_sweep, job_outputs, launch, user_errors
from dlpipe.config.schema.validate import validate

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


@hydra.main(config_path=str(CONF_DIR), config_name="config", execution_whitelist=TRUSTED)
def main(cfg: DictConfig) -> float:
    with user_errors():
        # A sweep's job is checked by train() instead, which records a refused job as a
        # FAILED child run of the sweep.
        if not in_sweep():
            validate(cfg)
        # Imported once the config holds: torch, Lightning and MLflow take seconds to load.
        from dlpipe.training.train import train

        return train(cfg, *job_outputs()).best_score


if __name__ == "__main__":
    launch(main, CONF_DIR)
