import pytest
import torch

from infoflow.models.mlp import noisy_mlp


@pytest.fixture
def net():
    torch.manual_seed(0)
    return noisy_mlp(beta=0.05)


def test_noise_std_equals_beta_in_every_hidden_layer(net):
    x = torch.rand(20000, 12)
    outputs, _ = net.hidden_outputs(x, noise=True)
    assert len(outputs) == 5
    for out in outputs:
        diff = out.noisy - out.pre_noise
        assert diff.std().item() == pytest.approx(0.05, rel=0.02)
        assert diff.mean().abs().item() < 0.002


def test_no_noise_on_logits(net):
    x = torch.rand(64, 12)
    outputs, logits = net.hidden_outputs(x, noise=True)
    # The logits are exactly the head applied to the last noisy layer: nothing added after it.
    assert torch.equal(logits, net.head(outputs[-1].noisy))


def test_noise_off_gives_identical_representations(net):
    x = torch.rand(64, 12)
    outputs, _ = net.hidden_outputs(x, noise=False)
    assert all(torch.equal(o.noisy, o.pre_noise) for o in outputs)


def test_noise_on_in_train_off_in_eval_by_default(net):
    x = torch.rand(64, 12)
    net.train()
    assert not torch.equal(net(x), net(x))
    net.eval()
    assert torch.equal(net(x), net(x))


def test_noise_at_eval_switch():
    net = noisy_mlp(beta=0.05, noise_at_eval=True).eval()
    x = torch.rand(64, 12)
    assert not torch.equal(net(x), net(x))


def test_beta_zero_is_deterministic_even_in_training():
    net = noisy_mlp(beta=0.0).train()
    x = torch.rand(64, 12)
    assert torch.equal(net(x), net(x))


def test_propagate_gives_replicas_with_fresh_noise(net):
    x = torch.rand(7, 12)
    samples = net.propagate(x, n_replicas=5)
    assert [s.shape for s in samples] == [(7, 5, w) for w in (10, 7, 5, 4, 3)]
    # Layer 1 is deterministic given x (no noise before it); later layers carry earlier noise.
    assert torch.allclose(samples[0], samples[0][:, :1].expand_as(samples[0]))
    assert samples[1].std(dim=1).min() > 0


def test_first_layer_matches_noiseless_forward(net):
    x = torch.rand(7, 12)
    clean, _ = net.hidden_outputs(x, noise=False)
    assert torch.allclose(net.propagate(x, 3)[0][:, 0], clean[0].pre_noise)


def test_negative_beta_rejected():
    with pytest.raises(ValueError, match="beta"):
        noisy_mlp(beta=-0.1)


@pytest.mark.parametrize("activation", ["tanh", "relu", "leaky_relu", "linear"])
def test_activations_and_hidden_widths(activation):
    net = noisy_mlp(hidden=[6, 4], activation=activation)
    outputs, logits = net.hidden_outputs(torch.randn(3, 12), noise=False)
    assert [o.pre_noise.shape[1] for o in outputs] == [6, 4] and logits.shape == (3, 2)
    if activation == "relu":
        assert all((o.pre_noise >= 0).all() for o in outputs)


def test_orthonormality_update_drives_w_wt_to_identity():
    torch.manual_seed(1)
    net = noisy_mlp()
    layers = net.linear_layers()
    assert len(layers) == 5  # all hidden weights, not the read-out

    def gap() -> float:
        return max(
            (w.weight @ w.weight.T - torch.eye(w.weight.shape[0])).abs().max().item()
            for w in layers
        )

    before = gap()
    for _ in range(300):
        net.orthonormalize_(0.1)
    assert gap() < 1e-3 < before
    assert not torch.allclose(net.head.weight @ net.head.weight.T, torch.eye(2), atol=1e-2)


def test_representations_in_batches_equal_one_pass(net):
    x = torch.randn(10, 12)
    whole, _ = net.hidden_outputs(x, noise=False)
    batched = net.representations(x, noise=False, batch_size=3)  # 3 + 3 + 3 + 1
    assert len(batched) == len(whole)
    for a, b in zip(batched, whole, strict=True):
        torch.testing.assert_close(a.pre_noise, b.pre_noise)
        torch.testing.assert_close(a.noisy, b.noisy)
    noisy = net.representations(x, noise=True, batch_size=3)
    assert not torch.equal(noisy[0].noisy, noisy[0].pre_noise)  # noise on: T differs from S
