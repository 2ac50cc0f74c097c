"""lab5.pipeline: training on the stored split (nothing leaks), predicting the test set, checkpoints, fine-tuning."""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import io
import json
import logging

import numpy as np
import pandas as pd
import pytest
import torch
from synthetic import GUIDS, LABELS_, jpeg_bytes, make_dataset, make_features, small_config

import lab5.encoders
import lab5.pipeline as P
from lab5.batches import FeatureData, make_data
from lab5.config import Config
from lab5.data import LABELS, load_dataset
from lab5.errors import ConfigError
from lab5.features import Dims, Features
from lab5.heads import MODELS
from lab5.models import Classifier, Ensemble, members_of, uses_sequences
from lab5.explain import read_predictions
from lab5.training import TrainResult, fit, predict_logits, training_threads


def _data(feats, model="concat", guids=GUIDS, labels=LABELS_):
    return FeatureData(feats, guids, labels, sequences=uses_sequences(model))


def _trained(feats, tmp_path, **kw):
    cfg = small_config(tmp_path, **{"model": "concat", "epochs": 2, **kw})
    model = P.new_model(cfg, feats)
    res = fit(model, _data(feats, cfg.model, GUIDS[:24], LABELS_[:24]), _data(feats, cfg.model, GUIDS[24:], LABELS_[24:]), cfg)
    return res, cfg


# --------------------------------------------------------------------------- the split is shared, nothing leaks
def test_every_stage_trains_on_the_same_split_and_never_sees_a_val_guid(dataset_factory, tmp_path, monkeypatch):
    ds = load_dataset(dataset_factory(n_train=30, n_test=3))
    feats = make_features(list(ds.all.guid), list(ds.all.label))
    real_get_split = P.get_split
    splits, seen = [], []

    def spy_split(d, *a, **k):
        splits.append(real_get_split(d, *a, **k))
        return splits[-1]

    def spy_fit(model, train, val, cfg):
        seen.append((cfg.model, list(train.guids), list(val.guids), train, val))
        return TrainResult(model, pd.DataFrame(), 0.0)

    monkeypatch.setattr(P, "get_split", spy_split)
    monkeypatch.setattr(P, "fit", spy_fit)
    cfg = small_config(tmp_path)
    for name in MODELS:
        P.train_model(cfg.replace(model=name), load_dataset(ds.root), feats)
    assert len(splits) == len(MODELS) and all(s == splits[0] for s in splits)
    split = splits[0]
    assert split.path == cfg.cache / "splits" / f"val-{ds.labels_fingerprint}.txt"
    val = set(split.val)
    assert val and not val & set(split.train) and not val & set(ds.test.guid)
    labels = ds.train.set_index("guid").label
    for name, tr, va, train_data, val_data in seen:
        assert not val & set(tr), name
        assert tr == list(split.train) and va == list(split.val), name
        assert isinstance(train_data, FeatureData)
        assert train_data.labels.tolist() == labels.loc[tr].tolist()
        assert val_data.labels.tolist() == labels.loc[va].tolist()
    assert [s[0] for s in seen] == list(MODELS)


def test_train_model_on_given_guids_does_not_touch_the_split(dataset_factory, tmp_path, monkeypatch):
    ds = load_dataset(dataset_factory(n_train=30, n_test=3))
    feats = make_features(list(ds.all.guid), list(ds.all.label))
    monkeypatch.setattr(P, "get_split", lambda *a, **k: pytest.fail("read the split although guids were given"))
    res = P.train_model(small_config(tmp_path, model="text"), ds, feats, train_guids=list(ds.train.guid), val_guids=[])
    assert len(res.history) == 3 and "val_macro_f1" not in res.history


