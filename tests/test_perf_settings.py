"""threads=auto and compile=auto: the arithmetic behind them, without training."""

import os

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig

from budgetsweep.trainer import TrainConfigError, register_configs
from budgetsweep.trainer.build import (
    CPU_COMPILE_BREAK_EVEN_STEPS,
    JOBS_ENV,
    available_cores,
    compile_cache_dir,
    jobs_on_this_machine,
    launcher_jobs,
    resolve_threads,
    should_compile,
    threads_per_job,
)

from helpers import CONF


@pytest.mark.parametrize(
    "cores,jobs,threads",
    [(2, 1, 2), (2, 2, 1), (2, 3, 1), (16, 4, 4), (16, 3, 5), (8, 0, 8), (1, 1, 1)],
)
def test_cores_are_shared_among_the_jobs(cores, jobs, threads):
    assert threads_per_job(cores, jobs) == threads
    assert threads * max(jobs, 1) <= cores or threads == 1  # never more threads than cores, one at least


@pytest.mark.parametrize(
    "hydra_cfg,jobs",
    [
        ({"launcher": {}}, 1),  # basic launcher: one job after the other
        ({"launcher": {"n_jobs": 4}, "sweeper": {}}, 4),
        ({"launcher": {"n_jobs": 4}, "sweeper": {"n_jobs": 2}}, 2),  # Optuna hands two trials at a time
        ({"launcher": {"n_jobs": 2}, "sweeper": {"n_jobs": 8}}, 2),
        ({"launcher": {"n_jobs": 8}, "sweeper": {"max_batch_size": 3}}, 3),  # ablation / basic sweeper
        ({"launcher": {"n_jobs": -1}, "sweeper": {}}, 8),  # joblib: one per core
        ({"launcher": {"n_jobs": -2}, "sweeper": {"max_batch_size": None}}, 7),  # all cores but one
    ],
)
def test_jobs_at_once_from_the_launcher_and_sweeper(hydra_cfg, jobs):
    assert launcher_jobs(hydra_cfg, cores=8) == jobs


def test_the_environment_variable_counts_every_job_on_the_machine():
    assert jobs_on_this_machine(8, env={JOBS_ENV: "3"}) == 3
    assert jobs_on_this_machine(8, env={}) == 1  # a plain run, outside any Hydra job
    for bad in ("0", "two", "-1"):
        with pytest.raises(TrainConfigError, match=JOBS_ENV):
            jobs_on_this_machine(8, env={JOBS_ENV: bad})


def test_a_joblib_multirun_job_reads_its_launcher():
    register_configs()
    with initialize_config_dir(config_dir=str(CONF)):
        cfg = compose(
            config_name="config",
            overrides=["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.mode=MULTIRUN"],
            return_hydra_config=True,
        )
    HydraConfig.instance().set_config(cfg)
    try:
        assert jobs_on_this_machine(8, env={}) == 2
        assert jobs_on_this_machine(8, env={JOBS_ENV: "4"}) == 4  # the variable wins
    finally:
        HydraConfig.instance().cfg = None


def test_resolve_threads(monkeypatch):
    assert resolve_threads(3) == 3 and resolve_threads(None) is None
    monkeypatch.setenv(JOBS_ENV, "1")
    assert resolve_threads("auto") == available_cores()
    monkeypatch.setenv(JOBS_ENV, "1000")
    assert resolve_threads("auto") == 1


def test_compile_auto_pays_on_cuda_and_on_long_cpu_runs():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert should_compile(True, cpu, 1) and not should_compile(False, cuda, 10**6)
    assert should_compile("auto", cuda, 1)
    assert not should_compile("auto", cpu, CPU_COMPILE_BREAK_EVEN_STEPS)
    assert should_compile("auto", cpu, CPU_COMPILE_BREAK_EVEN_STEPS + 1)


def test_compile_cache_is_shared_by_the_user_sweeps(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert compile_cache_dir() == tmp_path / "mine"  # the user's own setting is kept
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compile_cache_dir() == tmp_path / "budgetsweep" / "torchinductor"
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "budgetsweep" / "torchinductor")


def test_a_training_run_uses_the_threads_it_is_given(tiny_cfg, tmp_path):
    from budgetsweep.trainer import train

    before = torch.get_num_threads()
    try:
        assert train(tiny_cfg(["threads=1"]), tmp_path)["status"] == "completed"
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
