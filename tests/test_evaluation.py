"""lab5.evaluation: cross-validation without leaks, its cache and key, learning curves, the baseline on the same folds;
and the stored split's validation predictions and misclassified rows."""
from __future__ import annotations

import hashlib
import itertools
import json

import numpy as np
import pandas as pd
import pytest
import torch
from synthetic import make_features, small_config

import lab5.cache
import lab5.evaluation as E
from lab5.batches import make_data
from lab5.data import LABELS, load_dataset
from lab5.errors import ConfigError, DataError
from lab5.evaluation import baseline_row, cross_validate, cv_key, cv_runs, folds, learning_curve
from lab5.explain import misclassified
from lab5.metrics import METRIC_COLUMNS, metrics
from lab5.models import build_model
from lab5.pipeline import validation_predictions
from lab5.splits import get_split
from lab5.training import predict_logits


def test_folds_are_stratified_partitions():
    y = np.array([0] * 10 + [1] * 20 + [2] * 30)
    fs = folds(y, 5, seed=0)
    assert len(fs) == 5
    tests = np.concatenate([te for _, te in fs])
    assert sorted(tests) == list(range(60))
    for tr, te in fs:
        assert not set(tr) & set(te)
        assert np.bincount(y[te]).tolist() == [2, 4, 6]


def test_the_folds_are_drawn_once_and_no_caller_can_change_them(monkeypatch):
    y = np.array([0] * 10 + [1] * 20 + [2] * 30)
    first = folds(list(y), 5, seed=3)
    drawn = []
    monkeypatch.setattr(E.StratifiedKFold, "split", lambda *a: drawn.append(1) or pytest.fail("drawn again"))
    again = folds(y, 5, seed=3)
    assert not drawn and all(np.array_equal(a, b) for pa, pb in zip(first, again) for a, b in zip(pa, pb))
    with pytest.raises(ValueError, match="read-only"):
        again[0][1][0] = 99
    again.clear()
    assert len(folds(y, 5, seed=3)) == 5


def test_baseline_row_scores_always_positive_on_each_fold():
    y = np.array([0] * 10 + [1] * 20 + [2] * 30)
    rows = baseline_row(y, 5, seed=0)
    assert list(rows.fold) == [0, 1, 2, 3, 4] and set(rows.model) == {"always_positive"}
    assert rows.accuracy.tolist() == pytest.approx([0.5] * 5)
    assert rows.macro_f1.tolist() == pytest.approx([(2 * 0.5 / 1.5) / 3] * 5)  # positive F1 2/3, the others 0


# --------------------------------------------------------------------------- cross-validation
@pytest.fixture
def cv_setup(dataset_factory, tmp_path, monkeypatch):
    """45 labelled rows (30 per training fold) with separable synthetic features that ``cross_validate`` loads
    through a counting stand-in for ``load_features``; ``fit`` is counted too."""
    ds = load_dataset(dataset_factory(n_train=45, n_test=2))
    feats = make_features(list(ds.all.guid), list(ds.all.label))
    calls = {"fit": 0, "load_features": 0}
    real_fit = E.fit

    def counting_fit(*a, **k):
        calls["fit"] += 1
        return real_fit(*a, **k)

    def fake_load_features(d, c):
        calls["load_features"] += 1
        assert d is ds
        return feats

    monkeypatch.setattr(E, "fit", counting_fit)
    monkeypatch.setattr(E, "load_features", fake_load_features)
    return ds, feats, small_config(tmp_path, folds=3, epochs=2), calls


def _configs(cfg, *names):
    return {n: cfg.replace(model=n) for n in names}