# --------------------------------------------------------------------------- predicting the test set
def test_predict_test_bags_the_cv_fold_models_and_writes_the_test_files_order(dataset_factory, tmp_path,
                                                                             patched_encoders, monkeypatch):
    import lab5.evaluation as E

    root = dataset_factory(n_train=45, n_test=5)
    (root / "test_without_label.txt").write_text("guid,tag\n48,null\n46,null\n50,null\n47,null\n49,null\n")
    ds = load_dataset(root)
    cfg = small_config(tmp_path, data=root, model="late+concat", epochs=2)
    models, real_fit = [], E.fit

    def keep_fit(model, train, val, c):  # the CV's fold models: each member trained alone, fold by fold (jobs=1)
        models.append((c.model, model))
        return real_fit(model, train, val, c)

    monkeypatch.setattr(E, "fit", keep_fit)
    monkeypatch.setattr(P, "fit", lambda *a, **k: pytest.fail("trained a model on all rows"))
    out = tmp_path / "pred" / "test_with_label.txt"
    tags = P.predict_test(cfg, ds, out=out)
    assert list(tags) == ["48", "46", "50", "47", "49"] and set(tags.values()) <= {"positive", "neutral", "negative"}
    assert read_predictions(out).to_dict("list") == {"guid": list(tags), "tag": list(tags.values())}
    # the fold models' mean test probabilities, decided by the argmax of the members' mean
    feats = P.load_features(ds, cfg)
    test = make_data(cfg.model_group, ds, list(ds.test.guid), None, feats)
    bagged = [np.mean([predict_logits(m, test.views["minilm"], cfg.training_group).softmax(1).numpy() for h2, m in models if h2 == h], 0)
              for h in ("late", "concat")]
    want = np.mean(bagged, 0).argmax(1)
    assert len(models) == 2 * cfg.folds and list(tags.values()) == [LABELS[k] for k in want]
    assert not (cfg.cache / "splits").exists()  # nothing held out: no split drawn


def test_predict_test_with_a_model_uses_it_and_trains_nothing(dataset_factory, tmp_path, patched_encoders, monkeypatch):
    root = dataset_factory(n_train=18, n_test=5)
    ds = load_dataset(root)
    cfg = small_config(tmp_path, data=root, model="text")
    feats = P.load_features(ds, cfg)
    model = P.train_model(cfg, ds, feats).model
    monkeypatch.setattr(P, "train_model", lambda *a, **k: pytest.fail("trained although a model was given"))
    test = make_data(cfg.model_group, ds, list(ds.test.guid), None, feats, model)
    want = predict_logits(model, test, cfg.training_group).argmax(1).tolist()
    assert P.predict_test(cfg, ds, model) == {g: LABELS[k] for g, k in zip(ds.test.guid, want)}
    assert not (tmp_path / "out").exists()  # nothing written without ``out``


def test_predict_with_an_ensemble_model_decides_by_its_members_mean_and_runs_no_cross_validation(
        dataset_factory, tmp_path, patched_encoders, monkeypatch):
    ds = load_dataset(dataset_factory(n_train=45, n_test=6))
    cfg = small_config(tmp_path, data=ds.root, model="late+concat", epochs=2)
    feats = P.load_features(ds, cfg)
    model = P.train_model(cfg, ds, feats, list(ds.train.guid), []).model
    monkeypatch.setattr(P, "cv_runs", lambda *a, **k: pytest.fail("ran a CV"))
    tags = P.predict_test(cfg, ds, model)
    test = make_data(cfg.model_group, ds, list(ds.test.guid), None, feats, model)
    members = [predict_logits(m, test.views["minilm"], cfg.training_group).softmax(1).numpy() for m in model.members.values()]
    assert list(tags.values()) == [LABELS[k] for k in np.mean(members, 0).argmax(1)]


# --------------------------------------------------------------------------- trainings are cached
def _setup(dataset_factory, tmp_path, **kw):
    ds = load_dataset(dataset_factory(n_train=30, n_test=3))
    feats = make_features(list(ds.all.guid), list(ds.all.label))
    return ds, feats, small_config(tmp_path, data=ds.root, **{"model": "concat", "epochs": 2, **kw})


@pytest.fixture
def fits(monkeypatch):
    """The configs ``lab5.pipeline.fit`` was called with: one per training actually run."""
    calls, real = [], P.fit

    def spy(model, train, val, cfg):
        calls.append(cfg)
        return real(model, train, val, cfg)

    monkeypatch.setattr(P, "fit", spy)
    return calls


