"""Faults named where they happen, in-process: a diverging network, a full disk, a path that cannot
be made, a cut or foreign checkpoint, two runs in one folder, a stop in the middle of a run or a
sweep job. The same faults and signals on real runs in subprocesses: tests/test_fault_battery.py.
"""

from __future__ import annotations

import errno
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from infoflow.build import SafePoints, build_network, build_trainer
from infoflow.checkpoint import AtomicCheckpointIO, checkpoint_problem
from infoflow.checks import check_config
from infoflow.errors import ConfigError, DivergenceError, StorageError
from infoflow.io import write_atomic
from infoflow.records import RECORD_COLUMNS, append_rows, read_records
from infoflow.rundir import (
    STATUS_FILE,
    RunRecord,
    check_writable,
    claim_run_dir,
    read_status,
)
from infoflow.signals import RunInterrupted, stop_on_signals
from infoflow.stopping import discard, scratch

QUIET = [
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "~logger.wandb",
    "callbacks.information=null",
    "callbacks.clustering=null",
    "callbacks.plots=null",
    "callbacks.representations=null",
    "callbacks.gradients=null",
]


#: The tests that simulate a full disk find a file's name from its descriptor in /proc (Linux).
needs_proc = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="no /proc/self/fd")


def _enospc_on_sync(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Every sync of a file called ``name`` fails as on a full disk (after its bytes were
    written: the writer must cut them back)."""
    calls: list[int] = []
    original = os.fsync

    def fsync(fd: int) -> None:
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith((name, f".{name}")):
            calls.append(fd)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        original(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return calls


# ------------------------------------------------------------------------------- divergence


def test_a_non_finite_loss_names_the_epoch_and_every_member_that_diverged():
    from infoflow.models.module import ClassifierModule

    module = SimpleNamespace(seeds=[3, 4, 5])
    losses = torch.tensor([0.5, math.nan, math.inf])
    with pytest.raises(DivergenceError) as exc:
        ClassifierModule._finite(module, losses, "training loss", 12)
    assert str(exc.value) == (
        "training diverged in epoch 12: non-finite training loss "
        "(2 of 3 members: seed 4: nan, seed 5: inf)"
    )
    assert exc.value.seeds == [4, 5]
    assert ClassifierModule._finite(module, torch.tensor([0.5, 1.0, 2.0]), "x", 1) == [0.5, 1, 2]


def test_a_diverging_run_stops_at_its_first_non_finite_epoch_with_records_whole(make_cfg):
    cfg = make_cfg(*QUIET, "trainer.max_epochs=5", "model.activation=relu", "optimizer.lr=1e30")
    from infoflow.train import run

    with pytest.raises(DivergenceError, match=r"^training diverged in epoch 1: non-finite"):
        run(cfg)
    rows = read_records(Path(cfg.paths.output_dir) / "training.csv")
    assert {r["epoch"] for r in rows} == {0}  # the diverged epoch's rows are not written
    assert all(math.isfinite(r["value"]) for r in rows)


def test_non_finite_representations_are_one_line_not_an_estimators_value_error(make_cfg):
    from infoflow.callbacks.measurement import Measurement

    net = build_network(make_cfg("ensemble.size=2"))
    with torch.no_grad():
        for p in net.parameters():
            p[1] = math.nan  # member 1 (seed 1) diverged
    x, y = torch.randn(16, 12), torch.randint(0, 2, (16,))
    m = Measurement(net, x, y, epoch=7)
    with pytest.raises(DivergenceError) as exc:
        m.noiseless  # noqa: B018
    assert str(exc.value) == (
        "training diverged by epoch 7: non-finite representations of T1 "
        "(1 of 2 members: seed 1: NaN or inf)"
    )
    with pytest.raises(DivergenceError, match="representations of T1"):
        m.sample(x[None].expand(2, -1, -1))


# ---------------------------------------------------------------------------- full disks


@needs_proc
def test_an_append_that_fails_leaves_the_record_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "information.csv"
    append_rows(path, RECORD_COLUMNS, [(0, 0, 1, "sp", "I_XT", 1.5, 0.1)])
    before = path.read_bytes()
    calls = _enospc_on_sync(monkeypatch, "information.csv")
    with pytest.raises(StorageError) as exc:
        append_rows(path, RECORD_COLUMNS, [(0, 1, 1, "sp", "I_XT", 1.4, 0.1)] * 100)
    assert calls and path.read_bytes() == before
    assert str(exc.value) == f"cannot write {path}: No space left on device"
    assert isinstance(exc.value, OSError) and exc.value.errno == errno.ENOSPC


@needs_proc
def test_an_atomic_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = write_atomic(tmp_path / "config.yaml", "old\n")
    _enospc_on_sync(monkeypatch, "config.yaml")
    with pytest.raises(StorageError, match=f"cannot write {path}: No space left on device"):
        write_atomic(path, "new\n")
    assert path.read_text() == "old\n" and sorted(os.listdir(tmp_path)) == ["config.yaml"]


@needs_proc
def test_a_status_is_written_in_place_when_the_disk_has_no_room_for_a_new_file(
    tmp_path, monkeypatch
):
    record = RunRecord(tmp_path, ["seed=0"])
    record.write("running")
    _enospc_on_sync(monkeypatch, STATUS_FILE)
    record.write("failed", error="cannot write x: No space left on device")
    status = read_status(tmp_path / STATUS_FILE)
    assert status["status"] == "failed" and "No space" in status["error"]


@needs_proc
def test_a_disk_that_fills_mid_run_is_one_storage_error_and_the_records_stay_whole(
    make_cfg, monkeypatch
):
    from infoflow.train import run

    cfg = make_cfg(*QUIET, "trainer.max_epochs=4")
    calls, original = [], os.fsync

    def fsync(fd: int) -> None:  # the second append to training.csv fails (after its creation)
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")) == "training.csv":
            calls.append(fd)
            if len(calls) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        original(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    # The record's rows go to disk at most 10 s apart: here every epoch, so the disk fills mid-run.
    monkeypatch.setattr("infoflow.callbacks.training.TrainingRecordCallback.flush_seconds", 0.0)
    with pytest.raises(StorageError, match="training.csv: No space left on device"):
        run(cfg)
    rows = read_records(Path(cfg.paths.output_dir) / "training.csv")  # strict: every row whole
    epochs = sorted({r["epoch"] for r in rows})
    assert epochs == list(range(len(epochs))) and 1 <= len(epochs) < 5  # whole up to the fault


# -------------------------------------------------------------------------------- paths


def test_a_path_under_a_file_is_refused_naming_the_file(tmp_path):
    (tmp_path / "a_file").write_text("")
    with pytest.raises(StorageError) as exc:
        check_writable(tmp_path / "a_file" / "run")
    assert str(exc.value) == (
        f"cannot make {tmp_path}/a_file/run: {tmp_path}/a_file is a file, not a folder"
    )
    with pytest.raises(StorageError, match="is a file, not a folder"):
        claim_run_dir(tmp_path / "a_file" / "run")
    check_writable(tmp_path / "new" / "deeper")  # folders to be made: fine


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_folder_without_write_permission_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(StorageError, match="locked is not writable"):
        check_writable(locked / "run")


def test_the_config_check_refuses_an_output_path_that_cannot_be_made(tmp_path):
    from infoflow.checks import CheckBeforeRun  # noqa: F401 - on_run_start calls check_writable

    (tmp_path / "f").write_text("")
    with pytest.raises(StorageError):
        check_writable(tmp_path / "f" / "x")


# ----------------------------------------------------------------- two runs, one directory


def test_of_two_runs_started_into_one_folder_the_second_is_refused_and_writes_nothing(tmp_path):
    first, second = RunRecord(tmp_path, ["seed=0"]), RunRecord(tmp_path, ["seed=1"])
    first.claim()
    first.write("running")
    with pytest.raises(ConfigError, match="already holds another run's results"):
        second.claim()
    second.write("failed", error="refused")  # nothing: the folder is not its own
    assert read_status(tmp_path / STATUS_FILE)["overrides"] == ["seed=0"]
    assert claim_run_dir(tmp_path) == tmp_path  # the first run's own claim, taken once
    with pytest.raises(ConfigError):
        claim_run_dir(tmp_path)


# ---------------------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A real checkpoint of the default network after one epoch."""
    from hydra import compose, initialize_config_module

    from infoflow.rundir import register_resolvers
    from infoflow.schema import register
    from infoflow.train import run

    out = tmp_path_factory.mktemp("ckpt") / "run"
    register_resolvers()
    register()
    with initialize_config_module("infoflow.conf", version_base="1.3"):
        cfg = compose("config", overrides=[*QUIET, "trainer.max_epochs=1",
                                           f"paths.output_dir={out}"])  # fmt: skip
    run(cfg)
    return out / "checkpoints" / "last.ckpt"


def test_a_whole_checkpoint_of_the_configured_model_passes(make_cfg, checkpoint):
    check_config(make_cfg(*QUIET, f"ckpt_path={checkpoint}"))


def test_a_cut_checkpoint_is_one_line_naming_the_path(make_cfg, checkpoint, tmp_path):
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    with pytest.raises(ConfigError) as exc:
        check_config(make_cfg(*QUIET, f"ckpt_path={cut}"))
    assert str(exc.value).startswith(
        f"invalid config: ckpt_path='{cut}' (cannot be loaded: cut, or not a checkpoint ("
    )
    assert "not a whole zip archive" in str(exc.value)


def test_a_checkpoint_of_another_model_names_the_mismatch(make_cfg, checkpoint):
    with pytest.raises(ConfigError) as exc:
        check_config(make_cfg(*QUIET, "model.hidden=[10,7,5,4,2]", f"ckpt_path={checkpoint}"))
    assert "does not fit the configured model" in str(exc.value)
    assert "is (1, 3, 4) there, (1, 2, 4) here" in str(exc.value)  # T5: 3 units saved, 2 asked
    with pytest.raises(ConfigError, match=r"is \(1, 10, 12\) there, \(2, 10, 12\) here"):
        check_config(make_cfg(*QUIET, "ensemble.size=2", f"ckpt_path={checkpoint}"))


def test_missing_weights_only_and_foreign_files(make_cfg, checkpoint, tmp_path):
    expected = {k: v for k, v in torch.load(checkpoint, weights_only=True)["state_dict"].items()}
    assert checkpoint_problem(tmp_path / "nope.ckpt", expected) == "no such file"
    assert checkpoint_problem(tmp_path, expected) == "not a file"
    weights = tmp_path / "weights.ckpt"
    torch.save({"state_dict": expected}, weights)
    assert checkpoint_problem(weights, expected).startswith("holds no training state to resume")
    other = tmp_path / "other.ckpt"
    torch.save({"weights": torch.zeros(2)}, other)
    assert checkpoint_problem(other, expected) == "not a Lightning checkpoint (no state_dict)"
    code = tmp_path / "code.ckpt"
    torch.save({"state_dict": expected, "x": SimpleNamespace(a=1)}, code)  # not weights only
    assert checkpoint_problem(code, expected).startswith("cannot be loaded")


def test_a_checkpoint_save_that_fails_leaves_the_last_whole_one(tmp_path):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"epoch": 1}, path)
    with pytest.raises(Exception):  # noqa: B017 - whatever torch.save raises
        io.save_checkpoint({"epoch": 2, "bad": lambda: None}, path)
    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert os.listdir(tmp_path) == ["last.ckpt"]


