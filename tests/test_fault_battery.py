"""The fault battery: stop signals at many moments of real runs, and faults, in subprocesses.

Each run is ``python -m infoflow`` under tests/helpers/probed_run.py, which marks the moments of
the run in files (the SP engine compiling, loading from numba's cache, an SP estimate, the
figures): a signal is sent when its moment's file appears, not after a fixed sleep. Runs are
shared where a scenario allows (a SIGKILL, then a resume stopped mid-estimate, then a resume to
the end; the compile that warms the numba cache of the next scenario). Every run's outcome (exit
code, status, records whole, seconds from the signal to the exit) is collected in ``OUTCOMES``
and printed as a table at the end of the module (``pytest -s``); ``INFOFLOW_FAULT_TABLE=<file>``
writes it to a file too.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from infoflow.records import read_records
from infoflow.rundir import read_status
from tests.conftest import ROOT, wandb_records

pytestmark = pytest.mark.slow

PROBED = ROOT / "tests" / "helpers" / "probed_run.py"
BASE = [
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "callbacks.clustering=null",
    "callbacks.representations=null",
    "callbacks.gradients=null",
    "callbacks.weights=null",
    "callbacks.wandb_charts=null",
    "callbacks.plots=null",
    "callbacks.information.n_inputs=256",  # small, but on the compiled engine (use_index)
    "callbacks.information.n_replicas=4",
    "callbacks.information.n_mc=512",
    "callbacks.model_checkpoint.every_n_epochs=1",
]
TINY_SWEEP = ["--config-dir", str(ROOT / "tests" / "conf"), "experiment=sweep_tiny"]
LONG = [  # a job that estimates for a long time at epoch 1, with safe points
    "+callbacks.long._target_=tests.helpers.long_estimate.LongEstimate",
]
BAD_WORDS = ("Traceback", "Exception ignored", "SystemError")
OUTCOMES: list[dict] = []


class Run:
    """``python -m infoflow ARGS`` (probed) in ``tmp``, its output in files."""

    def __init__(self, tmp: Path, name: str, *args: str, env: dict | None = None) -> None:
        self.tmp, self.name, self.marks = tmp, name, tmp / f"{name}.marks"
        self.sent: list[tuple[float, int]] = []
        full_env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT), **(env or {})}
        full_env.pop("HYDRA_FULL_ERROR", None)
        self.err_path = tmp / f"{name}.err"
        with open(tmp / f"{name}.out", "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(PROBED), str(self.marks), *args],
                cwd=tmp,
                env=full_env,
                stdout=out,
                stderr=err,
            )
        self.started = time.monotonic()

    @property
    def stderr(self) -> str:
        return self.err_path.read_text()

    def wait_for(self, ready: Callable[[], bool] | str, timeout: float = 240) -> float:
        """Wait until ``ready()`` (or the moment's mark exists); returns the seconds waited."""
        check = (lambda: (self.marks / ready).exists()) if isinstance(ready, str) else ready
        end = time.monotonic() + timeout
        while not check():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} ended first: {self.stderr[-3000:]}")
            if time.monotonic() > end:
                self.proc.kill()
                raise AssertionError(f"{self.name}: the moment never came")
            time.sleep(0.02)
        return time.monotonic() - self.started

    def send(self, signum: int) -> None:
        self.sent.append((time.monotonic(), signum))
        self.proc.send_signal(signum)

    def finish(self, timeout: float = 240) -> tuple[int, float]:
        """(exit code, seconds from the last signal sent to the exit)."""
        code = self.proc.wait(timeout=timeout)
        last = self.sent[-1][0] if self.sent else self.started
        return code, time.monotonic() - last


def records_whole(run_dir: Path, killed: bool = False) -> bool:
    """Every CSV ends with a newline and has rows as wide as its header; the tidy records read
    back; no file half written (``*.tmp``) is left, unless the run was ``killed`` (SIGKILL: a
    hidden file being written may stay beside the whole one it was to replace)."""
    for path in run_dir.glob("*.csv"):
        text = path.read_text()
        rows = list(csv.reader(text.splitlines()))
        assert text.endswith("\n") and all(len(r) == len(rows[0]) for r in rows), path
    for name in ("information.csv", "training.csv"):
        if (run_dir / name).exists():
            read_records(run_dir / name)
    assert killed or not list(run_dir.rglob("*.tmp")), list(run_dir.rglob("*.tmp"))
    return True


