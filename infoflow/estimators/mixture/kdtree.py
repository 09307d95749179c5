r"""Certified Gaussian kernel sums on the CPU: one k-d tree per group, walked query by query.

For queries q and centres c_k in groups (classes) g = 0..G−1, s = 1/(2σ²):

.. math::
    S(q) = \sum_k e^{-s\|q - c_k\|^2}, \qquad S_g(q) = \sum_{k \in g} e^{-s\|q - c_k\|^2},

each with a bound on its relative error, checked query by query by the caller.

How (compiled with numba; the cost follows the centres within a few σ of each query):

1. Build: per group a k-d tree of fixed depth (each node split near the median of its widest
   side, in one pass per level; the subtrees below the top levels in parallel; leaves of about
   ``leaf`` centres), every node with its bounding box; the centres are stored feature-major in
   leaf order, so that a leaf is a few contiguous rows, as given (float32 or float64) and,
   relative to the leaf's centre o, in float32.
2. Walk: each query visits the trees depth first, nearer child first, the group it needs first
   (its own class in SP). A node whose box lies at squared distance r² from q is skipped when
   e^{−s r²} ≤ ε·L/n, with L = max(caller's lower bound, the needed group's sum so far) a sure
   lower bound on S_needed(q) and n all centres: together the skipped centres weigh at most
   ε·L ≤ ε·S_needed(q) ≤ ε·S(q). Each skipped node adds count·e^{−s r²} to the query's skipped
   mass, which is reported. Visiting near nodes first raises L early and so prunes most.
3. Leaf terms are computed in float32 on the relative coordinates a = q − o, b = c − o, with an
   exponential that vectorises (Cody–Waite reduction, a Taylor polynomial, the power of two from
   its exponent bits; :func:`_exp32`), and summed in float64. With ‖b‖ ≤ ρ (the leaf's radius)
   and u = 2⁻²⁴, each exponent E = s‖a − b‖² is computed within (d + 6)·u·s·(‖a‖ + ρ)² (the
   rounding of a and b, of the d differences, squares and sums, and of the product with s), the
   exponential within _EXP32_ERR·u, all relative, and the float64 sum adds (leaf size)·2⁻⁵²:
   that bound times the leaf's sum is added to the query's rounding error. A leaf whose exponent bound exceeds 10⁻³
   (far, or wide) is summed in float64 instead (:func:`_exp`, relative error < 1e-14).

Then |log S_true − log S| ≤ err/(S − err) with err = skipped mass + rounding (float32 leaves,
and (n + G)·2⁻⁵² of the float64 sums): what the caller checks against its tolerance
(:func:`.entropy.certified_log_sums` recomputes a query exactly when its bound is over).

Threads: queries are ordered along the first tree's leaves (neighbours share cache lines) and
dealt to ``numba`` threads in interleaved chunks (even load); the count is torch's, which the
thread policy sets (:mod:`infoflow.threads`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np
import torch
from numba import types
from numba.extending import intrinsic
from torch import Tensor

from infoflow.estimators.mixture.index import KernelSums, _log_error, exact_log_sums

_FAST = {"contract", "reassoc", "arcp", "nsz", "afn"}  # no nnan/ninf: −inf bounds are meaningful
_LOG2E = 1.4426950408889634
_LN2_HI = 0.693147180369123816490
_LN2_LO = 1.90821492927058770002e-10
_U32 = 2.0**-24  # float32 unit roundoff
_EXP32_ERR = 16  # relative error of _exp32 in units of _U32 (reduction, polynomial, rounding)
_TAYLOR64 = tuple(1.0 / math.factorial(k) for k in range(11, -1, -1))  # 1/11!, …, 1/0!
_TAYLOR32 = tuple(np.float32(1.0 / math.factorial(k)) for k in range(7, -1, -1))
_STACK = 128  # node stack per query walk (a fixed-depth tree needs depth + 2 per group)
_CHUNK = 64  # queries per scheduling chunk


@intrinsic
def _bits_as_float(typingctx, x):
    """Reinterpret an int64's (int32's) bits as a float64 (float32), with no memory round trip,
    so that loops around it vectorise."""
    fty = types.float64 if x.bitwidth == 64 else types.float32
    sig = fty(x)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(fty))

    return sig, codegen


@numba.njit(fastmath=_FAST, inline="always", cache=True)
def _exp(x: float) -> float:
    """e^x for x ≤ 0 (clamped at −700), relative error < 1e-14 (tested); vectorises inside loops.
    Cody–Waite reduction x = k ln2 + y, |y| ≤ ln2/2; e^y by its degree-11 Taylor polynomial
    (Horner); 2^k from its exponent bits."""
    x = max(x, -700.0)
    k = np.floor(x * _LOG2E + 0.5)
    y = (x - k * _LN2_HI) - k * _LN2_LO
    p = 0.0
    for c in _TAYLOR64:
        p = p * y + c
    return p * _bits_as_float((np.int64(k) + 1023) << 52)


@numba.njit(fastmath=_FAST, inline="always", cache=True)
def _exp32(x):
    """e^x in float32 for −87 ≤ x ≤ 0, relative error ≤ _EXP32_ERR·2⁻²⁴ (tested): as :func:`_exp`,
    with a degree-7 polynomial and every step in float32."""
    x = max(x, np.float32(-87.0))
    k = np.floor(x * np.float32(_LOG2E) + np.float32(0.5))
    y = (x - k * np.float32(0.693359375)) - k * np.float32(-2.12194440e-4)
    p = np.float32(0.0)
    for c in _TAYLOR32:
        p = p * y + c
    return p * _bits_as_float(np.int32((np.int32(k) + np.int32(127)) << np.int32(23)))


@numba.njit(cache=True, inline="always")
def _swap(x, perm, i, j):
    for k in range(x.shape[0]):
        x[k, i], x[k, j] = x[k, j], x[k, i]
    perm[i], perm[j] = perm[j], perm[i]


@numba.njit(cache=True)
def _select(x, perm, dim, a, b, nth):
    """Reorder columns a..b−1 of x (d, n) so that x[dim, nth] is their (nth − a)-th smallest,
    with no larger value before it and no smaller one after it (exact; handles ties)."""
    key = x[dim]
    lo, hi = a, b - 1
    while lo < hi:
        pivot = key[(lo + hi) // 2]
        i, j = lo, hi
        while i <= j:
            while key[i] < pivot:
                i += 1
            while key[j] > pivot:
                j -= 1
            if i <= j:
                _swap(x, perm, i, j)
                i += 1
                j -= 1
        if nth <= j:
            hi = j
        elif nth >= i:
            lo = i
        else:
            break


@numba.njit(cache=True)
def _split(x, perm, dim, a, b):
    """Split columns a..b−1 of x (d, n) near their median along ``dim`` in one pass (pivot: the
    median of 31 to 255 evenly spaced samples); returns the first column of the upper part. An
    uneven split (ties, a poor sample) falls back to the exact median (:func:`_select`)."""
    key = x[dim]
    m = min(255, max(31, (b - a) // 64), b - a)
    step = (b - a) // m
    sample = np.empty(m)
    for t in range(m):
        sample[t] = key[a + t * step]
    pivot = np.median(sample)
    i, j = a, b - 1
    while True:
        while i <= j and key[i] < pivot:
            i += 1
        while i <= j and key[j] >= pivot:
            j -= 1
        if i >= j:
            break
        _swap(x, perm, i, j)
        i += 1
        j -= 1
    quarter = (b - a) // 4
    if a + quarter <= i <= b - quarter and a < i < b:
        return i
    mid = (a + b) // 2
    _select(x, perm, dim, a, b, mid)
    return mid


@numba.njit(cache=True, inline="always")
def _box(x, a, b, step, lo, hi):
    """Bounding box of columns a, a + step, … < b of x (d, n) into lo, hi (d,)."""
    for j in range(x.shape[0]):
        row = x[j, a:b]
        low, high = row[0], row[0]
        for i in range(step, b - a, step):
            v = row[i]
            if v < low:
                low = v
            if v > high:
                high = v
        lo[j], hi[j] = low, high


@numba.njit(cache=True, inline="always")
def _split_node(x, perm, node, lo, hi, start, stop):
    """Split an internal node near the median of its widest side (judged on ≤ 256 points)."""
    a, b = start[node], stop[node]
    mid = (a + b) // 2
    if b - a >= 2:
        _box(x, a, b, max(1, (b - a) // 256), lo[node], hi[node])
        mid = _split(x, perm, np.argmax(hi[node] - lo[node]), a, b)
    start[2 * node + 1], stop[2 * node + 1] = a, mid
    start[2 * node + 2], stop[2 * node + 2] = mid, b


@numba.njit(cache=True, inline="always")
def _finish_leaf(x, rel, node, lo, hi, start, stop, center, radius):
    """A leaf's exact box, centre o (the box's middle), radius max ‖c − o‖ and its centres
    relative to o in float32."""
    if stop[node] == start[node]:
        lo[node], hi[node] = np.inf, -np.inf  # empty: never visited
        return
    _box(x, start[node], stop[node], 1, lo[node], hi[node])
    d = x.shape[0]
    for j in range(d):
        center[node, j] = 0.5 * (lo[node, j] + hi[node, j])
    for k in range(start[node], stop[node]):
        r2 = 0.0
        for j in range(d):
            t = x[j, k] - center[node, j]
            rel[j, k] = t
            r2 += t * t
        radius[node] = max(radius[node], math.sqrt(r2))


@numba.njit(parallel=True, cache=True)
def _build(x, perm, rel, a, b, depth, top):
    """A fixed-depth k-d tree over columns a..b−1 of x (d, n), reordered in place into leaf
    order (``perm`` (n,) in step: each column's original index): (lo, hi, start, stop, center,
    radius), nodes in heap order. Each node is split near
    the median of its widest side; boxes are exact (leaves, then unions); each leaf's centre o,
    radius and float32 centres relative to o (into ``rel``) come in the same sweep. The first
    ``top`` levels are split in turn, then their 2^top subtrees in parallel."""
    d = x.shape[0]
    n_nodes = 2 ** (depth + 1) - 1
    first_leaf = 2**depth - 1
    lo = np.empty((n_nodes, d))
    hi = np.empty((n_nodes, d))
    start = np.zeros(n_nodes, np.int64)
    stop = np.zeros(n_nodes, np.int64)
    center = np.zeros((n_nodes, d))
    radius = np.zeros(n_nodes)
    start[0], stop[0] = a, b
    top = min(top, depth)
    for node in range(2**top - 1):
        _split_node(x, perm, node, lo, hi, start, stop)
    for t in numba.prange(2**top):
        root = 2**top - 1 + t
        for level in range(depth - top):
            first = (root + 1) * 2**level - 1  # the subtree's nodes at this level, heap order
            for node in range(first, first + 2**level):
                _split_node(x, perm, node, lo, hi, start, stop)
        first = (root + 1) * 2 ** (depth - top) - 1
        for node in range(first, first + 2 ** (depth - top)):
            _finish_leaf(x, rel, node, lo, hi, start, stop, center, radius)
    for node in range(first_leaf - 1, -1, -1):
        for j in range(d):
            lo[node, j] = min(lo[2 * node + 1, j], lo[2 * node + 2, j])
            hi[node, j] = max(hi[2 * node + 1, j], hi[2 * node + 2, j])
    return lo, hi, start, stop, center, radius


@numba.njit(fastmath=_FAST, inline="always")
def _gap2(q, lo, hi, node):
    """Squared distance from q to the node's box (0 inside)."""
    g = 0.0
    for j in range(q.shape[0]):
        t = max(lo[node, j] - q[j], q[j] - hi[node, j], 0.0)
        g += t * t
    return g


