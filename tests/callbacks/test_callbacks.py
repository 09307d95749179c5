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
from infoflow.callbacks.measurement import Measurement, measurement
from infoflow.callbacks.representations import RepresentationsCallback
from infoflow.callbacks.schedule import measuring
from infoflow.data.datamodule import SZTDataModule
from infoflow.estimators import (
    binned_information,
    clustering_scores,
    empirical_entropy,
    kde_information,
    sp_from_samples,
)
from infoflow.models.mlp import MLPEnsemble
from infoflow.models.module import ClassifierModule

SCHEDULE = {"every_n_epochs": None, "n_points": 12}
SP = {"n_replicas": 4, "n_inputs": 64, "n_mc": 256, "target_stderr": 0.005}
BINS = {"scheme": "width", "noisy": True}


def make_module(seeds: list[int], beta: float = 0.1, hidden=(4, 3)) -> ClassifierModule:
    net = MLPEnsemble(seeds, hidden=list(hidden), beta=beta)
    module = ClassifierModule(net, optimizer=lambda p: torch.optim.Adam(p, lr=1e-3))
    dm = SZTDataModule(seeds=seeds)
    dm.setup()
    module.trainer = SimpleNamespace(datamodule=dm)  # what measurement_data() reads
    return module


@pytest.fixture
def module() -> ClassifierModule:
    return make_module([3])


def _measure(cb, module, epoch):
    with measuring(module):
        return cb.measure(measurement(module, epoch))


def test_information_callback_equals_sp_on_the_same_samples(module, tmp_path):
    cb = InformationCallback(str(tmp_path), **SP, **SCHEDULE)
    torch.manual_seed(11)
    values = _measure(cb, module, 7)
    x, y = module.measurement_data()
    # n_inputs = 64: drawn with replacement from the evaluation set, seeded by the member's seed
    # (3) and the epoch; then 4 replicas each, propagated with torch's global generator
    idx = torch.randint(4096, (64,), generator=torch.Generator().manual_seed(3 * 1_000_003 + 7))
    torch.manual_seed(11)
    with torch.no_grad():
        outs = module.net.layer_outputs(x[:, idx].repeat_interleave(4, dim=1), noise=True)
        samples = [o.pre_noise[0].reshape(64, 4, -1) for o in outs]
        direct = sp_from_samples(samples, y[0, idx], sigma=0.1, n_mc=256)
    ceilings = {v[3]: v[4] for v in values if v[2] == "ceiling"}
    assert ceilings["I_XT"] == pytest.approx(empirical_entropy(x[0, idx]), abs=1e-12)
    assert ceilings["I_TY"] == pytest.approx(empirical_entropy(y[0, idx]), abs=1e-12)
    assert ceilings["I_XT"] <= math.log(64)
    values = [v for v in values if v[2] != "ceiling"]
    assert {v[1] for v in values} == {1, 2} and {v[0] for v in values} == {3}
    for _, layer, est, quantity, value, stderr in values:
        assert est == "sp"
        assert value == pytest.approx(direct[layer - 1][quantity].value, abs=1e-12)
        assert stderr == pytest.approx(direct[layer - 1][quantity].stderr, abs=1e-12)
    assert {v[3] for v in values} >= {"I_XT", "I_TY", "h_T", "h_T_given_X"}


def test_information_callback_null_n_inputs_takes_each_input_once(module, tmp_path, monkeypatch):
    """n_inputs: null gives SP every evaluation input once, in order, no duplicates (a number N
    draws with replacement: the test above)."""
    seen = []

    def capture(samples, y, **kw):
        seen.append((samples, y))
        return {}

    monkeypatch.setattr("infoflow.callbacks.information.sp_from_samples", capture)
    cb = InformationCallback(str(tmp_path), **{**SP, "n_inputs": None}, **SCHEDULE)
    for epoch in (0, 7):
        _measure(cb, module, epoch)
    x, y = module.measurement_data()
    assert len(seen) == 2
    for samples, got_y in seen:
        assert torch.equal(got_y, y[0]) and [s.shape for s in samples] == [
            (4096, 4, 4),
            (4096, 4, 3),
        ]
        # layer 1 is deterministic given the input: its replicas are the noiseless S_1, in order
        clean = module.net.layer_outputs(x, noise=False)[0].pre_noise[0]
        assert torch.allclose(samples[0][:, 0], clean)


