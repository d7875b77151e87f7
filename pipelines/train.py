"""Train stage: `python pipelines/train.py model=cnn optim.lr=3e-3 trainer.max_epochs=5`."""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from dlpipe.app import launch, user_errors

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


@hydra.main(config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> float:
    from dlpipe.train import train

    with user_errors():
        return train(cfg).best_score


if __name__ == "__main__":
    launch(main, CONF_DIR)
