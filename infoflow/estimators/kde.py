r"""Kolchinsky–Tracey pairwise-distance bounds on I(X;T) and I(T;Y), as in Saxe et al. (2018).

T = H + Z with Z ~ N(0, σ² I_d) added to the P sample representations h_i (X = sample identity,
uniform over the P rows), so p(t) is the equal-weight Gaussian mixture (1/P) Σ_i N(h_i, σ² I).
Kolchinsky & Tracey (2017, "Estimating mixture entropy with pairwise distances", Sec. 4) bound its
entropy with pairwise divergences between components; h(T|X) = (d/2) ln(2π e σ²) exactly, so

.. math::
    I_\text{upper}(X;T) = -\frac{1}{P}\sum_i \ln \frac{1}{P}\sum_j
        \exp\!\Big(-\frac{\lVert h_i-h_j\rVert^2}{2\sigma^2}\Big)   \quad (\text{KL}),

    I_\text{lower}(X;T) = -\frac{1}{P}\sum_i \ln \frac{1}{P}\sum_j
        \exp\!\Big(-\frac{\lVert h_i-h_j\rVert^2}{8\sigma^2}\Big)   \quad (\text{Bhattacharyya}),

and I_lower ≤ I(X;T) ≤ I_upper holds exactly. Saxe et al.'s ``kde.py`` writes the entropies as
H_KL = d/2 + (d/2) ln(2πσ²) − mean_i ln mean_j exp(−d_ij / 2σ²) and H_BD = H_KL(4σ²) − (d/2) ln 4;
the additive constants cancel in every difference below.

I(T;Y) follows their code's convention: the same bound is used for H(T) and for each H(T|Y=y)
(the mixture of class y's components), I_TY_upper = H_KL(T) − Σ_y p(y) H_KL(T|Y=y), and likewise
with H_BD for I_TY_lower. These are differences of bounds, *not* guaranteed bounds on I(T;Y).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from infoflow.estimators.checks import check_activations, check_count, check_labels

__all__ = ["kde_information"]


def _check(activations: Tensor, labels: Tensor, noise_var: float, chunk_size: int) -> Tensor:
    h = check_activations(activations)
    check_labels(labels, len(h))
    if not (isinstance(noise_var, (int, float)) and math.isfinite(noise_var) and noise_var > 0):
        raise ValueError(f"noise_var must be a finite number > 0, got {noise_var!r}")
    check_count("chunk_size", chunk_size)
    return h


def _class_sums(h: Tensor, onehot: Tensor, noise_var: float, chunk: int) -> tuple[Tensor, Tensor]:
    """Per row i and class c, Σ_{j: y_j = c} exp(-d_ij / s) for s = 2σ² and s = 8σ²: two (n, C).

    Blocks of (chunk × chunk) distances, so no n × n matrix is formed. No log-sum-exp shift is
    needed: the self term exp(0) = 1 is the largest, so every row sum lies in [1, n].
    Blocks above the diagonal also serve the rows below it (the kernel is symmetric).
    """
    n = h.shape[0]
    sq = (h * h).sum(dim=1)
    sums8 = torch.zeros_like(onehot)
    sums2 = torch.zeros_like(onehot)
    for i0 in range(0, n, chunk):
        i1 = min(i0 + chunk, n)
        for j0 in range(i0, n, chunk):
            j1 = min(j0 + chunk, n)
            d2 = torch.addmm(sq[i0:i1, None] + sq[None, j0:j1], h[i0:i1], h[j0:j1].T, alpha=-2.0)
            if i0 == j0:  # exact zero on the diagonal (the mm trick leaves round-off there)
                d2.fill_diagonal_(0.0)
            k8 = d2.clamp_min_(0.0).mul_(-1.0 / (8.0 * noise_var)).exp_()  # exp(-d/8σ²)
            k2 = (k8 * k8).square_()  # exp(-d/2σ²) = exp(-d/8σ²)^4
            for k, acc in ((k8, sums8), (k2, sums2)):
                acc[i0:i1] += k @ onehot[j0:j1]
                if j0 != i0:
                    acc[j0:j1] += k.T @ onehot[i0:i1]
    return sums2, sums8


def kde_information(
    activations: Tensor,
    labels: Tensor,
    *,
    noise_var: float,
    chunk_size: int = 1024,
) -> dict[str, float]:
    r"""KDE (Kolchinsky–Tracey) upper and lower bounds on I(X;T) and I(T;Y), in nats.

    With :math:`S_A(s) = -\frac{1}{|A|}\sum_{i\in A}\ln\frac{1}{|A|}\sum_{j\in A}
    e^{-\lVert h_i-h_j\rVert^2/s}` over a set A of rows (all rows, or class y's rows):

    .. math::
        I_{XT}^{up} = S_{all}(2\sigma^2),\quad I_{XT}^{lo} = S_{all}(8\sigma^2),\quad
        I_{TY}^{up/lo} = S_{all}(s) - \sum_y p(y)\, S_y(s),\ s = 2\sigma^2 / 8\sigma^2.

    Args:
        activations: (n, d) float tensor of the n samples' representations (CPU or CUDA);
            computed in float64 on its device.
        labels: (n,) integer class labels.
        noise_var: σ², the variance of the hypothetical additive Gaussian noise (> 0);
            Saxe et al. used 1e-3 for the SZT network and 1e-1 for MNIST.
        chunk_size: side of the square blocks of pairwise distances held at once
            (memory ≈ 3 × chunk_size² float64, i.e. 25 MB at 1024).

    Returns:
        ``{"I_XT_upper", "I_XT_lower", "I_TY_upper", "I_TY_lower"}`` in nats. I(X;T) ≤ ln n.

    Example:
        >>> h = torch.tensor([[0.0], [0.0], [10.0], [10.0]])
        >>> r = kde_information(h, torch.tensor([0, 0, 1, 1]), noise_var=0.01)
        >>> round(r["I_XT_upper"], 6), round(r["I_TY_lower"], 6)  # two far clusters: ln 2
        (0.693147, 0.693147)
    """
    h = _check(activations, labels, noise_var, chunk_size)
    n = h.shape[0]
    y = torch.unique(labels.to(h.device), return_inverse=True)[1]
    onehot = torch.nn.functional.one_hot(y).double()
    counts = onehot.sum(dim=0)
    s_all, s_cls = [], []
    for sums in _class_sums(h, onehot, noise_var, chunk_size):  # scales 2σ² then 8σ²
        s_all.append(-(sums.sum(dim=1).log() - math.log(n)).mean())
        # Σ_y p(y) S_y = -(1/n) Σ_i [ln Σ_{j~i} k_ij - ln n_{y_i}]
        s_cls.append(-(sums.gather(1, y[:, None]).log() - counts.log()[y, None]).mean())
    s_all, s_cls = torch.stack(s_all), torch.stack(s_cls)
    i_xt, i_ty = (s_all + 0.0).tolist(), (s_all - s_cls).tolist()  # + 0.0: no -0.0
    return {
        "I_XT_upper": i_xt[0],
        "I_XT_lower": i_xt[1],
        "I_TY_upper": i_ty[0],
        "I_TY_lower": i_ty[1],
    }
