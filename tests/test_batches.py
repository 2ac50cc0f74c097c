"""lab5.batches: feature batches (padding trimmed), raw batches for fine-tuning and batch orders."""
from __future__ import annotations

import pytest
import torch
from synthetic import GUIDS, LABELS_, small_config

from lab5.batches import FeatureData, RawData, batch_order, make_data
from lab5.data import load_dataset
from lab5.features import Dims
from lab5.models import build_model


class _Labels:
    labels = torch.tensor([0] * 10 + [1] * 30 + [2] * 160)

    def __len__(self):
        return 200


def test_shuffled_batch_order_is_a_permutation_of_the_rows():
    plain = torch.cat(list(batch_order(_Labels(), 50, torch.Generator().manual_seed(0), shuffle=True)))
    assert sorted(plain.tolist()) == list(range(200)) and plain.tolist() != list(range(200))  # a real permutation


def test_batch_order_without_shuffling_is_the_data_order_in_batches_of_the_given_size():
    batches = [b.tolist() for b in batch_order(_Labels(), 64)]
    assert [len(b) for b in batches] == [64, 64, 64, 8]
    assert sum(batches, []) == list(range(200))


def test_shuffled_batch_order_follows_its_generator():
    a = torch.cat(list(batch_order(_Labels(), 50, torch.Generator().manual_seed(3), shuffle=True)))
    b = torch.cat(list(batch_order(_Labels(), 50, torch.Generator().manual_seed(3), shuffle=True)))
    c = torch.cat(list(batch_order(_Labels(), 50, torch.Generator().manual_seed(4), shuffle=True)))
    assert torch.equal(a, b) and not torch.equal(a, c)


# --------------------------------------------------------------------------- feature batches
def test_feature_batches_trim_text_padding_to_the_longest_text(feats):
    data = FeatureData(feats, GUIDS[:4], LABELS_[:4])
    assert len(data) == 4 and data.labels.tolist() == LABELS_[:4]
    lengths = feats.text.mask[:4].sum(1)  # 2, 3, 4, 5 real tokens of 6
    b = data.batch(torch.tensor([0, 1]))
    assert b["text_seq"].shape == (2, int(lengths[:2].max()), 16) and b["text_mask"].shape == (2, 3)
    assert b["image_seq"].shape == (2, 9, 8) and b["label"].tolist() == LABELS_[:2]
    assert torch.equal(b["text_pooled"], feats.text.pooled[:2])


def test_feature_batches_follow_the_guids_not_the_feature_order(feats):
    data = FeatureData(feats, [GUIDS[5], GUIDS[2]], [9, 8])
    b = data.batch(torch.arange(2))
    assert torch.equal(b["image_pooled"], feats.image.pooled[[5, 2]]) and b["label"].tolist() == [9, 8]


def test_pooled_only_batches_skip_the_sequences_and_unlabelled_rows_get_minus_one(feats):
    b = FeatureData(feats, GUIDS[:3], sequences=False).batch(torch.arange(3))
    assert "text_seq" not in b and "image_seq" not in b and b["label"].tolist() == [-1, -1, -1]


@pytest.mark.parametrize("model, sequences", [("concat", False), ("cross_attention", True), ("late+gated", False),
                                             ("late+cross_attention", True)])
def test_make_data_gathers_sequences_only_for_models_that_read_them(feats, tmp_path, model, sequences):
    data = make_data(small_config(tmp_path, model=model).model_group, None, GUIDS[:4], LABELS_[:4], feats)
    view = data.views["minilm"] if "+" in model else data  # an ensemble's data: one view per text encoder
    assert isinstance(view, FeatureData)
    assert ("text_seq" in view.tensors) == sequences


