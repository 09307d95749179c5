"""The geometries real runs give the SP estimator: pre-noise samples of real SZT nets.

    python benchmarks/szt_geometries.py [--out benchmarks/.cache/szt_geometries.pt]

Trains the 12-10-7-5-4-3-2 tanh net (Adam 4e-4, batch 256, all 4096 inputs, a plain loop) at
β ∈ {0.005, 0.05} and keeps, at epochs 0 (untrained), 300 and 3000, every hidden layer's (N, R, d)
pre-noise samples for N = 4096 inputs (all, in order, as the paper presets) and R = 100 replicas,
plus the labels and the net's weights at each of those epochs (``network`` rebuilds it, so that a
benchmark can draw fresh replicas as a second run would). Other benchmarks load these
(``load_geometries``) so that every engine is timed on the same samples; the file is a cache
(git-ignored), rebuilt when absent or older than this format.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from infoflow.data.szt import make_szt_dataset
from infoflow.models.mlp import MLPEnsemble

DEFAULT = Path(__file__).resolve().parent / ".cache" / "szt_geometries.pt"
BETAS = (0.005, 0.05)
EPOCHS = (0, 300, 3000)
FORMAT = 2  # 2: MLPEnsemble state dicts


def szt_net(beta: float, seed: int = 0) -> MLPEnsemble:
    """infoflow's SZT net (one member): 12-10-7-5-4-3-2 tanh, noise of std β after each layer."""
    return MLPEnsemble([seed], beta=beta)


def propagate(net: MLPEnsemble, x: torch.Tensor, replicas: int) -> list[torch.Tensor]:
    """Every hidden layer's (N, R, d) pre-noise samples S_ℓ of R noisy propagations of each of
    the N inputs (noise from torch's global generator)."""
    with torch.no_grad():
        outs = net.layer_outputs(x.repeat_interleave(replicas, 0)[None], noise=True)
    return [o.pre_noise[0].reshape(len(x), replicas, -1) for o in outs]


def sample_fn(net: MLPEnsemble):
    """``sp_information``'s sample_fn for ``net``: inputs (B, 12) → each layer's noisy-network
    pre-noise outputs (B, d)."""

    def sample(x: torch.Tensor) -> list[torch.Tensor]:
        return [o.pre_noise[0] for o in net.layer_outputs(x[None], noise=True)]

    return sample


def _train_and_sample(beta: float, replicas: int, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    x_np, y_np = make_szt_dataset()
    x = torch.as_tensor(x_np, dtype=torch.float32)
    y = torch.as_tensor(y_np)
    net = szt_net(beta, seed)
    opt = torch.optim.Adam(net.parameters(), lr=4e-4)
    out, states, done = {}, {}, 0
    for epoch in EPOCHS:
        net.train()
        for _ in range(epoch - done):
            for idx in torch.randperm(len(x)).split(256):
                loss = F.cross_entropy(net(x[idx][None])[0], y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        done = epoch
        layers = propagate(net, x, replicas)
        out[epoch] = [s.clone() for s in layers]
        states[epoch] = {k: v.clone() for k, v in net.state_dict().items()}
    return {"samples": out, "labels": y, "states": states, "inputs": x, "format": FORMAT}


def build(path: Path, replicas: int = 100) -> dict:
    geoms = {}
    for beta in BETAS:
        t = time.perf_counter()
        geoms[beta] = _train_and_sample(beta, replicas)
        print(f"β={beta}: trained and sampled in {time.perf_counter() - t:.0f} s", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(geoms, path)
    return geoms


def load_geometries(path: Path = DEFAULT) -> dict:
    """{β: {"samples": {epoch: [(N, R, d) per layer]}, "labels": (N,), "inputs": (N, 12),
    "states": {epoch: state_dict}}}, built on first use (and rebuilt from an older cache)."""
    if path.is_file():
        geoms = torch.load(path)
        if all(g.get("format") == FORMAT for g in geoms.values()):
            return geoms
    return build(path)


def network(geoms: dict, beta: float, epoch: int) -> torch.nn.Module:
    """The SZT net of ``geoms`` at β and ``epoch`` (eval mode): ``propagate(net, x, R)`` draws
    fresh replicas of the same geometry."""
    net = szt_net(beta)
    net.load_state_dict(geoms[beta]["states"][epoch])
    return net.eval()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=DEFAULT)
    args = p.parse_args()
    torch.set_num_threads(1)
    geoms = build(args.out)
    for beta, g in geoms.items():
        for epoch, layers in g["samples"].items():
            spread = [f"{float(s.std(1).mean()) / beta:.2f}" for s in layers]
            print(f"β={beta} epoch {epoch}: replica spread / β per layer {spread}")


if __name__ == "__main__":
    main()
