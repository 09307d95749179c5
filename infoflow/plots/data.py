"""Read a run directory's records into the plain structures the figure functions take.

Only infoflow's own records are read (:mod:`infoflow.records`), never a logger's files:

* record rows: the dicts of :func:`infoflow.records.read_records`
  (seed, epoch, layer, estimator, quantity, value, stderr; nats).
* wide tables: ``dict[name, np.ndarray]`` by epoch (``"epoch"`` sorted, NaN where missing), names
  as the loggers show them (``train/loss``, ``grad/layer1/snr``): :func:`wide`.
* histogram rows: dicts with seed, epoch, layer, representation, bin_lo, bin_hi, count.
* snapshots: ``{epoch: {"labels": (n,), "layer_<k>": (n, d)}}``.
* the IB curve: ``(i_xt, i_ty)`` in nats from ``ib_curve.csv``.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from infoflow.records import (
    HISTOGRAM_COLUMNS,
    IB_CURVE_COLUMNS,
    RECORD_COLUMNS,
    RecordError,
    metric_name,
    read_records,
)

log = logging.getLogger(__name__)

SZT_INPUTS = 4096
SZT_POSITIVES = 2118
_SNAPSHOT = re.compile(r"^epoch_(\d+)\.npz$")


class PlotInputError(ValueError):
    """A run directory or one of its files that cannot be read (one-line message)."""


class Series(NamedTuple):
    """One layer's values of one (estimator, quantity) against epoch, sorted by epoch; nats."""

    epoch: np.ndarray
    value: np.ndarray
    stderr: np.ndarray


def load_records(path: str | os.PathLike, columns: Sequence[str] = RECORD_COLUMNS) -> list[dict]:
    """A record file as typed rows; PlotInputError (one line: file and row) if it cannot be read."""
    try:
        return read_records(path, columns)
    except RecordError as exc:
        raise PlotInputError(str(exc)) from exc
    except OSError as exc:
        raise PlotInputError(f"cannot read {path}: {exc.strerror or exc}") from exc


def load_information(path: str | os.PathLike) -> list[dict]:
    """``information.csv`` as typed rows (:func:`load_records`)."""
    return load_records(path)


