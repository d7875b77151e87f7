"""Train stage: `python pipelines/train.py model=cnn optim.lr=3e-3 trainer.max_epochs=5`."""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from dlpipe.app import TRUSTED, job_outputs, launch, user_errors

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


@hydra.main(config_path=str(CONF_DIR), config_name="config", execution_whitelist=TRUSTED)
def main(cfg: DictConfig) -> float:
    from dlpipe.train import train

    with user_errors():
        return train(cfg, *job_outputs()).best_score


if __name__ == "__main__":
    launch(main, CONF_DIR)
