"""Compare the internal representations of several trained networks on the same inputs.

Goldfeld et al. (2019) trained deterministic, noisy and dropout CNNs on MNIST and compared, with
histograms, the cosine similarities of same-class and different-class representations: the noisy
network behaves like the deterministic one, and the deterministic network clusters too. This module
does that for any finished runs (``python -m infoflow.plot --compare RUN ...``):

* every run's network is rebuilt from its ``config.yaml`` and ``checkpoints/last.ckpt``;
* all of them see the same inputs, the evaluation set of the first run's dataset config, and the
  same seeded sample of ``max_samples`` of it, so every histogram is over the same pairs;
* per hidden layer ℓ the representation is the noiseless S_ℓ (noise and dropout off, as at eval),
  flattened, of the first member — the network's own ``layer_outputs``, as the training callbacks
  measure it; c_ij = ⟨h_i, h_j⟩ / (‖h_i‖‖h_j‖) for every pair i < j, split by whether y_i = y_j.

Outputs (into ``out_dir``): ``cosine_histograms.png`` (rows: layers, columns: runs),
``cosine_over_training.png`` (the within- and between-class mean cosine similarity against epoch,
from the ``clustering`` records of each run's ``information.csv``) and
``cosine_summary.csv`` (tidy: run, label, layer, pairs = within|between, n_pairs, mean, std, median).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from infoflow.estimators import cosine_similarity_distributions
from infoflow.records import write_csv_atomic
from infoflow.runs import FinishedRun, RunLoadError, eval_set, expand_run_dirs, load_run

log = logging.getLogger(__name__)

SUMMARY_FIELDS = ("run", "label", "layer", "pairs", "n_pairs", "mean", "std", "median")


@dataclass(frozen=True)
class LayerSimilarities:
    """Cosine similarities of one layer's representations: same-class and different-class pairs."""

    within: np.ndarray
    between: np.ndarray


def layer_similarities(
    run: FinishedRun, x: torch.Tensor, y: torch.Tensor, *, max_samples: int, seed: int
) -> list[LayerSimilarities]:
    """Within- and between-class cosine similarities of each hidden layer of ``run``'s network;
    the sample of inputs depends only on ``seed`` and ``len(x)``, so it is the same for every run."""
    out = []
    for h in noiseless(run, x):
        gen = torch.Generator().manual_seed(seed)
        w, b = cosine_similarity_distributions(h, y, max_samples=max_samples, generator=gen)
        out.append(LayerSimilarities(w.numpy(), b.numpy()))
    return out


@torch.no_grad()
def noiseless(run: FinishedRun, x: torch.Tensor, chunk: int = 4096) -> list[torch.Tensor]:
    """Every measured layer's noiseless S_ℓ of the run's first member on inputs x, (n, d_ℓ)."""
    k = len(run.net.seeds)
    parts = [
        [
            o.pre_noise[0]
            for o in run.net.layer_outputs(
                x[i : i + chunk].expand(k, *x[i : i + chunk].shape), noise=False
            )
        ]
        for i in range(0, len(x), chunk)
    ]
    return [torch.cat(layer) for layer in zip(*parts, strict=True)]


def _check_same_task(runs: Sequence[FinishedRun]) -> None:
    targets = {str(r.cfg.dataset.get("_target_")) for r in runs}
    if len(targets) > 1:
        raise RunLoadError(f"the runs were trained on different datasets: {sorted(targets)}")


def unique_labels(runs: Sequence[FinishedRun]) -> list[str]:
    """Each run's label, with its folder name added where two runs would share one."""
    labels = [r.label for r in runs]
    return [
        f"{lab} ({r.path.name})" if labels.count(lab) > 1 else lab
        for lab, r in zip(labels, runs, strict=True)
    ]


def summary_rows(
    runs: Sequence[FinishedRun], labels: Sequence[str], sims: Sequence[list[LayerSimilarities]]
) -> list[list]:
    """The tidy summary (:data:`SUMMARY_FIELDS`): one row per run, layer and pair type."""
    rows = []
    for run, label, layers in zip(runs, labels, sims, strict=True):
        for k, s in enumerate(layers, start=1):
            for pairs, c in (("within", s.within), ("between", s.between)):
                stats = (c.mean(), c.std(), np.median(c)) if len(c) else (np.nan,) * 3
                rows.append([str(run.path), label, k, pairs, len(c), *map(float, stats)])
    return rows


def default_out_dir(inputs: Sequence[str | os.PathLike], run_dirs: Sequence[Path]) -> Path:
    """``<sweep>/compare`` for one sweep folder, else ``compare`` beside the runs' common parent."""
    if len(inputs) == 1 and Path(inputs[0]).resolve() != run_dirs[0].resolve():
        return Path(inputs[0]) / "compare"
    common = Path(os.path.commonpath([p.resolve() for p in run_dirs]))
    return (common if common not in run_dirs else common.parent) / "compare"


def compare_runs(
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike | None = None,
    *,
    max_samples: int = 1000,
    seed: int = 0,
    data_dir: str | None = None,
) -> list[Path]:
    """Load the runs (run folders, or sweep folders standing for their runs), compare their
    representations and write the figures and the summary; returns the written paths."""
    from infoflow.plots import compare_figures  # matplotlib only when drawing

    run_dirs = expand_run_dirs(list(inputs))
    runs = [load_run(p) for p in run_dirs]
    _check_same_task(runs)
    x, y = eval_set(runs[0].cfg, data_dir)
    log.info(
        "comparing %d runs on %d evaluation inputs (sample of %d)", len(runs), len(x), max_samples
    )
    sims = [layer_similarities(r, x, y, max_samples=max_samples, seed=seed) for r in runs]
    labels = unique_labels(runs)
    out = Path(out_dir) if out_dir is not None else default_out_dir(inputs, run_dirs)
    out.mkdir(parents=True, exist_ok=True)
    rows = summary_rows(runs, labels, sims)
    written = [write_csv_atomic(out / "cosine_summary.csv", SUMMARY_FIELDS, rows)]
    written += compare_figures(out, labels, sims, [r.path for r in runs])
    return written