def testtrain_folds_gives_a_row_per_fold_and_never_evaluates_on_training_rows(cv_setup, monkeypatch):
    ds, feats, cfg, calls = cv_setup
    real_fit, real_predict = E.fit, E.member_probabilities
    log, inside = [], []

    def spy_fit(model, train, val, c):
        log.append(("fit", set(train.guids), val))
        inside.append(1)
        try:
            return real_fit(model, train, val, c)
        finally:
            inside.pop()

    def spy_predict(model, data, c):
        out = real_predict(model, data, c)
        if not inside and list(data.guids) == list(ds.test.guid):
            log.append(("test",))  # the fold model predicts the test rows too (k-fold bagging)
        elif not inside:
            log.append(("eval", set(data.guids), data.labels.numpy(), out[0].argmax(1)))
        return out

    monkeypatch.setattr(E, "fit", spy_fit)
    monkeypatch.setattr(E, "member_probabilities", spy_predict)
    cv = cross_validate(ds, _configs(cfg, "text", "concat"))
    assert len(cv) == 6 and list(cv.model) == ["text"] * 3 + ["concat"] * 3
    assert list(cv.fold) == [0, 1, 2] * 2
    assert set(METRIC_COLUMNS) <= set(cv.columns)
    assert [e[0] for e in log] == ["fit", "eval", "test"] * 6
    log = [e for e in log if e[0] != "test"]
    evaluated = []
    for k, ((_, tr, va), (_, te, y, pred)) in enumerate(zip(log[0::2], log[1::2])):
        assert te and not te & tr
        assert not te & set(ds.test.guid)
        assert va is None and len(tr) == 30  # every row of the training part trains, none is held out
        row = cv.iloc[k]
        assert {c: row[c] for c in METRIC_COLUMNS} == pytest.approx({c: metrics(y, pred)[c] for c in METRIC_COLUMNS})
        evaluated.append(te)
    all_labelled = set(ds.train.guid)
    assert set().union(*evaluated[:3]) == all_labelled and sum(map(len, evaluated[:3])) == 45  # each row once per model
    assert cv[cv.model == "concat"].macro_f1.min() > 0.9  # separable features: concat learns them in two epochs
    assert calls["load_features"] == 1  # both configs share their features


def test_cross_validate_and_learning_curve_take_the_runs_of_one_call(cv_setup, monkeypatch):
    ds, feats, cfg, calls = cv_setup
    configs = _configs(cfg, "concat", "late")
    runs = cv_runs(ds, {**configs, **E.learning_curve_configs(ds, {"late": configs["late"]}, (1 / 2,))})
    table, curve = cross_validate(ds, configs), learning_curve(ds, {"late": configs["late"]}, (1 / 2,))
    monkeypatch.setattr(E, "cv_runs", lambda *a, **k: pytest.fail("ran the CV again"))
    pd.testing.assert_frame_equal(cross_validate(ds, configs, runs=runs), table)
    pd.testing.assert_frame_equal(learning_curve(ds, {"late": configs["late"]}, (1 / 2,), runs=runs), curve)


def test_cv_keeps_each_rows_out_of_fold_probabilities_and_fold_metrics_agree_with_them(cv_setup):
    ds, feats, cfg, calls = cv_setup
    run = cv_runs(ds, _configs(cfg, "concat"))["concat"]
    y = ds.train.label.to_numpy()
    assert run.probs.shape == (45, 3) and np.allclose(run.probs.sum(1), 1, atol=1e-5)
    for f, (_, te) in enumerate(folds(y, 3, cfg.seed)):
        assert run.folds.accuracy[f] == pytest.approx(metrics(y[te], run.probs[te].argmax(1))["accuracy"])
    np.testing.assert_allclose(run.member_probs["concat"], run.probs)
    again = cv_runs(ds, _configs(cfg, "concat"))["concat"]  # from the cache: the same probabilities
    assert calls["fit"] == 3
    np.testing.assert_allclose(again.probs, run.probs)


def test_the_fold_seed_draws_the_folds_and_the_seed_only_the_training(cv_setup, monkeypatch):
    ds, feats, cfg, calls = cv_setup
    real_fit = E.fit
    seen = []

    def spy_fit(model, train, val, c):
        weights = torch.cat([p.detach().flatten() for p in model.parameters()]).numpy().tobytes()
        assert val is None
        seen.append((frozenset(train.guids), hashlib.sha256(weights).hexdigest()))
        return real_fit(model, train, val, c)

    monkeypatch.setattr(E, "fit", spy_fit)

    def rows_and_init(**change):
        seen.clear()
        cv_runs(ds, {"x": cfg.replace(model="concat", epochs=2, **change)}, cache=False)
        return sorted(seen, key=lambda t: sorted(t[0]))

    base = rows_and_init()
    other_training = rows_and_init(seed=1)
    other_folds = rows_and_init(fold_seed=1)
    assert [t[0] for t in other_training] == [t[0] for t in base]  # the same folds
    assert [t[1] for t in other_training] != [t[1] for t in base]  # other initial weights
    assert {t[0] for t in other_folds}.isdisjoint({t[0] for t in base})  # other folds
    assert [t[1] for t in other_folds] == [t[1] for t in base]  # the same initial weights


