"""Information estimators: pure functions, torch tensors in (any device), natural logs out.

- :func:`gaussian_mixture_entropy`, :func:`sp_information` — the sample-propagation estimator of
  Goldfeld et al. (2019) for noisy networks;
- :func:`binned_information` — binned H(T), I(X;T), I(T;Y) (Shwartz-Ziv & Tishby; Saxe et al.);
  one network or K at once;
- :func:`exact_information` — exact H(T), I(X;T), I(T;Y) of discrete (quantized) layers
  (Lorenzen et al.), one network or K at once;
- :func:`kde_information` — Kolchinsky–Tracey bounds (Saxe et al.);
- :func:`clustering_scores` and friends — how representations cluster by class;
- :func:`ib_curve`, :func:`joint_from_samples` — the optimal information-bottleneck curve of p(x, y).

No Lightning here: the callbacks are the only code that knows both models and estimators.
"""

from infoflow.estimators.binning import (
    SCHEMES,
    bin_codes,
    binned_information,
    empirical_entropy,
)
from infoflow.estimators.clustering import (
    clustering_scores,
    cosine_similarity_distributions,
    cosine_similarity_stats,
    distance_ratio,
    kmeans,
    kmeans_scores,
    silhouette_score,
)
from infoflow.estimators.exact import exact_information
from infoflow.estimators.ib_curve import IBCurve, ib_curve, joint_from_samples
from infoflow.estimators.kde import kde_information
from infoflow.estimators.mixture import (
    gaussian_entropy,
    gaussian_mixture_entropy,
    mixture_log_density,
)
from infoflow.estimators.result import Estimate, nats_to_bits
from infoflow.estimators.sp import sp_from_samples, sp_information

__all__ = [
    "SCHEMES",
    "Estimate",
    "IBCurve",
    "bin_codes",
    "binned_information",
    "empirical_entropy",
    "exact_information",
    "clustering_scores",
    "cosine_similarity_distributions",
    "cosine_similarity_stats",
    "distance_ratio",
    "gaussian_entropy",
    "gaussian_mixture_entropy",
    "ib_curve",
    "joint_from_samples",
    "kde_information",
    "kmeans",
    "kmeans_scores",
    "mixture_log_density",
    "nats_to_bits",
    "silhouette_score",
    "sp_from_samples",
    "sp_information",
]
