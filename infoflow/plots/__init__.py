"""Figures of a run, drawn from its tidy records only (``python -m infoflow.plot RUN_DIR``).

:func:`draw_all` reads a run directory and writes every figure it has data for into
``RUN_DIR/plots/`` (PNG, written atomically). Each ``*_figure`` function takes already-parsed
data (see :mod:`infoflow.plots.data`) and returns a :class:`matplotlib.figure.Figure`;
:func:`save_figure` writes it. No pyplot, no global state: safe in a training process.

Figures (file names):

* ``information_plane_<estimator>.png`` (``:`` in the estimator's name becomes ``_``)
* ``information_vs_epoch.png``, ``binned_vs_epoch.png``
* ``histograms.png``
* ``scatter_layer<k>.png`` for layers with ≤ 3 units in ``snapshots/``
* ``gradients.png``, ``clustering.png`` (the ``gradients`` / ``clustering`` rows of information.csv);
  ``gradients.png`` marks SNR = 1 and each layer's drift → diffusion transition, which the
  information planes ring in green (:func:`infoflow.analysis.snr_transitions`)
* ``final_weights.png`` (``weights.npz``: an ensemble's final weights, K ≥ 2 members)
* ``phases.csv``: per layer, across seeds, the epoch of the drift → diffusion transition (gradient
  SNR below 1 for good), of the compression onset and of the end of fitting
  (:func:`infoflow.analysis.phase_table`)

Inputs: ``information.csv`` and ``training.csv`` (:mod:`infoflow.records`), ``histograms.csv``,
``ib_curve.csv``, ``snapshots/``, ``weights.npz``, ``config.yaml`` — never a logger's files, so dropping W&B or the
CSV logger changes no figure.

Several runs compared (:mod:`infoflow.compare`, :func:`compare_figures`): ``cosine_histograms.png``,
``cosine_over_training.png``.

Several seeds (an ensemble run: every row carries its member's seed): every line is the mean across
seeds with a ± sd band and the members drawn faintly behind; the information plane draws the mean
trajectory per layer. One seed: the recorded values, with SP's ± stderr bands.

Ceilings: where information.csv holds ``ceiling`` rows (I_XT: the entropy of the inputs SP
measured; I_TY: their H(Y)), the SP figures draw them as dashed lines; else H(X) and I(X;Y) of the
task where known (SZT). Every reference line is drawn above the curves, each in its own style
(:data:`infoflow.plots._common.REFERENCE_STYLES`). Layers whose curves coincide are said to
(``T1 = T2 at the ceiling``). An information panel spans at least a few standard errors
(:func:`infoflow.plots._common.noise_span`: 6 SE, at least 0.02 nats; 0.1 nats where none is
recorded), so noise never fills it.

Conventions: information in bits by default (``units="nats"``, or ``callbacks.plots.units`` in the run's
config.yaml); epochs on a *symlog* axis (linear on [0, 1], logarithmic beyond) and epoch colours on
the matching symlog scale, so that epoch 0 keeps its place; negative estimates drawn as they are.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from matplotlib.figure import Figure

from infoflow.plots._common import check_units, save_figure
from infoflow.plots.compare import (
    compare_figures,
    cosine_histograms_figure,
    similarity_over_training_figure,
)
from infoflow.plots.data import (
    WEIGHTS_FILE,
    PlotInputError,
    config_units,
    estimators_with,
    is_szt,
    label_entropy,
    load_config,
    load_histograms,
    load_ib_curve,
    load_information,
    load_records,
    load_snapshot,
    load_weights,
    odd_activation,
    snapshot_epochs,
    szt_references,
)
from infoflow.plots.dynamics import (
    cluster_measures,
    clustering_figure,
    gradient_layers,
    gradients_figure,
)
from infoflow.plots.epochs import (
    binned_estimators,
    binned_vs_epoch_figure,
    has_loss,
    information_vs_epoch_figure,
    main_estimator,
)
from infoflow.plots.histograms import histograms_figure
from infoflow.plots.plane import information_plane_figure
from infoflow.plots.scatter import MAX_UNITS, pick_epochs, scatter_figure
from infoflow.plots.weights import final_accuracy, final_weights_figure
from infoflow.records import HISTOGRAM_FILE, IB_CURVE_FILE, INFORMATION_FILE, TRAINING_FILE
from infoflow.stopping import safe_point

__all__ = [
    "PlotInputError",
    "binned_vs_epoch_figure",
    "clustering_figure",
    "compare_figures",
    "cosine_histograms_figure",
    "draw_all",
    "final_weights_figure",
    "gradients_figure",
    "histograms_figure",
    "information_plane_figure",
    "information_vs_epoch_figure",
    "plane_filename",
    "resolve_units",
    "save_figure",
    "scatter_figure",
    "similarity_over_training_figure",
]

log = logging.getLogger(__name__)

Job = tuple[str, Callable[[], Figure]]


def plane_filename(estimator: str) -> str:
    """``information_plane_<estimator>.png`` with characters unsafe in file names as ``_``."""
    return f"information_plane_{re.sub(r'[^A-Za-z0-9.+-]+', '_', estimator)}.png"


def _if_there(path: Path, loader: Callable):
    """``loader(path)``, or None when the file is missing (debug log). A file that is there but
    cannot be read raises PlotInputError: a damaged record is an error, not an absence."""
    if not path.exists():
        log.debug("no %s: skipping its figures", path.name)
        return None
    return loader(path)


def _snapshots(run: Path) -> dict[int, dict]:
    """The (≤ 6, log-spaced) snapshots the scatter figures show, loaded."""
    files = snapshot_epochs(run / "snapshots")
    out = {}
    for e in pick_epochs(list(files)):
        try:
            out[e] = load_snapshot(files[e])
        except Exception as exc:  # e.g. a file still being written: BadZipFile, EOFError
            log.warning("skipping unreadable snapshot %s: %s", files[e], exc)
    return out


def _scatter_layers(snaps: Mapping[int, Mapping]) -> list[int]:
    layers = set()
    for snap in snaps.values():
        for key, arr in snap.items():
            m = re.fullmatch(r"layer_(\d+)", key)
            if m and (arr.ndim == 1 or (arr.ndim == 2 and arr.shape[1] <= MAX_UNITS)):
                layers.add(int(m.group(1)))
    return sorted(layers)


def _references(cfg: Mapping, snaps: Mapping[int, Mapping]) -> tuple[float | None, float | None]:
    """(H(X), I(X;Y)) in nats: exact for SZT; else I(X;Y) = H(labels of a snapshot), if any."""
    if is_szt(cfg):
        return szt_references()
    for snap in snaps.values():
        if "labels" in snap:
            return None, label_entropy(snap["labels"])
    return None, None


def _jobs(run: Path, cfg: Mapping, units: str, rows: list[dict]) -> list[Job]:
    """(file name, figure builder) of every figure the run has data for (``rows``: its
    information.csv)."""
    training = _if_there(run / TRAINING_FILE, load_records)
    hist = _if_there(run / HISTOGRAM_FILE, load_histograms)
    ib = _if_there(run / IB_CURVE_FILE, load_ib_curve)
    snaps = _snapshots(run)
    h_x, i_xy = _references(cfg, snaps)
    jobs: list[Job] = []
    planes = estimators_with(rows, "I_XT", "I_TY")
    for est in planes:
        kw = dict(units=units, h_x=h_x, i_xy=i_xy, ib_curve=ib)
        jobs.append(
            (plane_filename(est), lambda e=est, kw=kw: information_plane_figure(rows, e, **kw))
        )
    if main_estimator(rows) or has_loss(training):
        kw = dict(units=units, h_x=h_x, i_xy=i_xy)
        jobs.append(
            ("information_vs_epoch.png", lambda: information_vs_epoch_figure(rows, training, **kw))
        )
    if binned_estimators(rows):
        jobs.append(
            ("binned_vs_epoch.png",
             lambda: binned_vs_epoch_figure(rows, units=units, h_x=h_x))
        )  # fmt: skip
    if hist:
        jobs.append(("histograms.png", lambda: histograms_figure(hist)))
    for k in _scatter_layers(snaps):
        jobs.append((f"scatter_layer{k}.png", lambda k=k: scatter_figure(snaps, k)))
    if gradient_layers(rows):
        jobs.append(("gradients.png", lambda: gradients_figure(rows)))
    if cluster_measures(rows):
        jobs.append(("clustering.png", lambda: clustering_figure(rows)))
    try:
        weights = _if_there(run / WEIGHTS_FILE, load_weights)
    except PlotInputError as exc:  # not a record: the other figures go on without it
        log.warning("no final_weights.png: %s", exc)
        weights = None
    if weights is not None and len(weights[0]) >= 2 and weights[1]:
        acc = final_accuracy(training or [])
        jobs.append(
            ("final_weights.png",
             lambda: final_weights_figure(*weights, accuracy=acc, odd=odd_activation(cfg)))
        )  # fmt: skip
    return jobs


PHASES_FILE = "phases.csv"
PHASE_COLUMNS = ("measure", "layer", "n", "n_seeds", "mean", "median", "min", "max")


def write_phases(run_dir: str | os.PathLike, rows: list[dict] | None = None) -> Path | None:
    """``run_dir/plots/phases.csv``: :func:`infoflow.analysis.phase_table` of ``rows`` (default:
    the run's information.csv) for the estimator the figures prefer; None, writing nothing, when
    there is nothing to tabulate."""
    from infoflow.analysis import phase_table
    from infoflow.records import write_csv_atomic

    run = Path(run_dir)
    if rows is None:
        rows = _if_there(run / INFORMATION_FILE, load_information) or []
    table = phase_table(rows, main_estimator(rows))
    if not table:
        return None
    lines = ([r[c] for c in PHASE_COLUMNS] for r in table)
    return write_csv_atomic(run / "plots" / PHASES_FILE, PHASE_COLUMNS, lines)


def resolve_units(units: str | None, cfg: Mapping) -> str:
    """``units``, else ``callbacks.plots.units`` of the config, else ``bits``; ValueError if invalid."""
    return check_units(units or config_units(cfg) or "bits")


def draw_all(
    run_dir: str | os.PathLike, *, units: str | None = None, strict: bool = False
) -> list[Path]:
    """Draw every figure ``run_dir`` has data for into ``run_dir/plots/``, and ``phases.csv``
    beside them; return their paths.

    Args:
        run_dir: a run directory (information.csv, training.csv, histograms.csv, ib_curve.csv,
            snapshots/, config.yaml — each optional).
        units: ``"bits"`` or ``"nats"``; None: ``callbacks.plots.units`` of config.yaml, else bits.
        strict: re-raise an error met while drawing a figure (default: log a warning, go on).

    Raises:
        PlotInputError: ``run_dir`` is not a directory, or one of its record files cannot be
            read (the message names the file and row).
        ValueError: invalid ``units``.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise PlotInputError(f"{run_dir}: not a run directory (no such folder)")
    cfg = load_config(run / "config.yaml")
    units = resolve_units(units, cfg)
    rows = _if_there(run / INFORMATION_FILE, load_information) or []
    jobs: list[tuple[str, Callable[[], Path | None]]] = [
        (name, lambda b=build, n=name: save_figure(b(), run / "plots" / n))
        for name, build in _jobs(run, cfg, units, rows)
    ]
    jobs.append((PHASES_FILE, lambda: write_phases(run, rows)))
    written = []
    for name, write in jobs:
        safe_point()  # a stop signal ends the drawing between figures
        try:
            path = write()
        except Exception as exc:
            if strict:
                raise
            log.warning("could not write %s: %s: %s", name, type(exc).__name__, exc)
            continue
        if path is not None:
            written.append(path)
    return written
