"""Run directories: their names, claiming one for a run, and the run's ``status.json``.

Every run — a single run or a job of a multirun — records its state in ``status.json`` in its own
directory (written atomically)::

    {"status": "running" | "completed" | "failed" | "interrupted", "job": 3 (multirun only),
     "overrides": ["noise.beta=0.01", "seed=1"], "error": "one line (failed / interrupted)",
     "checkpoint": the checkpoint to resume from (interrupted; null if none was saved yet),
     "host": ..., "pid": ..., "started": ISO time, "finished": ISO time, "seconds": 12.3}

The error of an interrupted run names its signal ("interrupted by SIGTERM"; "...; SIGTERM again
stopped it at once" for a hard stop; "not started: the sweep was stopped by SIGINT" for a sweep's
job that never began). A run killed with SIGKILL (out of memory, a hard time limit) stays
``running``.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from infoflow.errors import ConfigError, StorageError
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


#: Directories this process claimed ahead of its run (:meth:`RunRecord.claim`), not yet taken.
_claimed_ahead: set[Path] = set()


def claim_run_dir(output_dir: str | os.PathLike, *, ahead: bool = False) -> Path:
    """Mark ``output_dir`` as this run's, atomically; refuse a directory another run has claimed
    (two runs started into one folder: one of them is refused here). A directory that cannot be
    made is a :class:`~infoflow.errors.StorageError` naming it. ``ahead``: claimed for a run
    this process is about to start (:meth:`RunRecord.claim`), whose own call then takes it."""
    out = Path(output_dir)
    if not ahead and out.resolve() in _claimed_ahead:
        _claimed_ahead.discard(out.resolve())
        return out
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out / RUN_MARKER, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        if not out.is_dir():
            raise StorageError(out, "a file is in the way, not a folder", "make") from None
        check_unclaimed(out)  # raises
        raise
    except OSError as exc:
        raise StorageError(out, _why_not(out, exc), "make") from exc
    with os.fdopen(fd, "w") as f:
        f.write(f"pid {os.getpid()}\n")
    if ahead:
        _claimed_ahead.add(out.resolve())
    return out


def _why_not(path: Path, exc: OSError) -> str:
    """Why ``path`` cannot be made: the first part of it that is a file, or the OS's reason."""
    for parent in [path, *path.parents]:
        if parent.exists():
            return f"{parent} is a file, not a folder" if not parent.is_dir() else exc.strerror
    return exc.strerror or str(exc)


def check_writable(output_dir: str | os.PathLike) -> None:
    """Refuse, before anything is written, a run directory that cannot be made or written: a part
    of the path that is a file, or a folder without write permission.

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as f:
    ...     check_writable(f"{f.name}/run")
    Traceback (most recent call last):
    ...
    infoflow.errors.StorageError: cannot make .../run: ... is a file, not a folder
    """
    path = Path(output_dir).absolute()
    existing = next(p for p in [path, *path.parents] if p.exists() or p == p.parent)
    if not existing.is_dir():
        raise StorageError(path, f"{existing} is a file, not a folder", "make")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise StorageError(path, f"{existing} is not writable", "make")


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


def resume_hint(run_dir: str | os.PathLike) -> str | None:
    """The checkpoint a stopped run resumes from (``ckpt_path=``), if it saved one."""
    ckpt = Path(run_dir) / "checkpoints" / "last.ckpt"
    return str(ckpt) if ckpt.is_file() else None


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

    def claim(self) -> None:
        """Claim the directory for this run (:func:`claim_run_dir`) before its first status, so
        that of two runs started into one folder the one refused writes nothing there."""
        if not self.enabled:
            return
        try:
            claim_run_dir(self.path.parent, ahead=True)
        except BaseException:
            self.enabled = False
            raise

    def stopped_at_once(self, signum: int) -> None:
        """What a second stop signal writes before the process ends at once
        (:func:`infoflow.signals.stop_on_signals`' ``final``)."""
        from infoflow.signals import received

        first = signal.Signals(received() or signum).name
        again = signal.Signals(signum).name
        error = f"interrupted by {first}; {again} again stopped it at once"
        self.write("interrupted", error=error, checkpoint=resume_hint(self.path.parent))

    def end(self, status: str, **extra: Any) -> None:
        """:meth:`write` a final status; if even that fails (the disk), say so on stderr and go on
        ending the run."""
        try:
            self.write(status, **extra)
        except OSError as exc:
            print(f"infoflow: could not record {status} in {self.path}: {exc}", file=sys.stderr)

    def write(self, status: str, **extra: Any) -> None:
        """Write the status atomically; on a full disk, over the old file in place (its block is
        there already), so that a run that ends never stays ``running``."""
        if not self.enabled:
            return
        data = {"status": status, **self.fields, **extra}
        if status != "running":
            data.update(finished=_now(), seconds=round(time.time() - self.start, 3))
        try:
            write_json_atomic(self.path, data)
        except OSError:
            if not self.path.is_file():
                raise
            with self.path.open("r+") as f:  # no new block needed for a few hundred bytes
                f.write(json.dumps(data, indent=1) + "\n")
                f.truncate()
