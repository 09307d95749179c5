"""Multirun bookkeeping: each job's ``status.json``, and a summary when the sweep ends.

In a multirun (``python -m infoflow -m ...``) every job records its state in ``status.json`` in its
own directory (written atomically)::

    {"status": "running" | "completed" | "failed" | "interrupted", "job": 3,
     "overrides": ["noise.beta=0.01", "seed=1"], "error": "one line (failed jobs only)",
     "host": ..., "pid": ..., "started": ISO time, "finished": ISO time, "seconds": 12.3}

A job that fails records its error there and returns normally instead of raising: Hydra's basic
launcher stops a sweep at an uncaught ``SystemExit`` (the app's one-line exit for bad input) and
the submitit launcher turns a job's exception into an error of the whole sweep, while the other
jobs' results are what the user is waiting for. A job killed from outside (out of memory, time
limit) stays ``running``. When the sweep ends, :class:`SweepSummary` (a Hydra callback, see
conf/hydra/default.yaml) names the failed jobs and exits with status 1 if there are any.

Nothing here imports a launcher plugin: the core install works without the ``[sweep]`` extra.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)

STATUS_FILE = "status.json"
# Written by train.run (checks.claim_run_dir) into a directory a run owns.
RUN_MARKER = ".infoflow_run"
# Folders under a sweep directory that are never job directories.
NOT_JOBS = frozenset(
    {"report", "wandb", ".submitit", ".hydra", "checkpoints", "plots", "snapshots"}
)


def job_dirname(num: int | str, override_dirname: str, limit: int = 150) -> str:
    """A job's folder name: ``<num>_<overrides>``, cut to ``limit`` bytes plus a hash if longer.

    File names are limited to 255 bytes; a sweep with many common overrides (all of them are in
    ``override_dirname``) would otherwise fail at its first job with "File name too long".
    """
    name = f"{num}_{override_dirname}" if override_dirname else str(num)
    raw = name.encode()
    if len(raw) <= limit:
        return name
    digest = hashlib.sha1(raw).hexdigest()[:8]
    return f"{raw[: limit - 9].decode(errors='ignore')}_{digest}"


def process_rank() -> int:
    """This process's global rank as the launchers set it (0 outside distributed training).

    Same order as Lightning's ``rank_zero_only``: torchrun / Lightning's own DDP children set
    ``RANK`` or ``LOCAL_RANK``, SLURM tasks ``SLURM_PROCID``.
    """
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        value = os.environ.get(key)
        if value is not None and value.isdigit():
            return int(value)
    return 0


def is_multirun() -> bool:
    """Whether this process runs a job of a Hydra multirun."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (its type's name when the message is empty)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _now() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


def read_status(path: str | os.PathLike) -> dict[str, Any] | None:
    """A ``status.json`` as a dict, or None if it is missing or unreadable."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class JobRecord:
    """Writes one job's ``status.json``; does nothing for a directory the job does not own.

    A directory that already holds a run marker or a status belongs to an earlier run (a sweep
    started again into the same folder): its files are never overwritten.
    """

    def __init__(self, job_dir: str | os.PathLike, job: int | None, overrides: list[str]) -> None:
        self.path = Path(job_dir) / STATUS_FILE
        taken = (Path(job_dir) / RUN_MARKER).exists() or self.path.exists()
        self.enabled = not taken and process_rank() == 0  # one writer under DDP
        self.start = time.time()
        self.fields: dict[str, Any] = {
            "job": job,
            "overrides": overrides,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": _now(),
        }

    def write(self, status: str, **extra: Any) -> None:
        if not self.enabled:
            return
        data = {"status": status, **self.fields, **extra}
        if status != "running":
            data.update(finished=_now(), seconds=round(time.time() - self.start, 3))
        write_json_atomic(self.path, data)


def _job_identity() -> tuple[Path, int | None, list[str]]:
    """(job directory, job number, task overrides) of the current Hydra job."""
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    return Path(hc.runtime.output_dir), hc.job.get("num"), list(hc.overrides.task)


def run_sweep_job(
    cfg: DictConfig,
    run: Callable[[DictConfig], dict[str, float]],
    user_errors: tuple[type[Exception], ...],
) -> float | None:
    """Run one multirun job: record its status and never raise an ``Exception``.

    Returns the job's final validation loss, or None when it failed. Bad input (``user_errors``)
    is logged as one line; any other exception with its traceback (in the job's log). Only
    ``BaseException`` s that are not errors (Ctrl-C, a launcher's exit) go through, after the job
    is marked ``interrupted``.
    """
    job_dir, num, overrides = _job_identity()
    record = JobRecord(job_dir, num, overrides)
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
        record.write("interrupted", error=type(exc).__name__)
        raise
    else:
        record.write("completed", val_loss=metrics.get("val/loss"))
        return metrics.get("val/loss")
    record.write("failed", error=error)
    name = " ".join(o for o in overrides) or "no overrides"
    print(f"infoflow: job {num} ({name}) failed: {error}", file=sys.stderr)
    return None


def check_ddp_in_multirun(cfg: DictConfig) -> None:
    """Refuse DDP that Lightning would start itself inside a multirun job.

    Lightning's DDP launcher starts the other ranks by running the same command line again: in
    a multirun that command is the whole sweep, so each job would start the sweep anew. DDP in a
    sweep needs processes started by the cluster (SLURM tasks, torchrun).
    """
    from infoflow.checks import ConfigError

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
            print(
                f"infoflow: no job of this sweep recorded a status under {sweep_dir} "
                "(did its job directories hold earlier runs?)",
                file=sys.stderr,
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
