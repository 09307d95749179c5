"""Gaussian-mixture entropy: infoflow's exact evaluation beside the authors' scikit-learn KDE.

    python benchmarks/mixture_entropy.py [--device cpu|cuda] [--sizes small|full] [--skip-sklearn]

Centres are laid out as a trained SZT layer makes them at σ = 0.005: 4096 inputs sharing 256
tanh-saturated cluster points (offset ~σ each), R replicas per input jittered by 0.5σ. The
queries (10⁵; 10⁴ with --sizes small) are c_k + σz, spread over the centres. Both methods evaluate
log ĝ at the same queries; the entropy is −mean log ĝ.

* infoflow: ``mixture_log_density`` (float64, every centre within the certified 1e-6-nat bound).
* sklearn: ``KernelDensity(kernel="gaussian", bandwidth=σ, rtol=1e-3).fit(c).score_samples(q)``
  as in Goldfeld et al.'s code; where all queries would take over --sklearn-budget seconds it
  scores the first queries only and the time per query is extrapolated (marked "~").
* exact: an independent float64 log-sum-exp over ALL centres with direct differences
  (torch.cdist without the matmul expansion) on the first --exact-queries queries; "err" columns
  are max |log ĝ − exact| over them and "Δh" the difference of the entropies they give.

Peak memory: extra resident memory of the process (VmHWM after resetting it) on CPU,
torch.cuda.max_memory_allocated on GPU. "mm%" is the throughput of infoflow's distance matmuls
(2·(d+2) FLOPs per kernel value) over the whole evaluation time, as a share of a large float64
matmul's FLOP/s measured in the same run: the work is exp- and memory-bound, not matmul-bound.
Torch runs with --threads threads on CPU (default 1: sklearn's KernelDensity is single-threaded).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

import infoflow.estimators.mixture as mixture

SIGMA = 0.005


def szt_like_centres(d: int, r: int, seed: int = 0, inputs: int = 4096, clusters: int = 256):
    g = torch.Generator().manual_seed(seed)
    signs = torch.randint(0, 2, (clusters, d), generator=g) * 2 - 1
    points = signs * torch.tanh(1.5 + 3.5 * torch.rand(clusters, d, generator=g))
    x = points[torch.arange(inputs) % clusters] + SIGMA * torch.randn(inputs, d, generator=g)
    c = x.repeat_interleave(r, 0)
    return (c + 0.5 * SIGMA * torch.randn(c.shape, generator=g)).float()


def queries_for(centres: torch.Tensor, m: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    k = torch.randperm(centres.shape[0], generator=g)[:m]
    return centres[k].double() + SIGMA * torch.randn(m, centres.shape[1], generator=g).double()


def exact_log_density(q: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Float64 log ĝ over all centres, direct differences (independent of infoflow's kernels)."""
    c64 = c.double()
    out = torch.empty(q.shape[0], dtype=torch.float64, device=q.device)
    step = max(1, (1 << 24) // c.shape[0])
    for i in range(0, q.shape[0], step):
        sq = torch.cdist(q[i : i + step], c64, compute_mode="donot_use_mm_for_euclid_dist") ** 2
        out[i : i + step] = torch.logsumexp(-sq / (2 * SIGMA**2), dim=1)
    d = c.shape[1]
    return out - math.log(c.shape[0]) - 0.5 * d * math.log(2 * math.pi * SIGMA**2)


# --------------------------------------------------------------------------------- measurement
def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


class PeakMemory:
    """Peak extra memory (MiB) during a block: VmHWM on CPU, max_memory_allocated on CUDA."""

    def __init__(self, device: str) -> None:
        self.device, self.mib = device, float("nan")

    def __enter__(self) -> PeakMemory:
        if self.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            try:
                Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS
            except OSError:
                pass
            self.base = rss_kib("VmRSS") * 1024
        return self

    def __exit__(self, *exc) -> None:
        if self.device == "cuda":
            peak = torch.cuda.max_memory_allocated()
        else:
            peak = rss_kib("VmHWM") * 1024
        self.mib = (peak - self.base) / 2**20


def matmul_flops(device: str) -> float:
    """FLOP/s of a large float64 matmul on the device (best of 3)."""
    n = 4096 if device == "cuda" else 1024
    a = torch.randn(n, n, dtype=torch.float64, device=device)
    best = float("inf")
    for _ in range(3):
        sync(device)
        t = time.perf_counter()
        for _ in range(4):
            a @ a
        sync(device)
        best = min(best, (time.perf_counter() - t) / 4)
    return 2 * n**3 / best


class CountEvals:
    """Counts the kernel values infoflow's tiles compute (to derive its matmul FLOPs)."""

    def __init__(self) -> None:
        self.evals, self.real = 0, mixture._tile_sums

    def __enter__(self) -> CountEvals:
        def counted(ca: torch.Tensor, qa_t: torch.Tensor) -> torch.Tensor:
            self.evals += ca.shape[:-1].numel() * qa_t.shape[-1]
            return self.real(ca, qa_t)

        mixture._tile_sums = counted
        return self

    def __exit__(self, *exc) -> None:
        mixture._tile_sums = self.real


def run_infoflow(q: torch.Tensor, c: torch.Tensor, device: str) -> dict:
    with PeakMemory(device) as mem, CountEvals() as counter:
        sync(device)
        t = time.perf_counter()
        log_g = mixture.mixture_log_density(q, c, SIGMA)
        sync(device)
        elapsed = time.perf_counter() - t
    return {"log_g": log_g, "time": elapsed, "mib": mem.mib, "evals": counter.evals}


def run_sklearn(q: torch.Tensor, c: torch.Tensor, budget: float, min_queries: int) -> dict:
    from sklearn.neighbors import KernelDensity

    qn, cn = q.cpu().numpy(), c.cpu().double().numpy()
    with PeakMemory("cpu") as mem:
        t = time.perf_counter()
        kde = KernelDensity(kernel="gaussian", bandwidth=SIGMA, rtol=1e-3).fit(cn)
        fit = time.perf_counter() - t
        t = time.perf_counter()
        pilot = kde.score_samples(qn[:min_queries])
        per_query = (time.perf_counter() - t) / min_queries
        m = int(min(len(qn), max(min_queries, budget / per_query)))
        if m > min_queries:
            t = time.perf_counter()
            rest = kde.score_samples(qn[min_queries:m])
            per_query = (time.perf_counter() - t + per_query * min_queries) / m
            pilot = torch.cat([torch.from_numpy(pilot), torch.from_numpy(rest)]).numpy()
    return {
        "log_g": torch.from_numpy(pilot),
        "time": fit + per_query * len(qn),
        "scored": m,
        "mib": mem.mib,
    }


# --------------------------------------------------------------------------------------- report
def row(d: int, r: int, args, peak: float) -> str:
    c = szt_like_centres(d, r).to(args.device)
    q = queries_for(c.cpu(), args.queries).to(args.device)
    ours = run_infoflow(q, c, args.device)
    m_ex = min(args.exact_queries, len(q))
    exact = exact_log_density(q[:m_ex], c).cpu()
    ours_lg = ours["log_g"].cpu()
    err = (ours_lg[:m_ex] - exact).abs().max().item()
    dh = abs(ours_lg[:m_ex].mean().item() - exact.mean().item())
    h = -ours_lg.mean().item()
    se = ours_lg.std().item() / math.sqrt(len(q))
    gflops = 2 * (d + 2) * ours["evals"] / ours["time"] / 1e9
    out = (
        f"{d:>2} {r:>5} {c.shape[0]:>8} {ours['time']:>9.2f} {h:>8.4f}±{se:.4f} {err:>8.1e} "
        f"{dh:>8.1e} {ours['mib']:>7.0f} {ours['evals'] / len(q):>9.0f} {gflops:>6.2f} "
        f"{100 * gflops * 1e9 / peak:>5.1f}"
    )
    if args.skip_sklearn:
        return out
    sk = run_sklearn(q, c, args.sklearn_budget, min(args.exact_queries, len(q)))
    sk_err = (sk["log_g"][:m_ex] - exact).abs().max().item()
    sk_dh = abs(sk["log_g"][:m_ex].mean().item() - exact.mean().item())
    mark = "~" if sk["scored"] < len(q) else " "
    return out + (
        f" | {mark}{sk['time']:>8.1f} {sk['scored']:>6} {sk_err:>8.1e} {sk_dh:>8.1e} "
        f"{sk['mib']:>7.0f} | {sk['time'] / ours['time']:>6.1f}x"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--sizes", choices=["small", "full"], default="full")
    p.add_argument("--skip-sklearn", action="store_true")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--queries", type=int, default=None, help="default 1e5 (small: 1e4)")
    p.add_argument("--exact-queries", type=int, default=None, help="default 300 (small: 200)")
    p.add_argument("--sklearn-budget", type=float, default=60.0, help="seconds of scoring")
    args = p.parse_args()
    small = args.sizes == "small"
    args.queries = args.queries or (10_000 if small else 100_000)
    args.exact_queries = args.exact_queries or (200 if small else 300)
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    dims, reps = ([3, 10], [10]) if small else ([3, 5, 10], [100, 1000])
    peak = matmul_flops(args.device)
    name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    threads = torch.get_num_threads()
    print(f"device {args.device} ({name}), torch {torch.__version__}, {threads} CPU thread(s)")
    print(f"σ = {SIGMA}, {args.queries} queries; float64 matmul peak {peak / 1e9:.1f} GFLOP/s")
    print(
        " d     R  centres  infoflow s  h (nats)        err       Δh     MiB  evals/q  GF/s   mm%"
        + ("" if args.skip_sklearn else " |  sklearn s scored      err       Δh     MiB |  ratio")
    )
    for d in dims:
        for r in reps:
            print(row(d, r, args, peak), flush=True)
    if not args.skip_sklearn:
        print("~ sklearn time = fit + (time per query on the first 'scored' queries) × all queries")


if __name__ == "__main__":
    main()
