"""lab5.evaluation: metrics agree with scikit-learn, the baseline, cross-validation without leaks, summaries."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

import lab5.training as T
from lab5.data import load_dataset
from lab5.evaluation import (METRIC_COLUMNS, always_positive, baseline_row, confusion, cross_validate, folds,
                             metrics, summarize)

from conftest import make_features, small_config

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


def test_folds_are_stratified_partitions():
    y = np.array([0] * 10 + [1] * 20 + [2] * 30)
    fs = folds(y, 5, seed=0)
    assert len(fs) == 5
    tests = np.concatenate([te for _, te in fs])
    assert sorted(tests) == list(range(60))
    for tr, te in fs:
        assert not set(tr) & set(te)
        assert np.bincount(y[te]).tolist() == [2, 4, 6]


def test_baseline_row_scores_always_positive_on_each_fold():
    y = np.array([0] * 10 + [1] * 20 + [2] * 30)
    rows = baseline_row(y, 5, seed=0)
    assert list(rows.fold) == [0, 1, 2, 3, 4] and set(rows.model) == {"always_positive"}
    assert rows.accuracy.tolist() == pytest.approx([0.5] * 5)


def test_cross_validate_gives_a_row_per_fold_and_never_evaluates_on_training_rows(dataset_factory, tmp_path, monkeypatch):
    ds = load_dataset(dataset_factory(n_train=45, n_test=2))  # 30 rows per training fold: 3 held out to stop on
    feats = make_features(list(ds.all.guid), list(ds.all.label))
    cfg = small_config(tmp_path, folds=3, epochs=2)
    real_fit, real_predict = T.fit, T.predict_logits
    log, inside = [], []

    def spy_fit(model, train, val, c):
        log.append(("fit", set(train.guids), set(val.guids)))
        inside.append(1)
        try:
            return real_fit(model, train, val, c)
        finally:
            inside.pop()

    def spy_predict(model, data, c):
        if not inside:
            log.append(("eval", set(data.guids)))
        return real_predict(model, data, c)

    monkeypatch.setattr(T, "fit", spy_fit)
    monkeypatch.setattr(T, "predict_logits", spy_predict)
    cv = cross_validate(cfg, ds, feats, ["text", "concat"])
    assert len(cv) == 6 and list(cv.model) == ["text"] * 3 + ["concat"] * 3
    assert list(cv.fold) == [0, 1, 2] * 2
    assert set(METRIC_COLUMNS) <= set(cv.columns)
    assert cv[METRIC_COLUMNS].notna().all().all()
    assert [e[0] for e in log] == ["fit", "eval"] * 6
    evaluated = []
    for (_, tr, va), (_, te) in zip(log[0::2], log[1::2]):
        assert te and not te & tr and not te & va and not tr & va
        assert not te & set(ds.test.guid)
        evaluated.append(te)
    all_labelled = set(ds.train.guid)
    assert set().union(*evaluated[:3]) == all_labelled and sum(map(len, evaluated[:3])) == 45  # each row once per model


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


# --------------------------------------------------------------------------- the CV result cache
@pytest.fixture
def cv_setup(dataset_factory, tmp_path, monkeypatch):
    ds = load_dataset(dataset_factory(n_train=45, n_test=2))
    feats = make_features(list(ds.all.guid), list(ds.all.label))
    fits = []
    real_fit = T.fit

    def counting_fit(*a, **k):
        fits.append(1)
        return real_fit(*a, **k)

    monkeypatch.setattr(T, "fit", counting_fit)
    return ds, feats, small_config(tmp_path, folds=3, epochs=2), fits


def test_cross_validation_results_are_reread_from_the_cache_not_retrained(cv_setup):
    ds, feats, cfg, fits = cv_setup
    first = cross_validate(cfg, ds, feats, ["concat"])
    assert len(fits) == 3 and len(list((cfg.cache / "cv").glob("*.json"))) == 1
    again = cross_validate(cfg, ds, feats, configs={"renamed": cfg.replace(model="concat")})
    assert len(fits) == 3  # nothing trained again
    pd.testing.assert_frame_equal(again.drop(columns="model"), first.drop(columns="model"))
    assert set(again.model) == {"renamed"}


def test_a_changed_setting_or_label_misses_the_cv_cache(cv_setup):
    ds, feats, cfg, fits = cv_setup
    cross_validate(cfg, ds, feats, ["concat"])
    cross_validate(cfg.replace(lr=1e-3), ds, feats, ["concat"])
    assert len(fits) == 6
    ds.train.loc[0, "label"] = (ds.train.loc[0, "label"] + 1) % 3
    cross_validate(cfg, ds, feats, ["concat"])
    assert len(fits) == 9
    cross_validate(cfg.replace(progress=True, cache=cfg.cache), ds, feats, ["concat"])  # progress bars don't matter
    assert len(fits) == 9


def test_a_damaged_cv_cache_file_is_recomputed(cv_setup):
    ds, feats, cfg, fits = cv_setup
    first = cross_validate(cfg, ds, feats, ["concat"])
    (path,) = (cfg.cache / "cv").glob("*.json")
    path.write_text('[{"fold": 0, "accura')
    again = cross_validate(cfg, ds, feats, ["concat"])
    assert len(fits) == 6
    pd.testing.assert_frame_equal(again, first)


def test_cross_validate_without_cache_writes_nothing(cv_setup):
    ds, feats, cfg, fits = cv_setup
    cross_validate(cfg, ds, feats, ["concat"], cache=False)
    cross_validate(cfg, ds, feats, ["concat"], cache=False)
    assert len(fits) == 6 and not (cfg.cache / "cv").exists()
