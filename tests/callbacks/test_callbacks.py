"""Each callback on a tiny model: its rows and logged values equal the estimator functions called
directly on the same representations."""

from types import SimpleNamespace

import pytest
import torch

from callbacks.binned import BinnedCallback
from callbacks.clustering import ClusteringCallback
from callbacks.gradients import GradientPhasesCallback
from callbacks.information import InformationCallback
from callbacks.schedule import measuring
from infoflow.data.datamodule import SZTDataModule
from infoflow.estimators import (
    binned_information,
    clustering_scores,
    kde_information,
    sp_information,
)
from infoflow.models.mlp import noisy_mlp
from infoflow.models.module import ClassifierModule


@pytest.fixture
def setup():
    torch.manual_seed(0)
    net = noisy_mlp(hidden=[4, 3], beta=0.1)
    module = ClassifierModule(net, optimizer=lambda p: torch.optim.Adam(p, lr=1e-3))
    dm = SZTDataModule(seed=0)
    dm.setup()
    trainer = SimpleNamespace(datamodule=dm)
    return trainer, module, dm


def test_information_callback_equals_sp_on_the_same_inputs(setup, tmp_path):
    trainer, module, dm = setup
    cb = InformationCallback(str(tmp_path), n_replicas=4, n_inputs=64, n_mc=256, seed=5)
    torch.manual_seed(11)
    with measuring(module):
        rows, metrics = cb.measure(trainer, module, epoch=7)
    x, y = dm.eval_set()
    idx = torch.randint(len(x), (64,), generator=torch.Generator().manual_seed(5 * 1_000_003 + 7))
    torch.manual_seed(11)
    with torch.no_grad():
        direct = sp_information(
            module.net.sample_pre_noise,
            x[idx],
            y[idx],
            sigma=0.1,
            n_replicas=4,
            n_mc=256,
            n_mc_conditional=256,
        )
    assert {r[1] for r in rows} == {1, 2}
    for epoch, layer, est, quantity, value, stderr in rows:
        assert (epoch, est) == (7, "sp")
        assert value == pytest.approx(direct[layer - 1][quantity].value, abs=1e-12)
        assert stderr == pytest.approx(direct[layer - 1][quantity].stderr, abs=1e-12)
        assert metrics[f"info/sp/layer{layer}/{quantity}"] == value
    assert {r[3] for r in rows} >= {"I_XT", "I_TY", "h_T", "h_T_given_X"}


def test_information_callback_skips_deterministic_nets(setup, tmp_path):
    trainer, _, _ = setup
    module = ClassifierModule(noisy_mlp(beta=0.0), optimizer=torch.optim.Adam)
    rows, metrics = InformationCallback(str(tmp_path)).measure(trainer, module, 0)
    assert rows == [] and metrics == {}


def test_binned_callback_equals_binned_information(setup, tmp_path):
    trainer, module, dm = setup
    cb = BinnedCallback(str(tmp_path), scheme="width", bin_size=[0.05, 0.5], kde_noise_var=1e-2)
    with measuring(module):
        rows, metrics = cb.measure(trainer, module, epoch=3)
    x, y = dm.eval_set()
    with torch.no_grad():
        clean, _ = module.net.hidden_outputs(x, noise=False)
    for layer, out in enumerate(clean, start=1):
        direct = binned_information(out.pre_noise, y, bin_size=[0.05, 0.5], scheme="width")
        for size in (0.05, 0.5):
            for q in ("H_T", "I_XT", "I_TY"):
                key = f"info/bin:width:{size:g}/layer{layer}/{q}"
                assert metrics[key] == pytest.approx(direct[size][q], abs=1e-12)
        kde = kde_information(out.pre_noise, y, noise_var=1e-2)
        assert metrics[f"info/kde_upper/layer{layer}/I_XT"] == pytest.approx(kde["I_XT_upper"])
        assert metrics[f"info/kde_lower/layer{layer}/I_TY"] == pytest.approx(kde["I_TY_lower"])
    # Noisy representations are binned too (β > 0); values differ from the noiseless ones.
    noisy = [r for r in rows if r[2] == "bin_noisy:width:0.05" and r[3] == "H_T"]
    assert len(noisy) == 2


def test_clustering_callback_equals_clustering_scores(setup, tmp_path):
    trainer, module, dm = setup
    cb = ClusteringCallback(str(tmp_path), max_samples=300, seed=2)
    with measuring(module):
        _, metrics = cb.measure(trainer, module, epoch=0)
    x, y = dm.eval_set()
    with torch.no_grad():
        clean, _ = module.net.hidden_outputs(x, noise=False)
    direct = clustering_scores(
        clean[1].pre_noise, y, max_samples=300, generator=torch.Generator().manual_seed(2)
    )
    for name, value in direct.items():
        assert metrics[f"cluster/layer2/{name}"] == pytest.approx(value, abs=1e-9)


def test_measuring_restores_mode_and_rng(setup):
    _, module, _ = setup
    module.train()
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    with measuring(module):
        assert not module.training and not torch.is_grad_enabled()
        torch.rand(100)
    assert module.training and torch.equal(torch.rand(3), expected)


def test_gradient_phases_from_per_step_gradients(tmp_path):
    torch.manual_seed(0)
    net = noisy_mlp(hidden=[3], beta=0.0)
    module = ClassifierModule(net, optimizer=torch.optim.SGD)
    cb = GradientPhasesCallback(str(tmp_path), every_n_epochs=1)
    cb._epochs = {1}
    trainer = SimpleNamespace(current_epoch=0)
    cb.on_train_epoch_start(trainer, module)
    grads = []
    for _ in range(5):
        net.zero_grad()
        x, y = torch.rand(8, 12), torch.randint(0, 2, (8,))
        torch.nn.functional.cross_entropy(net(x), y).backward()
        grads.append(net.blocks[0][0].weight.grad.clone())
        cb.on_after_backward(trainer, module)
    _, metrics = cb.measure(trainer, module, epoch=1)
    g = torch.stack(grads)
    assert metrics["grad/layer1/mean_norm"] == pytest.approx(float(g.mean(0).norm()), rel=1e-5)
    std = g.var(0, unbiased=False).sqrt().norm()
    assert metrics["grad/layer1/std_norm"] == pytest.approx(float(std), rel=1e-4)
    assert metrics["grad/layer1/snr"] == pytest.approx(float(g.mean(0).norm() / std), rel=1e-4)
    assert {k.split("/")[1] for k in metrics} == {"layer1", "layer2"}  # hidden + read-out
