"""`python -m infoflow.report SWEEP_DIR`: one table and figures for all runs of a sweep.

Reads every job directory under SWEEP_DIR (a Hydra multirun folder): its ``information.csv``,
resolved ``config.yaml``, ``metrics.csv``, ``.hydra/overrides.yaml`` and ``status.json``. Writes

* ``SWEEP_DIR/sweep.csv``: every run's information rows (epoch, layer, estimator, quantity, value,
  stderr; nats) with a ``run`` column (the job's folder), one column per swept key and ``seed``;
* ``SWEEP_DIR/report/``: ``runs.csv`` (status, error, last epoch and final metrics of each run),
  ``curves.csv`` (mean, std, median across seeds per group, estimator, quantity, layer, epoch),
  ``compression.csv`` (peak, final and peak − final of I(X;T_ℓ) across seeds) and the PNGs of
  :mod:`infoflow.plots.sweep`;
* one more W&B run, ``aggregate``, in the sweep's group (mode from WANDB_MODE, default offline;
  ``--no-wandb`` skips it), with the figures and tables.

Every file is written atomically, and nothing is written into a job's directory.

**Swept keys** are the command-line overrides (``.hydra/overrides.yaml``) whose values are not the
same in every run; ``seed`` among them is the replicate, the others define the *groups* that
figures compare. A sweep that is still running or partly failed is reported from what is there:
failed runs are named with their error, runs without records are listed as missing.

**Bad input** (one line on stderr, exit status 1): SWEEP_DIR missing, a run directory rather than
a sweep, or holding no runs; an ``information.csv`` that cannot be parsed; two runs with the same
swept values (e.g. two sweeps in one folder); runs that differ only in their seed but whose
resolved configs disagree on another key (paths, logger names and copies of the seed aside): such
runs are not replicates of one setting (a default changed between them, or another code version).
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import os
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from infoflow.records import INFORMATION_COLUMNS, write_csv_atomic
from infoflow.sweep import STATUS_FILE, job_dirs, read_status

PROG = "infoflow.report"
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
    metrics: dict[str, np.ndarray] | None = None
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


# ---------------------------------------------------------------------------------------- reading


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
        raise ReportError(f"cannot read {path}: {' '.join(str(exc).split())}") from exc


def _overrides(job: Path, status: dict | None) -> dict[str, str]:
    path = job / ".hydra" / "overrides.yaml"
    if path.exists():
        items = _load_yaml(path) or []
    else:
        items = (status or {}).get("overrides") or []
    return _parse_overrides(items)


def _information(path: Path) -> list[dict]:
    from infoflow.plots.data import PlotInputError, load_information

    try:
        return load_information(path)
    except PlotInputError as exc:
        raise ReportError(str(exc)) from exc


def _metrics(path: Path) -> dict[str, np.ndarray] | None:
    from infoflow.plots.data import PlotInputError, load_metrics

    try:
        return load_metrics(path)
    except PlotInputError as exc:  # metrics only feed runs.csv: report them missing, go on
        log.warning("ignoring %s", exc)
        return None


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
    if (job / "information.csv").exists():
        run.rows = _information(job / "information.csv")
    if not run.rows:
        run.missing.append("information.csv")
    run.metrics = _metrics(job / "metrics.csv") if (job / "metrics.csv").exists() else None
    if run.metrics is None:
        run.missing.append("metrics.csv")
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


# ----------------------------------------------------------------------------- the sweep's shape


def declared_sweep_keys(sweep_dir: Path) -> list[str]:
    """Keys the sweep itself sweeps (``multirun.yaml``: command line and ``hydra.sweeper.params``),
    parsed with Hydra's own override parser; [] when that file is missing or unreadable.

    They make the sweep's columns and groups known while only some of its jobs have started.
    """
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        hydra_node = (_load_yaml(sweep_dir / "multirun.yaml") or {}).get("hydra") or {}
        items = list((hydra_node.get("overrides") or {}).get("task") or [])
        params = (hydra_node.get("sweeper") or {}).get("params") or {}
        items += [f"{k}={v}" for k, v in params.items()]
        overrides = OverridesParser.create().parse_overrides(items)
    except Exception as exc:  # an optional hint: the runs' own overrides still decide
        log.info("sweep keys from multirun.yaml unavailable: %s", exc)
        return []
    return [o.get_key_element().lstrip("+~") for o in overrides if o.is_sweep_override()]


def swept_keys(runs: Sequence[Run], declared: Sequence[str] = ()) -> list[str]:
    """Override keys whose value differs between runs (absent counts as a value), and the keys
    the sweep declares (``declared``); the seed last."""
    keys: dict[str, None] = dict.fromkeys(declared)
    for run in runs:
        keys.update(dict.fromkeys(run.overrides))
    swept = [k for k in keys if k in declared or len({run.overrides.get(k) for run in runs}) > 1]
    return sorted(swept, key=lambda k: k == SEED)


def group_keys(swept: Sequence[str]) -> list[str]:
    """The swept keys that define groups of replicates: all but the seed."""
    return [k for k in swept if k != SEED]


def group_of(run: Run, keys: Sequence[str]) -> tuple[str, ...]:
    return tuple(run.overrides.get(k, "") for k in keys)


def group_label(keys: Sequence[str], values: Sequence[str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in zip(keys, values, strict=True)) or "all runs"


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(node, Mapping):
        return {prefix: node}
    out: dict[str, Any] = {}
    for k, v in node.items():
        out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


_RUN_SPECIFIC_LEAVES = {"output_dir", "save_dir", "dirpath", "default_root_dir"}


def _run_specific(key: str) -> bool:
    """Keys that differ between the runs of any sweep: paths, W&B run names, resumption."""
    leaf = key.rsplit(".", 1)[-1]
    return (
        key.startswith(("paths.", "hydra."))
        or leaf in _RUN_SPECIFIC_LEAVES
        or (key.startswith("logger.") and leaf in {"name", "group", "id", "version"})
        or key in {"ckpt_path", SEED}
    )


def check_consistent(runs: Sequence[Run], swept: Sequence[str]) -> None:
    """ReportError if two runs share all swept values, or if runs of one group (same swept
    values but the seed) disagree on a config key other than paths, names and seed copies."""
    seen: dict[tuple, str] = {}
    for run in runs:
        ident = group_of(run, swept)
        if ident in seen:
            raise ReportError(
                f"runs {seen[ident]!r} and {run.name!r} have the same swept values "
                f"({group_label(swept, ident) if swept else 'same overrides'}): "
                "two sweeps in one folder?"
            )
        seen[ident] = run.name
    groups: dict[tuple, list[Run]] = defaultdict(list)
    for run in runs:
        if run.config:
            groups[group_of(run, group_keys(swept))].append(run)
    for members in groups.values():
        _check_replicates(members)


def _check_replicates(members: Sequence[Run]) -> None:
    flat = [_flatten(run.config) for run in members]
    keys = {k for f in flat for k in f if not _run_specific(k)}
    first = members[0]
    for key in sorted(keys):
        values = [f.get(key, "<absent>") for f in flat]
        if all(v == values[0] for v in values):
            continue
        if all(str(v) == run.seed for v, run in zip(values, members, strict=True)):
            continue  # a copy of the seed (dataset.seed: ${seed})
        other = next(r for r, v in zip(members, values, strict=True) if v != values[0])
        raise ReportError(
            f"runs {first.name!r} and {other.name!r} differ only in their seed but disagree on "
            f"{key} ({values[0]!r} vs {values[members.index(other)]!r}): "
            "runs of different settings or code versions in one folder?"
        )


# ---------------------------------------------------------------------------------- aggregation


def _stats(values: Sequence[float]) -> tuple[int, float, float, float]:
    """(n, mean, std with ddof=1 (NaN for n < 2), median) of the finite values."""
    arr = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    if not len(arr):
        return 0, math.nan, math.nan, math.nan
    std = float(arr.std(ddof=1)) if len(arr) > 1 else math.nan
    return len(arr), float(arr.mean()), std, float(np.median(arr))


def aggregate(runs: Sequence[Run], keys: Sequence[str]) -> dict[tuple, dict]:
    """``{group values: {(estimator, quantity, layer): Curve}}`` across seeds.

    Runs of one group with the same seed (e.g. separate runs per bin size, merged for the binned
    figure) count once: their values are averaged first.
    """
    from infoflow.plots.sweep import Curve

    acc: dict[tuple, dict] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for run in runs:
        g = group_of(run, keys)
        for r in run.rows:
            acc[g][(r["estimator"], r["quantity"], r["layer"], r["epoch"])][run.seed].append(
                r["value"]
            )
    out: dict[tuple, dict] = {}
    for g, cells in acc.items():
        series: dict[tuple, list] = defaultdict(list)
        for (est, q, layer, epoch), by_seed in cells.items():
            seeds = [float(np.mean(v)) for v in by_seed.values()]
            series[(est, q, layer)].append((epoch, *_stats(seeds)))
        out[g] = {
            key: Curve(*(np.array(col) for col in zip(*sorted(pts), strict=True)))
            for key, pts in series.items()
        }
    return dict(sorted(out.items(), key=lambda kv: _sort_key(kv[0])))


def _number(value: str) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _sort_key(values: Sequence[str]) -> tuple:
    return tuple((0, n, "") if (n := _number(v)) is not None else (1, 0.0, v) for v in values)


def main_estimator(runs: Sequence[Run]) -> str | None:
    """``sp`` if any run has its I_XT, else the first noiseless binned estimator, else any."""
    from infoflow.plots.epochs import main_estimator as pick

    return pick([r for run in runs for r in run.rows])


def peak_final(run: Run, estimator: str) -> dict[int, dict[str, float]]:
    """Per layer: peak and final I(X;T_ℓ) and compression = peak − final (nats)."""
    by_layer: dict[int, dict[int, float]] = defaultdict(dict)
    for r in run.rows:
        if r["estimator"] == estimator and r["quantity"] == "I_XT" and math.isfinite(r["value"]):
            by_layer[r["layer"]][r["epoch"]] = r["value"]
    out = {}
    for layer, points in by_layer.items():
        peak, final = max(points.values()), points[max(points)]
        out[layer] = {"peak": peak, "final": final, "compression": peak - final}
    return out


def compression_table(
    runs: Sequence[Run], keys: Sequence[str], estimator: str
) -> list[dict[str, Any]]:
    """Rows (group values, layer, measure, n, mean, std, median) from the finished runs."""
    acc: dict[tuple, list[float]] = defaultdict(list)
    for run in runs:
        if run.finished:
            for layer, measures in peak_final(run, estimator).items():
                for measure, value in measures.items():
                    acc[(group_of(run, keys), layer, measure)].append(value)
    rows = []
    for (g, layer, measure), values in sorted(acc.items(), key=lambda kv: _sort_key(kv[0][0])):
        n, mean, std, median = _stats(values)
        rows.append(
            {**dict(zip(keys, g, strict=True)), "estimator": estimator, "layer": layer,
             "measure": measure, "n": n, "mean": mean, "std": std, "median": median}
        )  # fmt: skip
    return rows


# -------------------------------------------------------------------------------------- writing


def id_columns(swept: Sequence[str]) -> list[str]:
    """``run``, the swept keys, and ``seed`` (also when it is not swept)."""
    return ["run", *swept, *([] if SEED in swept else [SEED])]


def _ids(run: Run, swept: Sequence[str]) -> list[str]:
    return [run.name, *group_of(run, swept), *([] if SEED in swept else [run.seed])]


def write_sweep_csv(path: Path, runs: Sequence[Run], swept: Sequence[str]) -> Path:
    """Every run's information rows with its id columns prepended."""
    rows = (
        [*_ids(run, swept), *(r[c] for c in INFORMATION_COLUMNS)] for run in runs for r in run.rows
    )
    return write_csv_atomic(path, [*id_columns(swept), *INFORMATION_COLUMNS], rows)