@numba.njit(fastmath=_FAST, inline="always")
def _sq_dists(q, pts, a, b, r):
    """r[k] = ‖q − pts[:, a + k]‖² for k < b − a (points feature-major), in r's precision."""
    nn = b - a
    for k in range(nn):
        r[k] = 0.0
    for j in range(q.shape[0]):
        qj = q[j]
        row = pts[j, a:b]  # a slice: non-negative indices, so the loop vectorises
        for k in range(nn):
            t = qj - row[k]
            r[k] += t * t


@numba.njit(fastmath=_FAST, inline="always")
def _leaf_sum(q, ct, a, b, s, r):
    """Σ_{k=a}^{b−1} e^{−s‖q − c_k‖²} in float64, centres feature-major in ct (d, n)."""
    _sq_dists(q, ct, a, b, r)
    acc = 0.0
    for k in range(b - a):
        acc += _exp(-s * r[k])
    return acc


@numba.njit(fastmath=_FAST, inline="always")
def _leaf_sum32(a, rel, start, stop, s, r):
    """Σ_k e^{−E_k} and Σ_k E_k e^{−E_k}, E_k = s‖a − b_k‖², terms in float32 (a = q − o and
    b_k = c_k − o relative to the leaf's centre o), summed in float64."""
    _sq_dists(a, rel, start, stop, r)
    acc, acc_e = 0.0, 0.0
    for k in range(stop - start):
        e = s * r[k]
        v = np.float64(_exp32(-e))
        acc += v
        acc_e += v * np.float64(e)
    return acc, acc_e


