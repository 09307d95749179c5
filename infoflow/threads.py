"""How many threads infoflow's own compute may use: the CPUs this process can really run on.

torch's intra-op threads spin at barriers: when they outnumber the cores that are free, one
descheduled thread stalls every parallel region (measured here: 1.4 s → 112 s under a load of 6-8
on 2 cores). So the count is taken from what the process may use — affinity, the cgroup CPU quota —
divided among the jobs that share the machine, and lowered when other processes keep the CPUs busy.

Portable: affinity and cgroups are Linux-only and simply not consulted elsewhere.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

__all__ = ["usable_cpus", "compute_threads", "using_threads"]

_CGROUP_V2 = Path("/sys/fs/cgroup/cpu.max")
_CGROUP_V1 = (
    Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"),
    Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us"),
)
# Set by joblib's loky workers (inner_max_num_threads) and by schedulers: a job's share of the CPUs.
_SHARE_VARS = ("INFOFLOW_THREADS", "OMP_NUM_THREADS")
_PROC_STAT = Path("/proc/stat")
_SELF_TASKS = Path("/proc/self/task")


def _cgroup_quota() -> float | None:
    """CPUs allowed by the cgroup's CFS quota (v2 or v1), or None when unlimited or unknown."""
    try:
        if _CGROUP_V2.is_file():
            quota, period = _CGROUP_V2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        if _CGROUP_V1[0].is_file():
            quota = int(_CGROUP_V1[0].read_text())
            return None if quota <= 0 else quota / int(_CGROUP_V1[1].read_text())
    except (OSError, ValueError):
        return None
    return None


def usable_cpus() -> int:
    """CPUs this process may run on: affinity (where the OS has it), capped by the cgroup quota."""
    if hasattr(os, "sched_getaffinity"):
        cpus = len(os.sched_getaffinity(0))
    else:  # macOS, Windows
        cpus = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        cpus = min(cpus, max(1, math.floor(quota)))
    return max(1, cpus)


def _share() -> int | None:
    """The thread count a launcher or the user gave this job (INFOFLOW_THREADS, OMP_NUM_THREADS)."""
    for name in _SHARE_VARS:
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def _own_running() -> int:
    """This process's threads that are running now (Linux ``/proc/self/task``), at least 1: this
    one. torch's idle workers spin for a while after a parallel region and count as running."""
    running = 0
    try:
        for stat in _SELF_TASKS.glob("*/stat"):
            fields = stat.read_text().rpartition(")")[2].split()  # the name may hold spaces
            running += bool(fields) and fields[0] == "R"
    except OSError:
        pass
    return max(1, running)


def _runnable_elsewhere() -> float | None:
    """Runnable tasks of other processes right now (Linux ``/proc/stat`` less this process's own
    running threads), median of a few readings; None where ``/proc`` does not exist."""
    readings = []
    try:
        for _ in range(5):
            for line in _PROC_STAT.read_text().splitlines():
                if line.startswith("procs_running"):
                    readings.append(int(line.split()[1]) - _own_running())
            time.sleep(0.002)
    except (OSError, ValueError):
        return None
    return max(0.0, sorted(readings)[len(readings) // 2]) if readings else None


def _busy_elsewhere() -> float:
    """CPUs kept busy by other processes: runnable tasks of others (reading ``/proc``), else the
    1-minute load average less one; 0 where neither exists. Used only to step down."""
    running = _runnable_elsewhere()
    if running is not None:
        return running
    if hasattr(os, "getloadavg"):
        try:
            return max(0.0, os.getloadavg()[0] - 1.0)
        except OSError:
            return 0.0
    return 0.0


def compute_threads(jobs: int = 1) -> int:
    """Threads for one estimate: usable CPUs / ``jobs`` (or the launcher's share), less the CPUs
    other processes keep busy, at least 1.

    Example:
        >>> 1 <= compute_threads() <= usable_cpus()
        True
    """
    cpus = usable_cpus()
    share = _share()
    threads = min(cpus, share) if share else max(1, cpus // max(1, jobs))
    free = cpus - _busy_elsewhere()
    return max(1, min(threads, math.floor(free + 0.5)))


#: (when, threads): the last count :func:`recent_threads` gave.
_recent: tuple[float, int] | None = None


def recent_threads(max_age_s: float = 2.0) -> int:
    """:func:`compute_threads`, reused for ``max_age_s`` seconds: the callbacks of one measured
    epoch ask in turn, and each reading samples ``/proc`` over ~10 ms."""
    global _recent
    now = time.monotonic()
    if _recent is None or now - _recent[0] > max_age_s:
        _recent = (now, compute_threads())
    return _recent[1]


@contextmanager
def using_threads(threads: int | None = None) -> Iterator[int]:
    """torch runs on ``threads`` (default :func:`recent_threads`) inside, as before outside."""
    before = torch.get_num_threads()
    n = threads or recent_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)