def test_an_averaged_ensembles_cv_from_its_members_equals_training_the_ensemble(cv_setup):
    """The CV from the members' own runs equals training the ensemble as one model, and each member's run is the CV
    of its own config, read back."""
    ds, feats, cfg, calls = cv_setup
    c = cfg.replace(model="concat+late", epochs=3)
    from_members = cv_runs(ds, {"e": c})["e"]
    assert list(from_members.member_probs) == ["concat", "late"]
    assert calls["fit"] == 6  # each member's own CV (two members, three folds each), cached under its own key
    trained = E.train_folds([(feats, {"e": c})], ds)[0]["e"]  # the ensemble trained as one model, fold by fold
    np.testing.assert_allclose(from_members.probs, np.array(trained["probs"]), atol=1e-5)
    for m in ("concat", "late"):
        np.testing.assert_allclose(from_members.member_probs[m], np.array(trained["member_probs"][m]), atol=1e-5)
    fits = calls["fit"]
    alone = cv_runs(ds, {"late alone": c.replace(model="late")})["late alone"]  # the member's cached run
    assert calls["fit"] == fits and alone.probs.tolist() == from_members.member_probs["late"].tolist()
    assert not np.array_equal(from_members.member_probs["concat"], from_members.member_probs["late"])


def test_cv_trains_on_every_training_row_for_exactly_the_epochs(cv_setup, monkeypatch):
    ds, feats, cfg, calls = cv_setup
    seen = []
    real_fit = E.fit

    def spy_fit(model, train, val, c):
        result = real_fit(model, train, val, c)
        seen.append((len(train), val, result.history.epoch.tolist()))
        return result

    monkeypatch.setattr(E, "fit", spy_fit)
    run = cv_runs(ds, _configs(cfg.replace(epochs=4), "concat"))["concat"]
    assert seen == [(30, None, [1, 2, 3, 4])] * 3
    assert run.probs.shape == (45, 3)


def test_configs_with_other_features_load_their_own(cv_setup):
    ds, feats, cfg, calls = cv_setup
    cross_validate(ds, {"a": cfg.replace(model="text"), "b": cfg.replace(model="text", max_length=8),
                        "c": cfg.replace(model="image", max_length=8)})
    assert calls["load_features"] == 2


def test_too_few_rows_for_cross_validation_is_a_data_error(dataset_factory, tmp_path, monkeypatch):
    ds = load_dataset(dataset_factory(n_train=30, n_test=2))  # 20 rows per training part with 3 folds
    monkeypatch.setattr(E, "load_features", lambda d, c: make_features(list(d.all.guid), list(d.all.label)))
    with pytest.raises(DataError, match="30 labelled rows are too few for 3-fold cross-validation"):
        cross_validate(ds, {"text": small_config(tmp_path, model="text", folds=3)})
    tags = ["positive"] * 40 + ["neutral"] * 3 + ["negative"] * 2
    lopsided = load_dataset(dataset_factory(n_train=45, n_test=2, tags=tags))
    with pytest.raises(DataError, match="each class needs at least 3 rows"):
        cross_validate(lopsided, {"text": small_config(tmp_path, model="text", folds=3)})


def test_cross_validation_of_a_finetuning_config_is_a_config_error(dataset_factory, tmp_path):
    ds = load_dataset(dataset_factory(n_train=6, n_test=1))
    with pytest.raises(ConfigError, match="cross-validation runs on cached features"):
        cross_validate(ds, {"ft": small_config(tmp_path, model="concat", finetune=True)})


