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
from lab5.encoders import REGION_GRID
from lab5.errors import ConfigError
from lab5.explain import (
    ERROR_KINDS,
    cross_attention,
    display_crops,
    error_kinds,
    gallery_rows,
    kind_counts,
    gate_text_share,
    late_text_weight,
    mean_region_attention,
)
from lab5.features import encode_images, load_features
from lab5.pipeline import train_model


@pytest.fixture
def trained(dataset_factory, tmp_path, patched_encoders):
    """A synthetic dataset, its features from the tiny encoders, and a config to train on them."""
    ds = load_dataset(dataset_factory(n_train=24, n_test=3))
    cfg = small_config(tmp_path, epochs=1, early_stopping=False)
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
    encode_images(tiny_image, ds, guids, cfg)  # the pixels the features are computed from
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
    b = make_data(c, ds, guids, None, feats, model).batch(torch.arange(len(guids)))
    with torch.no_grad():
        out = model(b).exp()
        p_text, p_image = torch.softmax(model.head.text(b), -1), torch.softmax(model.head.image(b), -1)
    assert (p_text - p_image).abs().max() > 0.05  # the two sides disagree, so their shares can be told apart
    w = late_text_weight(model)
    assert 0 < w < 1 and (w > 0.5) == (mix > 0)
    torch.testing.assert_close(out, w * p_text + (1 - w) * p_image)
