"""Each callback on a tiny model: its values equal the estimator functions called directly on the
same representations, and the epoch's representations are computed once for all of them."""

import math
from types import SimpleNamespace

import pytest
import torch

from infoflow.callbacks.binned import BinnedCallback
from infoflow.callbacks.clustering import ClusteringCallback
from infoflow.callbacks.gradients import GradientPhasesCallback
from infoflow.callbacks.information import InformationCallback
from infoflow.callbacks.representations import RepresentationsCallback
from infoflow.callbacks.schedule import measuring
from infoflow.data.datamodule import SZTDataModule
from infoflow.estimators import (
    binned_information,
    clustering_scores,
    empirical_entropy,
    kde_information,
    sp_information,
)
from infoflow.models.mlp import noisy_mlp
from infoflow.models.module import ClassifierModule, Measurement
from infoflow.models.network import NoisyNetwork

SCHEDULE = {"seed": 5, "every_n_epochs": None, "n_points": 12}
SP = {"n_replicas": 4, "n_inputs": 64, "n_mc": 256, "target_stderr": 0.005, "max_width": None}
BINS = {"scheme": "width", "n_bins": None, "value_range": None, "noisy": True}


@pytest.fixture
def setup():
    torch.manual_seed(0)
    net = noisy_mlp(hidden=[4, 3], beta=0.1)
    module = ClassifierModule(net, optimizer=lambda p: torch.optim.Adam(p, lr=1e-3), seed=3)
    dm = SZTDataModule(seed=0)
    dm.setup()
    module.trainer = SimpleNamespace(datamodule=dm)  # what measurement() reads
    return module, dm


def _measure(cb, module, epoch):
    with measuring(module):
        return cb.measure(module.measurement(epoch).members[0])


def test_information_callback_equals_sp_on_the_same_inputs(setup, tmp_path):
    module, dm = setup
    cb = InformationCallback(str(tmp_path), **SP, **SCHEDULE)
    torch.manual_seed(11)
    values = _measure(cb, module, 7)
    x, y = dm.eval_set()
    # n_inputs = 64: drawn with replacement from the evaluation set, seeded by the member's seed
    # (the module's: 3) and the epoch
    idx = torch.randint(len(x), (64,), generator=torch.Generator().manual_seed(3 * 1_000_003 + 7))
    torch.manual_seed(11)
    with torch.no_grad():
        direct = sp_information(
            module.net.member(0).sample_pre_noise, x[idx], y[idx], sigma=0.1, n_replicas=4, n_mc=256,
        )  # fmt: skip
    ceilings = {v[2]: v[3] for v in values if v[1] == "ceiling"}
    assert ceilings["I_XT"] == pytest.approx(empirical_entropy(x[idx]), abs=1e-12)
    assert ceilings["I_TY"] == pytest.approx(empirical_entropy(y[idx]), abs=1e-12)
    assert ceilings["I_XT"] <= math.log(64)
    values = [v for v in values if v[1] != "ceiling"]
    assert {v[0] for v in values} == {1, 2}
    for layer, est, quantity, value, stderr in values:
        assert est == "sp"
        assert value == pytest.approx(direct[layer - 1][quantity].value, abs=1e-12)
        assert stderr == pytest.approx(direct[layer - 1][quantity].stderr, abs=1e-12)
    assert {v[2] for v in values} >= {"I_XT", "I_TY", "h_T", "h_T_given_X"}


def test_information_callback_null_n_inputs_takes_each_input_once(setup, tmp_path, monkeypatch):
    """n_inputs: null passes the evaluation set itself to SP: every input once, in order, no
    duplicates (a number N draws with replacement: the test above)."""
    module, dm = setup
    seen = []

    def capture(sample_fn, x, y, **kw):
        seen.append((x, y))
        return {}

    monkeypatch.setattr("infoflow.callbacks.information.sp_information", capture)
    cb = InformationCallback(str(tmp_path), **{**SP, "n_inputs": None}, **SCHEDULE)
    for epoch in (0, 7):
        assert _measure(cb, module, epoch) == []
    x, y = dm.eval_set()
    assert len(seen) == 2
    for got_x, got_y in seen:
        assert torch.equal(got_x, x) and torch.equal(got_y, y)
        assert len(torch.unique(got_x, dim=0)) == len(x) == 4096  # SZT's patterns are distinct


def test_information_callback_skips_deterministic_nets(setup, tmp_path):
    module, dm = setup
    det = ClassifierModule(noisy_mlp(beta=0.0), optimizer=torch.optim.Adam)
    det.trainer = module.trainer
    assert _measure(InformationCallback(str(tmp_path), **SP, **SCHEDULE), det, 0) == []


def test_binned_callback_equals_binned_information(setup, tmp_path):
    module, dm = setup
    cb = BinnedCallback(str(tmp_path), **BINS, bin_size=[0.05, 0.5], kde_noise_var=1e-2, **SCHEDULE)
    values = {(v[0], v[1], v[2]): v[3] for v in _measure(cb, module, 3)}
    x, y = dm.eval_set()
    with torch.no_grad():
        clean, _ = module.net.member(0).hidden_outputs(x, noise=False)
    for layer, out in enumerate(clean, start=1):
        direct = binned_information(out.pre_noise, y, bin_size=[0.05, 0.5], scheme="width")
        for size in (0.05, 0.5):
            for q in ("H_T", "I_XT", "I_TY"):
                assert values[(layer, f"bin:width:{size:g}", q)] == pytest.approx(
                    direct[size][q], abs=1e-12
                )
        kde = kde_information(out.pre_noise, y, noise_var=1e-2)
        assert values[(layer, "kde_upper", "I_XT")] == pytest.approx(kde["I_XT_upper"])
        assert values[(layer, "kde_lower", "I_TY")] == pytest.approx(kde["I_TY_lower"])
    # Noisy representations are binned too (β > 0).
    assert sum(1 for k in values if k[1] == "bin_noisy:width:0.05" and k[2] == "H_T") == 2


