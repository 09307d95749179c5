"""Whole-epoch training (one Lightning step per epoch, the flat parameter vector, FlatAdam, the
epoch's noise drawn ahead) trains to the bit what a plain minibatch loop trains: the same data
order, the same noise generators, ``torch.optim.Adam`` on separate tensors, ``loss.backward()``.
The reference loop below is written out here, not taken from the code under test."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from infoflow.checkpoint import ModelCheckpoint
from infoflow.data.datamodule import SZTDataModule
from infoflow.models.mlp import MLPEnsemble
from infoflow.models.module import ClassifierModule
from infoflow.models.network import NOISE_STREAM, member_seed

HIDDEN = [10, 7, 5, 4, 3]
LR = 4e-4


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks: more threads than one only contend for shared cores (16 s, not 0.3 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _data(seeds: list[int], batch: int) -> SZTDataModule:
    return SZTDataModule(train_fraction=0.8, batch_size=batch, seeds=seeds)  # 3277 rows: uneven


def _fit(net, batch, epochs, *, optimizer=None, callbacks=(), ckpt_path=None, **trainer_kw):
    module = ClassifierModule(net, optimizer=optimizer or (lambda p: torch.optim.Adam(p, lr=LR)))
    data = _data(net.seeds, batch)
    kw = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    kw |= dict(enable_model_summary=False, num_sanity_val_steps=0) | trainer_kw
    trainer = pl.Trainer(max_epochs=epochs, callbacks=list(callbacks), **kw)
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    return module, data, trainer


def _reference(net, data, batch, epochs, *, optimizer=None, on_grads=None):
    """A plain loop: per epoch each member's randperm from its data generator and x[k][order];
    per minibatch each member's randn(Σd, B) from its noise generator, then forward, the summed
    members' mean cross-entropy, zero_grad, backward, the optimizer, the orthonormality rule.
    Returns the parameters (in ``net.parameters()`` order)."""
    seeds, beta, alpha = net.seeds, net.beta, net.orth_alpha
    params = [p.detach().clone().requires_grad_() for p in net.parameters()]
    weights, biases = params[0::2], params[1::2]
    opt = (optimizer or (lambda p: torch.optim.Adam(p, lr=LR)))(params)
    data_gens = [torch.Generator().manual_seed(s) for s in seeds]
    noise_gens = [torch.Generator().manual_seed(member_seed(s, NOISE_STREAM)) for s in seeds]
    data.setup()
    x, y = data.tensors["x_train"], data.tensors["y_train"]
    k, n = x.shape[:2]
    for _ in range(epochs):
        orders = [torch.randperm(n, generator=g) for g in data_gens]
        xs = torch.stack([x[m][o] for m, o in enumerate(orders)])
        ys = torch.stack([y[m][o] for m, o in enumerate(orders)])
        for a in range(0, n, batch):
            xb, yb = xs[:, a : a + batch], ys[:, a : a + batch]
            b = xb.shape[1]
            z = torch.stack([torch.randn(sum(HIDDEN), b, generator=g) for g in noise_gens])
            parts = (beta * z).split(HIDDEN, dim=1)
            t = xb.transpose(1, 2)  # (K, features, B)
            for i in range(len(HIDDEN)):
                t = torch.tanh(torch.baddbmm(biases[i].unsqueeze(2), weights[i], t))
                t = t + parts[i] if beta > 0 else t
            logits = torch.baddbmm(biases[-1].unsqueeze(2), weights[-1], t)  # (K, C, B)
            loss = F.cross_entropy(logits, yb, reduction="none").mean(1).sum()
            opt.zero_grad()
            loss.backward()
            if on_grads is not None:
                on_grads([p.grad.clone() for p in params])
            opt.step()
            with torch.no_grad():
                for w in weights[:-1] if alpha > 0 else []:
                    w -= alpha * (w @ w.transpose(1, 2) @ w - w)
    return [p.detach() for p in params]


def _assert_same(net, reference):
    for p, q in zip(net.parameters(), reference, strict=True):
        assert torch.equal(p.detach(), q)


@pytest.mark.parametrize(
    ("k", "batch", "beta", "orth_alpha"),
    [
        (1, 256, 0.005, 0.0),
        (8, 256, 0.005, 0.0),
        (1, 512, 0.0, 0.0),
        (8, 512, 0.0, 0.0),
        (8, 256, 0.005, 0.01),
        (1, 100, 0.005, 0.0),  # 29 × 100 noise values a step: drawn step by step, not ahead
    ],
)
def test_whole_epochs_train_as_a_plain_minibatch_loop(k, batch, beta, orth_alpha):
    seeds = list(range(5, 5 + k))
    make = lambda: MLPEnsemble(seeds, hidden=HIDDEN, beta=beta, orth_alpha=orth_alpha)  # noqa: E731
    module, data, trainer = _fit(make(), batch, epochs=3)
    assert data.whole_epochs and trainer.num_training_batches == 1  # one Lightning step an epoch
    assert module._flat_adam is not None
    steps = 3 * -(-data.tensors["x_train"].shape[1] // batch)
    assert trainer.global_step == steps  # optimizer steps, as Lightning counts them per minibatch
    _assert_same(module.net, _reference(make(), _data(seeds, batch), batch, epochs=3))


def test_minibatch_steps_train_the_same():
    """Where a step per epoch is not taken (here max_steps is set), Lightning's per-minibatch
    path trains the same network."""
    make = lambda: MLPEnsemble([2, 3], hidden=HIDDEN, beta=0.005)  # noqa: E731
    module, data, trainer = _fit(make(), 256, epochs=2, max_steps=10_000)
    assert not data.whole_epochs and trainer.num_training_batches == 13
    _assert_same(module.net, _reference(make(), _data([2, 3], 256), 256, epochs=2))


def test_noise_at_eval_draws_in_the_same_order():
    """With noise at evaluation the evaluation draws from the training streams after each
    epoch's training: whole epochs keep that order (the next epoch's noise is drawn after)."""
    make = lambda: MLPEnsemble([2], hidden=HIDDEN, beta=0.01, noise_at_eval=True)  # noqa: E731
    whole, _, _ = _fit(make(), 256, epochs=3)
    steps, data, _ = _fit(make(), 256, epochs=3, max_steps=10_000)
    assert not data.whole_epochs
    _assert_same(whole.net, [p.detach() for p in steps.net.parameters()])


@pytest.mark.parametrize(
    "optimizer",
    [
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
        lambda p: torch.optim.Adam(p, lr=LR, amsgrad=True),
        lambda p: torch.optim.Adam(p, lr=LR, weight_decay=1e-3),
    ],
)
def test_other_optimizers_step_themselves(optimizer):
    make = lambda: MLPEnsemble([1], hidden=HIDDEN, beta=0.005)  # noqa: E731
    module, _, _ = _fit(make(), 256, epochs=2, optimizer=optimizer)
    assert module._flat_adam is None
    expected = _reference(make(), _data([1], 256), 256, epochs=2, optimizer=optimizer)
    _assert_same(module.net, expected)


def test_a_quantized_network_trains_as_its_plain_loop():
    """Quantized layers (batch ranges, moving averages): the whole-epoch path against a plain
    loop over a twin network's own forward."""
    make = lambda: MLPEnsemble([0, 1], hidden=HIDDEN, quantize_bits=8, init="glorot")  # noqa: E731
    module, _, _ = _fit(make(), 256, epochs=2)
    assert module._flat_adam is not None
    twin, data = make(), _data([0, 1], 256)
    data.setup()
    opt = torch.optim.Adam(twin.parameters(), lr=LR)
    gens = [torch.Generator().manual_seed(s) for s in (0, 1)]
    x, y = data.tensors["x_train"], data.tensors["y_train"]
    for _ in range(2):
        orders = [torch.randperm(x.shape[1], generator=g) for g in gens]
        xs = torch.stack([x[m][o] for m, o in enumerate(orders)])
        ys = torch.stack([y[m][o] for m, o in enumerate(orders)])
        for a in range(0, x.shape[1], 256):
            logits = twin(xs[:, a : a + 256])
            loss = F.cross_entropy(logits.transpose(1, 2), ys[:, a : a + 256], reduction="none")
            opt.zero_grad()
            loss.mean(1).sum().backward()
            opt.step()
    for p, q in zip(module.net.parameters(), twin.parameters(), strict=True):
        assert torch.equal(p.detach(), q.detach())
    for p, q in zip(module.net.buffers(), twin.buffers(), strict=True):  # the moving ranges
        assert torch.equal(p, q)
    start = make().weights()[0]
    assert (module.net.weights()[0] - start).abs().max() > 1e-3  # it trained


