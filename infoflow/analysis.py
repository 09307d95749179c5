"""Events of training read off the tidy records, and the spread of an ensemble's final weights.

Pure functions: record rows in (the dicts of :func:`infoflow.records.read_records`: seed, epoch,
layer, estimator, quantity, value, stderr; nats), small tuples out; or weight arrays in, arrays out.
No plotting, no files, no torch. The figures (:mod:`infoflow.plots`) and the sweep report
(:mod:`infoflow.report`) draw and tabulate what these return.

Definitions (per seed, i.e. per ensemble member, and per layer; epochs are the measured ones):

* **SNR transition** (:func:`snr_transitions`): the drift → diffusion transition of Shwartz-Ziv &
  Tishby (2017). From the ``gradients`` rows (quantity ``snr`` = ‖mean‖ / ‖sd‖ of the mini-batch
  gradients over an epoch; layer k = the weights into T_k, the read-out last): the first measured
  epoch from which the SNR stays below 1 at every later measured epoch. An infinite SNR (sd 0: one
  mini-batch per epoch) counts as ≥ 1. None when the last measured SNR is ≥ 1 (no transition);
  status ``from_start`` when it is below 1 already at the first measured epoch (the transition
  happened then or earlier). IDNNs drew this line by hand at epoch 370; this reads it per layer.
* **Compression onset** (:func:`compression_onsets`): the last epoch at which I(X;T_ℓ) takes its
  largest value (the peak; a plateau at the peak, as a binned layer at its ceiling, ends there),
  counted only when the fall from the peak to the last measured value exceeds the noise:
  ``fall > max(min_fall, n_stderr · sqrt(se_peak² + se_final²))`` with the rows' standard errors
  (SP), or ``fall > min_fall`` where the estimator records none (binned: 0.05 nats by default).
* **Fitting epoch** (:func:`fitting_epochs`): the first epoch from which I(T_ℓ;Y) stays at or above
  ``fraction`` (95 %) of its last measured value; None when that value is not positive.

Across seeds, :func:`epoch_stats` gives n, mean, median, min and max of the epochs per layer, and
:func:`median_epoch` the median over *all* seeds with "no event" counted as later than any epoch
(finite only when more than half the seeds have the event): the epoch the figures mark.

>>> rows = [{"seed": 0, "epoch": e, "layer": 1, "estimator": "gradients", "quantity": "snr",
...          "value": v, "stderr": float("nan")} for e, v in [(1, 9.0), (10, 3.0), (100, 0.5)]]
>>> snr_transitions(rows)
[Transition(seed=0, layer=1, epoch=100, status='crossed', last_snr=0.5)]
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

#: Fall of I(X;T) (nats) below which no compression is called, whatever the standard errors.
MIN_FALL = 0.05
#: Standard errors the fall of I(X;T) must exceed (estimators that record them: SP).
N_STDERR = 3.0
#: Fraction of the final I(T;Y) that marks the end of fitting.
FIT_FRACTION = 0.95
_TIE = 1e-9  # relative: values this close to the peak are the same value (a plateau)


class Transition(NamedTuple):
    """Where a layer's gradient SNR falls below 1 for good (see the module's definitions)."""

    seed: Any
    layer: int
    epoch: int | None  # None: no transition (the last SNR measured is ≥ 1)
    status: str  # crossed | from_start | never
    last_snr: float


class Onset(NamedTuple):
    """Where a layer's compression starts (nats; see the module's definitions)."""

    seed: Any
    layer: int
    epoch: int | None  # None: the fall does not exceed the threshold
    status: str  # compresses | within_noise
    peak: float
    final: float
    fall: float
    threshold: float


class Fit(NamedTuple):
    """Where a layer's I(T;Y) reaches ``fraction`` of its final value for good (nats)."""

    seed: Any
    layer: int
    epoch: int | None  # None: the final value is not positive
    final: float


class EpochStats(NamedTuple):
    """Epochs of one event across seeds, for one layer: ``n`` of ``n_seeds`` seeds have one."""

    layer: int
    n: int
    n_seeds: int
    mean: float
    median: float
    min: float
    max: float

    def text(self) -> str:
        """``350 [300–420] (48/50)``: mean [min–max] (seeds with the event / seeds), or ``none
        (0/50)``; one seed: ``350`` or ``none``."""
        if self.n == 0:
            return "none" + (f" (0/{self.n_seeds})" if self.n_seeds > 1 else "")
        if self.n_seeds == 1:
            return f"{self.mean:.0f}"
        return f"{self.mean:.0f} [{self.min:.0f}–{self.max:.0f}] ({self.n}/{self.n_seeds})"


