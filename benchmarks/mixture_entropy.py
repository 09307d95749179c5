"""SP's mixture densities: infoflow's engine beside the authors' scikit-learn KDE, same queries.

    python benchmarks/mixture_entropy.py [--queries 8192] [--repeats 3] [--threads 1]
        [--sklearn-budget 10] [--only real|synthetic] [--match TEXT]

Geometries (N = 4096 inputs × R = 100 replicas = 409,600 centres):

* real: pre-noise samples of real SZT nets (benchmarks/szt_geometries.py: β ∈ {0.005, 0.05},
  untrained and after 300 / 3000 epochs, hidden layers 2-5; layer 1's replicas coincide);
* synthetic: tanh-spread inputs with replicas jittered by 0.5σ, 2σ and 4σ, coincident replicas,
  tight clusters (256 cluster points), and dense overlap (everything within a few σ).

Queries q = c + σz from random centres, the same for both engines. 8192 queries by default: the
fewest one SP estimate of a layer ever asks at N = 4096 (its pilot, two rounds; papers'-settings
estimates take 8192-53,248), so the build weighs as much as it ever does. Each engine's time is the
whole job: building its index (infoflow's k-d trees; sklearn's fit) plus evaluating log ĝ at every
query, the median of --repeats after one untimed warm-up of infoflow on the same centres (a
fresh process loads the compiled engine once, ~0.3 s, and its first large arrays fault in their
pages); the build is also printed on its own. sklearn is ``KernelDensity(kernel="gaussian",
bandwidth=σ, rtol=1e-3)`` as in Goldfeld et al.'s code; where its queries would take over
--sklearn-budget seconds it scores the first ones only and its time is extrapolated ("~").
Accuracy: the max |log ĝ − exact| of each over the first 100 queries, against a float64
log-sum-exp over all centres by direct differences (independent of both). infoflow runs at its
default tol = 1e-4 nats (certified per query); sklearn's rtol = 1e-3 allows ~1e-3.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from szt_geometries import load_geometries  # noqa: E402

from infoflow.estimators.mixture import DEFAULT_TOL  # noqa: E402
from infoflow.estimators.mixture.entropy import certified_log_sums, make_index  # noqa: E402
from infoflow.estimators.mixture.kernels import log_norm  # noqa: E402

N, R = 4096, 100


def synthetic(kind: str, d: int, sigma: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if kind == "clusters":  # a trained layer: 256 saturated cluster points
        pts = torch.sign(torch.randn(256, d, generator=g)) * torch.tanh(
            1.5 + 3.5 * torch.rand(256, d, generator=g)
        )
        x = pts[torch.arange(N) % 256] + sigma * torch.randn(N, d, generator=g)
        jitter = 0.5
    elif kind == "dense":  # an untrained deep layer squeezed near the origin
        x = 3 * sigma * torch.randn(N, d, generator=g)
        jitter = 0.6
    else:
        x = torch.tanh(torch.randn(N, d, generator=g))
        jitter = {"coincident": 0.0, "jitter0.5": 0.5, "jitter2": 2.0, "jitter4": 4.0}[kind]
    c = x.repeat_interleave(R, 0)
    return (c + jitter * sigma * torch.randn(c.shape, generator=g)).float()


def geometries(only: str | None):
    if only != "real":
        for kind in ("clusters", "coincident", "jitter0.5", "jitter2", "jitter4", "dense"):
            for d in (3, 5, 10):
                yield f"synthetic {kind} d={d}", synthetic(kind, d, 0.005), 0.005
    if only != "synthetic":
        for beta, g in load_geometries().items():
            for epoch, layers in g["samples"].items():
                for layer, s in enumerate(layers[1:], start=2):
                    yield f"SZT β={beta} epoch {epoch} T{layer}", s.reshape(-1, s.shape[-1]), beta


def exact(q: torch.Tensor, c: torch.Tensor, sigma: float) -> torch.Tensor:
    c64, out = c.double(), torch.empty(len(q), dtype=torch.float64)
    for i in range(0, len(q), 8):
        sq = torch.cdist(q[i : i + 8], c64, compute_mode="donot_use_mm_for_euclid_dist") ** 2
        out[i : i + 8] = torch.logsumexp(-sq / (2 * sigma**2), 1)
    d = c.shape[1]
    return out - math.log(len(c)) - 0.5 * d * math.log(2 * math.pi * sigma**2)


def time_infoflow(q, c, sigma, repeats):
    times, builds = [], []
    certified_log_sums(make_index(c, sigma, tol=DEFAULT_TOL, chunk_elements=1 << 20), q[:64])
    for _ in range(repeats):
        t = time.perf_counter()
        index = make_index(c, sigma, tol=DEFAULT_TOL, chunk_elements=1 << 20)
        builds.append(time.perf_counter() - t)
        out = certified_log_sums(index, q)[0] + log_norm(*c.shape, sigma)
        times.append(time.perf_counter() - t)
    return statistics.median(times), statistics.median(builds), out


def time_sklearn(q, c, sigma, repeats, budget):
    from sklearn.neighbors import KernelDensity

    qn, cn = q.numpy(), c.double().numpy()
    times, fits, m, out = [], [], len(qn), None
    for _ in range(repeats):
        t = time.perf_counter()
        kde = KernelDensity(kernel="gaussian", bandwidth=sigma, rtol=1e-3).fit(cn)
        fit = time.perf_counter() - t
        fits.append(fit)
        t = time.perf_counter()
        first = kde.score_samples(qn[:100])
        per_query = (time.perf_counter() - t) / 100
        m = int(min(len(qn), max(100, budget / per_query)))
        if m > 100:
            t = time.perf_counter()
            kde.score_samples(qn[100:m])
            per_query = (time.perf_counter() - t + per_query * 100) / m
        times.append(fit + per_query * len(qn))
        out = torch.from_numpy(first)
    return statistics.median(times), statistics.median(fits), out, m


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--queries", type=int, default=8192)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads (sklearn uses one)")
    p.add_argument("--sklearn-budget", type=float, default=10.0)
    p.add_argument("--only", choices=["real", "synthetic"], default=None)
    p.add_argument("--match", default="", help="only geometries whose name contains this")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    print(
        f"{args.queries} queries, median of {args.repeats}, torch threads {args.threads}, "
        f"load average at start {load}"
    )
    print(
        f"{'geometry':34s} {'build':>6s} {'infoflow s':>10s} {'err':>8s} | {'fit':>6s} "
        f"{'sklearn s':>10s} {'err':>8s} | ratio"
    )
    ratios = []
    for name, c, sigma in geometries(args.only):
        if args.match not in name:
            continue
        g = torch.Generator().manual_seed(1)
        k = torch.randint(0, len(c), (args.queries,), generator=g)
        q = c[k].double() + sigma * torch.randn(args.queries, c.shape[1], generator=g).double()
        ref = exact(q[:100], c, sigma)
        t_ours, build, ours = time_infoflow(q, c, sigma, args.repeats)
        t_sk, fit, sk, scored = time_sklearn(q, c, sigma, args.repeats, args.sklearn_budget)
        err_ours = float((ours[:100] - ref).abs().max())
        err_sk = float((sk - ref).abs().max())
        mark = "~" if scored < args.queries else " "
        ratios.append(t_sk / t_ours)
        print(
            f"{name:34s} {build:6.3f} {t_ours:10.3f} {err_ours:8.1e} | {fit:6.3f} "
            f"{mark}{t_sk:9.2f} {err_sk:8.1e} | "
            f"{t_sk / t_ours:6.1f}x",
            flush=True,
        )
    print(
        f"ratio sklearn/infoflow: median {statistics.median(ratios):.1f}x, "
        f"min {min(ratios):.1f}x, max {max(ratios):.1f}x over {len(ratios)} geometries"
    )


if __name__ == "__main__":
    main()