@numba.njit(fastmath=_FAST, inline="always")
def _leaf_rule(q, node, tree, s):
    """Whether a leaf is summed in float32 (its worst exponent error u·(2s‖a‖² + (d + 8)E_max)
    ≤ 10⁻³, E_max ≤ 80) and s‖a‖², a = q − o."""
    center, radius = tree[4], tree[5]
    a2 = 0.0
    for j in range(q.shape[0]):
        t = q[j] - center[node, j]
        a2 += t * t
    reach = math.sqrt(a2) + radius[node]
    e_max = s * reach * reach  # the largest exponent in this leaf
    worst = _U32 * (2.0 * s * a2 + (q.shape[0] + 8) * e_max)
    return e_max <= 80.0 and worst <= 1e-3, s * a2


@numba.njit(fastmath=_FAST, inline="always")
def _rounding32(v, ve, sa2, d, n):
    """Rounding bound of a float32 leaf sum v with Σ E e^{−E} = ve (module docstring, 3.)."""
    return 1.01 * _U32 * ((2.0 * sa2 + _EXP32_ERR + (d + 8) * 1e-3) * v + (d + 8) * ve) + (
        v * n * 2.0**-52
    )


@numba.njit(fastmath=_FAST, inline="always")
def _add_leaf(q, node, g, tree, s, acc, err, r, r32, a32):
    """Add one leaf's kernel sum to acc[g] (float32 where its rounding bound is small, else
    float64) and its rounding bound to err[g]; returns (sum, bound)."""
    ct, rel, center, start, stop = tree[0], tree[1], tree[4], tree[6], tree[7]
    n = stop[node] - start[node]
    use32, sa2 = _leaf_rule(q, node, tree, s)
    if use32:
        for j in range(q.shape[0]):
            a32[j] = q[j] - center[node, j]
        v, ve = _leaf_sum32(a32, rel, start[node], stop[node], np.float32(s), r32)
        e = _rounding32(v, ve, sa2, q.shape[0], n)
    else:
        v = _leaf_sum(q, ct, start[node], stop[node], s, r)
        e = v * (n + 8) * 2.0**-52
    acc[g] += v
    err[g] += e
    return v, e


