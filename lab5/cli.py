"""Command line: ``python -m lab5 {validate,features,train,cv,evaluate,predict,reproduce,tune}``.

A user's mistake prints one ``error:`` line and exits 2, never a traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path

import pandas as pd

from . import profile
from .config import AT_MOST, GROUPS, Config, field_types, find_project, text_encoder_names
from .data import LABELS, load_dataset
from .errors import ConfigError, DataError, EncoderUnavailable, UserError
from .evaluation import baseline_row, cross_validate
from .features import image_features, load_features, text_features
from .images import check_images
from .metrics import confusion, metrics, summarize
from .outputs import check_writable, is_course_data, output_root
from .pipeline import load_model, predict_test, save_checkpoint, train_model, training_rows, validation_predictions
from .reproduce import notebook_paths, run_notebooks, strip_ansi
from .splits import get_split
from .runtime import provenance, write_table
from .tuning import SEARCH_FOLD_SEED, chosen, search, trial_configs, trials_file

log = logging.getLogger("lab5")
USER_ERRORS = (UserError, EncoderUnavailable)


class Parser(argparse.ArgumentParser):
    """argparse, with a usage mistake reported as one ``error:`` line (``--help`` still shows the usage)."""

    def error(self, message: str):
        self.exit(2, f"error: {message}\n")


def report_error(e: Exception) -> int:
    """Print a user's mistake as one ``error:`` line (further problems indented below it); the exit status 2."""
    lines = [strip_ansi(line) for line in (getattr(e, "problems", None) or str(e).splitlines() or [type(e).__name__])]
    print(f"error: {lines[0]}", file=sys.stderr)
    for line in lines[1:]:
        print(f"  {line}", file=sys.stderr)
    return 2


