"""k-fold cross-validation for real: prepared once, a sweep over the folds, and the folds'
mean and spread read back from the sweep's parent run."""

import statistics
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import assert_one_line_error, make_project, run, stage
from tests.integration.test_sweep import runs_of

pytestmark = pytest.mark.slow


def test_a_sweep_over_the_folds_reports_their_mean_and_spread(tmp_path: Path):
    project = make_project(tmp_path / "project")
    rng = np.random.default_rng(0)
    features = rng.normal(size=(60, 2))
    labels = np.where(features[:, 0] + features[:, 1] > 0, "yes", "no")
    pd.DataFrame({"f1": features[:, 0], "f2": features[:, 1], "label": labels}).to_csv(
        project / "small.csv", index=False
    )
    data = ["data=table", "data.path=small.csv", "data.target=label", "data.split.folds=3"]
    run([sys.executable, "pipelines/prepare.py", *data], project)
    train = [*data, "model=mlp", "trainer.max_epochs=2", "data.batch_size=8"]
    run([sys.executable, "pipelines/train.py", "-m", *train, "data.split.fold=range(3)"], project)

    (parent,), children = runs_of(project)
    assert parent.data.tags["dlpipe.kfold"] == "3" and parent.info.status == "FINISHED"
    assert sorted(c.data.params["data.split.fold"] for c in children) == ["0", "1", "2"]
    scores = [c.data.metrics["best/val/acc"] for c in children]
    assert parent.data.metrics["best/val/acc/mean"] == pytest.approx(statistics.fmean(scores))
    assert parent.data.metrics["best/val/acc/std"] == pytest.approx(statistics.pstdev(scores))
    assert "val/loss/mean" in parent.data.metrics and "val/loss/std" in parent.data.metrics
    # The folds are one estimate, not rivals: no best fold is named.
    assert "dlpipe.best_run" not in parent.data.tags

    done = stage(project, "train", *train, "data.split.fold=3")
    assert_one_line_error(done, "data.split.fold=3 is not a fold of data.split.folds=3")
