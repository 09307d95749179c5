"""Measure your own LightningModule with infoflow's callbacks, on a plain Trainer.

    python examples/own_lightning_module.py [OUTPUT_DIR]

The module below is an ordinary LightningModule with its own network. Two things make it
measurable (``infoflow.callbacks.Measurable``): its network is wrapped in
``infoflow.models.NamedLayers`` (the layers to measure, by name, and Goldfeld et al.'s Gaussian
noise of std beta after each of them in training), and it says what to measure on
(``measurement_data``). The callbacks then write ``information.csv`` (SP, binned and clustering
rows per named layer) and figures into OUTPUT_DIR.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from infoflow.callbacks import (
    BinnedCallback,
    ClusteringCallback,
    InformationCallback,
    PlotsCallback,
)
from infoflow.models import NamedLayers, Network
from infoflow.records import read_records


class Classifier(pl.LightningModule):
    """A small tanh network; infoflow measures the outputs of body.1 and body.3."""

    def __init__(self, x_eval: torch.Tensor, y_eval: torch.Tensor, beta: float = 0.05) -> None:
        super().__init__()
        body = nn.Sequential(
            nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 4), nn.Tanh(), nn.Linear(4, 3)
        )
        # Train NamedLayers' parameters (it holds the module's, member first).
        self.net = NamedLayers(body, ["1", "3"], beta=beta)
        self.x_eval, self.y_eval = x_eval, y_eval

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x[None])[0]  # one network: member dimension of 1

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-2)

    # What infoflow's callbacks read (infoflow.callbacks.Measurable):
    def measured_network(self) -> Network:
        return self.net

    def measurement_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x_eval.to(self.device), self.y_eval.to(self.device)


def make_data(n: int = 600, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Three classes in 10 dimensions, told apart by two of them."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 10, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return x, y


def main(out: Path) -> None:
    torch.manual_seed(0)
    x, y = make_data()
    model = Classifier(x[:400], y[:400])
    every = {"every_n_epochs": 10}  # epoch 0, 10, 20, 30 and the last
    trainer = pl.Trainer(
        max_epochs=30,
        callbacks=[
            InformationCallback(out, n_replicas=20, **every),
            BinnedCallback(out, bin_size=0.1, **every),
            ClusteringCallback(out, max_samples=400, **every),
            PlotsCallback(out),
        ],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=out,
    )
    trainer.fit(model, DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True))
    rows = read_records(out / "information.csv")
    for layer in (1, 2):
        i_xt = [
            r for r in rows if (r["estimator"], r["layer"], r["quantity"]) == ("sp", layer, "I_XT")
        ]
        path = " → ".join(f"{r['value']:.2f}" for r in i_xt)
        print(f"T{layer}: I(X;T) in nats at epochs {[r['epoch'] for r in i_xt]}: {path}")
    print(f"records and figures: {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "own_module_run"))
