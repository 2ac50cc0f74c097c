"""Command line: ``python -m lab5 {validate,features,train,cv,evaluate,predict,reproduce,bench}``.

A user's mistake (bad data, unknown option value, missing weights) prints one line and exits 2; never a traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path

import pandas as pd

from .config import REPO_ROOT, Config, ConfigError
from .data import DataError
from .encoders import EncoderUnavailable
from .reproduce import NotebookFailed

log = logging.getLogger("lab5")
USER_ERRORS = (DataError, EncoderUnavailable, ConfigError, NotebookFailed)
DEFAULT_PREDICTIONS = REPO_ROOT / "test_with_label.txt"


def _add_config_options(p: argparse.ArgumentParser) -> None:
    """One option per Config field (``--text-encoder``, ``--lr``, ``--finetune``, ...)."""
    for f in dataclasses.fields(Config):
        flag = "--" + f.name.replace("_", "-")
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        help_ = f"{f.metadata.get('help', '')} (default: {default})"
        if f.type in ("bool", bool):
            if default:
                p.add_argument("--no-" + f.name.replace("_", "-"), dest=f.name, action="store_false", help=help_)
            else:
                p.add_argument(flag, dest=f.name, action="store_true", help=help_)
        else:
            typ = {"int": int, "float": float, "Path": Path}.get(str(f.type), str)
            p.add_argument(flag, dest=f.name, type=typ, default=argparse.SUPPRESS, help=help_)


def config_from_args(args: argparse.Namespace) -> Config:
    names = {f.name for f in dataclasses.fields(Config)}
    return Config(**{k: v for k, v in vars(args).items() if k in names})


# --------------------------------------------------------------------------- commands
def cmd_validate(cfg: Config, args) -> int:
    from .data import LABELS, check_images, get_split, load_dataset

    ds = load_dataset(cfg.data)
    img = check_images(ds, progress=cfg.progress)
    split = get_split(ds)
    enc = ds.encodings()
    counts = ds.train.tag.value_counts()
    print(f"dataset {ds.root}: OK")
    print(f"  pairs: {len(ds.train)} train (labelled) + {len(ds.test)} test; {ds.unlisted} pairs in data/ in neither list")
    print("  classes: " + ", ".join(f"{c} {counts.get(c, 0)} ({counts.get(c, 0) / max(1, len(ds.train)):.1%})" for c in LABELS))
    print(f"  text encodings: {enc.get('utf-8', 0)} UTF-8, {enc.get('gb18030', 0)} GBK/GB18030"
          + (f", {enc['gb18030+replace']} with {int(ds.all.replaced.sum())} undecodable bytes replaced by U+FFFD"
             if enc.get("gb18030+replace") else ""))
    if ds.empty_texts:
        print(f"  empty texts (kept, image only): {len(ds.empty_texts)}: {', '.join(ds.empty_texts[:5])}"
              + (" ..." if len(ds.empty_texts) > 5 else ""))
    print(f"  images: {img.count} decoded; sizes {img.min_size[0]}x{img.min_size[1]} to {img.max_size[0]}x{img.max_size[1]}; "
          f"modes {dict(img.modes)}")
    print(f"  validation split: {len(split.val)} of {len(ds.train)} labelled rows ({split.path.name})")
    return 0


def cmd_features(cfg: Config, args) -> int:
    from .data import load_dataset
    from .features import image_features, text_features

    ds = load_dataset(cfg.data)
    for kind, fn in (("text", text_features), ("image", image_features)):
        t = time.perf_counter()
        fs = fn(ds, cfg)
        print(f"{kind}: {len(fs.guids)} pairs, pooled {tuple(fs.pooled.shape)}, sequence {tuple(fs.seq.shape)} "
              f"[{time.perf_counter() - t:.1f}s]")
    return 0


def _features_or_none(cfg: Config, ds):
    from .features import load_features

    return None if cfg.finetune else load_features(ds, cfg)


def cmd_train(cfg: Config, args) -> int:
    from .data import load_dataset
    from .training import model_meta, save_checkpoint, train_model

    ds = load_dataset(cfg.data)
    t = time.perf_counter()
    res = train_model(cfg, ds, _features_or_none(cfg, ds))
    out = Path(args.out or REPO_ROOT / "runs" / cfg.model)
    save_checkpoint(out, res.model, cfg, model_meta(res.model, res))
    took = f"[{time.perf_counter() - t:.1f}s] -> {out}"
    if "member" in res.history:  # an ensemble: one early-stopped run per member
        best = res.history[res.history.best]
        epochs = ", ".join(f"{r.member} {r.epoch}" for r in best.itertuples())
        print(f"{cfg.model}: best epochs {epochs}; ensemble validation macro-F1 {res.best_val_macro_f1:.3f} {took}")
        return 0
    last = res.history.set_index("epoch").loc[res.best_epoch]
    print(f"{cfg.model}: best epoch {res.best_epoch}/{len(res.history)}, validation accuracy {last.get('val_accuracy', float('nan')):.3f}, "
          f"macro-F1 {last.get('val_macro_f1', float('nan')):.3f} {took}")
    return 0


def cmd_cv(cfg: Config, args) -> int:
    from .data import load_dataset
    from .evaluation import baseline_row, cross_validate, summarize
    from .features import load_features

    if cfg.finetune:
        raise ConfigError("cv runs on cached features; drop --finetune")
    ds = load_dataset(cfg.data)
    models = args.models.split(",") if args.models else [cfg.model]
    cv = cross_validate(cfg, ds, load_features(ds, cfg), models)
    cv = pd.concat([baseline_row(ds.train.label, cfg.folds, cfg.seed), cv])
    print(f"{cfg.folds}-fold cross-validation on {len(ds.train)} labelled rows (mean ± std over folds)")
    print(summarize(cv, ["accuracy", "macro_f1", "f1_neutral"]).to_string())
    if args.out:
        cv.to_csv(args.out, index=False)
    return 0


def cmd_evaluate(cfg: Config, args) -> int:
    from .data import load_dataset
    from .evaluation import confusion, metrics, validation_predictions
    from .features import load_features

    model, cfg = _load_checkpoint(args.checkpoint, cfg)
    ds = load_dataset(cfg.data)
    y, pred = validation_predictions(model, cfg, ds, None if cfg.finetune else load_features(ds, cfg))
    m = metrics(y, pred)
    print(f"{cfg.model} on the {len(y)} validation rows: accuracy {m['accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f}, "
          f"weighted-F1 {m['weighted_f1']:.3f}")
    print(confusion(y, pred).to_string())
    return 0


def _load_checkpoint(path, cfg: Config):
    from .training import load_model

    model, saved = load_model(Path(path))
    return model, saved.replace(data=cfg.data, cache=cfg.cache, device=cfg.device, progress=cfg.progress)


def cmd_predict(cfg: Config, args) -> int:
    from .data import load_dataset
    from .training import predict_test

    ds = load_dataset(cfg.data)
    if len(ds.test) == 0:
        raise DataError(f"{ds.root}: no test_without_label.txt to predict")
    if args.checkpoint:
        model, cfg = _load_checkpoint(args.checkpoint, cfg)
        ds = load_dataset(cfg.data)
    else:
        model = None
    out = Path(args.out)
    predicted = predict_test(cfg, ds, model, out)
    counts = pd.Series(predicted).value_counts()
    print(f"wrote {len(ds.test)} predictions to {out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def cmd_reproduce(cfg: Config, args) -> int:
    from .data import load_dataset
    from .reproduce import run_notebooks

    ds = load_dataset(cfg.data)  # bad data: one clear error (exit 2) before any notebook starts
    times = run_notebooks(ds.root, only=args.only)
    print(f"reproduced {len(times)} notebooks in {sum(t for _, t in times):.0f}s: "
          + ", ".join(f"{n} {t:.0f}s" for n, t in times))
    return 0


def cmd_bench(cfg: Config, args) -> int:
    from .bench import run_bench

    print(run_bench(cfg, cold_pairs=args.cold_pairs, naive_pairs=args.naive_pairs))
    return 0


COMMANDS = {
    "validate": (cmd_validate, "check a dataset folder and print a summary (exit 2 on any problem)"),
    "features": (cmd_features, "compute (or load) the cached encoder features of every pair"),
    "train": (cmd_train, "train one model on the committed split and save a checkpoint"),
    "cv": (cmd_cv, "stratified k-fold cross-validation of one or more models on cached features"),
    "evaluate": (cmd_evaluate, "score a checkpoint on the committed validation split"),
    "predict": (cmd_predict, "write guid,tag predictions for test_without_label.txt"),
    "reproduce": (cmd_reproduce, "execute notebooks 01-06 in order: figures/ and test_with_label.txt"),
    "bench": (cmd_bench, "benchmark the cached pipeline against the naive one (speed, memory)"),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lab5", description="Multimodal tweet sentiment analysis (text + image).")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_, description=help_)
        _add_config_options(sp)
        if name == "train":
            sp.add_argument("--out", help="checkpoint folder (default runs/MODEL)")
        if name == "cv":
            sp.add_argument("--models", help="comma-separated model names (default: --model)")
            sp.add_argument("--out", help="write the per-fold table to this CSV")
        if name == "evaluate":
            sp.add_argument("--checkpoint", required=True, help="checkpoint folder written by train")
        if name == "predict":
            sp.add_argument("--out", default=str(DEFAULT_PREDICTIONS), help="predictions file (default test_with_label.txt)")
            sp.add_argument("--checkpoint", help="use this checkpoint instead of training the final model")
        if name == "bench":
            sp.add_argument("--cold-pairs", type=int, default=256, help="pairs encoded from scratch to time cold extraction")
            sp.add_argument("--naive-pairs", type=int, default=0, help="pairs of the naive epoch to time (0: all, else scaled)")
        if name == "reproduce":
            sp.add_argument("--only", help="comma-separated notebook numbers to run (default: all)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        cfg = config_from_args(args)
        return COMMANDS[args.command][0](cfg, args)
    except USER_ERRORS as e:
        lines = getattr(e, "problems", None) or str(e).splitlines() or [type(e).__name__]
        print(f"error: {lines[0]}", file=sys.stderr)
        for line in lines[1:]:
            print(f"  {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: files written so far are complete; earlier outputs are intact", file=sys.stderr)
        return 130
