"""Binned (discretised) information of one layer: H(Bin T), I(X; Bin T), I(Bin T; Y), in nats.

Three binning schemes are offered:

* ``"tishby"`` — Shwartz-Ziv & Tishby (2017) public code, reproduced bit for bit, quirks included:
  ``edges = linspace(lo, hi, n_bins).astype(float32)`` (computed in float64, then rounded to
  float32, as both their code and Saxe et al.'s do) and every value ``v`` is replaced by
  ``edges[digitize(v, edges) - 1]``; numpy's ``digitize`` returns 0 for ``v < lo``, so those values
  land (index ``-1``) in the *last* bin, together with ``v >= hi``. The comparison ``v >= edge``
  is exact (numpy promotes both sides to a common type without rounding); with the float32 edges,
  14 of the 30 edges of ``linspace(-1, 1, 30)`` lie below their float64 value, and a value exactly
  at such an edge goes to the upper bin where a float64 rule would put it in the lower one.
* ``"width"`` — Saxe et al. (2018): ``floor(v / bin_size)`` on an unbounded grid anchored at 0
  (right for ReLU layers, whose values are not bounded by 1). As in their code, the division is
  done in float32 for float32 activations (numpy divides a float32 array by a Python float in
  float32, with ``bin_size`` rounded to float32) and in float64 for any other dtype; values
  next to a multiple of ``bin_size`` may land one bin apart under the two precisions.
* ``"adaptive"`` — equal-mass bins per layer (Chelombiev et al., 2019): ``n_bins - 1`` interior
  edges at the ``k / n_bins`` quantiles of all the layer's values.

X is the sample's identity: rows are distinct samples, the map is deterministic, so
H(Bin T | X) = 0 and I(X; Bin T) = H(Bin T). Pass ``sample_ids`` when the same input appears in
several rows (e.g. noisy copies): then I(X; Bin T) = H(Bin T) + H(X) - H(X, Bin T).

Rows are counted exactly (no hashing, no collisions) with ``torch.unique(codes, dim=0)``; joint
counts with labels or sample ids use a collision-free pair code ``t_id * n_y + y_id``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from infoflow.estimators.checks import check_activations, check_labels

__all__ = [
    "SCHEMES",
    "bin_codes",
    "binned_information",
    "empirical_entropy",
]

SCHEMES = ("tishby", "width", "adaptive")


def _tishby_edges(n_bins: int, lo: float, hi: float, device) -> Tensor:
    """The original code's edges: float64 ``linspace`` rounded to float32, held exactly in
    float64 (``np.linspace(lo, hi, n, dtype="float32")`` gives the same values)."""
    edges = np.linspace(lo, hi, n_bins).astype(np.float32).astype(np.float64)
    return torch.as_tensor(edges, dtype=torch.float64, device=device)


def _tishby_codes(x: Tensor, n_bins: int, lo: float, hi: float) -> Tensor:
    # digitize(v, edges) (right=False, non-decreasing edges) == searchsorted(edges, v, side="right")
    # = i in [0, n_bins]. numpy compares v with the float32 edges exactly (both promoted to a
    # common type without rounding). float32 holds every float32 edge and every float16/32 value
    # exactly, so for those activations comparing in float32 is the same test (and half the
    # memory traffic of float64); float64 activations are compared in float64.
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    edges = _tishby_edges(n_bins, lo, hi, x.device).to(dtype)
    idx = torch.searchsorted(edges, x.to(dtype).contiguous(), right=True)
    # edges[i - 1]: i = 0 (v < lo) wraps to the last edge, the same bin as i = n_bins (v >= hi).
    # Distinct indices are distinct edge values: two equal float32 edges leave an empty bin.
    return idx.masked_fill_(idx == 0, n_bins) - 1


def _width_codes(x: Tensor, bin_size: float, n_bins: int | None, rng: tuple | None) -> Tensor:
    if n_bins is None:
        # Saxe et al.'s np.floor(x / binsize): float32 / Python float is a float32 division in
        # numpy, by float32(binsize). A 0-d tensor divisor (not a Python scalar) keeps it a true
        # IEEE division on every device (CUDA multiplies by the reciprocal of a scalar divisor).
        dtype = torch.float32 if x.dtype == torch.float32 else torch.float64
        size = torch.tensor(bin_size, dtype=dtype, device=x.device)
        return torch.floor(x.to(dtype) / size).long()
    x = x.double()
    lo, hi = rng if rng is not None else (x.min().item(), x.max().item())
    width = (hi - lo) / n_bins
    if width <= 0:
        return torch.zeros_like(x, dtype=torch.long)
    return torch.floor((x - lo) / width).long().clamp(0, n_bins - 1)


def _adaptive_codes(x: Tensor, n_bins: int) -> Tensor:
    flat = x.double().reshape(-1)
    s = torch.sort(flat).values
    pos = (torch.arange(1, n_bins, device=x.device) * flat.numel()) // n_bins
    edges = s[pos]
    return torch.searchsorted(edges, x.double().contiguous(), right=True)


def bin_codes(
    activations: Tensor,
    *,
    n_bins: int | None = None,
    bin_size: float | None = None,
    value_range: tuple[float, float] | None = None,
    scheme: str = "tishby",
) -> Tensor:
    """Integer bin index of every activation, shape (n, d), dtype int64, same device.

    Two values share a code iff the scheme puts them in the same bin. Exactly one of ``n_bins``
    and ``bin_size`` must be given (a single value). Rules (see the module docstring):

    * ``tishby``: ``n_bins`` edges ``linspace(lo, hi, n_bins)`` rounded to float32, default
      ``(lo, hi) = (-1, 1)``; ``bin_size`` gives ``n_bins = round((hi - lo) / bin_size) + 1`` edges.
    * ``width``: ``bin_size`` gives ``floor(v / bin_size)``, divided in float32 for float32
      activations and in float64 otherwise; ``n_bins`` gives ``n_bins`` equal bins over
      ``value_range`` (default: the layer's [min, max]), ``floor((v - lo) / w)`` in float64,
      clipped to ``[0, n_bins - 1]``, ``w = (hi - lo) / n_bins``.
    * ``adaptive``: ``n_bins`` equal-mass bins over all the layer's values (``bin_size`` invalid).

    Example:
        >>> bin_codes(torch.tensor([[-2.0, 0.05, 1.0]]), n_bins=3).tolist()
        [[2, 1, 2]]
    """
    if activations.is_complex() or not activations.is_floating_point():
        activations = activations.double()
    size = _check_size(n_bins, bin_size, scheme, value_range)
    if isinstance(size, Sequence):
        raise ValueError("bin_codes takes a single n_bins or bin_size, not a list")
    return _codes(activations, scheme, n_bins is not None, size, value_range)


def _check_size(n_bins, bin_size, scheme: str, value_range):
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    if (n_bins is None) == (bin_size is None):
        raise ValueError("give exactly one of n_bins and bin_size")
    if scheme == "adaptive" and bin_size is not None:
        raise ValueError("bin_size is not supported with scheme='adaptive'; give n_bins")
    if value_range is not None:
        lo, hi = value_range
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"value_range must be finite (lo, hi) with lo < hi, got {value_range}")
    sizes = n_bins if n_bins is not None else bin_size
    for s in sizes if isinstance(sizes, Sequence) else [sizes]:
        if n_bins is not None and (isinstance(s, bool) or int(s) != s or s < 1):
            raise ValueError(f"n_bins must be integers >= 1, got {s!r}")
        if bin_size is not None and not (math.isfinite(s) and s > 0):
            raise ValueError(f"bin_size must be > 0 and finite, got {s!r}")
    return sizes


def _codes(x: Tensor, scheme: str, by_count: bool, size, value_range) -> Tensor:
    if scheme == "tishby":
        lo, hi = value_range if value_range is not None else (-1.0, 1.0)
        n = int(size) if by_count else int(round((hi - lo) / size)) + 1
        return _tishby_codes(x, n, lo, hi)
    if scheme == "width":
        if by_count:
            return _width_codes(x, 0.0, int(size), value_range)
        return _width_codes(x, float(size), None, None)
    return _adaptive_codes(x, int(size))


def _dense(key: Tensor) -> tuple[Tensor, int]:
    uniq, inv = torch.unique(key, return_inverse=True)
    return inv, uniq.numel()


def _row_ids(codes: Tensor) -> Tensor:
    """Dense id of each distinct row of an integer (n, d) matrix: exact lexicographic unique."""
    return torch.unique(codes, dim=0, return_inverse=True)[1]


def _member_row_ids(codes: Tensor) -> Tensor:
    """Dense ids of the distinct (member, row) pairs of integer codes (K, n, d), shape (K, n): two
    rows share an id iff they belong to the same member and are equal. One mixed-radix int64 key
    per row when the codes' span allows it (a 1-D unique), else an exact lexicographic unique."""
    k, n, d = codes.shape
    member = torch.arange(k, device=codes.device).view(k, 1).expand(k, n)
    lo = codes.amin(dim=(0, 1))
    span = codes.amax(dim=(0, 1)) - lo + 1
    if math.log2(k) + float(torch.log2(span.double()).sum()) < 62:
        key = member.clone()
        for j in range(d):
            key = key * span[j] + (codes[..., j] - lo[j])
        return _dense(key.reshape(-1))[0].view(k, n)
    rows = torch.cat([member.unsqueeze(-1), codes], dim=-1).reshape(k * n, d + 1)
    return _row_ids(rows).view(k, n)


def _member_entropies(ids: Tensor) -> Tensor:
    """Entropy (nats) of each member's ids (K, n), where no id is shared by two members: (K,)."""
    k, n = ids.shape
    flat = ids.reshape(-1)
    counts = torch.bincount(flat).double()
    owner = torch.zeros(counts.numel(), dtype=torch.long, device=ids.device)
    owner[flat] = torch.arange(k, device=ids.device).repeat_interleave(n)
    p = counts / n
    terms = torch.where(counts > 0, -p * p.clamp_min(1e-300).log(), torch.zeros_like(p))
    return torch.zeros(k, dtype=torch.float64, device=ids.device).scatter_add_(0, owner, terms)


def _members_info(codes: Tensor, labels: Tensor, sample_ids: Tensor | None) -> list[dict]:
    """H(T), I(X;T), I(T;Y) of each member from its integer codes (K, n, d) and labels (K, n)
    (and the ids of the inputs behind the rows, (K, n), when inputs repeat)."""
    k = codes.shape[0]
    member = torch.arange(k, device=codes.device).view(k, 1)
    t_ids = _member_row_ids(codes)

    def joint(ids: Tensor) -> Tensor:
        """Each member's entropy of (T, ids): ids dense over all members, (K, n) -> (K,)."""
        ids, n_ids = _dense(ids.reshape(-1))
        return _member_entropies(_dense(t_ids.reshape(-1) * n_ids + ids)[0].view(t_ids.shape))

    h_t = _member_entropies(t_ids)
    y_ids = _dense(labels.reshape(-1))[0].view(labels.shape)
    n_y = int(y_ids.max()) + 1
    i_ty = (h_t + _member_entropies(member * n_y + y_ids) - joint(y_ids)).clamp_min(0)
    i_xt = h_t
    if sample_ids is not None:  # I(X;T) = H(T) + H(X) − H(X, T) when inputs repeat
        x_ids = _dense(sample_ids.reshape(-1))[0].view(sample_ids.shape)
        n_x = int(x_ids.max()) + 1
        i_xt = (h_t + _member_entropies(member * n_x + x_ids) - joint(x_ids)).clamp_min(0)
    return [
        {"H_T": float(h), "I_XT": float(x), "I_TY": float(i)}
        for h, x, i in zip(h_t.tolist(), i_xt.tolist(), i_ty.tolist(), strict=True)
    ]


def _as_members(activations: Tensor, labels: Tensor, sample_ids: Tensor | None) -> tuple:
    """(activations (K, n, d), labels (K, n), sample_ids (K, n) | None, whether one network)."""
    one = isinstance(activations, Tensor) and activations.ndim in (1, 2)
    if one:
        activations = activations.reshape(activations.shape[0], -1)[None]
    if not isinstance(activations, Tensor) or activations.ndim != 3:
        got = tuple(activations.shape) if isinstance(activations, Tensor) else type(activations)
        raise ValueError(f"activations must be (n, d) or (K, n, d), got {got}")
    k, n, d = activations.shape
    check_activations(activations.reshape(k * n, d), keep_float=True)

    def per_member(t: Tensor | None, name: str) -> Tensor | None:
        if t is None:
            return None
        t = t.expand(k, n) if isinstance(t, Tensor) and t.ndim == 1 and t.shape[0] == n else t
        if not isinstance(t, Tensor) or tuple(t.shape) != (k, n):
            got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(
                f"{name} must be ({n},) or ({k}, {n}) for these activations, got {got}"
            )
        check_labels(t.reshape(-1), k * n, name)
        return t.to(activations.device)

    return activations, per_member(labels, "labels"), per_member(sample_ids, "sample_ids"), one


def binned_information(
    activations: Tensor,
    labels: Tensor,
    *,
    n_bins: int | Sequence[int] | None = None,
    bin_size: float | Sequence[float] | None = None,
    value_range: tuple[float, float] | None = None,
    scheme: str = "tishby",
    sample_ids: Tensor | None = None,
) -> dict | list[dict]:
    r"""Entropy and mutual informations of a binned layer, in nats, for one network or for K at
    once (an ensemble's members: one ``unique`` per bin size for all of them).

    With :math:`B` the bin map of ``scheme`` applied to every unit and :math:`t_i = B(h_i)`:

    .. math::
        H(T) = -\sum_t p(t)\ln p(t), \quad I(X;T) = H(T) - H(T|X) = H(T)\ \text{(distinct rows)},
        \quad I(T;Y) = H(T) - \sum_y p(y) H(T|Y=y),

    with every probability the empirical frequency over the n rows (of each member).

    Args:
        activations: (n, d) float tensor, one layer's representation of n samples, or (K, n, d),
            member k's (CPU or CUDA); its dtype matters only to ``width`` with ``bin_size``
            (float32 division for float32).
        labels: (n,) integer class labels, or (K, n), member k's.
        n_bins: number of bins (``tishby``: number of edges, 30 in the paper), or a list of them.
        bin_size: bin width, or a list of widths (not with ``adaptive``).
        value_range: (lo, hi) for ``tishby`` (default (-1, 1)) and for ``width`` with ``n_bins``
            (default: the layer's min and max, each member's own); ignored otherwise.
        scheme: ``"tishby"``, ``"width"`` or ``"adaptive"`` (see :func:`bin_codes`; rules that
            look at a layer's values take each member's own).
        sample_ids: optional (n,) or (K, n) integer ids of the input behind each row, for
            repeated inputs.

    Returns:
        ``{"H_T", "I_XT", "I_TY"}`` as floats in nats (if ``n_bins`` or ``bin_size`` is a list,
        a dict from each size to such a mapping); for (K, n, d) activations a list of K of them.

    Example:
        >>> h = torch.tensor([[0.1], [0.12], [0.9], [-0.5]])
        >>> r = binned_information(h, torch.tensor([0, 0, 1, 1]), bin_size=0.5, scheme="width")
        >>> round(r["H_T"], 4), round(r["I_TY"], 4)  # bins {0, 0, 1, -1}
        (1.0397, 0.6931)
        >>> two = torch.stack([h[:, 0], torch.tensor([0.1, 0.2, 0.3, 0.4])])[..., None]
        >>> [round(m["I_TY"], 4) for m in binned_information(two, torch.tensor([0, 0, 1, 1]), bin_size=0.5, scheme="width")]
        [0.6931, 0.0]
    """
    activations, labels, sample_ids, one = _as_members(activations, labels, sample_ids)
    sizes = _check_size(n_bins, bin_size, scheme, value_range)
    by_count = n_bins is not None
    per_member = scheme == "adaptive" or (scheme == "width" and by_count and value_range is None)

    def at(size) -> list[dict]:
        if per_member:
            codes = torch.stack(
                [_codes(a, scheme, by_count, size, value_range) for a in activations]
            )
        else:
            codes = _codes(activations, scheme, by_count, size, value_range)
        return _members_info(codes, labels, sample_ids)

    if isinstance(sizes, Sequence):
        per_size = {size: at(size) for size in sizes}
        results = [{size: r[k] for size, r in per_size.items()} for k in range(len(activations))]
    else:
        results = at(sizes)
    return results[0] if one else results


def empirical_entropy(samples: Tensor) -> float:
    """Entropy (nats) of the empirical distribution of the rows of ``samples`` (duplicates
    counted): the most I(X;T) can be when these are the inputs measured, or I(T;Y) these the
    labels.

    >>> round(empirical_entropy(torch.tensor([0, 0, 1, 2])), 4)  # -(1/2 ln 1/2 + 2 · 1/4 ln 1/4)
    1.0397
    """
    rows = samples.reshape(len(samples), -1)
    counts = torch.unique(rows, dim=0, return_counts=True)[1].double()
    p = counts / counts.sum()
    return float(-(p * p.log()).sum())