# --------------------------------------------------------------------------- raw batches for fine-tuning
def test_make_data_when_finetuning_feeds_the_models_encoders_raw_pairs(dataset_factory, tmp_path, tiny_text, tiny_image):
    root = dataset_factory(n_train=6, n_test=2)
    ds = load_dataset(root)
    cfg = small_config(tmp_path, data=root, model="concat", finetune=True)
    model = build_model(cfg, {"minilm": Dims(16, 12, 16, 12)}, (tiny_text, tiny_image))
    guids = ["3", "1", "5"]
    data = make_data(cfg.model_group, ds, guids, [0, 2, 1], None, model, train=False)
    assert isinstance(data, RawData) and len(data) == 3
    b = data.batch(torch.tensor([0, 2]))
    assert b["pixels"].shape == (2, 3, 32, 32) and b["label"].tolist() == [0, 1]
    texts = list(ds.all.set_index("guid").loc[["3", "5"], "text"])
    assert texts[0] == "terrible food and rude staff #3"  # the text as written, hashtag and all
    expected = tiny_text.tokenize(texts, cfg.max_length)
    n = int(expected["attention_mask"].sum(1).max())
    assert torch.equal(b["input_ids"], expected["input_ids"][:, :n]) and torch.equal(b["attention_mask"], expected["attention_mask"][:, :n])
    text_only = make_data(cfg.replace(model="text").model_group, ds, guids, None,
                          model=build_model(cfg.replace(model="text"), {"minilm": Dims(16, 12, 16, 12)}, (tiny_text, tiny_image)))
    tb = text_only.batch(torch.arange(3))
    assert "pixels" not in tb and tb["label"].tolist() == [-1, -1, -1]


def _bucketed(lengths: torch.Tensor, batch_size: int, seed: int = 0) -> list[torch.Tensor]:
    class Rows:
        labels = torch.zeros(len(lengths), dtype=torch.long)

        def __len__(self):
            return len(lengths)

    gen = torch.Generator().manual_seed(seed)
    return list(batch_order(Rows(), batch_size, gen, shuffle=True, lengths=lengths))


def test_bucketed_batches_visit_every_row_once_and_pad_far_less_than_random_ones():
    lengths = torch.randint(1, 65, (3000,), generator=torch.Generator().manual_seed(1))
    batches = _bucketed(lengths, 64)
    rows = torch.cat(batches)
    assert sorted(rows.tolist()) == list(range(3000))
    padded = sum(len(b) * int(lengths[b].max()) for b in batches)
    shuffled = torch.randperm(3000, generator=torch.Generator().manual_seed(0)).split(64)
    padded_random = sum(len(b) * int(lengths[b].max()) for b in shuffled)
    assert padded < 0.7 * padded_random  # texts of similar length share a batch
    assert [b.tolist() for b in _bucketed(lengths, 64)] == [b.tolist() for b in batches]  # seeded
    assert [b.tolist() for b in _bucketed(lengths, 64, seed=1)] != [b.tolist() for b in batches]


def test_bucketed_batches_come_in_a_shuffled_order_not_longest_first():
    lengths = torch.arange(64 * 40) % 64 + 1
    longest = [int(lengths[b].max()) for b in _bucketed(lengths, 64)]
    assert longest != sorted(longest, reverse=True) and longest != sorted(longest)


def test_feature_data_has_token_lengths_only_when_it_gathers_sequences(feats):
    with_seq = FeatureData(feats, GUIDS, LABELS_)
    assert torch.equal(with_seq.lengths, with_seq.tensors["text_mask"].sum(1))
    assert FeatureData(feats, GUIDS, LABELS_, sequences=False).lengths is None


def test_an_ensemble_over_two_text_encoders_gets_one_view_per_encoder_each_with_its_own_features(feats, tmp_path):
    from synthetic import make_features

    from lab5.batches import EnsembleData
    from lab5.features import Features

    other = make_features(GUIDS, LABELS_, dt=12, length=4, seed=5).text
    cfg = small_config(tmp_path, model="late+cross_attention", text_encoder="minilm+other")
    data = make_data(cfg.model_group, None, GUIDS, LABELS_, Features({"minilm": feats.text, "other": other}, feats.image))
    assert isinstance(data, EnsembleData) and list(data.views) == ["minilm", "other"] and len(data) == len(GUIDS)
    b = data.batch(torch.arange(5))
    for name, fs in (("minilm", feats.text), ("other", other)):
        mine = FeatureData(Features({name: fs}, feats.image), GUIDS, LABELS_).batch(torch.arange(5))
        assert b[name].keys() == mine.keys() and all(torch.equal(b[name][k], mine[k]) for k in mine)
        assert torch.equal(data.views[name].lengths, fs.mask[fs.rows(GUIDS)].sum(1))
    assert b["other"]["text_pooled"].shape[1] == 12 and torch.equal(data.labels, mine_labels := FeatureData(feats, GUIDS, LABELS_).labels) and len(mine_labels) == len(GUIDS)
