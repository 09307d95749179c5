"""`python -m infoflow.report SWEEP_DIR`: one table and figures for all runs of a sweep.

Reads every job directory under SWEEP_DIR (a Hydra multirun folder): its records
(``information.csv``, ``training.csv``: :mod:`infoflow.records`), resolved ``config.yaml``,
``.hydra/overrides.yaml`` and ``status.json`` — never a logger's files. Writes

* ``SWEEP_DIR/sweep.csv``: every run's information rows (the record schema: seed, epoch, layer,
  estimator, quantity, value, stderr; nats) after a ``run`` column (the job's folder) and one
  column per swept key but the seed;
* ``SWEEP_DIR/report/``: ``runs.csv`` (status, error, last epoch and the final losses and
  accuracies of each run's training record),
  ``curves.csv`` (mean, std, median across seeds per group, estimator, quantity, layer, epoch),
  ``compression.csv`` (peak, final and peak − final of I(X;T_ℓ) across seeds), ``phases.csv``
  (per group and layer: the drift → diffusion transition beside the compression onset and the
  end of fitting, :func:`infoflow.analysis.phase_table`) and the PNGs of
  :mod:`infoflow.plots.sweep`; where a list of widths is swept (``model.hidden=[10],[10,7],…``,
  the depth study), ``depth.csv`` and ``depth_planes.png`` (one information plane per depth);
* one more W&B run, ``aggregate``, in the sweep's group (mode from WANDB_MODE, default offline;
  ``--no-wandb`` skips it), with the figures and tables; as quiet as a run (offline: no banner,
  the report's own line names the folder ``wandb sync`` uploads).

Every file is written atomically, and nothing is written into a job's directory.

**Swept keys** are the command-line overrides (``.hydra/overrides.yaml``) whose values are not the
same in every run; ``seed`` among them is the replicate, the others define the *groups* that
figures compare, in order: numbers by value, lists of numbers by length (depth), then text. A sweep that is still running or partly failed is reported from what is there:
failed runs are named with their error, runs without records are listed as missing.

**Bad input** (one line on stderr, exit status 1): SWEEP_DIR missing, a run directory rather than
a sweep, or holding no runs; a record file that cannot be read (named with its row); two runs with the same
swept values (e.g. two sweeps in one folder); runs that differ only in their seed but whose
resolved configs disagree on another key (paths, logger names and copies of the seed aside): such
runs are not replicates of one setting (a default changed between them, or another code version).

Modules: ``_reading`` (job directories), ``_consistency`` (swept keys, groups, replicate checks),
``_aggregation`` (across seeds), ``_phases`` (transitions, onsets, the depth table), ``_tables``,
``_figures``, ``_wandb``, ``_cli``.
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