def test_a_hard_stop_removes_files_being_written(tmp_path):
    tmp = tmp_path / ".x.tmp"
    tmp.write_text("half")
    with scratch(tmp):
        discard()
    assert not tmp.exists()


def test_the_trainer_has_safe_points_and_atomic_saves(make_cfg, tmp_path):
    trainer = build_trainer(make_cfg(*QUIET), tmp_path)
    assert any(isinstance(c, SafePoints) for c in trainer.callbacks)
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)


# ---------------------------------------------------------------- stops in a real run


def _signal_when(condition, signum: int, timeout: float = 60) -> threading.Thread:
    """Send ``signum`` to this process once ``condition()`` holds (polled by a thread)."""

    def watch() -> None:
        end = time.monotonic() + timeout
        while not condition() and time.monotonic() < end:
            time.sleep(0.01)
        os.kill(os.getpid(), signum)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_stop_during_training_keeps_records_and_checkpoint_whole(make_cfg):
    from infoflow.train import run

    cfg = make_cfg(
        *QUIET, "trainer.max_epochs=100000", "callbacks.model_checkpoint.every_n_epochs=1"
    )
    out = Path(cfg.paths.output_dir)

    def epochs_done() -> bool:
        try:
            return len(read_records(out / "training.csv", allow_partial_tail=True)) > 40
        except (OSError, ValueError):
            return False

    with stop_on_signals():
        _signal_when(epochs_done, signal.SIGHUP)
        with pytest.raises(RunInterrupted) as exc:
            run(cfg)
    assert exc.value.exit_code == 129
    rows = read_records(out / "training.csv")  # whole: no partial last row
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert max(r["epoch"] for r in rows) >= ckpt["epoch"] + 1  # saved after each epoch
    assert not [p for p in out.rglob("*.tmp")]


