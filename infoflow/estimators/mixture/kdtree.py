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
3. Leaves are summed in float32 on the relative coordinates a = q − o, b = c − o, with an
   exponential that vectorises (Cody–Waite reduction, a Taylor polynomial, the power of two from
   its exponent bits; :func:`_exp32`). With ‖b‖ ≤ ρ (the leaf's radius) and u = 2⁻²⁴, each
   exponent E = s‖a − b‖² is computed within (d + 6)·u·s·(‖a‖ + ρ)² (the rounding of a and b,
   of the d differences, squares and sums, and of the product with s), the exponential within
   _EXP32_ERR·u and the leaf's sum within (leaf size)·u, all relative: that bound times the
   leaf's sum is added to the query's rounding error. A leaf whose exponent bound exceeds 10⁻³
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
def _swap(x, i, j):
    for k in range(x.shape[0]):
        x[k, i], x[k, j] = x[k, j], x[k, i]


@numba.njit(cache=True)
def _select(x, dim, a, b, nth):
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
                _swap(x, i, j)
                i += 1
                j -= 1
        if nth <= j:
            hi = j
        elif nth >= i:
            lo = i
        else:
            break


@numba.njit(cache=True)
def _split(x, dim, a, b):
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
        _swap(x, i, j)
        i += 1
        j -= 1
    quarter = (b - a) // 4
    if a + quarter <= i <= b - quarter and a < i < b:
        return i
    mid = (a + b) // 2
    _select(x, dim, a, b, mid)
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
def _split_node(x, node, lo, hi, start, stop):
    """Split an internal node near the median of its widest side (judged on ≤ 256 points)."""
    a, b = start[node], stop[node]
    mid = (a + b) // 2
    if b - a >= 2:
        _box(x, a, b, max(1, (b - a) // 256), lo[node], hi[node])
        mid = _split(x, np.argmax(hi[node] - lo[node]), a, b)
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
def _build(x, rel, a, b, depth, top):
    """A fixed-depth k-d tree over columns a..b−1 of x (d, n), reordered in place into leaf
    order: (lo, hi, start, stop, center, radius), nodes in heap order. Each node is split near
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
        _split_node(x, node, lo, hi, start, stop)
    for t in numba.prange(2**top):
        root = 2**top - 1 + t
        for level in range(depth - top):
            first = (root + 1) * 2**level - 1  # the subtree's nodes at this level, heap order
            for node in range(first, first + 2**level):
                _split_node(x, node, lo, hi, start, stop)
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
    """Σ e^{−s‖a − b_k‖²} in float32, a = q − o and b_k = c_k − o relative to the leaf's centre o."""
    _sq_dists(a, rel, start, stop, r)
    acc = np.float32(0.0)
    for k in range(stop - start):
        acc += _exp32(-s * r[k])
    return acc


@numba.njit(fastmath=_FAST, inline="always")
def _add_leaf(q, node, g, tree, s, acc, err, r, r32, a32):
    """Add one leaf's kernel sum to acc[g] (float32 where its rounding bound is small, else
    float64) and its rounding bound to err[g]."""
    ct, rel, center, radius, start, stop = tree[0], tree[1], tree[4], tree[5], tree[6], tree[7]
    a2 = 0.0
    for j in range(q.shape[0]):
        t = q[j] - center[node, j]
        a2 += t * t
    reach = math.sqrt(a2) + radius[node]
    e_max = s * reach * reach  # the largest exponent in this leaf
    rel_err = (q.shape[0] + 6) * _U32 * e_max
    if e_max <= 80.0 and rel_err <= 1e-3:
        for j in range(q.shape[0]):
            a32[j] = q[j] - center[node, j]
        v = np.float64(_leaf_sum32(a32, rel, start[node], stop[node], np.float32(s), r32))
        acc[g] += v
        err[g] += v * (1.01 * rel_err + (_EXP32_ERR + stop[node] - start[node]) * _U32)
    else:
        v = _leaf_sum(q, ct, start[node], stop[node], s, r)
        acc[g] += v
        err[g] += v * (stop[node] - start[node] + 8) * 2.0**-52


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
            x = x[np.argsort(g, kind="stable")]
        # (d, n), a fresh copy (reordered in place) in the centres' own precision: float32 centres
        # stay float32 (half the memory traffic), and every sum is over their exact values
        dtype = np.float64 if x.dtype == np.float64 else np.float32
        self.ct = x.T.astype(dtype, order="C")
        self.rel = np.empty((self.d, self.n), np.float32)
        top = max(1, math.ceil(math.log2(2 * _threads())))  # 2 subtrees per thread
        parts, first = [], 0
        for count in counts:
            depth = max(0, math.ceil(math.log2(count / leaf))) if count > leaf else 0
            parts.append(_build(self.ct, self.rel, first, first + count, depth, top) + (depth,))
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
