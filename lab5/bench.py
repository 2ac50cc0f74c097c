"""``python -m lab5 bench``: speed and memory of the cached pipeline, and of the paths it replaces.

Each optimisation is timed against the path before it in the same run: feature extraction one batch at a time on
two threads against batches side by side on one thread each; a cross-attention training step on random batches
against length-bucketed ones; CV fold trainings one after another against side by side; and a cached epoch against
the naive pipeline of the reference report, which re-encodes every text and image through the frozen encoders
every epoch. The stages of the last ``reproduce --profile`` follow the table when the cache holds them.
"""
from __future__ import annotations

import platform
import resource
import time
from pathlib import Path

import pandas as pd
import torch

from . import profile
from .batches import FeatureData, make_data
from .config import Config, text_encoder_names
from .data import load_dataset
from .encoders import image_encoder, text_encoder
from .evaluation import folds
from .features import ImageFolder, encode_images, encode_texts, load_features
from .heads import MODELS
from .models import Classifier, build_head, build_model
from .pipeline import train_model
from .runtime import reproducible, resolve_device
from .splits import get_split
from .parallel import run_all
from .training import fit, predict_logits, train_classifier


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
    # extraction speed is timed on the first text encoder of the config (the others run the same code): one batch at
    # a time on cfg.threads threads, against cfg.jobs batches side by side on one thread each (what lab5 does)
    tenc = text_encoder(text_encoder_names(cfg.text_encoder)[0], cfg.cache)
    ienc = image_encoder(cfg.image_encoder, cfg.image_size, cfg.seed)
    sample = list(ds.all.guid[:cold_pairs])
    texts = ds.rows(sample).text.tolist()
    old, new = f"one batch at a time on {_n(cfg.threads, 'thread')}", f"{_n(cfg.jobs, 'batch')} side by side on one thread each"
    device = resolve_device(cfg.device)
    _, t_text_old = _timed(lambda: encode_texts(tenc, texts, max_length=cfg.max_length, device=device))
    _, t_img_old = _timed(lambda: encode_images(ienc, ds, sample, device=device))
    with reproducible(cfg.seed, 1):
        _, t_text = _timed(lambda: encode_texts(tenc, texts, max_length=cfg.max_length, device=device, jobs=cfg.jobs))
        _, t_img = _timed(lambda: encode_images(ienc, ds, sample, device=device, jobs=cfg.jobs))
    for what, t_new, t_old in ((f"text ({tenc.name})", t_text, t_text_old), (f"image ({ienc.name})", t_img, t_img_old)):
        rows.append(("features, cold", f"{what}, {old}", f"{len(sample) / t_old:.1f} pairs/s"))
        rows.append(("features, cold", f"{what}, {new}", f"{len(sample) / t_new:.1f} pairs/s ({t_old / t_new:.1f}x)"))
    rows.append(("features, cold", "all pairs, estimated", f"{len(ds.all) * (t_text + t_img) / len(sample):.0f} s "
                 f"(one batch at a time: {len(ds.all) * (t_text_old + t_img_old) / len(sample):.0f} s)"))
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
    rows += _training_paths(cfg, ds, feats)

    # one epoch of the concat head, cached versus naive
    guids = list(split.train)
    c1 = cfg.replace(model="concat", epochs=1, text_features="tokens", text_encoder=tenc.name)  # encoder outputs only
    plain = load_features(ds, c1)
    cached_model = build_model(c1, plain.dims())
    y = ds.rows(guids, labelled=True).label.to_numpy()
    _, t_cached = _timed(lambda: fit(cached_model, FeatureData(plain, guids, y, sequences=False), None, c1))
    n = naive_pairs or len(guids)
    t_naive = _naive_epoch(c1, ds, guids[:n], tenc, ienc, plain.dims()[c1.text_encoder]) * len(guids) / n
    rows.append(("one epoch, concat", "cached features", f"{t_cached:.2f} s"))
    rows.append(("one epoch, concat", "naive: re-encode every pair" + ("" if n == len(guids) else f" ({n} pairs timed, scaled)"),
                 f"{t_naive:.1f} s"))
    rows.append(("one epoch, concat", "speed-up of the cache", f"{t_naive / t_cached:.0f}x"))
    rows.append(("memory", "peak RSS of this run", f"{peak_rss_mib():.0f} MiB"))
    table = pd.DataFrame(rows, columns=["what", "measured on", "result"])
    head = f"lab5 bench: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
    out = head + "\n" + table.to_string(index=False)
    stages = Path(cfg.cache) / "profile.jsonl"
    if stages.is_file() and stages.stat().st_size:
        out += f"\n\nstages of the last `reproduce --profile` ({stages}):\n" + profile.table(profile.read(stages)).to_string(index=False)
    return out


def _n(k: int, word: str) -> str:
    """``2 threads``, ``1 thread``, ``2 batches``."""
    return f"{k} {word}" + ("" if k == 1 else "es" if word.endswith("ch") else "s")


#: the head whose training steps the bench times both ways (the costliest per step)
TIMED_HEAD = "cross_attention"


def _training_paths(cfg: Config, ds, feats) -> list[tuple[str, str, str]]:
    """The five fold trainings of a CV of :data:`TIMED_HEAD`, both ways in the same run: one after another, against
    ``cfg.jobs`` side by side (one thread each)."""
    c = cfg.replace(model=TIMED_HEAD, text_encoder=text_encoder_names(cfg.text_encoder)[0])
    y = ds.train.label.to_numpy()
    parts = [tr for tr, _ in folds(y, c.folds, c.fold_seed)]
    guids = ds.train.guid.to_numpy()
    mine = feats.of(c.text_encoder)  # the first text encoder's features alone
    dims = mine.dims()

    def train(rows) -> None:
        model = build_model(c, dims)
        train_classifier(model, make_data(c, ds, guids[rows], y[rows], mine), None, c, threads=1)

    _, cv_old = _timed(lambda: [train(tr) for tr in parts])
    _, cv_new = _timed(lambda: run_all(train, parts, cfg.jobs))
    what = f"train {TIMED_HEAD}"
    return [(what, f"{len(parts)} CV fold trainings one after another", f"{cv_old:.1f} s"),
            (what, f"{len(parts)} CV fold trainings, {cfg.jobs} side by side", f"{cv_new:.1f} s ({cv_old / cv_new:.1f}x)")]


def _naive_epoch(cfg: Config, ds, guids, tenc, ienc, dims) -> float:
    """Seconds for one epoch that re-encodes every batch's texts and images through the frozen encoders."""
    model = Classifier(build_head("concat", dims, cfg), {cfg.text_encoder: dims})
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    folder = ImageFolder(ds, guids, ienc.spec.transform(), ienc.spec.resize)
    rows = ds.rows(guids, labelled=True)
    texts, y = rows.text.tolist(), torch.tensor(rows.label.to_numpy())
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