def test_a_stop_during_an_estimate_is_acted_on_after_it(make_cfg, monkeypatch):
    """The SP estimate of member 0 runs to its end (here no safe point inside it), the stop
    comes before member 1's, and none of the epoch's SP rows is written: no partial epoch."""
    import infoflow.callbacks.information as information
    from infoflow.train import run

    calls, original = [], information.sp_from_samples

    def sp_then_signal(*args, **kwargs):
        calls.append(1)
        os.kill(os.getpid(), signal.SIGINT)
        return original(*args, **kwargs)

    monkeypatch.setattr(information, "sp_from_samples", sp_then_signal)
    cfg = make_cfg(*QUIET[:-5], "callbacks.clustering=null", "callbacks.plots=null",
                   "trainer.max_epochs=2", "ensemble.size=2",
                   "callbacks.information.n_inputs=64", "callbacks.information.n_replicas=4",
                   "callbacks.information.n_mc=128")  # fmt: skip
    with stop_on_signals(), pytest.raises(RunInterrupted) as exc:
        run(cfg)
    assert exc.value.exit_code == 130 and len(calls) == 1
    info = Path(cfg.paths.output_dir) / "information.csv"
    assert not info.exists() or not [r for r in read_records(info) if r["estimator"] == "sp"]


def test_figures_stop_between_figures(tmp_path):
    from infoflow.plots import draw_all

    with stop_on_signals():
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(0.05)
        with pytest.raises(RunInterrupted):
            draw_all(tmp_path)
    assert not (tmp_path / "plots").exists()


