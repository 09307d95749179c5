"""Sweeps: launchers, a failing job, W&B groups, and the configs of launchers and accelerators.

Tests marked ``slow`` start real multiruns in subprocesses (~15-30 s each on 2 cores) with the
test preset tests/conf/experiment/sweep_tiny.yaml (1 epoch, a 4-3 net, few callbacks); the others
compose configs or call the bookkeeping directly.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig, OmegaConf

from infoflow.checks import check_config
from infoflow.errors import ConfigError
from infoflow.report import main as report_main
from infoflow.rundir import (
    STATUS_FILE,
    RunRecord,
    job_dirname,
    read_status,
    register_resolvers,
    write_json_atomic,
)
from infoflow.schema import register
from infoflow.sweep import SweepSummary, check_ddp_in_multirun
from tests.conftest import ROOT, run_cli, wandb_records

TINY = ["--config-dir", str(ROOT / "tests" / "conf"), "experiment=sweep_tiny"]


def compose_all(*overrides: str) -> DictConfig:
    """The app's config with Hydra's own node (launcher, sweeper), as a multirun sees it."""
    register_resolvers()
    register()
    with initialize_config_module("infoflow.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


def multirun(tmp: Path, *args: str, wandb: str = "disabled") -> tuple[Path, subprocess.Popen]:
    """``python -m infoflow -m <tiny preset> ARGS`` into tmp/sweep."""
    sweep = tmp / "sweep"
    proc = run_cli(
        "-m", *TINY, *args, f"hydra.sweep.dir={sweep}", cwd=tmp, env={"WANDB_MODE": wandb}
    )
    return sweep, proc


def jobs(sweep: Path) -> list[Path]:
    return sorted((p for p in sweep.iterdir() if (p / ".hydra").is_dir()), key=lambda p: p.name)


def wandb_run_record(path: Path):
    """The run record (name, group, job type...) of an offline ``.wandb`` file."""
    for record in wandb_records(path):
        if record.WhichOneof("record_type") == "run":
            return record.run
    raise AssertionError(f"no run record in {path}")


def wandb_runs(root: Path) -> list:
    return [wandb_run_record(p) for p in sorted(root.glob("**/offline-run-*/*.wandb"))]


# ------------------------------------------------------------------------------ fast: configs


def test_slurm_preset_takes_the_usual_keys():
    cfg = compose_all(
        "hydra/launcher=slurm",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.timeout_min=30",
        "hydra.launcher.cpus_per_task=4",
        "hydra.launcher.gpus_per_node=1",
        "hydra.launcher.mem_gb=16",
    )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.partition, launcher.timeout_min, launcher.cpus_per_task) == ("gpu", 30, 4)
    assert (launcher.gpus_per_node, launcher.mem_gb, launcher.tasks_per_node) == (1, 16, 1)
    # The preset's defaults, and every key of the plugin stays available.
    assert compose_all("hydra/launcher=slurm").hydra.launcher.timeout_min == 240
    assert "qos" in launcher and "additional_parameters" in launcher


def test_plugin_launchers_compose_directly():
    slurm = compose_all("hydra/launcher=submitit_slurm", "hydra.launcher.partition=x")
    assert slurm.hydra.launcher.partition == "x"
    local = compose_all("hydra/launcher=submitit_local").hydra.launcher
    assert local._target_.endswith("LocalLauncher")
    joblib = compose_all("hydra/launcher=joblib", "hydra.launcher.n_jobs=2").hydra.launcher
    assert joblib.n_jobs == 2


def test_trainer_presets_extend_the_default(make_cfg):
    ddp = make_cfg("trainer=ddp", "trainer.devices=4").trainer
    assert (ddp.strategy, ddp.accelerator, ddp.devices, ddp.num_nodes) == ("ddp", "gpu", 4, 1)
    assert ddp.max_epochs == 1000 and "default_root_dir" not in ddp  # set by paths.output_dir
    gpu = make_cfg("trainer=gpu").trainer
    assert (gpu.accelerator, gpu.devices, gpu.strategy) == ("gpu", 1, "auto")
    assert make_cfg("trainer.strategy=ddp").trainer.strategy == "ddp"  # no "+" needed


SWEEP_PRESETS = ["goldfeld_beta_sweep", "mnist_compare", "tishby_szt_sweep"]


@pytest.mark.parametrize("preset", SWEEP_PRESETS)
def test_every_value_of_a_sweep_presets_grid_passes_the_schema(preset, tmp_path):
    """Each swept value composes into a config the schema accepts (the first 5 of a long range)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    cfg = compose_all(f"experiment={preset}")
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    params = [f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()]
    for override in OverridesParser.create().parse_overrides(params):
        values = list(override.sweep_string_iterator())
        assert len(values) >= 2, override
        for value in values[:5]:
            job = compose_all(
                f"experiment={preset}",
                f"{override.get_key_element()}={value}",
                f"paths.output_dir={tmp_path}",
            )
            check_config(job)