@numba.njit(fastmath=_FAST, inline="always")
def _walk(q, need, l0, tree, c0, s, acc, err, r, r32, a32, stack, gaps):
    """One query's sums over every group's tree into acc (G,), rounding bounds into err (G,);
    returns the skipped mass."""
    lo, hi, start, stop, roots, depths = tree[2], tree[3], tree[6], tree[7], tree[8], tree[9]
    n_groups = roots.shape[0]
    skipped = 0.0
    low = max(l0, 0.0)
    first = max(need, 0)
    limit = c0 - math.log(low) if low > 0 else np.inf  # skip where s·r² ≥ limit
    for step in range(n_groups):
        g = first if step == 0 else (step - 1 if step - 1 < first else step)
        root, first_leaf = roots[g], roots[g] + 2 ** depths[g] - 1
        top = 0
        stack[0], gaps[0] = root, _gap2(q, lo, hi, root)
        while top >= 0:
            node, g2 = stack[top], gaps[top]
            top -= 1
            if s * g2 >= limit:
                skipped += (stop[node] - start[node]) * _exp(-s * g2)
                continue
            if node >= first_leaf:
                _add_leaf(q, node, g, tree, s, acc, err, r, r32, a32)
                now = acc[need] if need >= 0 else acc.sum()
                if now > 1.1 * low:  # a stale, lower L only prunes less: spare the log
                    low = now
                    limit = c0 - math.log(low)
                continue
            left = root + 2 * (node - root) + 1  # heap order within the group's tree
            gl, gr = _gap2(q, lo, hi, left), _gap2(q, lo, hi, left + 1)
            near, far, gn, gf = (left, left + 1, gl, gr) if gl <= gr else (left + 1, left, gr, gl)
            stack[top + 1], gaps[top + 1] = far, gf
            stack[top + 2], gaps[top + 2] = near, gn
            top += 2
    return skipped


@numba.njit(parallel=True, fastmath=_FAST, cache=True)
def _sums(q, order, need, l0, tree, c0, s, leaf, threads):
    """Kernel sums per group (m, G), their rounding bounds (m, G) and the skipped mass (m,) for
    queries q (m, d)."""
    m, d = q.shape
    n_groups = tree[8].shape[0]
    acc = np.zeros((m, n_groups))
    err = np.zeros((m, n_groups))
    skipped = np.zeros(m)
    n_chunks = (m + _CHUNK - 1) // _CHUNK
    for t in numba.prange(threads):
        r = np.empty(leaf)
        r32 = np.empty(leaf, np.float32)
        a32 = np.empty(d, np.float32)
        stack = np.empty(_STACK, np.int64)
        gaps = np.empty(_STACK)
        for chunk in range(t, n_chunks, threads):
            for p in range(chunk * _CHUNK, min(m, (chunk + 1) * _CHUNK)):
                i = order[p]
                skipped[i] = _walk(
                    q[i], need[i], l0[i], tree, c0, s, acc[i], err[i], r, r32, a32, stack, gaps
                )
    return acc, err, skipped


@numba.njit(cache=True)
def _leaf_of(q, lo, hi, depth):
    """Each query's leaf in the tree rooted at node 0: down the child whose box is nearer."""
    out = np.empty(q.shape[0], np.int64)
    for i in range(q.shape[0]):
        node = 0
        for _ in range(depth):
            left = 2 * node + 1
            node = left if _gap2(q[i], lo, hi, left) <= _gap2(q[i], lo, hi, left + 1) else left + 1
        out[i] = node
    return out


@numba.njit(fastmath=_FAST, inline="always")
def _walk_visits(q, first, l0, tree, c0, s, acc, err, r, r32, a32, stack, gaps, visits, sums,
                 errs):  # fmt: skip
    """One query's walk as :func:`_walk`, pruned relative to the total S(q) (the running sum
    over every group), recording the leaves summed (``visits``), their sums (``sums``) and
    rounding bounds (``errs``).
    Returns (skipped mass, Σ over skipped nodes of their mass bound × its exponent s·gap²,
    number of leaves recorded): what bounds the posterior mass a sample can miss."""
    lo, hi, start, stop, roots, depths = tree[2], tree[3], tree[6], tree[7], tree[8], tree[9]
    n_groups = roots.shape[0]
    skipped = 0.0
    skipped_exp = 0.0
    low = max(l0, 0.0)
    limit = c0 - math.log(low) if low > 0 else np.inf
    nv = 0
    for step in range(n_groups):
        g = first if step == 0 else (step - 1 if step - 1 < first else step)
        root, first_leaf = roots[g], roots[g] + 2 ** depths[g] - 1
        top = 0
        stack[0], gaps[0] = root, _gap2(q, lo, hi, root)
        while top >= 0:
            node, g2 = stack[top], gaps[top]
            top -= 1
            if s * g2 >= limit:
                mass = (stop[node] - start[node]) * _exp(-s * g2)
                skipped += mass
                skipped_exp += mass * s * g2
                continue
            if node >= first_leaf:
                v, e = _add_leaf(q, node, g, tree, s, acc, err, r, r32, a32)
                visits[nv], sums[nv], errs[nv] = node, v, e
                nv += 1
                now = acc.sum()
                if now > 1.1 * low:
                    low = now
                    limit = c0 - math.log(low)
                continue
            left = root + 2 * (node - root) + 1
            gl, gr = _gap2(q, lo, hi, left), _gap2(q, lo, hi, left + 1)
            near, far, gn, gf = (left, left + 1, gl, gr) if gl <= gr else (left + 1, left, gr, gl)
            stack[top + 1], gaps[top + 1] = far, gf
            stack[top + 2], gaps[top + 2] = near, gn
            top += 2
    return skipped, skipped_exp, nv


