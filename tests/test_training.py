"""lab5.training: the loop (determinism, balancing, max_steps, early stopping), checkpoints, fine-tuning, no leaks."""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

import lab5.data
import lab5.training as T
from lab5.config import Config, ConfigError
from lab5.data import load_dataset
from lab5.models import MODELS

from conftest import GUIDS, LABELS_, make_features, small_config



def _data(feats, model="concat", guids=GUIDS, labels=LABELS_):
    return T.FeatureData(feats, guids, labels, sequences=MODELS[model].uses_sequences)


def _train(feats, tmp_path, **kw):
    cfg = small_config(tmp_path, **{"model": "concat", "epochs": 4, "batch_size": 8, **kw})
    model = T.new_classifier(cfg, feats.text.dim, feats.image.dim)
    return T.fit(model, _data(feats, cfg.model, GUIDS[:24], LABELS_[:24]), _data(feats, cfg.model, GUIDS[24:], LABELS_[24:]), cfg), cfg


# --------------------------------------------------------------------------- the loop
def test_fit_is_deterministic_given_a_seed(feats, tmp_path):
    a, _ = _train(feats, tmp_path, dropout=0.3)
    b, _ = _train(feats, tmp_path, dropout=0.3)
    pd.testing.assert_frame_equal(a.history, b.history)
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    c, _ = _train(feats, tmp_path, dropout=0.3, seed=1)
    assert not torch.equal(c.model.state_dict()["head.out.1.weight"], sa["head.out.1.weight"])


def test_history_has_one_row_per_epoch_with_validation_metrics(feats, tmp_path):
    res, cfg = _train(feats, tmp_path)
    assert list(res.history.epoch) == [1, 2, 3, 4]
    assert {"train_loss", "lr", "val_loss", "val_accuracy", "val_macro_f1"} <= set(res.history.columns)
    assert res.best_val_macro_f1 == res.history.val_macro_f1.max()
    assert res.history.set_index("epoch").val_macro_f1[res.best_epoch] == res.best_val_macro_f1
    assert not res.model.training


@pytest.mark.parametrize("balance", ["none", "weights", "sampler"])
def test_every_balance_mode_trains(feats, tmp_path, balance):
    res, _ = _train(feats, tmp_path, balance=balance)
    assert len(res.history) == 4 and np.isfinite(res.history.train_loss).all()


def test_unknown_balance_mode_is_a_config_error(feats, tmp_path):
    with pytest.raises(ConfigError, match="balance"):
        _train(feats, tmp_path, balance="oversample")


def test_class_weights_match_scikit_learn_balanced():
    from sklearn.utils.class_weight import compute_class_weight

    y = np.array([0] * 2 + [1] * 5 + [2] * 13)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=y)
    torch.testing.assert_close(T.class_weights(torch.tensor(y)), torch.tensor(expected, dtype=torch.float32))


def test_sampler_balances_the_classes_it_draws(tmp_path):
    class D:
        labels = torch.tensor([0] * 10 + [1] * 30 + [2] * 160)

        def __len__(self):
            return 200

    cfg = small_config(tmp_path, balance="sampler", batch_size=50)
    drawn = torch.cat(list(T._batches(D(), cfg, torch.Generator().manual_seed(0), shuffle=True)))
    assert len(drawn) == 200
    share = torch.bincount(D.labels[drawn], minlength=3).float() / 200
    assert bool((share > 0.2).all()), share  # each class about a third, against 5% / 15% / 80% in the data
    plain = torch.cat(list(T._batches(D(), cfg.replace(balance="none"), torch.Generator().manual_seed(0), shuffle=True)))
    assert sorted(plain.tolist()) == list(range(200))  # without the sampler: a permutation


def test_max_steps_stops_training_early(feats, tmp_path):
    cfg = small_config(tmp_path, model="concat", epochs=5, batch_size=4, max_steps=3)
    model = T.new_classifier(cfg, feats.text.dim, feats.image.dim)
    steps = []
    model.register_forward_hook(lambda m, i, o: steps.append(1) if m.training else None)
    res = T.fit(model, _data(feats), _data(feats, guids=GUIDS[:6], labels=LABELS_[:6]), cfg)
    assert len(steps) == 3  # 8 batches per epoch, 5 epochs: without max_steps 40 training steps
    assert len(res.history) == 1


def test_early_stopping_gives_up_after_patience_epochs_without_gain(feats, tmp_path):
    res, _ = _train(feats, tmp_path, lr=0.0, patience=2, epochs=10)  # lr 0: validation F1 never improves
    assert list(res.history.epoch) == [1, 2, 3]
    assert res.best_epoch == 1


def test_resolve_device_refuses_unknown_names():
    assert T.resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        T.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA"):
            T.resolve_device("cuda")


def test_tuned_decision_rule_stays_argmax_when_nothing_is_gained():
    logits = torch.tensor([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0]])
    assert torch.equal(T.tune_logit_bias(logits, torch.tensor([0, 1, 2])), torch.zeros(3))


def test_tuned_decision_rule_recovers_a_shifted_class():
    # neutral rows score just below positive: a +1 neutral offset fixes all of them
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.7, 1.0], [0.0, 0.6, 1.0], [0.0, 0.0, 2.0], [0.0, 0.0, 2.5]])
    bias = T.tune_logit_bias(logits, torch.tensor([0, 1, 1, 2, 2]))
    assert bias[2] == 0 and bias[1] > 0.4
    assert ((logits + bias).argmax(1) == torch.tensor([0, 1, 1, 2, 2])).all()


