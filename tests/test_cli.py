"""The app as a user runs it: `python -m infoflow ...` in a subprocess, W&B offline."""

import csv
from pathlib import Path

import pytest

from tests.conftest import run_cli

FAST = [
    "trainer.max_epochs=2",
    "trainer.enable_progress_bar=false",
    "estimator.n_inputs=128",
    "estimator.n_replicas=4",
    "estimator.n_mc=256",
    "estimator.cluster_samples=200",
]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, object]:
    tmp = tmp_path_factory.mktemp("cli")
    run_dir = tmp / "run"
    proc = run_cli(*FAST, f"hydra.run.dir={run_dir}", cwd=tmp, env={"WANDB_MODE": "offline"})
    return run_dir, proc


def test_two_epoch_run_leaves_its_files(finished_run):
    run_dir, proc = finished_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert {r["epoch"] for r in rows if r["train/loss"]} == {"0", "1"}
    # The measuring callbacks also log at epoch 2 = max_epochs (after the last epoch).
    assert {r["epoch"] for r in rows if r.get("info/sp/layer1/I_XT")} == {"0", "1", "2"}
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "train/loss_noisy"} <= set(rows[0])
    assert (run_dir / "config.yaml").is_file() and (run_dir / ".hydra/config.yaml").is_file()
    assert (run_dir / "checkpoints/last.ckpt").is_file()
    assert (run_dir / "infoflow.log").is_file()
    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and list(offline[0].glob("*.wandb"))


def test_a_run_never_writes_into_another_runs_directory(finished_run, tmp_path):
    run_dir, _ = finished_run
    before = (run_dir / "metrics.csv").read_text()
    proc = run_cli(*FAST, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 1
    assert "already holds another run" in proc.stderr and "Traceback" not in proc.stderr
    assert (run_dir / "metrics.csv").read_text() == before


@pytest.mark.parametrize(
    ("override", "key"),
    [("noise.beta=-1", "noise.beta=-1"), ("model.activation=relu6", "model.activation='relu6'")],
)
def test_bad_input_is_one_line_and_exit_code_1(tmp_path, override, key):
    proc = run_cli(override, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and key in lines[0] and "Traceback" not in proc.stderr


def test_full_traceback_on_request(tmp_path):
    proc = run_cli(
        "noise.beta=-1",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
        env={"HYDRA_FULL_ERROR": "1"},
    )
    assert proc.returncode == 1 and "Traceback" in proc.stderr


def test_unknown_config_option_gets_hydras_message(tmp_path):
    proc = run_cli("model=nope", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert proc.returncode != 0 and "Could not find 'model/nope'" in proc.stderr
