"""Multirun bookkeeping: each job's ``status.json``, and a summary when the sweep ends.

In a multirun (``python -m infoflow -m ...``) every job records its state in ``status.json`` in its
own directory (see :mod:`infoflow.rundir` for the fields). A job that fails records its error there
and returns normally instead of raising: Hydra's basic launcher stops a sweep at an uncaught
``SystemExit`` (the app's one-line exit for bad input) and the submitit launcher turns a job's
exception into an error of the whole sweep, while the other jobs' results are what the user is
waiting for. A stop signal (SIGTERM, Ctrl-C) marks the job ``interrupted`` and ends the sweep.
When the sweep ends, :class:`SweepSummary` (a Hydra callback, see conf/hydra/default.yaml) names
the failed jobs and exits with status 1 if there are any.

Nothing here imports a launcher plugin: the core install works without the ``[sweep]`` extra.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from infoflow.errors import ConfigError, fail, one_line, run_errors, storage_error
from infoflow.io import write_atomic
from infoflow.rundir import (  # noqa: F401 - re-exported: report.py and older scripts import them here
    RUN_MARKER,
    STATUS_FILE,
    RunRecord,
    job_dirname,
    read_status,
    resume_hint,
    write_json_atomic,
)

log = logging.getLogger(__name__)

#: Written into the sweep directory by the sweep's process on a stop signal (the signal's name):
#: jobs that have not started yet record ``interrupted`` and return at once.
STOP_MARKER = ".infoflow_stop"
#: How a job that a stopped sweep never started begins its status's error line.
NOT_STARTED = "not started"
#: The pid of the sweep's own process, for its jobs (which may run in worker processes).
SWEEP_PID_ENV = "INFOFLOW_SWEEP_PID"

#: The sweep's stop handling, from its start to its end (not on the callback: launchers pickle it).
_SCOPE = ExitStack()

# Folders under a sweep directory that are never job directories.
NOT_JOBS = frozenset(
    {"report", "wandb", ".submitit", ".hydra", "checkpoints", "plots", "snapshots"}
)


def is_multirun() -> bool:
    """Whether this process runs a job of a Hydra multirun."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _job_identity() -> tuple[Path, int | None, list[str], Path]:
    """(job directory, job number, task overrides, sweep directory) of the current Hydra job."""
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    return (
        Path(hc.runtime.output_dir),
        hc.job.get("num"),
        list(hc.overrides.task),
        Path(hc.sweep.dir),
    )


def in_sweep_process() -> bool:
    """Whether this job runs in the sweep's own process (Hydra's basic launcher), rather than in
    a worker process (joblib, submitit)."""
    return os.environ.get(SWEEP_PID_ENV) == str(os.getpid())


def sweep_stopped(sweep_dir: str | os.PathLike) -> int | None:
    """The stop signal the sweep's process recorded in ``sweep_dir`` (:data:`STOP_MARKER`), or
    None: jobs that start after it record ``interrupted`` and return at once."""
    try:
        name = (Path(sweep_dir) / STOP_MARKER).read_text().strip()
        return int(signal.Signals[name])
    except (OSError, KeyError):
        return None


def run_sweep_job(
    cfg: DictConfig,
    run: Callable[[DictConfig], dict[str, float]],
    user_errors: tuple[type[Exception], ...] | None = None,
) -> float | None:
    """Run one multirun job: record its status and never raise an ``Exception``.

    Returns the job's final validation loss, or None when it failed or was interrupted. Bad input
    and faults (``user_errors``, a full disk) are logged as one line; any other exception with
    its traceback (in the job's log). A stop signal marks the job ``interrupted``: in the sweep's
    own process (basic launcher) :class:`~infoflow.signals.RunInterrupted` then ends the sweep,
    with one line naming it; in a worker process the job returns, and the sweep's process ends
    the sweep when its launcher returns (:class:`SweepSummary`).
    """
    from infoflow.signals import RunInterrupted, received, stop_on_signals

    user_errors = user_errors or run_errors()
    job_dir, num, overrides, sweep_dir = _job_identity()
    record = RunRecord(job_dir, overrides, job=num)
    try:
        record.claim()
    except user_errors as exc:  # another run's folder: nothing of this job is written there
        fail(f"job {num} ({' '.join(overrides) or 'no overrides'}) not run: {one_line(exc)}")
        return None
    stopped = received() or sweep_stopped(sweep_dir)
    if stopped is not None:
        record.end("interrupted", error=f"{NOT_STARTED}: the sweep was stopped by {_name(stopped)}")
        if in_sweep_process():
            _say_stopped(sweep_dir, stopped)
            raise RunInterrupted(stopped)
        return None
    with stop_on_signals(final=record.stopped_at_once):
        return _run_job(cfg, run, user_errors, record, (job_dir, num, overrides, sweep_dir))


