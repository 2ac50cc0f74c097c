"""The stages a user runs: train a model (cached by :func:`train_key`), save and reload it, predict the test set."""
from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import cache as store, encoders, profile
from .batches import make_data
from .config import Config
from .data import LABELS, Dataset
from .decisions import mean_probabilities
from .errors import ConfigError, DataError
from .features import (IMAGE_LIBRARIES, TEXT_LIBRARIES, Dims, Features, image_input_fingerprint, load_features,
                       text_input_fingerprint)
from .evaluation import cv_runs
from .cache import atomic_write_bytes
from .models import build_model
from .runtime import resolve_device
from .splits import get_split, training_subset
from .submission import write_predictions
from .training import TrainResult, fit, predict_labels

log = logging.getLogger("lab5")

#: Bump when a checkpoint's config could mean something else: :func:`load_model` refuses other formats.
CHECKPOINT_FORMAT = 3


def load_encoders(cfg: Config) -> tuple:
    """Text and image encoders for fine-tuning, frozen but for their top ``cfg.finetune_layers`` layers/blocks."""
    t = encoders.text_encoder(cfg.text_encoder, cfg.cache)
    i = encoders.image_encoder(cfg.image_encoder, cfg.image_size, cfg.seed)
    t.trainable_top(cfg.finetune_layers)
    i.trainable_top(cfg.finetune_layers)
    return t, i


def new_model(cfg: Config, features: Features | None = None, loaded: tuple | None = None) -> nn.Module:
    """A fresh model of ``cfg``: over cached ``features``, or (``cfg.finetune``) with the encoders attached."""
    if cfg.finetune:
        t, i = loaded or load_encoders(cfg)
        return build_model(cfg, {cfg.text_encoder: Dims(t.dim, i.dim, t.dim, i.dim)}, (t, i))
    return build_model(cfg, features.dims())


def training_rows(cfg: Config, ds: Dataset, train_guids=None, val_guids=None) -> tuple[list[str], list[str]]:
    """The train and validation rows of :func:`train_model`; too many ``cfg.train_rows`` is a ConfigError."""
    if train_guids is None:
        split = get_split(ds, cfg.cache)
        train_guids, val_guids = split.train, split.val
    train_guids = list(train_guids)
    labels = ds.rows(train_guids, labelled=True).label.to_numpy()
    return [train_guids[k] for k in training_subset(labels, cfg.train_rows, cfg.fold_seed)], list(val_guids or [])


def train_model(cfg: Config, ds: Dataset, features: Features | None = None, train_guids=None, val_guids=None, *,
                cache: bool = True) -> TrainResult:
    """Train ``cfg.model`` on the rows of :func:`training_rows`; end to end with ``cfg.finetune``.

    With ``cache``, weights and history are stored under ``<cache>/train/`` and read back bit for bit.
    """
    train_guids, val_guids = training_rows(cfg, ds, train_guids, val_guids)
    loaded = load_encoders(cfg) if cfg.finetune else None
    model = new_model(cfg, features, loaded)
    key, made = train_key(cfg, ds, features, train_guids, val_guids, loaded) if cache else (None, {})
    entry = store.path(cfg.cache, "train", f"{key}.pt") if cache else None
    if cache:
        touched = []
        done = store.load(entry, _reader(model, cfg, touched.append))
        if done is not None:
            return done
        if touched:  # a load that failed half-way may have written into the model (and its encoders): start afresh
            model = new_model(cfg, features)
    y_train, y_val = (ds.rows(guids, labelled=True).label.to_numpy() for guids in (train_guids, val_guids))
    tr = make_data(cfg.model_group, ds, train_guids, y_train, features, model, train=True)
    va = make_data(cfg.model_group, ds, val_guids, y_val, features, model) if val_guids else None
    with profile.stage(f"train {cfg.model}@{cfg.text_encoder}"):
        result = fit(model, tr, va, cfg)
    if entry is not None:
        _store_training(entry, result, made)
    return result


def train_key(cfg: Config, ds: Dataset, features: Features | None, train_guids: list[str], val_guids: list[str],
              loaded: tuple | None = None) -> tuple[str, dict]:
    """The key of everything a training's weights depend on, and what it is made of (no run-only fields)."""
    def rows(guids: list[str]) -> list:
        return [list(guids), ds.rows(guids, labelled=True).label.astype(int).tolist()]

    if cfg.finetune:
        t, i = loaded
        inputs = {"text": text_input_fingerprint(list(ds.all.guid), list(ds.all.text)),
                  "image": image_input_fingerprint(ds), "text_encoder": t.fingerprint, "image_encoder": i.fingerprint}
        libraries = tuple(dict.fromkeys(store.TRAINING_LIBRARIES + TEXT_LIBRARIES + IMAGE_LIBRARIES))
    else:
        inputs = {"text": {name: fs.key for name, fs in features.texts.items()}, "image": features.image.key}
        libraries = store.TRAINING_LIBRARIES
    parts = {"kind": "train", "config": cfg.result_fields(), "inputs": inputs,
             "device": resolve_device(cfg.device).type, "rows": store.digest([rows(train_guids), rows(val_guids)])}
    return store.key(parts, libraries)