def _logits(res, cfg, ds, feats):
    return predict_logits(res.model, make_data(cfg.model_group, ds, list(ds.all.guid), None, feats, res.model), cfg.training_group)


def _same(a, b, cfg, ds, feats):
    """Two trainings agree: bit-identical logits, equal history and validation macro-F1."""
    assert torch.equal(_logits(a, cfg, ds, feats), _logits(b, cfg, ds, feats))
    pd.testing.assert_frame_equal(a.history, b.history)
    assert a.val_macro_f1 == b.val_macro_f1 or (a.val_macro_f1 != a.val_macro_f1
                                                and b.val_macro_f1 != b.val_macro_f1)  # both NaN


def test_a_second_identical_training_trains_nothing_and_gives_the_same_model(dataset_factory, tmp_path, monkeypatch):
    ds, feats, cfg = _setup(dataset_factory, tmp_path)
    first = P.train_model(cfg, ds, feats)
    (entry,) = (cfg.cache / "train").glob("*.pt")
    assert sorted(p.suffix for p in entry.parent.iterdir()) == [".json", ".pt"]
    assert "val_macro_f1" in first.history
    monkeypatch.setattr(P, "fit", lambda *a, **k: pytest.fail("trained again although the training is cached"))
    again = P.train_model(cfg, load_dataset(ds.root), feats)
    assert again.model is not first.model and not again.model.training
    _same(again, first, cfg, ds, feats)
    untrained = TrainResult(P.new_model(cfg, feats), first.history, 0.0)
    assert not torch.equal(_logits(untrained, cfg, ds, feats), _logits(again, cfg, ds, feats))  # the weights were loaded


def _relabelled(ds):
    """The same dataset folder with the first training row's label changed."""
    lines = (ds.root / "train.txt").read_text().splitlines()
    guid, tag = lines[1].split(",")
    lines[1] = f"{guid},{ {'positive': 'negative', 'negative': 'neutral', 'neutral': 'positive'}[tag]}"
    (ds.root / "train.txt").write_text("\n".join(lines) + "\n")
    return load_dataset(ds.root)


@pytest.mark.parametrize("change, retrains", [
    ("lr", True), ("seed", True), ("epochs", True), ("train guids", True), ("val guids", True), ("a label", True),
    ("features", True), ("progress", False), ("jobs", False), ("out_dir", False), ("data", False)])
def test_a_training_is_redone_exactly_when_something_it_depends_on_changes(dataset_factory, tmp_path, fits, change,
                                                                           retrains):
    ds, feats, cfg = _setup(dataset_factory, tmp_path)
    train, val = list(ds.train.guid[:24]), list(ds.train.guid[24:])
    P.train_model(cfg, ds, feats, train, val)
    assert len(fits) == 1
    args = {"cfg": cfg, "ds": ds, "features": feats, "train_guids": train, "val_guids": val}
    if change in ("lr", "seed", "epochs", "progress", "jobs", "out_dir", "data"):
        value = {"lr": 1e-2, "seed": 1, "epochs": 3, "progress": not cfg.progress, "jobs": cfg.jobs + 1, "out_dir": tmp_path / "elsewhere",
                 "data": tmp_path / "a-copy"}[change]
        assert getattr(cfg, change) != value
        args["cfg"] = cfg.replace(**{change: value})
    elif change == "train guids":
        args["train_guids"] = train[1:]
    elif change == "val guids":
        args["val_guids"] = val[1:]
    elif change == "a label":
        args["ds"] = _relabelled(ds)
    else:
        args["features"] = Features({"minilm": dataclasses.replace(feats.text, key="other-text")}, feats.image)
    P.train_model(**args)
    assert len(fits) == (2 if retrains else 1)
    P.train_model(**args)  # and the new training is cached in turn
    assert len(fits) == (2 if retrains else 1)


