"""The ablation of notebook 5, as data: each section's rows (a name and the configuration it cross-validates), the
control each row changes one thing of, and the learning curve.

Keeping the rows here, not in notebook cells, gives the notebook and its tests one list, and lets the notebook
train every cross-validation it shows in one pool of workers (:func:`lab5.evaluation.cv_runs` over
:meth:`Ablation.every_run`), so that both cores stay busy from the first fold to the last; each section then reads
its rows back from the CV cache.
"""
from __future__ import annotations

from dataclasses import dataclass

from .config import Config
from .errors import ConfigError

#: the heads of the final ensemble (``Config.model``)
HEADS = ("cross_attention", "gated", "late")
#: the single models of notebooks 2-4, the first section's rows
SINGLE_MODELS = ("text", "image", "concat", "cross_attention", "reference_gate", "gated", "late")
#: the final model: the ensemble over both text encoders, decided by the plain mean of its members' probabilities
MEAN = "ensemble on MiniLM + mpnet"
FINAL = MEAN
#: the final model decided by per-class offsets tuned on its out-of-fold rows for the mean of accuracy and macro-F1
#: (``--combine mean+offsets``; not adopted: the nested CV of notebook 6 finds it 0.47 accuracy points worse)
OFFSETS = "mean + OOF-tuned offsets"
#: the same offsets tuned for macro-F1 alone (``--offsets-for macro_f1``)
OFFSETS_F1 = "mean + offsets for macro-F1 alone"
#: concat without the VADER scores: concat on cross-attention's inputs (the scores join the pooled text vector, which
#: cross-attention never reads); a row of the techniques section
NO_LEXICON = "concat − VADER lexicon"
#: cross-attention and concat, each against concat on cross-attention's inputs
EQUAL_INPUTS = {"cross_attention": NO_LEXICON, "concat": NO_LEXICON}
#: late fusion with MiniLM's top layer fine-tuned (``--text-top 1``); a row of the techniques section
TOP_LAYER = "late + top MiniLM layer fine-tuned"
#: the learning curve cuts each training part to these fractions (400, 800 and 1600 of 3200 rows on the course data)
CURVE_FRACTIONS = (1 / 8, 1 / 4, 1 / 2)


@dataclass(frozen=True)
class Ablation:
    """The rows of each section (``models``, ``attention``, ``recipe``, ``techniques``, ``encoders``, ``ensembles``),
    each row's control (``{row: control row}``), and the configs of the learning curve."""

    sections: dict[str, dict[str, Config]]
    controls: dict[str, str]
    curve: dict[str, Config]

    def rows(self) -> dict[str, Config]:
        """Every row of every section, in the order of the sections."""
        return {name: c for section in self.sections.values() for name, c in section.items()}

    def every_run(self, ds) -> dict:
        """Every cross-validation the notebook shows: the rows, and each learning-curve point (see
        :func:`lab5.evaluation.learning_curve_configs`), to hand to :func:`lab5.evaluation.cv_runs` at once."""
        from .evaluation import learning_curve_configs

        return {**self.rows(), **learning_curve_configs(ds, self.curve, CURVE_FRACTIONS)}


#: the heads the hyper-parameter search tunes (``python -m lab5 tune``): the cheap members of the final ensemble
TUNED_HEADS = "gated+late"
TUNED = f"{TUNED_HEADS} on MiniLM, tuned values"
#: the committed searches (``python -m lab5 tune --model ...``, one table each)
SEARCHES = (TUNED_HEADS, "cross_attention")


def single_model_base(cfg: Config) -> Config:
    """What every single-model row starts from: the final model's recipe on MiniLM, deciding by its own argmax (the
    final ensemble adds mpnet members)."""
    return cfg.replace(combine="mean", text_encoder="minilm")


def tuned_row(model: str) -> str:
    """The row of ``model`` at the values its search chose: ``gated+late on MiniLM, tuned values``,
    ``cross_attention, tuned values``."""
    return TUNED if model == TUNED_HEADS else f"{model}, tuned values"