def wide(rows: Sequence[Mapping], estimators: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Record rows (of ``estimators``, default all) as columns by epoch, named as the loggers name
    them (:func:`infoflow.records.metric_name`): ``{"epoch": sorted epochs, name: values}``, the
    mean where seeds repeat an epoch, NaN where a name has no value."""
    cells: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    epochs: set[int] = set()
    for r in rows:
        if estimators is None or r["estimator"] in estimators:
            epochs.add(r["epoch"])
            cells[metric_name(r)][r["epoch"]].append(r["value"])
    order = sorted(epochs)
    out = {"epoch": np.array(order, dtype=np.int64)}
    for name, by_epoch in cells.items():
        out[name] = np.array([np.mean(by_epoch[e]) if e in by_epoch else np.nan for e in order])
    return out


def load_training(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``training.csv`` as columns by epoch (``train/loss``, ``val/acc``, ...): :func:`wide`."""
    return wide(load_records(path))


def load_ib_curve(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``ib_curve.csv`` (written at the start of a run from its evaluation set's p(x, y)):
    ``(i_xt, i_ty)`` in nats, sorted by I(X;T)."""
    rows = load_records(path, IB_CURVE_COLUMNS)
    return np.array([r["i_xt"] for r in rows]), np.array([r["i_ty"] for r in rows])


def bin_size(estimator: str) -> float:
    """The size in a binned estimator's name (``bin:width:0.05`` → 0.05; ``bin:tishby:30`` → 30),
    +inf where the name has none: a sort key that puts sizes in order."""
    try:
        return float(estimator.rsplit(":", 1)[-1])
    except ValueError:
        return float("inf")


def estimators_with(rows: Sequence[Mapping], *quantities: str) -> list[str]:
    """Estimators (in order of first appearance) that have rows for every one of ``quantities``."""
    seen: dict[str, set[str]] = {}
    for r in rows:
        seen.setdefault(r["estimator"], set()).add(r["quantity"])
    return [est for est, qs in seen.items() if set(quantities) <= qs and est != CEILING]


def members(
    rows: Sequence[Mapping], estimator: str, quantity: str
) -> dict[int | None, dict[Any, Series]]:
    """``{layer: {seed: Series}}`` of one estimator and quantity; ``layer`` None for values of the
    whole network (losses, ceilings). The last row wins where a seed repeats an epoch."""
    cells: dict[int | None, dict[Any, dict[int, tuple[float, float]]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    for r in rows:
        if r["estimator"] == estimator and r["quantity"] == quantity:
            layer = None if r["layer"] is None else int(r["layer"])
            cells[layer][r.get("seed")][int(r["epoch"])] = (r["value"], r["stderr"])
    out: dict[int | None, dict[Any, Series]] = {}
    for layer in sorted(cells, key=lambda k: -1 if k is None else k):
        out[layer] = {}
        for seed in sorted(cells[layer], key=lambda s: (s is None, str(s))):
            pts = sorted(cells[layer][seed].items())
            out[layer][seed] = Series(
                epoch=np.array([e for e, _ in pts], dtype=np.int64),
                value=np.array([v for _, (v, _) in pts], dtype=float),
                stderr=np.array([s for _, (_, s) in pts], dtype=float),
            )
    return out


class Spread(NamedTuple):
    """Statistics across seeds at each epoch (the union of the members' epochs); nats."""

    epoch: np.ndarray
    n: np.ndarray  # seeds with a finite value at the epoch
    mean: np.ndarray
    sd: np.ndarray  # sample standard deviation (ddof = 1); NaN where n < 2


def spread(by_seed: Mapping[Any, Series]) -> Spread:
    """Mean ± sd across the members of :func:`members` (one layer), epoch by epoch."""
    epochs = np.unique(np.concatenate([s.epoch for s in by_seed.values()] or [np.zeros(0)]))
    table = np.full((len(by_seed), len(epochs)), np.nan)
    for i, s in enumerate(by_seed.values()):
        table[i, np.searchsorted(epochs, s.epoch)] = s.value
    ok = np.isfinite(table)
    n = ok.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.nansum(table, axis=0) / np.maximum(n, 1), np.nan)
        dev = np.where(ok, table - mean, 0.0)
        sd = np.where(n > 1, np.sqrt((dev**2).sum(axis=0) / np.maximum(n - 1, 1)), np.nan)
    return Spread(epochs.astype(np.int64), n, mean, sd)


def series(rows: Sequence[Mapping], estimator: str, quantity: str) -> dict[int | None, Series]:
    """``{layer: Series}`` of one estimator and quantity: a single seed's values and standard
    errors as recorded; with several seeds, their mean with the sd across seeds as ``stderr``."""
    out = {}
    for layer, by_seed in members(rows, estimator, quantity).items():
        if len(by_seed) == 1:
            out[layer] = next(iter(by_seed.values()))
        else:
            s = spread(by_seed)
            out[layer] = Series(s.epoch, s.mean, s.sd)
    return out


#: The estimator of the ceiling rows: the information callback's bounds on what SP can measure,
#: ``I_XT`` = the entropy of the inputs measured and ``I_TY`` = H(Y) of those inputs (nats).
CEILING = "ceiling"
#: Estimators measured on the inputs the ceiling rows describe (the information callback's).
CEILED = ("sp",)


def ceilings(rows: Sequence[Mapping]) -> dict[str, Series]:
    """``{"I_XT" | "I_TY": Series}`` of the ceiling rows (mean across seeds at each epoch; the
    ``stderr`` field holds the sd across seeds, NaN with one seed); empty in records without."""
    out = {}
    for q in ("I_XT", "I_TY"):
        by_seed = members(rows, CEILING, q).get(None)
        if by_seed:
            s = spread(by_seed)
            out[q] = Series(s.epoch, s.mean, s.sd)
    return out


def seeds(rows: Sequence[Mapping]) -> list:
    """The distinct seeds of ``rows`` (None for records written before rows had seeds)."""
    return sorted({r.get("seed") for r in rows}, key=lambda s: (s is None, str(s)))


def load_histograms(path: str | os.PathLike) -> list[dict[str, Any]]:
    """``histograms.csv`` rows with typed fields (:func:`load_records`)."""
    return load_records(path, HISTOGRAM_COLUMNS)


def snapshot_epochs(snap_dir: str | os.PathLike) -> dict[int, Path]:
    """``{epoch: path}`` of the ``epoch_XXXXXX.npz`` files in ``snap_dir`` (empty if none)."""
    snap_dir = Path(snap_dir)
    if not snap_dir.is_dir():
        return {}
    found = {}
    for p in snap_dir.iterdir():
        m = _SNAPSHOT.match(p.name)
        if m:
            found[int(m.group(1))] = p
    return dict(sorted(found.items()))


def load_snapshot(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Arrays of one snapshot file (``labels``, ``layer_<k>``)."""
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


#: The ensemble's final weights, written by a run at the end of training.
WEIGHTS_FILE = "weights.npz"
_WEIGHT_LAYER = re.compile(r"^layer_(\d+)$")


def load_weights(path: str | os.PathLike) -> tuple[np.ndarray, list[np.ndarray]]:
    """``weights.npz``: ``(seeds (K,), [layer_1, ..., layer_L])``, each layer ``(K, out, in)``
    (hidden layers, then the read-out; a convolution's kernels flattened to ``in·kh·kw``).

    Raises:
        PlotInputError: one line naming the file: unreadable, no ``seeds``, layers not numbered
            1..L, or a layer that is not ``(K, out, in)`` with the K of ``seeds``.
    """
    try:
        with np.load(path) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as exc:  # BadZipFile, OSError, ValueError (pickled objects): all unreadable
        raise PlotInputError(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc
    seeds = arrays.pop("seeds", None)
    if seeds is None or seeds.ndim != 1:
        raise PlotInputError(f"{path}: no 1-D array 'seeds' (have: {', '.join(sorted(arrays))})")
    numbers = sorted(int(m.group(1)) for k in arrays if (m := _WEIGHT_LAYER.match(k)))
    if numbers != list(range(1, len(numbers) + 1)):
        raise PlotInputError(f"{path}: layers must be layer_1 … layer_L, got {numbers}")
    layers = [arrays[f"layer_{k}"] for k in numbers]
    for k, w in enumerate(layers, start=1):
        if w.ndim != 3 or w.shape[0] != len(seeds):
            raise PlotInputError(
                f"{path}: layer_{k} has shape {w.shape}, expected ({len(seeds)}, out, in)"
            )
    return seeds, layers


def odd_activation(cfg: Mapping) -> bool:
    """Whether the run's ``model.activation`` is odd (tanh, linear): a hidden unit and its
    negative then compute the same function up to a sign. False when the config does not say."""
    model = cfg.get("model")
    activation = model.get("activation") if isinstance(model, Mapping) else None
    return str(activation).lower() in ("tanh", "linear")


def load_config(path: str | os.PathLike) -> dict:
    """The run's resolved ``config.yaml`` as a dict; {} if missing or unreadable (logged)."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        import yaml

        cfg = yaml.safe_load(path.read_text())
    except Exception as exc:  # any YAML or I/O error: plots still work without the config
        log.warning("ignoring unreadable %s: %s", path, exc)
        return {}
    return cfg if isinstance(cfg, dict) else {}


def config_units(cfg: Mapping) -> str | None:
    """``callbacks.plots.units`` from the run's config, if set."""
    callbacks = cfg.get("callbacks")
    plots = callbacks.get("plots") if isinstance(callbacks, Mapping) else None
    return plots.get("units") if isinstance(plots, Mapping) else None


def is_szt(cfg: Mapping) -> bool:
    """Whether the run's dataset is the SZT task (``dataset._target_`` names it)."""
    dataset = cfg.get("dataset")
    target = dataset.get("_target_", "") if isinstance(dataset, Mapping) else ""
    return "szt" in str(target).lower()


def label_entropy(labels: np.ndarray) -> float:
    """Entropy of the empirical label distribution, nats (= I(X;Y) for labels that are f(X))."""
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def szt_references() -> tuple[float, float]:
    """(H(X), I(X;Y)) of the SZT task in nats: ln 4096 and H(Y) with 2118 positives."""
    p = SZT_POSITIVES / SZT_INPUTS
    return math.log(SZT_INPUTS), float(-(p * math.log(p) + (1 - p) * math.log(1 - p)))
