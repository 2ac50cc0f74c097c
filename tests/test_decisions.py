"""Decisions fitted on out-of-fold probabilities: temperatures, averaging, stacking, offsets, cross-fitting, ECE."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lab5.decisions import (Decision, calibration_bins, cross_fit, expected_calibration_error, fit_temperature, log_loss,
                            softmax, tune_offsets)
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


def test_fit_temperature_undoes_a_known_sharpening():
    y, calibrated, overconfident, _ = _members(4000)
    assert fit_temperature(overconfident, y) == pytest.approx(3.0, rel=0.1)
    assert fit_temperature(calibrated, y) == pytest.approx(1.0, rel=0.1)


def test_temperature_scaling_lowers_the_log_loss_and_keeps_each_members_argmax():
    y, _, overconfident, noisy = _members()
    d = Decision("temperature").fit([overconfident], y)
    p = d.probabilities([overconfident])
    assert log_loss(p, y) < log_loss(overconfident, y) - 0.1
    assert (p.argmax(1) == overconfident.argmax(1)).all()


def test_mean_is_the_plain_average_and_fits_nothing():
    y, a, _, b = _members()
    np.testing.assert_allclose(Decision("mean").fit([a, b], y).probabilities([a, b]), (a + b) / 2)


def test_stacking_learns_to_ignore_a_useless_member():
    y, a, _, noise = _members(2000)
    stacked = cross_fit("stack", [a, noise], y, np.arange(len(y)) % 5)
    mean = cross_fit("mean", [a, noise], y, np.arange(len(y)) % 5)
    assert (stacked.argmax(1) == y).mean() > (mean.argmax(1) == y).mean() + 0.02


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


def test_offsets_tuned_for_accuracy_and_macro_f1_give_up_less_accuracy_than_for_macro_f1_alone():
    """Macro-F1 alone is flat near its top and buys its last hundredths with accuracy; the mean of the two scores
    stops earlier. Tuned on the same rows: less neutral offset, more accuracy, at most as much macro-F1."""
    from sklearn.metrics import accuracy_score, f1_score

    rng = np.random.default_rng(1)
    y = np.where(rng.random(3000) < 0.1, 1, rng.integers(0, 2, 3000) * 2)  # class 1 is rare and under-predicted
    z = rng.normal(size=(3000, 3))
    z[np.arange(3000), y] += 1.0
    z[:, 1] -= 1.5
    p = softmax(z)
    f1_only, both = (Decision("mean+offsets", objective=o).fit([p], y) for o in ("macro_f1", "accuracy+macro_f1"))
    assert 0 <= both.offsets[1] < f1_only.offsets[1] and both.objective == "accuracy+macro_f1"
    a, b = f1_only.predict([p]), both.predict([p])
    assert accuracy_score(y, b) > accuracy_score(y, a)
    assert f1_score(y, b, average="macro") <= f1_score(y, a, average="macro")
    again = Decision.from_dict(both.to_dict())
    assert again.objective == "accuracy+macro_f1" and np.array_equal(again.offsets, both.offsets)
    with pytest.raises(ConfigError, match="unknown offsets objective"):
        Decision("mean+offsets", objective="recall")


def test_cross_fit_never_uses_a_folds_own_labels():
    y, a, b, _ = _members()
    fold_of = np.arange(len(y)) % 4
    before = cross_fit("stack+offsets", [a, b], y, fold_of)
    changed = y.copy()
    changed[fold_of == 0] = (changed[fold_of == 0] + 1) % 3  # relabel fold 0 only
    after = cross_fit("stack+offsets", [a, b], changed, fold_of)
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


@pytest.mark.parametrize("kind", ["mean", "mean+offsets", "temperature+offsets", "stack", "stack+offsets"])
def test_a_fitted_decision_round_trips_through_json_to_the_same_probabilities(kind):
    import json

    y, a, b, _ = _members()
    d = Decision(kind).fit([a, b], y)
    again = Decision.from_dict(json.loads(json.dumps(d.to_dict())))
    assert again.kind == kind
    assert np.array_equal(again.probabilities([a, b]), d.probabilities([a, b]))


def test_only_the_plain_mean_without_offsets_counts_as_argmax():
    assert Decision("mean").is_argmax
    assert not Decision("mean+offsets", offsets=np.array([0.0, 0.5, 0.0])).is_argmax
    assert not Decision("stack").is_argmax


def test_an_unknown_decision_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match="use one of mean, temperature, stack"):
        Decision("vote")
    with pytest.raises(ConfigError):
        Decision("mean+bias")


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
