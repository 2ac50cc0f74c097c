"""lab5.metrics: scores agree with scikit-learn, the always-positive baseline, summaries over folds, paired
per-fold differences and row-by-row comparisons."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from lab5.ablation import paired_differences
from lab5.explain import decision_changes, paired_comparison
from lab5.metrics import METRIC_COLUMNS, always_positive, confusion, metrics, summarize

Y_TRUE = [0, 0, 1, 1, 1, 2, 2, 2, 2, 2]
Y_PRED = [0, 1, 1, 1, 2, 2, 2, 0, 2, 1]


def test_metrics_match_scikit_learn():
    m = metrics(Y_TRUE, Y_PRED)
    assert m["accuracy"] == pytest.approx(accuracy_score(Y_TRUE, Y_PRED))
    assert m["macro_f1"] == pytest.approx(f1_score(Y_TRUE, Y_PRED, average="macro"))
    assert m["weighted_f1"] == pytest.approx(f1_score(Y_TRUE, Y_PRED, average="weighted"))
    p, r, f, _ = precision_recall_fscore_support(Y_TRUE, Y_PRED)
    for k, c in enumerate(["negative", "neutral", "positive"]):
        assert (m[f"precision_{c}"], m[f"recall_{c}"], m[f"f1_{c}"]) == pytest.approx((p[k], r[k], f[k]))
    assert set(METRIC_COLUMNS) <= set(m)
    assert all(isinstance(v, float) for v in m.values())


def test_metrics_count_a_never_predicted_class_as_zero_f1():
    m = metrics([0, 1, 2], [2, 2, 2])
    assert m["f1_negative"] == 0.0 and m["f1_neutral"] == 0.0
    assert m["macro_f1"] == pytest.approx((0 + 0 + 0.5) / 3)


def test_confusion_has_true_rows_and_predicted_columns():
    c = confusion(Y_TRUE, Y_PRED)
    assert c.loc["positive", "negative"] == 1 and c.loc["negative", "neutral"] == 1
    assert c.to_numpy().sum() == len(Y_TRUE) and np.trace(c.to_numpy()) == 6


def test_always_positive_accuracy_is_the_positive_share():
    labels = np.array([2, 2, 2, 1, 0, 2, 1, 2, 2, 0])
    m = always_positive(labels)
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["recall_positive"] == 1.0 and m["f1_neutral"] == 0.0


def test_summarize_formats_mean_plus_minus_std_in_model_order():
    cv = pd.DataFrame({"model": ["b", "b", "a", "a"], "fold": [0, 1, 0, 1],
                       "accuracy": [0.5, 0.7, 0.6, 0.6], "macro_f1": [0.4, 0.4, 0.3, 0.5]})
    s = summarize(cv, ["accuracy", "macro_f1"])
    assert list(s.index) == ["b", "a"]
    assert s.loc["b", "accuracy"] == "0.6 ± 0.141"
    assert s.loc["a", "accuracy"] == "0.6 ± 0.0"
    assert s.loc["a", "macro_f1"] == "0.4 ± 0.141"
    assert all(re.fullmatch(r"\d\.\d+ ± \d\.\d+", v) for v in s.to_numpy().ravel())


def test_summarize_single_fold_has_zero_std():
    cv = pd.DataFrame({"model": ["m"], "fold": [0], **{c: [0.25] for c in METRIC_COLUMNS}})
    s = summarize(cv)
    assert list(s.columns) == METRIC_COLUMNS and (s.loc["m"] == "0.25 ± 0.0").all()


def test_paired_comparison_counts_where_each_model_alone_is_right():
    y = [0, 0, 1, 1, 2, 2]
    a = [0, 1, 1, 0, 2, 2]
    b = [0, 0, 0, 0, 2, 1]
    table = paired_comparison(y, a, b, ("a", "b"))
    assert table.to_dict("index") == {
        "negative": {"rows": 2, "only a right": 0, "only b right": 1, "both right": 1},
        "neutral": {"rows": 2, "only a right": 1, "only b right": 0, "both right": 0},
        "positive": {"rows": 2, "only a right": 1, "only b right": 0, "both right": 1},
    }


def test_paired_differences_compare_each_model_with_its_control_fold_by_fold():
    cv = pd.DataFrame({"model": ["a"] * 3 + ["b"] * 3 + ["c"] * 3, "fold": [0, 1, 2] * 3,
                       "accuracy": [0.70, 0.72, 0.71, 0.72, 0.71, 0.75, 0.60, 0.61, 0.62]})
    d = paired_differences(cv, {"b": "a", "c": "a"})
    assert d.loc["b", "control"] == "a" and d.loc["b", "better_folds"] == 2 and d.loc["b", "folds"] == 3
    assert d.loc["b", "mean"] == pytest.approx((0.02 - 0.01 + 0.04) / 3)
    assert d.loc["b", "min"] == pytest.approx(-0.01) and d.loc["b", "max"] == pytest.approx(0.04)
    assert d.loc["c", "better_folds"] == 0 and d.loc["c", "mean"] == pytest.approx(-0.1)


def test_decision_changes_count_rows_fixed_and_broken_against_the_control():
    y = np.array([0, 0, 1, 1, 2, 2])
    control = np.array([0, 1, 1, 2, 2, 2])  # wrong on rows 1 and 3
    table = decision_changes(y, control, {"a": np.array([0, 0, 1, 1, 0, 2]), "same": control})
    assert table.loc["a"].to_dict() == {"changed": 3, "fixed": 2, "broken": 1, "net": 1}
    assert table.loc["same"].to_dict() == {"changed": 0, "fixed": 0, "broken": 0, "net": 0}


def test_fold_gap_is_the_largest_per_fold_difference_of_the_shared_rows_and_names_a_missing_one():
    from lab5.ablation import fold_gap

    a = pd.DataFrame({"model": ["x"] * 2 + ["y"] * 2, "fold": [0, 1] * 2, "accuracy": [0.7, 0.8, 0.6, 0.5],
                      "macro_f1": [0.5, 0.6, 0.4, 0.3]})
    b = a.iloc[::-1].copy()  # the same runs, in another order
    assert fold_gap(a, b, ["x", "y"]) == 0.0
    b.loc[b.model.eq("y") & b.fold.eq(1), "macro_f1"] += 0.03
    assert fold_gap(a, b, ["x", "y"]) == pytest.approx(0.03) and fold_gap(a, b, ["x"]) == 0.0
    with pytest.raises(KeyError, match="no row 'z'"):
        fold_gap(a, b, ["x", "z"])
    with pytest.raises(KeyError, match="other folds"):
        fold_gap(a, b[b.fold == 0], ["x"])


def test_paired_table_gives_each_pairs_mean_difference_in_points_and_the_folds_won():
    from lab5.ablation import paired_table

    cv = pd.DataFrame({"model": ["a"] * 3 + ["b"] * 3, "fold": [0, 1, 2] * 2,
                       "accuracy": [0.70, 0.72, 0.74, 0.71, 0.71, 0.71], "macro_f1": [0.5, 0.6, 0.7, 0.6, 0.6, 0.6]})
    t = paired_table(cv, {"a against b": ("a", "b"), "b against a": ("b", "a")})
    assert t.loc["a against b", "Δ accuracy (points)"] == pytest.approx(1.0)  # (−1 + 1 + 3) / 3 points
    assert t.loc["a against b", "accuracy: folds won"] == "2/3" and t.loc["b against a", "accuracy: folds won"] == "1/3"
    assert t.loc["b against a", "Δ macro-f1 (points)"] == pytest.approx(0.0)
    assert list(t.index) == ["a against b", "b against a"]
