"""Weight initialisation schemes, applied to a built model's layers by name.

`default` keeps PyTorch's own per-layer defaults. The others set every weight matrix and
convolution kernel (linear, convolutional and recurrent layers) and zero the biases;
normalisation layers keep their ones and zeros.
"""

from collections.abc import Callable

import torch
from torch import nn

from dlpipe.errors import ConfigError


def _kaiming(weight: torch.Tensor) -> None:
    nn.init.kaiming_normal_(weight, nonlinearity="relu")


def _normal(weight: torch.Tensor) -> None:
    nn.init.normal_(weight, mean=0.0, std=0.02)


# How each scheme fills a weight, by the names a config may give (registry.INITS, which
# checks them without torch; a test keeps the two alike).
SCHEMES: dict[str, Callable[[torch.Tensor], None] | None] = {
    "default": None,
    "xavier": nn.init.xavier_uniform_,
    "kaiming": _kaiming,
    "normal": _normal,
}
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)


def check_init_name(name: str) -> None:
    if name not in SCHEMES:
        raise ConfigError(f"unknown model.init '{name}': choose one of {', '.join(SCHEMES)}")


def initialise(model: nn.Module, scheme: str) -> nn.Module:
    """Re-initialise `model`'s weights in place with `scheme`; return it."""
    check_init_name(scheme)
    fill = SCHEMES[scheme]
    if fill is None:
        return model
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, _NORMS):
                continue
            for name, param in module.named_parameters(recurse=False):
                if param.dim() >= 2:
                    fill(param)
                elif name.startswith("bias"):
                    param.zero_()
    return model