FINAL_METRICS = ("train/loss", "train/acc", "val/loss", "val/acc")


def _final(metrics: Mapping[str, np.ndarray] | None, column: str) -> float | None:
    if not metrics or column not in metrics:
        return None
    ok = np.isfinite(metrics[column])
    return float(metrics[column][ok][-1]) if ok.any() else None


def write_runs_csv(path: Path, runs: Sequence[Run], swept: Sequence[str]) -> Path:
    columns = [*id_columns(swept), "status", "last_epoch", "max_epochs", *FINAL_METRICS, "error"]
    rows = [
        [*_ids(run, swept), run.status, run.last_epoch,
         (run.config.get("trainer") or {}).get("max_epochs"),
         *(_final(run.metrics, c) for c in FINAL_METRICS), run.error]
        for run in runs
    ]  # fmt: skip
    return write_csv_atomic(path, columns, rows)


def write_curves_csv(path: Path, curves: Mapping[tuple, Mapping], keys: Sequence[str]) -> Path:
    columns = [*keys, "estimator", "quantity", "layer", "epoch", "n", "mean", "std", "median"]
    rows = []
    for g, by_key in curves.items():
        for (est, q, layer), c in sorted(by_key.items()):
            for i, epoch in enumerate(c.epoch):
                rows.append(
                    [*g, est, q, layer, int(epoch), int(c.n[i]), c.mean[i], c.std[i], c.median[i]]
                )
    return write_csv_atomic(path, columns, rows)


