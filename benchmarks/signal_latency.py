"""How long a stop signal can wait: the longest stretches in which Python runs no signal handler
(the main thread between bytecodes) and no other thread gets the GIL, in the phases of a run.

    python benchmarks/signal_latency.py [--geometries PATH] [--phases compile,cache,sp,sp_papers]

Each phase runs in a fresh process. SIGALRM arrives every 5 ms (``setitimer``); its Python handler
records the time, so the longest gap between two handler calls is the longest stretch in which the
main thread ran no bytecode: how long the first stop signal waits before it is even recorded (then
it waits for the next safe point). A thread that sleeps 5 ms in a loop records its wake-ups: the
longest gap there is the longest stretch in which the main thread held the GIL, i.e. how long the
watchdog of :mod:`infoflow.signals` can be held off when a second signal must end the process.

Phases:
  compile    the SP engine's first use with an empty ``NUMBA_CACHE_DIR`` (a fresh install pays it
             once): one SP estimate, R = 10, on real SZT samples (β = 0.005, epoch 300)
  cache      the same in a fresh process with the cache warm (numba loads the compiled code)
  sp         one SP estimate as the default run makes it (R = 10, target stderr 0.005), warm
  sp_papers  the same at the papers' R = 100
The samples are benchmarks/szt_geometries.py's cache (``--geometries``; build it with that script).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PHASES = ("compile", "cache", "sp", "sp_papers")
TICK_S = 0.005


class Gaps:
    """The handler's and a sleeping thread's longest gaps while it runs."""

    def __init__(self) -> None:
        self.ticks: list[float] = []
        self.wakes: list[float] = []
        self._stop = threading.Event()

    def __enter__(self) -> Gaps:
        signal.signal(signal.SIGALRM, lambda *_: self.ticks.append(time.monotonic()))
        self._thread = threading.Thread(target=self._sleeper, daemon=True)
        self._thread.start()
        self.start = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, TICK_S, TICK_S)
        return self

    def _sleeper(self) -> None:
        while not self._stop.is_set():
            self.wakes.append(time.monotonic())
            time.sleep(TICK_S)

    def __exit__(self, *exc: object) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        self.end = time.monotonic()
        self._stop.set()
        self._thread.join()

    @staticmethod
    def _longest(times: list[float], start: float, end: float) -> float:
        marks = [start, *times, end]
        return max(b - a for a, b in zip(marks, marks[1:], strict=False))

    def summary(self) -> dict[str, float]:
        return {
            "seconds": round(self.end - self.start, 2),
            "handler_max_gap_s": round(self._longest(self.ticks, self.start, self.end), 3),
            "thread_max_gap_s": round(self._longest(self.wakes, self.start, self.end), 3),
        }


def run_phase(phase: str, geometries: Path) -> dict[str, float]:
    """One phase, in this process (the child)."""
    import torch

    from infoflow.estimators import sp_from_samples
    from infoflow.threads import compute_threads

    torch.set_num_threads(compute_threads())
    g = torch.load(geometries)[0.005]  # {β: {"samples": {epoch: [(N, R, d)]}, "labels"}}
    samples, labels = g["samples"][300], g["labels"]
    replicas = 100 if phase == "sp_papers" else 10
    layers = [s[:, :replicas].contiguous() for s in samples]
    if phase in ("sp", "sp_papers"):  # warm: compiled and loaded before the clock starts
        sp_from_samples([layers[3][:512]], labels[:512], sigma=0.005, n_mc=1024)
    with Gaps() as gaps:
        sp_from_samples(layers, labels, sigma=0.005)
    return gaps.summary()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--phases", default=",".join(PHASES))
    p.add_argument("--geometries", type=Path, default=HERE / ".cache" / "szt_geometries.pt")
    p.add_argument("--phase", help=argparse.SUPPRESS)  # the child's own phase
    args = p.parse_args()
    if args.phase:
        print(json.dumps(run_phase(args.phase, args.geometries)))
        return
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for phase in args.phases.split(","):
            cmd = [sys.executable, __file__, "--phase", phase, "--geometries", str(args.geometries)]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            print(f"{phase:10s} {out.stdout.strip().splitlines()[-1]}", flush=True)


if __name__ == "__main__":
    main()
