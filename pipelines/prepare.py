"""Prepare stage: `python pipelines/prepare.py data.split.seed=1` -> data/prepared/."""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from dlpipe.config.compose import TRUSTED, launch, user_errors
from dlpipe.config.schema.validate import validate
from dlpipe.paths import PREPARED_DIR

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


@hydra.main(config_path=str(CONF_DIR), config_name="config", execution_whitelist=TRUSTED)
def main(cfg: DictConfig) -> None:
    with user_errors():
        validate(cfg)
        # Imported once the config holds: the data libraries take longer to load than that.
        from dlpipe.data.prepare import prepare

        meta = prepare(cfg.data, PREPARED_DIR)
    print(f"prepared {meta['name']}: {meta['sizes']} -> {PREPARED_DIR}/")


if __name__ == "__main__":
    launch(main, CONF_DIR)
