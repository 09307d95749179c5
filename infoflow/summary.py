"""A run's result in a few lines, from its tidy records only (``information.csv``,
``training.csv``): per hidden layer the final and peak I(X;T_ℓ), the final accuracies.

:func:`summarise` is pure (rows in, :class:`RunSummary` out); :func:`format_summary` writes the lines
the terminal shows at the end of a run, :func:`wandb_summary` the keys of the W&B run summary, and
:func:`read_summary` reads a run directory's records. With several seeds in the records (an
ensemble), every number is the mean over seeds with its min–max range.

>>> info = [
...     {"seed": 0, "epoch": e, "layer": 1, "estimator": "sp", "quantity": "I_XT", "value": v}
...     for e, v in [(0, 2.0), (10, 3.0), (30, 2.5)]
... ]
>>> train = [{"seed": 0, "epoch": 30, "layer": None, "estimator": "val", "quantity": "acc",
...           "value": 0.9}]
>>> print(format_summary(summarise(info, train), "outputs/run", wall_s=12.3))
Summary: 30 epochs, seed 0, 12.3 s
  I(X;T_l) in nats, SP estimator:
    layer   final   peak (epoch)
    T1      2.500   3.000 (10)
  accuracy: val 0.900
Run directory: outputs/run
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infoflow.records import INFORMATION_FILE, TRAINING_FILE, preferred_estimator, read_records


@dataclass(frozen=True)
class Spread:
    """A value over seeds: mean, min, max and how many seeds gave one."""

    mean: float
    lo: float
    hi: float
    n: int

    @classmethod
    def of(cls, values: Iterable[float]) -> Spread:
        vals = [float(v) for v in values]
        return cls(sum(vals) / len(vals), min(vals), max(vals), len(vals))

    def text(self, digits: int = 3) -> str:
        """``4.460`` for one seed, ``4.460 [4.400–4.520]`` (mean [min–max]) for several."""
        mean = f"{self.mean:.{digits}f}"
        return mean if self.n == 1 else f"{mean} [{self.lo:.{digits}f}–{self.hi:.{digits}f}]"


@dataclass(frozen=True)
class LayerSummary:
    """I(X;T_ℓ) of one hidden layer (nats): at each seed's last measured epoch, and at its peak."""

    layer: int
    final: Spread
    peak: Spread
    peak_epochs: tuple[int, int]  # the earliest and latest epoch of the seeds' peaks


@dataclass(frozen=True)
class RunSummary:
    estimator: str | None  # whose I(X;T) the layers show; None: no I(X;T) in the records
    layers: tuple[LayerSummary, ...]
    accuracy: dict[str, Spread]  # final accuracy per split (train, val, ...)
    last_epoch: int | None
    seeds: tuple[int | None, ...]