def _series(
    rows: Iterable[Mapping[str, Any]], estimator: str, quantity: str
) -> dict[tuple[Any, int], list[tuple[int, float, float]]]:
    """``{(seed, layer): [(epoch, value, stderr), ...] sorted by epoch}``; NaN values left out,
    the last row kept where a seed repeats an epoch."""
    cells: dict[tuple[Any, int], dict[int, tuple[float, float]]] = defaultdict(dict)
    for r in rows:
        if r["estimator"] != estimator or r["quantity"] != quantity or r["layer"] is None:
            continue
        value = float(r["value"])
        if not math.isnan(value):
            stderr = r.get("stderr")
            se = math.nan if stderr is None else float(stderr)
            cells[(r.get("seed"), int(r["layer"]))][int(r["epoch"])] = (value, se)
    order = sorted(cells, key=lambda k: (k[0] is None, str(k[0]), k[1]))
    return {k: [(e, *cells[k][e]) for e in sorted(cells[k])] for k in order}


def snr_transitions(rows: Iterable[Mapping[str, Any]]) -> list[Transition]:
    """Per seed and weight layer, the first measured epoch from which the gradient SNR stays
    below 1 (the ``gradients`` rows, quantity ``snr``; +inf counts as ≥ 1).

    >>> r = lambda e, v: {"seed": 3, "epoch": e, "layer": 2, "estimator": "gradients",
    ...                   "quantity": "snr", "value": v}
    >>> [t.status for t in snr_transitions([r(1, 0.5), r(5, 2.0), r(9, 0.9)])]
    ['crossed']
    >>> snr_transitions([r(1, 0.5), r(5, float("inf"))])[0].epoch is None
    True
    """
    out = []
    for (seed, layer), pts in _series(rows, "gradients", "snr").items():
        above = [i for i, (_, v, _) in enumerate(pts) if not v < 1.0]
        last = pts[-1][1]
        if above and above[-1] == len(pts) - 1:
            out.append(Transition(seed, layer, None, "never", last))
        elif not above:
            out.append(Transition(seed, layer, pts[0][0], "from_start", last))
        else:
            out.append(Transition(seed, layer, pts[above[-1] + 1][0], "crossed", last))
    return out


def compression_onsets(
    rows: Iterable[Mapping[str, Any]],
    estimator: str,
    *,
    quantity: str = "I_XT",
    n_stderr: float = N_STDERR,
    min_fall: float = MIN_FALL,
) -> list[Onset]:
    """Per seed and layer, the last epoch at which ``quantity`` of ``estimator`` is at its peak,
    if the fall from there to the last measured value exceeds ``max(min_fall, n_stderr ·
    sqrt(se_peak² + se_final²))`` (``min_fall`` alone where the rows give no standard error).

    Raises:
        ValueError: ``n_stderr`` or ``min_fall`` negative.

    >>> r = lambda e, v: {"seed": 0, "epoch": e, "layer": 1, "estimator": "bin:tishby:30",
    ...                   "quantity": "I_XT", "value": v, "stderr": float("nan")}
    >>> onset = compression_onsets([r(0, 8.0), r(10, 8.3), r(20, 8.3), r(90, 7.0)],
    ...                            "bin:tishby:30")[0]
    >>> onset.epoch, onset.status, round(onset.fall, 3)
    (20, 'compresses', 1.3)
    """
    if n_stderr < 0 or min_fall < 0:
        raise ValueError(f"n_stderr and min_fall must be >= 0, got {n_stderr!r}, {min_fall!r}")
    out = []
    for (seed, layer), pts in _series(rows, estimator, quantity).items():
        values = np.array([v for _, v, _ in pts])
        top = float(values.max())
        at_peak = np.flatnonzero(values >= top - _TIE * max(1.0, abs(top)))
        i = int(at_peak[-1])  # the end of a plateau at the peak
        (_, peak, se_p), (_, final, se_f) = pts[i], pts[-1]
        se = math.hypot(se_p, se_f)
        threshold = max(min_fall, n_stderr * se) if math.isfinite(se) else min_fall
        fall = peak - final
        if fall > threshold:
            out.append(Onset(seed, layer, pts[i][0], "compresses", peak, final, fall, threshold))
        else:
            out.append(Onset(seed, layer, None, "within_noise", peak, final, fall, threshold))
    return out


