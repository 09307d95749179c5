"""What the figures draw for the issue's complaints, read from matplotlib's objects (line data,
texts, limits, z-order), not pixels: the drift → diffusion transition, ceilings above the curves,
layers that coincide, a noise floor on every information panel, and the final weights."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from infoflow.plots import draw_all, gradients_figure, information_plane_figure
from infoflow.plots._common import (
    MIN_SPAN_UNKNOWN_NATS,
    REFERENCE_STYLES,
    REFERENCE_Z,
    SPAN_STDERR,
)
from infoflow.plots.epochs import binned_vs_epoch_figure, information_vs_epoch_figure
from infoflow.plots.sweep import Curve, Dependence, dependence_figure, sweep_plane_figure
from infoflow.plots.weights import final_accuracy, final_weights_figure
from infoflow.records import RECORD_COLUMNS, append_rows, as_dicts

EPOCHS = (0, 1, 3, 10, 30, 100, 300)
LN2, LN4096 = math.log(2), math.log(4096)
#: Seed s's gradient SNR falls below 1 (for good) at epoch CROSS[s] in layer 1, a step later
#: in layer 2; the read-out (layer 3) has one mini-batch per epoch: SNR = inf, no transition.
CROSS = {0: 10, 1: 30, 2: 100}


def _gradients(seeds=(0, 1, 2)) -> list[tuple]:
    rows = []
    for s in seeds:
        for e in EPOCHS[1:]:
            for k in (1, 2, 3):
                later = EPOCHS[EPOCHS.index(CROSS[s]) + (k - 1)] if k < 3 else math.inf
                snr = math.inf if k == 3 else (4.0 if e < later else 0.25)
                rows += [(s, e, k, "gradients", "snr", snr, None),
                         (s, e, k, "gradients", "mean_norm", 0.1, None),
                         (s, e, k, "gradients", "std_norm", 0.0 if k == 3 else 0.1 / snr, None)]  # fmt: skip
    return rows


def _plane(seeds=(0, 1, 2), *, se=0.01, est="sp") -> list[tuple]:
    """T1 and T2 at the ceiling ln 4096 throughout (they coincide), T3 rising then compressing."""
    rows = []
    for s in seeds:
        for e in EPOCHS:
            t = math.log1p(e) / math.log1p(EPOCHS[-1])
            for k in (1, 2, 3):
                x = LN4096 if k < 3 else 3.0 + 2 * math.sin(math.pi * t)
                y = LN2 * t
                rows += [(s, e, k, est, "I_XT", x, se), (s, e, k, est, "I_TY", y, se)]
    return rows


def _style_of(line) -> dict:
    return {"ls": line.get_linestyle(), "color": line.get_color()}


# ------------------------------------------------------------------- drift → diffusion transition


def test_gradients_draw_the_snr_one_line_and_each_layers_transition():
    fig = gradients_figure(as_dicts(_gradients()))
    snr = fig.axes[1]
    one = next(line for line in snr.lines if line.get_label() == "SNR = 1")
    assert list(one.get_ydata()) == [1, 1] and one.get_zorder() == REFERENCE_Z
    lo, hi = snr.get_ylim()
    assert lo < 1 < hi
    vertical = [
        ln for ln in snr.lines if ln.get_linestyle() == ":" and len(set(ln.get_xdata())) == 1
    ]
    # the median over the 3 seeds: layer 1 crosses at 10, 30, 100 -> 30; layer 2 a step later
    assert sorted(ln.get_xdata()[0] for ln in vertical) == [30, 100]
    ticks = [ln for ln in snr.lines if ln.get_marker() == "|"]
    assert sorted(x for ln in ticks for x in ln.get_xdata()) == [10, 30, 30, 100, 100, 300]
    assert "T1 30 (3/3)" in snr.get_title() and "T2 100 (3/3)" in snr.get_title()
    assert "read-out — (0/3)" in snr.get_title()  # SNR = inf: no transition


def test_the_plane_rings_each_layers_transition_on_its_mean_trajectory():
    rows = as_dicts(_plane() + _gradients())
    ax = information_plane_figure(rows, "sp", units="nats").axes[0]
    rings = [c for c in ax.collections if c.get_sizes().tolist() == [150.0]]
    assert rings[0].get_label().startswith("gradient SNR < 1")  # one legend entry
    points = sorted(tuple(c.get_offsets()[0]) for c in rings)
    # T1, T2 at the ceiling ringed at epochs 30 and 100; T3 is not ringed (no gradient layer 3
    # crosses: that is the read-out, and T3 has no transition)
    t = [math.log1p(e) / math.log1p(EPOCHS[-1]) for e in (30, 100)]
    np.testing.assert_allclose(points, [(LN4096, LN2 * t[0]), (LN4096, LN2 * t[1])])
    off = information_plane_figure(rows, "sp", units="nats", transitions=False).axes[0]
    assert not [c for c in off.collections if c.get_sizes().tolist() == [150.0]]


# ------------------------------------------------------------------------ ceilings and labels


def _data_z(ax) -> float:
    """The highest z-order of what shows data: lines that are not references, and markers."""
    refs = {"H(X)", "I(X;Y)", "H(X) of the inputs measured", "H(Y) of the inputs measured"}
    lines = [ln.get_zorder() for ln in ax.lines if ln.get_label() not in refs]
    marks = [c.get_zorder() for c in ax.collections if c.get_sizes().tolist() != [150.0]]
    return max(lines + marks)


def test_ceilings_are_drawn_above_the_curves_each_in_its_own_style():
    rows = as_dicts(_plane())
    ceil = [(0, e, None, "ceiling", q, v, None) for e in EPOCHS for q, v in
            (("I_XT", LN4096), ("I_TY", LN2))]  # fmt: skip
    measured = information_plane_figure(rows + as_dicts(ceil), "sp", units="nats").axes[0]
    task = information_plane_figure(rows, "sp", units="nats", h_x=LN4096, i_xy=LN2).axes[0]
    styles = {}
    for ax in (measured, task):
        for line in ax.lines:
            if line.get_zorder() == REFERENCE_Z:
                styles[line.get_label()] = _style_of(line)
                assert line.get_zorder() > _data_z(ax)
    assert set(styles) == {"H(X) of the inputs measured", "H(Y) of the inputs measured", "H(X)",
                           "I(X;Y)"}  # fmt: skip
    distinct = {(s["ls"], s["color"]) for s in styles.values()}
    assert len(distinct) == 4
    fig = information_vs_epoch_figure(rows + as_dicts(ceil), units="nats")
    for ax in fig.axes:
        refs = [ln for ln in ax.lines if ln.get_label().startswith("H(")]
        assert refs and all(ln.get_zorder() > _data_z(ax) for ln in refs)


def test_layers_that_coincide_share_one_label_at_the_ceiling():
    rows = as_dicts(_plane(seeds=(0,)))
    ax = information_plane_figure(rows, "sp", units="nats", h_x=LN4096).axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["T1 = T2 at the ceiling", "T3"]
    i_xt = information_vs_epoch_figure(rows, units="nats", h_x=LN4096).axes[0]
    assert "T1 = T2 at the ceiling" in [t.get_text() for t in i_xt.texts]
    # 0.05 nats apart (> 3·√2·SE and > 0.01 nats): two labels, stacked
    apart = as_dicts([r if r[2] != 2 or r[4] != "I_XT" else (*r[:5], r[5] - 0.05, r[6])
                      for r in _plane(seeds=(0,))])  # fmt: skip
    ax = information_plane_figure(apart, "sp", units="nats", h_x=LN4096).axes[0]
    assert sorted(t.get_text() for t in ax.texts) == ["T1", "T2", "T3"]


# ------------------------------------------------------------------------------- noise floor


def test_a_panel_spans_at_least_a_few_standard_errors():
    """The single neuron's I(T;Y) moves by 0.007 nats, below SP's standard error (0.01): the
    panel must not blow that up to its full height."""
    rows = as_dicts([(0, e, 1, "sp", q, v + (0.007 * e / 300 if q == "I_TY" else 0), 0.01)
                     for e in EPOCHS for q, v in (("I_XT", 1.2), ("I_TY", 0.5))])  # fmt: skip
    i_xt, i_ty = information_vs_epoch_figure(rows, units="nats").axes
    for ax in (i_xt, i_ty):
        lo, hi = ax.get_ylim()
        assert hi - lo >= SPAN_STDERR * 0.01 - 1e-12
    plane = information_plane_figure(rows, "sp", units="bits").axes[0]
    lo, hi = plane.get_ylim()
    assert hi - lo >= SPAN_STDERR * 0.01 / LN2 - 1e-12  # in bits
    # a real change is left as autoscaling drew it
    moving = as_dicts([(0, e, 1, "sp", "I_XT", e / 100, 0.01) for e in EPOCHS])
    lo, hi = information_vs_epoch_figure(moving, units="nats").axes[0].get_ylim()
    assert hi - lo == pytest.approx(3.02 * 1.1)  # -0.01 … 3.01 (± SE) with 5 % margins


def test_binned_panels_without_standard_errors_span_the_stated_minimum():
    rows = as_dicts([(0, e, k, "bin:width:0.1", "H_T", 8.0 + 1e-4 * e, None)
                     for e in EPOCHS for k in (1, 2)])  # fmt: skip
    fig = binned_vs_epoch_figure(rows, units="nats")
    for ax in fig.axes:
        if ax.lines:
            lo, hi = ax.get_ylim()
            assert hi - lo >= MIN_SPAN_UNKNOWN_NATS - 1e-12


def test_the_reports_dependence_and_plane_have_a_noise_floor():
    pts = [Dependence(b, 1, m, 3, v, 1e-4) for b in (0.01, 0.1)
           for m, v in (("peak", 5.0), ("final", 4.999), ("compression", 0.001))]  # fmt: skip
    fig = dependence_figure({"": pts}, "noise.beta", "sp", units="bits", stderr=0.01)
    spans = [np.ptp(ax.get_ylim()) for ax in fig.axes[:3]]
    floor = SPAN_STDERR * 0.01 / LN2
    assert spans[0] >= floor - 1e-12 and spans[2] >= math.sqrt(2) * floor - 1e-12
    e = np.array(EPOCHS)
    flat = {("sp", q, 1): Curve(e, 3 + 0 * e, 2.0 + 1e-4 * e, 0 * e + 1e-4, 2.0 + 1e-4 * e)
            for q in ("I_XT", "I_TY")}  # fmt: skip
    ax = sweep_plane_figure({"all runs": flat}, "sp", units="nats", stderr=(0.02, 0.02)).axes[0]
    assert np.ptp(ax.get_xlim()) >= SPAN_STDERR * 0.02 - 1e-12
    assert np.ptp(ax.get_ylim()) >= SPAN_STDERR * 0.02 - 1e-12


def test_reference_styles_are_all_different():
    seen = {(str(s["ls"]), s["color"]) for s in REFERENCE_STYLES.values()}
    assert len(seen) == len(REFERENCE_STYLES)


# ---------------------------------------------------------------------------- final weights


def _renumbered_members(k=4, widths=(12, 10, 7, 2), seed=0):
    """Member 0's network, and members 1.. the same function with hidden units renumbered."""
    rng = np.random.default_rng(seed)
    base = [rng.normal(size=(o, i)) for i, o in zip(widths[:-1], widths[1:], strict=True)]
    members = [base]
    for _ in range(k - 1):
        perms = [rng.permutation(n) for n in widths[1:-1]]
        net = [w.copy() for w in base]
        for i, p in enumerate(perms):
            net[i], net[i + 1] = net[i][p], net[i + 1][:, p]
        members.append(net)
    return [np.stack([m[i] for m in members]).astype(np.float32) for i in range(len(base))]


