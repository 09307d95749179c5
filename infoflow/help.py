"""``python -m infoflow --help``: what infoflow does, examples, and every config group.

The options of each group are read from the configs themselves (``infoflow.conf``) and the
meanings of the plain keys from the schema (:mod:`infoflow.schema`), so the help cannot drift
from what is there. Hydra prints it through ``hydra.help.template``.
"""

from __future__ import annotations

import textwrap
from importlib import resources

from infoflow.schema import PLAIN_GROUPS, plain_specs

#: One line per group: what it chooses.
GROUPS = {
    "dataset": "the data (each member gets its own seeded split)",
    "model": "the network; custom: your own nn.Module measured at named layers",
    "model_dataset": "settings for a model and dataset pair, loaded by itself (not chosen)",
    "noise": "Goldfeld et al.'s Gaussian noise after every measured layer",
    "ensemble": "K networks trained and measured as one",
    "schedule": "when the measuring callbacks measure",
    "optimizer": "every argument of the torch optimizer",
    "trainer": "every argument of pytorch_lightning.Trainer",
    "logger": "W&B (offline unless WANDB_MODE=online) and a CSV of the same values",
    "callbacks": "measuring, recording and drawing; each callback's settings are its own keys",
    "experiment": "presets that record the papers' setups",
    "paths": "where outputs and data go",
}

EXAMPLES = """\
  python -m infoflow                                     # noisy SZT net, 1000 epochs, figures
  python -m infoflow experiment=goldfeld_szt             # Goldfeld et al.'s SZT experiment
  python -m infoflow model=mnist_cnn noise.beta=0.01     # the MNIST CNN, noisy
  python -m infoflow model=custom model.net._target_=mypkg.Net model.net.width=64 \\
      'model.layers=[body.1,body.3]' dataset=arrays dataset.path=data.npz noise.beta=0.05
  python -m infoflow ensemble.size=8 callbacks.information.n_replicas=100
  python -m infoflow -m noise.beta=0.005,0.05 seed=0,1    # a sweep; then:
  python -m infoflow.report multirun/<date>/<time>
  python -m infoflow --cfg job                           # the composed config, every key"""


def options(group: str) -> list[str]:
    """The options of a config group: its YAML files, or the schema's ``default``."""
    folder = resources.files("infoflow.conf") / group
    if folder.is_dir():
        return sorted(
            p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
        )
    return ["default"] if group in PLAIN_GROUPS else []


def help_text() -> str:
    lines = [
        "infoflow: information flow in neural networks during training. Noisy or deterministic",
        "networks trained with PyTorch Lightning; SP (sample propagation), binned, KDE, exact and",
        "clustering measures of every layer on a schedule; tidy records, figures, W&B.",
        "",
        "Usage: python -m infoflow [GROUP=OPTION] [KEY=VALUE ...]   (-m: a sweep over lists)",
        "",
        "Examples:",
        EXAMPLES,
        "",
        "Config groups (GROUP=OPTION chooses; GROUP.KEY=VALUE sets a key, no + needed):",
    ]
    for group, what in GROUPS.items():
        lines.append(f"  {group:<14} {what}")
        choices = options(group)
        if group == "model_dataset":
            pairs = [
                f"{c} (model={c.rsplit('_', 1)[0]}, dataset={c.rsplit('_', 1)[1]})" for c in choices
            ]
            choices, label = pairs, "files"
        else:
            label = "options"
        if choices:
            text = f"{label}: {', '.join(choices)}"
            lines += textwrap.wrap(text, 96, initial_indent=" " * 17, subsequent_indent=" " * 26)
    lines += ["", "Keys of the plain groups (values checked before a run writes anything):"]
    for prefix in PLAIN_GROUPS:
        for name, (_, meaning) in plain_specs(prefix).items():
            key = f"{prefix}.{name}" if prefix else name
            lines.append(f"  {key:<24} {meaning}")
    lines += [
        "",
        "Your own configs: put model/, dataset/, experiment/ ... YAML files in a folder and add",
        "  hydra.searchpath=[file:///path/to/that/folder]  (they may extend infoflow's).",
        "A mistyped key or option is one line naming the nearest valid ones; README.md has the rest.",
    ]
    return "\n".join(lines) + "\n"