# -------------------------------------------------------------------------------------- figures


def _labelled(curves: Mapping[tuple, Mapping], keys: Sequence[str]) -> dict[str, Mapping]:
    return {group_label(keys, g): c for g, c in curves.items()}


def _dependence_points(table: Sequence[Mapping], keys: Sequence[str]) -> tuple[str, dict] | None:
    """(x key, {label of the other keys: points}): x is the first swept key that is a number."""
    from infoflow.plots.sweep import Dependence

    numeric = [k for k in keys if table and all(_number(r[k]) is not None for r in table)]
    if not numeric:
        return None
    x_key, others = numeric[0], [k for k in keys if k != numeric[0]]
    points: dict[str, list] = defaultdict(list)
    for r in table:
        label = group_label(others, [r[k] for k in others]) if others else ""
        points[label].append(
            Dependence(float(r[x_key]), r["layer"], r["measure"], r["n"], r["mean"], r["std"])
        )
    return x_key, dict(points)


def draw_figures(
    out: Path,
    runs: Sequence[Run],
    swept: Sequence[str],
    estimator: str | None,
    table: Sequence[Mapping],
    units: str,
) -> list[Path]:
    """Every sweep figure there is data for, into ``out``; a figure that fails is logged."""
    from infoflow.plots import plane_filename, save_figure
    from infoflow.plots import sweep as figs

    keys = group_keys(swept)
    curves = _labelled(aggregate(runs, keys), keys)
    bin_keys = [k for k in keys if not k.startswith("estimator.")]  # bin sizes side by side
    jobs: list[tuple[str, Any]] = []
    if estimator is not None:
        stem = plane_filename(estimator).removeprefix("information_plane_")
        jobs.append(
            (f"information_vs_epoch_{stem}",
             lambda: figs.sweep_information_figure(curves, estimator, units=units))
        )  # fmt: skip
        jobs.append(
            (plane_filename(estimator),
             lambda: figs.sweep_plane_figure(curves, estimator, units=units))
        )  # fmt: skip
    dep = _dependence_points(table, keys)
    if dep is not None and estimator is not None:
        jobs.append(
            (f"dependence_{dep[0]}.png",
             lambda: figs.dependence_figure(dep[1], dep[0], estimator, units=units))
        )  # fmt: skip
    if any(r["estimator"].startswith("bin") for run in runs for r in run.rows):
        binned = _labelled(aggregate(runs, bin_keys), bin_keys)
        jobs.append(("binned_vs_epoch.png", lambda: figs.sweep_binned_figure(binned, units=units)))
    written = []
    for name, build in jobs:
        try:
            written.append(save_figure(build(), out / name))
        except Exception as exc:  # one figure's problem must not cost the others
            log.warning("could not draw %s: %s: %s", name, type(exc).__name__, exc)
    return written


