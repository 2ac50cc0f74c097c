"""lab5.features: the on-disk feature cache (computed once, keyed by inputs, libraries and numerics; corruption rebuilt).

The cache logic does not depend on which encoder fills it, so these tests use the tiny seeded encoders from
conftest (same interfaces as MiniLM / EfficientNet, a fraction of the CPU time); one test runs the real pair.
"""
from __future__ import annotations

import json
import logging

import pytest
import torch
from synthetic import jpeg_bytes, make_features, small_config

import lab5.cache as C
import lab5.features as F
from lab5.data import load_dataset
from lab5.text import lexicon_scores


@pytest.fixture
def six(dataset_factory, tmp_path):
    root = dataset_factory(n_train=4, n_test=2, name="ds")
    return root, small_config(tmp_path, data=root, cache=tmp_path / "fcache")


def _no_encoding(*a, **k):
    raise AssertionError("the encoder ran although the cache holds these features")


def _counting(monkeypatch, name):
    calls = []
    real = getattr(F, name)

    def wrapper(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(F, name, wrapper)
    return calls


def test_text_features_are_computed_once_then_loaded_from_cache(six, tiny_text, monkeypatch):
    root, cfg = six
    ds = load_dataset(root)
    calls = _counting(monkeypatch, "encode_texts")
    first = F.text_features(ds, cfg, tiny_text)
    assert calls == [1]
    assert first.guids == [str(g) for g in range(1, 7)]
    assert first.pooled.shape == (6, 16) and first.pooled.dtype == torch.float32
    assert first.seq.shape == (6, cfg.max_length, 16) and first.seq.dtype == torch.float16
    assert first.mask.shape == (6, cfg.max_length) and first.mask.dtype == torch.bool
    assert len(list(cfg.cache.glob("text-tiny-bert-*.pt"))) == 1
    monkeypatch.setattr(F, "encode_texts", _no_encoding)
    second = F.text_features(load_dataset(root), cfg, tiny_text)
    assert second.key == first.key
    assert torch.equal(second.pooled, first.pooled) and torch.equal(second.seq, first.seq)
    assert torch.equal(second.mask, first.mask)


def test_image_features_are_computed_once_then_loaded_from_cache(six, tiny_image, monkeypatch):
    root, cfg = six
    calls = _counting(monkeypatch, "encode_images")
    first = F.image_features(load_dataset(root), cfg, tiny_image)
    assert calls == [1]
    assert first.pooled.shape == (6, 12) and first.seq.shape == (6, 9, 12) and bool(first.mask.all())
    monkeypatch.setattr(F, "encode_images", _no_encoding)
    second = F.image_features(load_dataset(root), cfg, tiny_image)
    assert second.key == first.key and torch.equal(second.pooled, first.pooled)
    assert torch.equal(second.seq, first.seq) and torch.equal(second.mask, first.mask)


def test_changing_one_text_changes_the_key_and_rebuilds(six, tiny_text, monkeypatch):
    root, cfg = six
    first = F.text_features(load_dataset(root), cfg, tiny_text)
    (root / "data" / "3.txt").write_text("a completely different tweet")
    calls = _counting(monkeypatch, "encode_texts")
    second = F.text_features(load_dataset(root), cfg, tiny_text)
    assert calls == [1] and second.key != first.key
    changed = (second.pooled != first.pooled).any(1).tolist()
    assert changed == [False, False, True, False, False, False]
    assert len(list(cfg.cache.glob("text-*.pt"))) == 2


def test_changing_one_image_changes_the_key_and_rebuilds(six, tiny_image, monkeypatch):
    root, cfg = six
    first = F.image_features(load_dataset(root), cfg, tiny_image)
    (root / "data" / "5.jpg").write_bytes(jpeg_bytes(noise=5))
    calls = _counting(monkeypatch, "encode_images")
    second = F.image_features(load_dataset(root), cfg, tiny_image)
    assert calls == [1] and second.key != first.key
    assert not torch.allclose(second.pooled[4], first.pooled[4])
    torch.testing.assert_close(second.pooled[:4], first.pooled[:4])


def test_changing_max_length_changes_the_key(six, tiny_text):
    root, cfg = six
    ds = load_dataset(root)
    a = F.text_features(ds, cfg, tiny_text)
    b = F.text_features(ds, cfg.replace(max_length=8), tiny_text)
    assert a.key != b.key and b.seq.shape[1] == 8


@pytest.mark.parametrize("damage", ["truncate", "flip", "meta"])
def test_corrupt_text_cache_is_detected_logged_and_rebuilt_identically(six, tiny_text, monkeypatch, caplog, damage):
    root, cfg = six
    ds = load_dataset(root)
    first = F.text_features(ds, cfg, tiny_text)
    (path,) = cfg.cache.glob("text-*.pt")
    blob = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(blob[: len(blob) // 2])
    elif damage == "flip":
        k = len(blob) // 2
        path.write_bytes(blob[:k] + bytes([blob[k] ^ 0xFF]) + blob[k + 1:])
    else:
        path.with_suffix(".json").write_text("{not json")
    calls = _counting(monkeypatch, "encode_texts")
    with caplog.at_level(logging.WARNING, logger="lab5"):
        again = F.text_features(ds, cfg, tiny_text)
    assert calls == [1]
    assert any("corrupt" in r.getMessage() and str(path) in r.getMessage() for r in caplog.records)
    assert torch.equal(again.pooled, first.pooled) and torch.equal(again.seq, first.seq)
    assert path.read_bytes() == blob  # the rebuilt file is byte-identical to the first one
    # and now it loads without another rebuild
    monkeypatch.setattr(F, "encode_texts", _no_encoding)
    F.text_features(ds, cfg, tiny_text)


def test_corrupt_image_cache_is_rebuilt_identically(six, tiny_image, caplog):
    root, cfg = six
    ds = load_dataset(root)
    first = F.image_features(ds, cfg, tiny_image)
    (path,) = cfg.cache.glob("image-*.pt")
    path.write_bytes(path.read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="lab5"):
        again = F.image_features(ds, cfg, tiny_image)
    assert any("corrupt" in r.getMessage() for r in caplog.records)
    assert torch.equal(again.pooled, first.pooled) and torch.equal(again.seq, first.seq)


def test_feature_set_rows_names_an_unknown_guid():
    fs = F.FeatureSet(["a", "b", "c"], torch.zeros(3, 2), torch.zeros(3, 1, 2), torch.ones(3, 1, dtype=torch.bool))
    assert fs.rows(["c", "a"]).tolist() == [2, 0]
    with pytest.raises(KeyError, match="zz"):
        fs.rows(["zz"])


def test_load_features_with_the_real_encoders_aligns_both_modalities(dataset_factory, tmp_path, minilm, effnet,
                                                                    monkeypatch):
    root = dataset_factory(n_train=2, n_test=1, name="real")
    cfg = small_config(tmp_path, data=root, cache=tmp_path / "real-cache")
    monkeypatch.setattr(F, "text_encoder", lambda name, cache: minilm)
    monkeypatch.setattr(F, "image_encoder", lambda name, size, seed: effnet)
    feats = F.load_features(load_dataset(root), cfg)
    assert feats.text.guids == feats.image.guids == ["1", "2", "3"]
    assert feats.text.pooled.shape == (3, 384) and feats.image.pooled.shape == (3, 1280)
    assert not torch.isnan(feats.text.pooled).any() and not torch.isnan(feats.image.pooled).any()
    names = sorted(p.name.split("-")[0] + "-" + p.name.split("-")[1] for p in cfg.cache.glob("*.pt"))
    assert names == ["image-efficientnet", "text-minilm"]


def test_tokens_plus_lexicon_appends_four_vader_scores_to_the_pooled_text(six, patched_encoders):
    root, cfg = six
    ds = load_dataset(root)
    plain = F.load_features(ds, cfg.replace(text_features="tokens"))
    lex = F.load_features(ds, cfg.replace(text_features="tokens+lexicon"))
    assert lex.text.pooled.shape == (6, plain.text.dim + 4)
    assert torch.equal(lex.text.pooled[:, :-4], plain.text.pooled) and torch.equal(lex.text.seq, plain.text.seq)
    scores = lex.text.pooled[:, -4:]
    torch.testing.assert_close(scores, lexicon_scores(list(ds.all.text)).float())  # VADER's scores, in the row order
    row = {g: i for i, g in enumerate(lex.text.guids)}
    assert ds.all.set_index("guid").tag[["1", "3"]].tolist() == ["positive", "negative"]  # "lovely" / "worst"
    assert scores[row["1"], 3] > 0 > scores[row["3"], 3]  # VADER's compound score
    assert patched_encoders == {"text": 2, "image": 1}  # the image features were read once for both


def test_a_dataset_object_reads_each_feature_set_once_and_a_new_one_reads_the_cache_again(six, patched_encoders):
    root, cfg = six
    ds = load_dataset(root)
    first = F.load_features(ds, cfg)
    loads = dict(patched_encoders)
    again = F.load_features(ds, cfg.replace(model="late", lr=0.5, jobs=1))  # fields no feature depends on
    assert patched_encoders == loads and again.text is first.text and again.image is first.image
    other = F.load_features(ds, cfg.replace(max_length=8))  # other text features, the same image features
    assert other.image is first.image and other.text is not first.text
    fresh = F.load_features(load_dataset(root), cfg)  # another dataset object: read from the cache again
    assert fresh.text is not first.text and torch.equal(fresh.text.pooled, first.text.pooled)


# --------------------------------------------------------------------------- what the cache key holds
def test_features_are_the_same_bits_for_any_jobs_and_keep_their_key(six, tiny_text, tiny_image, monkeypatch):
    from lab5.parallel import can_fork

    root, cfg = six
    ds = load_dataset(root)
    one = F.text_features(ds, cfg.replace(jobs=1), tiny_text)
    img = F.image_features(ds, cfg.replace(jobs=1), tiny_image)
    calls = _counting(monkeypatch, "encode_texts")
    again = F.text_features(ds, cfg.replace(jobs=2), tiny_text)
    assert calls == [] and again.key == one.key  # read back: neither changes a feature
    if can_fork():  # batches side by side in workers give the bits of one after another
        texts = list(ds.all.text)
        text = [F.encode_texts(tiny_text, texts, max_length=cfg.max_length, jobs=j, batch_size=2) for j in (1, 2)]
        image = [F.encode_images(tiny_image, ds, list(ds.all.guid), jobs=j, batch_size=2) for j in (1, 2)]
        for a, b in (text, image):
            assert all(torch.equal(x, y) for x, y in zip(a, b))
        assert torch.equal(image[0][0], img.pooled)  # images do not depend on the batch they are in


def test_library_versions_and_numerics_are_part_of_the_key(six, tiny_image, monkeypatch):
    root, cfg = six
    ds = load_dataset(root)
    base = F.image_features(ds, cfg, tiny_image)
    meta = json.loads(next(cfg.cache.glob(f"image-*-{base.key}.json")).read_text())
    assert set(meta["libraries"]) == set(F.IMAGE_LIBRARIES) and meta["numerics"] == C.numerics()
    real_versions, real_numerics = C.versions, C.numerics
    monkeypatch.setattr(C, "versions", lambda *p: {**real_versions(*p), "torch": "0.0.1"})
    newer = F.image_features(ds, cfg, tiny_image)
    monkeypatch.setattr(C, "versions", real_versions)
    monkeypatch.setattr(C, "numerics", lambda: {**real_numerics(), "cpu_capability": "DEFAULT"})
    native = F.image_features(ds, cfg, tiny_image)
    assert len({base.key, newer.key, native.key}) == 3
    assert len(list(cfg.cache.glob("image-*.pt"))) == 3


def test_settings_that_do_not_change_the_features_keep_the_key(six, tiny_text, monkeypatch):
    root, cfg = six
    ds = load_dataset(root)
    first = F.text_features(ds, cfg, tiny_text)
    monkeypatch.setattr(F, "encode_texts", _no_encoding)
    for other in (cfg.replace(model="late", lr=1e-2, epochs=9), cfg.replace(progress=True)):
        assert F.text_features(ds, other, tiny_text).key == first.key


# --------------------------------------------------------------------------- dims and feature fields
def test_dims_are_the_pooled_and_sequence_widths_of_both_modalities_by_text_encoder():
    feats = make_features(["a", "b", "c"], [0, 1, 2], dt=16, di=8)
    assert feats.dims() == {"minilm": F.Dims(text=16, image=8, text_seq=16, image_seq=8)}
    assert feats.dims()["minilm"].to_dict() == {"text": 16, "image": 8, "text_seq": 16, "image_seq": 8}
    wider = F.FeatureSet(feats.text.guids, torch.zeros(3, 20), feats.text.seq, feats.text.mask)
    two = F.Features({"minilm": feats.text, "wide": wider}, feats.image)
    assert two.dims() == {"minilm": F.Dims(16, 8, 16, 8), "wide": F.Dims(20, 8, 16, 8)}  # lexicon columns widen the pooled text, not the token states
    assert two.of("wide").dims() == {"wide": F.Dims(20, 8, 16, 8)} and two.of("wide").text is wider
    with pytest.raises(ValueError, match="features of 2 text encoders"):
        two.text
    with pytest.raises(KeyError, match="no text features of encoder 'mpnet'"):
        two.of("mpnet")


def test_feature_fields_tell_which_configs_share_their_features(tmp_path):
    cfg = small_config(tmp_path)
    assert F.feature_fields(cfg) == F.feature_fields(cfg.replace(model="late", lr=1e-2, folds=4, progress=True, jobs=2))
    for change in ({"text_features": "tokens+lexicon"}, {"max_length": 8}, {"seed": 1},
                   {"cache": tmp_path / "other"}, {"image_encoder": "resnet50-scratch"}):
        assert F.feature_fields(cfg.replace(**change)) != F.feature_fields(cfg), change


# --------------------------------------------------------------------------- the fast extraction paths
def test_length_sorted_text_batches_give_each_text_what_it_gets_alone(minilm, tmp_path):
    texts = ["a much longer tweet about a sunny day at the beach with friends", "ok", "", "sad news today #rip",
             "a b c d e f g h i j k l m n o p"]
    pooled, seq, mask = F.encode_texts(minilm, texts, max_length=16, batch_size=2)  # batches mix lengths and order
    assert seq.shape == (5, 16, 384) and mask.shape == (5, 16)
    for i, t in enumerate(texts):
        tok = minilm.tokenize([t], 16)
        with torch.inference_mode():
            p, h, m = minilm(tok["input_ids"], tok["attention_mask"])
        assert torch.equal(mask[i], m[0])
        assert torch.allclose(pooled[i], p[0], atol=1e-5)
        n = int(m.sum())
        assert torch.allclose(seq[i, :n].float(), h[0, :n], atol=2e-3)  # float16 storage
        assert not seq[i, n:].any()  # padding positions hold zeros


def test_channels_last_image_features_agree_with_the_default_layout(effnet, dataset_factory, tmp_path):
    ds = load_dataset(dataset_factory(n_train=3, n_test=1))
    guids = list(ds.all.guid)
    pooled, regions, _ = F.encode_images(effnet, ds, guids)
    x = torch.stack([F.ImageFolder(ds, guids, effnet.spec.transform(), effnet.spec.resize)[i] for i in range(len(guids))])
    ref = effnet.to(memory_format=torch.contiguous_format)
    with torch.inference_mode():
        p0, r0, _ = ref(x)
    assert torch.allclose(pooled, p0, atol=1e-4) and torch.allclose(regions.float(), r0, atol=1e-2)
