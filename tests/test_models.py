"""lab5.models: every head gives (B, 3) logits, masks are honoured, each can fit separable data; build_model."""
from __future__ import annotations

import pytest
import torch
from synthetic import GUIDS, LABELS_, small_config

from lab5.batches import FeatureData
from lab5.errors import ConfigError
from lab5.features import Dims
from lab5.heads import MODELS, CrossAttentionFusion
from lab5.models import Classifier, build_head, build_model, member_configs, member_names, uses_sequences
from lab5.training import fit, predict_logits


def _batch(feats, n=8):
    return FeatureData(feats, GUIDS[:n], LABELS_[:n]).batch(torch.arange(n))


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_gives_three_logits_per_row_without_nan(name, feats, tmp_path):
    cfg = small_config(tmp_path, model=name)
    head = build_head(name, feats.dims()["minilm"], cfg.model_group).eval()
    assert isinstance(head, MODELS[name])
    with torch.no_grad():
        out = head(_batch(feats))
    assert out.shape == (8, 3) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", list(MODELS))
def test_each_head_reads_only_the_modalities_it_declares(name, feats, tmp_path):
    """Scrambling an unused modality leaves the logits unchanged; scrambling a used one changes them."""
    cfg = small_config(tmp_path, model=name)
    head = build_head(name, feats.dims()["minilm"], cfg.model_group).eval()
    b = _batch(feats)
    with torch.no_grad():
        base = head(b)
        for prefix, used in (("text", head.uses_text), ("image", head.uses_image)):
            other = dict(b)
            for k in (f"{prefix}_pooled", f"{prefix}_seq"):
                other[k] = b[k].flip(0)
            changed = not torch.allclose(head(other), base)
            assert changed == used, (prefix, used)


@pytest.mark.parametrize("name", list(MODELS))
def test_only_cross_attention_never_reads_the_pooled_text_vector_and_its_lexicon_scores(name, feats, tmp_path):
    """The lexicon scores join the pooled text vector: every head that reads text sees them but cross-attention,
    which reads only the token states (notebook 5 compares it with concat on equal inputs for that reason)."""
    head = build_head(name, feats.dims()["minilm"], small_config(tmp_path, model=name).model_group).eval()
    b = _batch(feats)
    with torch.no_grad():
        changed = not torch.allclose(head({**b, "text_pooled": b["text_pooled"].flip(0)}), head(b))
    assert changed == (head.uses_text and name != "cross_attention")


def test_unimodal_heads_declare_one_modality_and_only_cross_attention_reads_sequences():
    assert [n for n, h in MODELS.items() if not h.uses_image] == ["text"]
    assert [n for n, h in MODELS.items() if not h.uses_text] == ["image"]
    assert [n for n, h in MODELS.items() if h.uses_sequences] == ["cross_attention"]


def test_unknown_model_name_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown model 'transformer'"):
        build_head("transformer", Dims(4, 4, 4, 4), small_config(tmp_path))


def test_member_names_and_sequences_of_plain_and_joined_names():
    assert member_names("late") == ["late"] and member_names("late+gated") == ["late", "gated"]
    assert uses_sequences("cross_attention") and uses_sequences("late+cross_attention")
    assert not uses_sequences("late+gated") and not uses_sequences("concat")


def test_cross_attention_ignores_extra_masked_padding_tokens(feats, tmp_path):
    cfg = small_config(tmp_path, model="cross_attention", dropout=0.3)
    torch.manual_seed(0)
    head = CrossAttentionFusion(feats.dims()["minilm"], cfg).eval()
    b = _batch(feats)
    extra = 5
    g = torch.Generator().manual_seed(1)
    padded = dict(b)
    padded["text_seq"] = torch.cat([b["text_seq"], 50 * torch.randn(8, extra, 16, generator=g).half()], dim=1)
    padded["text_mask"] = torch.cat([b["text_mask"], torch.zeros(8, extra, dtype=torch.bool)], dim=1)
    scrambled = dict(b)
    scrambled["text_seq"] = torch.where(b["text_mask"][..., None], b["text_seq"], -b["text_seq"] * 3)
    with torch.no_grad():
        base, w_t2i, w_i2t = head(b, return_attention=True)
        torch.testing.assert_close(head(padded), base, atol=1e-5, rtol=0)
        torch.testing.assert_close(head(scrambled), base, atol=1e-5, rtol=0)
    # the image->text attention gives no weight to padded text positions
    assert w_i2t.shape == (8, 9, b["text_mask"].shape[1])
    assert float(w_i2t.masked_select(~b["text_mask"][:, None, :].expand_as(w_i2t)).abs().max()) == 0.0
    torch.testing.assert_close(w_t2i.sum(-1), torch.ones(8, b["text_mask"].shape[1]))