@numba.njit(fastmath=_FAST, inline="always")
def _leaf_values(q, node, tree, s, r, r32, a32, owner, skip_owner):
    """The leaf's kernel values e^{−s‖q − c‖²} into r (float64), computed as :func:`_add_leaf`
    computes them, 0 for the centres of owner ``skip_owner``; returns their sum and its
    rounding bound."""
    ct, rel, center, start, stop = tree[0], tree[1], tree[4], tree[6], tree[7]
    a, b = start[node], stop[node]
    use32, sa2 = _leaf_rule(q, node, tree, s)
    total, total_e = 0.0, 0.0
    if use32:
        for j in range(q.shape[0]):
            a32[j] = q[j] - center[node, j]
        _sq_dists(a32, rel, a, b, r32)
        s32 = np.float32(s)
        for k in range(b - a):
            e = s32 * r32[k]
            r[k] = np.float64(_exp32(-e)) if owner[a + k] != skip_owner else 0.0
            total += r[k]
            total_e += r[k] * np.float64(e)
        return total, _rounding32(total, total_e, sa2, q.shape[0], b - a)
    _sq_dists(q, ct, a, b, r)
    for k in range(b - a):
        r[k] = _exp(-s * r[k]) if owner[a + k] != skip_owner else 0.0
        total += r[k]
    return total, total * (b - a + 8) * 2.0**-52


@numba.njit(fastmath=_FAST, inline="always")
def _exact_kernel(q, ct, k, s):
    """e^{−s‖q − c_k‖²} in float64 from the stored centre (column k of ct)."""
    e = 0.0
    for j in range(q.shape[0]):
        t = q[j] - ct[j, k]
        e += t * t
    return _exp(-s * e)


@numba.njit(fastmath=_FAST, inline="always")
def _draw(q, u, tree, s, walk, owned, scratch, out_owner, out_weight):
    """The posterior of the centre behind q, less the owner ``skip`` (the query's own input):
    its mass over the recorded leaves (leaves holding that owner's centres re-summed without
    them) with a rounding bound, and systematic draws from it — targets (j + u)/M of the running
    total, j < M, a leaf by its sum, then a centre by the leaf's recomputed values — each draw's
    owner and importance weight (exact kernel over proposal probability, up to a common
    factor). Returns (mass, bound, ok); no draws where the mass is 0; ok False where the
    recomputation disagrees with the walk (the caller then computes q exactly)."""
    visits, sums, errs, nv = walk
    owner, skip, own_leaves, mark = owned
    r, r32, a32 = scratch
    ct, start, stop = tree[0], tree[6], tree[7]
    for leaf in own_leaves:
        mark[leaf] = True
    for t in range(nv):
        if mark[visits[t]]:
            sums[t], errs[t] = _leaf_values(q, visits[t], tree, s, r, r32, a32, owner, skip)
    for leaf in own_leaves:
        mark[leaf] = False
    other, other_err = 0.0, 0.0
    for t in range(nv):  # running sums in place: sums[t] = Σ_{≤t}, one sequential pass
        other += sums[t]
        other_err += errs[t]
        sums[t] = other
    m_draws = out_owner.shape[0]
    if not other > 0.0:
        return 0.0, other_err, True
    j, below = 0, 0.0
    for t in range(nv):
        mass = sums[t] - below
        if j < m_draws and (j + u) / m_draws * other < sums[t] and mass > 0.0:
            node = visits[t]
            w_leaf, _ = _leaf_values(q, node, tree, s, r, r32, a32, owner, skip)
            if not w_leaf > 0.0:
                return other, other_err, False
            last = stop[node] - start[node] - 1
            k, inner = 0, 0.0
            while j < m_draws and (j + u) / m_draws * other < sums[t]:
                target = ((j + u) / m_draws * other - below) / mass * w_leaf
                while k < last and (inner + r[k] <= target or r[k] == 0.0):
                    inner += r[k]
                    k += 1
                while r[k] == 0.0:  # only past the last positive value (rounding): step back
                    k -= 1
                c = start[node] + k
                out_owner[j] = owner[c]
                # ≈ 1, as a sum of logs: fastmath may reassociate products of tiny values
                out_weight[j] = math.exp(
                    math.log(_exact_kernel(q, ct, c, s)) - math.log(r[k])
                    + math.log(w_leaf) - math.log(mass)
                )  # fmt: skip
                j += 1
        below = sums[t]
    if j == 0:
        return other, other_err, False
    while j < m_draws:  # rounding left a target past the last sum: repeat the last draw
        out_owner[j], out_weight[j] = out_owner[j - 1], out_weight[j - 1]
        j += 1
    return other, other_err, True


@numba.njit(fastmath=_FAST, inline="always")
def _owner_log_sum(q, c, e, s):
    """log Σ_r e^{−s‖q − c_r‖²} over one owner's centres c (R, d), exact in float64 (shifted by
    the largest term); e: scratch (≥ R,)."""
    lo = np.inf
    for k in range(c.shape[0]):
        acc = 0.0
        for j in range(q.shape[0]):
            t = q[j] - c[k, j]
            acc += t * t
        e[k] = s * acc
        lo = min(lo, e[k])
    total = 0.0
    for k in range(c.shape[0]):
        total += _exp(lo - e[k])
    return math.log(total) - lo


