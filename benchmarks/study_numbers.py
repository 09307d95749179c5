"""The numbers the README's papers table quotes, read from a study's tidy records.

    python benchmarks/study_numbers.py RUN_OR_SWEEP [--estimator sp] [--quantity I_XT]

For every run directory under RUN_OR_SWEEP (a folder holding ``information.csv``), per hidden
layer over its seeds: the peak and final value of ``quantity`` and their difference, the
compression (peak − final), as seed mean [min–max]; how many seeds compress beyond the noise
(:func:`infoflow.analysis.compression_onsets`); and the final validation accuracy. Only the
records are read, as the report does.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

from infoflow.analysis import compression_onsets
from infoflow.records import INFORMATION_FILE, TRAINING_FILE, read_records


def spread(values: list[float], digits: int = 3) -> str:
    """``mean [min–max]`` (one value: the value)."""
    v = np.asarray(values, dtype=float)
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} [{v.min():.{digits}f}–{v.max():.{digits}f}]"


def label(run: Path) -> str:
    overrides = run / ".hydra" / "overrides.yaml"
    if overrides.is_file():
        lines = [ln.strip("- \n") for ln in overrides.read_text().splitlines() if ln.strip()]
        return f"{run.name}: " + " ".join(lines)
    return str(run)


def final_accuracy(run: Path) -> str:
    path = run / TRAINING_FILE
    if not path.is_file():
        return "n/a"
    rows = [
        r
        for r in read_records(path, allow_partial_tail=True)
        if r["estimator"] == "val" and r["quantity"] == "acc"
    ]
    if not rows:
        return "n/a"
    last: dict = {}
    for r in rows:
        if r["seed"] not in last or r["epoch"] >= last[r["seed"]]["epoch"]:
            last[r["seed"]] = r
    return spread([r["value"] for r in last.values()])


def report(run: Path, estimator: str, quantity: str) -> None:
    rows = read_records(run / INFORMATION_FILE, allow_partial_tail=True)
    seeds = {r["seed"] for r in rows}
    print(f"{label(run)}  ({len(seeds)} seeds, val acc {final_accuracy(run)})")
    onsets = compression_onsets(rows, estimator, quantity=quantity)
    by_layer: dict[int, list] = defaultdict(list)
    for o in onsets:
        by_layer[o.layer].append(o)
    if not by_layer:
        print(f"  no {estimator} {quantity} rows")
    for layer, group in sorted(by_layer.items()):
        compressing = sum(o.status == "compresses" for o in group)
        print(
            f"  T{layer} {quantity}: peak {spread([o.peak for o in group])}  final "
            f"{spread([o.final for o in group])}  peak−final {spread([o.fall for o in group])}  "
            f"compresses beyond noise: {compressing}/{len(group)}"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("path", type=Path)
    p.add_argument("--estimator", default="sp")
    p.add_argument("--quantity", default="I_XT")
    args = p.parse_args()
    runs = sorted({f.parent for f in args.path.rglob(INFORMATION_FILE)})
    if not runs:
        raise SystemExit(f"study_numbers: no {INFORMATION_FILE} under {args.path}")
    for run in runs:
        report(run, args.estimator, args.quantity)


if __name__ == "__main__":
    main()