def _run_job(
    cfg: DictConfig,
    run: Callable[[DictConfig], dict[str, float]],
    user_errors: tuple[type[Exception], ...],
    record: RunRecord,
    identity: tuple[Path, int | None, list[str], Path],
) -> float | None:
    from infoflow.signals import RunInterrupted

    job_dir, num, overrides, sweep_dir = identity
    try:
        record.write("running")
        check_ddp_in_multirun(cfg)
        metrics = run(cfg)
    except user_errors as exc:
        error = one_line(exc)
        log.error("job %s failed: %s", num, error)
    except RunInterrupted as exc:
        resume = resume_hint(job_dir)
        record.end("interrupted", error=str(exc), checkpoint=resume)
        log.warning("job %s %s; resume: %s", num, exc, f"ckpt_path={resume}" if resume else "-")
        if in_sweep_process():
            _say_stopped(sweep_dir, exc.signum)
            raise
        return None
    except Exception as exc:
        error = f"{type(exc).__name__}: {one_line(exc)}"
        if (storage := storage_error(exc)) is not None:
            error = one_line(storage)
            log.error("job %s failed: %s", num, error)
        else:
            log.exception("job %s failed: %s", num, error)
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                import traceback

                traceback.print_exc()
    except BaseException as exc:
        record.end("interrupted", error=one_line(exc))
        raise
    else:
        record.end("completed", val_loss=metrics.get("val/loss"))
        return metrics.get("val/loss")
    record.end("failed", error=error)
    fail(f"job {num} ({' '.join(overrides) or 'no overrides'}) failed: {error}")
    return None


def _name(signum: int) -> str:
    return signal.Signals(signum).name


def _say_stopped(sweep_dir: Path, signum: int) -> None:
    """The sweep's last lines when a stop signal ends it: what each job of it became."""
    statuses = {j: read_status(j / STATUS_FILE) or {} for j in job_dirs(sweep_dir)}
    counts: dict[str, int] = {}
    for s in statuses.values():
        state = s.get("status", "without a status")
        if str(s.get("error", "")).startswith(NOT_STARTED):
            state = "not started"
        counts[state] = counts.get(state, 0) + 1
    told = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    print(
        f"infoflow: sweep stopped by {_name(signum)} ({told or 'no job started'}); "
        f"status.json in each job's directory under {sweep_dir}:",
        file=sys.stderr,
    )
    for job, s in sorted(statuses.items()):
        if s.get("status") == "interrupted" and not str(s.get("error", "")).startswith(NOT_STARTED):
            resume = f"; resume: ckpt_path={s['checkpoint']}" if s.get("checkpoint") else ""
            print(f"infoflow:   {job.name}: {s.get('error')}{resume}", file=sys.stderr)


def check_ddp_in_multirun(cfg: DictConfig) -> None:
    """Refuse DDP that Lightning would start itself inside a multirun job.

    Lightning's DDP launcher starts the other ranks by running the same command line again: in
    a multirun that command is the whole sweep, so each job would start the sweep anew. DDP in a
    sweep needs processes started by the cluster (SLURM tasks, torchrun).
    """
    trainer = cfg.get("trainer") or {}
    strategy = str(trainer.get("strategy", "auto"))
    single = trainer.get("devices", 1) == 1 and trainer.get("num_nodes", 1) == 1
    if not strategy.startswith("ddp") or "spawn" in strategy or single:
        return
    from lightning_fabric.plugins.environments import (
        LSFEnvironment,
        MPIEnvironment,
        SLURMEnvironment,
        TorchElasticEnvironment,
    )

    envs = (SLURMEnvironment, TorchElasticEnvironment, LSFEnvironment, MPIEnvironment)
    if not any(env.detect() for env in envs):
        raise ConfigError(
            "trainer.strategy",
            strategy,
            "in a multirun DDP processes must come from the cluster: "
            "hydra/launcher=slurm with hydra.launcher.tasks_per_node=<devices>; "
            "on one machine run DDP jobs one at a time, without -m",
        )