def test_final_weights_of_renumbered_members_agree_once_their_units_are_matched():
    layers = _renumbered_members()
    acc = {"val": {0: 0.9, 1: 0.91, 2: 0.89, 3: 0.9}}
    fig = final_weights_figure([0, 1, 2, 3], layers, accuracy=acc)
    grid = fig.axes
    n = len(layers)
    spread = grid[:n]  # top row: sd against mean, one panel per layer
    for ax, w in zip(spread, layers, strict=True):
        mean, sd = ax.collections[0].get_offsets().T
        np.testing.assert_allclose(sd, 0.0, atol=1e-5)  # matched: every member's weight is equal
        np.testing.assert_allclose(np.sort(mean), np.sort(w[0].ravel()), atol=1e-6)
        assert "sd > |mean| for 0 %" in ax.get_title()
    hists = grid[n + 1 : 2 * n + 1]  # bottom row
    assert "1.00 units matched" in hists[0].get_title()
    assert "units matched" in [t.get_text() for t in hists[0].get_legend().get_texts()]
    assert "val 0.900 [0.890–0.910]" in grid[n].get_title()


def test_final_weights_need_two_members_of_equal_count():
    layers = _renumbered_members(k=2)
    with pytest.raises(ValueError, match="need >= 2 members"):
        final_weights_figure([0], [w[:1] for w in layers])
    with pytest.raises(ValueError, match="every layer must hold 3 members"):
        final_weights_figure([0, 1, 2], layers)


