"""Thread policy (infoflow.threads): affinity where it exists, cgroup quotas, the launcher's share,
other load; and the measuring callbacks where ``os.sched_getaffinity`` does not exist (macOS)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from infoflow import threads
from infoflow.records import read_records
from infoflow.train import run


@pytest.fixture
def machine(monkeypatch, tmp_path):
    """A machine of 8 CPUs without affinity, cgroup files or other load, and no share set."""
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(threads, "_CGROUP_V2", tmp_path / "cpu.max")
    v1 = (tmp_path / "cfs_quota_us", tmp_path / "cfs_period_us")
    monkeypatch.setattr(threads, "_CGROUP_V1", v1)
    monkeypatch.setattr(threads, "_busy_elsewhere", lambda: 0.0)
    for name in threads._SHARE_VARS:
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_without_affinity_all_cpus_count(machine):
    assert threads.usable_cpus() == 8 and threads.compute_threads() == 8


@pytest.mark.parametrize(
    ("cpu_max", "cpus"), [("150000 100000\n", 1), ("400000 100000", 4), ("max 100000", 8)]
)
def test_cgroup_v2_quota_caps_the_cpus(machine, cpu_max, cpus):
    (machine / "cpu.max").write_text(cpu_max)
    assert threads.usable_cpus() == cpus


def test_cgroup_v1_quota_and_unlimited(machine):
    (machine / "cfs_quota_us").write_text("200000\n")
    (machine / "cfs_period_us").write_text("100000\n")
    assert threads.usable_cpus() == 2
    (machine / "cfs_quota_us").write_text("-1\n")
    assert threads.usable_cpus() == 8


def test_an_unreadable_quota_is_ignored(machine):
    (machine / "cpu.max").write_text("garbage")
    assert threads.usable_cpus() == 8


def test_affinity_counts_where_it_exists(machine, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert threads.usable_cpus() == 3


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"INFOFLOW_THREADS": "3"}, 3),
        ({"OMP_NUM_THREADS": "2"}, 2),
        ({"INFOFLOW_THREADS": "5", "OMP_NUM_THREADS": "2"}, 5),  # infoflow's own first
        ({"INFOFLOW_THREADS": "64"}, 8),  # never more than the CPUs
        ({"INFOFLOW_THREADS": "0", "OMP_NUM_THREADS": "abc"}, 8),  # nonsense is ignored
    ],
)
def test_the_launchers_share(machine, monkeypatch, env, expected):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert threads.compute_threads() == expected


def test_jobs_divide_the_cpus_and_other_load_steps_down(machine, monkeypatch):
    assert threads.compute_threads(jobs=4) == 2 and threads.compute_threads(jobs=100) == 1
    monkeypatch.setattr(threads, "_busy_elsewhere", lambda: 5.0)
    assert threads.compute_threads() == 3
    monkeypatch.setattr(threads, "_busy_elsewhere", lambda: 50.0)
    assert threads.compute_threads() == 1


def test_using_threads_restores_torchs_setting():
    before = torch.get_num_threads()
    with threads.using_threads(1) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_measuring_callbacks_run_without_sched_getaffinity(make_cfg, monkeypatch):
    """macOS and Windows have no os.sched_getaffinity: every measuring callback must still run."""
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    cfg = make_cfg(
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "~logger.wandb",
        "callbacks.information.n_inputs=32",
        "callbacks.information.n_replicas=2",
        "callbacks.information.n_mc=64",
        "callbacks.clustering.max_samples=30",
        "callbacks.binned.kde_noise_var=0.001",
        "callbacks.plots=null",
    )
    run(cfg)
    assert not hasattr(os, "sched_getaffinity")
    rows = read_records(Path(cfg.paths.output_dir) / "information.csv")
    measured = {r["estimator"] for r in rows if r["epoch"] == 1}
    assert {"sp", "bin:width:0.05", "kde_upper"} <= measured


def test_other_load_does_not_count_this_processs_own_threads(monkeypatch, tmp_path):
    """torch's workers spin after a parallel region: counted as other load, they would make the
    next estimate step down to fewer threads than the machine has free."""
    (tmp_path / "stat").write_text("cpu  1 2 3\nprocs_running 5\nprocs_blocked 0\n")
    for tid, state in ((10, "R"), (11, "R"), (12, "S"), (13, "R")):
        (tmp_path / "task" / str(tid)).mkdir(parents=True)
        (tmp_path / "task" / str(tid) / "stat").write_text(
            f"{tid} (pt_main (x) thread) {state} 1 2"
        )
    monkeypatch.setattr(threads, "_PROC_STAT", tmp_path / "stat")
    monkeypatch.setattr(threads, "_SELF_TASKS", tmp_path / "task")
    assert threads._own_running() == 3 and threads._busy_elsewhere() == 2
    monkeypatch.setattr(threads, "_PROC_STAT", tmp_path / "absent")  # no /proc: the load average
    monkeypatch.setattr(os, "getloadavg", lambda: (3.5, 0.0, 0.0))
    assert threads._busy_elsewhere() == 2.5