class StepHooks(pl.Callback):
    """Lightning's per-step hooks as a callback sees them."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.grads: list[list[torch.Tensor]] = []

    def on_before_backward(self, trainer, module, loss) -> None:
        self.calls.append("before_backward")

    def on_after_backward(self, trainer, module) -> None:
        self.calls.append("after_backward")
        self.grads.append([p.grad.clone() for p in module.net.parameters()])

    def on_before_optimizer_step(self, trainer, module, optimizer) -> None:
        self.calls.append("before_optimizer_step")


def test_callbacks_see_every_minibatch_gradient():
    """The gradient-phase callback's hook: on_after_backward after every minibatch's backward,
    with that minibatch's gradients, between on_before_backward and on_before_optimizer_step."""
    make = lambda: MLPEnsemble([4], hidden=HIDDEN, beta=0.005)  # noqa: E731
    hooks = StepHooks()
    _fit(make(), 512, epochs=2, callbacks=[hooks])
    steps = 2 * 7
    assert hooks.calls == ["before_backward", "after_backward", "before_optimizer_step"] * steps
    expected: list[list[torch.Tensor]] = []
    _reference(make(), _data([4], 512), 512, epochs=2, on_grads=expected.append)
    for got, want in zip(hooks.grads, expected, strict=True):
        assert all(torch.equal(g, w) for g, w in zip(got, want, strict=True))


