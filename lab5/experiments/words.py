"""What reading the words in the images adds: the final model cross-validated with the words of each image
(:mod:`lab5.experiments.ocr`) used three ways, over training seeds, each paired per fold with the final model as it was::

    python -m lab5.experiments.words --seeds 0,1,2     (writes figures/05_image_words.csv and its .json)

* **appended** (a): ``tweet | words`` for both text encoders, where the image gave 2 or more words (the first 40);
* **appended, segmented**: the same with glued words split by ``wordninja`` (``THEREISABATTLE`` -> ``THERE IS A
  BATTLE``; the recogniser often drops the spaces between words);
* **beside** (b): the words as an input of their own: their pooled vector (each text encoder's) and their four VADER
  scores joined to the tweet's pooled vector (what the gated and late heads read; cross-attention reads tokens);
* **appended, 128 tokens** (c): appended, with ``max_length`` 128 so that the words are not cut.

One row per (row, seed, fold): the fold's accuracy and macro-F1 on all its rows, on the rows whose image gave words
and on the others.
"""
from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pandas as pd
import torch

from ..config import Config, text_encoder_names
from ..evaluation import cv_runs, folds, train_folds
from ..features import Features, FeatureSet, encode_texts, load_features
from ..encoders import text_encoder
from ..metrics import metrics
from ..models import member_configs
from .ocr import image_words, with_words
from ..runtime import resolve_device
from ..text import lexicon_scores
from . import parser, run, seed_list

WORDS_FILE = "05_image_words.csv"
CONTROL = "final model"
ROWS = ("final model", "appended", "appended, segmented", "beside", "appended, 128 tokens")
MIN_WORDS = 2


def segmented(words: str) -> str:
    """``words`` with every run of 6 or more letters split into the words it most likely glues (``wordninja``)."""
    import wordninja

    return " ".join(" ".join(wordninja.split(w)) if w.isalpha() and len(w) >= 6 else w for w in words.split())


def with_texts(ds, texts: list[str]):
    """A copy of ``ds`` whose texts (train then test) are ``texts``."""
    n = len(ds.train)
    return dataclasses.replace(ds, train=ds.train.assign(text=texts[:n]), test=ds.test.assign(text=texts[n:]))


def words_beside(ds, cfg: Config, words: list[str]) -> dict[str, Features]:
    """Per text encoder, the final model's features with the words' pooled vector and VADER scores joined to the
    pooled text vector (zeros where the image gave fewer than :data:`MIN_WORDS` words)."""
    base = load_features(ds, cfg)
    has = np.array([len(w.split()) >= MIN_WORDS for w in words])
    kept = [w for w, h in zip(words, has) if h]
    out = {}
    for name in text_encoder_names(cfg.text_encoder):
        enc = text_encoder(name, cfg.cache)
        pooled, _, _ = encode_texts(enc, kept, max_length=cfg.max_length, device=resolve_device(cfg.device), jobs=cfg.jobs)
        extra = torch.zeros(len(words), pooled.shape[1] + 4)
        extra[torch.from_numpy(has)] = torch.cat([pooled, lexicon_scores(kept)], 1)
        t = base.texts[name]
        out[name] = Features({name: FeatureSet(t.guids, torch.cat([t.pooled, extra], 1), t.seq, t.mask, t.key + "+words")},
                             base.image)
    return out


def _beside_probs(ds, cfg: Config, feats: dict[str, Features]) -> np.ndarray:
    """OOF probabilities of the final model trained on :func:`words_beside` features: the mean of its members'."""
    members = member_configs(cfg)
    groups = [(feats[c.text_encoder], {m: c}) for m, c in members.items()]
    done = train_folds(groups, ds)
    return np.mean([np.asarray(g[m]["probs"]) for g, m in zip(done, members)], axis=0)


def scores(y: np.ndarray, probs: np.ndarray, split, has: np.ndarray) -> list[dict]:
    """Per fold: accuracy and macro-F1 on all its rows, on those whose image has words, and on the others."""
    rows = []
    for f, (_, te) in enumerate(split):
        row = {"fold": f}
        for part, mask in (("", np.ones(len(te), bool)), ("_words", has[te]), ("_no_words", ~has[te])):
            m = metrics(y[te][mask], probs[te][mask].argmax(1))
            row.update({f"accuracy{part}": m["accuracy"], f"macro_f1{part}": m["macro_f1"]})
        rows.append(row)
    return rows


def word_rows(ds, cfg: Config, seeds: list[int]) -> pd.DataFrame:
    """Every row of :data:`ROWS` at every training seed: one row per (row, seed, fold), see :func:`scores`."""
    words = list(image_words(ds, cfg.cache, cfg.jobs).words)
    texts = list(ds.all.text)
    has = np.array([len(w.split()) >= MIN_WORDS for w in words[:len(ds.train)]])
    appended = with_texts(ds, with_words(texts, words, MIN_WORDS))
    split_ds = with_texts(ds, with_words(texts, [segmented(w) for w in words], MIN_WORDS))
    y = ds.train.label.to_numpy()
    split = folds(y, cfg.folds, cfg.fold_seed)
    out = []
    for s in seeds:
        c = cfg.replace(seed=s)
        runs = {CONTROL: cv_runs(ds, {CONTROL: c})[CONTROL].probs,
                "appended": cv_runs(appended, {"a": c})["a"].probs,
                "appended, segmented": cv_runs(split_ds, {"a": c})["a"].probs,
                "beside": _beside_probs(ds, c, words_beside(ds, c, words)),
                "appended, 128 tokens": cv_runs(appended, {"a": c.replace(max_length=128)})["a"].probs}
        out += [{"model": name, "seed": s, **r} for name, p in runs.items() for r in scores(y, p, split, has)]
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> int:
    p = parser("python -m lab5.experiments.words", __doc__)
    p.add_argument("--seeds", type=seed_list, default="0,1,2", help="comma-separated training seeds (fold seed 0)")

    def build(args, cfg: Config, ds) -> tuple[pd.DataFrame, str]:
        table = word_rows(ds, cfg, args.seeds)
        return table.round(4), summary(table).to_string()

    return run(p, argv, f"per-fold table (CSV; default <output root>/figures/{WORDS_FILE})",
               lambda root, args: root.figures / WORDS_FILE, build)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per row: the mean over seed-folds of each score, its paired difference against :data:`CONTROL` (points) and
    the seed-folds where its accuracy is higher."""
    keys = ["seed", "fold"]
    control = table[table.model == CONTROL].set_index(keys)
    rows = {}
    cols = [c for c in table.columns if c.startswith(("accuracy", "macro_f1"))]
    for name, g in table.groupby("model", sort=False):
        d = g.set_index(keys)[cols] - control[cols].reindex(g.set_index(keys).index)
        rows[name] = {**{c: g[c].mean() for c in ("accuracy", "macro_f1")},
                      **{f"Δ {c}": 100 * d[c].mean() for c in cols},
                      "won": f"{int((d.accuracy > 0).sum())}/{len(d)}"}
    out = pd.DataFrame(rows).T
    return out.astype({c: float for c in out.columns if c != "won"})


if __name__ == "__main__":
    sys.exit(main())
