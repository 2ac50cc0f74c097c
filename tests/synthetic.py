"""Synthetic data for the tests: datasets laid out like the course data, separable features, tiny encoders.

Nothing here needs the internet or the course data. Imported by ``conftest.py`` (the fixtures) and by test modules
(``from synthetic import make_dataset``); it is not named ``conftest`` so that it never clashes with
``notebooks/conftest.py``.
"""
from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# lab5 first: its __init__ pins the CPU numerics in the environment, which works only before torch is imported
import lab5  # noqa: E402, F401, I001

import io  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from lab5.config import Config  # noqa: E402
from lab5.data import LABELS  # noqa: E402
from lab5.features import Features, FeatureSet  # noqa: E402

# one thread: the tests' models are tiny, and on a busy 2-core machine torch's thread pool spins badly
torch.set_num_threads(1)


# a few texts per class; GBK text included so the synthetic data exercises both decoders
TEXTS = {
    "positive": ["what a lovely sunny day", "so happy with the new puppy", "best concert ever #joy"],
    "neutral": ["the bus leaves at nine", "meeting moved to room 4", "it is a chair"],
    "negative": ["worst traffic jam ever", "my phone broke again #sad", "terrible food and rude staff"],
}


COLOURS = {"positive": (230, 200, 40), "neutral": (128, 128, 128), "negative": (20, 30, 160)}


def jpeg_bytes(colour=(128, 128, 128), size=(32, 32), mode="RGB", noise: int | None = None) -> bytes:
    """A small JPEG: a solid colour, or seeded noise when ``noise`` is a seed."""
    if noise is not None:
        rng = np.random.default_rng(noise)
        img = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    else:
        img = Image.new("RGB", size, colour)
    if mode != "RGB":
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def make_dataset(tmp_path: Path, n_train: int = 12, n_test: int = 3, *, name: str = "ds",
                 tags: list[str] | None = None, first_guid: int = 1) -> Path:
    """A dataset folder laid out like the course data, under ``tmp_path/name``.

    Train tags cycle positive, neutral, negative (or ``tags``); test guids follow the train guids.
    Texts and images depend on the class, so the data carries a learnable signal.
    """
    root = Path(tmp_path) / name
    (root / "data").mkdir(parents=True)
    tags = list(tags) if tags is not None else [("positive", "neutral", "negative")[i % 3] for i in range(n_train)]
    assert len(tags) == n_train
    train_guids = [str(first_guid + i) for i in range(n_train)]
    test_guids = [str(first_guid + n_train + i) for i in range(n_test)]
    (root / "train.txt").write_text("guid,tag\n" + "".join(f"{g},{t}\n" for g, t in zip(train_guids, tags)))
    (root / "test_without_label.txt").write_text("guid,tag\n" + "".join(f"{g},null\n" for g in test_guids))
    for k, (g, t) in enumerate([*zip(train_guids, tags), *zip(test_guids, [LABELS[i % 3] for i in range(n_test)])]):
        text = TEXTS[t][k % len(TEXTS[t])] + f" #{g}"
        (root / "data" / f"{g}.txt").write_text(text, encoding="utf-8")
        (root / "data" / f"{g}.jpg").write_bytes(jpeg_bytes(COLOURS[t]))
    return root


#: LAB5_DATA as the session started (the autouse fixture hides it from the tests)
REAL_DATA_DIR = os.environ.get("LAB5_DATA")


def small_config(tmp_path: Path, **kw) -> Config:
    """A fast CPU config for synthetic runs."""
    base = dict(data=Path(tmp_path) / "ds", cache=Path(tmp_path) / "cache", device="cpu", progress=False,
                hidden=32, attention_hidden=16, dropout=0.0, epochs=3, batch_size=8, lr=5e-3,
                max_length=16, folds=3, text_features="tokens", text_encoder="minilm",
                jobs=1)  # in this process, where the tests' spies see every call
    base.update(kw)
    return Config(**base)


# --------------------------------------------------------------------------- synthetic features
def make_features(guids, labels, *, dt: int = 16, di: int = 8, length: int = 6, regions: int = 9,
                  noise: float = 0.3, seed: int = 0, encoder: str = "minilm") -> Features:
    """Linearly separable features: each class has its own mean in both modalities (and in every token).

    Text sequences are right-padded with varying lengths; padded positions hold garbage that must be ignored.
    """
    g = torch.Generator().manual_seed(seed)
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long).clamp(min=0)
    n = len(guids)
    mt = torch.randn(3, dt, generator=g) * 2
    mi = torch.randn(3, di, generator=g) * 2
    tp = mt[labels] + noise * torch.randn(n, dt, generator=g)
    ip = mi[labels] + noise * torch.randn(n, di, generator=g)
    lengths = 2 + torch.arange(n) % (length - 1)
    tmask = torch.arange(length)[None, :] < lengths[:, None]
    tseq = tp[:, None, :] + noise * torch.randn(n, length, dt, generator=g)
    tseq = torch.where(tmask[..., None], tseq, 7.0 * torch.randn(n, length, dt, generator=g))
    iseq = ip[:, None, :] + noise * torch.randn(n, regions, di, generator=g)
    imask = torch.ones(n, regions, dtype=torch.bool)
    guids = list(guids)
    return Features({encoder: FeatureSet(guids, tp.float(), tseq.half(), tmask, "fake-text")},
                    FeatureSet(guids, ip.float(), iseq.half(), imask, "fake-image"))


def _tiny_text_encoder(tokenizer):
    """A one-layer, 16-wide BERT (seeded random weights) behind MiniLM's tokenizer: fast, same interface."""
    from transformers import BertConfig, BertModel

    from lab5.encoders import TextEncoder

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=128))
    return TextEncoder("tiny-bert", model.eval(), tokenizer, "tiny-bert-fp")


def _tiny_image_encoder():
    """A two-conv CNN on 32x32 inputs (seeded): the ImageEncoder interface without EfficientNet's CPU cost."""
    from torch import nn

    from lab5.encoders import ImageEncoder, ImageSpec

    with torch.random.fork_rng():
        torch.manual_seed(0)
        body = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                             nn.Conv2d(8, 12, 3, stride=2, padding=1), nn.ReLU())
    return ImageEncoder("tiny-cnn", body.eval(), lambda b, x: b(x), 12, ImageSpec(32, 36), "tiny-cnn-fp", lambda b: [b[3]])


# 30 synthetic rows shared by the model and training tests
N = 30


GUIDS = [f"g{i}" for i in range(N)]


LABELS_ = [i % 3 for i in range(N)]


def work_folder(tmp_path: Path, monkeypatch) -> Path:
    """Make ``tmp_path/work`` the current directory (a working folder apart from the datasets beside it)."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def snapshot(*roots: Path) -> dict[str, tuple]:
    """(mtime, size) of every file and folder under ``roots`` (a folder's mtime changes when anything is created in
    it, even a temporary file removed again)."""
    out = {}
    for root in map(Path, roots):
        if not root.exists():
            continue
        for p in [root, *root.rglob("*")]:
            st = p.lstat()
            out[str(p)] = (st.st_mtime_ns, st.st_size if p.is_file() else "dir")
    return out