def _dims_json(dims: dict[str, Dims]) -> dict:
    return {name: d.to_dict() for name, d in dims.items()}


def _store_training(entry: Path, result: TrainResult, made: dict) -> None:
    """Store a training: its state dict, and what made it, history, validation macro-F1 and dims."""
    buf = io.BytesIO()
    torch.save(result.model.state_dict(), buf)
    h = result.history
    made = {**made, "dims": _dims_json(result.model.dims),
            "history": {"columns": list(h.columns), "records": h.to_dict("records")},
            "val_macro_f1": float(result.val_macro_f1)}
    try:
        store.store(entry, buf.getvalue(), made)
    except OSError as e:  # the training itself succeeded: keep it, only the cache entry is lost
        log.warning("could not store the trained model in %s (%s); it will be trained again next time", entry, e)


def _reader(model: nn.Module, cfg: Config, touched: Callable) -> Callable[[bytes, dict], TrainResult]:
    """How :func:`lab5.cache.load` reads a cached training into ``model``; calls ``touched`` once it writes."""
    def read(blob: bytes, meta: dict) -> TrainResult:
        if meta["dims"] != _dims_json(model.dims):
            raise ValueError(f"built for inputs {meta['dims']}, not {_dims_json(model.dims)}")
        state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
        want = model.state_dict()
        if not isinstance(state, dict) or state.keys() != want.keys() or any(
                not isinstance(v, torch.Tensor) or v.shape != want[k].shape or v.dtype != want[k].dtype
                for k, v in state.items()):
            raise ValueError("its weights do not fit the model")
        h = meta["history"]
        history = pd.DataFrame.from_records(h["records"], columns=h["columns"])
        f1 = float(meta["val_macro_f1"])
        touched(True)
        model.load_state_dict(state)
        log.info("read the trained %s from the cache", cfg.model)
        return TrainResult(model.to(resolve_device(cfg.device)).eval(), history, f1)

    return read


def predict_test(cfg: Config, ds: Dataset, model: nn.Module | None = None, out: Path | None = None) -> dict[str, str]:
    """Predicted tag of every test guid; with ``out``, the ``guid,tag`` file is written, checked, atomically.

    Without a ``model``: k-fold bagging of the CV's fold models, argmax of the members' mean; with one, by it.
    """
    guids = list(ds.test.guid)
    if not guids:
        raise DataError(f"{ds.root}: no test rows to predict (test_without_label.txt is missing or empty)")
    if model is None and not cfg.finetune:
        with profile.stage(f"predict: {cfg.folds}-fold CV of {cfg.model}, its fold models averaged"):
            run = cv_runs(ds, {"final": cfg})["final"]
        pred = mean_probabilities(list(run.test_probs.values())).argmax(1).tolist()
    else:
        if model is None:
            model = train_model(cfg, ds, None, list(ds.train.guid), []).model  # end to end, on every labelled row
        feats = None if cfg.finetune else load_features(ds, cfg)
        pred = predict_labels(model, make_data(cfg.model_group, ds, guids, None, feats, model), cfg).tolist()
    tags = {g: LABELS[p] for g, p in zip(guids, pred)}
    if out is not None:
        write_predictions(ds.test, tags, out)
    return tags


def validation_predictions(model, cfg: Config, ds: Dataset, features: Features | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(true labels, predicted labels) of ``model`` on the stored validation split."""
    val = list(get_split(ds, cfg.cache).val)
    y = ds.rows(val, labelled=True).label.to_numpy()
    pred = predict_labels(model, make_data(cfg.model_group, ds, val, y, features, model), cfg)
    return y, pred


# --------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: Path, model: nn.Module, cfg: Config, result: TrainResult | None = None) -> None:
    """Write ``path/model.pt`` and ``path/config.json`` (config, input widths, validation macro-F1) atomically."""
    path = Path(path)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    meta = {"format": CHECKPOINT_FORMAT, "config": cfg.to_dict(), "dims": _dims_json(model.dims)}
    if result is not None:
        meta.update(val_macro_f1=result.val_macro_f1)
    atomic_write_bytes(path / "model.pt", buf.getvalue())
    atomic_write_bytes(path / "config.json", json.dumps(meta, indent=2, sort_keys=True).encode())


def load_model(path: Path, **overrides) -> tuple[nn.Module, Config]:
    """Rebuild a saved model and its config with ``overrides``; a bad checkpoint raises ConfigError."""
    path = Path(path)
    try:
        meta = json.loads((path / "config.json").read_text())
        if meta.get("format") != CHECKPOINT_FORMAT:  # its config may hold options this version no longer has
            raise ConfigError(f"checkpoint {path} was saved by another version of lab5 (format {meta.get('format', 1)}, "
                              f"not {CHECKPOINT_FORMAT}): train it again")
        state = torch.load(path / "model.pt", map_location="cpu", weights_only=True)
        cfg = Config.from_dict(meta["config"], **overrides)
        dims = {name: Dims(**w) for name, w in meta["dims"].items()}
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
