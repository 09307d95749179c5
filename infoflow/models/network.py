"""What every network infoflow trains and measures offers: K ≥ 1 members run as one, and each
measured layer's output before and after Goldfeld et al.'s noise.

Layer ℓ of a noisy network (Goldfeld et al. 2019) computes S_ℓ (its output, which carries the
noise of the layers before it) and passes on T_ℓ = S_ℓ + β·Z_ℓ, Z_ℓ ~ N(0, I); β = 0 is a
deterministic network. Every tensor has the member dimension first: inputs (K, B, ...), logits
(K, B, n_classes), layer outputs (K, B, d_ℓ) flattened. A single network is K = 1.

Two implementations: :class:`~infoflow.models.mlp.MLPEnsemble` (stacked weights and batched
products: the SZT net and the single neuron) and :class:`~infoflow.models.named_layers.NamedLayers`
(any ``nn.Module``, its layers named, K members through ``torch.func``). Models import no
estimators; the measuring callbacks read networks only through :class:`Network`.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np
from torch import Tensor

#: Independent random streams of a member, derived from its seed.
INIT_STREAM, NOISE_STREAM = 0, 1


class LayerOutput(NamedTuple):
    """One measured layer of K members, flattened to (K, B, d): S_ℓ and T_ℓ = S_ℓ + β·Z."""

    pre_noise: Tensor
    noisy: Tensor


@runtime_checkable
class Network(Protocol):
    """K networks measured at once (an ensemble; K = 1 for one network).

    Attributes:
        seeds: member k's seed, what its records carry.
        beta: the std of the Gaussian noise after every measured layer; 0: deterministic.
        layer_names: the measured layers T_1 … T_L, in order.
    """

    seeds: list[int]
    beta: float
    layer_names: list[str]

    def __call__(self, x: Tensor) -> Tensor:
        """Logits (K, B, n_classes) of inputs (K, B, ...); noise on in training mode (or with
        ``noise_at_eval``)."""
        ...

    def layer_outputs(self, x: Tensor, *, noise: bool) -> list[LayerOutput]:
        """Every measured layer's (S_ℓ, T_ℓ), each (K, B, d_ℓ), of inputs (K, B, ...), with the
        noise on or off whatever the mode; noise from torch's global generator."""
        ...

    def weights(self) -> list[Tensor]:
        """The weight parameter of every weight layer in order (the read-out last), member first:
        (K, out, in) (convolution kernels (K, out, in, kh, kw))."""
        ...


def member_seed(seed: int, stream: int) -> int:
    """A 32-bit seed for one random stream of the member of seed ``seed`` (NumPy's SeedSequence:
    distinct streams and distinct seeds give unrelated generators).

    >>> member_seed(0, INIT_STREAM) != member_seed(0, NOISE_STREAM) != member_seed(1, INIT_STREAM)
    True
    """
    return int(np.random.SeedSequence([seed, stream]).generate_state(1)[0])


def check_beta(beta: float) -> float:
    """β as a float, or one ValueError line."""
    if isinstance(beta, bool) or not isinstance(beta, int | float) or not beta >= 0:
        raise ValueError(f"beta must be a number >= 0, got {beta!r}")
    return float(beta)


def check_seeds(seeds: object) -> list[int]:
    """Seeds as a non-empty list of ints in [0, 2^32), or one ValueError line."""
    out = list(seeds) if not isinstance(seeds, int) else [seeds]
    if not out or any(isinstance(s, bool) or int(s) != s or not 0 <= s < 2**32 for s in out):
        raise ValueError(f"seeds must be a non-empty list of integers in [0, 2**32), got {seeds}")
    return [int(s) for s in out]
