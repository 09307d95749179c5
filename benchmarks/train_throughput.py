"""ms per training epoch: infoflow through Lightning, exactly as ``python -m infoflow`` trains,
beside a careful hand-written PyTorch loop doing the same work, in one process.

    python benchmarks/train_throughput.py [--epochs 300] [--repeats 5] [--mode single|tishby]
    python benchmarks/train_throughput.py --before <commit>   # and the same for an older infoflow

The work of one epoch (issue 20, target 4): the SZT net 12-10-7-5-4-3-2 (tanh, 294 parameters) with
Gaussian noise of std β = 0.005 after every hidden activation, Adam (lr 4e-4), minibatches of 256
of the shuffled training split (3277 of the 4096 patterns), the noisy loss and accuracy summed,
then a noiseless pass over the training and the validation split (loss and accuracy) and the
epoch's record read once; one torch thread.

- ``careful``: what a competent PyTorch user writes: ``nn.Linear`` layers, ``randn_like`` noise,
  ``x[idx]`` per minibatch, ``torch.optim.Adam``, ``loss.backward()``, a ``no_grad`` evaluation.
- ``infoflow: training + its record``: the app's own objects built from its config
  (``infoflow.build``: the datamodule, ClassifierModule, the Trainer of
  ``conf/trainer/default.yaml``) with the training record (``training.csv``) as its only callback:
  the same work as the careful loop.
- ``infoflow as run``: the default callbacks' per-epoch work besides: the checkpoint every 10th
  epoch (the preset's in tishby mode), the CSV logger, the gradient-phase callback's hook on every
  minibatch (its sums only at the last epoch: a long run's log schedule is sparse). Off in both:
  W&B, the progress bar and the measuring callbacks (information, binned, exact, clustering,
  representations, plots, charts), whose cost is the estimators' (the other benchmarks).

Mode ``tishby``: the tishby_szt_sweep jobs (50 members stacked, B = 512, β = 0, train fractions
0.05, 0.45, 0.85, validation and the training record every 10th epoch) against 50 careful loops
(one careful net's time × 50); with the projected training time of the sweep's 3 jobs × 8000
epochs.

Each row: ms per epoch, median (and fastest) over ``--repeats`` interleaved repeats, start-up and
the first ``--warmup`` epochs excluded. ``--before COMMIT`` runs the same in a second process
against infoflow at that commit (extracted with ``git archive``): compare the ratios to the
careful loop of each process, the load may differ between them. Load averages are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = (12, 10, 7, 5, 4, 3, 2)


def _use_tree(tree: str | None) -> None:
    """Import infoflow from ``tree`` (an extracted commit) instead of the installed one."""
    if tree:
        sys.path.insert(0, tree)


# ---------------------------------------------------------------------------------------------
# The careful hand-written loop


def careful_ms_per_epoch(
    epochs: int, warmup: int, *, batch: int, beta: float, fraction: float, every: int = 1
) -> float:
    """ms per epoch of the careful loop on the SZT split of seed 0, evaluating every ``every``-th
    epoch."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from infoflow.data.datamodule import split_indices
    from infoflow.data.szt import make_szt_dataset

    x_all, y_all = (torch.as_tensor(a) for a in make_szt_dataset())
    train, val = (torch.as_tensor(i) for i in split_indices(len(x_all), fraction, 0))
    x, y, xv, yv = x_all[train].float(), y_all[train].long(), x_all[val].float(), y_all[val].long()

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleList(
                nn.Linear(a, b) for a, b in zip(SIZES[:-1], SIZES[1:], strict=True)
            )

        def forward(self, t: torch.Tensor) -> torch.Tensor:
            for layer in self.layers[:-1]:
                t = torch.tanh(layer(t))
                if self.training and beta > 0:
                    t = t + beta * torch.randn_like(t)
            return self.layers[-1](t)

    torch.manual_seed(0)
    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=4e-4)
    n = len(x)

    def epoch(e: int) -> list[float]:
        net.train()
        loss_sum, correct = torch.zeros(()), torch.zeros((), dtype=torch.long)
        order = torch.randperm(n)
        for i in range(0, n, batch):
            idx = order[i : i + batch]
            logits = net(x[idx])
            loss = F.cross_entropy(logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += loss.detach() * len(idx)
            correct += (logits.argmax(1) == y[idx]).sum()
        net.eval()
        record = [loss_sum / n, correct / n]
        with torch.no_grad():
            for xs, ys in ((x, y), (xv, yv)) if (e + 1) % every == 0 else ():
                logits = net(xs)
                record += [F.cross_entropy(logits, ys), (logits.argmax(1) == ys).float().mean()]
        return torch.stack(record).tolist()

    for e in range(warmup):
        epoch(e)
    start = time.perf_counter()
    for e in range(warmup, warmup + epochs):
        epoch(e)
    return 1e3 * (time.perf_counter() - start) / epochs


# ---------------------------------------------------------------------------------------------
# infoflow, as python -m infoflow trains

MEASURING_OFF = [
    f"callbacks.{name}=null"
    for name in (
        "information",
        "binned",
        "exact",
        "clustering",
        "representations",
        "plots",
        "wandb_charts",
    )
]


def infoflow_ms_per_epoch(epochs: int, warmup: int, overrides: list[str]) -> float:
    """ms per epoch of a run built by the app from its config with ``overrides``."""
    import pytorch_lightning as pl
    import torch
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate

    from infoflow.build import build_callbacks, build_datamodule, build_loggers, build_module
    from infoflow.rundir import register_resolvers
    from infoflow.schema import register

    class Clock(pl.Callback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
            self.times.append(time.perf_counter())

    register_resolvers()
    register()
    with tempfile.TemporaryDirectory() as tmp:
        with initialize_config_module("infoflow.conf", version_base="1.3"):
            cfg = compose(
                "config",
                overrides=[
                    f"paths.output_dir={tmp}/run",
                    f"paths.data_dir={tmp}/data",
                    f"trainer.max_epochs={warmup + epochs}",
                    "trainer.enable_progress_bar=false",
                    "~logger.wandb",
                    *MEASURING_OFF,
                    *overrides,
                ],
            )
        out = Path(cfg.paths.output_dir)
        out.mkdir(parents=True)
        pl.seed_everything(cfg.seed, verbose=False)
        torch.set_num_threads(1)
        clock = Clock()
        trainer = instantiate(
            cfg.trainer,
            callbacks=[*build_callbacks(cfg, out), clock],
            logger=build_loggers(cfg, out) or False,
            default_root_dir=str(out),
            enable_model_summary=False,
        )
        trainer.fit(build_module(cfg), datamodule=build_datamodule(cfg))
    return 1e3 * (clock.times[-1] - clock.times[warmup - 1]) / epochs


# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    for name in ("pytorch_lightning", "lightning_fabric", "lightning", "infoflow"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with warnings.catch_warnings(), open(os.devnull, "w") as null:
        warnings.simplefilter("ignore")
        with contextlib.redirect_stdout(null):
            yield


def measure(runs: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Each run ``repeats`` times, interleaved so that load changes hit every row alike."""
    got: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            with quiet():
                got[name].append(fn())
    return got


TISHBY = [
    "experiment=tishby_szt",
    "ensemble.size=50",
    "callbacks.training.every_n_epochs=10",
    "trainer.check_val_every_n_epoch=10",
]
#: The training and its record only: the work the careful loop does.
TRAINING_ONLY = [
    "callbacks.gradients=null",
    "callbacks.weights=null",
    "callbacks.model_checkpoint=null",
    "trainer.enable_checkpointing=false",
    "~logger.csv",
]
#: As a run: the gradient-phase hook every step, its sums only at the end (a long run's log
#: schedule is sparse; a short benchmark's would measure nearly every epoch).
AS_RUN = ["callbacks.gradients.every_n_epochs=100000000"]


def rows(args: argparse.Namespace, epochs: int, fraction: float) -> dict[str, Callable]:
    """The runs of one table: the careful loop (× 50 in tishby mode) and infoflow twice."""
    single = args.mode == "single"
    batch, beta, members, every = (256, 0.005, 1, 1) if single else (512, 0.0, 50, 10)
    preset = [f"dataset.train_fraction={fraction}"] + ([] if single else TISHBY)
    what = "record" if single else "record every 10th epoch"
    return {
        f"careful loop{'' if single else ' x 50'}": lambda: (
            members
            * careful_ms_per_epoch(
                epochs, args.warmup, batch=batch, beta=beta, fraction=fraction, every=every
            )
        ),
        f"infoflow: training + its {what}": lambda: infoflow_ms_per_epoch(
            epochs, args.warmup, preset + TRAINING_ONLY
        ),
        "infoflow as run: + checkpoints, CSV logger, gradient hook": lambda: infoflow_ms_per_epoch(
            epochs, args.warmup, preset + AS_RUN
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("single", "tishby"), default="single")
    parser.add_argument("--epochs", type=int, default=None, help="timed epochs (300; tishby 30)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--before", help="also measure infoflow at this commit, in a 2nd process")
    parser.add_argument("--tree", help=argparse.SUPPRESS)  # import infoflow from this folder
    args = parser.parse_args()
    _use_tree(args.tree)
    import torch

    torch.set_num_threads(1)
    epochs = args.epochs or (300 if args.mode == "single" else 30)
    where = f"infoflow at {args.tree}" if args.tree else "infoflow of this tree"
    fractions = (0.8,) if args.mode == "single" else (0.05, 0.45, 0.85)
    print(f"{args.mode}, {where}: {epochs} epochs after {args.warmup}, median of {args.repeats}")
    as_run = 0.0
    for fraction in fractions:
        load = os.getloadavg()[0]
        got = measure(rows(args, epochs, fraction), args.repeats)
        print(
            f"\ntrain fraction {fraction}, 1 thread, load average {load:.2f} before, "
            f"{os.getloadavg()[0]:.2f} after"
        )
        careful = statistics.median(next(iter(got.values())))
        print(f"{'path':58s} {'ms/epoch':>9s} {'fastest':>8s} {'÷ careful':>10s}")
        for name, values in got.items():
            med = statistics.median(values)
            print(f"{name:58s} {med:9.2f} {min(values):8.2f} {med / careful:9.2f}x")
        as_run += statistics.median(list(got.values())[-1])
    if args.mode == "tishby":
        print(f"\n3 jobs x 8000 epochs at these rates, training: {8000 * as_run / 6e4:.1f} min")
    else:
        print(
            f"\ntraining at this rate: 1000 epochs {as_run:.1f} s, 10,000 epochs "
            f"{10 * as_run:.0f} s"
        )
    if args.before:
        run_before(args)


def run_before(args: argparse.Namespace) -> None:
    """The same measurement with infoflow at ``args.before``, in a second process."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.before], check=True, capture_output=True
        )
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        # The installed layout: the top-level callbacks/ and conf/ inside the package.
        for name in ("callbacks", "conf"):
            (Path(tmp) / "infoflow" / name).symlink_to(Path(tmp) / name)
        argv = [a for a in sys.argv[1:]]
        i = argv.index("--before")
        del argv[i : i + 2]
        print()
        sys.stdout.flush()
        subprocess.run([sys.executable, __file__, *argv, "--tree", tmp], check=True)


if __name__ == "__main__":
    main()