# ------------------------------------------------------------------------------------------ W&B


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
    """Log the figures and tables as the run ``aggregate`` of the sweep's group; returns the
    group, or None when the runs had no W&B logger."""
    target = _wandb_target(runs, sweep_dir)
    if target is None:
        return None
    import wandb

    mode = os.environ.get("WANDB_MODE", "offline")
    run = wandb.init(
        **target, name="aggregate", job_type="aggregate", dir=str(sweep_dir), mode=mode,
        config={"sweep_dir": str(sweep_dir), "swept": list(swept), "runs": len(runs)},
    )  # fmt: skip
    try:
        payload: dict[str, Any] = {}
        for path in files:
            if path.suffix == ".png":
                payload[f"figures/{path.stem}"] = wandb.Image(str(path))
            elif path.name in ("runs.csv", "compression.csv"):
                with path.open() as fh:
                    rows = list(csv.reader(fh))
                payload[f"tables/{path.stem}"] = wandb.Table(columns=rows[0], data=rows[1:])
        run.log(payload)
    finally:
        run.finish()
    return target["group"]


# ------------------------------------------------------------------------------------------ CLI


def summarise(runs: Sequence[Run], swept: Sequence[str]) -> list[str]:
    """Lines that say what the sweep holds: counts by status, failures, what is missing."""
    counts: dict[str, int] = defaultdict(int)
    for run in runs:
        counts[run.status] += 1
    lines = [
        f"{len(runs)} runs: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())),
        "swept: "
        + (
            "; ".join(f"{k} ({', '.join(sorted({r.overrides.get(k, '') for r in runs}))})"
                      for k in swept) or "nothing"
        ),
    ]  # fmt: skip
    for run in runs:
        missing = ", ".join(run.missing)
        if run.status == "failed":
            lines.append(f"failed: {run.name}: {run.error}")
        elif run.status != "completed":
            lines.append(f"{run.status}: {run.name}" + (f" (no {missing} yet)" if missing else ""))
        elif missing:
            lines.append(f"missing: {run.name}: {missing}")
    return lines