def ablation(cfg: Config, tuned: dict[str, dict] | None = None) -> Ablation:
    """The ablation around the final model ``cfg``: single models and the recipe and technique rows on MiniLM, the
    heads on mpnet, the ensembles and their decision rules; with ``tuned`` (``{searched model: values its search
    chose}``, see :mod:`lab5.tuning`), each searched model with those values against its defaults (an ensemble of
    heads gets a row of its own at the defaults; a single head's control is its row among the models). Every row
    decides by the plain mean (a single model: its own argmax) but the decision rules measured against it."""
    mean = cfg.replace(combine="mean")  # the final ensemble deciding by the plain mean of its members
    minilm = single_model_base(cfg)
    late = minilm.replace(model="late")
    models = {m: minilm.replace(model=m) for m in SINGLE_MODELS}
    attention = {"concat, width 128": minilm.replace(model="concat", hidden=128),
                 "cross_attention, 2 epochs": minilm.replace(model="cross_attention", epochs=2),
                 "reference_gate, early stopping": minilm.replace(model="reference_gate", early_stopping=True, epochs=30)}
    recipe = {**{f"{m}, early stopping": minilm.replace(model=m, early_stopping=True, epochs=30) for m in HEADS},
              **{f"{m}, {e} epochs": minilm.replace(model=m, epochs=e) for m in ("gated", "late") for e in (2, 4)}}
    techniques = {"late − VADER lexicon": late.replace(text_features="tokens"),
                  NO_LEXICON: late.replace(model="concat", text_features="tokens"),
                  "late + class-weighted loss": late.replace(balance="weights"),
                  "late + tweet text cleaning": late.replace(text_clean="tweet"),
                  TOP_LAYER: late.replace(text_top=1),
                  "late + OOF-tuned neutral offsets": late.replace(combine="mean+offsets")}
    encoders = {f"{m} on mpnet": mean.replace(model=m, text_encoder="mpnet") for m in HEADS}
    ensembles = {"ensemble on MiniLM": minilm,
                 "ensemble on MiniLM, early stopping": minilm.replace(early_stopping=True, epochs=30),
                 "ensemble on mpnet": mean.replace(text_encoder="mpnet"),
                 MEAN: mean,
                 "mean + temperature scaling": mean.replace(combine="temperature"),
                 "mean + stacking": mean.replace(combine="stack"),
                 OFFSETS: mean.replace(combine="mean+offsets", offsets_for="accuracy+macro_f1"),
                 OFFSETS_F1: mean.replace(combine="mean+offsets", offsets_for="macro_f1")}
    controls = {**{m: "text" for m in SINGLE_MODELS if m != "text"},
                "concat, width 128": "concat", "cross_attention, 2 epochs": "cross_attention",
                "reference_gate, early stopping": "reference_gate",
                **{f"{m}, early stopping": m for m in HEADS},
                **{f"{m}, {e} epochs": m for m in ("gated", "late") for e in (2, 4)},
                **{t: "concat" if t.startswith("concat") else "late" for t in techniques},
                **{f"{m} on mpnet": m for m in HEADS},
                "ensemble on MiniLM": "late",  # against its most accurate member
                "ensemble on MiniLM, early stopping": "ensemble on MiniLM",
                "ensemble on mpnet": "ensemble on MiniLM",
                MEAN: "ensemble on MiniLM",
                **{e: MEAN for e in ("mean + temperature scaling", "mean + stacking", OFFSETS, OFFSETS_F1)}}
    curve = {"text": models["text"], "image": models["image"], "final": cfg}
    sections = {"models": models, "attention": attention, "recipe": recipe}
    if tuned:
        sections["tuning"] = {}
        for model, values in tuned.items():
            control = f"{model} on MiniLM" if "+" in model else model
            if control not in models:
                sections["tuning"][control] = minilm.replace(model=model)
            sections["tuning"][tuned_row(model)] = minilm.replace(model=model, **values)
            controls[tuned_row(model)] = control
    sections.update({"techniques": techniques, "encoders": encoders, "ensembles": ensembles})
    return Ablation(sections, controls, curve)


#: the final ensemble with its heads changed: concat, the better head alone, in cross-attention's place or beside it
MEMBER_SWAPS = {"concat in place of cross-attention": "concat+gated+late",
                "concat as a fourth head": "concat+cross_attention+gated+late"}


def member_swaps(cfg: Config, swaps: dict[str, str] = MEMBER_SWAPS) -> tuple[dict[str, Config], dict[str, str]]:
    """The final model ``cfg`` with the heads of ``swaps`` (text encoders and recipe unchanged), each decided by the
    plain mean (control :data:`MEAN`, the final model) and by the offsets (control :data:`OFFSETS`): the rows and
    their controls. Not a section of :func:`ablation`, whose rows each change one thing of a control; these change
    the final model's make-up."""
    rows, controls = {}, {}
    for name, model in swaps.items():
        rows[f"offsets, {name}"] = cfg.replace(model=model, combine="mean+offsets", offsets_for="accuracy+macro_f1")
        controls[f"offsets, {name}"] = OFFSETS
        rows[f"plain mean, {name}"] = cfg.replace(model=model, combine="mean")
        controls[f"plain mean, {name}"] = MEAN
    return rows, controls


