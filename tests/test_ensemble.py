"""Ensembles (``--model late+gated``): members trained one by one, probabilities averaged, saved and reloaded."""
from __future__ import annotations

import pytest
import torch

import lab5.training as T
from lab5.config import ConfigError
from lab5.models import Ensemble, member_names, uses_sequences

from conftest import GUIDS, LABELS_, small_config


def _new(feats, cfg):
    return T.new_classifier(cfg, *feats.dims(), seq_dims=feats.seq_dims())


def test_a_plus_joined_model_name_builds_one_member_per_head(feats, tmp_path):
    model = _new(feats, small_config(tmp_path, model="late+cross_attention"))
    assert isinstance(model, Ensemble) and list(model.members) == ["late", "cross_attention"]
    assert uses_sequences("late+cross_attention") and not uses_sequences("late+gated")


@pytest.mark.parametrize("name, message", [("late+nope", "unknown model 'nope'"), ("late+late", "names a head twice")])
def test_bad_ensemble_names_are_config_errors(name, message):
    with pytest.raises(ConfigError, match=message):
        member_names(name)


def test_ensemble_output_is_the_log_of_the_members_mean_probability(feats, tmp_path):
    model = _new(feats, small_config(tmp_path, model="text+image")).eval()
    b = T.FeatureData(feats, GUIDS[:5], LABELS_[:5]).batch(torch.arange(5))
    with torch.no_grad():
        mean = (torch.softmax(model.members["text"](b), -1) + torch.softmax(model.members["image"](b), -1)) / 2
        torch.testing.assert_close(model(b), mean.log())


def test_fitting_an_ensemble_trains_every_member_with_its_own_early_stopping(feats, tmp_path):
    cfg = small_config(tmp_path, model="text+concat", epochs=3, decision="tuned")
    model = _new(feats, cfg)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    data = T.make_data(cfg, None, GUIDS[:24], LABELS_[:24], feats)
    val = T.make_data(cfg, None, GUIDS[24:], LABELS_[24:], feats)
    res = T.fit(model, data, val, cfg)
    assert set(res.history.member) == {"text", "concat"} and res.history.groupby("member").best.sum().tolist() == [1, 1]
    for name in ("text", "concat"):
        changed = [k for k, v in model.members[name].state_dict().items() if not torch.equal(v, start[f"members.{name}.{k}"])]
        assert changed, name
        assert torch.equal(model.members[name].logit_bias, torch.zeros(3))  # the rule is tuned on the average only
    assert 0.0 <= res.best_val_macro_f1 <= 1.0


def test_ensemble_checkpoint_round_trips_to_identical_logits(feats, tmp_path):
    cfg = small_config(tmp_path, model="late+cross_attention", epochs=2)
    model = _new(feats, cfg)
    data = T.make_data(cfg, None, GUIDS, LABELS_, feats)
    T.fit(model, data, None, cfg)
    model.logit_bias.fill_(0.25)
    T.save_checkpoint(tmp_path / "ck", model, cfg, T.model_meta(model))
    loaded, cfg2 = T.load_model(tmp_path / "ck")
    assert isinstance(loaded, Ensemble)
    assert torch.equal(T.predict_logits(loaded, data, cfg2), T.predict_logits(model, data, cfg))


def test_ensembles_refuse_end_to_end_finetuning(feats, tmp_path):
    with pytest.raises(ConfigError, match="ensembles train on cached features"):
        _new(feats, small_config(tmp_path, model="late+gated", finetune=True))


def test_an_ensemble_refuses_an_unknown_decision_rule(feats, tmp_path):
    cfg = small_config(tmp_path, model="text+image", decision="vote")
    with pytest.raises(ConfigError, match="unknown --decision 'vote'"):
        T.fit(_new(feats, cfg), T.make_data(cfg, None, GUIDS, LABELS_, feats), None, cfg)
