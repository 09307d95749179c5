"""Reading a sweep: every job directory's records, config, overrides and status."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infoflow.errors import one_line
from infoflow.records import (
    INFORMATION_FILE,
    TRAINING_FILE,
    RecordError,
    read_records,
)
from infoflow.sweep import STATUS_FILE, job_dirs, read_status

SEED = "seed"
log = logging.getLogger(__name__)


class ReportError(ValueError):
    """Input the report cannot use; its message is one line."""


@dataclass
class Run:
    """One job of the sweep, as read from its directory."""

    name: str
    path: Path
    overrides: dict[str, str]
    status: str
    error: str | None = None
    config: dict = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)
    training: list[dict] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def seed(self) -> str:
        """The run's seed: its override, else its config's, else its name (one replicate)."""
        if SEED in self.overrides:
            return self.overrides[SEED]
        return str(self.config.get(SEED, self.name))

    @property
    def last_epoch(self) -> int | None:
        return max((r["epoch"] for r in self.rows), default=None)

    @property
    def finished(self) -> bool:
        """Whether its records reach the last epoch (peak and final values are meaningful)."""
        max_epochs = (self.config.get("trainer") or {}).get("max_epochs")
        return max_epochs is not None and self.last_epoch == max_epochs


def _parse_overrides(items: Iterable[str]) -> dict[str, str]:
    """``["noise.beta=0.01", "+x=1"]`` -> ``{"noise.beta": "0.01", "x": "1"}``."""
    out = {}
    for item in items:
        key, _, value = str(item).partition("=")
        out[key.lstrip("+~")] = value
    return out


def _load_yaml(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ReportError(f"cannot read {path}: {one_line(exc)}") from exc


def _overrides(job: Path, status: dict | None) -> dict[str, str]:
    path = job / ".hydra" / "overrides.yaml"
    if path.exists():
        items = _load_yaml(path) or []
    else:
        items = (status or {}).get("overrides") or []
    return _parse_overrides(items)


def _records(path: Path, running: bool) -> list[dict]:
    """A record file's rows ([] if it is missing); ReportError (file and row) if it is damaged.
    A run still ``running`` (or killed with SIGKILL, which leaves it so) may be in the middle of
    an append: its incomplete last row is left out, not an error."""
    if not path.exists():
        return []
    try:
        return read_records(path, allow_partial_tail=running)
    except RecordError as exc:
        raise ReportError(str(exc)) from exc


def _status(status: dict | None, run: Run) -> tuple[str, str | None]:
    """(status, error): from status.json, else inferred from the records."""
    if status is not None:
        return str(status.get("status", "unknown")), status.get("error")
    return ("completed" if run.finished else "incomplete"), None


def read_run(sweep_dir: Path, job: Path) -> Run:
    """Everything the report uses from one job directory (missing files are noted)."""
    status = read_status(job / STATUS_FILE)
    run = Run(job.relative_to(sweep_dir).as_posix(), job, _overrides(job, status), "unknown")
    if (job / "config.yaml").exists():
        run.config = _load_yaml(job / "config.yaml") or {}
    else:
        run.missing.append("config.yaml")
    for name in (INFORMATION_FILE, TRAINING_FILE):
        rows = _records(job / name, running=(status or {}).get("status") == "running")
        if not rows:
            run.missing.append(name)
        for r in rows:  # records from before rows had seeds: the run's
            r["seed"] = run.seed if r["seed"] is None else r["seed"]
        setattr(run, "rows" if name == INFORMATION_FILE else "training", rows)
    run.status, run.error = _status(status, run)
    return run


def _job_order(run: Run) -> tuple:
    head = run.name.split("/")[-1].split("_")[0]
    return (int(head), run.name) if head.isdigit() else (math.inf, run.name)


def read_sweep(sweep_dir: str | os.PathLike) -> list[Run]:
    """The runs under ``sweep_dir``, in job order; ReportError for bad input."""
    root = Path(sweep_dir)
    if not root.is_dir():
        raise ReportError(f"{sweep_dir}: no such directory")
    jobs = list(job_dirs(root))
    if root in jobs:
        raise ReportError(
            f"{sweep_dir} is a run's directory, not a sweep's (python -m infoflow.plot draws a run)"
        )
    if not jobs:
        raise ReportError(
            f"{sweep_dir}: no runs found (no job folder with .hydra/, status.json or a run marker)"
        )
    return sorted((read_run(root, job) for job in jobs), key=_job_order)