#: cross-attention at twice its width (``attention_hidden`` 256, the width of the other heads' ``hidden``)
WIDER = "cross_attention, width 256"


def width_rows(cfg: Config) -> tuple[dict[str, Config], dict[str, str]]:
    """Cross-attention at width 256 against its default 128: does its width hold it behind concat? Row, control."""
    return {WIDER: single_model_base(cfg).replace(model="cross_attention", attention_hidden=256)}, {WIDER: "cross_attention"}


#: late fusion with every MiniLM layer fine-tuned on a CPU (``--text-top 6``): far too slow for the cold run (tens of
#: core-minutes), so ``python -m lab5 cv --rows finetuned --out figures/05_finetuned_minilm.csv`` measures it once and
#: notebook 5 reads the committed table
FINETUNED = "late, every MiniLM layer fine-tuned"
FINETUNED_FILE = "05_finetuned_minilm.csv"
#: MiniLM's transformer layers (all-MiniLM-L6-v2)
MINILM_LAYERS = 6
#: the final model's frozen MiniLM late member, which the fine-tuned one replaces
MINILM_LATE = "late@minilm"
#: the final model with the fine-tuned member: {(rule, what is done with the frozen member): row}
FINETUNED_MEMBER = {(rule, where): f"{rule}, fine-tuned MiniLM late {what}" for rule in ("offsets", "plain mean")
                    for where, what in (("replace", "in place of its MiniLM late member"), ("add", "as a seventh member"))}
#: each row of ``cv --rows finetuned`` and its control
FINETUNED_CONTROLS = {TOP_LAYER: "late", FINETUNED: "late",
                      **{row: OFFSETS if rule == "offsets" else MEAN for (rule, _), row in FINETUNED_MEMBER.items()}}


def finetuned_rows(ds, cfg: Config):
    """Late fusion with every MiniLM layer fine-tuned (the cached embedding-layer states through six trainable layers)
    against late fusion on frozen features (and beside the top layer alone fine-tuned, :data:`TOP_LAYER`); and that
    member in the final model, in place of its frozen MiniLM late member and as a seventh member, each by the plain
    mean (control :data:`MEAN`) and by the offsets (control :data:`OFFSETS`): :data:`FINETUNED_CONTROLS`. Every CV
    runs in one pool (the CV cache keeps them). The per-fold table of the rows and their controls, and each row's
    control."""
    import pandas as pd

    from .evaluation import cv_runs, with_members
    from .metrics import METRIC_COLUMNS
    from .models import member_configs

    if MINILM_LATE not in (members := member_configs(cfg)):  # refused here, not after the CVs it would follow
        raise ConfigError(f"--rows finetuned puts the fine-tuned member in place of the final model's {MINILM_LATE!r}, "
                          f"which {cfg.model} has not; its members: {', '.join(members)}")
    late = single_model_base(cfg).replace(model="late")
    configs = {"late": late, TOP_LAYER: late.replace(text_top=1), FINETUNED: late.replace(text_top=MINILM_LAYERS),
               MEAN: cfg.replace(combine="mean"),
               OFFSETS: cfg.replace(combine="mean+offsets", offsets_for="accuracy+macro_f1")}
    runs = cv_runs(ds, configs)
    tuned = {f"{MINILM_LATE} fine-tuned": runs[FINETUNED]}
    for (rule, where), row in FINETUNED_MEMBER.items():
        control = FINETUNED_CONTROLS[row]
        without = (MINILM_LATE,) if where == "replace" else ()
        runs[row] = with_members(ds, configs[control], runs[control], tuned, without)
    cv = pd.concat([r.folds.assign(model=name) for name, r in runs.items()], ignore_index=True)
    return cv[["model", "fold", *METRIC_COLUMNS]], dict(FINETUNED_CONTROLS)


#: the rows the notebook's summary table shows first
HEADLINE = ("text", "image", "concat", "cross_attention", "gated", "late", MEAN, OFFSETS)
#: the rows repeated over training seeds and fold seeds (``python -m lab5 cv --rows headline --seeds ...``): the
#: headline rows and the final model's other decision rule
REPEATED = (*HEADLINE, OFFSETS_F1)
#: the reference report's accuracies: single runs on 500 random rows each, from its own table (not rerun here)
REFERENCE_REPORT = {"text": 0.748, "image": 0.602, "concat": 0.824, "reference_gate": 0.646}


