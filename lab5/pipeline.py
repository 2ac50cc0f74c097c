"""The stages a user runs: train a model on the stored split, save and reload it, predict the test set."""
from __future__ import annotations

import io
import json
from pathlib import Path

import torch
from torch import nn

from . import encoders
from .batches import make_data
from .config import Config
from .data import LABELS, Dataset
from .decisions import Decision
from .errors import ConfigError
from .features import Dims, Features, load_features
from .io import atomic_write_bytes
from .evaluation import cv_runs
from .models import Ensemble, build_model
from .splits import get_split, training_subset
from .submission import write_predictions
from .training import TrainResult, fit, predict_logits


def load_encoders(cfg: Config) -> tuple:
    """Text and image encoders for fine-tuning, frozen but for their top ``cfg.finetune_layers`` layers/blocks."""
    t = encoders.text_encoder(cfg.text_encoder, cfg.cache)
    i = encoders.image_encoder(cfg.image_encoder, cfg.image_size, cfg.seed)
    t.trainable_top(cfg.finetune_layers)
    i.trainable_top(cfg.finetune_layers)
    return t, i


def new_model(cfg: Config, features: Features | None = None) -> nn.Module:
    """A fresh model of ``cfg``: over cached ``features``, or (``cfg.finetune``) with the encoders attached."""
    if cfg.finetune:
        t, i = load_encoders(cfg)
        return build_model(cfg, Dims(t.dim, i.dim, t.dim, i.dim), (t, i))
    return build_model(cfg, features.dims())


def training_rows(cfg: Config, ds: Dataset, train_guids=None, val_guids=None) -> tuple[list[str], list[str]]:
    """The rows :func:`train_model` trains on and (with early stopping) stops on: the given guids, else the stored
    split, the training rows cut to a seeded, stratified ``cfg.train_rows``. Asking for more rows than there are is
    a ConfigError, so a command can check it before any work."""
    if train_guids is None:
        split = get_split(ds, cfg.cache)
        train_guids, val_guids = split.train, split.val
    train_guids = list(train_guids)
    labels = ds.train.set_index("guid").loc[train_guids, "label"].to_numpy()
    return [train_guids[k] for k in training_subset(labels, cfg.train_rows, cfg.seed)], list(val_guids or [])


def train_model(cfg: Config, ds: Dataset, features: Features | None = None, train_guids=None, val_guids=None) -> TrainResult:
    """Train ``cfg.model`` on the rows of :func:`training_rows`; end to end through the encoders with
    ``cfg.finetune``."""
    train_guids, val_guids = training_rows(cfg, ds, train_guids, val_guids)
    labels = ds.train.set_index("guid")["label"]
    model = new_model(cfg, features)
    tr = make_data(cfg, ds, train_guids, labels.loc[train_guids].to_numpy(), features, model, train=True)
    va = make_data(cfg, ds, val_guids, labels.loc[val_guids].to_numpy(), features, model) if val_guids else None
    return fit(model, tr, va, cfg)


def predict_test(cfg: Config, ds: Dataset, model: nn.Module | None = None, out: Path | None = None) -> dict[str, str]:
    """Predicted tag of every test guid; when no model is given, trains ``cfg.model`` on the stored split (with
    early stopping) or on every labelled row (``cfg.early_stopping`` off).

    With ``out``, the ``guid,tag`` file is written (checked, atomically) in the test file's order.
    """
    if model is None:  # with early stopping: the stored split; without: every labelled row, no rows held out
        rows = training_rows(cfg, ds, *(() if cfg.early_stopping else (list(ds.train.guid), [])))
    feats = None if cfg.finetune else load_features(ds, cfg)
    if model is None:
        model = train_model(cfg, ds, feats, *rows).model
    guids = list(ds.test.guid)
    test = make_data(cfg, ds, guids, None, feats, model)
    if cfg.combine == "mean":
        pred = predict_logits(model, test, cfg).argmax(1).tolist()
    else:  # the decision is fitted on the out-of-fold probabilities of this config's CV (cached)
        run = cv_runs(ds, {"final": cfg})["final"]
        decision = Decision(cfg.combine).fit(list(run.member_probs.values()), ds.train.label.to_numpy())
        members = [m for _, m in model.routed_members()] if isinstance(model, Ensemble) else [model]
        pred = decision.predict([predict_logits(m, test, cfg).softmax(1).numpy() for m in members]).tolist()
    tags = {g: LABELS[p] for g, p in zip(guids, pred)}
    if out is not None:
        write_predictions(ds.test, tags, out)
    return tags


# --------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: Path, model: nn.Module, cfg: Config, result: TrainResult | None = None) -> None:
    """Write ``path/model.pt`` (state dict) and ``path/config.json`` (config, input widths, best epoch), atomically."""
    path = Path(path)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    dims = model.dims
    meta = {"config": cfg.to_dict(), "dims": dims.to_dict() if isinstance(dims, Dims) else {k: d.to_dict() for k, d in dims.items()}}
    if result is not None:
        meta.update(best_epoch=result.best_epoch, best_val_macro_f1=result.best_val_macro_f1)
    atomic_write_bytes(path / "model.pt", buf.getvalue())
    atomic_write_bytes(path / "config.json", json.dumps(meta, indent=2, sort_keys=True).encode())


def load_model(path: Path, **overrides) -> tuple[nn.Module, Config]:
    """Rebuild a saved model (its predictions are identical to the saved model's) and its config, with
    ``overrides`` (paths, device) applied; a missing, damaged or mismatched checkpoint raises ConfigError."""
    path = Path(path)
    try:
        meta = json.loads((path / "config.json").read_text())
        state = torch.load(path / "model.pt", map_location="cpu", weights_only=True)
        cfg, dims = Config.from_dict(meta["config"], **overrides), meta["dims"]
        dims = Dims(**dims) if "text" in dims else {k: Dims(**d) for k, d in dims.items()}
    except ConfigError:
        raise
    except Exception as e:  # unreadable JSON, foreign bytes, a truncated zip, missing keys: all mean "damaged"
        raise ConfigError(f"checkpoint {path} is missing or damaged ({e})") from None
    model = build_model(cfg, dims, load_encoders(cfg) if cfg.finetune else None)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ConfigError(f"checkpoint {path} does not fit model {cfg.model!r} ({str(e).splitlines()[0]})") from None
    return model.eval(), cfg