def test_clustering_callback_equals_clustering_scores(setup, tmp_path):
    module, dm = setup
    cb = ClusteringCallback(str(tmp_path), max_samples=300, **SCHEDULE)
    values = {(v[0], v[2]): v[3] for v in _measure(cb, module, 0)}
    x, y = dm.eval_set()
    with torch.no_grad():
        clean, _ = module.net.member(0).hidden_outputs(x, noise=False)
    direct = clustering_scores(
        clean[1].pre_noise, y, max_samples=300, generator=torch.Generator().manual_seed(3)
    )
    for name, value in direct.items():
        assert values[(2, name)] == pytest.approx(value, abs=1e-9)


def test_one_measurement_per_epoch_for_every_callback(setup, tmp_path, monkeypatch):
    """Binned, clustering and representations at the same epoch: one noiseless pass and one
    noisy pass in all, not one per callback; a new epoch measures afresh."""
    module, _ = setup
    calls = []
    original = NoisyNetwork.representations

    def counting(self, x, *, noise, **kw):
        calls.append(noise)
        return original(self, x, noise=noise, **kw)

    monkeypatch.setattr(NoisyNetwork, "representations", counting)
    cbs = [
        BinnedCallback(str(tmp_path), **BINS, bin_size=[0.1], kde_noise_var=None, **SCHEDULE),
        ClusteringCallback(str(tmp_path), max_samples=100, **SCHEDULE),
        RepresentationsCallback(str(tmp_path), **SCHEDULE),
    ]
    for cb in cbs:
        _measure(cb, module, 4)
    assert sorted(calls) == [False, True]
    assert module.measurement(4) is module.measurement(4)
    _measure(cbs[1], module, 5)
    assert sorted(calls) == [False, False, True]


def test_measurement_holds_every_representation(setup):
    module, dm = setup
    m = Measurement(module.net.member(0), *dm.eval_set(), epoch=0)
    torch.manual_seed(0)
    with torch.no_grad():
        assert m.widths == [4, 3] and m.beta == 0.1
        assert [t.shape for t in m.noiseless] == [(4096, 4), (4096, 3)]
        noise = m.noisy[0] - m.pre_noise[0]  # T = S + βZ: the noise has std β
        assert 0.09 < float(noise.std()) < 0.11
        assert len(m.sample_fn(m.inputs[:5])) == 2


def test_measuring_restores_mode_and_rng(setup):
    module, _ = setup
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
    cb = GradientPhasesCallback(str(tmp_path), seed=0, every_n_epochs=1, n_points=None)
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
    values = {(v[0], v[2]): v[3] for v in cb.measure(None)}
    assert cb.history == []  # measure returns values; only the schedule writes rows
    g = torch.stack(grads)
    assert values[(1, "mean_norm")] == pytest.approx(float(g.mean(0).norm()), rel=1e-5)
    std = g.var(0, unbiased=False).sqrt().norm()
    assert values[(1, "std_norm")] == pytest.approx(float(std), rel=1e-4)
    assert values[(1, "snr")] == pytest.approx(float(g.mean(0).norm() / std), rel=1e-4)
    assert {k[0] for k in values} == {1, 2}  # hidden + read-out


@pytest.mark.parametrize(
    "make",
    [
        lambda d: InformationCallback(d, **{**SP, "n_replicas": 1}, **SCHEDULE),
        lambda d: ClusteringCallback(d, max_samples=1, **SCHEDULE),
        lambda d: BinnedCallback(d, **BINS, bin_size=None, kde_noise_var=None, **SCHEDULE),
    ],
)
def test_bad_settings_fail_at_construction(make, tmp_path):
    with pytest.raises(ValueError):
        make(str(tmp_path))


def test_an_estimate_beyond_its_ceiling_is_flagged(setup, tmp_path, monkeypatch, caplog):
    """An I(X;T) above the entropy of the inputs measured by more than its stderr gets a flag row
    (the excess) and a warning; one within its stderr does not."""
    from infoflow.estimators.result import Estimate

    module, _ = setup
    over = math.log(64) + 0.3

    def fake_sp(sample_fn, x, y, **kw):
        return {
            0: {"I_XT": Estimate(over, 0.01), "I_TY": Estimate(0.1, 0.01)},
            1: {"I_XT": Estimate(1.0, 0.01), "I_TY": Estimate(0.2, 0.01)},
        }

    monkeypatch.setattr("infoflow.callbacks.information.sp_information", fake_sp)
    cb = InformationCallback(str(tmp_path), **SP, **SCHEDULE)
    with caplog.at_level("WARNING"):
        values = _measure(cb, module, 3)
    flags = [v for v in values if v[2].endswith("_beyond_ceiling")]
    ceiling = next(v[3] for v in values if v[1:3] == ("ceiling", "I_XT"))
    assert [(v[0], v[2]) for v in flags] == [(1, "I_XT_beyond_ceiling")]
    assert flags[0][3] == pytest.approx(over - ceiling)
    assert "exceeds its ceiling" in caplog.text
