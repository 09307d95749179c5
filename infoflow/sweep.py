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

import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from infoflow.errors import ConfigError, fail, one_line, run_errors
from infoflow.rundir import (  # noqa: F401 - re-exported: report.py and older scripts import them here
    RUN_MARKER,
    STATUS_FILE,
    RunRecord,
    job_dirname,
    read_status,
    write_json_atomic,
)

log = logging.getLogger(__name__)

# Folders under a sweep directory that are never job directories.
NOT_JOBS = frozenset(
    {"report", "wandb", ".submitit", ".hydra", "checkpoints", "plots", "snapshots"}
)


def is_multirun() -> bool:
    """Whether this process runs a job of a Hydra multirun."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _job_identity() -> tuple[Path, int | None, list[str]]:
    """(job directory, job number, task overrides) of the current Hydra job."""
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    return Path(hc.runtime.output_dir), hc.job.get("num"), list(hc.overrides.task)


def run_sweep_job(
    cfg: DictConfig,
    run: Callable[[DictConfig], dict[str, float]],
    user_errors: tuple[type[Exception], ...] | None = None,
) -> float | None:
    """Run one multirun job: record its status and never raise an ``Exception``.

    Returns the job's final validation loss, or None when it failed. Bad input (``user_errors``)
    is logged as one line; any other exception with its traceback (in the job's log). Only
    ``BaseException`` s that are not errors (a stop signal, a launcher's exit) go through, after
    the job is marked ``interrupted``.
    """
    user_errors = user_errors or run_errors()
    job_dir, num, overrides = _job_identity()
    record = RunRecord(job_dir, overrides, job=num)
    record.write("running")
    try:
        check_ddp_in_multirun(cfg)
        metrics = run(cfg)
    except user_errors as exc:
        error = one_line(exc)
        log.error("job %s failed: %s", num, error)
    except Exception as exc:
        error = f"{type(exc).__name__}: {one_line(exc)}"
        log.exception("job %s failed: %s", num, error)
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            import traceback

            traceback.print_exc()
    except BaseException as exc:
        record.write("interrupted", error=one_line(exc))
        raise
    else:
        record.write("completed", val_loss=metrics.get("val/loss"))
        return metrics.get("val/loss")
    record.write("failed", error=error)
    fail(f"job {num} ({' '.join(overrides) or 'no overrides'}) failed: {error}")
    return None


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


class SweepSummary(Callback):
    """Hydra callback: at the end of a multirun, name the jobs that failed and exit 1 if any did.

    Only statuses this sweep wrote count: those that were not there, unchanged, at its start.
    """

    def __init__(self) -> None:
        self._before: dict[Path, str] = {}

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
        self._before = self._statuses(Path(config.hydra.sweep.dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
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