def fitting_epochs(
    rows: Iterable[Mapping[str, Any]],
    estimator: str,
    *,
    quantity: str = "I_TY",
    fraction: float = FIT_FRACTION,
) -> list[Fit]:
    """Per seed and layer, the first epoch from which ``quantity`` of ``estimator`` stays at or
    above ``fraction`` × its last measured value (None where that value is not positive).

    Raises:
        ValueError: ``fraction`` not in (0, 1].

    >>> r = lambda e, v: {"seed": 0, "epoch": e, "layer": 3, "estimator": "sp",
    ...                   "quantity": "I_TY", "value": v}
    >>> fitting_epochs([r(0, 0.1), r(5, 0.96), r(8, 0.9), r(20, 0.97), r(50, 1.0)], "sp")[0].epoch
    20
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    out = []
    for (seed, layer), pts in _series(rows, estimator, quantity).items():
        final = pts[-1][1]
        if not (math.isfinite(final) and final > 0):
            out.append(Fit(seed, layer, None, final))
            continue
        below = [i for i, (_, v, _) in enumerate(pts) if not v >= fraction * final]
        first = below[-1] + 1 if below else 0
        out.append(Fit(seed, layer, pts[first][0], final))
    return out


def epoch_stats(events: Iterable[Transition | Onset | Fit]) -> list[EpochStats]:
    """Per layer (sorted): how many seeds have the event, and the mean, median, min and max of
    their epochs (NaN where none has it).

    >>> ev = [Fit(s, 1, e, 1.0) for s, e in ((0, 10), (1, 30), (2, None))]
    >>> epoch_stats(ev)[0].text()
    '20 [10–30] (2/3)'
    """
    by_layer: dict[int, list[int | None]] = defaultdict(list)
    for ev in events:
        by_layer[ev.layer].append(ev.epoch)
    out = []
    for layer in sorted(by_layer):
        epochs = np.array([e for e in by_layer[layer] if e is not None], dtype=float)
        n, n_seeds = len(epochs), len(by_layer[layer])
        if n:
            stats = (epochs.mean(), np.median(epochs), epochs.min(), epochs.max())
        else:
            stats = (math.nan,) * 4
        out.append(EpochStats(layer, n, n_seeds, *(float(s) for s in stats)))
    return out


def median_epoch(events: Iterable[Transition | Onset | Fit]) -> dict[int, float]:
    """Per layer, the median epoch over all seeds, a seed without the event counting as later
    than every epoch: finite only when more than half the seeds have it (else +inf).

    >>> median_epoch([Fit(0, 1, 10, 1.0), Fit(1, 1, None, 1.0), Fit(2, 1, 30, 1.0)])
    {1: 30.0}
    """
    by_layer: dict[int, list[float]] = defaultdict(list)
    for ev in events:
        by_layer[ev.layer].append(math.inf if ev.epoch is None else float(ev.epoch))
    out = {}
    for layer in sorted(by_layer):
        v = sorted(by_layer[layer])
        mid = len(v) // 2
        out[layer] = v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2
    return out


#: The measures of :func:`phase_table`, in its order.
PHASE_MEASURES = ("snr_transition", "compression_onset", "fitting")


def phase_table(rows: Sequence[Mapping[str, Any]], estimator: str | None) -> list[dict[str, Any]]:
    """Per measure of :data:`PHASE_MEASURES` and layer: the :class:`EpochStats` as a dict
    (``measure``, ``layer``, ``n``, ``n_seeds``, ``mean``, ``median``, ``min``, ``max``). The SNR
    transition comes from the gradient rows (its layers are weight layers, the read-out last);
    compression and fitting from ``estimator``'s I(X;T) and I(T;Y) (none when it is None)."""
    parts: list[tuple[str, list]] = [("snr_transition", snr_transitions(rows))]
    if estimator is not None:
        parts.append(("compression_onset", compression_onsets(rows, estimator)))
        parts.append(("fitting", fitting_epochs(rows, estimator)))
    return [{"measure": m, **s._asdict()} for m, events in parts for s in epoch_stats(events)]


def typical_stderr(rows: Iterable[Mapping[str, Any]], estimator: str, quantity: str) -> float:
    """The median finite standard error of ``estimator``'s ``quantity`` rows (nats); NaN when
    they record none (binned estimators)."""
    se = [
        float(r["stderr"])
        for r in rows
        if r["estimator"] == estimator
        and r["quantity"] == quantity
        and r.get("stderr") is not None
        and math.isfinite(float(r["stderr"]))
    ]
    return float(np.median(se)) if se else math.nan


# ---------------------------------------------------------------------------------- final weights