# --------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("model", ["concat", "cross_attention", "late"])
def test_checkpoint_round_trip_gives_identical_logits(feats, tmp_path, model):
    res, cfg = _train(feats, tmp_path, model=model, epochs=2, decision="tuned")
    path = tmp_path / "ck"
    T.save_checkpoint(path, res.model, cfg, T.model_meta(res.model, res))
    loaded, cfg2 = T.load_model(path)
    assert cfg2 == cfg
    assert torch.equal(loaded.logit_bias, res.model.logit_bias)
    data = _data(feats, model)
    assert torch.equal(T.predict_logits(loaded, data, cfg2), T.predict_logits(res.model, data, cfg))


def test_config_round_trips_through_a_dict():
    cfg = Config(model="gated", lr=3e-4, finetune=True)
    assert Config.from_dict({**cfg.to_dict(), "some_future_key": 1}) == cfg


def test_checkpoint_that_does_not_fit_its_model_is_a_config_error(feats, tmp_path):
    res, cfg = _train(feats, tmp_path, epochs=1)
    path = tmp_path / "ck"
    T.save_checkpoint(path, res.model, cfg.replace(model="gated"), T.model_meta(res.model, res))
    with pytest.raises(ConfigError, match="does not fit model 'gated'"):
        T.load_model(path)


def test_missing_or_truncated_checkpoint_is_a_config_error(feats, tmp_path):
    with pytest.raises(ConfigError, match="missing or damaged"):
        T.load_model(tmp_path / "nothing-here")
    res, cfg = _train(feats, tmp_path, epochs=1)
    path = tmp_path / "ck"
    T.save_checkpoint(path, res.model, cfg, T.model_meta(res.model, res))
    blob = (path / "model.pt").read_bytes()
    (path / "model.pt").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ConfigError, match=str(path)):
        T.load_model(path)


def test_garbage_model_file_is_a_config_error(feats, tmp_path):
    res, cfg = _train(feats, tmp_path, epochs=1)
    path = tmp_path / "ck"
    T.save_checkpoint(path, res.model, cfg, T.model_meta(res.model, res))
    (path / "model.pt").write_bytes(b"this is not a checkpoint")
    with pytest.raises(ConfigError, match="missing or damaged"):
        T.load_model(path)


# --------------------------------------------------------------------------- the split is shared, nothing leaks
def test_every_stage_trains_on_the_same_split_and_never_sees_a_val_guid(dataset_factory, tmp_path, monkeypatch):
    ds = load_dataset(dataset_factory(n_train=30, n_test=3))
    feats = make_features(list(ds.all.guid), list(ds.all.label))
    real_get_split = lab5.data.get_split
    splits, seen = [], []

    def spy_split(d, *a, **k):
        splits.append(real_get_split(d, *a, **k))
        return splits[-1]

    def spy_fit(model, train, val, cfg):
        seen.append((cfg.model, list(train.guids), list(val.guids), train, val))
        return T.TrainResult(model, pd.DataFrame(), 0, 0.0)

    monkeypatch.setattr(lab5.data, "get_split", spy_split)
    monkeypatch.setattr(T, "fit", spy_fit)
    cfg = small_config(tmp_path)
    for name in MODELS:
        T.train_model(cfg.replace(model=name), load_dataset(ds.root), feats)
    assert len(splits) == len(MODELS) and all(s is splits[0] for s in splits)
    split = splits[0]
    val = set(split.val)
    assert val and not val & set(split.train) and not val & set(ds.test.guid)
    for name, tr, va, train_data, val_data in seen:
        assert not val & set(tr), name
        assert tr == list(split.train) and va == list(split.val), name
        assert isinstance(train_data, T.FeatureData)
        labels = ds.train.set_index("guid").label
        assert train_data.labels.tolist() == labels.loc[tr].tolist()
        assert val_data.labels.tolist() == labels.loc[va].tolist()
    assert [s[0] for s in seen] == list(MODELS)


# --------------------------------------------------------------------------- fine-tuning end to end
def _independent_copy(enc):
    """A deep copy, so the session's shared encoders are never trained."""
    return copy.deepcopy(enc)


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory, minilm, effnet):
    """One optimiser step of --finetune through copies of the real MiniLM and EfficientNet (loaded once)."""
    import lab5.encoders
    from conftest import make_dataset

    tmp = tmp_path_factory.mktemp("finetune")
    root = make_dataset(tmp, n_train=4, n_test=1)
    ds = load_dataset(root)
    cfg = Config(data=root, cache=tmp / "cache", model="concat", finetune=True, max_steps=1, epochs=1,
                 batch_size=2, device="cpu", progress=False, max_length=16, lr=1e-2, encoder_lr=1e-3,
                 text_features="tokens", threads=1)
    steps = []
    real_step = torch.optim.AdamW.step

    def counting_step(self, *a, **k):
        steps.append(1)
        return real_step(self, *a, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lab5.encoders, "text_encoder", lambda name: _independent_copy(minilm))
        mp.setattr(lab5.encoders, "image_encoder", lambda name, size, seed: _independent_copy(effnet))
        mp.setattr(torch.optim.AdamW, "step", counting_step)
        res = T.train_model(cfg, ds, None, train_guids=list(ds.train.guid), val_guids=[])
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


def test_trainable_top_on_a_deep_copy_of_an_image_encoder_leaves_the_original_alone():
    from lab5.encoders import image_encoder

    enc = image_encoder("resnet50-scratch", image_size=64)
    dup = copy.deepcopy(enc)
    dup.trainable_top(1)
    assert all(p.requires_grad for p in enc.parameters())
    assert any(p.requires_grad for p in dup.parameters())
