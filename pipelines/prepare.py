"""Prepare stage: `python pipelines/prepare.py data.split.seed=1` -> data/prepared/."""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from dlpipe.app import TRUSTED, launch, user_errors

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


@hydra.main(config_path=str(CONF_DIR), config_name="config", execution_whitelist=TRUSTED)
def main(cfg: DictConfig) -> None:
    from dlpipe.config import validate_data
    from dlpipe.data.prepare import prepare
    from dlpipe.paths import PREPARED_DIR

    with user_errors():
        validate_data(cfg)
        meta = prepare(cfg.data, PREPARED_DIR)
    print(f"prepared {meta['name']}: {meta['sizes']} -> {PREPARED_DIR}/")


if __name__ == "__main__":
    launch(main, CONF_DIR)
