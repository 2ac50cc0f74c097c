"""lab5.training: the loop (determinism, a fixed number of epochs, scoped seeds and threads), the optimiser and
schedule, evaluation, predicted labels."""
from __future__ import annotations

import math
import random

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import f1_score
from synthetic import GUIDS, LABELS_, small_config
from torch import nn

import lab5.training as T
from lab5.batches import FeatureData
from lab5.heads import MODELS
from lab5.models import build_model


def _data(feats, model="concat", guids=GUIDS, labels=LABELS_):
    return FeatureData(feats, guids, labels, sequences=MODELS[model].uses_sequences)


def _train(feats, tmp_path, **kw):
    cfg = small_config(tmp_path, **{"model": "concat", "epochs": 4, "batch_size": 8, **kw})
    model = build_model(cfg, feats.dims())
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


def test_fit_leaves_the_thread_count_and_the_global_random_state_as_it_found_them(feats, tmp_path):
    threads = torch.get_num_threads()
    torch.manual_seed(42)
    state = torch.get_rng_state()
    np_state, py_state = np.random.get_state()[1].copy(), random.getstate()
    try:
        torch.set_num_threads(2)
        res, cfg = _train(feats, tmp_path, dropout=0.3)
        assert T.training_threads(cfg) == 1 and len(res.history) == 4
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(torch.get_rng_state(), state)
    assert np.array_equal(np.random.get_state()[1], np_state) and random.getstate() == py_state


def test_fit_does_not_depend_on_the_callers_random_state(feats, tmp_path):
    torch.manual_seed(1)
    a, _ = _train(feats, tmp_path, dropout=0.3)
    torch.manual_seed(2)
    b, _ = _train(feats, tmp_path, dropout=0.3)
    pd.testing.assert_frame_equal(a.history, b.history)


def test_history_has_one_row_per_epoch_with_validation_metrics(feats, tmp_path):
    res, _ = _train(feats, tmp_path)
    assert list(res.history.epoch) == [1, 2, 3, 4]
    assert {"train_loss", "lr", "val_loss", "val_accuracy", "val_macro_f1"} <= set(res.history.columns)
    assert res.val_macro_f1 == res.history.val_macro_f1.iloc[-1]  # after the last epoch
    assert res.val_macro_f1 > 0.9  # the synthetic features are separable
    assert not res.model.training


def test_the_last_epochs_weights_are_kept(feats, tmp_path):
    res, cfg = _train(feats, tmp_path, lr=3e-2, epochs=6, dropout=0.3)
    val = _data(feats, "concat", GUIDS[24:], LABELS_[24:])
    last = res.history.iloc[-1]
    assert T.evaluate(res.model, val, cfg.training_group) == {k: last[k] for k in ("val_loss", "val_accuracy", "val_macro_f1")}
    assert T.evaluate(res.model, val, cfg.training_group)["val_macro_f1"] == res.val_macro_f1


def test_training_lowers_the_loss_and_learns_the_separable_classes(feats, tmp_path):
    res, _ = _train(feats, tmp_path)
    assert len(res.history) == 4 and np.isfinite(res.history.train_loss).all()
    assert res.history.train_loss.iloc[-1] < res.history.train_loss.iloc[0]
    assert res.val_macro_f1 > 0.9


def test_training_runs_every_configured_epoch_even_without_gain(feats, tmp_path):
    res, _ = _train(feats, tmp_path, lr=1e-12, epochs=10)  # a vanishing lr: validation F1 never improves
    assert list(res.history.epoch) == list(range(1, 11))
    assert res.val_macro_f1 == res.history.val_macro_f1.iloc[-1]


def test_without_validation_rows_every_epoch_runs_and_the_validation_score_is_nan(feats, tmp_path):
    cfg = small_config(tmp_path, model="text", epochs=3)
    res = T.fit(build_model(cfg, feats.dims()), _data(feats, "text"), None, cfg)
    assert math.isnan(res.val_macro_f1) and "val_macro_f1" not in res.history and list(res.history.epoch) == [1, 2, 3]