@pytest.mark.parametrize(
    ("preset", "size", "jobs"), [("tishby_szt_sweep", 50, 3), ("goldfeld_beta_sweep", 5, 4)]
)
def test_seed_sweeps_run_their_seeds_as_ensembles(preset, size, jobs):
    """The papers' studies over seeds: one job per setting, each an ensemble of the seeds."""
    cfg = compose_all(f"experiment={preset}")
    params = dict(cfg.hydra.sweeper.params)
    assert cfg.ensemble.size == size and "seed" not in params
    assert len(params) == 1 and len(str(next(iter(params.values()))).split(",")) == jobs


def test_job_dirname_stays_a_valid_file_name():
    assert job_dirname(3, "noise.beta=0.01,seed=1") == "3_noise.beta=0.01,seed=1"
    assert job_dirname(0, "") == "0"
    long_a, long_b = "x=" + "a" * 400, "x=" + "a" * 399 + "b"
    a, b = job_dirname(12, long_a), job_dirname(12, long_b)
    assert len(a.encode()) <= 150 and a.startswith("12_x=aaa") and a != b


@pytest.mark.slow
def test_core_modules_import_no_launcher():
    code = (
        "import sys, infoflow.__main__, infoflow.sweep, infoflow.report\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('submitit', 'joblib')"
        " or m.startswith(('hydra_plugins.hydra_submitit', 'hydra_plugins.hydra_joblib'))]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-1000:]


# ------------------------------------------------------------------------ fast: bookkeeping


def _status(job: Path, status: str, error: str | None = None) -> None:
    write_json_atomic(job / STATUS_FILE, {"status": status, "error": error})


def test_summary_names_this_sweeps_failures_and_exits_1(tmp_path, capsys):
    old = tmp_path / "0_old"
    _status(old, "failed", "stale: from an earlier sweep")
    summary, cfg = SweepSummary(), OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    summary.on_multirun_start(cfg)
    _status(tmp_path / "1_a", "completed")
    _status(tmp_path / "2_b", "failed", "invalid config: noise.beta=-1 (...)")
    with pytest.raises(SystemExit) as exc:
        summary.on_multirun_end(cfg)
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "1 of 2 jobs failed" in err and "2_b: invalid config: noise.beta=-1" in err
    assert "stale" not in err


def test_summary_is_quiet_when_all_jobs_completed(tmp_path, capsys):
    summary, cfg = SweepSummary(), OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    summary.on_multirun_start(cfg)
    _status(tmp_path / "0_a", "completed")
    summary.on_multirun_end(cfg)
    assert capsys.readouterr().err == ""


def test_a_job_never_writes_into_another_runs_directory(tmp_path):
    (tmp_path / ".infoflow_run").write_text("pid 1\n")
    record = RunRecord(tmp_path, ["seed=0"], job=0)
    record.write("failed", error="x")
    assert not (tmp_path / STATUS_FILE).exists()
    fresh = RunRecord(tmp_path / "new", ["seed=1"], job=1)
    fresh.write("completed")
    assert read_status(tmp_path / "new" / STATUS_FILE)["status"] == "completed"


def test_ddp_in_a_multirun_needs_cluster_processes(make_cfg, monkeypatch):
    for key in ("SLURM_NTASKS", "SLURM_JOB_NAME", "TORCHELASTIC_RUN_ID", "LSB_JOBID"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ConfigError, match="trainer.strategy='ddp'"):
        check_ddp_in_multirun(make_cfg("trainer=ddp"))
    check_ddp_in_multirun(make_cfg("trainer=ddp", "trainer.devices=1"))  # one process: fine
    check_ddp_in_multirun(make_cfg())
    monkeypatch.setenv("SLURM_NTASKS", "2")
    monkeypatch.setenv("SLURM_JOB_NAME", "infoflow")
    check_ddp_in_multirun(make_cfg("trainer=ddp"))  # SLURM started one task per rank


# ---------------------------------------------------------------------- slow: real multiruns


@pytest.fixture(scope="module")
def beta_seed_sweep(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A 2×2 sweep (β × seed) with the basic launcher, W&B offline."""
    tmp = tmp_path_factory.mktemp("sweep2x2")
    return multirun(tmp, "noise.beta=0.01,0.05", "seed=0,1", wandb="offline")


@pytest.mark.slow
def test_basic_launcher_runs_the_grid_in_one_wandb_group(beta_seed_sweep):
    sweep, proc = beta_seed_sweep
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = jobs(sweep)
    assert len(found) == 4
    for job in found:
        assert read_status(job / STATUS_FILE)["status"] == "completed"
        assert (job / "information.csv").is_file() and (job / "config.yaml").is_file()
    runs = [r for r in wandb_runs(sweep) if r.job_type != "aggregate"]  # the report's own run
    assert len(runs) == 4
    assert {r.run_group for r in runs} == {f"{sweep.parent.name}_{sweep.name}"}
    names = sorted(r.display_name for r in runs)  # the experiment (none: default), the overrides
    assert names[0].endswith("noise.beta=0.01 seed=0") and names[3].endswith("beta=0.05 seed=1")


@pytest.mark.slow
def test_report_on_the_grid_matches_the_runs(beta_seed_sweep, monkeypatch, capsys):
    sweep, _ = beta_seed_sweep
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert report_main([str(sweep), "--units", "nats"]) == 0, capsys.readouterr().err
    rows = list(csv.DictReader((sweep / "sweep.csv").open()))
    expected = []
    for job in jobs(sweep):
        overrides = dict(o.split("=", 1) for o in read_status(job / STATUS_FILE)["overrides"])
        for r in csv.DictReader((job / "information.csv").open()):
            expected.append({"run": job.name, "noise.beta": overrides["noise.beta"],
                             "seed": overrides["seed"], **r})  # fmt: skip
    assert rows == expected  # the runs' own numbers, to the last digit
    assert {"bin:width:0.05", "bin:width:0.1"} <= {r["estimator"] for r in rows}
    for name in ("runs.csv", "curves.csv", "compression.csv", "binned_vs_epoch.png"):
        assert (sweep / "report" / name).is_file(), name
    aggregate = [r for r in wandb_runs(sweep / "wandb") if r.display_name == "aggregate"]
    assert aggregate and aggregate[0].run_group == f"{sweep.parent.name}_{sweep.name}"
    assert aggregate[0].job_type == "aggregate"


@pytest.mark.slow
def test_a_bad_value_every_job_shares_refuses_the_sweep_before_it_starts(tmp_path):
    proc = run_cli("-m", *TINY, "seed=0,1", "noise.beta=-1", cwd=tmp_path)  # into ./multirun/
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        "infoflow: error: invalid config: noise.beta=-1 "
        "(must be a number >= 0 and finite; 0 is deterministic)"
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_submitit_local_records_a_failed_job_and_keeps_the_other(tmp_path):
    sweep, proc = multirun(tmp_path, "hydra/launcher=submitit_local", "noise.beta=0.01,-1")
    assert proc.returncode == 1
    assert "1 of 2 jobs failed" in proc.stderr and "noise.beta=-1 (must be" in proc.stderr
    ok, bad = jobs(sweep)
    assert read_status(ok / STATUS_FILE)["status"] == "completed"
    assert (ok / "information.csv").is_file()
    status = read_status(bad / STATUS_FILE)
    assert status["status"] == "failed" and status["error"].startswith("invalid config: noise.beta")


def _check_sweep(tmp_path: Path, *task: str) -> None:
    """CheckBeforeRun.on_multirun_start on ``python -m infoflow -m TASK``."""
    from omegaconf import open_dict

    from infoflow.checks import CheckBeforeRun

    register_resolvers()
    register()
    with initialize_config_module("infoflow.conf", version_base="1.3"):
        cfg = compose("config", return_hydra_config=True)
        with open_dict(cfg):
            cfg.hydra.overrides.task = list(task)
            cfg.hydra.sweep.dir = str(tmp_path / "sweep")
        CheckBeforeRun().on_multirun_start(cfg, config_name="config")


def test_a_sweep_is_checked_as_its_jobs_will_be_but_not_against_this_machine(tmp_path, capsys):
    _check_sweep(tmp_path, "trainer=gpu", "seed=0,1")  # a login node has no GPU; its jobs will
    _check_sweep(tmp_path, "noise.beta=0.01,-1")  # a bad swept value fails its own job only
    with pytest.raises(SystemExit) as exc:
        _check_sweep(tmp_path, "trainer=gpu", "seed=0,1", "optimizer.lr=-1")
    assert exc.value.code == 1 and "optimizer.lr=-1" in capsys.readouterr().err
    assert not (tmp_path / "sweep").exists()