def test_a_stop_does_not_redraw_every_figure_a_failure_does(tmp_path, monkeypatch):
    from infoflow.callbacks.plots import PlotsCallback

    drawn: list[int] = []
    cb = PlotsCallback(tmp_path)
    monkeypatch.setattr(cb, "_draw", lambda: drawn.append(1))
    trainer = SimpleNamespace(is_global_zero=True)
    cb.on_exception(trainer, None, RunInterrupted(signal.SIGTERM))
    assert drawn == []
    cb.on_exception(trainer, None, ValueError("a bug"))
    assert drawn == [1]


def test_a_child_process_ends_with_the_stop(tmp_path):
    from infoflow.data.mnist import _run_stoppable

    sleeper = [sys.executable, "-c", "import time; time.sleep(30)"]
    with stop_on_signals():
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
        start = time.monotonic()
        with pytest.raises(RunInterrupted):
            _run_stoppable(sleeper, timeout=60)
    assert time.monotonic() - start < 3


# ------------------------------------------------------------------------------- sweeps


@pytest.fixture
def sweep_job(tmp_path, monkeypatch):
    """A job of a sweep under tmp_path/sweep, as run_sweep_job sees it (no Hydra)."""
    import infoflow.sweep as sweep

    sweep_dir, job_dir = tmp_path / "sweep", tmp_path / "sweep" / "0_seed=0"
    monkeypatch.setattr(sweep, "_job_identity", lambda: (job_dir, 0, ["seed=0"], sweep_dir))
    monkeypatch.delenv(sweep.SWEEP_PID_ENV, raising=False)
    return SimpleNamespace(sweep=sweep, dir=job_dir, sweep_dir=sweep_dir)


