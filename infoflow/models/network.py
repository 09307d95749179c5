"""A network of hidden blocks, each followed by Gaussian noise, and a linear read-out.

Layer ℓ computes S_ℓ = block_ℓ(T_{ℓ-1}) (affine map + activation) and T_ℓ = S_ℓ + β·Z_ℓ, with T_0 = X.
No noise on the input or on the logits. This class knows nothing about estimators: it only exposes
every hidden layer's pre-noise S_ℓ and noisy T_ℓ, which the estimators consume.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from infoflow.models.noise import GaussianNoise


class HiddenOutput(NamedTuple):
    """One hidden layer's representation, flattened to (batch, d): pre-noise S and noisy T."""

    pre_noise: torch.Tensor
    noisy: torch.Tensor


class NoisyNetwork(nn.Module):
    """Hidden blocks with noise after each, then a head producing logits."""

    def __init__(
        self,
        blocks: list[nn.Module],
        head: nn.Module,
        beta: float = 0.0,
        noise_at_eval: bool = False,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.head = head
        self.noise = GaussianNoise(beta, at_eval=noise_at_eval)

    @property
    def beta(self) -> float:
        return self.noise.beta

    @property
    def n_hidden(self) -> int:
        return len(self.blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits; noise on or off according to train/eval mode and ``noise_at_eval``."""
        t = x
        for block in self.blocks:
            t = self.noise(block(t))
        return self.head(t)

    def hidden_outputs(
        self, x: torch.Tensor, *, noise: bool
    ) -> tuple[list[HiddenOutput], torch.Tensor]:
        """Every hidden layer's (S_ℓ, T_ℓ), flattened, and the logits, with noise explicitly on/off."""
        outputs, t = [], x
        for block in self.blocks:
            s = block(t)
            t = self.noise(s, noise=noise)
            outputs.append(HiddenOutput(s.flatten(1), t.flatten(1)))
        return outputs, self.head(t)

    def representations(
        self, x: torch.Tensor, *, noise: bool, batch_size: int = 4096
    ) -> list[HiddenOutput]:
        """Every hidden layer's (S_ℓ, T_ℓ) of a whole set ``x``, computed ``batch_size`` inputs at a
        time (bounded memory for large sets) and concatenated."""
        parts = [
            self.hidden_outputs(x[i : i + batch_size], noise=noise)[0]
            for i in range(0, len(x), batch_size)
        ]
        return [
            HiddenOutput(*(torch.cat([p[k][j] for p in parts]) for j in range(2)))
            for k in range(len(parts[0]))
        ]

    def sample_pre_noise(self, x: torch.Tensor) -> list[torch.Tensor]:
        """S_ℓ of every hidden layer, with fresh noise in all earlier layers: the SP estimator's
        ``sample_fn``. Replicate ``x`` (``x.repeat_interleave(R, 0)``) to propagate R copies at once."""
        outputs, _ = self.hidden_outputs(x, noise=True)
        return [o.pre_noise for o in outputs]

    def propagate(self, x: torch.Tensor, n_replicas: int) -> list[torch.Tensor]:
        """R noisy propagations of each input in one batched call: per layer a (batch, R, d) tensor
        of pre-noise S_ℓ."""
        rep = x.repeat_interleave(n_replicas, dim=0)
        return [s.view(x.shape[0], n_replicas, -1) for s in self.sample_pre_noise(rep)]

    def linear_layers(self) -> list[nn.Linear | nn.Conv2d]:
        """The weight layers of the hidden blocks (all but the read-out), in order."""
        return [m for b in self.blocks for m in b.modules() if isinstance(m, nn.Linear | nn.Conv2d)]

    @torch.no_grad()
    def orthonormalize_(self, alpha: float) -> None:
        """One step of W ← W − α(W Wᵀ W − W) on every hidden weight (Goldfeld et al.'s
        orthonormality regularisation; drives W Wᵀ toward I). Conv kernels act as (out, in·k·k)."""
        for layer in self.linear_layers():
            w = layer.weight.view(layer.weight.shape[0], -1)
            w -= alpha * (w @ w.T @ w - w)