def test_information_callback_skips_deterministic_nets(tmp_path):
    det = make_module([0], beta=0.0)
    assert _measure(InformationCallback(str(tmp_path), **SP, **SCHEDULE), det, 0) == []


def test_every_member_is_estimated_under_its_seed(tmp_path):
    ensemble = make_module([5, 6, 7])
    cb = InformationCallback(str(tmp_path), **SP, **SCHEDULE)
    rows = _measure(cb, ensemble, 2)
    assert {r[0] for r in rows if r[2] == "sp"} == {5, 6, 7}
    i_xt = {r[0]: r[4] for r in rows if r[1:4] == (2, "sp", "I_XT")}
    assert len(set(i_xt.values())) == 3  # three networks, not one copied


def test_binned_callback_equals_binned_information(module, tmp_path):
    cb = BinnedCallback(str(tmp_path), **BINS, bin_size=[0.05, 0.5], kde_noise_var=1e-2, **SCHEDULE)
    values = {(v[1], v[2], v[3]): v[4] for v in _measure(cb, module, 3)}
    x, y = module.measurement_data()
    with torch.no_grad():
        clean = module.net.layer_outputs(x, noise=False)
    for layer, out in enumerate(clean, start=1):
        direct = binned_information(out.pre_noise[0], y[0], bin_size=[0.05, 0.5], scheme="width")
        for size in (0.05, 0.5):
            for q in ("H_T", "I_XT", "I_TY"):
                assert values[(layer, f"bin:width:{size:g}", q)] == pytest.approx(
                    direct[size][q], abs=1e-12
                )
        kde = kde_information(out.pre_noise[0], y[0], noise_var=1e-2)
        assert values[(layer, "kde_upper", "I_XT")] == pytest.approx(kde["I_XT_upper"])
        assert values[(layer, "kde_lower", "I_TY")] == pytest.approx(kde["I_TY_lower"])
    # Noisy representations are binned too (β > 0).
    assert sum(1 for k in values if k[1] == "bin_noisy:width:0.05" and k[2] == "H_T") == 2


def test_clustering_callback_equals_clustering_scores(module, tmp_path):
    cb = ClusteringCallback(str(tmp_path), max_samples=300, **SCHEDULE)
    values = {(v[1], v[3]): v[4] for v in _measure(cb, module, 0)}
    x, y = module.measurement_data()
    with torch.no_grad():
        clean = module.net.layer_outputs(x, noise=False)
    direct = clustering_scores(
        clean[1].pre_noise[0], y[0], max_samples=300, generator=torch.Generator().manual_seed(3)
    )
    for name, value in direct.items():
        assert values[(2, name)] == pytest.approx(value, abs=1e-9)


def test_one_measurement_per_epoch_for_every_callback(module, tmp_path, monkeypatch):
    """Binned, clustering and representations at the same epoch: one noiseless pass and one
    noisy pass in all (the network's own), not one per callback; a new epoch measures afresh."""
    calls = []
    original = MLPEnsemble.layer_outputs

    def counting(self, x, *, noise):
        calls.append(noise)
        return original(self, x, noise=noise)

    monkeypatch.setattr(MLPEnsemble, "layer_outputs", counting)
    cbs = [
        BinnedCallback(str(tmp_path), **BINS, bin_size=[0.1], **SCHEDULE),
        ClusteringCallback(str(tmp_path), max_samples=100, **SCHEDULE),
        RepresentationsCallback(str(tmp_path), **SCHEDULE),
    ]
    for cb in cbs:
        cb.output_dir = tmp_path
        _measure(cb, module, 4)
    assert sorted(calls) == [False, True]
    assert measurement(module, 4) is measurement(module, 4)
    _measure(cbs[1], module, 5)
    assert sorted(calls) == [False, False, True]


def test_measurement_holds_every_representation(module):
    m = Measurement(module.net, *module.measurement_data(), epoch=0)
    torch.manual_seed(0)
    with torch.no_grad():
        assert m.widths == [4, 3] and m.beta == 0.1 and m.seeds == [3]
        assert [t.shape for t in m.noiseless] == [(1, 4096, 4), (1, 4096, 3)]
        noise = m.noisy[0] - m.pre_noise[0]  # T = S + βZ: the noise has std β
        assert 0.09 < float(noise.std()) < 0.11
        assert [s.shape for s in m.sample(m.inputs[:, :5])] == [(1, 5, 4), (1, 5, 3)]