# --------------------------------------------------------------------------- the CV result cache
def test_cross_validation_results_are_reread_from_the_cache_not_retrained(cv_setup):
    ds, feats, cfg, calls = cv_setup
    first = cross_validate(ds, _configs(cfg, "concat"))
    (path,) = (cfg.cache / "cv").glob("*.run")
    assert calls["fit"] == 3 and set(json.loads(path.read_text())) == {"folds", "probs", "member_probs", "test_probs"}
    again = cross_validate(ds, {"renamed": cfg.replace(model="concat")})
    assert calls["fit"] == 3  # nothing trained again
    pd.testing.assert_frame_equal(again.drop(columns="model"), first.drop(columns="model"))
    assert set(again.model) == {"renamed"}


def test_a_changed_setting_or_label_misses_the_cv_cache(cv_setup):
    ds, feats, cfg, calls = cv_setup
    cross_validate(ds, _configs(cfg, "concat"))
    cross_validate(ds, _configs(cfg.replace(lr=1e-3), "concat"))
    assert calls["fit"] == 6
    ds.train.loc[0, "label"] = (ds.train.loc[0, "label"] + 1) % 3
    cross_validate(ds, _configs(cfg, "concat"))
    assert calls["fit"] == 9
    cross_validate(ds, _configs(cfg.replace(progress=True), "concat"))  # progress bars don't matter
    assert calls["fit"] == 9


def test_a_damaged_cv_cache_file_is_recomputed(cv_setup):
    ds, feats, cfg, calls = cv_setup
    first = cross_validate(ds, _configs(cfg, "concat"))
    (path,) = (cfg.cache / "cv").glob("*.run")
    path.write_text('{"folds": [{"fold": 0, "accura')
    again = cross_validate(ds, _configs(cfg, "concat"))
    assert calls["fit"] == 6
    pd.testing.assert_frame_equal(again, first)


def testtrain_folds_without_cache_writes_nothing(cv_setup):
    ds, feats, cfg, calls = cv_setup
    cross_validate(ds, _configs(cfg, "concat"), cache=False)
    cross_validate(ds, _configs(cfg, "concat"), cache=False)
    assert calls["fit"] == 6 and not (cfg.cache / "cv").exists()


# --------------------------------------------------------------------------- what the CV cache key depends on
@pytest.fixture
def key_setup(dataset_factory, tmp_path):
    ds = load_dataset(dataset_factory(n_train=9, n_test=1))
    return ds, make_features(list(ds.all.guid), list(ds.all.label)), small_config(tmp_path, model="concat")


def test_cv_key_changes_with_the_cache_version(key_setup, monkeypatch):
    ds, feats, cfg = key_setup
    before = cv_key(cfg, ds, feats)
    assert cv_key(cfg, ds, feats) == before
    monkeypatch.setattr(lab5.cache, "FORMAT_VERSION", lab5.cache.FORMAT_VERSION + 1)
    assert cv_key(cfg, ds, feats) != before


@pytest.mark.parametrize("change", [{"lr": 2e-3}, {"model": "late"}, {"epochs": 4}, {"folds": 4}, {"seed": 1}, {"fold_seed": 1},
                                    {"dropout": 0.1}])
def test_cv_key_changes_with_a_config_value(key_setup, change):
    ds, feats, cfg = key_setup
    assert cv_key(cfg.replace(**change), ds, feats) != cv_key(cfg, ds, feats)


@pytest.mark.parametrize("field", ["data", "cache", "out_dir", "progress"])
def test_cv_key_ignores_paths_and_progress_bars(key_setup, tmp_path, field):
    ds, feats, cfg = key_setup
    value = {"data": tmp_path / "other-data", "cache": tmp_path / "other-cache", "out_dir": tmp_path / "other-out",
             "progress": True}[field]
    assert getattr(cfg, field) != value
    assert cv_key(cfg.replace(**{field: value}), ds, feats) == cv_key(cfg, ds, feats)


