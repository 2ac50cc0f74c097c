"""``python -m lab5 bench``: speed and memory of the cached pipeline, and of the naive one it replaces.

The naive pipeline is the reference report's: every epoch re-encodes every text and image through the frozen
encoders before the fusion head sees them. Both are timed in the same run on the same machine.
"""
from __future__ import annotations

import platform
import resource
import time

import pandas as pd
import torch

from .batches import FeatureData, make_data
from .config import Config, text_encoder_names
from .data import load_dataset
from .encoders import image_encoder, text_encoder
from .features import ImageFolder, encode_images, encode_texts, load_features
from .models import MODELS, Classifier, build_head, build_model
from .pipeline import train_model
from .runtime import reproducible
from .splits import get_split
from .training import fit, predict_logits


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (MiB, Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def run_bench(cfg: Config, cold_pairs: int = 256, naive_pairs: int = 0, models: list[str] | None = None) -> str:
    """Measure and return the benchmark table as text (see the module docstring).

    ``cold_pairs``: pairs encoded from scratch to time cold extraction; ``naive_pairs``: pairs of the naive epoch
    timed (0: the whole training split; fewer are scaled linearly to one epoch, and the table says so).
    """
    cfg = cfg.replace(progress=False)
    with reproducible(cfg.seed, cfg.threads):  # every timing at the config's thread count
        return _bench(cfg, cold_pairs, naive_pairs, models)


def _bench(cfg: Config, cold_pairs: int, naive_pairs: int, models: list[str] | None) -> str:
    ds = load_dataset(cfg.data)
    split = get_split(ds, cfg.cache)
    rows = []
    # extraction speed is timed on the first text encoder of the config (the others run the same code)
    tenc = text_encoder(text_encoder_names(cfg.text_encoder)[0], cfg.cache)
    ienc = image_encoder(cfg.image_encoder, cfg.image_size, cfg.seed)
    sample = list(ds.all.guid[:cold_pairs])
    texts = ds.all.set_index("guid").loc[sample, "text"].tolist()
    _, t_text_old = _timed(lambda: _old_encode_texts(tenc, texts, cfg))
    _, t_img_old = _timed(lambda: _old_encode_images(ienc, ds, sample, cfg))
    _, t_text = _timed(lambda: encode_texts(tenc, texts, cfg))
    _, t_img = _timed(lambda: encode_images(ienc, ds, sample, cfg))
    for what, new, old in ((f"text ({tenc.name})", t_text, t_text_old), (f"image ({ienc.name})", t_img, t_img_old)):
        rows.append(("features, cold", f"{what}, old path", f"{len(sample) / old:.1f} pairs/s"))
        rows.append(("features, cold", f"{what}, new path", f"{len(sample) / new:.1f} pairs/s ({old / new:.1f}x)"))
    rows.append(("features, cold", "all pairs, estimated", f"{len(ds.all) * (t_text + t_img) / len(sample):.0f} s "
                 f"(old path {len(ds.all) * (t_text_old + t_img_old) / len(sample):.0f} s)"))
    load_features(ds, cfg)  # make sure the cache is filled before timing a warm load
    feats, t_warm = _timed(lambda: load_features(ds, cfg))
    rows.append(("features, warm", f"{len(ds.all)} pairs from the cache", f"{t_warm:.1f} s ({len(ds.all) / t_warm:.0f} pairs/s)"))

    for m in models or list(MODELS):
        res, t = _timed(lambda: train_model(cfg.replace(model=m), ds, feats, cache=False))  # time training, not a read
        rows.append(("train from cache", f"{m} ({len(res.history)} epochs)", f"{t:.1f} s"))
    model = res.model
    test = make_data(cfg.replace(model=m), ds, list(ds.test.guid), None, feats)
    _, t_pred = _timed(lambda: predict_logits(model, test, cfg))
    rows.append(("predict", f"{len(ds.test)} test pairs ({m})", f"{len(ds.test) / t_pred:.0f} pairs/s"))

    # one epoch of the concat head, cached versus naive
    labels = ds.train.set_index("guid").label
    guids = list(split.train)
    c1 = cfg.replace(model="concat", epochs=1, text_features="tokens", text_encoder=tenc.name)  # encoder outputs only
    plain = load_features(ds, c1)
    cached_model = build_model(c1, plain.dims())
    _, t_cached = _timed(lambda: fit(cached_model, FeatureData(plain, guids, labels.loc[guids].to_numpy(), sequences=False), None, c1))
    n = naive_pairs or len(guids)
    t_naive = _naive_epoch(c1, ds, guids[:n], labels, tenc, ienc, plain.dims()) * len(guids) / n
    rows.append(("one epoch, concat", "cached features", f"{t_cached:.2f} s"))
    rows.append(("one epoch, concat", "naive: re-encode every pair" + ("" if n == len(guids) else f" ({n} pairs timed, scaled)"),
                 f"{t_naive:.1f} s"))
    rows.append(("one epoch, concat", "speed-up of the cache", f"{t_naive / t_cached:.0f}x"))
    rows.append(("memory", "peak RSS of this run", f"{peak_rss_mib():.0f} MiB"))
    table = pd.DataFrame(rows, columns=["what", "measured on", "result"])
    head = f"lab5 bench: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
    return head + "\n" + table.to_string(index=False)


def _old_encode_texts(enc, texts: list[str], cfg: Config, batch_size: int = 64) -> None:
    """The extraction path before feature format 2 (the bench's control): every text padded to ``max_length``,
    batches in file order."""
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            t = enc.tokenize(texts[i:i + batch_size], cfg.max_length)
            enc(t["input_ids"], t["attention_mask"])


def _old_encode_images(enc, ds, guids: list[str], cfg: Config, batch_size: int = 32) -> None:
    """The extraction path before feature format 2 (the bench's control): default (contiguous) memory format."""
    enc = enc.to(memory_format=torch.contiguous_format)
    loader = torch.utils.data.DataLoader(ImageFolder(ds, guids, enc.spec.transform(), enc.spec.resize), batch_size=batch_size)
    with torch.inference_mode():
        for x in loader:
            enc(x)


def _naive_epoch(cfg: Config, ds, guids, labels, tenc, ienc, dims) -> float:
    """Seconds for one epoch that re-encodes every batch's texts and images through the frozen encoders."""
    model = Classifier(build_head("concat", dims, cfg))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    folder = ImageFolder(ds, guids, ienc.spec.transform(), ienc.spec.resize)
    texts = ds.all.set_index("guid").loc[guids, "text"].tolist()
    y = torch.tensor(labels.loc[guids].to_numpy())
    t = time.perf_counter()
    for s in range(0, len(guids), cfg.batch_size):
        idx = range(s, min(s + cfg.batch_size, len(guids)))
        with torch.inference_mode():
            tok = tenc.tokenize([texts[i] for i in idx], cfg.max_length)
            tp, _, _ = tenc(tok["input_ids"], tok["attention_mask"])
            ip, _, _ = ienc(torch.stack([folder[i] for i in idx]))
        loss = torch.nn.functional.cross_entropy(model({"text_pooled": tp.clone(), "image_pooled": ip.clone()}), y[list(idx)])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - t