def test_each_text_encoders_features_are_part_of_the_key(dataset_factory, tmp_path, fits):
    ds, feats, cfg = _setup(dataset_factory, tmp_path, model="late", text_encoder="minilm+mpnet")
    two = Features({"minilm": feats.text, "mpnet": dataclasses.replace(feats.text, key="fake-mpnet")}, feats.image)
    P.train_model(cfg, ds, two)
    P.train_model(cfg, ds, Features({"minilm": feats.text, "mpnet": dataclasses.replace(feats.text, key="other")}, feats.image))
    P.train_model(cfg, ds, two)
    assert len(fits) == 2


def _damage(entry, how, other):
    meta = json.loads(entry.with_suffix(".json").read_text())
    blob = entry.read_bytes()
    if how == "truncated model.pt":
        entry.write_bytes(blob[: len(blob) // 2])
    elif how == "foreign model.pt":
        entry.write_bytes(b"this is not a state dict")
    elif how == "a flipped weight byte":  # torch itself loads it without a complaint: the checksum tells
        w = max(torch.load(io.BytesIO(blob), weights_only=True).values(), key=torch.Tensor.numel)
        start = blob.find(w.contiguous().numpy().tobytes()[:64])
        assert start >= 0
        at = start + 3  # the exponent byte of its first weight
        entry.write_bytes(blob[:at] + bytes([blob[at] ^ 0x40]) + blob[at + 1:])
    elif how == "missing model.pt":
        entry.unlink()
    elif how == "unreadable result.json":
        entry.with_suffix(".json").write_text("{")
    elif how == "missing result.json":
        entry.with_suffix(".json").unlink()
    elif how == "no history":
        entry.with_suffix(".json").write_text(json.dumps({k: v for k, v in meta.items() if k != "history"}))
    elif how == "other dims":
        entry.with_suffix(".json").write_text(json.dumps({**meta, "dims": {**meta["dims"], "text": 99}}))
    else:  # a sound state dict, with a matching checksum, of a model that does not fit
        buf = io.BytesIO()
        torch.save(other.state_dict(), buf)
        entry.write_bytes(buf.getvalue())
        entry.with_suffix(".json").write_text(json.dumps({**meta, "sha256": hashlib.sha256(buf.getvalue()).hexdigest()}))


@pytest.mark.parametrize("how", ["truncated model.pt", "foreign model.pt", "a flipped weight byte", "missing model.pt",
                                 "unreadable result.json", "missing result.json", "no history", "other dims",
                                 "weights that do not fit"])
def test_a_damaged_cached_training_is_trained_again_with_a_warning(dataset_factory, tmp_path, fits, caplog, how):
    ds, feats, cfg = _setup(dataset_factory, tmp_path)
    first = P.train_model(cfg, ds, feats)
    (entry,) = (cfg.cache / "train").glob("*.pt")
    _damage(entry, how, P.new_model(cfg.replace(model="gated"), feats))
    with caplog.at_level(logging.WARNING, logger="lab5"):
        again = P.train_model(cfg, ds, feats)
    assert len(fits) == 2
    assert any(r.levelno == logging.WARNING and str(entry) in r.getMessage() for r in caplog.records)
    _same(again, first, cfg, ds, feats)
    third = P.train_model(cfg, ds, feats)  # the entry was overwritten: read, not trained
    assert len(fits) == 2
    _same(third, first, cfg, ds, feats)


def test_a_load_that_fails_half_way_trains_a_fresh_model(dataset_factory, tmp_path, fits, monkeypatch):
    ds, feats, cfg = _setup(dataset_factory, tmp_path)
    first = P.train_model(cfg, ds, feats)

    real, failed = torch.nn.Module.load_state_dict, []

    def half_way(self, state, *a, **k):  # the first load (the cached training's) writes into the model, then fails
        if failed:
            return real(self, state, *a, **k)
        failed.append(1)
        with torch.no_grad():
            next(self.parameters()).fill_(1e3)
        raise RuntimeError("failed half-way")

    monkeypatch.setattr(torch.nn.Module, "load_state_dict", half_way)
    again = P.train_model(cfg, ds, feats)
    assert failed and len(fits) == 2
    _same(again, first, cfg, ds, feats)  # trained from a fresh initialisation, not from the half-loaded weights


def test_without_the_cache_nothing_is_read_or_written(dataset_factory, tmp_path, fits):
    ds, feats, cfg = _setup(dataset_factory, tmp_path)
    P.train_model(cfg, ds, feats, cache=False)
    assert not (cfg.cache / "train").exists()
    P.train_model(cfg, ds, feats)
    P.train_model(cfg, ds, feats, cache=False)  # trains although a cached training is there
    assert len(fits) == 3 and len(list((cfg.cache / "train").glob("*.pt"))) == 1


@pytest.mark.parametrize("model, text_encoder", [("gated+late", "minilm"), ("late", "minilm+mpnet")])
def test_an_ensemble_round_trips_through_the_cache(dataset_factory, tmp_path, fits, model, text_encoder):
    ds, feats, cfg = _setup(dataset_factory, tmp_path, model=model, text_encoder=text_encoder)
    if "+" in text_encoder:
        feats = Features({"minilm": feats.text, "mpnet": dataclasses.replace(feats.text, key="fake-mpnet")}, feats.image)
    first = P.train_model(cfg, ds, feats)
    again = P.train_model(cfg, ds, feats)
    assert len(fits) == 1 and isinstance(again.model, Ensemble) and again.model.dims == first.model.dims
    per_member = again.history.groupby("member").epoch.apply(list)  # one row per member and epoch
    assert sorted(per_member.index) == sorted(members_of(again.model)) and all(e == [1, 2] for e in per_member)
    _same(again, first, cfg, ds, feats)


def test_predict_test_reads_its_fold_models_test_probabilities_from_the_cv_cache(dataset_factory, tmp_path,
                                                                                 patched_encoders, monkeypatch):
    import lab5.evaluation as E

    ds = load_dataset(dataset_factory(n_train=45, n_test=5))
    cfg = small_config(tmp_path, data=ds.root, model="late", epochs=2)
    tags = P.predict_test(cfg, ds)
    monkeypatch.setattr(E, "fit", lambda *a, **k: pytest.fail("trained again although the CV was cached"))
    assert P.predict_test(cfg, ds) == tags


def test_a_finetuned_training_is_cached_and_keyed_by_the_pairs(dataset_factory, tmp_path, encoder_copies, fits):
    root = dataset_factory(n_train=8, n_test=2)
    ds = load_dataset(root)
    cfg = small_config(tmp_path, data=root, model="concat", finetune=True, finetune_layers=0, epochs=1, batch_size=4,
                       lr=1e-2, encoder_lr=1e-2)  # two optimiser steps over the eight rows
    rows = (list(ds.train.guid), [])
    first = P.train_model(cfg, ds, None, *rows)
    again = P.train_model(cfg, ds, None, *rows)
    assert len(fits) == 1
    data = make_data(cfg.model_group, ds, list(ds.all.guid), None, None, again.model)
    two = cfg.training_group, training_threads(cfg)  # fine-tuned models predict on two threads
    assert torch.equal(predict_logits(again.model, data, *two), predict_logits(first.model, data, *two))
    ds.image_path(ds.train.guid[0]).write_bytes(jpeg_bytes(noise=1))  # another image: the encoders see other pixels
    P.train_model(cfg, load_dataset(root), None, *rows)
    assert len(fits) == 2


# --------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("model", ["concat", "cross_attention", "late"])
def test_checkpoint_round_trip_gives_identical_logits(feats, tmp_path, model):
    res, cfg = _trained(feats, tmp_path, model=model)
    path = tmp_path / "ck"
    P.save_checkpoint(path, res.model, cfg, res)
    loaded, cfg2 = P.load_model(path)
    assert cfg2 == cfg
    assert loaded.dims == res.model.dims == feats.dims()
    data = _data(feats, model)
    assert torch.equal(predict_logits(loaded, data, cfg2.training_group), predict_logits(res.model, data, cfg.training_group))


def test_checkpoint_records_config_dims_and_the_validation_macro_f1(feats, tmp_path):
    res, cfg = _trained(feats, tmp_path)
    P.save_checkpoint(tmp_path / "ck", res.model, cfg, res)
    meta = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert meta["config"] == cfg.to_dict()
    assert meta["dims"] == {"minilm": {"text": 16, "image": 8, "text_seq": 16, "image_seq": 8}}
    assert meta["val_macro_f1"] == res.val_macro_f1 == res.history.val_macro_f1.iloc[-1]
    assert "decision" not in meta  # the plain mean decides: no rule to store
    P.save_checkpoint(tmp_path / "bare", res.model, cfg)
    assert "val_macro_f1" not in json.loads((tmp_path / "bare" / "config.json").read_text())


def test_load_model_applies_overrides(feats, tmp_path):
    res, cfg = _trained(feats, tmp_path)
    P.save_checkpoint(tmp_path / "ck", res.model, cfg, res)
    _, cfg2 = P.load_model(tmp_path / "ck", cache=tmp_path / "elsewhere", progress=True, device="cpu")
    assert cfg2 == cfg.replace(cache=tmp_path / "elsewhere", progress=True)
    with pytest.raises(ConfigError, match="unknown --device 'tpu'"):
        P.load_model(tmp_path / "ck", device="tpu")


def test_checkpoint_that_does_not_fit_its_model_is_a_config_error(feats, tmp_path):
    res, cfg = _trained(feats, tmp_path, epochs=1)
    path = tmp_path / "ck"
    P.save_checkpoint(path, res.model, cfg.replace(model="gated"), res)
    with pytest.raises(ConfigError, match="does not fit model 'gated'"):
        P.load_model(path)


def test_missing_or_truncated_checkpoint_is_a_config_error(feats, tmp_path):
    with pytest.raises(ConfigError, match="missing or damaged"):
        P.load_model(tmp_path / "nothing-here")
    res, cfg = _trained(feats, tmp_path, epochs=1)
    path = tmp_path / "ck"
    P.save_checkpoint(path, res.model, cfg, res)
    blob = (path / "model.pt").read_bytes()
    (path / "model.pt").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ConfigError, match=f"checkpoint {path} is missing or damaged"):
        P.load_model(path)


@pytest.mark.parametrize("damage", ["garbage model", "no dims", "dims not by text encoder", "bad json",
                                    "bad value"])
def test_damaged_checkpoint_is_a_config_error(feats, tmp_path, damage):
    res, cfg = _trained(feats, tmp_path, epochs=1)
    path = tmp_path / "ck"
    P.save_checkpoint(path, res.model, cfg, res)
    meta = json.loads((path / "config.json").read_text())
    if damage == "garbage model":
        (path / "model.pt").write_bytes(b"this is not a checkpoint")
    elif damage == "no dims":
        (path / "config.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "dims"}))
    elif damage == "dims not by text encoder":  # one Dims, as checkpoints once held: no longer read
        (path / "config.json").write_text(json.dumps({**meta, "dims": meta["dims"]["minilm"]}))
    elif damage == "bad json":
        (path / "config.json").write_text("{")
    else:
        (path / "config.json").write_text(json.dumps({**meta, "config": {**meta["config"], "epochs": 0}}))
    with pytest.raises(ConfigError, match="--epochs must be at least 1" if damage == "bad value" else "missing or damaged"):
        P.load_model(path)


@pytest.mark.parametrize("meta_change", [{"format": None}, {"format": 1}, {"format": 2}])
def test_a_checkpoint_of_another_format_is_refused_rather_than_read_with_other_defaults(feats, tmp_path, meta_change):
    res, cfg = _trained(feats, tmp_path, epochs=1)
    path = tmp_path / "ck"
    P.save_checkpoint(path, res.model, cfg, res)
    meta = json.loads((path / "config.json").read_text())
    assert meta["format"] == P.CHECKPOINT_FORMAT
    old = {**meta, "config": {**meta["config"], "heads": 2, "text_clean": "tweet"}}  # options an older lab5 had
    old = {k: v for k, v in {**old, **meta_change}.items() if v is not None}
    (path / "config.json").write_text(json.dumps(old))
    with pytest.raises(ConfigError, match=f"checkpoint {path} was saved by another version of lab5 .*train it again"):
        P.load_model(path)


# --------------------------------------------------------------------------- encoders: patched, loaded, fine-tuned
def test_patched_encoders_reach_load_encoders_through_the_encoders_module(tmp_path, patched_encoders, tiny_text, tiny_image):
    """``load_encoders`` calls lab5.encoders' functions through the module: the fixture that patches the module
    reaches it."""
    t, i = P.load_encoders(small_config(tmp_path, model="concat", finetune=True, finetune_layers=0))
    assert (t, i) == (tiny_text, tiny_image)
    assert patched_encoders == {"text": 1, "image": 1}


@pytest.fixture
def encoder_copies(monkeypatch, tiny_text, tiny_image):
    """Fresh copies of the tiny encoders on each call, so that fine-tuning never trains the shared ones."""
    monkeypatch.setattr(lab5.encoders, "text_encoder", lambda name="minilm", cache=None: copy.deepcopy(tiny_text))
    monkeypatch.setattr(lab5.encoders, "image_encoder", lambda name="x", size=224, seed=0: copy.deepcopy(tiny_image))


def test_new_model_when_finetuning_attaches_encoders_frozen_but_for_their_top(tmp_path, encoder_copies):
    cfg = small_config(tmp_path, model="concat", finetune=True, finetune_layers=1)
    model = P.new_model(cfg)
    assert isinstance(model, Classifier) and model.dims == {"minilm": Dims(16, 12, 16, 12)}
    text_trainable = {n.split(".")[3] for n, p in model.text_encoder.named_parameters() if p.requires_grad}
    assert text_trainable == {"1"}  # the top one of the two layers
    assert [n for n, p in model.image_encoder.named_parameters() if p.requires_grad] == ["body.3.weight", "body.3.bias"]


def test_finetuned_checkpoint_round_trips_to_identical_logits(dataset_factory, tmp_path, encoder_copies, tiny_text):
    root = dataset_factory(n_train=8, n_test=2)
    ds = load_dataset(root)
    cfg = small_config(tmp_path, data=root, model="concat", finetune=True, finetune_layers=0, epochs=1, batch_size=4,
                       lr=1e-2, encoder_lr=1e-2)  # two optimiser steps over the eight rows
    res = P.train_model(cfg, ds, None, train_guids=list(ds.train.guid), val_guids=[])
    assert not torch.equal(res.model.text_encoder.model.encoder.layer[0].output.dense.weight,
                           tiny_text.model.encoder.layer[0].output.dense.weight)  # trained, and only the copy
    P.save_checkpoint(tmp_path / "ck", res.model, cfg, res)
    loaded, cfg2 = P.load_model(tmp_path / "ck")
    data = make_data(cfg2.model_group, ds, list(ds.all.guid), None, None, loaded)
    two = training_threads(cfg2)  # fine-tuned models predict on two threads
    assert torch.equal(predict_logits(loaded, data, cfg2.training_group, two), predict_logits(res.model, data, cfg.training_group, two))


def test_predict_test_when_finetuning_trains_on_every_labelled_row(dataset_factory, tmp_path, encoder_copies,
                                                                    monkeypatch):
    root = dataset_factory(n_train=8, n_test=3)
    ds = load_dataset(root)
    cfg = small_config(tmp_path, data=root, model="concat", finetune=True, finetune_layers=0, epochs=1, batch_size=4)
    seen, real = [], P.train_model

    def spy(c, d, features=None, train_guids=None, val_guids=None, **k):
        seen.append((train_guids, val_guids))
        return real(c, d, features, train_guids, val_guids, **k)

    monkeypatch.setattr(P, "train_model", spy)
    monkeypatch.setattr(P, "cv_runs", lambda *a, **k: pytest.fail("ran a CV"))
    tags = P.predict_test(cfg, ds)
    assert seen == [(list(ds.train.guid), [])]  # nothing held out
    assert list(tags) == list(ds.test.guid) and set(tags.values()) <= set(LABELS)
    assert not (cfg.cache / "splits").exists()  # no split drawn


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory, minilm, effnet):
    """One optimiser step of --finetune (one epoch of one batch of the four rows) through copies of the real MiniLM and
    EfficientNet (loaded once)."""
    tmp = tmp_path_factory.mktemp("finetune")
    root = make_dataset(tmp, n_train=4, n_test=1)
    ds = load_dataset(root)
    cfg = Config(data=root, cache=tmp / "cache", out_dir=tmp / "out", model="concat", finetune=True,
                 epochs=1, batch_size=4, device="cpu", progress=False, max_length=16, lr=1e-2, encoder_lr=1e-3,
                 text_features="tokens", text_encoder="minilm")
    steps = []
    real_step = torch.optim.AdamW.step

    def counting_step(self, *a, **k):
        steps.append(1)
        return real_step(self, *a, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lab5.encoders, "text_encoder", lambda name, cache=None: copy.deepcopy(minilm))
        mp.setattr(lab5.encoders, "image_encoder", lambda name, size, seed: copy.deepcopy(effnet))
        mp.setattr(torch.optim.AdamW, "step", counting_step)
        res = P.train_model(cfg, ds, None, train_guids=list(ds.train.guid), val_guids=[])
    return res, steps


def _diff(model, reference):
    ref = dict(reference.named_parameters())
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), ref[n].detach())}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    return changed, trainable


