"""The ablation of notebook 5, as data: each section's rows (a name and the configuration it cross-validates), the
control each row changes one thing of, and the learning curve.

Keeping the rows here, not in notebook cells, gives the notebook and its tests one list, and lets the notebook
train every cross-validation it shows in one pool of workers (:func:`lab5.evaluation.cv_runs` over
:meth:`Ablation.every_run`), so that both cores stay busy from the first fold to the last; each section then reads
its rows back from the CV cache.
"""
from __future__ import annotations

from dataclasses import dataclass

from .config import MODEL_NAMES, Config

#: the heads of the final ensemble (``Config.model``)
HEADS = ("cross_attention", "gated", "late")
FINAL = "ensemble on MiniLM + mpnet (final)"
#: the learning curve cuts each training part to these fractions (400, 800 and 1600 of 3200 rows on the course data)
CURVE_FRACTIONS = (1 / 8, 1 / 4, 1 / 2)


@dataclass(frozen=True)
class Ablation:
    """The rows of each section (``models``, ``recipe``, ``techniques``, ``encoders``, ``ensembles``), each row's
    control (``{row: control row}``), and the configs of the learning curve."""

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


def ablation(cfg: Config) -> Ablation:
    """The ablation around the final model ``cfg``: single models and the recipe and technique rows on MiniLM, the
    heads on mpnet, the ensembles and their decision rules."""
    minilm = cfg.replace(text_encoder="minilm")  # single models read MiniLM; the final ensemble adds mpnet members
    late = minilm.replace(model="late")
    models = {m: minilm.replace(model=m) for m in MODEL_NAMES}
    recipe = {**{f"{m}, early stopping": minilm.replace(model=m, early_stopping=True, epochs=30) for m in HEADS},
              **{f"{m}, {e} epochs": minilm.replace(model=m, epochs=e) for m in ("gated", "late") for e in (2, 4)}}
    techniques = {"late − VADER lexicon": late.replace(text_features="tokens"),
                  "concat − VADER lexicon": late.replace(model="concat", text_features="tokens"),
                  "late + class-weighted loss": late.replace(balance="weights"),
                  "late + tweet text cleaning": late.replace(text_clean="tweet"),
                  "late + top MiniLM layer fine-tuned": late.replace(text_top=1),
                  "late + OOF-tuned neutral offsets": late.replace(combine="mean+offsets")}
    encoders = {f"{m} on mpnet": cfg.replace(model=m, text_encoder="mpnet") for m in HEADS}
    ensembles = {"ensemble on MiniLM": minilm,
                 "ensemble on MiniLM, early stopping": minilm.replace(early_stopping=True, epochs=30),
                 "ensemble on mpnet": cfg.replace(text_encoder="mpnet"),
                 FINAL: cfg,
                 "final + temperature scaling": cfg.replace(combine="temperature"),
                 "final + stacking": cfg.replace(combine="stack"),
                 "final + OOF-tuned neutral offsets": cfg.replace(combine="mean+offsets")}
    controls = {**{m: "text" for m in MODEL_NAMES if m != "text"},
                **{f"{m}, early stopping": m for m in HEADS},
                **{f"{m}, {e} epochs": m for m in ("gated", "late") for e in (2, 4)},
                **{t: "concat" if t.startswith("concat") else "late" for t in techniques},
                **{f"{m} on mpnet": m for m in HEADS},
                "ensemble on MiniLM": "late",  # against its best member
                "ensemble on MiniLM, early stopping": "ensemble on MiniLM",
                "ensemble on mpnet": "ensemble on MiniLM",
                FINAL: "ensemble on MiniLM",
                **{e: FINAL for e in ("final + temperature scaling", "final + stacking", "final + OOF-tuned neutral offsets")}}
    curve = {"text": models["text"], "image": models["image"], "final": cfg}
    return Ablation({"models": models, "recipe": recipe, "techniques": techniques, "encoders": encoders,
                     "ensembles": ensembles}, controls, curve)