def test_a_job_that_starts_after_the_sweep_was_stopped_does_not_run(sweep_job, monkeypatch):
    write_atomic(sweep_job.sweep_dir / sweep_job.sweep.STOP_MARKER, "SIGINT\n")
    ran = []
    assert sweep_job.sweep.run_sweep_job(None, ran.append) is None and not ran
    status = read_status(sweep_job.dir / STATUS_FILE)
    assert status["status"] == "interrupted"
    assert status["error"] == "not started: the sweep was stopped by SIGINT"
    # In the sweep's own process (the basic launcher) the stop ends the sweep instead.
    monkeypatch.setenv(sweep_job.sweep.SWEEP_PID_ENV, str(os.getpid()))
    monkeypatch.setattr(sweep_job.sweep, "_job_identity",
                        lambda: (sweep_job.sweep_dir / "1", 1, [], sweep_job.sweep_dir))  # fmt: skip
    with pytest.raises(RunInterrupted) as exc:
        sweep_job.sweep.run_sweep_job(None, ran.append)
    assert exc.value.exit_code == 130


def test_an_interrupted_job_in_a_worker_records_it_and_returns(sweep_job):
    def stopped(cfg):
        raise RunInterrupted(signal.SIGTERM)

    assert sweep_job.sweep.run_sweep_job({}, stopped) is None
    status = read_status(sweep_job.dir / STATUS_FILE)
    assert (status["status"], status["error"]) == ("interrupted", "interrupted by SIGTERM")


def test_a_full_disk_fails_a_job_with_one_line(sweep_job, capsys):
    def full(cfg):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/out/information.csv")

    assert sweep_job.sweep.run_sweep_job({}, full) is None
    status = read_status(sweep_job.dir / STATUS_FILE)
    assert status["error"] == "cannot write /out/information.csv: No space left on device"
    assert capsys.readouterr().err.strip().endswith(status["error"])


def test_a_stopped_sweep_ends_with_its_signal_and_names_each_job(sweep_job, capsys):
    from omegaconf import OmegaConf

    summary = sweep_job.sweep.SweepSummary()
    cfg = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_job.sweep_dir)}}})
    summary.on_multirun_start(cfg)
    for name, status, error in [
        ("0_a", "interrupted", "interrupted by SIGTERM"),
        ("1_b", "completed", None),
        ("2_c", "interrupted", "not started: the sweep was stopped"),
    ]:
        write_atomic(sweep_job.sweep_dir / name / STATUS_FILE,
                     f'{{"status": "{status}", "error": "{error}"}}')  # fmt: skip
    write_atomic(sweep_job.sweep_dir / sweep_job.sweep.STOP_MARKER, "SIGTERM\n")
    with pytest.raises(SystemExit) as exc:
        summary.on_multirun_end(cfg)
    assert exc.value.code == 143
    err = capsys.readouterr().err
    assert "sweep stopped by SIGTERM (1 completed, 1 interrupted, 1 not started)" in err
    assert err.strip().splitlines()[-1] == "infoflow:   0_a: interrupted by SIGTERM"


def test_the_sweep_passes_signals_on_to_running_jobs_of_this_host(tmp_path):
    import socket

    from infoflow.sweep import running_jobs

    me, other = os.getpid(), os.getppid()
    for name, pid, status, host in [
        ("0", me, "running", socket.gethostname()),
        ("1", other, "running", socket.gethostname()),
        ("2", other, "completed", socket.gethostname()),
        ("3", other, "running", "elsewhere"),
    ]:
        write_atomic(tmp_path / name / STATUS_FILE,
                     f'{{"status": "{status}", "pid": {pid}, "host": "{host}"}}')  # fmt: skip
    assert running_jobs(tmp_path) == [other]
