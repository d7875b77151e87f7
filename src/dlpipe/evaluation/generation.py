"""Judging a generative model: draw samples, ask its discriminator and a classifier.

The classifier is another dlpipe training on the same prepared data, named by its MLflow
run id (evaluate.classifier): its labels say whether the samples look like the classes
(`test/confidence`, the mean of its highest class probability) and how many classes the
generator covers (`test/classes_covered`, those given at least 2% of the samples).
"""

import tempfile
from pathlib import Path

import torch
import yaml

from dlpipe.errors import ConfigError
from dlpipe.evaluation import plots
from dlpipe.tracking import client as tracking
from dlpipe.training import checkpoints

# A class counts as covered when at least this share of the samples is labelled with it.
COVERED_SHARE = 0.02
_TRAIN_AGAIN = "name a classification run whose checkpoint is intact, or train one again"


def load_classifier(client: tracking.Client, run_id: str, meta: dict) -> torch.nn.Module:
    """The model of the classification run `run_id`, which must be trained on `meta`'s data."""
    try:
        run = client.get_run(run_id)
    except tracking.TrackingStoreError as exc:
        raise ConfigError(
            f"evaluate.classifier={run_id} is not a run in {client.tracking_uri}"
        ) from exc
    if run.data.tags.get("dlpipe.data_hash") != meta["hash"]:
        raise ConfigError(
            f"evaluate.classifier={run_id} was trained on other data than data/prepared: "
            "train the classifier on the same data (same data settings) first"
        )
    with tempfile.TemporaryDirectory() as folder:
        config = yaml.safe_load(
            tracking.download_artifact(client, run_id, "config.yaml", folder).read_text()
        )
        checkpoint = str(
            tracking.download_artifact(client, run_id, "checkpoints/best.ckpt", folder)
        )
        network = {
            "model": config["model"],
            "input_shape": meta["input_shape"],
            "num_outputs": meta["num_outputs"],
        }
        fix = f"evaluate.classifier={run_id}: {_TRAIN_AGAIN}"
        return checkpoints.load_model(network, checkpoint, fix)


@torch.inference_mode()
def score_samples(
    model: torch.nn.Module,
    x_test: torch.Tensor,
    count: int,
    seed: int,
    classifier: torch.nn.Module | None,
    folder: Path,
) -> tuple[dict[str, float], list[Path]]:
    """Test metrics of `count` seeded samples, and the picture of the first of them."""
    samples = model.sample(count, torch.Generator().manual_seed(seed))
    right = torch.cat(
        [model.discriminator(x_test)[:, 0] > 0, model.discriminator(samples)[:, 0] <= 0]
    )
    metrics = {"test/d_acc": float(right.float().mean())}
    if classifier is not None:
        probabilities = classifier(samples).softmax(1)
        labels = probabilities.argmax(1)
        shares = torch.bincount(labels, minlength=probabilities.shape[1]) / count
        metrics["test/confidence"] = float(probabilities.max(1).values.mean())
        metrics["test/classes_covered"] = float((shares >= COVERED_SHARE).sum())
    return metrics, plots.samples(samples.numpy(), folder)


def classifier_of(
    client: tracking.Client, run_id: str | None, meta: dict
) -> torch.nn.Module | None:
    """The classifier evaluate.classifier names, if it names one."""
    return None if run_id is None else load_classifier(client, str(run_id), meta)
