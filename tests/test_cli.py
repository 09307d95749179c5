"""The app as a user runs it: `python -m infoflow ...` in a subprocess, W&B offline.

Bad values of every key are tried in tests/test_fuzz_config.py; here what a run leaves behind.
"""

from pathlib import Path

import pytest

from infoflow.records import read_records
from infoflow.rundir import read_status
from tests.conftest import run_cli

pytestmark = pytest.mark.slow  # every test starts the app

FAST = [
    "trainer.max_epochs=2",
    "trainer.enable_progress_bar=false",
    "callbacks.information.n_inputs=null",  # the 4096 inputs once: no duplicates for SP to tell apart
    "callbacks.information.n_replicas=4",
    "callbacks.information.n_mc=4096",  # one query per input: every estimate within its ceiling
    "callbacks.clustering.max_samples=200",
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
    training = read_records(run_dir / "training.csv")
    assert {r["epoch"] for r in training if r["quantity"] == "loss"} == {0, 1, 2}  # 0: untrained
    # The measuring callbacks measure before training too (epoch 0) and after the last epoch.
    information = read_records(run_dir / "information.csv")
    assert {r["epoch"] for r in information if r["estimator"] == "sp"} == {0, 1, 2}
    assert read_status(run_dir / "status.json")["status"] == "completed"
    assert (run_dir / "config.yaml").is_file() and (run_dir / ".hydra/config.yaml").is_file()
    assert (run_dir / "checkpoints/last.ckpt").is_file()
    assert (run_dir / "infoflow.log").is_file()
    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and list(offline[0].glob("*.wandb"))


def test_a_run_never_writes_into_another_runs_directory(finished_run, tmp_path):
    run_dir, _ = finished_run
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    proc = run_cli(*FAST, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 1
    assert "already holds another run" in proc.stderr and "Traceback" not in proc.stderr
    # Refused before Hydra writes: not even its .hydra/ files or the log are touched.
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


def test_bad_input_is_one_line_exit_1_and_leaves_nothing(tmp_path):
    proc = run_cli("noise.beta=-1", cwd=tmp_path)  # into ./outputs/<date>/<time>, as users run it
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        "infoflow: error: invalid config: noise.beta=-1 "
        "(must be a number >= 0 and finite; 0 is deterministic)"
    ]
    assert list(tmp_path.iterdir()) == []


def test_full_traceback_on_request(tmp_path):
    proc = run_cli(
        "noise.beta=-1",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
        env={"HYDRA_FULL_ERROR": "1"},
    )
    assert proc.returncode == 1 and "Traceback" in proc.stderr


def test_unknown_options_and_keys_are_one_line_naming_what_there_is(tmp_path):
    cases = {
        ("model=nope",): "invalid config: model=nope (no such option; available: custom, mnist_cnn",
        (
            "trainer.max_epoch=5",
        ): "trainer.max_epoch=5 (no such key; did you mean trainer.max_epochs",
        (
            "estimater.n_points=5",
        ): "estimater.n_points=5 (no such key; did you mean schedule.n_points",
        (
            "+trainer.max_epoch=5",
        ): "not an argument of pytorch_lightning.Trainer (did you mean max_epochs",
    }
    for args, words in cases.items():
        proc = run_cli(*args, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1 and words in lines[0], proc.stderr
        assert not (tmp_path / "run").exists()


def test_help_explains_every_group_with_examples(tmp_path):
    proc = run_cli("--help", cwd=tmp_path)
    assert proc.returncode == 0
    for words in ("Examples:", "model=custom", "model_dataset", "mnist_cnn_mnist", "schedule.n_points",
                  "experiment", "tishby_depth", "hydra.searchpath"):  # fmt: skip
        assert words in proc.stdout, words


def test_a_folder_of_the_users_configs(tmp_path):
    conf = tmp_path / "myconf" / "model"
    conf.mkdir(parents=True)
    (conf / "tiny.yaml").write_text("defaults:\n  - szt\n  - _self_\nhidden: [6, 3]\n")
    proc = run_cli(
        f"hydra.searchpath=[file://{tmp_path / 'myconf'}]", "model=tiny", *FAST,
        f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = read_records(tmp_path / "run" / "information.csv")
    assert {r["layer"] for r in rows if r["estimator"] == "sp"} == {1, 2}


def test_bad_input_lightning_finds_at_fit_is_one_line_and_a_failed_status(tmp_path):
    """Whether a fraction of batches is none depends on the data: Lightning says so when fit
    starts; the run ends with its message as one line, exit 1 and status failed."""
    run_dir = tmp_path / "run"
    proc = run_cli(
        *FAST, "trainer.limit_train_batches=0.0001", f"hydra.run.dir={run_dir}", cwd=tmp_path
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("infoflow: error:")]
    assert len(errors) == 1 and "limit_train_batches" in errors[0]
    status = read_status(run_dir / "status.json")
    assert status["status"] == "failed" and "limit_train_batches" in status["error"]


def test_the_terminal_is_quiet_and_ends_with_the_summary(finished_run):
    """No warnings or tips from dependencies (W&B, Lightning); the summary last, naming the run."""
    run_dir, proc = finished_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    terminal = proc.stdout + proc.stderr
    for noise in ("wandb:", "WARNING", "Warning", "Tip", "litlogger", "was configured so"):
        assert noise not in terminal, terminal
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    summary = next(i for i, line in enumerate(lines) if "Summary: 2 epochs, seed 0, " in line)
    assert lines[summary + 1] == "  I(X;T_l) in nats, SP estimator:"
    assert lines[-2].startswith("  W&B offline run; upload: wandb sync ")
    assert lines[-1] == f"Run directory: {run_dir}"
