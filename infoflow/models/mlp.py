"""The fully connected network of the SZT experiments (12-10-7-5-4-3-2 by default)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from infoflow.models.network import NoisyNetwork

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "linear": nn.Identity,
}


def make_activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]()


def noisy_mlp(
    in_features: int = 12,
    hidden: Sequence[int] = (10, 7, 5, 4, 3),
    n_classes: int = 2,
    activation: str = "tanh",
    beta: float = 0.0,
    noise_at_eval: bool = False,
) -> NoisyNetwork:
    """An MLP with hidden widths ``hidden``, Gaussian noise of std ``beta`` after each hidden
    activation, and linear logits for cross-entropy."""
    widths = [in_features, *hidden]
    blocks = [
        nn.Sequential(nn.Linear(a, b), make_activation(activation))
        for a, b in zip(widths[:-1], widths[1:], strict=True)
    ]
    return NoisyNetwork(blocks, nn.Linear(widths[-1], n_classes), beta, noise_at_eval)
