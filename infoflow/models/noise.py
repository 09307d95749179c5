"""The Gaussian noise channel of Goldfeld et al. (2019): T = S + β·Z, Z ~ N(0, I)."""

from __future__ import annotations

import torch
from torch import nn


class GaussianNoise(nn.Module):
    """Adds isotropic Gaussian noise of standard deviation ``beta`` (β = 0: the identity).

    By default the noise is on in training mode and off in eval mode, as the authors reported loss and
    accuracy of the noiseless network; ``at_eval=True`` keeps it on in eval mode too. Callers that need
    a specific setting (the estimators) pass ``noise=True/False`` to the network's methods instead.
    """

    def __init__(self, beta: float = 0.0, at_eval: bool = False) -> None:
        super().__init__()
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        self.beta = float(beta)
        self.at_eval = at_eval

    def active(self) -> bool:
        return self.beta > 0 and (self.training or self.at_eval)

    def forward(self, s: torch.Tensor, noise: bool | None = None) -> torch.Tensor:
        on = self.active() if noise is None else (noise and self.beta > 0)
        return s + self.beta * torch.randn_like(s) if on else s

    def extra_repr(self) -> str:
        return f"beta={self.beta}, at_eval={self.at_eval}"
