"""lab5.checks: the notebooks' regression checks hold committed values with tolerances, on the course data only."""
from __future__ import annotations

import pytest

import lab5.outputs
from lab5.checks import Expectations, RegressionError
from lab5.data import load_dataset


@pytest.fixture
def ds(dataset_factory):
    return load_dataset(dataset_factory(n_train=6, n_test=2))


def test_on_another_dataset_the_checks_say_so_and_pass(ds, capsys):
    expect = Expectations(ds)
    assert not expect.active
    expect.close("accuracy", 0.1, 0.9, 0.01)
    expect.at_least("macro-F1", 0.0, 0.5)
    expect.at_most("loss", 9.0, 1.0)
    assert capsys.readouterr().out.splitlines() == [
        f"{what}: not checked (committed values are for the course data)" for what in ("accuracy", "macro-F1", "loss")]


@pytest.fixture
def course(ds, monkeypatch):
    monkeypatch.setattr(lab5.outputs, "COURSE_DATASET", ds.fingerprint)  # this dataset stands for the course data
    expect = Expectations(ds)
    assert expect.active
    return expect


def test_on_the_course_data_a_value_within_its_tolerance_passes_with_a_stable_printout(course, capsys):
    course.close("accuracy", 0.7249, 0.72, 0.005)
    course.close("accuracy", 0.7151, 0.72, 0.005)
    course.at_least("macro-F1", 0.6, 0.6)
    course.at_most("loss", 0.5, 0.5)
    assert capsys.readouterr().out.splitlines() == ["accuracy: within 0.005 of the committed 0.72"] * 2 + [
        "macro-F1: at least 0.6", "loss: at most 0.5"]


@pytest.mark.parametrize("check, args, message", [
    ("close", (0.731, 0.72, 0.01), "accuracy is 0.7310, more than 0.01 from the committed 0.72"),
    ("at_least", (0.59, 0.6), "accuracy is 0.5900, below the required 0.6"),
    ("at_most", (0.61, 0.6), "accuracy is 0.6100, above the allowed 0.6"),
])
def test_on_the_course_data_a_regression_raises(course, check, args, message):
    with pytest.raises(RegressionError) as e:
        getattr(course, check)("accuracy", *args)
    assert str(e.value) == message


def test_cv_means_check_each_models_mean_over_its_folds(course, capsys):
    import pandas as pd

    cv = pd.DataFrame({"model": ["a", "a", "b", "b"], "fold": [0, 1, 0, 1], "accuracy": [0.70, 0.72, 0.60, 0.64],
                       "macro_f1": [0.50, 0.54, 0.40, 0.40]})
    course.cv_means(cv, {"a": (0.71, 0.52), "b": (0.63, 0.42)})
    assert capsys.readouterr().out.splitlines() == [
        "a: CV accuracy: within 0.02 of the committed 0.71", "a: CV macro-F1: within 0.03 of the committed 0.52",
        "b: CV accuracy: within 0.02 of the committed 0.63", "b: CV macro-F1: within 0.03 of the committed 0.42"]
    with pytest.raises(RegressionError, match="b: CV accuracy is 0.6200, more than 0.02 from the committed 0.65"):
        course.cv_means(cv, {"b": (0.65, 0.40)})


def test_folds_won_lets_a_fold_within_the_tolerance_go_either_way(course, capsys):
    differences = [0.01, 0.02, 0.004, -0.003, -0.02]  # two clear wins, two near-ties, one clear loss
    for won in (2, 3, 4):
        course.folds_won("row vs control", differences, won)
    assert capsys.readouterr().out.splitlines() == [
        f"row vs control: {won} of 5 folds, as committed (a fold within 0.005 is a tie)" for won in (2, 3, 4)]
    for won in (1, 5):
        with pytest.raises(RegressionError, match=f"won 2 to 4 of 5 folds .*not the committed {won}"):
            course.folds_won("row vs control", differences, won)


def test_every_check_prints_a_line_the_notebook_guard_recognises(course, capsys):
    from lab5.checks import CHECK_LINE

    course.close("a", 0.5, 0.5, 0.01)
    course.at_least("b", 1, 0)
    course.at_most("c", 0, 1)
    course.folds_won("d", [0.1, -0.1], 1)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and all(CHECK_LINE.fullmatch(line) for line in lines)