def test_final_accuracy_is_each_seeds_last_epoch():
    rows = as_dicts([(s, e, None, "val", "acc", 0.5 + 0.1 * e + s, None)
                     for s in (0, 1) for e in (1, 3, 2)] + [(0, 9, None, "val", "loss", 9, None)])  # fmt: skip
    assert final_accuracy(rows) == {"val": {0: pytest.approx(0.8), 1: pytest.approx(1.8)}}


def _run_with_weights(run: Path, k: int) -> Path:
    append_rows(run / "information.csv", RECORD_COLUMNS, _plane() + _gradients())
    if k:
        layers = _renumbered_members(k=max(k, 2))
        arrays = {f"layer_{i}": w[:k] for i, w in enumerate(layers, start=1)}
        np.savez(run / "weights.npz", seeds=np.arange(k, dtype=np.int64), **arrays)
    return run


@pytest.mark.parametrize(("k", "drawn"), [(0, False), (1, False), (3, True)])
def test_final_weights_png_needs_weights_npz_with_two_members(tmp_path, k, drawn):
    names = {p.name for p in draw_all(_run_with_weights(tmp_path, k), strict=True)}
    assert ("final_weights.png" in names) is drawn
    assert "gradients.png" in names


def test_a_damaged_weights_file_costs_only_its_figure(tmp_path, caplog):
    run = _run_with_weights(tmp_path, 0)
    (run / "weights.npz").write_bytes(b"not a zip")
    names = {p.name for p in draw_all(run, strict=True)}
    assert "final_weights.png" not in names and "gradients.png" in names
    assert "weights.npz" in caplog.text


def test_phases_csv_sets_the_transition_beside_the_compression_onset(tmp_path):
    run = _run_with_weights(tmp_path, 0)
    draw_all(run, strict=True)
    rows = read_records_csv(run / "plots" / "phases.csv")
    got = {(r["measure"], r["layer"]): r for r in rows}
    assert got[("snr_transition", "1")]["median"] == "30.0"
    assert got[("snr_transition", "3")]["n"] == "0"  # the read-out never crosses
    # T3 = 3 + 2 sin(π t), t = log(1 + e) / log 301: largest at epoch 10 (t = 0.42; t = 0.60 at
    # epoch 30), 3 at the end: a fall of 1.94 nats in every seed
    onset = got[("compression_onset", "3")]
    assert (onset["n"], onset["min"], onset["max"]) == ("3", "10.0", "10.0")
    assert got[("compression_onset", "1")]["n"] == "0"  # at the ceiling throughout


def read_records_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))