def report(
    sweep_dir: str | os.PathLike,
    *,
    units: str = "bits",
    estimator: str | None = None,
    figures: bool = True,
    use_wandb: bool = True,
) -> tuple[list[Path], list[str]]:
    """Write sweep.csv and report/ for ``sweep_dir``; returns (files written, summary lines).

    Raises:
        ReportError: bad input (see the module's docstring).
    """
    root = Path(sweep_dir)
    runs = read_sweep(root)
    swept = swept_keys(runs, declared_sweep_keys(root))
    check_consistent(runs, swept)
    lines = summarise(runs, swept)
    with_rows = [run for run in runs if run.rows]
    if not with_rows:
        raise ReportError(f"{sweep_dir}: no run has information rows yet ({lines[0]})")
    have = sorted(
        {r["estimator"] for run in with_rows for r in run.rows if r["quantity"] == "I_XT"}
    )
    if estimator is not None and estimator not in have:
        raise ReportError(f"--estimator {estimator}: no I_XT rows (have: {', '.join(have)})")
    estimator = estimator or main_estimator(with_rows)
    keys = group_keys(swept)
    table = compression_table(with_rows, keys, estimator) if estimator else []
    out = root / "report"
    files = [
        write_sweep_csv(root / "sweep.csv", with_rows, swept),
        write_runs_csv(out / "runs.csv", runs, swept),
        write_curves_csv(out / "curves.csv", aggregate(with_rows, keys), keys),
    ]
    if table:
        columns = [*keys, "estimator", "layer", "measure", "n", "mean", "std", "median"]
        rows = ([r[c] for c in columns] for r in table)
        files.append(write_csv_atomic(out / "compression.csv", columns, rows))
    else:
        lines.append("no finished run yet: no peak/final/compression table")
    if figures:
        files += draw_figures(out, with_rows, swept, estimator, table, units)
    if use_wandb:
        group = log_to_wandb(root, runs, swept, files)
        lines.append(
            f"W&B: run 'aggregate' in group {group!r}" if group else "W&B: runs had no W&B logger"
        )
    return files, lines


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m {PROG}", description=__doc__.split("\n")[0])
    p.add_argument("sweep_dir", metavar="SWEEP_DIR", help="a multirun folder (multirun/DATE/TIME)")
    p.add_argument("--units", choices=("bits", "nats"), default="bits", help="figures' units")
    p.add_argument("--estimator", help="estimator of the I(X;T) figures (default: sp, else binned)")
    p.add_argument("--no-figures", action="store_true", help="write the tables only")
    p.add_argument("--no-wandb", action="store_true", help="do not log the aggregate run to W&B")
    p.add_argument("-v", "--verbose", action="store_true", help="log what each step does")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format=f"{PROG}: %(message)s"
    )
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    try:
        files, lines = report(
            args.sweep_dir,
            units=args.units,
            estimator=args.estimator,
            figures=not args.no_figures,
            use_wandb=not args.no_wandb,
        )
    except (ReportError, OSError) as exc:
        print(f"{PROG}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    for line in lines:
        print(f"{PROG}: {line}")
    for path in files:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