def _check_weights(w: np.ndarray, name: str = "w") -> np.ndarray:
    w = np.asarray(w, dtype=float)
    if w.ndim != 3:
        raise ValueError(f"{name} must have shape (members, out, in), got {w.shape}")
    return w


def member_correlations(w: np.ndarray) -> np.ndarray:
    """Pearson correlation between the members' flattened weights of one layer.

    Args:
        w: ``(K, out, in)``, member k's weight matrix ``w[k]``.

    Returns:
        ``(K, K)`` matrix, ones on the diagonal (NaN for a member whose weights are constant).

    >>> w = np.stack([np.eye(2), 2 * np.eye(2), 1 - np.eye(2)])
    >>> member_correlations(w).round(3).tolist()
    [[1.0, 1.0, -1.0], [1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]]
    """
    flat = _check_weights(w).reshape(len(w), -1)
    flat = flat - flat.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(flat, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (flat @ flat.T) / np.outer(norm, norm)


def pairs(matrix: np.ndarray) -> np.ndarray:
    """The entries above the diagonal of a square matrix (each pair of members once)."""
    return matrix[np.triu_indices(len(matrix), k=1)]


def unit_correlation(w: np.ndarray) -> np.ndarray:
    """Per member, the mean Pearson correlation between the incoming weight vectors of the
    layer's units (rows of ``w[k]``), over all pairs of units: the inner quantity of IDNNs'
    ``plot_pearson``, which draws ``|mean over members| × sqrt(units)`` per layer.

    Args:
        w: ``(K, out, in)``.

    Returns:
        ``(K,)``; NaN for a layer with fewer than 2 units or 2 inputs.

    >>> unit_correlation(np.array([[[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [3.0, 2.0, 1.0]]]))  # (1-1-1)/3
    array([-0.33333333])
    """
    w = _check_weights(w)
    k, out, n_in = w.shape
    if out < 2 or n_in < 2:
        return np.full(k, math.nan)
    rows = w - w.mean(axis=2, keepdims=True)
    rows = rows / np.linalg.norm(rows, axis=2, keepdims=True)
    corr = rows @ rows.transpose(0, 2, 1)  # (K, out, out)
    iu = np.triu_indices(out, k=1)
    return corr[:, iu[0], iu[1]].mean(axis=1)


def align_members(
    layers: Sequence[np.ndarray], *, odd: bool = False, max_sweeps: int = 50
) -> list[np.ndarray]:
    """The members' weights with each member's hidden units renumbered (and, for an odd
    activation such as tanh, sign-flipped) to match member 0's as closely as possible.

    Hidden units are interchangeable: permuting the units of a hidden layer (the rows of its
    weights and the matching input columns of the next layer) gives the same function, and with an
    odd activation so does negating a unit's incoming and outgoing weights. Member m is matched to
    member 0 by weight matching (Ainsworth et al. 2023, "Git Re-Basin"): coordinate ascent over
    the hidden layers, each step the permutation of one layer's units that maximises the summed
    cosine similarity of the incoming and the outgoing weights with member 0's, given the other
    layers' permutations (:func:`scipy.optimize.linear_sum_assignment`; |similarity| with
    ``odd``), until no permutation changes (at most ``max_sweeps`` sweeps). It starts from a
    forward pass that matches each layer's units on the Pearson correlation of their incoming
    weights alone (exact for a member that is member 0 renumbered); the ascent never lowers the
    similarity from there. The read-out's rows (the classes) are never permuted. A layer whose
    inputs are not a whole multiple of the previous layer's units is not a chain link: its units
    are matched on their incoming weights alone.

    Args:
        layers: per weight layer, ``(K, out, in)``; a convolution flattened ``(K, out,
            in·kh·kw)`` (inputs channel-major, as PyTorch flattens).
        odd: whether the activation is odd (tanh, linear): sign flips are allowed.
        max_sweeps: bound on the coordinate-ascent sweeps per member.

    Returns:
        The aligned ``(K, out, in)`` arrays (member 0 unchanged).

    >>> rng = np.random.default_rng(0)
    >>> w1, w2 = rng.normal(size=(1, 4, 3)), rng.normal(size=(1, 2, 4))
    >>> p = np.array([2, 0, 3, 1])  # member 1: member 0 with its hidden units renumbered
    >>> out = align_members([np.concatenate([w1, w1[:, p]]), np.concatenate([w2, w2[:, :, p]])])
    >>> bool(np.allclose(out[0][1], w1[0]) and np.allclose(out[1][1], w2[0]))
    True
    """
    ws = [_check_weights(w, f"layers[{i}]").copy() for i, w in enumerate(layers)]
    for m in range(1, ws[0].shape[0]) if ws else ():
        perms, signs = _match_member([w[0] for w in ws], [w[m] for w in ws], odd, max_sweeps)
        for i, w in enumerate(ws):
            w[m] = _transform(w[m], perms, signs, i)
    return ws


def _blocks(w: np.ndarray, units: int) -> int | None:
    """Columns per unit of a previous layer with ``units`` units; None if not a chain link."""
    return w.shape[1] // units if w.shape[1] % units == 0 else None


def _rows(w: np.ndarray, perm: np.ndarray, sign: np.ndarray) -> np.ndarray:
    """Rows in the reference's order: row r is my unit ``perm[r]``, times ``sign[r]``."""
    return w[perm] * sign[:, None]


def _cols(w: np.ndarray, perm: np.ndarray, sign: np.ndarray) -> np.ndarray:
    """Input columns in the reference's order (a block of columns per unit of the previous
    layer); unchanged where ``w`` is not a chain link."""
    blk = _blocks(w, len(perm))
    if blk is None:
        return w
    cols = (perm[:, None] * blk + np.arange(blk)).ravel()
    return w[:, cols] * np.repeat(sign, blk)[None, :]


def _transform(
    w: np.ndarray, perms: Sequence[np.ndarray], signs: Sequence[np.ndarray], i: int
) -> np.ndarray:
    """Layer ``i`` of a member in the reference's numbering: rows by its own permutation (a
    hidden layer), columns by the previous layer's."""
    if i < len(perms):
        w = _rows(w, perms[i], signs[i])
    return _cols(w, perms[i - 1], signs[i - 1]) if i > 0 else w


def _assign(sim: np.ndarray, odd: bool) -> tuple[np.ndarray, np.ndarray]:
    """The permutation (my unit for each reference unit) maximising the summed similarity, and
    the signs (|similarity| and its sign with ``odd``)."""
    from scipy.optimize import linear_sum_assignment

    _, perm = linear_sum_assignment(np.abs(sim) if odd else sim, maximize=True)
    picked = sim[np.arange(len(perm)), perm]
    return perm, np.where(picked < 0, -1.0, 1.0) if odd else np.ones(len(perm))


def _match_member(
    ref: Sequence[np.ndarray], mine: Sequence[np.ndarray], odd: bool, max_sweeps: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Permutations and signs of the hidden layers (all layers but the last) of ``mine`` that
    match ``ref`` (one member each): weight matching by coordinate ascent."""
    hidden = len(ref) - 1
    perms: list[np.ndarray] = []
    signs: list[np.ndarray] = []
    for i in range(hidden):  # a first guess, forwards: units on their incoming weights alone
        incoming = _cols(mine[i], perms[i - 1], signs[i - 1]) if i else mine[i]
        perm, sign = _assign(_centred(ref[i]) @ _centred(incoming).T, odd)
        perms.append(perm)
        signs.append(sign)
    scale = [
        max(np.linalg.norm(a) * np.linalg.norm(b), 1e-300) for a, b in zip(ref, mine, strict=True)
    ]
    for _ in range(max_sweeps):
        changed = False
        for i in range(hidden):
            incoming = _cols(mine[i], perms[i - 1], signs[i - 1]) if i else mine[i]
            sim = ref[i] @ incoming.T / scale[i]  # [ref unit, my unit]
            blk = _blocks(ref[i + 1], len(ref[i]))
            if blk is not None:
                nxt = mine[i + 1]
                outgoing = _rows(nxt, perms[i + 1], signs[i + 1]) if i + 1 < hidden else nxt
                a = ref[i + 1].reshape(len(ref[i + 1]), len(ref[i]), blk)
                b = outgoing.reshape(len(outgoing), len(ref[i]), blk)
                sim = sim + np.einsum("mit,mjt->ij", a, b) / scale[i + 1]
            perm, sign = _assign(sim, odd)
            if not (np.array_equal(perm, perms[i]) and np.array_equal(sign, signs[i])):
                perms[i], signs[i], changed = perm, sign, True
        if not changed:
            break
    return perms, signs


def _centred(rows: np.ndarray) -> np.ndarray:
    """Rows minus their mean, scaled to unit norm (constant rows become zeros): row · row' is
    then their Pearson correlation."""
    c = rows - rows.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(c, axis=1, keepdims=True)
    return np.divide(c, norm, out=np.zeros_like(c), where=norm > 0)
