"""One SP estimate at the papers' settings beside one training epoch, measured in the same run.

    python benchmarks/sp_estimate.py [--beta 0.005] [--epochs 0,300,3000] [--target 0.005]
        [--repeats 1] [--threads N]

Trains the SZT net (12-10-7-5-4-3-2 tanh, Adam 4e-4, batch 256, all 4096 inputs) with a plain
one-thread loop; at each listed epoch times (a) one more plain training epoch (median of 20) and
(b) ``sp_information(sample_fn(net), x, y, sigma=β, n_replicas=100)`` on all 4096 inputs
with the default budget aimed at ``--target`` nats for I(X;T) and I(T;Y) (median of --repeats),
on ``--threads`` torch threads (default: infoflow's thread policy). Prints per layer I(X;T) ±
stderr and seconds, and the estimate's cost in training epochs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from infoflow.data.szt import make_szt_dataset
from infoflow.estimators import sp_information
from infoflow.threads import compute_threads

sys.path.insert(0, str(Path(__file__).resolve().parent))
from szt_geometries import sample_fn, szt_net  # noqa: E402


def train_epoch(net, opt, x, y) -> None:  # noqa: ANN001
    for idx in torch.randperm(len(x)).split(256):
        loss = F.cross_entropy(net(x[idx][None])[0], y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--beta", type=float, default=0.005)
    p.add_argument("--epochs", default="0,300,3000")
    p.add_argument("--target", type=float, default=0.005)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    threads = args.threads or compute_threads()
    print(
        f"β={args.beta}, N=4096, R=100, target {args.target} nats; SP on {threads} thread(s); "
        f"load average at start {load}"
    )
    torch.manual_seed(0)
    x_np, y_np = make_szt_dataset()
    x, y = torch.as_tensor(x_np, dtype=torch.float32), torch.as_tensor(y_np)
    net = szt_net(args.beta)
    opt = torch.optim.Adam(net.parameters(), lr=4e-4)
    done = 0
    for epoch in map(int, args.epochs.split(",")):
        torch.set_num_threads(1)
        net.train()
        for _ in range(epoch - done):
            train_epoch(net, opt, x, y)
        done = epoch
        state = {k: v.clone() for k, v in net.state_dict().items()}
        ep_times = []
        for _ in range(20):
            t = time.perf_counter()
            train_epoch(net, opt, x, y)
            ep_times.append(time.perf_counter() - t)
        net.load_state_dict(state)  # the timing epochs leave the net as it was
        net.eval()
        torch.set_num_threads(threads)
        sp_times, out = [], None
        for rep in range(args.repeats):
            g = torch.Generator().manual_seed(rep)
            t = time.perf_counter()
            out = sp_information(
                sample_fn(net),
                x,
                y,
                sigma=args.beta,
                n_replicas=100,
                generator=g,
                target_stderr=args.target,
            )
            sp_times.append(time.perf_counter() - t)
        epoch_s, sp_s = statistics.median(ep_times), statistics.median(sp_times)
        layers = "  ".join(
            f"T{k + 1} {v['I_XT'].value:.3f}±{v['I_XT'].stderr:.4f}" for k, v in out.items()
        )
        print(
            f"epoch {epoch:5d}: one training epoch {1000 * epoch_s:.1f} ms | one SP estimate "
            f"{sp_s:.1f} s = {sp_s / epoch_s:.0f} epochs | I(X;T) {layers}",
            flush=True,
        )


if __name__ == "__main__":
    main()
