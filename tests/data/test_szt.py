import itertools
import math

import numpy as np
import pytest

from infoflow.data.datamodule import SZTDataModule, split_indices
from infoflow.data.szt import NEIGHBOURS, distance_matrix, make_szt_dataset, szt_labels


def test_shapes_dtypes_and_distinct_rows():
    x, y = make_szt_dataset()
    assert x.shape == (4096, 12) and x.dtype == np.uint8
    assert y.shape == (4096,) and y.dtype == np.int64
    assert len(np.unique(x, axis=0)) == 4096


def test_rows_are_msb_first_binary_expansions():
    x, _ = make_szt_dataset()
    for i in (0, 1, 5, 2048, 4095):
        assert "".join(map(str, x[i])) == format(i, "012b")


def test_positives_and_label_entropy():
    _, y = make_szt_dataset()
    assert y.sum() == 2118
    p = y.mean()
    h_bits = -(p * math.log2(p) + (1 - p) * math.log2(1 - p))
    assert h_bits == pytest.approx(0.99916, abs=5e-6)


def test_label_rule_by_brute_force_on_some_patterns():
    """Count active pairs by explicit loops over the neighbour lists and antipodes."""
    antipodes = {frozenset(p) for p in [(0, 9), (1, 7), (2, 5), (3, 6), (4, 10), (8, 11)]}
    x, y = make_szt_dataset()
    for i in range(0, 4096, 37):
        active = [k for k in range(12) if x[i, k]]
        n1 = n2 = n3 = 0
        for a, b in itertools.combinations(active, 2):
            if b in NEIGHBOURS[a]:
                n1 += 1
            elif frozenset((a, b)) in antipodes:
                n3 += 1
            else:
                n2 += 1
        expected = int(23 * len(active) + n1 - 5 * n2 - 8 * n3 >= 99)
        assert y[i] == expected


def _automorphisms(limit: int) -> list[tuple[int, ...]]:
    """Vertex permutations preserving the neighbour lists, found by backtracking search."""
    adj = {k: set(v) for k, v in NEIGHBOURS.items()}
    found: list[tuple[int, ...]] = []

    def extend(perm: list[int]) -> None:
        if len(found) >= limit:
            return
        k = len(perm)
        if k == 12:
            found.append(tuple(perm))
            return
        for image in range(12):
            if image in perm:
                continue
            if all((j in adj[k]) == (perm[j] in adj[image]) for j in range(k)):
                extend([*perm, image])

    extend([])
    return found


def test_labels_invariant_under_icosahedron_symmetries():
    autos = _automorphisms(limit=30)
    assert len(autos) == 30  # the icosahedron has 120; 30 is plenty of non-trivial ones
    dist = distance_matrix()
    x, y = make_szt_dataset()
    for perm in autos[1:]:
        p = np.array(perm)
        assert (dist[np.ix_(p, p)] == dist).all()  # a symmetry preserves every distance
        permuted = np.zeros_like(x)
        permuted[:, p] = x  # bit k moves to vertex perm[k]
        assert (szt_labels(permuted) == y).all()


def test_not_every_permutation_is_a_symmetry():
    # Guards the test above: a random permutation does change labels.
    x, y = make_szt_dataset()
    p = np.random.default_rng(0).permutation(12)
    permuted = np.zeros_like(x)
    permuted[:, p] = x
    assert (szt_labels(permuted) != y).any()


def test_seeded_split_sizes_and_disjointness():
    train, val = split_indices(4096, 0.8, seed=0)
    assert (len(train), len(val)) == (3277, 819)
    assert not set(train) & set(val)
    again, _ = split_indices(4096, 0.8, seed=0)
    other, _ = split_indices(4096, 0.8, seed=1)
    assert (train == again).all() and (train != other).any()


def test_datamodule_evaluates_on_all_inputs_by_default():
    dm = SZTDataModule(train_fraction=0.5, seeds=[3])
    dm.setup()
    x_eval, y_eval = dm.eval_set()
    assert x_eval.shape == (1, 4096, 12) and int(y_eval.sum()) == 2118  # (members, n, features)
    assert dm.tensors["x_train"].shape == (1, 2048, 12)  # (members, n, features)
    batches = list(dm.train_dataloader())
    assert len(batches) == 8 and sum(b[0].shape[1] for b in batches) == 2048


def test_full_training_fraction_drops_the_empty_validation_loader():
    dm = SZTDataModule(train_fraction=1.0)
    dm.setup()
    assert [loader.name for loader in dm.val_dataloader()] == ["train"]