def pick_estimator(rows: Iterable[Mapping[str, Any]]) -> str | None:
    """``sp`` if the records hold its I(X;T); else the first noiseless binned estimator, the first
    noisy binned one, the first other one with I(X;T) (e.g. ``kde_upper``); else None."""
    have = sorted({r["estimator"] for r in rows if r["quantity"] == "I_XT" and _finite(r["value"])})
    return preferred_estimator(have)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _layers(rows: Sequence[Mapping[str, Any]], estimator: str) -> tuple[LayerSummary, ...]:
    series: dict[int, dict[Any, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        if r["estimator"] == estimator and r["quantity"] == "I_XT" and _finite(r["value"]):
            series[r["layer"]][r.get("seed")][r["epoch"]] = r["value"]
    out = []
    for layer in sorted(series):
        finals, peaks, epochs = [], [], []
        for points in series[layer].values():
            finals.append(points[max(points)])
            epoch, peak = max(sorted(points.items()), key=lambda p: p[1])  # earliest of equal
            peaks.append(peak)
            epochs.append(epoch)
        out.append(
            LayerSummary(layer, Spread.of(finals), Spread.of(peaks), (min(epochs), max(epochs)))
        )
    return tuple(out)


def _accuracy(rows: Sequence[Mapping[str, Any]]) -> dict[str, Spread]:
    series: dict[str, dict[Any, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        if r["quantity"] == "acc" and r["layer"] is None and _finite(r["value"]):
            series[r["estimator"]][r.get("seed")][r["epoch"]] = r["value"]
    order = sorted(series, key=lambda s: ({"train": 0, "val": 1}.get(s, 2), s))
    return {s: Spread.of(p[max(p)] for p in series[s].values()) for s in order}


def summarise(
    information: Sequence[Mapping[str, Any]], training: Sequence[Mapping[str, Any]]
) -> RunSummary:
    """The summary of a run's records (rows as :func:`infoflow.records.read_records` gives them).

    I(X;T_ℓ) is the estimator's of :func:`pick_estimator`; "final" is each seed's value at its
    last measured epoch, "peak" its largest (the earliest epoch of a tie). Accuracies are the
    ``acc`` rows of ``training.csv`` at each seed's last epoch. NaN values are left out.
    """
    estimator = pick_estimator(information)
    layers = _layers(information, estimator) if estimator is not None else ()
    rows = [*information, *training]
    epochs = [r["epoch"] for r in rows]
    seeds = tuple(sorted({r.get("seed") for r in rows}, key=lambda s: (s is None, s or 0)))
    return RunSummary(
        estimator=estimator,
        layers=layers,
        accuracy=_accuracy(training),
        last_epoch=max(epochs) if epochs else None,
        seeds=seeds,
    )


def format_duration(seconds: float) -> str:
    """``12.3 s``, ``3 min 8 s``, ``1 h 02 min``.

    >>> format_duration(188.4), format_duration(3725)
    ('3 min 8 s', '1 h 02 min')
    """
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def _estimator_words(name: str) -> str:
    if name == "sp":
        return "SP estimator"
    if name == "exact":
        return "exact (quantized layers)"
    if name.startswith("bin"):
        return f"binned estimator {name} (no SP estimate: β = 0 or SP off)"
    return f"estimator {name} (no SP or binned estimate)"


def _seed_words(seeds: Sequence[int | None]) -> str:
    known = [s for s in seeds if s is not None]
    if len(known) == 1:
        return f"seed {known[0]}"
    if not known:
        return "seed unknown"
    return f"{len(known)} seeds, mean [min–max]"


def format_summary(
    summary: RunSummary,
    run_dir: str | Path,
    wall_s: float | None = None,
    notes: Sequence[str] = (),
) -> str:
    """The lines printed at the end of a run; ``notes`` (e.g. where the W&B run is) come just
    before the last line, which names the run directory."""
    head = [f"{summary.last_epoch} epochs" if summary.last_epoch is not None else "no records"]
    if summary.seeds:
        head.append(_seed_words(summary.seeds))
    if wall_s is not None:
        head.append(format_duration(wall_s))
    lines = ["Summary: " + ", ".join(head)]
    if summary.layers:
        lines.append(f"  I(X;T_l) in nats, {_estimator_words(summary.estimator or '')}:")
        finals = [layer.final.text() for layer in summary.layers]
        width = max(5, *(len(f) for f in finals))
        lines.append(f"    layer   {'final':<{width}}   peak (epoch)")
        for layer, final in zip(summary.layers, finals, strict=True):
            lo, hi = layer.peak_epochs
            epoch = f"{lo}" if lo == hi else f"epochs {lo}–{hi}"
            lines.append(f"    T{layer.layer:<6} {final:<{width}}   {layer.peak.text()} ({epoch})")
    else:
        lines.append("  I(X;T_l): none in the records")
    if summary.accuracy:
        acc = ", ".join(f"{s} {v.text()}" for s, v in summary.accuracy.items())
        lines.append(f"  accuracy: {acc}")
    lines.extend(f"  {note}" for note in notes)
    lines.append(f"Run directory: {run_dir}")
    return "\n".join(lines)


def wandb_summary(summary: RunSummary) -> dict[str, float | int | str]:
    """Keys for the W&B run summary: ``final/<split>_acc``, ``final/I_XT/layer<ℓ>`` and
    ``peak/I_XT/layer<ℓ>`` (nats; the mean over seeds, with ``/min`` and ``/max`` when there are
    several), ``peak/epoch/layer<ℓ>`` (the earliest seed's), ``final/I_XT_estimator``,
    ``final/epoch``.

    >>> s = RunSummary("sp", (LayerSummary(2, Spread(1, 1, 1, 1), Spread(2, 2, 2, 1), (5, 5)),),
    ...                {"val": Spread(0.9, 0.9, 0.9, 1)}, 30, (0,))
    >>> wandb_summary(s)  # doctest: +NORMALIZE_WHITESPACE
    {'final/epoch': 30, 'final/val_acc': 0.9, 'final/I_XT_estimator': 'sp',
     'final/I_XT/layer2': 1, 'peak/I_XT/layer2': 2, 'peak/epoch/layer2': 5}
    """
    out: dict[str, float | int | str] = {}
    if summary.last_epoch is not None:
        out["final/epoch"] = summary.last_epoch

    def put(key: str, spread: Spread) -> None:
        out[key] = spread.mean
        if spread.n > 1:
            out[f"{key}/min"], out[f"{key}/max"] = spread.lo, spread.hi

    for split, acc in summary.accuracy.items():
        put(f"final/{split}_acc", acc)
    if summary.estimator is not None:
        out["final/I_XT_estimator"] = summary.estimator
    for layer in summary.layers:
        put(f"final/I_XT/layer{layer.layer}", layer.final)
        put(f"peak/I_XT/layer{layer.layer}", layer.peak)
        out[f"peak/epoch/layer{layer.layer}"] = layer.peak_epochs[0]
    return out


def read_summary(run_dir: str | Path) -> RunSummary:
    """:func:`summarise` of a run directory's ``information.csv`` and ``training.csv`` (a missing
    file counts as no rows; a partial last row, left by an interrupted writer, is skipped).

    Raises:
        infoflow.records.RecordError: a record file that cannot be read.
    """
    run_dir = Path(run_dir)

    def rows(name: str) -> list[dict[str, Any]]:
        path = run_dir / name
        return read_records(path, allow_partial_tail=True) if path.is_file() else []

    return summarise(rows(INFORMATION_FILE), rows(TRAINING_FILE))