class OneLineHelp(argparse.HelpFormatter):
    """``--help`` with one line per option, its help cut to the terminal's width but for its default."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        head, sep, default = text.rpartition(" (default: ")
        head, tail = (head, sep + default) if sep else (text, "")
        if len(tail) > width // 2:
            tail = sep + "…" + default[-(width // 2 - len(sep) - 1):]
        if len(head + tail) > width:
            head = head[:max(0, width - len(tail) - 1)].rsplit(" ", 1)[0] + "…"
        return [head + tail]


def _add_config_options(p, names: tuple[str, ...]) -> None:
    """One option per named Config field; an option not given is left out of the namespace."""
    types, fields = field_types(), {f.name: f for f in dataclasses.fields(Config)}
    for name in names:
        f, flag = fields[name], "--" + name.replace("_", "-")
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        help_ = f"{f.metadata.get('help', '')} (default: {default})"
        if types[name] is bool:
            p.add_argument("--no-" + flag[2:] if default else flag, dest=name, action="store_false" if default else
                           "store_true", default=argparse.SUPPRESS, help=help_)
        else:
            typ = {int: int, float: float, Path: Path, Path | None: Path}.get(types[name], str)
            p.add_argument(flag, dest=name, type=typ, default=argparse.SUPPRESS, help=help_,
                           metavar={int: "N", float: "X", str: "NAME"}.get(typ, "DIR"))


def config_from_args(args: argparse.Namespace) -> Config:
    """The Config of the given options."""
    names = {f.name for f in dataclasses.fields(Config)}
    return Config(**{k: v for k, v in vars(args).items() if k in names})


# --------------------------------------------------------------------------- commands
def cmd_validate(cfg: Config, args) -> int:
    """Reads and reports; writes nothing anywhere (a split not stored yet is drawn in memory)."""
    ds = load_dataset(cfg.data)
    img = check_images(ds.image_paths(), progress=cfg.progress)
    split = get_split(ds, cfg.cache, store=False)
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
    stored = f"stored in {split.path}" if split.path else "not stored yet: drawn with seed 0, stored in the cache on first training"
    print(f"  validation split: {len(split.val)} of {len(ds.train)} labelled rows ({stored})")
    print(f"  dataset fingerprint {ds.fingerprint}" + (" (the course data)" if is_course_data(ds) else ""))
    return 0


def cmd_features(cfg: Config, args) -> int:
    ds = load_dataset(cfg.data)
    jobs = [(f"text ({name})", text_features, cfg.replace(text_encoder=name)) for name in text_encoder_names(cfg.text_encoder)]
    for kind, fn, c in [*jobs, (f"image ({cfg.image_encoder})", image_features, cfg)]:
        t = time.perf_counter()
        fs = fn(ds, c)
        print(f"{kind}: {len(fs.guids)} pairs, pooled {tuple(fs.pooled.shape)}, sequence {tuple(fs.seq.shape)} "
              f"[{time.perf_counter() - t:.1f}s]")
    return 0


def cmd_train(cfg: Config, args) -> int:
    ds = load_dataset(cfg.data)
    out = Path(args.out) if args.out else output_root(cfg, ds).run(cfg.model)
    check_writable(out, what="checkpoint folder")
    split = get_split(ds, cfg.cache, store=False)
    training_rows(cfg, ds, split.train, split.val)  # a --train-rows beyond the training rows: refused before any work
    t = time.perf_counter()
    res = train_model(cfg, ds, None if cfg.finetune else load_features(ds, cfg))
    save_checkpoint(out, res.model, cfg, res)
    took = f"[{time.perf_counter() - t:.1f}s] -> {out}"
    print(f"{cfg.model}: {cfg.epochs} epochs, validation macro-F1 {res.val_macro_f1:.3f} {took}")
    return 0


def cmd_cv(cfg: Config, args) -> int:
    models = [m.strip() for m in args.models.split(",")] if args.models else [cfg.model]
    configs = {m: cfg.replace(model=m) for m in models}  # each checked before any work
    if args.out:
        check_writable(Path(args.out), folder=False, what="CSV file")
    made, t = provenance("lab5", args.argv), time.perf_counter()
    ds = load_dataset(cfg.data)
    scores = cross_validate(ds, configs)  # refuses --finetune and too few rows before any work
    cv = pd.concat([baseline_row(ds.train.label, cfg.folds, cfg.fold_seed), scores])
    print(f"{cfg.folds}-fold cross-validation on {len(ds.train)} labelled rows (mean ± std over folds)")
    print(summarize(cv, ["accuracy", "macro_f1", "f1_neutral"]).to_string())
    if args.out:
        write_table(Path(args.out), cv, made, t)
    return 0


def _checkpoint(args, cfg: Config) -> tuple:
    """The model and config of ``--checkpoint``, run where this command line says (its run options)."""
    return load_model(Path(args.checkpoint), **{k: getattr(cfg, k) for k in LOCAL})


def cmd_evaluate(cfg: Config, args) -> int:
    model, cfg = _checkpoint(args, cfg)
    ds = load_dataset(cfg.data)
    y, pred = validation_predictions(model, cfg, ds, None if cfg.finetune else load_features(ds, cfg))
    m = metrics(y, pred)
    print(f"{cfg.model} on the {len(y)} validation rows (the rows `train` scores each epoch on): "
          f"accuracy {m['accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f}, weighted-F1 {m['weighted_f1']:.3f}")
    print(confusion(y, pred).to_string())
    return 0


def cmd_predict(cfg: Config, args) -> int:
    ds = load_dataset(cfg.data)
    if len(ds.test) == 0:
        raise DataError(f"{ds.root}: no test_without_label.txt to predict")
    out = Path(args.out) if args.out else output_root(cfg, ds).predictions
    check_writable(out, folder=False, what="predictions file")
    model = None
    if args.checkpoint:  # the model it was saved with: no training, no CV
        model, cfg = _checkpoint(args, cfg)
    predicted = predict_test(cfg, ds, model, out)
    counts = pd.Series(predicted).value_counts()
    print(f"wrote {len(ds.test)} predictions to {out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def cmd_reproduce(cfg: Config, args) -> int:
    project = find_project()
    if project is None:
        raise ConfigError("reproduce runs a project checkout's notebooks: run it inside one (a folder with notebooks/ "
                          "and pyproject.toml)")
    paths = notebook_paths(project / "notebooks", args.only)
    ds = load_dataset(cfg.data)  # bad data: one clear error (exit 2) before any notebook starts
    out = output_root(cfg, ds).root
    check_writable(out)
    if out.resolve() != project:
        print(f"outputs for {ds.root} go to {out} (figures/, test_with_label.txt, notebooks/)", file=sys.stderr)
    profile_to = Path(cfg.cache) / "profile.jsonl" if args.profile else None
    if profile_to is not None:
        profile_to.parent.mkdir(parents=True, exist_ok=True)
        profile_to.write_text("")  # this run's stages only
    times = run_notebooks(project, ds.root, out, paths, profile_to=profile_to, cache=cfg.cache)
    print(f"reproduced {len(times)} notebooks in {sum(t for _, t in times):.0f}s: "
          + ", ".join(f"{n} {t:.0f}s" for n, t in times) + f"; outputs in {out}")
    if profile_to is not None:
        print(f"stages (seconds; cv rows are core-seconds of fold trainings, {cfg.jobs} side by side), from {profile_to}:")
        print(profile.table(profile.read(profile_to)).to_string(index=False))
    return 0


def cmd_tune(cfg: Config, args) -> int:
    if not 0 <= args.search_seed <= AT_MOST["seed"]:
        raise ConfigError(f"--search-seed must lie in [0, 2**32), not {args.search_seed}")
    trial_configs(cfg, args.trials, args.search_seed)  # a bad --trials: refused before any work
    ds = load_dataset(cfg.data)
    out = Path(args.out) if args.out else output_root(cfg, ds).figures / trials_file(cfg.model)
    check_writable(out, folder=False, what="CSV file")
    made, t = provenance("lab5", args.argv), time.perf_counter()
    trials = search(ds, cfg, args.trials, args.search_seed)
    write_table(out, trials, made, t)
    print(f"{len(trials)} trials of {cfg.model} on {cfg.text_encoder}, {cfg.folds}-fold CV on the search folds "
          f"(--fold-seed {SEARCH_FOLD_SEED}), best first:")
    print(trials.sort_values("rank").head(10).to_string(index=False))
    print(f"chosen: {chosen(trials)} -> {out}")
    return 0


COMMANDS = {
    "validate": (cmd_validate, "check a dataset folder and print a summary (exit 2 on any problem); writes nothing"),
    "features": (cmd_features, "compute (or load) the cached encoder features of every pair"),
    "train": (cmd_train, "train one model on the stored split and save a checkpoint"),
    "cv": (cmd_cv, "stratified k-fold cross-validation of one or more models on cached features"),
    "evaluate": (cmd_evaluate, "score a checkpoint on the stored validation split (the rows `train` held out)"),
    "predict": (cmd_predict, "write guid,tag predictions for test_without_label.txt"),
    "reproduce": (cmd_reproduce, "execute the notebooks in order: figures/, test_with_label.txt, executed notebooks"),
    "tune": (cmd_tune, "seeded hyper-parameter search of the heads by cross-validation; writes the trials table"),
}


#: the Config fields of train and predict: all of them
ALL = tuple(f.name for f in dataclasses.fields(Config))
#: the run options of a command that writes to the cache alone (and those a checkpoint is loaded with)
LOCAL = ("data", "cache", "progress", "jobs", "device")
#: cross-validation (cv, tune) trains on cached features, never through the encoders
FINETUNING = ("finetune", "finetune_layers", "encoder_lr")
DIR, FILE = {"metavar": "DIR"}, {"metavar": "FILE"}
#: each command's options: the Config fields it reads (no other field reaches it), and its own
OPTIONS: dict[str, tuple[tuple[str, ...], dict[str, dict]]] = {
    "validate": (("data", "cache", "progress"), {}),
    "features": ((*LOCAL, "text_encoder", "image_encoder", "max_length", "image_size", "seed"), {}),
    "train": (ALL, {"--out": {"help": "checkpoint folder (default <output root>/runs/MODEL)", **DIR}}),
    "cv": (tuple(f for f in ALL if f not in ("out_dir", *FINETUNING)), {
        "--models": {"help": "comma-separated model names (default: --model)", "metavar": "NAMES"},
        "--out": {"help": "write the per-fold table to this CSV", **FILE}}),
    "evaluate": (LOCAL, {"--checkpoint": {"required": True, "help": "checkpoint folder written by train", **DIR}}),
    "predict": (ALL, {"--out": {"help": "predictions file (default <output root>/test_with_label.txt)", **FILE},
                      "--checkpoint": {"help": "use this checkpoint instead of training the final model", **DIR}}),
    "reproduce": (("data", "out_dir", "cache"), {
        "--only": {"help": "comma-separated notebook numbers to run (default: all)", "metavar": "N,N"},
        "--profile": {"action": "store_true",
                      "help": "time every stage (features, CV trainings, trainings, plots) and print the table"}}),
    "tune": (tuple(f for f in ALL if f not in ("fold_seed", *FINETUNING)), {  # its folds: tuning.SEARCH_FOLD_SEED
        "--trials": {"type": int, "default": 24, "metavar": "N",
                     "help": "points of the search space tried, the config's own values first"},
        "--search-seed": {"type": int, "default": 0, "metavar": "N", "help": "seed of the draw of the trials"},
        "--out": {"help": f"trials table (default <output root>/figures/{trials_file('MODEL')}, + in MODEL written _)",
                  **FILE}}),
}
#: why a command takes fewer options than a user may expect (said when it refuses one)
NOT_READ = {"reproduce": "it runs the committed recipe: its notebooks build lab5.Config() from --data, --out-dir and "
                         "--cache alone"}
#: an own option that makes Config fields moot: given together, they are refused (the command could not honour them)
MOOT = {"checkpoint": (GROUPS["model"] + GROUPS["training"], "the checkpoint holds the model and its training"),
        "out": (("out_dir",), "--out names the one path written")}
HEADINGS = {"run": "where it runs", "model": "what the model is", "training": "how it trains"}


def build_parser() -> argparse.ArgumentParser:
    """``python -m lab5``: each command with its options (:data:`OPTIONS`), its Config fields under :data:`HEADINGS`."""
    p = Parser(prog="python -m lab5", description="Multimodal tweet sentiment analysis (text + image).")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_) in COMMANDS.items():
        fields, own = OPTIONS[name]
        sp = sub.add_parser(name, help=help_, description=help_, usage="%(prog)s [-h] [OPTION ...]",
                            formatter_class=OneLineHelp, add_help=False)
        sp.add_argument("-h", "--help", action="help", help=argparse.SUPPRESS)  # a line of the screen: usage shows it
        for flag, kw in own.items():
            sp.add_argument(flag, **kw)
        for group, names in GROUPS.items():
            if chosen := tuple(f for f in names if f in fields):
                _add_config_options(sp.add_argument_group(HEADINGS[group]), chosen)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, unread = parser.parse_known_args(argv)
    if unread:  # an option this command does not read: refused, never ignored
        why = NOT_READ.get(args.command, f"python -m lab5 {args.command} --help lists its options")
        parser.error(f"not an option of {args.command}: {' '.join(unread)} ({why})")
    for own, (moot, why) in MOOT.items():
        if getattr(args, own, None) and (given := [f for f in moot if f in vars(args)]):
            parser.error(f"--{given[0].replace('_', '-')} has no effect with --{own}: {why}")
    args.argv = argv  # the command as given, for the provenance of the tables a command writes
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        cfg = config_from_args(args)
        return COMMANDS[args.command][0](cfg, args)
    except USER_ERRORS as e:
        return report_error(e)
    except KeyboardInterrupt:
        print("interrupted: files written so far are complete; earlier outputs are intact", file=sys.stderr)
        return 130