def test_finetune_runs_one_step_and_updates_only_the_top_encoder_layers(finetuned, minilm, effnet):
    res, steps = finetuned
    assert steps == [1] and len(res.history) == 1
    model = res.model
    assert model.text_encoder is not None and model.image_encoder is not None
    changed, trainable = _diff(model.text_encoder, minilm)
    assert trainable == {n for n, _ in minilm.named_parameters() if n.startswith(("model.encoder.layer.4.", "model.encoder.layer.5."))}
    assert changed and changed <= trainable  # frozen text weights are bit-identical
    assert any(n.startswith("model.encoder.layer.5.") for n in changed)
    changed, trainable = _diff(model.image_encoder, effnet)
    assert changed and changed <= trainable
    assert not any(n.startswith(("body._conv_stem", "body._blocks.0.")) for n in trainable)


def test_finetune_leaves_frozen_cnn_blocks_batchnorm_statistics_unchanged(finetuned, effnet):
    res, _ = finetuned
    frozen = [n for n, m in effnet.named_modules() if isinstance(m, torch.nn.BatchNorm2d)
              and not any(p.requires_grad for p in res.model.image_encoder.get_submodule(n).parameters())]
    assert frozen
    after = res.model.image_encoder
    for n in frozen:
        assert torch.equal(after.get_submodule(n).running_mean, effnet.get_submodule(n).running_mean), n


def test_predict_by_bagging_refuses_a_dataset_too_small_for_its_cv_before_any_work(dataset_factory, tmp_path, monkeypatch):
    from lab5.errors import DataError

    ds = load_dataset(dataset_factory(n_train=12, n_test=3))
    monkeypatch.setattr(P, "load_features", lambda *a, **k: pytest.fail("features were loaded"))
    with pytest.raises(DataError, match="too few for 5-fold cross-validation"):
        P.predict_test(small_config(tmp_path, folds=5), ds)


def test_predict_test_refuses_a_dataset_without_test_rows_before_any_training(dataset_factory, tmp_path,
                                                                             patched_encoders, monkeypatch):
    import lab5.evaluation as E
    from lab5.errors import DataError

    ds = load_dataset(dataset_factory(n_train=45, n_test=0))
    cfg = small_config(tmp_path, data=ds.root, model="late", epochs=1)
    monkeypatch.setattr(E, "fit", lambda *a, **k: pytest.fail("trained although there is nothing to predict"))
    with pytest.raises(DataError, match="no test rows"):
        P.predict_test(cfg, ds)
