"""One estimation epoch of the default callbacks, timed on a device: what a scheduled epoch costs.

    python benchmarks/estimation_epoch.py [--device cpu|cuda] [--replicas 100] [--inputs 4096]
        [--n-mc N] [--train-epochs 300]

Trains the SZT net (β = 0.005, tanh) for a few hundred epochs with a plain loop so that its
representations are clustered as in a real run, then times, per part, what the default callbacks do
at one scheduled epoch on all 4096 inputs: SP (N = 4096, R replicas), binned information on the
noiseless and noisy representations, clustering scores (2000 samples), KDE bounds. SP uses --inputs inputs
drawn with replacement (4096: all of them, in order, as the paper presets) and --n-mc queries per
entropy (default: aim at a 0.005-nat stderr); `--inputs 512 --replicas 10 --n-mc 1000` is the
default config's SP. Prints seconds per part and the total (median of --repeats). Run it on the CPU
here and on a GPU to get their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
import torch.nn.functional as F

from infoflow.data.szt import make_szt_dataset
from infoflow.estimators import (
    binned_information,
    clustering_scores,
    kde_information,
    sp_information,
)
from infoflow.models.mlp import MLPEnsemble


def trained_net(
    device: torch.device, epochs: int
) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    x_np, y_np = make_szt_dataset()
    x = torch.as_tensor(x_np, dtype=torch.float32, device=device)
    y = torch.as_tensor(y_np, device=device)
    net = MLPEnsemble([0], beta=0.005).to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=4e-4)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), device=device).split(256):
            loss = F.cross_entropy(net(x[idx][None])[0], y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval(), x, y


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device) -> float:  # noqa: ANN001
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--replicas", type=int, default=100)
    parser.add_argument("--inputs", type=int, default=4096)
    parser.add_argument("--n-mc", type=int, default=None)
    parser.add_argument("--train-epochs", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    net, x, y = trained_net(device, args.train_epochs)

    @torch.no_grad()
    def reps(noise: bool) -> list[torch.Tensor]:
        outs = net.layer_outputs(x[None], noise=noise)
        return [(o.noisy if noise else o.pre_noise)[0] for o in outs]

    if args.inputs == len(x):
        xs, ys = x, y
    else:
        g = torch.Generator().manual_seed(0)
        idx = torch.randint(len(x), (args.inputs,), generator=g).to(device)
        xs, ys = x[idx], y[idx]
    n_mc = args.n_mc
    parts = {
        f"sp (N={len(xs)}, R={args.replicas}, n_mc={n_mc})": lambda: sp_information(
            lambda v: [o.pre_noise[0] for o in net.layer_outputs(v[None], noise=True)],
            xs,
            ys,
            sigma=0.005,
            n_replicas=args.replicas,
            n_mc=n_mc,
        ),
        "binned (noiseless + noisy)": lambda: [
            binned_information(r, y, bin_size=[0.05], scheme="width")
            for r in reps(False) + reps(True)
        ],
        "clustering (2000 samples)": lambda: [
            clustering_scores(r, y, max_samples=2000) for r in reps(False)
        ],
        "kde bounds (4096 samples)": lambda: [
            kde_information(r, y, noise_var=1e-3) for r in reps(False)
        ],
    }
    with torch.no_grad():
        for fn in parts.values():  # warm-up (CUDA context, kernels)
            fn() if device.type == "cuda" else None
        times = {
            name: [timed(fn, device) for _ in range(args.repeats)] for name, fn in parts.items()
        }
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    print(f"one estimation epoch on {name} (median of {args.repeats}):")
    total = 0.0
    for part, values in times.items():
        med = statistics.median(values)
        total += med
        print(f"  {part:32s} {med:8.3f} s")
    print(f"  {'total':32s} {total:8.3f} s")


if __name__ == "__main__":
    main()