def test_resuming_from_a_checkpoint_continues_bit_for_bit(tmp_path):
    """FlatAdam's state is the optimizer's: saved, loaded and carried over on resuming."""
    make = lambda: MLPEnsemble([0, 1], hidden=HIDDEN, beta=0.005)  # noqa: E731
    straight, _, _ = _fit(make(), 256, epochs=4)
    _, _, first = _fit(make(), 256, epochs=2)
    first.save_checkpoint(tmp_path / "two.ckpt")
    resumed, _, _ = _fit(make(), 256, epochs=4, ckpt_path=tmp_path / "two.ckpt")
    assert resumed._flat_adam is not None and resumed._flat_adam._steps == 4 * 13
    _assert_same(resumed.net, [p.detach() for p in straight.net.parameters()])
    # torch's own Adam (Lightning's minibatch steps) reads the same state: each parameter its step.
    state = torch.load(tmp_path / "two.ckpt", weights_only=False)["optimizer_states"][0]["state"]
    steps = [s["step"] for s in state.values()]
    assert all(float(s) == 2 * 13 for s in steps) and len({id(s) for s in steps}) == len(steps)
    # limit_train_batches=13 (all): minibatch steps (max_steps would too, but Lightning resumes a
    # run counted in steps as if in the middle of its epoch).
    two = tmp_path / "two.ckpt"
    by_torch, data, _ = _fit(make(), 256, epochs=4, ckpt_path=two, limit_train_batches=13)
    assert not data.whole_epochs
    _assert_same(by_torch.net, [p.detach() for p in straight.net.parameters()])


def test_evaluation_at_the_epochs_lightning_would_validate_and_the_last():
    seen: dict[int, set[str]] = {}

    class Records(pl.Callback):
        def on_train_epoch_end(self, trainer, module) -> None:
            seen[trainer.current_epoch + 1] = set(module.epoch_record())

    module, data, _ = _fit(
        MLPEnsemble([0], hidden=HIDDEN, beta=0.005),
        256,
        epochs=7,
        callbacks=[Records()],
        check_val_every_n_epoch=3,
    )
    noisy, full = {"train/loss_noisy", "train/acc_noisy"}, {"train/loss", "val/loss", "val/acc"}
    assert [e for e in seen if full <= seen[e]] == [3, 6, 7]
    assert all(noisy <= keys for keys in seen.values())
    # The noiseless values are those of the network: recomputed here at the end.
    module._record = {}
    module._evaluate(epoch=7)
    x, y = data.tensors["x_val"], data.tensors["y_val"]
    with torch.no_grad():
        expected = F.cross_entropy(module.net.eval()(x)[0], y[0]).item()
    assert module._record["val/loss"][0] == pytest.approx(expected, rel=1e-6)