def outcome(moment: str, signals: str, code: int, seconds: float | None, run_dir: Path | None,
            **extra: object) -> dict:  # fmt: skip
    status = (read_status(run_dir / "status.json") or {}) if run_dir else {}
    killed = signals == "SIGKILL"
    row = {
        "moment": moment,
        "signals": signals,
        "exit": code,
        "status": status.get("status", "-"),
        "error": status.get("error"),
        "records whole": records_whole(run_dir, killed) if run_dir and run_dir.exists() else "-",
        "seconds to exit": None if seconds is None else round(seconds, 2),
        **extra,
    }
    OUTCOMES.append(row)
    return row


@pytest.fixture(scope="module", autouse=True)
def table():
    yield
    lines = [" | ".join(str(v) for v in row.values()) for row in OUTCOMES]
    print("\nmoment | signals | exit | status | error | records whole | seconds to exit")
    print("\n".join(lines))
    if path := os.environ.get("INFOFLOW_FAULT_TABLE"):
        Path(path).write_text("\n".join(json.dumps(r) for r in OUTCOMES) + "\n")


def clean_stderr(run: Run) -> None:
    err = run.stderr
    assert not any(word in err for word in BAD_WORDS), err[-3000:]


# ------------------------------------------------------------------ the SP engine's compile


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict:
    """SIGINT 1 s into the SP engine's first compile (an empty NUMBA_CACHE_DIR), once: the run
    stops at the first safe point after the compile, whose cache the next scenario loads."""
    tmp = tmp_path_factory.mktemp("compile")
    cache = tmp / "numba_cache"
    run = Run(tmp, "compile", *BASE, "trainer.max_epochs=3", f"hydra.run.dir={tmp / 'run'}",
              env={"NUMBA_CACHE_DIR": str(cache)})  # fmt: skip
    run.wait_for("compile")
    time.sleep(1)
    run.send(signal.SIGINT)
    code, seconds = run.finish()
    return {"run": run, "code": code, "seconds": seconds, "cache": cache, "dir": tmp / "run"}


def test_sigint_while_the_engine_compiles_stops_after_the_compile(compiled):
    row = outcome("SP engine compiling (fresh cache)", "SIGINT", compiled["code"],
                  compiled["seconds"], compiled["dir"])  # fmt: skip
    assert row["exit"] == 130 and row["status"] == "interrupted", compiled["run"].stderr[-3000:]
    assert row["error"] == "interrupted by SIGINT"
    clean_stderr(compiled["run"])


def test_a_second_signal_while_the_engine_compiles_ends_the_run_at_once(tmp_path):
    run = Run(tmp_path, "compile2", *BASE, "trainer.max_epochs=3",
              f"hydra.run.dir={tmp_path / 'run'}",
              env={"NUMBA_CACHE_DIR": str(tmp_path / "numba_cache")})  # fmt: skip
    run.wait_for("compile")
    time.sleep(1)
    run.send(signal.SIGTERM)
    time.sleep(1)
    run.send(signal.SIGTERM)
    code, seconds = run.finish()
    row = outcome("SP engine compiling (fresh cache)", "SIGTERM, SIGTERM 1 s later", code,
                  seconds, tmp_path / "run")  # fmt: skip
    assert code == 143 and seconds < 3, (code, seconds, run.stderr[-2000:])
    assert row["error"] == "interrupted by SIGTERM; SIGTERM again stopped it at once"
    clean_stderr(run)


# ----------------------------------------------------- SIGKILL, resume, stop mid-estimate, resume


def _epochs(path: Path) -> list[int]:
    """Epochs of the train loss rows of seed 0, in file order."""
    try:
        rows = read_records(path, allow_partial_tail=True)
    except (OSError, ValueError):
        return []
    return [r["epoch"] for r in rows if (r["estimator"], r["quantity"]) == ("train", "loss")]


