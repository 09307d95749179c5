"""Clean stops: SIGTERM / SIGINT end a run within seconds, even in the middle of a long estimate.

The fast tests call :func:`infoflow.signals.stop_on_signals` in-process; the slow ones start
``python -m infoflow`` with a fake long estimate (tests/helpers/long_estimate.py), send the signal
once it has begun, and check the exit code, ``status.json``, the records and the W&B run's exit.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infoflow.records import read_records
from infoflow.rundir import read_status
from infoflow.signals import RunInterrupted, deferred, stop_on_signals
from tests.conftest import ROOT, run_cli, wandb_records

SMALL = [
    "trainer.enable_progress_bar=false",
    "callbacks.information.n_inputs=64",
    "callbacks.information.n_replicas=4",
    "callbacks.information.n_mc=128",
    "callbacks.clustering.max_samples=100",
    "schedule.n_points=null",
    "schedule.every_n_epochs=1",
    "callbacks.plots=null",
    "callbacks.model_checkpoint.every_n_epochs=1",
]


# ------------------------------------------------------------------------------- in-process


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_interrupts_a_python_loop(signum, code):
    start = time.monotonic()
    with pytest.raises(RunInterrupted) as exc, stop_on_signals():
        os.kill(os.getpid(), signum)
        while time.monotonic() - start < 10:  # a long estimate
            pass
    assert exc.value.exit_code == code and time.monotonic() - start < 2


def test_later_signals_are_ignored_during_clean_up_and_handlers_are_restored():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(RunInterrupted), stop_on_signals():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        finally:  # clean-up: a second signal must not break it
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
    assert signal.getsignal(signal.SIGTERM) is before


def test_not_an_exception_so_callbacks_cannot_swallow_it():
    assert not issubclass(RunInterrupted, Exception)
    assert not issubclass(RunInterrupted, KeyboardInterrupt)  # Lightning turns that into exit 1


# ---------------------------------------------------------------------------- subprocess


def _start(tmp: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT)}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.Popen(
        [sys.executable, "-m", "infoflow", *args],
        cwd=tmp,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"run ended before the estimate: {proc.communicate()[1][-3000:]}")
        if time.monotonic() > end:
            proc.kill()
            raise AssertionError("the long estimate never started")
        time.sleep(0.1)


def _records_are_whole(run_dir: Path) -> list[Path]:
    """Every CSV record parses: a newline at the end, every row as wide as its header, and the
    tidy records read back by their reader (which refuses a partial last line)."""
    files = sorted(run_dir.glob("*.csv"))
    for path in files:
        text = path.read_text()
        assert text.endswith("\n"), path
        rows = list(csv.reader(text.splitlines()))
        assert all(len(r) == len(rows[0]) for r in rows), path
    for name in ("information.csv", "training.csv"):
        assert read_records(run_dir / name), name
    return files


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_mid_estimate_stops_the_run_cleanly_and_it_resumes(tmp_path, signum, code):
    run_dir, started = tmp_path / "run", tmp_path / "estimating"
    proc = _start(
        tmp_path,
        *SMALL,
        "trainer.max_epochs=3",
        "+callbacks.long._target_=tests.helpers.long_estimate.LongEstimate",
        f"+callbacks.long.started={started}",
        "+callbacks.long.at_epoch=2",
        f"hydra.run.dir={run_dir}",
    )
    _wait_for(started, proc)
    time.sleep(0.5)  # well inside the estimate
    sent = time.monotonic()
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    seconds = time.monotonic() - sent
    assert proc.returncode == code, err[-3000:]
    assert seconds < 10, seconds
    assert "Traceback" not in err
    status = read_status(run_dir / "status.json")
    assert status["status"] == "interrupted" and signal.Signals(signum).name in status["error"]
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    assert status["checkpoint"] == str(ckpt) and ckpt.is_file()  # epoch 1's
    assert (run_dir / "information.csv") in _records_are_whole(run_dir)
    (offline,) = run_dir.glob("wandb/offline-run-*/*.wandb")
    exits = [r.exit for r in wandb_records(offline) if r.WhichOneof("record_type") == "exit"]
    assert [e.exit_code for e in exits] == [code]  # the W&B run was finished
    # Resume from the checkpoint it names: the run completes.
    resumed = tmp_path / "resumed"
    proc = run_cli(
        *SMALL,
        "trainer.max_epochs=3",
        f"ckpt_path={ckpt}",
        f"hydra.run.dir={resumed}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert read_status(resumed / "status.json")["status"] == "completed"


@pytest.mark.slow
def test_single_runs_record_completed_and_failed(tmp_path):
    done = tmp_path / "done"
    proc = run_cli(*SMALL, "trainer.max_epochs=1", f"hydra.run.dir={done}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    status = read_status(done / "status.json")
    assert status["status"] == "completed" and status["overrides"][0] == SMALL[0]
    failed = tmp_path / "failed"
    (tmp_path / "a_file").write_text("")  # MNIST cannot be cached under a file: fails in fit
    proc = run_cli(
        "model=mnist_cnn",
        f"paths.data_dir={tmp_path / 'a_file' / 'data'}",
        f"hydra.run.dir={failed}",
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    status = read_status(failed / "status.json")
    assert status["status"] == "failed" and "cannot write MNIST" in status["error"]


@pytest.mark.slow
def test_sigterm_ends_a_sweep_and_marks_its_running_job_interrupted(tmp_path):
    sweep, started = tmp_path / "sweep", tmp_path / "estimating"
    proc = _start(
        tmp_path,
        "-m",
        "--config-dir",
        str(ROOT / "tests" / "conf"),
        "experiment=sweep_tiny",
        "seed=0,1",
        "+callbacks.long._target_=tests.helpers.long_estimate.LongEstimate",
        f"+callbacks.long.started={started}",
        f"hydra.sweep.dir={sweep}",
    )
    _wait_for(started, proc)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and time.monotonic() - sent < 10, err[-3000:]
    (job,) = [p for p in sweep.iterdir() if p.is_dir()]  # the second job never started
    status = read_status(job / "status.json")
    assert status["status"] == "interrupted" and status["job"] == 0


def test_a_deferred_write_finishes_and_the_stop_follows():
    written = []
    with pytest.raises(RunInterrupted), stop_on_signals():
        with deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            written.append("whole checkpoint")
        written.append("never")
    assert written == ["whole checkpoint"]
    with stop_on_signals(), deferred():  # nothing pending: nothing raised
        pass


def test_a_periodic_checkpoint_is_saved_whole_before_the_stop(tmp_path):
    from types import SimpleNamespace

    from infoflow.checkpoint import ModelCheckpoint

    def save_checkpoint(path, weights_only=False):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives in the middle of the save
        time.sleep(0.05)
        Path(path).write_text("whole")

    trainer = SimpleNamespace(save_checkpoint=save_checkpoint, global_step=3, is_global_zero=False)
    with pytest.raises(RunInterrupted), stop_on_signals():
        ModelCheckpoint(dirpath=tmp_path)._save_checkpoint(trainer, str(tmp_path / "last.ckpt"))
    assert (tmp_path / "last.ckpt").read_text() == "whole"


def test_sighup_stops_too_unless_ignored_as_under_nohup():
    with pytest.raises(RunInterrupted) as exc, stop_on_signals():
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(5)
    assert exc.value.exit_code == 129
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with stop_on_signals():
            os.kill(os.getpid(), signal.SIGHUP)  # ignored: nothing raised
            time.sleep(0.05)
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)
