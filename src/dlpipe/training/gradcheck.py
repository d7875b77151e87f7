"""Gradient checking: each parameter group's backpropagated gradients against finite differences.

The model runs in float64 and eval mode (dropout off, batch norm on its running
statistics) so that it is one fixed, smooth function of its weights. torch.autograd's
gradcheck compares the analytical Jacobian of the outputs with respect to a group's
weights to a numerical one; its fast mode does so along random directions, which keeps
large groups cheap. A model that reads token ids is fed random ids (no [PAD], id 0): its
inputs are not differentiable, its embeddings' outputs are, and the check of the
embedding's weights covers them.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.autograd.gradcheck import GradcheckError
from torch.func import functional_call

from dlpipe.tracking.client import one_line


@dataclass(frozen=True)
class GroupResult:
    group: str
    parameters: int
    passed: bool
    detail: str = ""


def parameter_groups(model: nn.Module) -> dict[str, list[str]]:
    """Parameter names by the top-level part of the model that holds them."""
    groups: dict[str, list[str]] = {}
    for name, _ in model.named_parameters():
        groups.setdefault(name.split(".")[0], []).append(name)
    return groups


def _label(model: nn.Module, group: str) -> str:
    part = dict(model.named_children()).get(group)
    return f"{group} ({type(part).__name__ if part is not None else 'Parameter'})"


def check_gradients(
    model: nn.Module,
    input_shape: Sequence[int],
    batch: int = 4,
    seed: int = 0,
    vocab_size: int | None = None,
) -> list[GroupResult]:
    """Gradcheck every parameter group of `model` on a random batch of `input_shape` inputs:
    numbers, or token ids 1..vocab_size-1 when `vocab_size` is given."""
    torch.manual_seed(seed)
    model = model.double().eval()
    if vocab_size is None:
        x = torch.randn(batch, *input_shape, dtype=torch.float64)
    else:
        x = torch.randint(1, vocab_size, (batch, *input_shape))
    state = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    results = []
    for group, names in parameter_groups(model).items():

        def outputs(*weights: torch.Tensor, names: list[str] = names) -> torch.Tensor:
            return functional_call(model, {**state, **dict(zip(names, weights, strict=True))}, x)

        weights = tuple(state[name].detach().clone().requires_grad_() for name in names)
        size = sum(weight.numel() for weight in weights)
        try:
            torch.autograd.gradcheck(outputs, weights, eps=1e-6, atol=1e-5, fast_mode=True)
        except GradcheckError as exc:
            results.append(GroupResult(_label(model, group), size, False, one_line(exc)))
        else:
            results.append(GroupResult(_label(model, group), size, True))
    return results


def check_model_gradients(
    model: nn.Module, input_shape: Sequence[int], batch: int = 4, vocab_size: int | None = None
) -> list[GroupResult]:
    """Gradcheck `model` on inputs of the data's `input_shape` (token ids, for token data
    of `vocab_size`); a model whose parts take inputs of their own (a GAN's generator
    takes noise) says which with `part_inputs()` (part name -> one input's shape), and
    each part is checked on its own."""
    parts = getattr(model, "part_inputs", None)
    if parts is None:
        return check_gradients(model, input_shape, batch=batch, vocab_size=vocab_size)
    return [
        replace(result, group=f"{part}.{result.group}")
        for part, shape in parts().items()
        for result in check_gradients(getattr(model, part), shape, batch=batch)
    ]