def test_cross_attention_reads_token_widths_that_differ_from_the_pooled_text_width(tmp_path):
    """With VADER scores appended, pooled text is wider than the token states; attention must use the token width."""
    cfg = small_config(tmp_path, model="cross_attention")
    dims = Dims(text=20, image=8, text_seq=16, image_seq=8)
    model = build_model(cfg, {"minilm": dims}).eval()
    assert model.dims == {"minilm": dims}
    assert model.head.t[0].normalized_shape == (16,) and model.head.i[0].normalized_shape == (8,)
    b = {"text_pooled": torch.randn(2, 20), "text_seq": torch.randn(2, 5, 16), "text_mask": torch.ones(2, 5, dtype=torch.bool),
         "image_pooled": torch.randn(2, 8), "image_seq": torch.randn(2, 9, 8), "image_mask": torch.ones(2, 9, dtype=torch.bool)}
    with torch.no_grad():
        assert model(b).shape == (2, 3)


# --------------------------------------------------------------------------- build_model
def test_build_model_makes_a_classifier_without_encoders_and_records_its_dims(feats, tmp_path):
    model = build_model(small_config(tmp_path, model="concat"), feats.dims())
    assert isinstance(model, Classifier) and isinstance(model.head, MODELS["concat"])
    assert model.text_encoder is None and model.image_encoder is None
    assert model.dims == feats.dims()
    assert all("logit_bias" not in k for k in model.state_dict())  # no learned output bias


def test_build_model_is_seeded_and_leaves_the_global_random_state_alone(feats, tmp_path):
    cfg = small_config(tmp_path, model="gated")
    torch.manual_seed(5)
    state = torch.get_rng_state()
    a = build_model(cfg, feats.dims()).state_dict()
    assert torch.equal(torch.get_rng_state(), state)
    torch.rand(10)  # another global state: the weights must not depend on it
    b = build_model(cfg, feats.dims()).state_dict()
    c = build_model(cfg.replace(seed=1), feats.dims()).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["head.t.weight"], c["head.t.weight"])


def test_build_model_attaches_only_the_encoders_its_head_reads(tmp_path, tiny_text, tiny_image):
    dims = {"minilm": Dims(tiny_text.dim, tiny_image.dim, tiny_text.dim, tiny_image.dim)}
    both = build_model(small_config(tmp_path, model="concat"), dims, (tiny_text, tiny_image))
    assert both.text_encoder is tiny_text and both.image_encoder is tiny_image
    text = build_model(small_config(tmp_path, model="text"), dims, (tiny_text, tiny_image))
    assert text.text_encoder is tiny_text and text.image_encoder is None
    image = build_model(small_config(tmp_path, model="image"), dims, (tiny_text, tiny_image))
    assert image.text_encoder is None and image.image_encoder is tiny_image


@pytest.mark.parametrize("name", list(MODELS))
def test_each_model_overfits_thirty_separable_samples(name, feats, tmp_path):
    cfg = small_config(tmp_path, model=name, epochs=10, batch_size=10, lr=1e-2)
    data = FeatureData(feats, GUIDS, LABELS_, sequences=MODELS[name].uses_sequences)
    model = build_model(cfg, feats.dims())
    res = fit(model, data, None, cfg)
    pred = predict_logits(res.model, data, cfg.training_group).argmax(1)
    acc = float((pred == data.labels).float().mean())
    assert acc >= 0.9, f"{name}: training accuracy {acc:.2f}"
    assert res.history.train_loss.iloc[-1] < res.history.train_loss.iloc[0]


def test_member_configs_give_each_member_its_head_and_encoder_and_the_models_other_values(tmp_path):
    cfg = small_config(tmp_path, model="gated+late", text_encoder="minilm+mpnet", seed=5, hidden=8, epochs=5)
    configs = member_configs(cfg)
    assert list(configs) == ["gated@minilm", "late@minilm", "gated@mpnet", "late@mpnet"]
    assert [(c.model, c.text_encoder) for c in configs.values()] == [
        (h, e) for e in ("minilm", "mpnet") for h in ("gated", "late")]
    for c in configs.values():  # every other value the model's, its seed included
        assert c == cfg.replace(model=c.model, text_encoder=c.text_encoder)
        assert (c.seed, c.hidden, c.epochs) == (5, 8, 5)


def test_cross_attention_reads_no_pooled_text_vector(feats, tmp_path):
    cfg = small_config(tmp_path, model="cross_attention")
    head = build_head("cross_attention", feats.dims()["minilm"], cfg.model_group).eval()
    b = _batch(feats)
    with torch.no_grad():
        assert torch.equal(head({**b, "text_pooled": b["text_pooled"].flip(0)}), head(b))