def test_checkpoints_are_saved_when_the_module_validates_itself(tmp_path):
    """Every N-th epoch's checkpoint with validation every N-th epoch: Lightning's own rule
    waits for a validation loop that whole epochs skip."""
    saved: list[int] = []

    class Saves(ModelCheckpoint):
        def _save_checkpoint(self, trainer, filepath) -> None:
            saved.append(trainer.current_epoch + 1)
            super()._save_checkpoint(trainer, filepath)

    ckpt = Saves(dirpath=tmp_path, filename="last", every_n_epochs=2, enable_version_counter=False)
    _, data, _ = _fit(
        MLPEnsemble([0], hidden=HIDDEN),
        512,
        epochs=4,
        callbacks=[ckpt],
        enable_checkpointing=True,
        check_val_every_n_epoch=2,
    )
    assert data.whole_epochs and saved == [2, 4]


def test_noise_drawn_ahead_is_the_noise_drawn_pass_by_pass():
    net, again = (MLPEnsemble([3, 4], hidden=HIDDEN, beta=0.1) for _ in range(2))
    cpu = torch.device("cpu")
    sizes = [256, 256, 48]  # 29 × 256 is a multiple of 16, 29 × 48 at least 16
    assert net.draw_noise_ahead(sizes, cpu)
    ahead = [net._training_noise(b, cpu) for b in sizes]
    for got, b in zip(ahead, sizes, strict=True):
        assert torch.equal(got, again._training_noise(b, cpu))
    assert not net.draw_noise_ahead([100, 100], cpu)  # 2900 values: not drawn ahead
    assert not MLPEnsemble([0], beta=0.0).draw_noise_ahead([256], cpu)


def test_parameters_live_in_one_vector_and_stay_there():
    net = MLPEnsemble([0, 1], hidden=[3, 2])
    keys = list(net.state_dict())
    flat, grad = net.flat_parameters()
    assert flat.numel() == sum(p.numel() for p in net.parameters())
    flat.zero_()
    assert all(p.abs().sum() == 0 for p in net.parameters())  # views: writing writes them
    net.zero_grad(set_to_none=True)  # a gradient replaced: packed again, values kept
    net.layers[0].weight.data = torch.ones(2, 3, 12)
    flat, grad = net.flat_parameters()
    assert (
        flat[: 2 * 3 * 12].eq(1).all() and net.layers[0].weight.grad.data_ptr() == grad.data_ptr()
    )
    net = net.double()  # .to(): new storage, packed again
    flat, _ = net.flat_parameters()
    assert flat.dtype == torch.float64 and net.layers[0].weight.data_ptr() == flat.data_ptr()
    net.load_state_dict({k: v.float() * 0 + 2 for k, v in net.state_dict().items()}, assign=True)
    flat, _ = net.flat_parameters()
    assert flat.eq(2).all() and list(net.state_dict()) == keys


def test_any_network_trains_the_same_in_whole_epochs():
    """A network without a flat vector (NamedLayers: any nn.Module, K members via torch.func) in
    whole epochs: the optimizer's own step, the same training as Lightning's minibatch steps."""
    from torch import nn

    from infoflow.data.datamodule import ArraysDataModule
    from infoflow.models.named_layers import NamedLayers

    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 6, generator=g).numpy()
    y = (x[:, 0] > 0).astype("int64")

    def fit(**trainer_kw):
        torch.manual_seed(0)  # NamedLayers draws its noise from torch's global generator
        body = lambda: nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 2))  # noqa: E731
        net = NamedLayers(body, ["1"], seeds=[0, 1], beta=0.05)
        module = ClassifierModule(net, optimizer=lambda p: torch.optim.Adam(p, lr=0.01))
        data = ArraysDataModule(arrays=(x, y), batch_size=64, seeds=[0, 1])
        kw = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False)
        kw |= dict(enable_model_summary=False, num_sanity_val_steps=0)
        trainer = pl.Trainer(max_epochs=3, **kw, **trainer_kw)
        trainer.fit(module, datamodule=data)
        return module, data

    whole, data = fit()
    steps, data_steps = fit(max_steps=10_000)
    assert data.whole_epochs and not data_steps.whole_epochs and whole._flat_adam is None
    for p, q in zip(whole.parameters(), steps.parameters(), strict=True):
        assert torch.equal(p, q)
