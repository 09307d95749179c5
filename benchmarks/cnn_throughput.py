"""Throughput of the MNIST CNN on this machine's CPU, from synthetic MNIST-shaped data.

Times one pass of training (noise on, Adam, batch 128 by default) and one pass of noiseless
evaluation over ``--n`` random images, and projects the time of one real epoch of
``model=mnist_cnn`` (55,000 training images, plus the three evaluation loaders of
MnistDataModule: 10,000 train_eval + 5,000 val + 10,000 test images). No download needed.

    python benchmarks/cnn_throughput.py                       # all cores
    python benchmarks/cnn_throughput.py --threads 1 --kernel-size 3 5   # 3×3 vs 5×5 kernels
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from infoflow.models.cnn import HIDDEN_BLOCKS, mnist_cnn
from infoflow.models.named_layers import NamedLayers

TRAIN_IMAGES = 55_000  # 60,000 minus the default val_size of 5,000
EVAL_IMAGES = 10_000 + 5_000 + 10_000  # train_eval + val + test


def synthetic(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images (n, 1, 28, 28) in [0, 1] and labels (n,) in 0..9."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)


def train_rate(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> float:
    """Training samples per second: forward, cross-entropy, backward, Adam step."""
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    start = time.perf_counter()
    for i in range(0, len(x), batch):
        loss = F.cross_entropy(net(x[None, i : i + batch])[0], y[i : i + batch])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return len(x) / (time.perf_counter() - start)


@torch.no_grad()
def eval_rate(net: torch.nn.Module, x: torch.Tensor, batch: int) -> float:
    """Evaluation samples per second (eval mode: no noise, no dropout)."""
    net.eval()
    start = time.perf_counter()
    for i in range(0, len(x), batch):
        net(x[None, i : i + batch])[0].argmax(1)
    return len(x) / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=8192, help="synthetic images per timed pass")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--eval-batch-size", type=int, default=250)  # as MnistDataModule
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    p.add_argument("--kernel-size", type=int, nargs="+", default=[5])
    p.add_argument("--channels", type=int, nargs=2, default=[32, 64])
    p.add_argument("--fc-width", type=int, default=128)
    p.add_argument("--beta", type=float, default=0.01)
    p.add_argument("--dropout", type=float, default=0.0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x, y = synthetic(args.n)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.n} images/pass")
    print(f"{'kernel':>6} {'params':>8} {'train/s':>8} {'eval/s':>8} {'epoch s':>8}")
    for k in args.kernel_size:

        def build(k: int = k) -> torch.nn.Module:
            return mnist_cnn(args.channels, args.fc_width, "relu", args.dropout, k)

        net = NamedLayers(build, HIDDEN_BLOCKS, beta=args.beta)
        warm = min(len(x), 2 * args.batch_size)
        train_rate(net, x[:warm], y[:warm], args.batch_size)  # first calls allocate
        tr = train_rate(net, x, y, args.batch_size)
        ev = eval_rate(net, x, args.eval_batch_size)
        epoch = TRAIN_IMAGES / tr + EVAL_IMAGES / ev
        n_params = sum(q.numel() for q in net.parameters())
        print(f"{k:>6} {n_params:>8} {tr:>8.0f} {ev:>8.0f} {epoch:>8.1f}")
    print(f"epoch s: {TRAIN_IMAGES} training + {EVAL_IMAGES} evaluation images, projected")


if __name__ == "__main__":
    main()
