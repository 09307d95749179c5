"""In-memory batches: the fast row gather copies exactly the rows advanced indexing picks, and a
whole epoch holds exactly the minibatches the loader would give one by one."""

import pytest
import torch

from infoflow.data import datamodule
from infoflow.data.batches import Epoch, TensorBatches, gather_rows
from infoflow.data.datamodule import SZTDataModule


@pytest.mark.parametrize(
    "shape",
    [(3, 50, 12), (2, 40), (2, 30, 1, 4, 4), (1, 7, 3)],
)
def test_gather_rows_is_advanced_indexing(shape):
    g = torch.Generator().manual_seed(0)
    t = torch.randn(shape, generator=g) if len(shape) > 2 else torch.randint(9, shape)
    order = torch.stack([torch.randperm(shape[1], generator=g) for _ in range(shape[0])])
    expected = t[torch.arange(shape[0])[:, None], order]
    assert torch.equal(gather_rows(t, order), expected)
    strided = t.transpose(0, 1).contiguous().transpose(0, 1)  # not contiguous: index_select
    assert torch.equal(gather_rows(strided, order), expected)


X, Y = torch.randn(2, 23, 3), torch.randint(2, (2, 23))


def _loader(whole: bool) -> TensorBatches:
    x, y = X, Y
    gens = [torch.Generator().manual_seed(s) for s in (4, 5)]
    return TensorBatches(x, y, 5, shuffle=True, generators=gens, whole_epochs=whole)


def test_a_whole_epoch_holds_the_minibatches_in_their_order():
    steps, whole = _loader(False), _loader(True)
    assert (len(steps), len(whole)) == (5, 1)
    for _ in range(2):  # two passes: the generators advance alike
        (epoch,) = list(whole)
        assert isinstance(epoch, Epoch) and epoch.spans()[-1] == (20, 23)
        for (x, y), (xe, ye) in zip(steps, epoch.minibatches(), strict=True):
            assert torch.equal(x, xe) and torch.equal(y, ye)


def test_whole_epochs_only_for_data_that_fit(monkeypatch):
    dm = SZTDataModule(seeds=[0, 1])
    dm.setup()
    assert dm.serve_whole_epochs() and len(dm.train_dataloader()) == 1
    assert dm.val_dataloader() == [] and [x.name for x in dm.evaluation_loaders()] == [
        "train",
        "val",
    ]
    monkeypatch.setattr(datamodule, "WHOLE_EPOCH_BYTES", dm.tensors["x_train"].nbytes - 1)
    assert not dm.serve_whole_epochs() and len(dm.train_dataloader()) == 13
    assert [x.name for x in dm.val_dataloader()] == ["train", "val"]
