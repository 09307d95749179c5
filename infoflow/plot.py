"""`python -m infoflow.plot RUN_DIR [--units bits|nats]`: redraw a run's figures from its records.

`python -m infoflow.plot --compare RUN_OR_SWEEP [RUN ...] [--out DIR]`: compare several trained
networks' representations on the same inputs (:mod:`infoflow.compare`): cosine-similarity
histograms per layer and run, and the within/between-class similarity over training.

Writes PNGs (a run's into ``RUN_DIR/plots/``, with ``phases.csv``; a comparison's into ``--out``,
by default ``SWEEP/compare/`` or ``compare/`` beside the runs) and prints their paths, one a line.
A missing or unreadable input (a damaged record file: its name and row) gives one line on stderr
and exit status 1; so does a sweep's folder, naming ``python -m infoflow.report`` that draws it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from infoflow.errors import fail

PROG = "infoflow.plot"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m {PROG}", description=__doc__.split("\n")[0])
    p.add_argument(
        "run_dirs",
        metavar="RUN_DIR",
        nargs="+",
        help="a run directory (holds information.csv, ...); with --compare, runs or sweep folders",
    )
    p.add_argument(
        "--units",
        choices=("bits", "nats"),
        default=None,
        help="information units (default: callbacks.plots.units of the run's config.yaml, else bits)",
    )
    p.add_argument(
        "--compare",
        action="store_true",
        help="compare the runs' trained networks (needs config.yaml and checkpoints/last.ckpt)",
    )
    p.add_argument("--out", default=None, help="--compare: output folder")
    p.add_argument(
        "--samples",
        type=int,
        default=1000,
        help="--compare: evaluation inputs sampled for the pairs (default 1000: ~500k pairs)",
    )
    p.add_argument("--seed", type=int, default=0, help="--compare: seed of that sample")
    p.add_argument(
        "--data-dir", default=None, help="--compare: the dataset's folder, if not the runs' one"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="also say which inputs are missing")
    return p


def _fail(message: object) -> int:
    return fail(message, PROG)


def _print_paths(paths: Sequence[Path], where: str) -> int:
    for path in paths:
        print(path)
    if not paths:
        print(f"{PROG}: nothing to draw in {where}", file=sys.stderr)
    return 0


def _sweep_hint(path: Path) -> str | None:
    """The line that sends the user to the report when ``path`` is a sweep's folder (no records
    of its own, job folders below); None otherwise."""
    from infoflow.records import INFORMATION_FILE, TRAINING_FILE

    if any((path / name).exists() for name in (INFORMATION_FILE, TRAINING_FILE)):
        return None
    from infoflow.sweep import job_dirs

    jobs = list(job_dirs(path))
    if not jobs or path in jobs:
        return None
    return (
        f"{path} is a sweep's folder ({len(jobs)} runs), not a run's: "
        f"python -m infoflow.report {path} draws the sweep; python -m {PROG} {jobs[0]} one run"
    )


def _compare(args: argparse.Namespace) -> int:
    if args.samples < 2:
        return _fail(f"--samples must be at least 2, got {args.samples}")
    from infoflow.compare import compare_runs
    from infoflow.errors import USER_ERRORS
    from infoflow.plots import PlotInputError
    from infoflow.runs import RunLoadError

    try:
        paths = compare_runs(
            args.run_dirs,
            args.out,
            max_samples=args.samples,
            seed=args.seed,
            data_dir=args.data_dir,
        )
    except (RunLoadError, PlotInputError, OSError, *USER_ERRORS) as exc:
        return _fail(exc)
    return _print_paths(paths, " ".join(args.run_dirs))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format=f"{PROG}: %(message)s")
    # A comparison says which runs it loaded and where their data came from.
    quiet = logging.INFO if args.compare else logging.WARNING
    logging.getLogger("infoflow").setLevel(logging.DEBUG if args.verbose else quiet)
    missing = [d for d in args.run_dirs if not Path(d).is_dir()]
    if missing:  # before importing matplotlib or torch: a quick answer
        return _fail(f"{missing[0]}: not a run directory (no such folder)")
    if args.compare:
        return _compare(args)
    if len(args.run_dirs) > 1:
        return _fail("one RUN_DIR at a time (or --compare to compare several)")
    hint = _sweep_hint(Path(args.run_dirs[0]))
    if hint:
        return _fail(hint)
    from infoflow.plots import PlotInputError, draw_all

    try:
        paths = draw_all(args.run_dirs[0], units=args.units)
    except (PlotInputError, ValueError, OSError) as exc:
        return _fail(exc)
    return _print_paths(paths, args.run_dirs[0])


if __name__ == "__main__":
    sys.exit(main())
