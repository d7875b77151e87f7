"""dlpipe: deep-learning pipelines and experiments on DVC, Hydra, Lightning and MLflow."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dlpipe")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"


def __getattr__(name: str):
    """`from dlpipe import Range`: the public name for a setting's range in a user's
    model, task or data source, loaded on first use (`dlpipe --help` does not need it)."""
    if name == "Range":
        from dlpipe.config.schema.targets import Range

        return Range
    raise AttributeError(f"module 'dlpipe' has no attribute '{name}'")