def reference_comparison(cv, models=SINGLE_MODELS):
    """The reference report's accuracy beside ours (CV mean and std over folds) for the baseline and ``models``."""
    import pandas as pd

    from .metrics import fold_stats

    mean, std = fold_stats(cv, ["accuracy"])
    ours = pd.DataFrame({"ours: CV accuracy mean": mean.accuracy, "ours: std": std.accuracy}).round(3)  # as summarize
    table = pd.DataFrame({"reference report (single split)": REFERENCE_REPORT}).join(ours, how="outer")
    return table.loc[["always_positive", *models]]


#: the rows of the final model with one input taken away, each against the final model
WITHOUT = {"final − image (text heads only)": {"model": "text"},
           "final − VADER lexicon": {"text_features": "tokens"},
           "final − mpnet (MiniLM only)": {"text_encoder": "minilm"}}
#: the rows notebook 5 cross-validates live, by section (every other row of :func:`ablation` is an experiment, read
#: from :data:`EXPERIMENTS_FILE`)
STORY_SECTIONS = {"models": SINGLE_MODELS, "attention": (NO_LEXICON,),
                  "encoders": tuple(f"{m} on mpnet" for m in HEADS),
                  "ensembles": ("ensemble on MiniLM", "ensemble on mpnet", MEAN, OFFSETS)}
#: the learning curve's models (the image model's curve is flat and costs as much as the text model's)
CURVE_MODELS = ("text", "final")
#: the per-fold table of every row of :func:`ablation` that the story leaves out, beside its control
#: (``python -m lab5 cv --rows experiments --out figures/05_experiments.csv``)
EXPERIMENTS_FILE = "05_experiments.csv"


def story(cfg: Config) -> Ablation:
    """What notebook 5 cross-validates on every run: the single models, concat on cross-attention's inputs, the heads on
    mpnet, the ensembles and the final decision, the final model less each of its inputs (:data:`WITHOUT`), and the
    learning curve of the text and the final model."""
    full = ablation(cfg)
    rows = full.rows()
    sections = {s: {name: rows[name] for name in names} for s, names in STORY_SECTIONS.items()}
    sections["without"] = {name: cfg.replace(**change) for name, change in WITHOUT.items()}
    controls = {name: full.controls[name] for s in STORY_SECTIONS.values() for name in s if name in full.controls}
    controls.update({name: FINAL for name in WITHOUT})
    return Ablation(sections, controls, {m: full.curve[m] for m in CURVE_MODELS})


def experiments(cfg: Config, tuned: dict[str, dict] | None = None) -> tuple[dict[str, Config], dict[str, str]]:
    """Every row of :func:`ablation` that :func:`story` leaves out, and the final model's member swaps and
    cross-attention at twice its width; with the controls they are read against. Each control is cross-validated too, so that
    the table binds to notebook 5's live rows fold by fold."""
    full, kept = ablation(cfg, tuned), story(cfg).rows()
    every = full.rows()
    rows = {n: c for n, c in every.items() if n not in kept}
    controls = {n: full.controls[n] for n in rows if n in full.controls}
    for more, against in (member_swaps(cfg), width_rows(cfg)):
        rows.update(more)
        controls.update(against)
    every.update({n: c for n, c in kept.items() if n not in every})
    needed = {c: every[c] for c in controls.values() if c not in rows}
    return {**needed, **rows}, controls


def also_tried(cv, experiments=None, finetuned=None, kept: tuple[str, ...] = ()):
    """The "also tried" table of notebook 5: every row of the committed ``experiments`` table (its own ``control``
    column) and of the ``finetuned`` table (:data:`FINETUNED_CONTROLS`) but the ``kept`` rows, beside its control
    (:func:`lab5.metrics.paired_table`). A control missing from the tables is taken from the live per-fold table
    ``cv``, rounded as the tables store them, so that a fold tied at 4 decimals is not won."""
    import pandas as pd

    from .metrics import paired_table

    pairs = {} if experiments is None else {r: (r, c) for r, c in experiments.dropna(subset=["control"])
                                            .groupby("model", sort=False).control.first().items() if r not in kept}
    pairs.update({} if finetuned is None else {r: (r, c) for r, c in FINETUNED_CONTROLS.items()})
    pool = pd.concat([cv.round(4), *(t for t in (experiments, finetuned) if t is not None)])
    tried = paired_table(pool.drop_duplicates(["model", "fold"]), pairs)
    tried.insert(0, "control", [c for _, c in pairs.values()])
    return tried
