"""K seeds as one ensemble beside the same K seeds as a Hydra multirun in one process.

    python benchmarks/ensemble_speed.py [--members 8] [--epochs 1000] [--repeats 2]

Both are whole ``python -m infoflow`` commands of the default experiment (noisy SZT net, β =
0.005) with its measurements included (SP, binned, clustering, representations, gradients at
the default schedule; figures drawn; W&B offline, as a user runs it):

* the ensemble: ``ensemble.size=K`` (seeds 0 … K−1 trained and measured as one model);
* the baseline: ``-m seed=0,1,…,K−1``, Hydra's basic launcher running the K jobs one after another
  in one process (so the start-up is paid once, as in the ensemble: the baseline counts no
  process start-ups the ensemble does not pay).

Prints each command's wall times, the medians and the ratio ensemble / multirun (target: at most
0.25), and the machine's load before and after. Commands alternate, so load changes hit both.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def command(out: Path, epochs: int, extra: list[str]) -> list[str]:
    return [
        sys.executable, "-m", "infoflow",
        f"trainer.max_epochs={epochs}",
        "trainer.enable_progress_bar=false",
        *extra,
    ]  # fmt: skip


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    env = {**os.environ, "WANDB_MODE": "offline"}
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    k, seeds = args.members, ",".join(str(s) for s in range(args.members))
    load = os.getloadavg()[0]
    ensemble, multirun = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            out = Path(tmp) / f"e{r}"
            ensemble.append(
                timed(command(out, args.epochs, [f"ensemble.size={k}", f"hydra.run.dir={out}"]))
            )
            sweep = Path(tmp) / f"m{r}"
            multirun.append(
                timed(
                    command(sweep, args.epochs, ["-m", f"seed={seeds}", f"hydra.sweep.dir={sweep}"])
                )
            )
    ens, multi = statistics.median(ensemble), statistics.median(multirun)
    print(f"load average at start {load:.2f}, at end {os.getloadavg()[0]:.2f} (2 cores)")
    print(
        f"ensemble of {k}, {args.epochs} epochs: {', '.join(f'{t:.1f}' for t in ensemble)} s; median {ens:.1f} s"
    )
    print(
        f"multirun of {k} seeds, one process: {', '.join(f'{t:.1f}' for t in multirun)} s; median {multi:.1f} s"
    )
    print(f"ratio ensemble / multirun: {ens / multi:.3f} (target <= 0.25)")


if __name__ == "__main__":
    main()
