"""Run directories: their names, claiming one for a run, and the run's ``status.json``.

Every run — a single run or a job of a multirun — records its state in ``status.json`` in its own
directory (written atomically)::

    {"status": "running" | "completed" | "failed" | "interrupted", "job": 3 (multirun only),
     "overrides": ["noise.beta=0.01", "seed=1"], "error": "one line (failed / interrupted)",
     "host": ..., "pid": ..., "started": ISO time, "finished": ISO time, "seconds": 12.3}

A run killed with SIGKILL (out of memory, a hard time limit) stays ``running``.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from infoflow.errors import ConfigError
from infoflow.io import write_atomic

STATUS_FILE = "status.json"
# Written by train.run (claim_run_dir) into a directory a run owns.
RUN_MARKER = ".infoflow_run"


# ------------------------------------------------------------------------------------ naming


def job_dirname(num: int | str, override_dirname: str, limit: int = 150) -> str:
    """A job's folder name: ``<num>_<overrides>``, cut to ``limit`` bytes plus a hash if longer.

    File names are limited to 255 bytes; a sweep with many common overrides (all of them are in
    ``override_dirname``) would otherwise fail at its first job with "File name too long". A ``/``
    in a value (a path) is written ``%2F``: it would otherwise nest the job's folder in others.

    >>> job_dirname(3, "noise.beta=0.01,seed=1")
    '3_noise.beta=0.01,seed=1'
    >>> job_dirname(0, "paths.data_dir=/data/mnist")
    '0_paths.data_dir=%2Fdata%2Fmnist'
    >>> len(job_dirname(0, "x=" + "a" * 400).encode())
    150
    """
    override_dirname = override_dirname.replace("/", "%2F")
    name = f"{num}_{override_dirname}" if override_dirname else str(num)
    raw = name.encode()
    if len(raw) <= limit:
        return name
    digest = hashlib.sha1(raw).hexdigest()[:8]
    return f"{raw[: limit - 9].decode(errors='ignore')}_{digest}"


def _hydra_cfg() -> DictConfig | None:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def describe_overrides(overrides: Sequence[str], exclude: Sequence[str] = ()) -> str:
    """A run's name: its experiment (``default`` without one), then its other command-line
    overrides as typed, space-separated; keys in ``exclude`` (paths, ``ckpt_path``) left out.

    >>> describe_overrides(["noise.beta=0.01", "experiment=goldfeld_szt", "seed=3"])
    'goldfeld_szt noise.beta=0.01 seed=3'
    >>> describe_overrides(["trainer.max_epochs=30", "paths.root_dir=/tmp"], ["paths.root_dir"])
    'default trainer.max_epochs=30'
    >>> describe_overrides([])
    'default'
    """
    experiment, rest = "default", []
    for item in overrides:
        key = item.split("=", 1)[0].lstrip("+~")
        if key in exclude:
            continue
        if key == "experiment" and "=" in item and not item.startswith("~"):
            experiment = item.split("=", 1)[1]
        else:
            rest.append(item)
    return " ".join([experiment, *rest])


def run_name() -> str:
    """This run's name for W&B (:func:`describe_overrides` of Hydra's task overrides, without the
    keys Hydra leaves out of run directory names), or ``default`` outside a Hydra app."""
    hc = _hydra_cfg()
    if hc is None:
        return "default"
    exclude = OmegaConf.select(hc, "job.config.override_dirname.exclude_keys", default=None) or []
    return describe_overrides(list(hc.overrides.task), list(exclude))


def sweep_name() -> str | None:
    """The sweep's identity (its directory's date and time) in a multirun, else None.

    ``hydra.sweep.dir`` is resolved once per sweep, so every job of one sweep gets the same name.
    """
    from hydra.types import RunMode

    hc = _hydra_cfg()
    if hc is None or hc.mode != RunMode.MULTIRUN:
        return None
    sweep = Path(hc.sweep.dir)
    return f"{sweep.parent.name}_{sweep.name}"


def register_resolvers() -> None:
    """The ``${infoflow.*:}`` resolvers the configs use (idempotent)."""
    from infoflow.help import help_text

    resolvers = {
        "infoflow.help": help_text,
        "infoflow.run_name": run_name,
        "infoflow.sweep_name": sweep_name,
        "infoflow.job_dirname": job_dirname,
    }
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


# ---------------------------------------------------------------------------------- claiming


def is_claimed(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds another run's results (its run marker or its status)."""
    return (Path(path) / RUN_MARKER).exists() or (Path(path) / STATUS_FILE).exists()


def check_unclaimed(output_dir: str | os.PathLike) -> None:
    """Refuse, before anything is written, a directory that already holds another run."""
    if is_claimed(output_dir):
        raise ConfigError(
            "paths.output_dir",
            str(output_dir),
            "already holds another run's results; choose a new one",
        )


def claim_run_dir(output_dir: str | os.PathLike) -> Path:
    """Mark ``output_dir`` as this run's, atomically; refuse a directory another run has claimed."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(out / RUN_MARKER, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        check_unclaimed(out)  # raises
        raise
    with os.fdopen(fd, "w") as f:
        f.write(f"pid {os.getpid()}\n")
    return out


# ------------------------------------------------------------------------------------ status


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


def _now() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


def write_json_atomic(path: str | os.PathLike, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` atomically (readers see the old file or the new one)."""
    write_atomic(path, json.dumps(data, indent=1) + "\n")


def read_status(path: str | os.PathLike) -> dict[str, Any] | None:
    """A ``status.json`` as a dict, or None if it is missing or unreadable."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class RunRecord:
    """Writes one run's ``status.json``; does nothing for a directory the run does not own.

    A directory that already holds a run marker or a status belongs to an earlier run (a sweep
    started again into the same folder): its files are never overwritten. Under DDP only rank 0
    writes.
    """

    def __init__(
        self, run_dir: str | os.PathLike, overrides: list[str], job: int | None = None
    ) -> None:
        self.path = Path(run_dir) / STATUS_FILE
        self.enabled = not is_claimed(run_dir) and process_rank() == 0
        self.start = time.time()
        self.fields: dict[str, Any] = {
            **({"job": job} if job is not None else {}),
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
