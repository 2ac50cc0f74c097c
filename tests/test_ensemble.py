"""Ensembles (``--model late+gated``): members trained one by one, probabilities averaged, saved and reloaded."""
from __future__ import annotations

import pytest
import torch
from sklearn.metrics import f1_score
from synthetic import GUIDS, LABELS_, small_config

from lab5.batches import FeatureData, make_data
from lab5.errors import ConfigError
from lab5.models import Ensemble, build_model, member_names, members_of, uses_sequences
from lab5.pipeline import load_model, save_checkpoint
from lab5.training import fit, predict_logits


def test_a_plus_joined_model_name_builds_one_member_per_head(feats, tmp_path):
    model = build_model(small_config(tmp_path, model="late+cross_attention"), feats.dims())
    assert isinstance(model, Ensemble) and list(model.members) == ["late", "cross_attention"]
    assert [type(m.head).__name__ for m in model.members.values()] == ["LateFusion", "CrossAttentionFusion"]
    assert model.dims == feats.dims()
    assert uses_sequences("late+cross_attention") and not uses_sequences("late+gated")


@pytest.mark.parametrize("name, message", [("late+nope", "unknown model 'nope'"), ("late+late", "names a head twice")])
def test_bad_ensemble_names_are_config_errors(name, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        member_names(name)
    with pytest.raises(ConfigError, match=message):
        small_config(tmp_path, model=name)


def test_ensemble_output_is_the_log_of_the_members_mean_probability(feats, tmp_path):
    model = build_model(small_config(tmp_path, model="text+image"), feats.dims()).eval()
    b = FeatureData(feats, GUIDS[:5], LABELS_[:5]).batch(torch.arange(5))
    with torch.no_grad():
        mean = (torch.softmax(model.members["text"](b), -1) + torch.softmax(model.members["image"](b), -1)) / 2
        torch.testing.assert_close(model({"minilm": b}), mean.log())


def test_fitting_an_ensemble_trains_every_member_for_the_epochs_asked(feats, tmp_path):
    cfg = small_config(tmp_path, model="text+concat", epochs=3)
    model = build_model(cfg, feats.dims())
    start = {k: v.clone() for k, v in model.state_dict().items()}
    data = make_data(cfg.model_group, None, GUIDS[:24], LABELS_[:24], feats)
    val = make_data(cfg.model_group, None, GUIDS[24:], LABELS_[24:], feats)
    res = fit(model, data, val, cfg)
    assert res.model is model and set(res.history.member) == {"text", "concat"}
    assert list(res.history.epoch) == [1, 2, 3, 1, 2, 3]
    for name in ("text", "concat"):
        changed = [k for k, v in model.members[name].state_dict().items() if not torch.equal(v, start[f"members.{name}.{k}"])]
        assert changed, name
    # the reported score is the macro-F1 of the averaged vote, high on separable data
    pred = predict_logits(model, val, cfg.training_group).argmax(1).numpy()
    assert res.val_macro_f1 == pytest.approx(f1_score(LABELS_[24:], pred, average="macro"))
    assert res.val_macro_f1 > 0.9


def test_ensemble_checkpoint_round_trips_to_identical_logits(feats, tmp_path):
    cfg = small_config(tmp_path, model="late+cross_attention", epochs=2)
    model = build_model(cfg, feats.dims())
    data = make_data(cfg.model_group, None, GUIDS, LABELS_, feats)
    res = fit(model, data, None, cfg)
    save_checkpoint(tmp_path / "ck", model, cfg, res)
    loaded, cfg2 = load_model(tmp_path / "ck")
    assert isinstance(loaded, Ensemble) and list(loaded.members) == ["late", "cross_attention"]
    assert torch.equal(predict_logits(loaded, data, cfg2.training_group), predict_logits(model, data, cfg.training_group))


def test_ensembles_refuse_end_to_end_finetuning(tmp_path):
    with pytest.raises(ConfigError, match="ensembles train on cached features"):
        small_config(tmp_path, model="late+gated", finetune=True)


# --------------------------------------------------------------------------- members on several text encoders
@pytest.fixture
def two_text_encoders(feats):
    """The synthetic features, plus a second text encoder ("other", 12 wide) whose features carry the labels too."""
    from synthetic import make_features

    from lab5.features import Features

    other = make_features(GUIDS, LABELS_, dt=12, seed=5).text
    return Features({"first": feats.text, "other": other}, feats.image)


def test_joined_text_encoders_give_every_head_a_member_on_each_reading_its_own_features(two_text_encoders, tmp_path):
    f = two_text_encoders
    cfg = small_config(tmp_path, model="late+cross_attention", text_encoder="first+other", epochs=2)
    dims = f.dims()
    assert dims["first"].text == 16 and dims["other"].text == 12
    model = build_model(cfg, dims)
    assert list(model.members) == ["late@first", "cross_attention@first", "late@other", "cross_attention@other"]
    assert {n: e for n, (_, e) in members_of(model).items()} == {
        "late@first": "first", "cross_attention@first": "first", "late@other": "other", "cross_attention@other": "other"}
    assert model.members["late@other"].dims == {"other": dims["other"]} and model.dims == dims
    data = make_data(cfg.model_group, None, GUIDS, LABELS_, f)
    b = data.batch(torch.arange(8))
    assert b["first"]["text_pooled"].shape[1] == 16 and b["other"]["text_pooled"].shape[1] == 12
    assert torch.equal(b["first"]["image_seq"], b["other"]["image_seq"])
    fit(model, data, None, cfg)  # a member fed the wrong encoder's 12- or 16-wide vectors would fail here
    assert members_of(model.members["late@first"]) == {}
    with torch.no_grad():
        p = torch.stack([torch.softmax(m(b[e]), -1) for m, e in members_of(model).values()]).mean(0)
        torch.testing.assert_close(model(b), torch.log(p))


def test_an_ensemble_over_text_encoders_round_trips_through_a_checkpoint(two_text_encoders, tmp_path):
    f = two_text_encoders
    cfg = small_config(tmp_path, model="late", text_encoder="first+other", epochs=1)
    model = build_model(cfg, f.dims())
    data = make_data(cfg.model_group, None, GUIDS, LABELS_, f)
    fit(model, data, None, cfg)
    save_checkpoint(tmp_path / "ck", model, cfg)
    again, _ = load_model(tmp_path / "ck")
    assert again.dims == model.dims == f.dims()
    torch.testing.assert_close(predict_logits(again, data, cfg.training_group), predict_logits(model, data, cfg.training_group), rtol=0, atol=0)
