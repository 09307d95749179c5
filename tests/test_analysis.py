"""infoflow.analysis on small constructed records and weights whose answers are known by
construction (no training, no files)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.stats import pearsonr

from infoflow.analysis import (
    Fit,
    align_members,
    compression_onsets,
    epoch_stats,
    fitting_epochs,
    median_epoch,
    member_correlations,
    pairs,
    phase_table,
    snr_transitions,
    typical_stderr,
    unit_correlation,
)

NAN, INF = math.nan, math.inf


def row(seed, epoch, layer, estimator, quantity, value, stderr=NAN) -> dict:
    return dict(seed=seed, epoch=epoch, layer=layer, estimator=estimator, quantity=quantity,
                value=value, stderr=stderr)  # fmt: skip


def snr_rows(seed, layer, points) -> list[dict]:
    return [row(seed, e, layer, "gradients", "snr", v) for e, v in points]


# ------------------------------------------------------------------------------ SNR transition


def test_the_transition_is_where_the_snr_falls_below_one_for_good():
    rows = [
        *snr_rows(0, 1, [(1, 5.0), (2, 2.0), (5, 0.8), (10, 1.2), (50, 0.5), (100, 0.3)]),
        *snr_rows(0, 2, [(1, INF), (2, INF), (5, INF)]),  # sd 0: one mini-batch per epoch
        *snr_rows(0, 3, [(1, 0.9), (2, 0.5)]),  # already below at the first measurement
        *snr_rows(0, 4, [(1, 3.0), (2, 0.5), (3, 1.0)]),  # back at exactly 1: not below
        *snr_rows(1, 1, [(1, 5.0), (7, NAN), (9, 0.5)]),  # a missing value is skipped
        row(1, 1, 1, "gradients", "mean_norm", 0.1),  # not an SNR row
    ]
    got = {(t.seed, t.layer): (t.epoch, t.status) for t in snr_transitions(rows)}
    assert got == {
        (0, 1): (50, "crossed"),  # the dip at epoch 5 is not the transition
        (0, 2): (None, "never"),
        (0, 3): (1, "from_start"),
        (0, 4): (None, "never"),
        (1, 1): (9, "crossed"),
    }
    never = next(t for t in snr_transitions(rows) if t.layer == 2)
    assert never.last_snr == INF


def test_a_repeated_epoch_keeps_its_last_row():
    rows = snr_rows(0, 1, [(1, 5.0), (2, 0.5), (2, 3.0)])  # a resumed run re-measured epoch 2
    assert snr_transitions(rows)[0].status == "never"


# ------------------------------------------------------------------------- compression onset


def ixt(seed, layer, points, est="sp", se=NAN) -> list[dict]:
    return [row(seed, e, layer, est, "I_XT", v, se) for e, v in points]


def test_compression_counts_only_a_fall_beyond_the_noise():
    rows = [
        *ixt(0, 1, [(0, 4.0), (10, 5.0), (30, 4.95), (90, 4.9)], se=0.01),  # 0.1 > 0.05
        *ixt(0, 2, [(0, 4.0), (10, 5.0), (90, 4.9)], se=0.03),  # 0.1 < 3·√2·0.03 = 0.127
        *ixt(0, 3, [(0, 4.0), (10, 5.0), (90, 4.96)], se=0.001),  # 0.04 < min_fall 0.05
        *ixt(0, 4, [(0, 4.0), (10, 4.5), (90, 5.0)], se=0.001),  # peak at the end
    ]
    got = {o.layer: o for o in compression_onsets(rows, "sp")}
    assert (got[1].epoch, got[1].status) == (10, "compresses")
    assert got[1].fall == pytest.approx(0.1) and got[1].threshold == pytest.approx(0.05)
    assert (got[2].epoch, got[2].status) == (None, "within_noise")
    assert got[2].threshold == pytest.approx(3 * math.sqrt(2) * 0.03)
    assert (got[3].epoch, got[4].epoch, got[4].fall) == (None, None, 0.0)
    loose = {o.layer: o.epoch for o in compression_onsets(rows, "sp", n_stderr=0, min_fall=0)}
    assert loose == {1: 10, 2: 10, 3: 10, 4: None}


def test_a_plateau_at_the_peak_compresses_from_its_end():
    """Binned I(X;T) of a wide layer sits at its ceiling ln 4096 before it falls: compression
    starts where the plateau ends, not where it began."""
    top = math.log(4096)
    rows = ixt(5, 1, [(0, top), (5, top), (10, top), (20, top - 0.5), (40, top - 1.0)], "bin:t:30")
    (onset,) = compression_onsets(rows, "bin:t:30")
    assert (onset.seed, onset.epoch, onset.threshold) == (5, 10, 0.05)  # no stderr: min_fall


def test_compression_rejects_negative_thresholds():
    with pytest.raises(ValueError, match="n_stderr and min_fall must be >= 0"):
        compression_onsets([], "sp", min_fall=-1)


# ----------------------------------------------------------------------------- fitting epoch


def test_fitting_epoch_of_a_saturating_curve_matches_the_closed_form():
    tau, top = 120.0, math.log(2)
    epochs = sorted({0, *np.unique(np.round(np.logspace(0, 4, 80)).astype(int)).tolist()})
    rows = [row(0, e, 3, "sp", "I_TY", top * (1 - math.exp(-e / tau)), 0.01) for e in epochs]
    final = 1 - math.exp(-epochs[-1] / tau)
    first = -tau * math.log(1 - 0.95 * final)  # where the curve reaches 95 % of its final value
    (fit,) = fitting_epochs(rows, "sp")
    assert fit.epoch == min(e for e in epochs if e >= first)
    assert fit.final == pytest.approx(top * final)


def test_fitting_must_stay_above_the_fraction():
    pts = [(0, 0.0), (5, 0.99), (8, 0.5), (20, 0.96), (50, 1.0)]
    rows = [row(0, e, 1, "sp", "I_TY", v) for e, v in pts]
    assert fitting_epochs(rows, "sp")[0].epoch == 20  # the early spike at epoch 5 does not count
    assert fitting_epochs(rows, "sp", fraction=0.4)[0].epoch == 5
    flat = [row(0, e, 1, "sp", "I_TY", v) for e, v in [(0, 0.1), (5, -0.01)]]
    assert fitting_epochs(flat, "sp")[0].epoch is None  # a final value ≤ 0: no fitting epoch
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\], got 1.5"):
        fitting_epochs(rows, "sp", fraction=1.5)


# --------------------------------------------------------------------------- across the seeds


def test_epoch_stats_and_the_median_counting_seeds_without_an_event_as_latest():
    events = [Fit(0, 1, 10, 1.0), Fit(1, 1, 30, 1.0), Fit(2, 1, None, 1.0), Fit(0, 2, None, 1.0)]
    one, two = epoch_stats(events)
    assert (one.n, one.n_seeds, one.mean, one.median, one.min, one.max) == (2, 3, 20, 20, 10, 30)
    assert two.n == 0 and math.isnan(two.mean) and two.text() == "none"  # one seed: no count
    assert one.text() == "20 [10–30] (2/3)"
    assert median_epoch(events) == {1: 30.0, 2: INF}  # [10, 30, ∞]: the middle one; [∞]
    even = [Fit(s, 1, e, 1.0) for s, e in enumerate((10, 20, 40, None))]
    assert median_epoch(even) == {1: 30.0}  # (20 + 40) / 2
    assert median_epoch(even[1:] + [Fit(9, 1, None, 1.0)]) == {1: INF}  # half cross: no median


def test_phase_table_sets_the_three_measures_side_by_side():
    rows = [
        *snr_rows(0, 1, [(1, 3.0), (10, 0.5)]),
        *snr_rows(1, 1, [(1, 3.0), (20, 0.5)]),
        *ixt(0, 1, [(0, 1.0), (5, 2.0), (20, 1.0)], se=0.01),
        *ixt(1, 1, [(0, 1.0), (5, 1.5), (20, 1.49)], se=0.01),
        *[row(s, e, 1, "sp", "I_TY", v, 0.01) for s in (0, 1) for e, v in ((0, 0), (20, 0.5))],
    ]
    table = {r["measure"]: r for r in phase_table(rows, "sp")}
    assert list(table) == ["snr_transition", "compression_onset", "fitting"]
    assert (table["snr_transition"]["mean"], table["snr_transition"]["n"]) == (15.0, 2)
    assert (table["compression_onset"]["n"], table["compression_onset"]["max"]) == (1, 5.0)
    assert table["fitting"]["median"] == 20.0
    assert [r["measure"] for r in phase_table(rows, None)] == ["snr_transition"]
    assert typical_stderr(rows, "sp", "I_XT") == 0.01
    assert math.isnan(typical_stderr(rows, "gradients", "snr"))


# ------------------------------------------------------------------------------ final weights


def test_member_and_unit_correlations_are_pearsons():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(4, 3, 5))
    corr = member_correlations(w)
    for a, b in itertools.combinations(range(4), 2):
        assert corr[a, b] == pytest.approx(pearsonr(w[a].ravel(), w[b].ravel())[0])
    assert len(pairs(corr)) == 6
    units = unit_correlation(w)
    for m in range(4):
        brute = np.mean([pearsonr(w[m, i], w[m, j])[0] for i, j in ((0, 1), (0, 2), (1, 2))])
        assert units[m] == pytest.approx(brute)
    assert np.isnan(unit_correlation(w[:, :1])).all()  # one unit: no pair


def _network(rng, widths):
    return [rng.normal(size=(1, o, i)) for i, o in itertools.pairwise(widths)]


def _renumber(net, perms, signs, blocks=None):
    """The same function with hidden units renumbered (perms) and negated (signs): rows of layer
    i and the matching (blocks of) columns of layer i+1."""
    out = [w[0].copy() for w in net]
    for i, (p, s) in enumerate(zip(perms, signs, strict=True)):
        out[i] = out[i][p] * s[:, None]
        blk = (blocks or {}).get(i + 1, 1)
        cols = (p[:, None] * blk + np.arange(blk)).ravel()
        out[i + 1] = out[i + 1][:, cols] * np.repeat(s, blk)[None, :]
    return out


@pytest.mark.parametrize("odd", [False, True])
def test_matching_undoes_a_renumbering_of_the_hidden_units(odd):
    rng = np.random.default_rng(2)
    widths = (12, 10, 7, 5, 2)
    net = _network(rng, widths)
    members = [[w[0] for w in net]]
    for _ in range(3):
        perms = [rng.permutation(n) for n in widths[1:-1]]
        signs = [rng.choice([-1.0, 1.0], n) if odd else np.ones(n) for n in widths[1:-1]]
        members.append(_renumber(net, perms, signs))
    layers = [np.stack([m[i] for m in members]) for i in range(len(net))]
    assert not all(np.allclose(w, w[0]) for w in layers)  # renumbered: stored weights differ
    matched = align_members(layers, odd=odd)
    for w in matched:
        np.testing.assert_allclose(w, np.broadcast_to(w[0], w.shape), atol=1e-12)
        np.testing.assert_allclose(pairs(member_correlations(w)), 1.0)


def test_matching_carries_a_permutation_into_blocks_of_columns():
    """A convolution's kernels flattened (out, in·kh·kw): unit c of the previous layer owns the
    block of kh·kw columns c·kh·kw …; a flattened feature map likewise."""
    rng = np.random.default_rng(3)
    net = [rng.normal(size=(1, 4, 9)), rng.normal(size=(1, 3, 4 * 5)), rng.normal(size=(1, 2, 3))]
    perms, signs = [rng.permutation(4), rng.permutation(3)], [np.ones(4), np.ones(3)]
    other = _renumber(net, perms, signs, blocks={1: 5})
    layers = [np.concatenate([w, o[None]]) for w, o in zip(net, other, strict=True)]
    for w in align_members(layers):
        np.testing.assert_allclose(w[1], w[0], atol=1e-12)


def test_matching_finds_the_units_of_a_noisy_copy_and_keeps_member_zero():
    rng = np.random.default_rng(4)
    net = _network(rng, (12, 10, 7, 2))
    perms = [rng.permutation(10), rng.permutation(7)]
    copy = _renumber(net, perms, [np.ones(10), np.ones(7)])
    noisy = [c + rng.normal(0, 0.05, c.shape) for c in copy]
    layers = [np.stack([w[0], n]) for w, n in zip(net, noisy, strict=True)]
    matched = align_members(layers)
    for w, m in zip(layers, matched, strict=True):
        np.testing.assert_array_equal(m[0], w[0])
        assert np.abs(m[1] - m[0]).max() < 0.3  # the noise, not a misplaced unit
