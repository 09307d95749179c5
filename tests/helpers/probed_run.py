"""``python -m infoflow`` with probes that mark the moments of a run, for the fault tests.

    python tests/helpers/probed_run.py MARKS_DIR [infoflow arguments...]

Each probe writes ``MARKS_DIR/<moment>`` (the time, ``time.time()``) the first time its moment
comes, so that a test can send a signal at a moment by watching for the file rather than sleeping:

* ``compile``: numba begins compiling once an SP estimate has begun (its ``numba:compile`` event;
  with an empty ``NUMBA_CACHE_DIR``, the SP engine's first use);
* ``numba_cache``: numba first looks in its cache for compiled code once an SP estimate has begun
  (with a warm cache: loads it);
* ``sp``: an SP estimate begins (``sp_from_samples`` in the SP callback);
* ``figures``: drawing the figures begins (``infoflow.plots.draw_all``).

``INFOFLOW_TEST_ENOSPC=<file name>:<n>`` makes the n-th sync of that file (counted from 1) fail
with ``ENOSPC``, after its rows were written, as a disk that fills mid-run.
"""

from __future__ import annotations

import errno
import os
import runpy
import sys
import time
from pathlib import Path

# the marks folder (the first argument): set by main, so that importing this file (pytest's
# doctest collection does) needs no arguments
MARKS = Path()


def mark(moment: str) -> None:
    path = MARKS / moment
    if not path.exists():
        path.write_text(f"{time.time()}\n")


def wrap(owner: object, name: str, moment: str) -> None:
    original = getattr(owner, name)

    def probed(*args: object, **kwargs: object) -> object:
        mark(moment)
        return original(*args, **kwargs)

    setattr(owner, name, probed)


def probe_numba() -> None:
    from numba.core import caching, event

    class Compiling(event.Listener):
        def on_start(self, ev: event.Event) -> None:
            if (MARKS / "sp").exists():  # the SP engine's, not what libraries compile at import
                mark("compile")

        def on_end(self, ev: event.Event) -> None:
            pass

    event.register("numba:compile", Compiling())
    original = caching.Cache.load_overload

    def load_overload(*args: object, **kwargs: object) -> object:
        if (MARKS / "sp").exists():
            mark("numba_cache")
        return original(*args, **kwargs)

    caching.Cache.load_overload = load_overload


def disk_fills(spec: str) -> None:
    """The n-th sync of the named file fails with ENOSPC (its rows are written by then: the
    writer must cut them back), as a disk that fills mid-run (delayed allocation fails there)."""
    name, nth = spec.rsplit(":", 1)
    original, calls = os.fsync, []

    def fsync(fd: int) -> None:
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")) == name:
            calls.append(fd)
            if len(calls) == int(nth):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        original(fd)

    os.fsync = fsync


def main() -> None:
    global MARKS
    MARKS = Path(sys.argv[1])
    MARKS.mkdir(parents=True, exist_ok=True)
    probe_numba()
    import infoflow.callbacks.information as information
    import infoflow.plots as plots

    wrap(information, "sp_from_samples", "sp")
    wrap(plots, "draw_all", "figures")
    if spec := os.environ.get("INFOFLOW_TEST_ENOSPC"):
        disk_fills(spec)
    sys.argv = ["infoflow", *sys.argv[2:]]
    runpy.run_module("infoflow", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