@numba.njit(fastmath=_FAST, inline="always")
def _owner_log_sums(q, owners, centers, s, e, out):
    """out[j] = the log sum over owner ``owners[j]``'s row of ``centers`` (N, R, d), each
    distinct owner once."""
    for j in range(owners.shape[0]):
        out[j] = np.nan
        for k in range(j):
            if owners[k] == owners[j]:
                out[j] = out[k]
                break
        if np.isnan(out[j]):
            out[j] = _owner_log_sum(q, centers[owners[j]], e, s)


@numba.njit(parallel=True, fastmath=_FAST, cache=True)
def _posterior_draws(q, order, first, l0, tree, c0, s, leaf, threads, owned, u, m_draws, rows):
    """Per query: group sums (m, G) with rounding bounds, skipped mass and its exponent-weighted
    sum (m,), the posterior mass of the centres outside the query's own owner with its rounding
    bound (m,), and ``m_draws`` systematic draws from that part: owners, weights and the exact
    log sum over each owner's row of ``rows`` (N, R, d). ``owned``: (owner id per centre in
    leaf order, each query's own owner (m,), CSR offsets and leaves of every owner's leaves)."""
    m, d = q.shape
    owner, skip, offsets, leaves = owned
    n_groups = tree[8].shape[0]
    n_nodes = tree[6].shape[0]
    acc = np.zeros((m, n_groups))
    err = np.zeros((m, n_groups))
    skipped = np.zeros(m)
    skipped_exp = np.zeros(m)
    other = np.zeros(m)
    other_err = np.zeros(m)
    owners = np.zeros((m, m_draws), np.int64)
    weights = np.zeros((m, m_draws))
    log_sums = np.zeros((m, m_draws))
    ok = np.zeros(m, np.bool_)
    n_chunks = (m + _CHUNK - 1) // _CHUNK
    for t in numba.prange(threads):
        r = np.empty(leaf)
        r32 = np.empty(leaf, np.float32)
        a32 = np.empty(d, np.float32)
        stack = np.empty(_STACK, np.int64)
        gaps = np.empty(_STACK)
        visits = np.empty(n_nodes, np.int64)
        sums = np.empty(n_nodes)
        errs = np.empty(n_nodes)
        mark = np.zeros(n_nodes, np.bool_)
        e = np.empty(rows.shape[1])
        for chunk in range(t, n_chunks, threads):
            for p in range(chunk * _CHUNK, min(m, (chunk + 1) * _CHUNK)):
                i = order[p]
                skipped[i], skipped_exp[i], nv = _walk_visits(
                    q[i], first[i], l0[i], tree, c0, s, acc[i], err[i], r, r32, a32, stack,
                    gaps, visits, sums, errs,
                )  # fmt: skip
                own = leaves[offsets[skip[i]] : offsets[skip[i] + 1]]
                other[i], other_err[i], ok[i] = _draw(
                    q[i], u[i], tree, s, (visits, sums, errs, nv), (owner, skip[i], own, mark),
                    (r, r32, a32), owners[i], weights[i],
                )  # fmt: skip
                if ok[i] and other[i] > 0.0:
                    _owner_log_sums(q[i], owners[i], rows, s, e, log_sums[i])
    return acc, err, skipped, skipped_exp, other, other_err, owners, weights, log_sums, ok


@numba.njit(parallel=True, fastmath=_FAST, cache=True)
def _own_log_sums(q, centers, rows, s, threads):
    """log Σ_r e^{−s‖q_i − c[rows_i, r]‖²} for queries q (m, d) over their own row of centres
    (N, R, d): exact in float64, shifted by the nearest centre's exponent (no underflow)."""
    m, d = q.shape
    r = centers.shape[1]
    out = np.empty(m)
    n_chunks = (m + _CHUNK - 1) // _CHUNK
    for t in numba.prange(threads):
        e = np.empty(r)
        for chunk in range(t, n_chunks, threads):
            for i in range(chunk * _CHUNK, min(m, (chunk + 1) * _CHUNK)):
                out[i] = _owner_log_sum(q[i], centers[rows[i]], e, s)
    return out


def own_log_sums(queries: Tensor, centers: Tensor, rows: Tensor, sigma: float) -> Tensor:
    """log Σ_r e^{−‖q − c_{row, r}‖²/(2σ²)} per query, over the R centres of its own row of
    ``centers`` (N, R, d) (in SP: the replicas of the query's input); float64, exact up to
    rounding (~1e-14 relative), CPU tensors. (m,) float64."""
    q = np.ascontiguousarray(queries.detach().to(torch.float64).numpy())
    c = centers.detach()
    c = np.ascontiguousarray(
        (c if c.dtype in (torch.float32, torch.float64) else c.float()).numpy()
    )
    out = _own_log_sums(q, c, rows.long().numpy(), 0.5 / sigma**2, _threads())
    return torch.from_numpy(out)


class Owners(NamedTuple):
    """Which centres belong together (SP: the replicas of one input), prepared for a tree by
    :meth:`KDTreeSums.owners`: the owner of every centre in leaf order, each owner's leaves
    (CSR: owner o's are ``leaves[offsets[o]:offsets[o + 1]]``) and the centres by owner
    (N, R, d), for exact per-owner sums."""

    ids: np.ndarray
    offsets: np.ndarray
    leaves: np.ndarray
    rows: np.ndarray


