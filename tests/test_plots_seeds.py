"""Figures of records with several seeds (an ensemble run) and with ceiling rows, built here from
small constructed records: no network, no training."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from infoflow.plots import (
    binned_vs_epoch_figure,
    clustering_figure,
    draw_all,
    gradients_figure,
    histograms_figure,
    information_plane_figure,
    information_vs_epoch_figure,
    plane_filename,
    scatter_figure,
)
from infoflow.plots._common import MEMBER_ALPHA
from infoflow.plots.data import members, spread
from infoflow.plots.dynamics import CLUSTER_MEASURES
from infoflow.records import HISTOGRAM_COLUMNS, RECORD_COLUMNS, append_rows, as_dicts

EPOCHS = (0, 1, 3, 10, 30)
SEEDS = (0, 1, 2)
LN512, LN2 = math.log(512), math.log(2)


def _info(seeds=SEEDS, *, ceiling=True, layers=(1, 2)) -> list[tuple]:
    """SP and a binning per seed: seed s shifts every value by 0.1 s nats; ceilings per seed and
    epoch as the information callback writes them (layer empty)."""
    rows = []
    for s in seeds:
        for e in EPOCHS:
            t = math.log1p(e) / math.log1p(EPOCHS[-1])
            for k in layers:
                i_xt = 5.0 - k * t + 0.1 * s
                i_ty = 0.6 * t ** (1 / k) + 0.01 * s
                rows += [
                    (s, e, k, "sp", "I_XT", i_xt, 0.02),
                    (s, e, k, "sp", "I_TY", i_ty, 0.01),
                    (s, e, k, "bin:width:0.05", "H_T", 7.0 - t + 0.1 * s, None),
                    (s, e, k, "bin:width:0.05", "I_XT", 7.0 - t + 0.1 * s, None),
                    (s, e, k, "bin:width:0.05", "I_TY", i_ty, None),
                    (s, e, k, "clustering", "silhouette", t + 0.05 * s, None),
                    (s, e, k, "clustering", "kmeans_nmi", t / 2 + 0.05 * s, None),
                ]
            for k in (*layers, len(layers) + 1):  # the read-out last
                if e:  # no gradients before training
                    rows += [
                        (s, e, k, "gradients", "mean_norm", 0.1 / (e + s), None),
                        (s, e, k, "gradients", "std_norm", 0.05, None),
                        (s, e, k, "gradients", "snr", 2.0 / (e + s), None),
                    ]
            if ceiling:
                rows += [(s, e, None, "ceiling", "I_XT", LN512, None)]
                rows += [(s, e, None, "ceiling", "I_TY", LN2, None)]
    return rows


def _training(seeds=SEEDS) -> list[tuple]:
    return [
        (s, e, None, split, "loss", 0.69 * math.exp(-e / 10) + 0.01 * s, None)
        for s in seeds
        for e in EPOCHS[1:]
        for split in ("train", "val")
    ]


def _labels(ax) -> set[str]:
    return {line.get_label() for line in ax.lines}


def _faint(ax) -> list:
    return [line for line in ax.lines if line.get_alpha() == MEMBER_ALPHA]


def test_spread_is_mean_and_sample_sd_per_epoch_over_the_members_there():
    rows = as_dicts([(0, 0, 1, "sp", "I_XT", 1.0, None), (1, 0, 1, "sp", "I_XT", 3.0, None),
                     (0, 5, 1, "sp", "I_XT", 2.0, None)])  # fmt: skip
    by_seed = members(rows, "sp", "I_XT")[1]
    assert sorted(by_seed) == [0, 1]
    s = spread(by_seed)
    assert list(s.epoch) == [0, 5] and list(s.n) == [2, 1]
    assert list(s.mean) == [2.0, 2.0]
    assert s.sd[0] == pytest.approx(math.sqrt(2.0)) and math.isnan(s.sd[1])


def test_plane_of_several_seeds_is_the_mean_trajectory_with_members_faint():
    rows = as_dicts(_info())
    ax = information_plane_figure(rows, "sp", units="nats").axes[0]
    assert len(_faint(ax)) == len(SEEDS) * 2  # every member of every layer
    t1 = next(line for line in ax.lines if line.get_label() == "T1")
    by_seed = members(rows, "sp", "I_XT")[1]
    np.testing.assert_allclose(t1.get_xdata(), np.mean([s.value for s in by_seed.values()], 0))
    assert "3 seeds" in ax.get_title()


def test_one_seed_draws_no_members_and_no_seed_note():
    rows = as_dicts(_info(seeds=(7,)))
    plane = information_plane_figure(rows, "sp").axes[0]
    assert not _faint(plane) and "seeds" not in plane.get_title()
    fig = information_vs_epoch_figure(rows, as_dicts(_training(seeds=(7,))))
    assert not any(_faint(ax) for ax in fig.axes) and "seeds" not in fig.axes[0].get_title()


def test_information_vs_epoch_shows_mean_band_members_and_the_loss_of_every_seed():
    fig = information_vs_epoch_figure(as_dicts(_info()), as_dicts(_training()), units="nats")
    i_xt, i_ty, loss = fig.axes
    assert len(_faint(i_xt)) == len(SEEDS) * 2 and i_xt.collections  # members; ± sd bands
    assert len(_faint(loss)) == len(SEEDS) * 2  # train and validation of each seed
    mean = next(line for line in i_xt.lines if line.get_label() == "T1")
    np.testing.assert_allclose(mean.get_ydata()[0], 5.0 + 0.1)  # mean of 5.0, 5.1, 5.2
    assert "mean ± sd of 3 seeds" in i_xt.get_title()


def test_ceiling_rows_are_drawn_on_the_planes_and_against_epoch():
    rows = as_dicts(_info())
    ax = information_plane_figure(rows, "sp", units="nats", h_x=math.log(4096), i_xy=LN2).axes[0]
    labels = _labels(ax)
    assert {"H(X) of the inputs measured", "H(Y) of the inputs measured"} <= labels
    assert "H(X)" not in labels  # the task's H(X) is not what SP could reach
    line = next(line for line in ax.lines if line.get_label() == "H(X) of the inputs measured")
    assert line.get_linestyle() == "--" and line.get_xdata()[0] == pytest.approx(LN512)
    i_xt, i_ty = information_vs_epoch_figure(rows, units="bits").axes
    assert "H(X) of the inputs measured" in _labels(i_xt)
    y = next(ln for ln in i_ty.lines if ln.get_label() == "H(Y) of the inputs measured")
    assert y.get_ydata()[0] == pytest.approx(1.0)  # ln 2 nats = 1 bit
    # a binning measures every evaluation input: its ceiling stays the task's H(X)
    binned = information_plane_figure(rows, "bin:width:0.05", h_x=math.log(4096)).axes[0]
    assert "H(X)" in _labels(binned) and "H(X) of the inputs measured" not in _labels(binned)


def test_ceiling_that_moves_between_epochs_is_a_line_through_its_epochs():
    rows = as_dicts(
        [(0, e, 1, "sp", q, 1.0, None) for e in (0, 10) for q in ("I_XT", "I_TY")]
        + [(0, 0, None, "ceiling", "I_XT", 6.0, None), (0, 10, None, "ceiling", "I_XT", 6.2, None)]
    )
    i_xt = information_vs_epoch_figure(rows, units="nats").axes[0]
    line = next(ln for ln in i_xt.lines if ln.get_label() == "H(X) of the inputs measured")
    assert list(line.get_xdata()) == [0, 10] and list(line.get_ydata()) == [6.0, 6.2]


def test_without_ceiling_rows_the_task_references_are_drawn_as_before():
    rows = as_dicts(_info(ceiling=False))
    ax = information_plane_figure(rows, "sp", h_x=math.log(4096), i_xy=LN2).axes[0]
    assert {"H(X)", "I(X;Y)"} <= _labels(ax)
    assert not {"H(X) of the inputs measured", "H(Y) of the inputs measured"} & _labels(ax)


def test_binned_entropy_and_sp_are_on_separate_axes_with_their_own_ceilings():
    fig = binned_vs_epoch_figure(as_dicts(_info()), units="nats", h_x=math.log(4096))
    axes = [ax for ax in fig.axes if ax.lines]
    sp = [ax for ax in axes if "I(X;T), sp" in _labels(ax)]
    binned = [ax for ax in axes if "H(Bin T), bin:width:0.05" in _labels(ax)]
    assert len(sp) == len(binned) == 2 and not set(sp) & set(binned)
    assert all("H(X) of the inputs sp measured" in _labels(ax) for ax in sp)
    assert all("H(X) of the evaluation inputs" in _labels(ax) for ax in binned)
    assert all(_faint(ax) for ax in axes)  # members behind every mean


def test_gradients_name_the_read_out_and_start_at_the_first_measured_epoch():
    fig = gradients_figure(as_dicts(_info()))
    norms, snr = fig.axes
    assert {"T1", "T2", "read-out"} <= _labels(snr) and "T3" not in _labels(snr)
    assert norms.get_xlim()[0] == pytest.approx(1.0)
    assert "read-out" in norms.get_title() and norms.get_ylabel() and snr.get_ylabel()
    assert _faint(snr)


def test_clustering_panels_are_titled_and_labelled():
    fig = clustering_figure(as_dicts(_info()))
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in shown] == [
        CLUSTER_MEASURES["silhouette"][0],
        CLUSTER_MEASURES["kmeans_nmi"][0],
    ]
    assert all(ax.get_ylabel() for ax in shown) and all(_faint(ax) for ax in shown)


def test_histograms_sum_the_seeds_and_label_every_epoch():
    edges = np.linspace(-1, 1, 5)
    rows = [
        dict(zip(HISTOGRAM_COLUMNS, (s, e, 1, "noiseless", lo, hi, 1 + s), strict=True))
        for s in SEEDS
        for e in EPOCHS
        for lo, hi in zip(edges[:-1], edges[1:], strict=True)
    ]
    fig = histograms_figure(rows)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(e) for e in EPOCHS]
    assert ax.collections[0].get_array().max() == sum(1 + s for s in SEEDS)
    assert "3 seeds" in ax.get_title()


def test_scatter_axes_follow_each_epochs_points():
    labels = np.array([0, 1] * 50)
    small = np.random.default_rng(0).normal(0, 0.01, (100, 2))
    snaps = {0: {"labels": labels, "layer_1": small}, 9: {"labels": labels, "layer_1": small * 80}}
    early, late = scatter_figure(snaps, 1).axes
    assert early.get_xlim()[1] - early.get_xlim()[0] < 0.2 < late.get_xlim()[1] - late.get_xlim()[0]


def test_a_multi_seed_run_with_ceilings_draws_every_figure(tmp_path: Path):
    append_rows(tmp_path / "information.csv", RECORD_COLUMNS, _info())
    append_rows(tmp_path / "training.csv", RECORD_COLUMNS, _training())
    names = {p.name for p in draw_all(tmp_path, strict=True)}
    assert names == {
        plane_filename("sp"),
        plane_filename("bin:width:0.05"),
        "information_vs_epoch.png",
        "binned_vs_epoch.png",
        "gradients.png",
        "clustering.png",
        "phases.csv",
    }  # fmt: skip  (no plane of the ceiling rows)


def _curves(shift: float) -> dict:
    from infoflow.plots.sweep import Curve

    e = np.array(EPOCHS)
    ones = np.ones(len(e))

    def curve(values):
        return Curve(e, 3 * ones, np.asarray(values, dtype=float), 0.1 * ones, values)

    out = {
        ("ceiling", "I_XT", None): curve(LN512 * ones),
        ("ceiling", "I_TY", None): curve(LN2 * ones),
    }
    for k in (1, 2):
        out[("sp", "I_XT", k)] = curve(5.0 - k * np.log1p(e) / 4 + shift)
        out[("sp", "I_TY", k)] = curve(0.1 * np.log1p(e) * k)
    return out


def test_the_reports_plane_colours_epochs_draws_ceilings_and_shares_its_axes():
    from infoflow.plots.sweep import sweep_information_figure, sweep_plane_figure

    groups = {"noise.beta=0.01": _curves(0.0), "noise.beta=0.1": _curves(-2.0)}
    fig = sweep_plane_figure(groups, "sp", units="nats", h_x=math.log(4096), i_xy=LN2)
    a, b = (ax for ax in fig.axes if ax.get_label() != "<colorbar>")
    assert a.get_shared_y_axes().joined(a, b) and a.get_shared_x_axes().joined(a, b)
    coloured = [c for c in a.collections if c.get_array() is not None]
    assert [list(c.get_array()) for c in coloured] == [list(EPOCHS)] * 2  # one per layer
    assert {"H(X) of the inputs measured", "H(Y) of the inputs measured"} <= _labels(a)
    assert any(ax.get_ylabel() == "epoch" for ax in fig.axes)  # the colour bar
    old = {g: {k: c for k, c in cs.items() if k[0] != "ceiling"} for g, cs in groups.items()}
    fig = sweep_plane_figure(old, "sp", units="nats", h_x=math.log(4096), i_xy=LN2)
    assert {"H(X)", "I(X;Y)"} <= _labels(fig.axes[0])  # records without ceilings
    fig = sweep_information_figure(groups, "sp", units="nats")
    a, b = fig.axes[:2]
    assert a.get_shared_y_axes().joined(a, b)
    assert "H(X) of the inputs measured" in _labels(a)


def test_the_report_counts_each_member_of_an_ensemble_run_as_a_seed(tmp_path):
    """One job holding seeds 0-2 (an ensemble) gives the curves and compression of three jobs."""
    from infoflow.report import aggregate, compression_table
    from infoflow.report._reading import read_sweep
    from tests.test_report import info_rows, make_run

    def results(sweep):
        runs = read_sweep(sweep)
        curves = next(iter(aggregate(runs, []).values()))
        return curves[("sp", "I_XT", 1)], compression_table(runs, [], "sp")

    ensemble = tmp_path / "ensemble"
    make_run(ensemble, 0, {}, rows=[r for s in (0, 1, 2) for r in info_rows(0.01, s)])
    separate = tmp_path / "separate"
    for s in (0, 1, 2):
        make_run(separate, s, {"seed": s}, rows=info_rows(0.01, s))
    (c_ens, t_ens), (c_sep, t_sep) = results(ensemble), results(separate)
    assert list(c_ens.n) == [3] * len(c_ens.epoch)
    np.testing.assert_allclose(c_ens.std, c_sep.std)
    assert [(r["layer"], r["measure"], r["n"]) for r in t_ens] == [
        (r["layer"], r["measure"], r["n"]) for r in t_sep
    ]
    np.testing.assert_allclose([r["std"] for r in t_ens], [r["std"] for r in t_sep])
