"""Decisions fitted on out-of-fold probabilities: averaging, offsets, cross-fitting, ECE."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lab5.decisions import Decision, calibration_bins, cross_fit, expected_calibration_error, softmax, tune_offsets
from lab5.errors import ConfigError


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


def test_mean_is_the_plain_average_and_fits_nothing():
    y, a, _, b = _members()
    np.testing.assert_allclose(Decision("mean").fit([a, b], y).probabilities([a, b]), (a + b) / 2)


def test_offsets_shift_decisions_toward_a_rare_class_when_that_raises_macro_f1():
    rng = np.random.default_rng(1)
    y = np.where(rng.random(3000) < 0.1, 1, rng.integers(0, 2, 3000) * 2)  # class 1 is rare
    z = rng.normal(size=(3000, 3))
    z[np.arange(3000), y] += 1.0
    z[:, 1] -= 1.5  # and under-predicted
    p = softmax(z)
    d = Decision("mean+offsets").fit([p], y)
    assert d.offsets[1] > 0 and d.offsets[2] == 0
    assert (d.predict([p]) == 1).sum() > (p.argmax(1) == 1).sum()


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
    d = Decision("mean+offsets").fit([p], y)
    grid = torch.linspace(-1.0, 3.0, 17).tolist()  # tune_offsets' default grid
    order = sorted((abs(a) + abs(b), a, b) for a in grid for b in grid)  # ties to the smallest offsets, as it does
    scores = {}
    for _, a, b in order:
        pred = (np.log(p) + [a, b, 0.0]).argmax(1)
        scores[a, b] = accuracy_score(y, pred), f1_score(y, pred, average="macro")
    best_mean = max((acc + f1) / 2 for acc, f1 in scores.values())
    f1_only = max(scores, key=lambda k: scores[k][1])  # the first maximum: the smallest offsets
    b = d.predict([p])
    acc, f1 = accuracy_score(y, b), f1_score(y, b, average="macro")
    assert (acc + f1) / 2 == pytest.approx(best_mean, abs=1e-9)
    assert 0 <= d.offsets[1] < f1_only[1]
    assert acc > scores[f1_only][0] and f1 <= scores[f1_only][1]
    assert d.to_dict() == {"kind": "mean+offsets", "offsets": [float(o) for o in d.offsets]}


def test_cross_fit_never_uses_a_folds_own_labels():
    y, a, b, _ = _members()
    fold_of = np.arange(len(y)) % 4
    before = cross_fit("mean+offsets", [a, b], y, fold_of)
    changed = y.copy()
    changed[fold_of == 0] = (changed[fold_of == 0] + 1) % 3  # relabel fold 0 only
    after = cross_fit("mean+offsets", [a, b], changed, fold_of)
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


@pytest.mark.parametrize("kind", ["mean", "mean+offsets"])
def test_a_fitted_decision_round_trips_through_json_to_the_same_probabilities(kind):
    import json

    y, a, b, _ = _members()
    d = Decision(kind).fit([a, b], y)
    again = Decision.from_dict(json.loads(json.dumps(d.to_dict())))
    assert again.kind == kind and set(d.to_dict()) == {"kind", "offsets"}
    assert np.array_equal(again.probabilities([a, b]), d.probabilities([a, b]))


def test_only_the_plain_mean_without_offsets_counts_as_argmax():
    assert Decision("mean").is_argmax
    assert not Decision("mean+offsets", offsets=np.array([0.0, 0.5, 0.0])).is_argmax
    assert Decision("mean+offsets").is_argmax  # offsets not (yet) fitted: all zero


def test_an_unknown_decision_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match=r"use one of mean, mean\+offsets$"):
        Decision("vote")
    for kind in ("mean+bias", "temperature", "stack", "stack+offsets"):
        with pytest.raises(ConfigError):
            Decision(kind)


def test_expected_calibration_error_is_zero_when_confidence_matches_accuracy_and_large_when_not():
    y = np.array([0] * 80 + [1] * 20)
    p = np.tile([0.8, 0.1, 0.1], (100, 1))  # 80% confident and 80% right
    assert expected_calibration_error(p, y) == pytest.approx(0.0, abs=1e-12)
    sure = np.tile([1.0, 0.0, 0.0], (100, 1))  # fully confident, 80% right
    assert expected_calibration_error(sure, y) == pytest.approx(0.2)


def test_calibration_bins_group_rows_by_the_confidence_of_their_predicted_class():
    p = np.array([[0.95, 0.03, 0.02], [0.05, 0.9, 0.05], [0.5, 0.3, 0.2], [0.2, 0.35, 0.45]])
    t = calibration_bins(p, np.array([0, 0, 0, 2]), bins=10)
    assert t.lower.tolist() == pytest.approx([0.4, 0.5, 0.9])  # empty bins are left out
    assert t.rows.tolist() == [1, 1, 2]
    assert t.confidence.tolist() == pytest.approx([0.45, 0.5, 0.925])
    assert t.accuracy.tolist() == [1.0, 1.0, 0.5]


def test_one_function_combines_members_as_tensors_or_arrays():
    from lab5.decisions import mean_probabilities

    members = [np.array([[0.2, 0.3, 0.5]]), np.array([[0.4, 0.5, 0.1]])]
    assert np.allclose(mean_probabilities(members), [[0.3, 0.4, 0.3]])
    assert torch.allclose(mean_probabilities([torch.tensor(m) for m in members]), torch.tensor(mean_probabilities(members)))
    assert np.array_equal(Decision("mean").probabilities(members), mean_probabilities(members))
