"""K networks as one: member k of an ensemble is the single run of its seed, trained through the
same Lightning path, and members never touch each other."""

import pytest
import pytorch_lightning as pl
import torch

from infoflow.data.datamodule import SZTDataModule
from infoflow.models.mlp import MLPEnsemble
from infoflow.models.module import ClassifierModule

HIDDEN = [6, 4, 3]


def _train(
    seed: int, size: int, *, beta: float, orth_alpha: float, epochs: int
) -> ClassifierModule:
    seeds = [seed + k for k in range(size)]
    net = MLPEnsemble(seeds, hidden=HIDDEN, beta=beta, orth_alpha=orth_alpha)
    module = ClassifierModule(net, optimizer=lambda p: torch.optim.Adam(p, lr=0.01))
    data = SZTDataModule(train_fraction=0.5, batch_size=256, seeds=seeds)
    trainer = pl.Trainer(
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    trainer.fit(module, datamodule=data)
    return module


@pytest.mark.parametrize(("beta", "orth_alpha"), [(0.05, 0.0), (0.0, 0.01)])
def test_member_k_is_the_single_run_of_its_seed(beta, orth_alpha):
    """8 epochs of 8 steps: every member's weights equal those of the single run of its seed
    (initialisation, split, batch order, noise and Adam state all its own)."""
    ensemble = _train(3, 3, beta=beta, orth_alpha=orth_alpha, epochs=8)
    for k in (0, 2):
        single = _train(3 + k, 1, beta=beta, orth_alpha=orth_alpha, epochs=8)
        for w_ens, w_one in zip(ensemble.net.weights(), single.net.weights(), strict=True):
            assert torch.allclose(w_ens[k], w_one[0], atol=1e-5, rtol=1e-4)
        # and they trained: far from the initial weights of that seed
        init = MLPEnsemble([3 + k], hidden=HIDDEN).weights()[0][0]
        assert (single.net.weights()[0][0] - init).abs().max() > 0.05


def test_members_differ_and_start_as_nn_linear_would():
    net = MLPEnsemble([0, 1], hidden=HIDDEN)
    w = net.weights()[0]
    assert not torch.equal(w[0], w[1])
    bound = 1 / 12**0.5  # nn.Linear's default init: uniform on ±1/sqrt(fan_in)
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound
    again = MLPEnsemble([1, 5], hidden=HIDDEN).weights()[0]
    assert torch.equal(again[0], w[1])  # a member's init depends on its seed only


def test_a_member_gradient_is_its_own_loss_gradient():
    net = MLPEnsemble([0, 1, 2], hidden=HIDDEN)
    module = ClassifierModule(net, optimizer=lambda p: torch.optim.SGD(p, lr=0.1))
    x = torch.randn(3, 16, 12)
    y = torch.randint(0, 2, (3, 16))
    module._member_losses(net(x), y).sum().backward()
    g_all = net.weights()[0].grad[1].clone()
    net.zero_grad()
    # member 1 alone, as a standalone network: the same gradient
    member = MLPEnsemble([1], hidden=HIDDEN)
    torch.nn.functional.cross_entropy(member(x[1:2])[0], y[1]).backward()
    assert torch.allclose(member.weights()[0].grad[0], g_all, atol=1e-6)


def test_orthonormality_rule_acts_per_member():
    net = MLPEnsemble([0, 1], hidden=HIDDEN, orth_alpha=0.1)
    before = [w.detach().clone() for w in net.weights()]
    net.after_optimizer_step()
    for w0, w in zip(before[:-1], net.weights()[:-1], strict=True):
        for k in range(2):
            expected = w0[k] - 0.1 * (w0[k] @ w0[k].T @ w0[k] - w0[k])
            assert torch.allclose(w[k], expected, atol=1e-6)
    assert torch.equal(before[-1], net.weights()[-1])  # the read-out is left alone


def test_an_ensemble_run_records_every_member_under_its_seed(make_cfg, tmp_path):
    """`ensemble.size=3 seed=7`: one process, and every record row carries its member's seed."""
    from infoflow.records import read_records
    from infoflow.train import run
    from tests.test_presets import TINY  # one epoch, small SP, no W&B, no figures

    cfg = make_cfg("ensemble.size=3", "seed=7", *TINY, f"paths.output_dir={tmp_path / 'run'}")
    run(cfg)
    info = read_records(tmp_path / "run" / "information.csv")
    training = read_records(tmp_path / "run" / "training.csv")
    measured = [r for r in info if r["estimator"] != "time"]
    for rows in (measured, training):
        assert {r["seed"] for r in rows} == {7, 8, 9}
    for estimator in ("sp", "bin:width:0.05", "clustering", "gradients"):
        seeds = {r["seed"] for r in measured if r["estimator"] == estimator}
        assert seeds == {7, 8, 9}, estimator
    accs = {r["seed"]: r["value"] for r in training if r["quantity"] == "acc" and r["epoch"] == 1}
    assert len(set(accs.values())) > 1  # different networks, not one copied


def test_a_member_measured_in_an_ensemble_is_the_network_of_its_seed_alone(tmp_path):
    """The binned callback bins all members in one call per layer: every member's rows equal
    binned_information of that member's own network and evaluation set, built alone."""
    from types import SimpleNamespace

    from infoflow.callbacks.binned import BinnedCallback
    from infoflow.callbacks.measurement import measurement
    from infoflow.callbacks.schedule import measuring
    from infoflow.estimators import binned_information

    def module_of(seeds: list[int]) -> ClassifierModule:
        module = ClassifierModule(MLPEnsemble(seeds, hidden=HIDDEN, beta=0.05), torch.optim.Adam)
        data = SZTDataModule(seeds=seeds, eval_on="val")  # each member its own set
        data.setup()
        module.trainer = SimpleNamespace(datamodule=data)
        return module

    cb = BinnedCallback(str(tmp_path), scheme="tishby", bin_size=None, n_bins=[10, 30], n_points=3)
    ensemble = module_of([4, 5, 6])
    with measuring(ensemble):
        rows = cb.measure(measurement(ensemble, 0))
    assert len(rows) == 3 * 3 * 2 * 2 * 3  # seeds, layers, kinds (bin, bin_noisy), sizes, q
    got = {r[:4]: r[4] for r in rows if r[2].startswith("bin:")}
    for seed in (4, 5, 6):
        alone = module_of([seed])
        x, y = alone.measurement_data()
        outputs = alone.net.layer_outputs(x, noise=False)
        for layer, out in enumerate(outputs, start=1):
            want = binned_information(out.pre_noise[0], y[0], scheme="tishby", n_bins=[10, 30])
            for size, quantities in want.items():
                for q, v in quantities.items():
                    assert got[(seed, layer, f"bin:tishby:{size}", q)] == pytest.approx(
                        v, abs=1e-12
                    )


@pytest.mark.parametrize("n_classes", [2, 3, 10])
def test_correct_answers_count_as_argmax_does(n_classes):
    logits = torch.randn(4, 100, n_classes)
    logits[0, :10] = 0.0  # ties: argmax takes the first maximum
    y = torch.randint(0, n_classes, (4, 100))
    expected = (logits.argmax(2) == y).sum(1)
    assert torch.equal(ClassifierModule._member_correct(logits, y), expected)
