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

from infoflow.report._aggregation import aggregate, compression_table, main_estimator, peak_final
from infoflow.report._cli import PROG, main, report, summarise
from infoflow.report._consistency import (
    check_consistent,
    declared_sweep_keys,
    group_keys,
    group_label,
    group_of,
    swept_keys,
)
from infoflow.report._reading import ReportError, Run, read_run, read_sweep

__all__ = [
    "PROG",
    "ReportError",
    "Run",
    "aggregate",
    "check_consistent",
    "compression_table",
    "declared_sweep_keys",
    "group_keys",
    "group_label",
    "group_of",
    "main",
    "main_estimator",
    "peak_final",
    "read_run",
    "read_sweep",
    "report",
    "summarise",
    "swept_keys",
]