def test_sigkill_then_a_resume_stopped_as_it_loads_the_engine_then_a_resume_to_the_end(
    compiled, tmp_path
):
    """A: SIGKILL during training. B: resumed from A's checkpoint, SIGINT as its first estimate
    (epoch 15) loads the SP engine from numba's cache (warm: the compile above). C: resumed from
    B's to the end. No epoch twice or missing; B's W&B run is finished with its exit code."""
    common = [
        *BASE,
        "trainer.max_epochs=30",
        "schedule.n_points=null",
        "schedule.every_n_epochs=15",
    ]
    env = {"NUMBA_CACHE_DIR": str(compiled["cache"])}
    a = Run(tmp_path, "a", *common, f"hydra.run.dir={tmp_path / 'a'}", env=env)
    a.wait_for(lambda: len(_epochs(tmp_path / "a" / "training.csv")) >= 6)
    a.send(signal.SIGKILL)
    code, _ = a.finish()
    outcome("training (epoch >= 5)", "SIGKILL", code, None, tmp_path / "a")
    assert code == -9 and read_status(tmp_path / "a" / "status.json")["status"] == "running"
    ckpt_a = tmp_path / "a" / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt_a, weights_only=True)["epoch"] >= 3  # whole

    b = Run(tmp_path, "b", *common, f"ckpt_path={ckpt_a}", f"hydra.run.dir={tmp_path / 'b'}",
            env={**env, "WANDB_MODE": "offline"})  # fmt: skip
    b.wait_for("numba_cache")  # the estimate at epoch 15 begins: numba loads the engine
    b.send(signal.SIGINT)
    code, seconds = b.finish()
    row = outcome("SP at epoch 15 of a resumed run, numba loading the engine from its cache",
                  "SIGINT", code, seconds, tmp_path / "b")  # fmt: skip
    assert code == 130 and row["status"] == "interrupted", b.stderr[-3000:]
    assert not (b.marks / "compile").exists()  # it loaded, it did not compile
    clean_stderr(b)
    ckpt_b = tmp_path / "b" / "checkpoints" / "last.ckpt"
    assert read_status(tmp_path / "b" / "status.json")["checkpoint"] == str(ckpt_b)
    (wandb_file,) = (tmp_path / "b").glob("wandb/offline-run-*/*.wandb")
    exits = [r.exit.exit_code for r in wandb_records(wandb_file) if r.HasField("exit")]
    assert exits == [130]

    c = Run(tmp_path, "c", *common, f"ckpt_path={ckpt_b}", f"hydra.run.dir={tmp_path / 'c'}",
            env=env)  # fmt: skip
    code, _ = c.finish()
    outcome("resume to the end", "-", code, None, tmp_path / "c")
    assert code == 0, c.stderr[-3000:]
    assert _epochs(tmp_path / "c" / "training.csv") == list(range(31))  # each epoch once
    sp = [r for r in read_records(tmp_path / "c" / "information.csv")
          if (r["estimator"], r["quantity"], r["layer"]) == ("sp", "I_XT", 1)]  # fmt: skip
    assert [r["epoch"] for r in sp] == [0, 15, 30]


# ------------------------------------------------------------------------ other moments


def test_sighup_while_the_figures_are_drawn(tmp_path):
    """Between two figures: the figures are not all drawn again on the way out."""
    run_dir = tmp_path / "run"
    figures = [a for a in BASE if a != "callbacks.plots=null"]
    run = Run(tmp_path, "figures", *figures, "callbacks.plots.min_interval_s=0",
              "callbacks.plots.max_fraction=1", "trainer.max_epochs=100",
              f"hydra.run.dir={run_dir}")  # fmt: skip
    run.wait_for("figures")
    run.send(signal.SIGHUP)
    code, seconds = run.finish()
    row = outcome("figures being drawn", "SIGHUP", code, seconds, run_dir)
    assert code == 129 and row["status"] == "interrupted" and seconds < 10, run.stderr[-3000:]
    clean_stderr(run)


def test_sigterm_as_the_run_starts(tmp_path):
    """Once Hydra has made the run's folder, before the run began: ``interrupted``."""
    early = Run(tmp_path, "early", *BASE, f"hydra.run.dir={tmp_path / 'early'}")
    early.wait_for(lambda: (tmp_path / "early" / ".hydra").exists(), timeout=120)
    early.send(signal.SIGTERM)
    code, seconds = early.finish()
    row = outcome("start-up (run folder made, run not begun)", "SIGTERM", code, seconds,
                  tmp_path / "early")  # fmt: skip
    assert code == 143 and row["status"] == "interrupted", early.stderr[-2000:]
    clean_stderr(early)


# ------------------------------------------------------------------------------- faults


