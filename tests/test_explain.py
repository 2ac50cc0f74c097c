"""lab5.explain: attention maps and gate values read from trained heads, and errors sorted into kinds."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from synthetic import jpeg_bytes, small_config
from torchvision import transforms as T

from lab5 import load_dataset
from lab5.batches import make_data
from lab5.data import LABELS
from lab5.decisions import expected_calibration_error
from lab5.encoders import REGION_GRID
from lab5.errors import ConfigError
from lab5.metrics import metrics
from lab5.explain import (
    ERROR_KINDS,
    cross_attention,
    display_crops,
    error_kinds,
    gallery_rows,
    kind_counts,
    gate_text_share,
    late_text_weight,
    late_text_weight_at_start,
    mean_region_attention,
    misses_by_class,
    oof_scores,
    per_class_scores,
    region_attention_spread,
)
from lab5.features import encode_images, load_features
from lab5.models import build_model
from lab5.pipeline import train_model


@pytest.fixture
def trained(dataset_factory, tmp_path, patched_encoders):
    """A synthetic dataset, its features from the tiny encoders, and a config to train on them."""
    ds = load_dataset(dataset_factory(n_train=24, n_test=3))
    cfg = small_config(tmp_path, epochs=1)
    return ds, cfg, load_features(ds, cfg)


def test_cross_attention_maps_are_distributions_over_the_texts_own_tokens_and_the_region_grid(trained, minilm):
    ds, cfg, feats = trained
    c = cfg.replace(model="cross_attention")
    model = train_model(c, ds, feats, list(ds.train.guid), []).model
    guids = list(ds.train.guid[:4])
    maps = cross_attention(model, c, ds, guids, feats)
    assert [m.guid for m in maps] == guids
    for m, text in zip(maps, ds.train.text[:4]):
        assert m.tokens == ["[CLS]", *minilm.tokenizer.tokenize(text)[:c.max_length - 2], "[SEP]"]
        assert m.token_weight.shape == (len(m.tokens),) and m.token_weight.sum() == pytest.approx(1, abs=1e-5)
        assert m.region_weight.shape == (REGION_GRID, REGION_GRID) and m.region_weight.sum() == pytest.approx(1, abs=1e-5)
    mean = mean_region_attention(model, c, ds, guids, feats)
    np.testing.assert_allclose(mean, np.mean([m.region_weight for m in maps], axis=0), atol=1e-6)


def test_the_gate_share_is_a_fraction_per_row_and_other_heads_are_refused(trained):
    ds, cfg, feats = trained
    c = cfg.replace(model="gated")
    model = train_model(c, ds, feats, list(ds.train.guid), []).model
    share = gate_text_share(model, c, ds, list(ds.train.guid), feats)
    assert share.shape == (len(ds.train),) and ((share > 0) & (share < 1)).all()
    with pytest.raises(ConfigError, match="expected a trained CrossAttentionFusion model, got GatedFusion"):
        cross_attention(model, c, ds, list(ds.train.guid[:2]), feats)
    with pytest.raises(ConfigError, match="expected a trained GatedFusion model"):
        gate_text_share(train_model(cfg.replace(model="concat"), ds, feats, list(ds.train.guid), []).model,
                        cfg, ds, list(ds.train.guid), feats)


def test_the_displayed_crop_is_what_the_image_encoder_sees(trained, tiny_image, monkeypatch):
    ds, cfg, _ = trained
    guids = list(ds.train.guid[:2])
    for k, (g, size) in enumerate(zip(guids, [(90, 50), (41, 77)])):  # not square, larger than the crop
        ds.image_path(g).write_bytes(jpeg_bytes(size=size, noise=k))
    seen = []
    forward = tiny_image.forward
    monkeypatch.setattr(tiny_image, "forward", lambda x: seen.append(x.clone()) or forward(x))
    encode_images(tiny_image, ds, guids)  # the pixels the features are computed from
    crops = display_crops(ds, guids, cfg)
    assert list(crops) == guids
    spec = tiny_image.spec
    shown = torch.stack([T.Normalize(spec.mean, spec.std)(T.ToTensor()(crops[g])) for g in guids])
    torch.testing.assert_close(shown, torch.cat(seen))


def _onehot(classes):
    return np.eye(3)[classes] * 0.8 + 0.2 / 3


def test_each_error_gets_the_first_kind_that_fits():
    neg, neu, pos = (LABELS.index(c) for c in ("negative", "neutral", "positive"))
    y = np.array([pos, neg, neu, neg, pos, neu])
    final = _onehot([pos, pos, pos, neu, neg, neu])  # rows 1-4 wrong
    text = _onehot([pos, pos, pos, pos, neg, neu])
    image = _onehot([pos, neg, pos, neu, pos, neu])
    e = error_kinds(y, final, text, image)
    assert e.row.tolist() == [1, 2, 3, 4]
    assert e.kind.tolist() == ["image right, text wrong", "all agree, label differs", "other", "image right, text wrong"]
    assert e.true.tolist() == ["negative", "neutral", "negative", "positive"]
    assert e.predicted.tolist() == ["positive", "positive", "neutral", "negative"]
    assert e.confidence.tolist() == pytest.approx([0.8 + 0.2 / 3] * 4)
    neutral = error_kinds(np.array([neu]), _onehot([pos]), _onehot([neg]), _onehot([pos]))
    assert neutral.kind.tolist() == ["neutral missed"]  # the models disagree, and the truth was neutral


def test_the_gallery_takes_a_seeded_sample_of_each_kind():
    kinds = list(ERROR_KINDS)
    errors = error_kinds(np.zeros(40, dtype=int), _onehot([2] * 40), _onehot([2] * 40), _onehot([0] * 5 + [2] * 35))
    assert errors.kind.value_counts().to_dict() == {kinds[1]: 35, kinds[0]: 5}
    table = kind_counts(errors)  # every kind listed, in order, with its share of the 40 errors
    assert table.index.tolist() == kinds and table.errors.tolist() == [5, 35, 0, 0]
    assert table.share.tolist() == [0.125, 0.875, 0.0, 0.0] and table.what.tolist() == list(ERROR_KINDS.values())
    picks = gallery_rows(errors, per_kind=3, seed=1)
    assert picks.kind.tolist() == [kinds[0]] * 3 + [kinds[1]] * 3
    assert picks.row.tolist() == gallery_rows(errors, per_kind=3, seed=1).row.tolist()
    assert picks.row.tolist() != gallery_rows(errors, per_kind=3, seed=2).row.tolist()
    assert len(gallery_rows(errors, per_kind=10)) == 15  # a kind with fewer errors gives what it has


@pytest.mark.parametrize("mix", [-1.5, 2.0])
def test_late_fusions_text_weight_is_the_share_of_the_text_probabilities_in_its_output(trained, mix):
    ds, cfg, feats = trained
    c = cfg.replace(model="late")
    model = train_model(c, ds, feats, list(ds.train.guid), []).model.eval()
    model.head.mix.data.fill_(mix)
    guids = list(ds.train.guid)
    b = make_data(c.model_group, ds, guids, None, feats, model).batch(torch.arange(len(guids)))
    with torch.no_grad():
        out = model(b).exp()
        p_text, p_image = torch.softmax(model.head.text(b), -1), torch.softmax(model.head.image(b), -1)
    assert (p_text - p_image).abs().max() > 0.05  # the two sides disagree, so their shares can be told apart
    w = late_text_weight(model)
    assert 0 < w < 1 and (w > 0.5) == (mix > 0)
    torch.testing.assert_close(out, w * p_text + (1 - w) * p_image)


def test_late_fusions_weight_at_the_start_is_that_of_the_model_training_starts_from(trained):
    ds, cfg, feats = trained
    c = cfg.replace(model="late")
    state = torch.random.get_rng_state()
    w = late_text_weight_at_start(c)
    assert torch.equal(torch.random.get_rng_state(), state)  # asking leaves the global generator where it was
    assert w == pytest.approx(late_text_weight(build_model(c, feats.dims())))  # what train_model starts from
    assert w == pytest.approx(float(torch.sigmoid(torch.tensor(1.0))))
    trained_w = late_text_weight(train_model(c, ds, feats, list(ds.train.guid), []).model)
    assert trained_w != pytest.approx(w, abs=1e-6)  # training moves it: the start is no trained model's value


def test_region_attention_spread_is_the_entropy_and_peak_of_each_rows_map(trained):
    ds, cfg, feats = trained
    c = cfg.replace(model="cross_attention")
    model = train_model(c, ds, feats, list(ds.train.guid), []).model
    guids = list(ds.train.guid[:5])
    spread = region_attention_spread(model, c, ds, guids, feats)
    assert spread.guid.tolist() == guids and (spread.regions == REGION_GRID ** 2).all()
    for m, row in zip(cross_attention(model, c, ds, guids, feats), spread.itertuples()):
        w = m.region_weight.ravel().astype(float)  # the same token-averaged map, read another way
        assert row.entropy == pytest.approx(-(w * np.log(w)).sum(), abs=1e-5)
        assert row.max_weight == pytest.approx(w.max(), abs=1e-6)
    assert spread.uniform_entropy.to_numpy() == pytest.approx(np.log(REGION_GRID ** 2))
    assert ((spread.entropy <= spread.uniform_entropy + 1e-9) & (spread.entropy >= 0)).all()
    assert ((spread.max_weight >= 1 / REGION_GRID ** 2 - 1e-9) & (spread.max_weight <= 1)).all()


def test_region_attention_spread_reads_flat_and_one_hot_maps_right(trained, monkeypatch):
    ds, cfg, feats = trained
    c = cfg.replace(model="cross_attention")
    model = train_model(c, ds, feats, list(ds.train.guid), []).model
    import lab5.explain as E

    flat, peak = torch.full((9,), 1 / 9), torch.eye(9)[4]
    monkeypatch.setattr(E, "_region_attention_per_row",
                        lambda *a: (torch.stack([flat, peak]), torch.ones(2, 9, dtype=torch.bool)))
    spread = region_attention_spread(model, c, ds, list(ds.train.guid[:2]), feats)
    assert spread.entropy.tolist() == pytest.approx([np.log(9), 0.0])
    assert spread.max_weight.tolist() == pytest.approx([1 / 9, 1.0])


def test_oof_scores_and_per_class_scores_read_the_metrics_of_the_most_probable_class():
    neg, neu, pos = (LABELS.index(c) for c in ("negative", "neutral", "positive"))
    y = np.array([pos, pos, neg, neu, neu, pos])
    p = _onehot([pos, neg, neg, neu, pos, pos])
    m = metrics(y, p.argmax(1))
    row = oof_scores(y, p, name="x")
    assert row.index.tolist() == ["x"] and row.rows.tolist() == [6]
    for k in ("accuracy", "macro_f1", "weighted_f1", "f1_neutral"):
        assert row[k].item() == pytest.approx(m[k])
    assert row.ece.item() == pytest.approx(expected_calibration_error(p, y))
    table = per_class_scores(y, p.argmax(1))
    assert table.index.tolist() == list(LABELS) and table.rows.tolist() == [1, 2, 3]
    assert table.loc["neutral", "recall"] == pytest.approx(0.5) and table.loc["positive", "precision"] == pytest.approx(2 / 3)


def test_misses_by_class_counts_every_error_for_its_true_class():
    neg, neu, pos = (LABELS.index(c) for c in ("negative", "neutral", "positive"))
    y = np.array([neu, neu, neu, neu, pos, pos, neg])
    pred = np.array([pos, neg, neu, pos, pos, neg, neg])
    t = misses_by_class(y, pred)
    assert t.index.tolist() == list(LABELS)
    assert t.rows.tolist() == [1, 4, 2] and t.missed.tolist() == [0, 3, 1]
    assert t.share_of_class.tolist() == pytest.approx([0.0, 0.75, 0.5])
    assert t.share_of_errors.tolist() == pytest.approx([0.0, 0.75, 0.25])
    assert misses_by_class(y, y).share_of_errors.tolist() == [0.0, 0.0, 0.0]  # no errors: no division by zero
