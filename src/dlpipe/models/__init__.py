"""Plain nn.Module families and their registry. Importing this package registers them all."""

from dlpipe.models import (  # noqa: F401  (registration side effect)
    autoencoder,
    cnn,
    gan,
    mlp,
    perceptron,
    recurrent,
    resnet,
    transformer,
)
from dlpipe.models.multitask import build_for_data
from dlpipe.models.registry import (
    build_model,
    check_model_name,
    list_models,
    model_task,
    register,
)

__all__ = [
    "build_for_data",
    "build_model",
    "check_model_name",
    "list_models",
    "model_task",
    "register",
]