def test_cv_key_changes_with_the_features_the_labels_and_the_libraries(key_setup, monkeypatch):
    ds, feats, cfg = key_setup
    before = cv_key(cfg, ds, feats)
    other = make_features(list(ds.all.guid), list(ds.all.label))
    other.text.key = "another-text-cache"
    assert cv_key(cfg, ds, other) != before
    real_versions = lab5.cache.versions
    monkeypatch.setattr(lab5.cache, "versions", lambda *p: {**real_versions(*p), "scikit-learn": "0.1"})
    assert cv_key(cfg, ds, feats) != before
    monkeypatch.setattr(lab5.cache, "versions", real_versions)
    ds.train.loc[3, "label"] = (ds.train.loc[3, "label"] + 1) % 3
    assert cv_key(cfg, ds, feats) != before


# --------------------------------------------------------------------------- looking at one model's predictions
@pytest.fixture
def trained(dataset_factory, tmp_path):
    ds = load_dataset(dataset_factory(n_train=30, n_test=3))
    feats = make_features(list(ds.all.guid), list(ds.all.label))
    cfg = small_config(tmp_path, model="text")
    return ds, feats, cfg, build_model(cfg, feats.dims())


def test_validation_predictions_score_the_stored_validation_rows_by_the_models_argmax(trained):
    ds, feats, cfg, model = trained
    y, argmax = validation_predictions(model, cfg, ds, feats)
    split = get_split(ds, cfg.cache)
    assert y.tolist() == ds.train.set_index("guid").loc[list(split.val), "label"].tolist() and len(y) == 6
    assert argmax.tolist() == predict_logits(model, make_data(cfg.model_group, ds, list(split.val), y, feats, model), cfg.training_group).argmax(1).tolist()


def test_misclassified_samples_wrong_validation_rows_with_their_texts(trained):
    ds, feats, cfg, _ = trained
    val = list(get_split(ds, cfg.cache).val)
    y = ds.train.set_index("guid").loc[val, "label"].to_numpy()
    pred = y.copy()
    pred[[1, 4]] = (pred[[1, 4]] + 1) % 3
    table = misclassified(ds, y, pred, n=8, seed=0, cache=cfg.cache)
    assert table.guid.tolist() == [val[1], val[4]]
    texts = ds.train.set_index("guid").text
    assert table.to_dict("records") == [{"guid": val[i], "true": LABELS[y[i]], "predicted": LABELS[pred[i]],
                                          "text": texts[val[i]][:100]} for i in (1, 4)]
    assert len(misclassified(ds, y, pred, n=1, seed=0, cache=cfg.cache)) == 1
    assert misclassified(ds, y, y, cache=cfg.cache).empty


def test_check_cv_rows_refuses_too_few_rows_per_class_or_in_all(dataset_factory):
    ds = load_dataset(dataset_factory(n_train=45, n_test=3))  # 15 rows per class
    E.check_cv_rows(ds, 3)  # 30 training rows a fold, 15 >= 3 per class: accepted
    with pytest.raises(DataError, match="too few for 16-fold"):
        E.check_cv_rows(ds, 16)  # a class has fewer rows than folds
    small = load_dataset(dataset_factory(n_train=30, n_test=3))
    with pytest.raises(DataError, match="30 labelled rows are too few for 2-fold"):
        E.check_cv_rows(small, 2)  # 15 training rows a fold


# --------------------------------------------------------------------------- learning curves and decision changes
def test_train_rows_cuts_every_training_part_to_a_stratified_subset_and_scores_the_whole_fold(cv_setup, monkeypatch):
    ds, feats, cfg, calls = cv_setup
    seen, real_fit = [], E.fit

    def spy_fit(model, train, val, c):
        seen.append(train.labels.numpy())
        return real_fit(model, train, val, c)

    monkeypatch.setattr(E, "fit", spy_fit)
    c = cfg.replace(model="concat")
    run = cv_runs(ds, {"cut": c.replace(train_rows=12)})["cut"]
    assert [len(y) for y in seen] == [12] * 3 and all(np.bincount(y).tolist() == [4, 4, 4] for y in seen)
    assert run.probs.shape == (45, 3) and (run.probs.sum(1) > 0.99).all()  # every row still scored out of fold
    assert cv_key(c.replace(train_rows=12), ds, feats) != cv_key(c, ds, feats)
    with pytest.raises(ConfigError, match="--train-rows 31 asks for more rows than the 30 a training part of 3-fold"):
        cv_runs(ds, {"too many": c.replace(train_rows=31)})
    assert len(seen) == 3  # refused before anything trained


