"""Shared by the estimator tests."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def _one_thread():
    # the test machine is shared; one thread keeps torch from oversubscribing it
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def gen(seed: int = 0) -> torch.Generator:
    """A fresh CPU generator with a fixed seed."""
    return torch.Generator().manual_seed(seed)