def test_one_evaluation_set_for_all_members_is_accepted():
    """A user's module may give (n, ...) and (n,): every member measures those."""
    module = make_module([0, 1])
    x, y = module.measurement_data()
    m = Measurement(module.net, x[0], y[0], epoch=0)
    assert m.inputs.shape == (2, 4096, 12) and torch.equal(m.labels[1], y[0])


def test_measuring_restores_mode_and_rng(module):
    module.train()
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    with measuring(module):
        assert not module.training and not torch.is_grad_enabled()
        torch.rand(100)
    assert module.training and torch.equal(torch.rand(3), expected)


def test_gradient_phases_from_per_step_gradients(tmp_path):
    module = make_module([0, 1], beta=0.0, hidden=[3])
    net = module.net
    cb = GradientPhasesCallback(str(tmp_path), every_n_epochs=1)
    cb._epochs = {1}
    trainer = SimpleNamespace(current_epoch=0)
    cb.on_train_epoch_start(trainer, module)
    grads = []
    for _ in range(5):
        net.zero_grad()
        x, y = torch.rand(2, 8, 12), torch.randint(0, 2, (2, 8))
        module._member_losses(net(x), y).sum().backward()
        grads.append(net.weights()[0].grad.clone())
        cb.on_after_backward(trainer, module)
    m = SimpleNamespace(seeds=[10, 11])
    values = {(v[0], v[1], v[3]): v[4] for v in cb.measure(m)}
    assert cb.history == []  # measure returns values; only the schedule writes rows
    g = torch.stack(grads)  # (steps, K, out, in)
    for k, seed in enumerate((10, 11)):
        gk = g[:, k]
        std = gk.var(0, unbiased=False).sqrt().norm()
        assert values[(seed, 1, "mean_norm")] == pytest.approx(float(gk.mean(0).norm()), rel=1e-5)
        assert values[(seed, 1, "std_norm")] == pytest.approx(float(std), rel=1e-4)
        assert values[(seed, 1, "snr")] == pytest.approx(float(gk.mean(0).norm() / std), rel=1e-4)
    assert {k[1] for k in values} == {1, 2}  # hidden + read-out


@pytest.mark.parametrize(
    "make",
    [
        lambda d: InformationCallback(d, **{**SP, "n_replicas": 1}, **SCHEDULE),
        lambda d: ClusteringCallback(d, max_samples=1, **SCHEDULE),
        lambda d: BinnedCallback(d, **BINS, bin_size=None, **SCHEDULE),
        lambda d: BinnedCallback(d, scheme="nope"),
    ],
)
def test_bad_settings_fail_at_construction(make, tmp_path):
    with pytest.raises(ValueError):
        make(str(tmp_path))


def test_an_estimate_beyond_its_ceiling_is_flagged(module, tmp_path, monkeypatch, caplog):
    """An I(X;T) above the entropy of the inputs measured by more than its stderr gets a flag row
    (the excess) and a warning; one within its stderr does not."""
    from infoflow.estimators.result import Estimate

    over = math.log(64) + 0.3

    def fake_sp(samples, y, **kw):
        return {
            0: {"I_XT": Estimate(over, 0.01), "I_TY": Estimate(0.1, 0.01)},
            1: {"I_XT": Estimate(1.0, 0.01), "I_TY": Estimate(0.2, 0.01)},
        }

    monkeypatch.setattr("infoflow.callbacks.information.sp_from_samples", fake_sp)
    cb = InformationCallback(str(tmp_path), **SP, **SCHEDULE)
    with caplog.at_level("WARNING"):
        values = _measure(cb, module, 3)
    flags = [v for v in values if v[3].endswith("_beyond_ceiling")]
    ceiling = next(v[4] for v in values if v[2:4] == ("ceiling", "I_XT"))
    assert [(v[1], v[3]) for v in flags] == [(1, "I_XT_beyond_ceiling")]
    assert flags[0][4] == pytest.approx(over - ceiling)
    assert "exceeds its ceiling" in caplog.text