def test_a_learning_curve_has_a_row_per_model_fraction_and_fold_ending_at_the_full_training_part(cv_setup):
    ds, feats, cfg, calls = cv_setup
    curve = E.learning_curve(ds, {"text": cfg.replace(model="text"), "concat": cfg.replace(model="concat")}, (2 / 3, 1 / 3))
    assert list(curve.columns[:3]) == ["model", "train_rows", "fold"]
    assert curve.groupby(["train_rows", "model"], sort=False).size().to_dict() == {
        (10, "text"): 3, (10, "concat"): 3, (20, "text"): 3, (20, "concat"): 3, (30, "text"): 3, (30, "concat"): 3}
    full = cross_validate(ds, {"concat": cfg.replace(model="concat")})  # the full size is the plain CV (cached)
    assert curve[(curve.train_rows == 30) & (curve.model == "concat")].accuracy.tolist() == full.accuracy.tolist()
    with pytest.raises(ConfigError, match="fractions must lie between 0 and 1"):
        E.learning_curve(ds, {"text": cfg}, (0.5, 1.0))


def test_folds_of_several_feature_groups_share_one_pool_and_give_the_same_results_in_any_order(cv_setup, monkeypatch):
    ds, feats, cfg, calls = cv_setup
    configs = {"late": cfg.replace(model="late"), "concat": cfg.replace(model="concat"),
               "late on shorter texts": cfg.replace(model="late", max_length=8)}
    pools = []
    real_run_all = E.run_all
    monkeypatch.setattr(E, "run_all", lambda fn, tasks, jobs, **kw: pools.append(len(tasks)) or real_run_all(fn, tasks, jobs, **kw))
    together = cv_runs(ds, configs, cache=False)
    assert pools == [3 * cfg.folds]  # two feature groups, one pool of every fold
    later = itertools.count()
    monkeypatch.setattr(E, "_fold_cost", lambda c: next(later))  # every fold "costlier" than the one before: reversed
    one_by_one = {n: cv_runs(ds, {n: c}, cache=False)[n] for n, c in configs.items()}
    for n in configs:
        np.testing.assert_array_equal(together[n].probs, one_by_one[n].probs)
        assert together[n].folds.equals(one_by_one[n].folds)


def test_two_names_of_one_configuration_train_once_in_one_call(cv_setup):
    ds, feats, cfg, calls = cv_setup
    c = cfg.replace(model="late")
    runs = cv_runs(ds, {"late": c, "the same late": c, "ensemble": cfg.replace(model="late+concat")}, cache=False)
    assert calls["fit"] == 2 * cfg.folds  # late once (also the ensemble's member), concat once
    np.testing.assert_array_equal(runs["late"].probs, runs["the same late"].probs)
    np.testing.assert_array_equal(runs["ensemble"].member_probs["late"], runs["late"].probs)


def test_learning_curve_configs_cut_each_config_to_each_fraction_and_keep_the_full_size(cv_setup):
    ds, _, cfg, _ = cv_setup
    points = E.learning_curve_configs(ds, {"late": cfg.replace(model="late")}, (1 / 3, 2 / 3))
    assert list(points) == [("late", 10), ("late", 20), ("late", 30)]  # training parts of 30 rows
    assert [c.train_rows for c in points.values()] == [10, 20, 0]
    with pytest.raises(ConfigError, match="between 0 and 1"):
        E.learning_curve_configs(ds, {"late": cfg}, (0.5, 1.0))


def test_the_fold_cost_orders_the_heavy_trainings_first(tmp_path):
    cfg = small_config(tmp_path, model="late", epochs=3, train_rows=0)
    late, xattn = (E._fold_cost(cfg.replace(**c)) for c in ({}, {"model": "cross_attention"}))
    assert late < xattn
    assert E._fold_cost(cfg.replace(epochs=6)) == 2 * late  # epochs times rows
    assert E._fold_cost(cfg.replace(train_rows=400)) < late


# --------------------------------------------------------------------------- extra members