def test_every_step_clips_the_gradient_norm_at_one(feats, tmp_path, monkeypatch):
    seen, real = [], nn.utils.clip_grad_norm_
    monkeypatch.setattr(T.nn.utils, "clip_grad_norm_", lambda params, max_norm, *a, **kw:
                        seen.append(max_norm) or real(params, max_norm, *a, **kw))
    _train(feats, tmp_path, epochs=2)  # 24 training rows in batches of 8: 3 steps an epoch
    assert T.CLIP == 1.0 and seen == [T.CLIP] * 6


def test_fine_tuning_trains_on_a_fixed_thread_count_and_heads_on_one(tmp_path):
    assert T.training_threads(small_config(tmp_path, model="concat")) == 1
    assert T.training_threads(small_config(tmp_path, model="concat", finetune=True)) == T.FINETUNE_THREADS == 2


# --------------------------------------------------------------------------- optimiser, schedule, modes
def test_schedule_warms_up_linearly_then_decays_to_zero_on_a_cosine():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = T.make_schedule(opt, 0.2, 10)  # 2 warm-up steps
    lrs = []
    for _ in range(10):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs[:3] == pytest.approx([0.5, 1.0, 1.0])
    assert lrs[2:] == pytest.approx([0.5 * (1 + math.cos(math.pi * s / 8)) for s in range(8)])
    assert sched.get_last_lr()[0] == pytest.approx(0.0, abs=1e-12)


def test_optimizer_decays_weight_matrices_only_and_gives_each_part_its_lr(feats, tmp_path):
    cfg = small_config(tmp_path, model="concat", lr=1e-3, weight_decay=0.05)
    model = build_model(cfg, feats.dims())
    model.head.t[0].weight.requires_grad_(False)  # frozen parameters are left out
    opt = T.make_optimizer(model, cfg.training_group)
    by_param = {id(p): g for g in opt.param_groups for p in g["params"]}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            assert id(p) not in by_param, name
            continue
        g = by_param[id(p)]
        assert g["lr"] == 1e-3
        assert g["weight_decay"] == (0.05 if p.ndim > 1 else 0.0), name
    assert sum(len(g["params"]) for g in opt.param_groups) == sum(p.requires_grad for p in model.parameters())


def test_train_mode_keeps_frozen_batchnorm_in_eval_mode():
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.BatchNorm1d(2))
    net[1].requires_grad_(False)
    net.eval()
    T.train_mode(net)
    assert net.training and net[0].training and not net[1].training and net[2].training


def test_evaluate_reports_loss_accuracy_and_macro_f1_of_the_argmax(feats, tmp_path):
    cfg = small_config(tmp_path, model="text")
    model = build_model(cfg, feats.dims()).eval()
    data = _data(feats, "text")
    logits = T.predict_logits(model, data, cfg.training_group)
    m = T.evaluate(model, data, cfg.training_group)
    pred, y = logits.argmax(1).numpy(), np.array(LABELS_)
    assert m["val_accuracy"] == pytest.approx((pred == y).mean())
    assert m["val_macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["val_loss"] == pytest.approx(float(nn.functional.cross_entropy(logits, torch.tensor(LABELS_))))


def test_predict_logits_keeps_the_data_order_and_is_batch_size_independent(feats, tmp_path):
    cfg = small_config(tmp_path, model="late")
    model = build_model(cfg, feats.dims())
    data = _data(feats, "late")
    full = T.predict_logits(model, data, cfg.training_group)
    assert full.shape == (30, 3)
    with torch.no_grad():
        one = model.eval()(data.batch(torch.tensor([7])))
    torch.testing.assert_close(full[7:8], one)
    assert T.predict_logits(model, _data(feats, "late", [], []), cfg.training_group).shape == (0, 3)


# --------------------------------------------------------------------------- predicted labels
def test_predict_labels_is_the_argmax_of_the_models_probabilities(feats, tmp_path):
    plain, cfg = _train(feats, tmp_path, epochs=2)
    val = _data(feats, "concat", GUIDS[24:], LABELS_[24:])
    probs = T.predict_logits(plain.model, val, cfg.training_group).softmax(1).numpy()
    assert np.array_equal(T.predict_labels(plain.model, val, cfg), probs.argmax(1))
