"""dlpipe: deep-learning pipelines and experiments on DVC, Hydra, Lightning and MLflow."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dlpipe")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
