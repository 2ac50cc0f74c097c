"""Fine-tuning the top text layers on cached lower-layer states (``Config.text_top``).

The tiny seeded two-layer BERT from conftest stands in for MiniLM; it is 16 wide, like the synthetic features.
"""
from __future__ import annotations

import pytest
import torch
from synthetic import GUIDS, LABELS_, small_config

import lab5.features as F
from lab5.batches import make_data
from lab5.data import load_dataset
from lab5.encoders import masked_mean
from lab5.errors import ConfigError
from lab5.models import TextTop, build_model
from lab5.pipeline import load_model, save_checkpoint
from lab5.training import fit, make_optimizer, predict_logits


@pytest.fixture
def six(dataset_factory, tmp_path):
    root = dataset_factory(n_train=4, n_test=2, name="ds")
    return root, small_config(tmp_path, data=root, cache=tmp_path / "fcache")


def test_text_top_caches_the_states_below_the_tuned_layers_under_their_own_key(six, tiny_text):
    root, cfg = six
    ds = load_dataset(root)
    last = F.text_features(ds, cfg, tiny_text)
    below = F.text_features(ds, cfg.replace(text_top=1), tiny_text)
    assert below.key != last.key
    assert len(list(cfg.cache.glob("text-tiny-bert-*.pt"))) == 2
    tokens = tiny_text.tokenize(list(ds.all.text), cfg.max_length)
    with torch.no_grad():
        out = tiny_text.model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"].long(),
                              output_hidden_states=True)
    real = tokens["attention_mask"][..., None]  # states of real tokens; padding positions are stored as zeros
    torch.testing.assert_close(below.seq.float(), (out.hidden_states[1] * real).half().float(), atol=2e-3, rtol=1e-3)
    torch.testing.assert_close(last.seq.float(), (out.hidden_states[2] * real).half().float(), atol=2e-3, rtol=1e-3)


def test_text_top_beyond_the_encoder_depth_is_a_config_error(six, tiny_text):
    root, cfg = six
    with pytest.raises(ConfigError, match="out of range: tiny-bert has 2 layers"):
        F.text_features(load_dataset(root), cfg.replace(text_top=3), tiny_text)


def test_top_layers_on_cached_lower_states_reproduce_the_whole_encoder(tiny_text, minilm):
    """Cached states of layer n-k passed through the copied top k layers equal the encoder's last layer."""
    texts = ["what a lovely day", "worst service ever, never again", "ok"]
    tokens = tiny_text.tokenize(texts, 12)
    ids, mask = tokens["input_ids"], tokens["attention_mask"]
    with torch.no_grad():
        pooled, last, _ = tiny_text(ids, mask)
        _, below, _ = tiny_text(ids, mask, layer=1)
        top = TextTop(tiny_text.model.encoder.layer[-1:]).eval()
        lexicon = torch.randn(3, 4)
        out = top({"text_seq": below, "text_mask": mask, "text_pooled": torch.cat([masked_mean(below, mask), lexicon], 1)})
    valid = mask[..., None].expand_as(last)
    torch.testing.assert_close(out["text_seq"][valid], last[valid], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out["text_pooled"][:, :16], pooled, rtol=1e-4, atol=1e-5)
    assert torch.equal(out["text_pooled"][:, 16:], lexicon)  # extra pooled columns pass through untouched


def test_text_top_is_a_copy_and_training_leaves_the_encoder_alone(feats, tmp_path, patched_encoders, tiny_text):
    before = {k: v.clone() for k, v in tiny_text.state_dict().items()}
    cfg = small_config(tmp_path, model="late", text_top=1, epochs=2, text_top_lr=1e-2)
    model = build_model(cfg, feats.dims())
    assert model.text_top is not None and patched_encoders["text"] == 1  # copied from the (patched) text encoder
    assert len(model.text_top.layers) == 1
    start = {k: v.clone() for k, v in model.text_top.state_dict().items()}
    data = make_data(cfg, None, GUIDS, LABELS_, feats)
    assert "text_seq" in data.batch(torch.arange(2))  # a pooled-only head still gets the states to tune
    fit(model, data, None, cfg)
    assert any(not torch.equal(start[k], v) for k, v in model.text_top.state_dict().items())
    for k, v in tiny_text.state_dict().items():
        assert torch.equal(before[k], v), k


def test_image_only_head_gets_no_text_top(feats, tmp_path, patched_encoders):
    cfg = small_config(tmp_path, model="image", text_top=1)
    assert build_model(cfg, feats.dims()).text_top is None


def test_text_top_gets_its_own_learning_rate(feats, tmp_path, patched_encoders):
    cfg = small_config(tmp_path, model="late", text_top=1, lr=1e-3, text_top_lr=3e-5)
    model = build_model(cfg, feats.dims())
    opt = make_optimizer(model, cfg)
    top = {id(p) for p in model.text_top.parameters()}
    for group in opt.param_groups:
        in_top = {id(p) in top for p in group["params"]}
        assert len(in_top) == 1
        assert group["lr"] == (3e-5 if in_top.pop() else 1e-3)
    assert {g["lr"] for g in opt.param_groups} == {1e-3, 3e-5}
    assert sum(len(g["params"]) for g in opt.param_groups if g["lr"] == 3e-5) == len(list(model.text_top.parameters()))


def test_checkpoint_with_text_top_round_trips_to_identical_logits(feats, tmp_path, patched_encoders):
    cfg = small_config(tmp_path, model="gated", text_top=1, epochs=2)
    model = build_model(cfg, feats.dims())
    data = make_data(cfg, None, GUIDS, LABELS_, feats)
    fit(model, data, None, cfg)
    save_checkpoint(tmp_path / "ck", model, cfg)
    loaded, cfg2, _ = load_model(tmp_path / "ck")
    assert loaded.text_top is not None
    assert torch.equal(predict_logits(loaded, data, cfg2), predict_logits(model, data, cfg))


def test_text_top_and_finetune_together_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="--text-top and --finetune both fine-tune the text encoder; use one of them"):
        small_config(tmp_path, model="late", text_top=1, finetune=True)


def test_the_top_layer_comes_from_the_configs_cache(monkeypatch, tmp_path, minilm):
    import lab5.encoders
    from lab5.features import Dims
    from lab5.models import build_model

    seen = []

    def text_encoder(name="minilm", cache=None):
        seen.append((name, cache))
        return minilm

    monkeypatch.setattr(lab5.encoders, "text_encoder", text_encoder)
    cfg = small_config(tmp_path, model="late", text_top=1, cache=tmp_path / "X")
    build_model(cfg, {"minilm": Dims(384, 8, 384, 8)})
    assert seen == [("minilm", tmp_path / "X")]  # mpnet would be unpacked there, not in the default cache
