"""The 12-bit task of Shwartz-Ziv & Tishby (2017), rebuilt exactly from its definition.

Bit k of a pattern sits on vertex k of an icosahedron. For a pattern with n active bits, let N1, N2, N3
count its active pairs at graph distance 1, 2, 3 (3 = antipodal). The label is

    y = 1  iff  23·n + N1 − 5·N2 − 8·N3 ≥ 99,

which gives 2118 positives among the 4096 patterns and I(X;Y) = H(Y) = 0.99916 bits.
"""

from __future__ import annotations

import numpy as np

N_BITS = 12

#: Neighbours of each icosahedron vertex (graph distance 1).
NEIGHBOURS: dict[int, tuple[int, ...]] = {
    0: (1, 3, 5, 10, 11),
    1: (0, 2, 3, 4, 11),
    2: (1, 3, 4, 8, 9),
    3: (0, 1, 2, 8, 10),
    4: (1, 2, 6, 9, 11),
    5: (0, 6, 7, 10, 11),
    6: (4, 5, 7, 9, 11),
    7: (5, 6, 8, 9, 10),
    8: (2, 3, 7, 9, 10),
    9: (2, 4, 6, 7, 8),
    10: (0, 3, 5, 7, 8),
    11: (0, 1, 4, 5, 6),
}

#: Antipodal vertex pairs (graph distance 3); every other non-adjacent pair is at distance 2.
ANTIPODES: tuple[tuple[int, int], ...] = ((0, 9), (1, 7), (2, 5), (3, 6), (4, 10), (8, 11))


def distance_matrix() -> np.ndarray:
    """Graph distances between the 12 vertices, shape (12, 12), zeros on the diagonal."""
    dist = np.full((N_BITS, N_BITS), 2, dtype=np.int64)
    np.fill_diagonal(dist, 0)
    for k, neighbours in NEIGHBOURS.items():
        dist[k, list(neighbours)] = 1
    for a, b in ANTIPODES:
        dist[a, b] = dist[b, a] = 3
    return dist


def all_patterns() -> np.ndarray:
    """All 4096 patterns, row i the most-significant-bit-first binary expansion of i; uint8."""
    i = np.arange(2**N_BITS)[:, None]
    shifts = np.arange(N_BITS - 1, -1, -1)[None, :]
    return ((i >> shifts) & 1).astype(np.uint8)


def szt_labels(x: np.ndarray) -> np.ndarray:
    """The SZT label of each row of ``x`` (n, 12) in {0, 1}; int64."""
    xi = x.astype(np.int64)
    dist = distance_matrix()
    n_active = xi.sum(axis=1)
    # Active pairs at each distance: x^T A_k x counts ordered pairs, so halve it.
    pairs = {
        k: np.einsum("ni,ij,nj->n", xi, (dist == k).astype(np.int64), xi) // 2 for k in (1, 2, 3)
    }
    score = 23 * n_active + pairs[1] - 5 * pairs[2] - 8 * pairs[3]
    return (score >= 99).astype(np.int64)


def make_szt_dataset() -> tuple[np.ndarray, np.ndarray]:
    """The SZT task: x uint8 of shape (4096, 12) and y int64 of shape (4096,)."""
    x = all_patterns()
    return x, szt_labels(x)
