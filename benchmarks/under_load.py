"""The density engine beside scikit-learn with other CPU-bound processes on the machine.

    python benchmarks/under_load.py [--busy 4] [--queries 5000] [--repeats 3]

One real SZT geometry (β = 0.005, untrained, T4: 409,600 centres in d = 4, the partly overlapping
regime) is evaluated at the same queries by infoflow (threads from its thread policy, which
steps down when other processes keep the CPUs busy) and by ``KernelDensity(rtol=1e-3)``, first on
a quiet machine, then with --busy processes spinning. Prints medians and each one's slowdown.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from szt_geometries import load_geometries  # noqa: E402

from infoflow.estimators.mixture import mixture_log_density  # noqa: E402
from infoflow.threads import using_threads  # noqa: E402


def spin(stop: float) -> None:
    x = 0
    while time.time() < stop:
        x += 1


def timed(fn, repeats: int) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure(q, c, sigma, repeats):  # noqa: ANN001
    from sklearn.neighbors import KernelDensity

    def ours() -> None:
        with using_threads() as n:
            measure.threads = n
            mixture_log_density(q, c, sigma)

    def theirs() -> None:
        KernelDensity(bandwidth=sigma, rtol=1e-3).fit(c.double().numpy()).score_samples(q.numpy())

    return timed(ours, repeats), timed(theirs, repeats), measure.threads


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--busy", type=int, default=4)
    p.add_argument("--queries", type=int, default=5000)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    s = load_geometries()[0.005]["samples"][0][3]
    c = s.reshape(-1, s.shape[-1])
    g = torch.Generator().manual_seed(1)
    k = torch.randint(0, len(c), (args.queries,), generator=g)
    q = c[k].double() + 0.005 * torch.randn(args.queries, c.shape[1], generator=g).double()
    mixture_log_density(q[:64], c, 0.005)  # untimed: load the compiled engine once
    quiet = measure(q, c, 0.005, args.repeats)
    stop = time.time() + 3600
    procs = [mp.Process(target=spin, args=(stop,), daemon=True) for _ in range(args.busy)]
    for proc in procs:
        proc.start()
    time.sleep(2)
    try:
        loaded = measure(q, c, 0.005, args.repeats)
    finally:
        for proc in procs:
            proc.terminate()
    print(f"{args.queries} queries, median of {args.repeats}; {args.busy} busy processes")
    print(
        f"infoflow: quiet {quiet[0]:.2f} s ({quiet[2]} threads), loaded {loaded[0]:.2f} s "
        f"({loaded[2]} threads): slowdown {loaded[0] / quiet[0]:.1f}x"
    )
    print(
        f"sklearn:  quiet {quiet[1]:.2f} s, loaded {loaded[1]:.2f} s: slowdown "
        f"{loaded[1] / quiet[1]:.1f}x"
    )
    print(
        f"ratio of slowdowns infoflow/sklearn: "
        f"{(loaded[0] / quiet[0]) / (loaded[1] / quiet[1]):.2f} (target <= 2)"
    )


if __name__ == "__main__":
    main()
