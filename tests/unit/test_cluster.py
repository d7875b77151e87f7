"""Cluster settings: Ray Train's scaling and each worker's Trainer, from conf/cluster and
conf/trainer; reaching a cluster's head."""

import os
import time

import pytest

from dlpipe.cluster import connect as cluster
from dlpipe.cluster.ray_train import _run, scaling_config, trainer_settings
from dlpipe.errors import ConfigError, TrainingError
from dlpipe.training.train import _reach_cluster, task_kind
from tests.conftest import free_port


def test_cpu_workers_by_default(make_cfg):
    cfg = make_cfg("cluster=ray")
    scaling = scaling_config(cfg.cluster)
    assert (scaling.num_workers, scaling.use_gpu) == (2, False)
    assert scaling.resources_per_worker == {"CPU": 1}
    settings = trainer_settings(cfg, steps_per_epoch=40)
    assert settings["accelerator"] == "cpu" and settings["precision"] == "32-true"
    assert settings["log_every_n_steps"] == 40 and settings["enable_checkpointing"] is False


def test_gpu_cluster_gives_each_worker_a_gpu_and_bf16(make_cfg):
    cfg = make_cfg("trainer=gpu", "cluster=ray", "cluster.use_gpu=true", "cluster.num_workers=8")
    scaling = scaling_config(cfg.cluster)
    assert (scaling.num_workers, scaling.use_gpu) == (8, True)
    assert scaling.resources_per_worker == {"CPU": 1, "GPU": 1}
    settings = trainer_settings(cfg, steps_per_epoch=10)
    assert settings["accelerator"] == "gpu" and settings["precision"] == "bf16-mixed"
    assert settings["devices"] == "auto"  # Ray gives each worker its own device


def test_min_workers_make_the_group_elastic_and_placement_is_passed_on(make_cfg):
    cfg = make_cfg("cluster=ray", "cluster.min_workers=1", "cluster.placement_strategy=SPREAD")
    scaling = scaling_config(cfg.cluster)
    assert scaling.num_workers == (1, 2) and scaling.elasticity_enabled
    assert scaling.placement_strategy == "SPREAD"
    fixed = scaling_config(make_cfg("cluster=ray", "cluster.min_workers=2").cluster)
    assert fixed.num_workers == 2 and not fixed.elasticity_enabled


@pytest.mark.parametrize(
    "override,message",
    [
        ("cluster.min_workers=3", "cluster.min_workers=3 is more than cluster.num_workers=2"),
        ("cluster.placement_strategy=EVERYWHERE", "cluster.placement_strategy"),
    ],
)
def test_bad_elastic_or_placement_settings_are_named(make_cfg, override, message):
    from dlpipe.config.schema.validate import validate

    with pytest.raises(ConfigError, match=message):
        validate(make_cfg("cluster=ray", override))


def test_workers_use_the_interface_of_their_node_address(monkeypatch):
    import ray

    from dlpipe.cluster import worker_setup

    assert worker_setup.interface_of("192.0.2.254") is None  # TEST-NET: no interface holds it
    monkeypatch.setattr(ray.util, "get_node_ip_address", lambda: "127.0.0.1")
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "unset by the test")
    monkeypatch.delenv("GLOO_SOCKET_IFNAME")
    monkeypatch.setenv("NCCL_SOCKET_IFNAME", "ib0")  # the user's choice stays
    worker_setup.use_node_interface()
    assert os.environ["GLOO_SOCKET_IFNAME"] == "lo"
    assert os.environ["NCCL_SOCKET_IFNAME"] == "ib0"


def test_address_comes_from_the_config_then_the_environment(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert cluster.cluster_address(None) is None
    monkeypatch.setenv("RAY_ADDRESS", "head:6379")
    assert cluster.cluster_address(None) == "head:6379"
    assert cluster.cluster_address("ray://other:10001") == "ray://other:10001"


def test_unreachable_head_is_named_within_the_timeout():
    port = free_port()
    started = time.monotonic()
    with pytest.raises(ConfigError, match=rf"no Ray cluster answers at 127\.0\.0\.1:{port} within"):
        cluster.check_reachable(f"ray://127.0.0.1:{port}", timeout=1)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["experiment=digits_gan"], "model 'gan' trains in one process: use cluster=local"),
        (
            ["search=digits", "search.trial=3"],
            "a search on the Hydra runner prunes trials in their own process",
        ),
    ],
)
def test_what_cannot_run_on_ray_is_refused_before_connecting(make_cfg, overrides, message):
    cfg = make_cfg("cluster=ray", "cluster.address=nowhere:1", *overrides)
    with pytest.raises(ConfigError, match=message):
        _reach_cluster(cfg, task_kind(cfg, {"task": "classification"}))


class _FailingTrainer:
    def __init__(self, failures: dict):
        self.failures = failures

    def fit(self):
        from ray.train import WorkerGroupError

        raise WorkerGroupError("one worker failed", self.failures)


def test_a_workers_own_error_is_what_the_run_fails_with():
    nan = TrainingError("val/loss became nan in epoch 3: training diverged")
    with pytest.raises(TrainingError, match=r"^val/loss became nan in epoch 3"):
        _run(_FailingTrainer({1: nan}), max_failures=1)
    with pytest.raises(
        TrainingError,
        match=r"Ray Train failed after 2 restart\(s\) \(cluster\.max_failures\): "
        r"worker 0: RuntimeError: out of memory",
    ):
        _run(_FailingTrainer({0: RuntimeError("out of memory")}), max_failures=2)
