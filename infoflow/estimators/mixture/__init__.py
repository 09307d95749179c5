"""Gaussian mixtures with shared isotropic covariance: densities and entropies, in nats.

- :mod:`.checks` — argument checks (one clear ValueError naming the argument);
- :mod:`.kernels` — exact float64 kernel sums over every centre (reference and fallback);
- :mod:`.kdtree` — certified kernel sums on the CPU: k-d trees walked query by query (numba);
- :mod:`.blocks` — k-d leaf blocks with boxes, for :mod:`.index`;
- :mod:`.index` — certified kernel sums on any device (batched float32 block pairs, for GPUs);
- :mod:`.entropy` — log-densities and Monte Carlo entropies.
"""

from infoflow.estimators.mixture.entropy import (
    DEFAULT_TARGET_STDERR,
    DEFAULT_TOL,
    MAX_DEFAULT_N_MC,
    batched_mixture_log_density,
    gaussian_entropy,
    gaussian_mixture_entropy,
    mean_mixture_entropy,
    mixture_log_density,
)
from infoflow.estimators.mixture.index import KernelSums, MixtureIndex

__all__ = [
    "DEFAULT_TARGET_STDERR",
    "DEFAULT_TOL",
    "MAX_DEFAULT_N_MC",
    "KernelSums",
    "MixtureIndex",
    "batched_mixture_log_density",
    "gaussian_entropy",
    "gaussian_mixture_entropy",
    "mean_mixture_entropy",
    "mixture_log_density",
]
