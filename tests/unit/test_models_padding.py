"""Sequence models on what real series bring: variable lengths padded at the end with NaN
steps (every family that reads sequences gives a padded series the output it gives the
series unpadded, and trains on padded batches with finite gradients), and long series
(a recurrent cell's gradient reaches their early steps)."""

import pytest
import torch

from dlpipe.models.padding import steps_mask
from dlpipe.models.registry import build_model
from tests.conftest import model_cfg

SHAPE = (12, 3)
LENGTHS = (12, 9, 5)
SEQUENCE_FAMILIES = ["conv1d", "resnet1d", "inception", "rnn", "gru", "lstm", "transformer"]
# Small settings keep the test quick; the mechanism is the default families'.
SMALL = {
    "conv1d": {"channels": [8, 8], "kernels": [5, 3]},
    "resnet1d": {"channels": [8, 8], "kernels": [5, 3]},
    "inception": {"filters": 4, "bottleneck": 4, "kernels": [6, 3], "depth": 3},
    "transformer": {"width": 16, "feedforward": 16},
}


def build(name: str, **settings) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(model_cfg(name, **SMALL.get(name, {}), **settings), SHAPE, 4)


def padded(x: torch.Tensor, lengths) -> torch.Tensor:
    """`x` with every step past each sample's length NaN."""
    steps = torch.arange(x.shape[1])[None, :, None]
    return torch.where(steps < torch.tensor(lengths)[:, None, None], x, torch.nan)


def test_steps_mask_zeroes_only_steps_whose_every_feature_is_nan():
    x = torch.tensor([[[1.0, 2.0], [float("nan"), 3.0], [float("nan")] * 2]])
    zeroed, mask = steps_mask(x)
    assert mask.tolist() == [[True, True, False]]
    assert zeroed[0, 2].tolist() == [0.0, 0.0] and torch.isnan(zeroed[0, 1, 0])


@pytest.mark.parametrize(
    "name,settings",
    [(name, {}) for name in SEQUENCE_FAMILIES] + [("lstm", {"bidirectional": True, "layers": 2})],
)
def test_padding_changes_no_output_and_gradients_stay_finite(name, settings):
    model = build(name, **settings).eval()
    x = torch.randn(len(LENGTHS), *SHAPE)
    with torch.no_grad():
        out = model(padded(x, LENGTHS))
        alone = torch.cat([model(x[i : i + 1, :n]) for i, n in enumerate(LENGTHS)])
    torch.testing.assert_close(out, alone, atol=1e-5, rtol=1e-4)

    model.train()
    given = padded(x, LENGTHS).requires_grad_()
    model(given).square().sum().backward()
    assert torch.isfinite(given.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", ["conv1d", "resnet1d", "inception"])
def test_batch_statistics_in_training_count_real_steps_only(name):
    # A batch of series 7 steps long, padded to 12, is normalised as the unpadded batch is.
    model = build(name).train()
    x = torch.randn(4, 7, 3)
    out = model(padded(torch.cat([x, torch.randn(4, 5, 3)], dim=1), [7] * 4))
    torch.testing.assert_close(out, build(name).train()(x), atol=1e-5, rtol=1e-4)


def test_mlp_reads_padded_steps_as_zeros():
    model = build("mlp").eval()
    x = torch.randn(2, *SHAPE)
    zero_padded = torch.nan_to_num(padded(x, (12, 5)), nan=0.0)
    given = padded(x, (12, 5)).requires_grad_()
    out = model(given)
    torch.testing.assert_close(out, model(zero_padded))
    out.sum().backward()
    assert torch.isfinite(given.grad).all()


@pytest.mark.parametrize("name", ["rnn", "gru", "lstm"])
def test_recurrent_cells_pass_gradients_back_through_a_long_series(name):
    # On a 150-step series the loss must reach the early steps at the first update, or
    # training stalls at chance: PyTorch's own initialisation leaves them ~1e-20 of the
    # last step's gradient.
    torch.manual_seed(0)
    model = build_model(model_cfg(name), (150, 1), 2)
    x = torch.randn(16, 150, 1, requires_grad=True)
    model(x)[:, 0].sum().backward()
    reach = x.grad.abs().mean(0)[:, 0]
    assert reach[:50].mean() > 1e-10 * reach[-1]