def test_faults_are_one_line_each(tmp_path):
    """A path under a file (refused before anything is written) and a disk that fills mid-run
    (recorded ``failed``, records whole). Divergence, checkpoints, two runs in one folder:
    tests/test_faults.py (in-process; the same one-line exits as these)."""
    cases = {
        "output path under a file": (
            [f"hydra.run.dir={tmp_path / 'a_file' / 'run'}"],
            {},
            f"infoflow: error: cannot make {tmp_path}/a_file/run: {tmp_path}/a_file is a file, "
            "not a folder",
        ),
        "disk full mid-run (2nd sync of information.csv)": (
            ["schedule.n_points=null", "schedule.every_n_epochs=1"],
            {"INFOFLOW_TEST_ENOSPC": "information.csv:2"},
            "infoflow: error: cannot write {dir}/information.csv: No space left on device",
        ),
    }
    (tmp_path / "a_file").write_text("")
    for i, (name, (args, env, line)) in enumerate(cases.items()):
        run_dir = tmp_path / f"run{i}"
        run = Run(tmp_path, f"fault{i}", *BASE, "trainer.max_epochs=3",
                  *(args if "hydra.run.dir" in " ".join(args) else
                    [*args, f"hydra.run.dir={run_dir}"]), env=env)  # fmt: skip
        code, _ = run.finish()
        last = run.stderr.strip().splitlines()[-1]
        written = run_dir.exists()
        row = outcome(name, "-", code, None, run_dir if written else None)
        assert code == 1 and last == line.format(dir=run_dir), run.stderr[-3000:]
        clean_stderr(run)
        if written:  # the faults of a running run: recorded, records whole
            assert row["status"] == "failed" and last.endswith(row["error"])
        else:  # refused before the run: nothing on disk
            assert not (tmp_path / "a_file" / "run").exists()


# ------------------------------------------------------------------------------- sweeps


JOBLIB = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]  # n_jobs=1 runs in-process


def _job_dirs(sweep: Path) -> dict[str, Path]:
    return {p.name.split("_")[0]: p for p in sweep.iterdir() if (p / ".hydra").is_dir()}


def _jobs(sweep: Path) -> dict[str, dict]:
    return {num: read_status(p / "status.json") or {} for num, p in _job_dirs(sweep).items()}


@pytest.mark.parametrize(
    ("launcher", "signals", "code"),
    [
        (JOBLIB, [signal.SIGTERM], 143),
        (["hydra/launcher=submitit_local"], [signal.SIGINT], 130),
        ([], [signal.SIGTERM, signal.SIGTERM], 143),  # the basic launcher, a second signal
    ],
    ids=["joblib", "submitit_local", "basic-twice"],
)
def test_a_stop_signal_to_a_sweep(tmp_path, launcher, signals, code):
    """The running jobs record ``interrupted``, jobs not started yet say so, and the sweep's
    last lines name them; a report of the sweep works while it runs. The second signal comes
    while the job is in a stretch without a safe point: it ends the sweep at once."""
    from infoflow.report import main as report_main

    sweep, started = tmp_path / "sweep", tmp_path / "started"
    stuck = [] if len(signals) == 1 else ["+callbacks.long.safe_points=false"]
    run = Run(tmp_path, "sweep", "-m", *TINY_SWEEP, *launcher, "seed=0,1", *LONG, *stuck,
              f"+callbacks.long.started={started}", f"hydra.sweep.dir={sweep}")  # fmt: skip
    run.wait_for(lambda: started.exists())
    if launcher == JOBLIB:  # both jobs at work, each in its own worker process
        run.wait_for(lambda: len([j for j in _jobs(sweep).values() if j]) == 2)
    if launcher:  # a report on a sweep that is still writing
        assert report_main([str(sweep), "--no-wandb", "--no-figures"]) == 0
    for i, signum in enumerate(signals):
        time.sleep(1.0 if i else 0.2)
        run.send(signum)
    code_, seconds = run.finish()
    jobs = _jobs(sweep)
    names = " ".join(signal.Signals(s).name for s in signals)
    kind = launcher[0].split("=")[1] if launcher else "basic"
    for num, job_dir in sorted(_job_dirs(sweep).items()):
        outcome(f"sweep job {num} ({kind})", names, code_, seconds, job_dir)
    assert code_ == code and seconds < 20, (code_, seconds, run.stderr[-3000:])
    assert "0" in jobs and all(s.get("status") == "interrupted" for s in jobs.values()), jobs
    last = run.stderr.strip().splitlines()
    if len(signals) == 1:
        assert any(line.startswith("infoflow: sweep stopped by") for line in last[-4:]), last
        assert last[-1].startswith("infoflow:   ") and "interrupted by" in last[-1]
    else:
        assert jobs["0"]["error"] == "interrupted by SIGTERM; SIGTERM again stopped it at once"
        assert last[-2].startswith("infoflow: sweep stopped at once (SIGTERM again)")
        assert last[-1] == "infoflow: SIGTERM again: stopped at once"
    clean_stderr(run)
