"""lab5.experiments.offsets: per-class offsets tuned on out-of-fold rows, and cross-fitted over folds."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lab5.experiments.offsets import cross_fit, fit_offsets, softmax, tune_offsets, with_offsets


def _members(n=600, seed=0):
    """Labels; the calibrated posterior (a unit Gaussian shifted by 1.5 at the true class gives ``softmax(1.5 z)``),
    the same over-confident by a factor of 3, and a member that knows nothing."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    z = rng.normal(size=(n, 3))
    z[np.arange(n), y] += 1.5
    calibrated = softmax(1.5 * z)
    overconfident = softmax(4.5 * z)
    noisy = softmax(rng.normal(size=(n, 3)))
    return y, calibrated, overconfident, noisy


def test_no_offsets_leave_the_plain_mean():
    y, a, _, b = _members()
    assert np.array_equal(with_offsets([a, b], np.zeros(3)), np.mean([a, b], axis=0))


def test_offsets_shift_decisions_toward_a_rare_class_when_that_raises_macro_f1():
    rng = np.random.default_rng(1)
    y = np.where(rng.random(3000) < 0.1, 1, rng.integers(0, 2, 3000) * 2)  # class 1 is rare
    z = rng.normal(size=(3000, 3))
    z[np.arange(3000), y] += 1.0
    z[:, 1] -= 1.5  # and under-predicted
    p = softmax(z)
    offsets = fit_offsets([p], y)
    assert offsets[1] > 0 and offsets[2] == 0
    assert (with_offsets([p], offsets).argmax(1) == 1).sum() > (p.argmax(1) == 1).sum()


def test_offsets_maximise_the_mean_of_accuracy_and_macro_f1_and_give_up_less_accuracy_than_macro_f1_alone():
    """The tuned offsets reach the best mean of accuracy and macro-F1 over the offset grid. Macro-F1 alone is flat
    near its top and buys its last hundredths with accuracy; the mean of the two scores stops earlier: less neutral
    offset, more accuracy, at most as much macro-F1 as the offsets that maximise macro-F1 alone."""
    from sklearn.metrics import accuracy_score, f1_score

    rng = np.random.default_rng(1)
    y = np.where(rng.random(3000) < 0.1, 1, rng.integers(0, 2, 3000) * 2)  # class 1 is rare and under-predicted
    z = rng.normal(size=(3000, 3))
    z[np.arange(3000), y] += 1.0
    z[:, 1] -= 1.5
    p = softmax(z)
    offsets = fit_offsets([p], y)
    grid = torch.linspace(-1.0, 3.0, 17).tolist()  # tune_offsets' default grid
    order = sorted((abs(a) + abs(b), a, b) for a in grid for b in grid)  # ties to the smallest offsets, as it does
    scores = {}
    for _, a, b in order:
        pred = (np.log(p) + [a, b, 0.0]).argmax(1)
        scores[a, b] = accuracy_score(y, pred), f1_score(y, pred, average="macro")
    best_mean = max((acc + f1) / 2 for acc, f1 in scores.values())
    f1_only = max(scores, key=lambda k: scores[k][1])  # the first maximum: the smallest offsets
    b = with_offsets([p], offsets).argmax(1)
    acc, f1 = accuracy_score(y, b), f1_score(y, b, average="macro")
    assert (acc + f1) / 2 == pytest.approx(best_mean, abs=1e-9)
    assert 0 <= offsets[1] < f1_only[1]
    assert acc > scores[f1_only][0] and f1 <= scores[f1_only][1]


def test_cross_fit_never_uses_a_folds_own_labels():
    y, a, b, _ = _members()
    fold_of = np.arange(len(y)) % 4
    before = cross_fit([a, b], y, fold_of)
    changed = y.copy()
    changed[fold_of == 0] = (changed[fold_of == 0] + 1) % 3  # relabel fold 0 only
    after = cross_fit([a, b], changed, fold_of)
    np.testing.assert_array_equal(after[fold_of == 0], before[fold_of == 0])
    assert not np.allclose(after[fold_of == 1], before[fold_of == 1])


def test_tuned_offsets_stay_zero_when_nothing_is_gained():
    logits = torch.tensor([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0]])
    assert torch.equal(tune_offsets(logits, torch.tensor([0, 1, 2])), torch.zeros(3))


def test_tuned_offsets_recover_a_shifted_class_with_the_smallest_offsets_that_do_it():
    # neutral rows score just below positive: a neutral offset of at least 0.5 fixes all of them
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.7, 1.0], [0.0, 0.6, 1.0], [0.0, 0.0, 2.0], [0.0, 0.0, 2.5]])
    bias = tune_offsets(logits, torch.tensor([0, 1, 1, 2, 2]))
    assert bias.tolist() == [0.0, 0.5, 0.0]
    assert ((logits + bias).argmax(1) == torch.tensor([0, 1, 1, 2, 2])).all()
