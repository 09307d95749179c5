"""K networks trained as one: the interface :class:`~infoflow.models.module.ClassifierModule`
trains, with a leading member dimension on every tensor.

:class:`MLPEnsemble` holds K independent MLPs (the SZT net, the single neuron) as stacked weights,
(K, out, in) per layer, and runs them with batched matmuls (``torch.baddbmm``). Stacked parameters
rather than ``torch.func`` (``stack_module_state`` + ``vmap``): the nets are plain affine maps and
activations, so a batched matmul *is* the ensemble, with ordinary ``nn.Parameter``s that every
optimizer, checkpoint and gradient hook already handles, and no vmap randomness rules for the
noise. Members never mix: the loss is the sum of the members' mean losses, so member k's gradient
is its own loss's, and an elementwise optimizer (Adam, SGD) gives each member exactly its own
update and state.

Each member has its own seed (``seeds[k]``), from which it draws its initialisation and its
training noise on its own generators; its minibatch order comes from the datamodule's generator
of the same seed. A single run is an ensemble of one, through the same code: member k of an
ensemble is the single run of seed ``seeds[k]`` (tests/models/test_ensemble.py checks it to float
tolerance after hundreds of steps).

:class:`SingleNetwork` gives any :class:`NoisyNetwork` (the MNIST CNN) the same interface as an
ensemble of one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from infoflow.models.mlp import make_activation, noisy_mlp
from infoflow.models.network import NoisyNetwork

#: Independent random streams of a member, derived from its seed.
INIT_STREAM, NOISE_STREAM = 0, 1


def member_seed(seed: int, stream: int) -> int:
    """A 32-bit seed for one random stream of the member of seed ``seed`` (NumPy's SeedSequence:
    distinct streams and distinct seeds give unrelated generators)."""
    return int(np.random.SeedSequence([seed, stream]).generate_state(1)[0])


class StackedLinear(nn.Module):
    """K affine maps y_k = W_k x_k + b_k at once: weight (K, out, in), bias (K, out), on
    feature-major activations (K, features, batch)."""

    def __init__(self, weight: Tensor, bias: Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias)

    def forward(self, t: Tensor) -> Tensor:
        """t (K, in, B) -> (K, out, B). Feature-major because the batched product is then K
        (out × in)·(in × B) products with long rows: 3-15× faster on a CPU than batch-major
        (K, B, in)·(K, in, out) for the SZT widths (measured with K = 50, B = 512)."""
        return torch.baddbmm(self.bias.unsqueeze(2), self.weight, t)


def _uniform(shape: tuple[int, ...], fan_in: int, generator: torch.Generator) -> Tensor:
    # nn.Linear's default init: weight and bias uniform on ±1/sqrt(fan_in).
    bound = 1.0 / math.sqrt(fan_in)
    return (torch.rand(shape, generator=generator) * 2 - 1) * bound


class MLPEnsemble(nn.Module):
    """K MLPs ``in_features → hidden… → n_classes`` with noise of std β_k after every hidden
    activation (no noise on the input or the logits), as :func:`~infoflow.models.mlp.noisy_mlp`.

    Args:
        seeds: one per member; member k initialises from ``seeds[k]`` and draws its training noise
            from its own generator of that seed.
        beta: the noise's std, one for all members or one per member.
        noise_at_eval: keep the noise on in eval mode (reported loss and accuracy with noise).
    """

    stacked = True

    def __init__(
        self,
        seeds: Sequence[int],
        in_features: int = 12,
        hidden: Sequence[int] = (10, 7, 5, 4, 3),
        n_classes: int = 2,
        activation: str = "tanh",
        beta: float | Sequence[float] = 0.0,
        noise_at_eval: bool = False,
    ) -> None:
        super().__init__()
        self.seeds = [int(s) for s in seeds]
        if not self.seeds:
            raise ValueError("an ensemble needs at least one member")
        betas = list(beta) if isinstance(beta, Sequence) else [beta] * len(self.seeds)
        if len(betas) != len(self.seeds) or any(b < 0 for b in betas):
            raise ValueError(f"beta must be >= 0, one value or one per member; got {beta}")
        self.betas = [float(b) for b in betas]
        self.arch = dict(
            in_features=in_features, hidden=list(hidden), n_classes=n_classes, activation=activation
        )
        self.noise_at_eval = noise_at_eval
        self.hidden_widths = list(hidden)
        widths = [in_features, *hidden, n_classes]
        gens = [torch.Generator().manual_seed(member_seed(s, INIT_STREAM)) for s in self.seeds]
        layers = []
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            # Per member: weight then bias, layer after layer, each from the member's own stream.
            pairs = [(_uniform((b, a), a, g), _uniform((b,), a, g)) for g in gens]
            layers.append(StackedLinear(*(torch.stack(p) for p in zip(*pairs, strict=True))))
        self.layers = nn.ModuleList(layers)
        self.activation = make_activation(activation)
        self.register_buffer("beta_", torch.tensor(self.betas).view(-1, 1, 1), persistent=False)
        self._noise_gens: list[torch.Generator] | None = None
        self._restored_noise: list[Tensor] | None = None
        self._members: dict[int, NoisyNetwork] = {}  # member(k)'s networks; not submodules

    def _noise_generators(self, device: torch.device) -> list[torch.Generator]:
        # Made on first use, on the device the members run on; a restored state applies then.
        if self._noise_gens is None or self._noise_gens[0].device != device:
            self._noise_gens = [
                torch.Generator(device=device).manual_seed(member_seed(s, NOISE_STREAM))
                for s in self.seeds
            ]
            if self._restored_noise is not None:
                for g, state in zip(self._noise_gens, self._restored_noise, strict=True):
                    g.set_state(state)
                self._restored_noise = None
        return self._noise_gens

    def noise_state(self) -> list[Tensor]:
        """The members' noise generators' states (for checkpoints); empty before any noise."""
        return [g.get_state() for g in self._noise_gens or []]

    def load_noise_state(self, states: list[Tensor]) -> None:
        """Restore :meth:`noise_state` (applied when the noise is next drawn)."""
        self._noise_gens, self._restored_noise = None, (list(states) or None)

    def _training_noise(self, batch: int, device: torch.device) -> tuple[Tensor, ...]:
        """β_k·Z for every hidden layer, feature-major (K, d_ℓ, B) each, member k's Z from its own
        generator (one draw per member and step for all layers)."""
        width = sum(self.hidden_widths)
        gens = self._noise_generators(device)
        z = torch.stack([torch.randn(width, batch, generator=g, device=device) for g in gens])
        return (self.beta_ * z).split(self.hidden_widths, dim=1)

    def forward(self, x: Tensor) -> Tensor:
        """Logits (K, B, n_classes) of inputs (K, B, in_features): member k sees x[k]. Noise on in
        training mode (or with ``noise_at_eval``)."""
        noisy = (self.training or self.noise_at_eval) and any(self.betas)
        noise = self._training_noise(x.shape[1], x.device) if noisy else None
        t = x.transpose(1, 2)  # feature-major inside (StackedLinear)
        for i, layer in enumerate(self.layers[:-1]):
            t = self.activation(layer(t))
            if noise is not None:
                t = t + noise[i]
        return self.layers[-1](t).transpose(1, 2)

    def weights(self) -> list[Tensor]:
        """Every layer's stacked weight (K, out, in): hidden layers, then the read-out."""
        return [layer.weight for layer in self.layers]

    @torch.no_grad()
    def orthonormalize_(self, alpha: float) -> None:
        """W_k ← W_k − α(W_k W_kᵀ W_k − W_k) for every member's hidden weights (Goldfeld et al.)."""
        for layer in self.layers[:-1]:
            w = layer.weight
            w -= alpha * (w @ w.transpose(1, 2) @ w - w)

    @torch.no_grad()
    def member(self, k: int) -> NoisyNetwork:
        """Member k as a standalone :class:`NoisyNetwork` holding a copy of its current weights
        (no gradients), in eval mode: what the estimators measure. The network object is made
        once per member and refilled on each call (building 50 modules per measured epoch cost
        more than binning them); a later call overwrites the weights an earlier one returned."""
        if k not in self._members:
            net = noisy_mlp(**self.arch, beta=self.betas[k], noise_at_eval=self.noise_at_eval)
            self._members[k] = net.eval().requires_grad_(False)
        net = self._members[k].to(self.layers[0].weight.device)
        linears = [block[0] for block in net.blocks] + [net.head]
        for linear, layer in zip(linears, self.layers, strict=True):
            linear.weight.copy_(layer.weight[k])
            linear.bias.copy_(layer.bias[k])
        return net


class SingleNetwork(nn.Module):
    """One :class:`NoisyNetwork` with the ensemble interface: an ensemble of one (the MNIST CNN).
    Its noise uses torch's global generator, seeded by the run's seed."""

    stacked = False

    def __init__(self, net: NoisyNetwork, seed: int) -> None:
        super().__init__()
        self.net = net
        self.seeds = [int(seed)]
        self.betas = [net.beta]

    def forward(self, x: Tensor) -> Tensor:
        """x (1, B, ...) -> logits (1, B, n_classes)."""
        return self.net(x[0]).unsqueeze(0)

    def weights(self) -> list[Tensor]:
        return [layer.weight for layer in self.net.linear_layers()] + [self.net.head.weight]

    def orthonormalize_(self, alpha: float) -> None:
        self.net.orthonormalize_(alpha)

    def member(self, k: int) -> NoisyNetwork:
        if k != 0:
            raise IndexError(f"a single network has member 0 only, not {k}")
        return self.net

    def noise_state(self) -> list[Tensor]:
        return []

    def load_noise_state(self, states: list[Tensor]) -> None:
        pass