class PosteriorDraws(NamedTuple):
    """Per query q, from :meth:`KDTreeSums.posterior_draws`: log S(q) (m,) and log S_g(q)
    (m, G) over the centres summed; ``tv`` (m,), a bound on Σ_g |S_g,true − S_g| / S_true
    (skipped mass and rounding), which also bounds |log S_true − log S|; ``unseen`` (m,), a
    bound on the posterior mass of the skipped centres, and ``missed`` (m,), on their
    Σ_k π_k ln(1/π_k) (π_k = e^{−s‖q−c_k‖²}/S: the posterior of the centre behind q; draws never
    reach them); ``other`` and ``other_err`` (m,): the summed mass of the centres of every owner
    but the query's own, and its rounding bound; ``owner``, ``weight``, ``log_owner`` (m, M):
    M systematic draws from that part of the posterior — each draw's owner, self-normalised
    importance weight (rows sum to 1; 0 where ``other`` is 0) and the exact log kernel sum over
    the owner's centres; ``ok`` (m,): False where the draws failed (compute q exactly)."""

    log_total: Tensor
    log_group: Tensor
    tv: Tensor
    unseen: Tensor
    missed: Tensor
    other: Tensor
    other_err: Tensor
    owner: Tensor
    weight: Tensor
    log_owner: Tensor
    ok: Tensor


def _threads() -> int:
    """numba's threads: torch's count (which the thread policy sets), within numba's pool."""
    threads = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(threads)
    return threads


