"""``report()`` and the command line."""

from __future__ import annotations

import argparse
import logging
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from infoflow.errors import fail
from infoflow.records import write_csv_atomic
from infoflow.report._aggregation import _sort_key, aggregate, compression_table, main_estimator
from infoflow.report._consistency import (
    check_consistent,
    declared_sweep_keys,
    group_keys,
    swept_keys,
)
from infoflow.report._figures import draw_figures
from infoflow.report._phases import PHASE_COLUMNS, depth_key, depth_table, phases_table
from infoflow.report._reading import ReportError, Run, read_sweep
from infoflow.report._tables import write_curves_csv, write_runs_csv, write_sweep_csv
from infoflow.report._wandb import log_to_wandb

PROG = "infoflow.report"
log = logging.getLogger(__name__)
DESCRIPTION = "one table and figures for all runs of a sweep"


def _values(runs: Sequence[Run], key: str) -> list[str]:
    """The values of a swept key, in the report's order (numbers, then lists by length)."""
    return sorted({r.overrides.get(key, "") for r in runs}, key=lambda v: _sort_key([v]))


def summarise(runs: Sequence[Run], swept: Sequence[str]) -> list[str]:
    """Lines that say what the sweep holds: counts by status, failures, what is missing."""
    counts: dict[str, int] = defaultdict(int)
    for run in runs:
        counts[run.status] += 1
    lines = [
        f"{len(runs)} runs: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())),
        "swept: "
        + (
            "; ".join(f"{k} ({', '.join(_values(runs, k))})" for k in swept) or "nothing"
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
    phases = phases_table(with_rows, keys, estimator)
    if phases:
        columns = [*keys, *PHASE_COLUMNS]
        files.append(
            write_csv_atomic(out / "phases.csv", columns, ([r[c] for c in columns] for r in phases))
        )
    depth = depth_key(with_rows, keys)
    if depth is not None and phases:
        files.append(write_csv_atomic(out / "depth.csv", *depth_table(with_rows, keys, depth,
                                                                      estimator)))  # fmt: skip
    if figures:
        files += draw_figures(out, with_rows, swept, estimator, table, units)
    if use_wandb:
        lines.append(log_to_wandb(root, runs, swept, files) or "W&B: runs had no W&B logger")
    return files, lines


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m {PROG}", description=DESCRIPTION)
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
        return fail(exc, PROG)
    for line in lines:
        print(f"{PROG}: {line}")
    for path in files:
        print(path)
    return 0
