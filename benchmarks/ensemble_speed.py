"""K networks as one ensemble beside K separate runs: whole `python -m infoflow` commands.

    python benchmarks/ensemble_speed.py [--members 32] [--epochs 300] [--singles 4] [--repeats 2]

Each command trains the default experiment (noisy SZT net, β = 0.005) for ``--epochs`` epochs and
measures at the first and last epoch only (SP, binned, clustering, gradients; figures drawn at
the end), with the W&B logger offline as a user runs it. The ensemble is one command with
``ensemble.size=K``; the separate runs are ``--singles`` commands of one seed each, and K separate
runs are counted as K × their median (every single run does the same work). Prints the medians
and the ratio ensemble / K separate runs (target: at most 0.25), and the machine's load.
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
        "schedule.n_points=null",
        f"schedule.every_n_epochs={epochs}",  # epochs 0 and the last
        "trainer.enable_progress_bar=false",
        f"paths.output_dir={out}",
        *extra,
    ]  # fmt: skip


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--singles", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    env_load = os.getloadavg()[0]
    ensemble, singles = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):  # interleaved: load changes hit both alike
            out = Path(tmp) / f"ensemble{r}"
            ensemble.append(timed(command(out, args.epochs, [f"ensemble.size={args.members}"])))
            for s in range(args.singles):
                if r == 0 or s < 1:
                    singles.append(
                        timed(command(Path(tmp) / f"s{r}_{s}", args.epochs, [f"seed={s}"]))
                    )
    ens, one = statistics.median(ensemble), statistics.median(singles)
    k = args.members
    print(f"load average at start: {env_load:.2f}, at end: {os.getloadavg()[0]:.2f}")
    print(
        f"ensemble of {k}: median {ens:.1f} s over {len(ensemble)} ({', '.join(f'{t:.1f}' for t in ensemble)})"
    )
    print(
        f"one run: median {one:.1f} s over {len(singles)} ({', '.join(f'{t:.1f}' for t in singles)})"
    )
    print(f"{k} separate runs: {k * one:.1f} s; ratio ensemble / separate: {ens / (k * one):.3f}")


if __name__ == "__main__":
    main()
