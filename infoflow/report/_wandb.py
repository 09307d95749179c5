"""The sweep's aggregate as one more W&B run in the sweep's group."""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from infoflow.report._reading import Run


def _wandb_target(runs: Sequence[Run], sweep_dir: Path) -> dict[str, Any] | None:
    """project, entity, group of the runs' W&B logger; None if no run logged to W&B."""
    for run in runs:
        wb = (run.config.get("logger") or {}).get("wandb")
        if isinstance(wb, Mapping):
            group = wb.get("group") or f"{sweep_dir.parent.name}_{sweep_dir.name}"
            return {"project": wb.get("project"), "entity": wb.get("entity"), "group": group}
    return None


def log_to_wandb(
    sweep_dir: Path, runs: Sequence[Run], swept: Sequence[str], files: Sequence[Path]
) -> str | None:
    """Log the figures and tables as the run ``aggregate`` of the sweep's group; returns the line
    the report prints about it (the group, and offline the folder ``wandb sync`` uploads), or
    None when the runs had no W&B logger."""
    target = _wandb_target(runs, sweep_dir)
    if target is None:
        return None
    import wandb

    mode = os.environ.get("WANDB_MODE", "offline")
    # As quiet as a run (infoflow.loggers.WandbLogger): online only the URL, offline nothing; the
    # report's own lines say where the aggregate run is.
    settings = wandb.Settings(quiet=True, silent=mode.lower() in ("offline", "dryrun"))
    run = wandb.init(
        **target, name="aggregate", job_type="aggregate", dir=str(sweep_dir), mode=mode,
        config={"sweep_dir": str(sweep_dir), "swept": list(swept), "runs": len(runs)},
        settings=settings,
    )  # fmt: skip
    offline = Path(run.dir).parent if settings.silent else None  # .../offline-run-*/files
    try:
        payload: dict[str, Any] = {}
        for path in files:
            if path.suffix == ".png":
                payload[f"figures/{path.stem}"] = wandb.Image(str(path))
            elif path.name in ("runs.csv", "compression.csv", "phases.csv", "depth.csv"):
                with path.open() as fh:
                    rows = list(csv.reader(fh))
                payload[f"tables/{path.stem}"] = wandb.Table(columns=rows[0], data=rows[1:])
        run.log(payload)
    finally:
        run.finish()
    line = f"W&B: run 'aggregate' in group {target['group']!r}"
    return line + (f", offline (upload: wandb sync {offline})" if offline else "")