class KDTreeSums:
    """Centres prepared once for many certified kernel-sum queries (CPU).

    Args:
        centers: (n, d) centres, any float dtype, on the CPU.
        sigma: kernel width σ.
        tol: bound on each log-sum's error, nats (the skipped mass is held to tol/2 of the sum).
        chunk_elements: most kernel values materialised at once by :meth:`exact`.
        groups: optional (n,) group ids 0..G−1 (e.g. class labels); sums are also kept per group.
        leaf: centres per leaf, about (splits near the median: some leaves hold up to ~2×).
    """

    def __init__(
        self,
        centers: Tensor,
        sigma: float,
        *,
        tol: float,
        chunk_elements: int,
        groups: Tensor | None = None,
        leaf: int = 256,
    ) -> None:
        self.centers, self.groups, self.chunk = centers, groups, chunk_elements
        self.n, self.d = centers.shape
        self.sigma, self.tol = sigma, tol
        self.s = 0.5 / sigma**2
        x = centers.detach().cpu()
        x = (x if x.dtype in (torch.float32, torch.float64) else x.float()).numpy()
        if groups is None:
            self.n_groups, counts = 1, [self.n]
        else:  # each group's centres contiguous, one tree per group
            g = groups.long().cpu().numpy()
            self.n_groups = int(g.max()) + 1
            counts = np.bincount(g, minlength=self.n_groups)
            by_group = np.argsort(g, kind="stable")
            x = x[by_group]
        # (d, n), a fresh copy (reordered in place) in the centres' own precision: float32 centres
        # stay float32 (half the memory traffic), and every sum is over their exact values
        dtype = np.float64 if x.dtype == np.float64 else np.float32
        self.ct = x.T.astype(dtype, order="C")
        self.rel = np.empty((self.d, self.n), np.float32)
        # each stored column's original row: the trees reorder it along with the centres
        self.perm = (
            np.arange(self.n, dtype=np.int64) if groups is None else by_group.astype(np.int64)
        )
        top = max(1, math.ceil(math.log2(2 * _threads())))  # 2 subtrees per thread
        parts, first = [], 0
        for count in counts:
            depth = max(0, math.ceil(math.log2(count / leaf))) if count > leaf else 0
            tree = _build(self.ct, self.perm, self.rel, first, first + count, depth, top)
            parts.append(tree + (depth,))
            first += count
        self.lo, self.hi, self.start, self.stop, self.center, self.radius = (
            np.concatenate([p[k] for p in parts]) for k in range(6)
        )
        self.depths = np.array([p[6] for p in parts], np.int64)
        self.roots = np.cumsum([0] + [2 ** (k + 1) - 1 for k in self.depths[:-1]]).astype(np.int64)
        leaves = np.concatenate(
            [
                r + np.arange(2**k - 1, 2 ** (k + 1) - 1)
                for r, k in zip(self.roots, self.depths, strict=True)
            ]
        )
        leaves = leaves[self.stop[leaves] > self.start[leaves]]
        self.leaf = int((self.stop[leaves] - self.start[leaves]).max())  # the largest leaf
        self.tree = (
            self.ct, self.rel, self.lo, self.hi, self.center, self.radius,
            self.start, self.stop, self.roots, self.depths,
        )  # fmt: skip

    def exact(self, queries: Tensor) -> tuple[Tensor, Tensor]:
        """log S(q) and log S_g(q) over every centre, float64 (the certified fallback)."""
        groups = self.groups
        if groups is None:
            groups = torch.zeros(self.n, dtype=torch.long, device=self.centers.device)
        return exact_log_sums(
            queries, self.centers, groups.long(), self.n_groups, self.sigma, self.chunk
        )

    def sums(
        self, queries: Tensor, log_lower: Tensor | None = None, group_needed: Tensor | None = None
    ) -> KernelSums:
        """Kernel sums at ``queries`` (m, d). The skipped mass is held within tol/2 of the sum
        that must be accurate: the group ``group_needed[q]`` (m,) when given, else the total;
        ``log_lower`` (m,) is an optional sure lower bound on log of that sum."""
        q = np.ascontiguousarray(queries.detach().to(torch.float64).cpu().numpy())
        m = q.shape[0]
        l0 = np.zeros(m) if log_lower is None else np.exp(log_lower.double().cpu().numpy())
        if group_needed is None:  # the total is what must be within tol
            need = np.full(m, 0 if self.n_groups == 1 else -1, np.int64)
        else:
            need = group_needed.long().cpu().numpy()
        c0 = math.log(self.n) - math.log(self.tol / 2)
        order = np.argsort(_leaf_of(q, self.lo, self.hi, int(self.depths[0])), kind="stable")
        threads = _threads()
        acc, err, skipped = _sums(q, order, need, l0, self.tree, c0, self.s, self.leaf, threads)
        total, group = torch.from_numpy(acc.sum(1)), torch.from_numpy(acc)
        err, skipped = torch.from_numpy(err), torch.from_numpy(skipped)
        # the float64 sums over leaves: at most n + G additions of positive terms
        rounding = (self.n + self.n_groups) * 2.0**-52
        bound = _log_error(total, err.sum(1) + total * rounding + skipped)
        bound_group = _log_error(group, err + group * rounding + skipped[:, None])
        return KernelSums(total.log(), group.log(), bound, bound_group)

    def owners(self, ids: np.ndarray, rows: np.ndarray) -> Owners:
        """The owner structure for :meth:`posterior_draws`: ``ids`` (n,) the owner 0..N−1 of
        every centre as given to the constructor, ``rows`` (N, R, d) the centres by owner."""
        ids = np.asarray(ids, np.int64)[self.perm]  # leaf order
        leaves = np.concatenate(
            [
                r + np.arange(2**k - 1, 2 ** (k + 1) - 1)
                for r, k in zip(self.roots, self.depths, strict=True)
            ]
        )  # every leaf, in the order of the centres they hold
        node = np.repeat(leaves, self.stop[leaves] - self.start[leaves])
        n_nodes = len(self.start)
        pairs = np.unique(ids * n_nodes + node)
        first = np.searchsorted(pairs // n_nodes, np.arange(rows.shape[0] + 1))
        rows = np.ascontiguousarray(
            rows if rows.dtype in (np.float32, np.float64) else rows.astype(np.float32)
        )
        return Owners(ids, first.astype(np.int64), (pairs % n_nodes).astype(np.int64), rows)

    def posterior_draws(
        self,
        queries: Tensor,
        owners: Owners,
        own: Tensor,
        uniforms: Tensor,
        n_draws: int,
        *,
        skip: float,
        log_lower: Tensor | None = None,
        first_group: Tensor | None = None,
    ) -> PosteriorDraws:
        """Kernel sums at ``queries`` (m, d), pruned so that the skipped mass stays within
        ``skip`` of the total S(q), and ``n_draws`` systematic draws (offsets ``uniforms``
        (m,) in [0, 1)) of the centre behind each query from the posterior
        π_k ∝ e^{−s‖q − c_k‖²} over the centres summed, less those of owner ``own[q]`` (m,):
        the draws' owners, importance weights (exact float64 kernel over the probability the
        float32 sums gave the draw) and exact log sums over the owners' centres (see
        :class:`PosteriorDraws`). ``log_lower``: an optional sure lower bound on log S;
        ``first_group`` (m,): the group walked first (the query's own)."""
        q = np.ascontiguousarray(queries.detach().to(torch.float64).cpu().numpy())
        m = q.shape[0]
        l0 = np.zeros(m) if log_lower is None else np.exp(log_lower.double().cpu().numpy())
        first = np.zeros(m, np.int64) if first_group is None else first_group.long().numpy()
        u = np.ascontiguousarray(uniforms.double().cpu().numpy())
        c0 = math.log(self.n) - math.log(skip)
        order = np.argsort(_leaf_of(q, self.lo, self.hi, int(self.depths[0])), kind="stable")
        owned = (owners.ids, own.long().numpy(), owners.offsets, owners.leaves)
        out = _posterior_draws(
            q, order, first, l0, self.tree, c0, self.s, self.leaf, _threads(), owned, u,
            int(n_draws), owners.rows,
        )  # fmt: skip
        acc, err, skipped, skipped_exp, other, other_err, owner, weight, log_owner, ok = out
        group = torch.from_numpy(acc)
        total = group.sum(1)
        err_total = torch.from_numpy(err).sum(1) + total * (self.n + self.n_groups) * 2.0**-52
        skipped = torch.from_numpy(skipped)
        tv = _log_error(total, err_total + skipped)
        low = total - err_total  # a sure lower bound on the true S (the skipped mass adds)
        missed = torch.where(
            skipped > 0,
            (torch.from_numpy(skipped_exp) + skipped * low.clamp_min(1e-300).log()) / low,
            0.0,
        )
        weight = torch.from_numpy(weight)
        norm = weight.sum(1, keepdim=True)
        weight = torch.where(norm > 0, weight / norm, 0.0)
        ok = torch.from_numpy(ok) & torch.isfinite(weight).all(1) & (low > 0)
        return PosteriorDraws(
            total.log(), group.log(), tv, skipped / low, missed, torch.from_numpy(other),
            torch.from_numpy(other_err), torch.from_numpy(owner), weight,
            torch.from_numpy(log_owner), ok,
        )  # fmt: skip