def job_dirs(root: str | os.PathLike) -> Iterator[Path]:
    """Job directories under a sweep directory: folders holding ``.hydra/``, ``status.json`` or
    a run marker. A job's own subfolders, ``report/`` and ``wandb/`` are not searched."""
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        is_job = (
            STATUS_FILE in filenames
            or RUN_MARKER in filenames
            or (".hydra" in dirnames and here != Path(root))
        )
        if is_job:
            dirnames[:] = []
            yield here
            continue
        dirnames[:] = sorted(d for d in dirnames if d not in NOT_JOBS)


def running_jobs(sweep_dir: Path) -> list[int]:
    """The pids of this host's running jobs under ``sweep_dir`` in other processes than this one
    (their ``status.json``)."""
    host, pids = socket.gethostname(), []
    for job in job_dirs(sweep_dir):
        s = read_status(job / STATUS_FILE) or {}
        pid = s.get("pid")
        mine = s.get("status") == "running" and s.get("host") == host
        if mine and isinstance(pid, int) and pid != os.getpid():
            pids.append(pid)
    return pids


class SweepSummary(Callback):
    """Hydra callback: at the end of a multirun, name the jobs that failed and exit 1 if any did.

    Only statuses this sweep wrote count: those that were not there, unchanged, at its start.
    """

    def __init__(self) -> None:
        self._before: dict[Path, str] = {}
        self._sweep_dir: Path | None = None

    @staticmethod
    def _statuses(sweep_dir: Path) -> dict[Path, str]:
        out = {}
        for job in job_dirs(sweep_dir) if sweep_dir.is_dir() else ():
            try:
                out[job] = (job / STATUS_FILE).read_text()
            except OSError:
                continue
        return out

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from infoflow.signals import stop_on_signals

        self._sweep_dir = Path(config.hydra.sweep.dir)
        self._before = self._statuses(self._sweep_dir)
        # A stop signal to the sweep's process reaches its jobs, wherever they run.
        os.environ[SWEEP_PID_ENV] = str(os.getpid())
        _SCOPE.enter_context(stop_on_signals(final=self._at_once, on_signal=self._pass_on))

    def _pass_on(self, signum: int, first: bool) -> None:
        """In the sweep's process, for each stop signal: jobs not started yet will not start (the
        marker, on the first), and running jobs in worker processes get the signal too."""
        if self._sweep_dir is None:
            return
        if first:
            write_atomic(self._sweep_dir / STOP_MARKER, f"{_name(signum)}\n")
        for pid in running_jobs(self._sweep_dir):
            with contextlib.suppress(OSError):  # it ended meanwhile
                os.kill(pid, signum)

    def _at_once(self, signum: int) -> None:
        print(
            f"infoflow: sweep stopped at once ({_name(signum)} again); how each job ended is "
            f"in its status.json under {self._sweep_dir}",
            file=sys.stderr,
        )

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        _SCOPE.close()
        sweep_dir = Path(config.hydra.sweep.dir)
        stopped = sweep_stopped(sweep_dir)
        if stopped is not None:
            _say_stopped(sweep_dir, stopped)
            raise SystemExit(128 + stopped)
        now = self._statuses(sweep_dir)
        mine = {job: text for job, text in now.items() if self._before.get(job) != text}
        statuses = {job: read_status(job / STATUS_FILE) or {} for job in mine}
        failed = {j: s for j, s in statuses.items() if s.get("status") != "completed"}
        log.info(
            "sweep finished: %d jobs, %d completed, %d failed; report: python -m infoflow.report %s",
            len(statuses),
            len(statuses) - len(failed),
            len(failed),
            sweep_dir,
        )
        if statuses and not failed:
            return
        if not statuses:
            fail(
                f"no job of this sweep recorded a status under {sweep_dir} "
                "(did its job directories hold earlier runs?)"
            )
            raise SystemExit(1)
        print(
            f"infoflow: {len(failed)} of {len(statuses)} jobs failed "
            f"(status.json in each job's directory under {sweep_dir}):",
            file=sys.stderr,
        )
        for job, s in sorted(failed.items()):
            print(f"infoflow:   {job.name}: {s.get('error', s.get('status'))}", file=sys.stderr)
        raise SystemExit(1)
