"""`python -m infoflow.plot RUN_DIR [--units bits|nats]`: redraw a run's figures from its records.

Writes the PNGs into ``RUN_DIR/plots/`` and prints their paths, one a line. A missing or
unreadable RUN_DIR, or an information.csv that cannot be parsed, gives one line on stderr and
exit status 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

PROG = "infoflow.plot"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m {PROG}", description=__doc__.split("\n")[0])
    p.add_argument(
        "run_dir", metavar="RUN_DIR", help="a run directory (holds information.csv, ...)"
    )
    p.add_argument(
        "--units",
        choices=("bits", "nats"),
        default=None,
        help="information units (default: callbacks.plots.units of the run's config.yaml, else bits)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="also say which inputs are missing")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format=f"{PROG}: %(message)s")
    logging.getLogger("infoflow").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    if not Path(args.run_dir).is_dir():  # before importing matplotlib: a quick answer
        print(
            f"{PROG}: error: {args.run_dir}: not a run directory (no such folder)", file=sys.stderr
        )
        return 1
    from infoflow.plots import PlotInputError, draw_all

    try:
        paths = draw_all(args.run_dir, units=args.units)
    except (PlotInputError, ValueError, OSError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    if not paths:
        print(f"{PROG}: nothing to draw in {args.run_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
