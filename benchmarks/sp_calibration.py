"""Is SP's reported standard error the spread of repeated estimates? Real SZT geometries.

    python benchmarks/sp_calibration.py [--repeats 30] [--betas 0.005,0.05] [--epochs 0,300,3000]
        [--target 0.007] [--fixed] [--module infoflow.estimators.sp] [--threads 1]

For each trained net of ``szt_geometries.py`` (β, epoch) it repeats whole SP estimates as two runs
would: fresh replicas (``propagate`` under a new torch seed) and fresh queries (a new
generator), all 4096 inputs, R = 100, the default budget aimed at ``--target``. Per layer and
quantity (I(X;T), I(T;Y)) it prints the sd of the repeated values (± its own standard error,
sd/√(2(K−1))), the mean and the root-mean-square of the reported standard errors, their ratio
sd / mean stderr, and the calibration statistic Σ_k (v_k − v̄)² / se_k² / (K − 1), which is
≈ 1 for honest standard errors (99 % of the time within the printed chi-square interval).
``--fixed`` keeps the cached replicas and redraws only the queries (the Monte Carlo error
alone); ``--module`` times another implementation with the same ``sp_information`` signature
(e.g. an older checkout installed under another name). Values whose spread is below 1e-12 nats
(rounding, e.g. I(T;Y) exactly at ln 2) are marked and left out of the ratios.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from szt_geometries import load_geometries, network  # noqa: E402
from szt_geometries import sample_fn as noisy_samples  # noqa: E402

R = 100
QUANTITIES = ("I_XT", "I_TY")


def chi2_interval(dof: int, p: float = 0.01) -> tuple[float, float]:
    """Central (1 − p) interval of χ²_dof / dof (Wilson–Hilferty: accurate to ~1 % here)."""
    z = {0.01: 2.5758, 0.05: 1.96}[p]
    a = 2.0 / (9.0 * dof)
    return tuple((1 - a + s * z * math.sqrt(a)) ** 3 for s in (-1.0, 1.0))


def repeat_estimates(sp_information, net, x, y, beta, fixed, args) -> dict:  # noqa: ANN001
    """{(layer, quantity): (values (K,), stderrs (K,))} over args.repeats whole estimates."""
    out: dict = {}
    flat = None
    if fixed is not None:
        flat = [s.reshape(-1, s.shape[-1]) for s in fixed]
    for k in range(args.repeats):
        if flat is None:
            torch.manual_seed(10_000 + k)  # fresh replicas, as another run would draw
            sample_fn = noisy_samples(net)
        else:

            def sample_fn(v: torch.Tensor) -> list[torch.Tensor]:
                return [f[: v.shape[0]] for f in flat]

        est = sp_information(
            sample_fn,
            x,
            y,
            sigma=beta,
            n_replicas=R,
            chunk_size=len(x),
            generator=torch.Generator().manual_seed(20_000 + k),
            target_stderr=args.target,
        )
        for layer, quantities in est.items():
            for q in QUANTITIES:
                vals, errs = out.setdefault((layer, q), ([], []))
                vals.append(quantities[q].value)
                errs.append(quantities[q].stderr)
    return {key: (np.array(v), np.array(e)) for key, (v, e) in out.items()}


def summary(values: np.ndarray, errs: np.ndarray) -> dict:
    k = len(values)
    sd = float(values.std(ddof=1))
    mean_se = float(errs.mean())
    rms_se = float(np.sqrt((errs**2).mean()))
    ok = sd > 1e-12 and mean_se > 0
    chi = float((((values - values.mean()) / errs) ** 2).sum() / (k - 1)) if ok else math.nan
    return {
        "mean": float(values.mean()),
        "sd": sd,
        "sd_se": sd / math.sqrt(2 * (k - 1)),
        "mean_se": mean_se,
        "rms_se": rms_se,
        "ratio": sd / mean_se if ok else math.nan,
        "chi": chi,
        "rounding": not ok,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--betas", default="0.005,0.05")
    p.add_argument("--epochs", default="0,300,3000")
    p.add_argument("--target", type=float, default=0.007)
    p.add_argument("--fixed", action="store_true", help="cached replicas: Monte Carlo error only")
    p.add_argument("--module", default="infoflow.estimators.sp")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    sp_information = importlib.import_module(args.module).sp_information
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    lo, hi = chi2_interval(args.repeats - 1)
    print(
        f"{args.module}: {args.repeats} repeats, {'fixed' if args.fixed else 'fresh'} replicas, "
        f"N=4096, R={R}, target {args.target}; {args.threads} thread(s); load {load}; "
        f"honest: ratio ≈ 1, chi ∈ [{lo:.2f}, {hi:.2f}] (99 %)"
    )
    geoms = load_geometries()
    for beta in map(float, args.betas.split(",")):
        x, y = geoms[beta]["inputs"], geoms[beta]["labels"]
        for epoch in map(int, args.epochs.split(",")):
            net = network(geoms, beta, epoch)
            fixed = geoms[beta]["samples"][epoch] if args.fixed else None
            t = time.perf_counter()
            res = repeat_estimates(sp_information, net, x, y, beta, fixed, args)
            print(f"β={beta} epoch {epoch}: {time.perf_counter() - t:.0f} s", flush=True)
            for (layer, q), (vals, errs) in sorted(res.items()):
                s = summary(vals, errs)
                tag = "  (rounding)" if s["rounding"] else ""
                print(
                    f"  T{layer + 1} {q}: mean {s['mean']:.5f}  sd {s['sd']:.2e} ± {s['sd_se']:.1e}"
                    f"  stderr mean {s['mean_se']:.2e} rms {s['rms_se']:.2e}  ratio "
                    f"{s['ratio']:.2f}  chi {s['chi']:.2f}{tag}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
