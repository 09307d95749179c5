"""SZT training steps per second: the Lightning path beside a plain PyTorch loop, same model and data.

    python benchmarks/train_throughput.py [--epochs 100] [--repeats 3]

Prints the median steps/s of each path over interleaved repeats and their ratios. Target: the
Lightning training path within 1.5x of the plain loop. "lightning (as configured)" adds what a default
run does each epoch on top of training: the noiseless validation pass over the training and held-out
sets, the CSV record and the checkpoint.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from infoflow.data.datamodule import SZTDataModule
from infoflow.models.ensemble import MLPEnsemble
from infoflow.models.mlp import noisy_mlp
from infoflow.models.module import ClassifierModule


def plain_loop(epochs: int) -> float:
    """Steps per second of a hand-written loop over the same tensors."""
    torch.manual_seed(0)
    dm = SZTDataModule(seed=0)
    dm.setup()
    net = noisy_mlp(beta=0.005).train()
    opt = torch.optim.Adam(net.parameters(), lr=4e-4)
    x, y = dm.tensors["x_train"][0], dm.tensors["y_train"][0]  # the one member's split
    steps, start = 0, time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for i in range(0, len(x), 256):
            idx = order[i : i + 256]
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
    return steps / (time.perf_counter() - start)


def lightning(epochs: int, *, as_configured: bool) -> float:
    torch.manual_seed(0)
    # What a run trains: an ensemble of one (infoflow.models.ensemble), as `python -m infoflow`.
    module = ClassifierModule(
        MLPEnsemble([0], beta=0.005), optimizer=lambda p: torch.optim.Adam(p, lr=4e-4)
    )
    with tempfile.TemporaryDirectory() as tmp:
        extra = (
            dict(
                logger=pl.loggers.CSVLogger(tmp, name="", version=""),
                callbacks=[pl.callbacks.ModelCheckpoint(dirpath=tmp, filename="last")],
            )
            if as_configured
            else dict(logger=False, enable_checkpointing=False, limit_val_batches=0)
        )
        trainer = pl.Trainer(
            max_epochs=epochs,
            accelerator="cpu",
            devices=1,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            default_root_dir=tmp,
            **extra,
        )
        dm = SZTDataModule(seed=0)
        start = time.perf_counter()
        trainer.fit(module, datamodule=dm)
        elapsed = time.perf_counter() - start
    return trainer.global_step / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    for name in ("pytorch_lightning", "lightning_fabric"):
        __import__("logging").getLogger(name).setLevel("ERROR")

    paths = {
        "plain PyTorch loop": plain_loop,
        "lightning (training only)": lambda e: lightning(e, as_configured=False),
        "lightning (as configured)": lambda e: lightning(e, as_configured=True),
    }
    paths["plain PyTorch loop"](2)  # warm up
    runs: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.repeats):  # interleaved, so machine noise hits every path alike
        for name, fn in paths.items():
            runs[name].append(fn(args.epochs))
    plain = statistics.median(runs["plain PyTorch loop"])
    print(
        f"SZT, batch 256, {args.epochs} epochs x 13 steps, {args.threads} thread(s), median of "
        f"{args.repeats}"
    )
    print(f"{'path':28s} {'steps/s':>9s} {'plain/path':>11s}")
    for name, values in runs.items():
        med = statistics.median(values)
        print(f"{name:28s} {med:9.0f} {plain / med:10.2f}x")
    ratio = plain / statistics.median(runs["lightning (training only)"])
    print(
        f"target: lightning training path within 1.5x of plain -> {ratio:.2f}x "
        f"{'OK' if ratio <= 1.5 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
