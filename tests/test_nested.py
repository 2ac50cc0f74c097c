"""lab5.experiments.nested: the nested CV of the submitted procedure (bagged fold models against a refit)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from synthetic import small_config

import lab5.evaluation as E
import lab5.experiments.nested as N
from lab5.data import load_dataset
from lab5.evaluation import folds


def test_no_model_and_no_rule_of_the_nested_cv_sees_the_outer_fold_it_is_scored_on(dataset_factory, tmp_path,
                                                                                     patched_encoders, monkeypatch):
    ds = load_dataset(dataset_factory(n_train=45, n_test=3))
    cfg = small_config(tmp_path, data=ds.root, model="late+concat", epochs=2)
    trained = []  # the guids every model of the nested CV trained on: inner fold models and refits alike
    real_fit, real_refit_fit = E.fit, N.fit

    def spy(real):
        def fit(model, train, val, c):
            trained.append(set(train.guids))
            return real(model, train, val, c)
        return fit

    monkeypatch.setattr(E, "fit", spy(real_fit))
    monkeypatch.setattr(N, "fit", spy(real_refit_fit))
    table = N.nested_rows(ds, cfg)
    outer = folds(ds.train.label.to_numpy(), cfg.folds, cfg.fold_seed)
    assert len(table) == cfg.folds * len(N.PROCEDURES) * len(N.RULES)
    assert set(zip(table.procedure, table.rule)) == {(p, r) for p in N.PROCEDURES for r in N.RULES}
    per_fold = 2 * (cfg.folds + 1)  # each member: an inner CV of cfg.folds models, then one refit
    assert len(trained) == cfg.folds * per_fold
    for k, (tr, te) in enumerate(outer):
        scored = set(ds.train.guid.iloc[te])
        for seen in trained[k * per_fold:(k + 1) * per_fold]:
            assert seen and not seen & scored and seen <= set(ds.train.guid.iloc[tr])
    assert table.accuracy.between(0, 1).all() and (table.groupby("procedure").size() == 2 * cfg.folds).all()


def test_the_bagged_rows_are_the_inner_fold_models_mean_decided_by_the_inner_oof_rule(dataset_factory, tmp_path,
                                                                                       patched_encoders):
    from lab5.experiments.offsets import fit_offsets, with_offsets
    from lab5.metrics import metrics

    ds = load_dataset(dataset_factory(n_train=45, n_test=3))
    cfg = small_config(tmp_path, data=ds.root, model="late", epochs=2)
    table = N.nested_rows(ds, cfg).set_index(["fold", "procedure", "rule"])
    tr, te = folds(ds.train.label.to_numpy(), cfg.folds, cfg.fold_seed)[0]
    part = N.SimpleNamespace(train=ds.train.iloc[tr].reset_index(drop=True), test=ds.train.iloc[te].reset_index(drop=True))
    feats = E.load_features(ds, cfg)
    (inner,) = E.train_folds([(feats, {"late": cfg})], part)
    offsets = fit_offsets([np.asarray(inner["late"]["probs"])], part.train.label.to_numpy())
    bagged = [np.asarray(inner["late"]["test_probs"]["late"])]
    for rule, shift in (("mean", np.zeros(3)), ("mean+offsets", offsets)):  # both rules, from the same inner OOF rows
        want = metrics(part.test.label.to_numpy(), with_offsets(bagged, shift).argmax(1))
        assert table.loc[(0, "bagged", rule), "accuracy"] == pytest.approx(want["accuracy"])


def test_the_nested_command_writes_its_table_and_provenance_and_refuses_bad_seeds(dataset_factory, tmp_path,
                                                                                  patched_encoders, monkeypatch, capsys):
    root = dataset_factory(n_train=45, n_test=3)
    monkeypatch.setenv("LAB5_DATA", str(root))
    with pytest.raises(SystemExit) as e:
        N.main(["--seeds", "0,x"])
    assert e.value.code == 2 and "comma-separated seeds" in capsys.readouterr().err
    fake = pd.DataFrame([{"fold": 0, "procedure": p, "rule": r, "accuracy": 0.5, "macro_f1": 0.4}
                         for p in N.PROCEDURES for r in N.RULES])
    monkeypatch.setattr(N, "nested_rows", lambda ds, cfg: fake.assign(accuracy=0.5 + cfg.seed / 10))
    out = tmp_path / "t" / "nested.csv"
    out.parent.mkdir()
    assert N.main(["--seeds", "0,1", "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert sorted(table.seed.unique()) == [0, 1] and len(table) == 2 * len(fake)
    made = json.loads(out.with_suffix(".json").read_text())
    assert made["command"] == f"python -m lab5.experiments.nested --seeds 0,1 --out {out}"
    assert {"commit", "date", "cpu", "cores", "wall_s"} <= set(made)
    assert N.summary(table).loc[("bagged", "mean"), ("accuracy", "mean")] == pytest.approx(0.55)
