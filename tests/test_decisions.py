"""How members become one prediction (their plain mean), and how calibrated probabilities are (ECE)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lab5.decisions import calibration_bins, expected_calibration_error, mean_probabilities


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
    members = [np.array([[0.2, 0.3, 0.5]]), np.array([[0.4, 0.5, 0.1]])]
    assert np.allclose(mean_probabilities(members), [[0.3, 0.4, 0.3]])
    assert torch.allclose(mean_probabilities([torch.tensor(m) for m in members]), torch.tensor(mean_probabilities(members)))
