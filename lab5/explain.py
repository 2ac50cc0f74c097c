"""What the fusion heads do with their inputs, out-of-fold scores, error kinds, and the notebooks' comparisons."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .batches import make_data
from .config import Config
from .data import LABELS, Dataset, parse_labels
from .decisions import expected_calibration_error
from .encoders import REGION_GRID, ImageEncoder, ImageSpec, image_encoder, text_encoder
from .errors import ConfigError, DataError, EncoderUnavailable
from .features import Dims, Features
from .metrics import metrics
from .heads import CrossAttentionFusion, GatedFusion, LateFusion
from .models import Classifier
from .splits import get_split


@dataclass
class Attention:
    """Cross-attention of one text-image pair, averaged over the attention heads."""

    guid: str
    tokens: list[str]  # the text's wordpieces, [CLS] and [SEP] included
    token_weight: np.ndarray  # (tokens,) attention the image regions pay each token, averaged over the regions
    region_weight: np.ndarray  # (grid, grid) attention the tokens pay each image region, averaged over the tokens


def _head(model, kind: type) -> torch.nn.Module:
    head = getattr(model, "head", None)
    if not isinstance(model, Classifier) or not isinstance(head, kind):
        raise ConfigError(f"expected a trained {kind.__name__} model, got {type(head or model).__name__}")
    return head


def _inside(model: Classifier, kind: type, cfg: Config, ds: Dataset, guids: list[str], features: Features | None,
            **flags) -> tuple[dict, tuple]:
    """Run a trained ``kind`` model's head on ``guids`` in one eval batch with ``flags``: its batch and output."""
    head = _head(model, kind)
    model.eval()
    with torch.no_grad():
        b = model.encode(make_data(cfg.model_group, ds, guids, None, features, model).batch(torch.arange(len(guids))))
        return b, head(b, **flags)


def cross_attention(model: Classifier, cfg: Config, ds: Dataset, guids: list[str],
                    features: Features | None = None) -> list[Attention]:
    """The attention maps of a trained cross-attention model for ``guids``: token->region and region->token."""
    b, (_, t2i, i2t) = _inside(model, CrossAttentionFusion, cfg, ds, guids, features, return_attention=True)
    enc = text_encoder(cfg.text_encoder, cfg.cache)  # t2i: (B, tokens, regions), i2t: (B, regions, tokens)
    texts = ds.rows(guids).text
    ids = enc.tokenize(list(texts), cfg.max_length)["input_ids"]
    out = []
    for k, guid in enumerate(guids):
        n, r = int(b["text_mask"][k].sum()), int(b["image_mask"][k].sum())
        out.append(Attention(guid, enc.tokenizer.convert_ids_to_tokens(ids[k, :n].tolist()),
                             i2t[k, :r, :n].mean(0).numpy(), t2i[k, :n, :r].mean(0).reshape(REGION_GRID, REGION_GRID).numpy()))
    return out


def mean_region_attention(model: Classifier, cfg: Config, ds: Dataset, guids: list[str],
                          features: Features | None = None) -> np.ndarray:
    """The tokens' attention over image regions averaged over tokens then ``guids``: a (grid, grid) map."""
    per_row, _ = _region_attention_per_row(model, cfg, ds, guids, features)
    return per_row.mean(0).reshape(REGION_GRID, REGION_GRID).numpy()


def _region_attention_per_row(model: Classifier, cfg: Config, ds: Dataset, guids: list[str],
                              features: Features | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per guid, token-averaged attention over the image regions (B, regions), and the region mask."""
    b, (_, t2i, _) = _inside(model, CrossAttentionFusion, cfg, ds, guids, features, return_attention=True)
    mask = b["text_mask"].float()[:, :, None]
    return (t2i * mask).sum(1) / mask.sum(1), b["image_mask"].bool()


def region_attention_spread(model: Classifier, cfg: Config, ds: Dataset, guids: list[str],
                            features: Features | None = None) -> pd.DataFrame:
    """Per guid, how sharply the tokens choose among image regions: entropy (nats) and largest weight.

    A near-uniform mean map can hide rows that each pick a different region; these per-row numbers tell.
    """
    att, valid = _region_attention_per_row(model, cfg, ds, guids, features)
    att = torch.where(valid, att, torch.zeros_like(att)).double()
    entropy = -torch.special.xlogy(att, att).sum(1)
    regions = valid.sum(1)
    return pd.DataFrame({"guid": list(guids), "regions": regions.numpy(), "entropy": entropy.numpy(),
                         "uniform_entropy": torch.log(regions.double()).numpy(), "max_weight": att.max(1).values.numpy()})


def gate_text_share(model: Classifier, cfg: Config, ds: Dataset, guids: list[str],
                    features: Features | None = None) -> np.ndarray:
    """Per guid, the gated-fusion gate averaged over features: the share taken from the text (1) vs image (0)."""
    _, (_, z) = _inside(model, GatedFusion, cfg, ds, guids, features, return_gate=True)
    return z.mean(1).numpy()


def late_text_weight(model: Classifier) -> float:
    """The weight late fusion gives the text classifier's probabilities (the image's is one minus it)."""
    return torch.sigmoid(_head(model, LateFusion).mix).item()


def late_text_weight_at_start(cfg: Config) -> float:
    """The text weight of a freshly built late-fusion head (random state restored afterwards)."""
    with torch.random.fork_rng(devices=[]):
        dims = Dims(1, 1, 1, 1)
        return late_text_weight(Classifier(LateFusion(dims, cfg.model_group), {cfg.text_encoder: dims}))


def display_crops(ds: Dataset, guids: list[str], cfg: Config) -> dict:
    """Guid -> the part of its image the image encoder sees, for drawing attention over it."""
    from torchvision import transforms as T

    spec = image_encoder(cfg.image_encoder, cfg.image_size, cfg.seed).spec
    crop = T.Compose([T.Resize(spec.resize), T.CenterCrop(spec.size)])
    return {g: crop(ds.image(g, spec.resize)) for g in guids}


def oof_scores(y, p: np.ndarray, name: str = "final model, out-of-fold") -> pd.DataFrame:
    """One row of headline scores of (N, 3) probabilities ``p`` against ``y``, ECE included."""
    y = np.asarray(y)
    m = metrics(y, p.argmax(1))
    return pd.DataFrame({"rows": [len(y)], "accuracy": [m["accuracy"]], "macro_f1": [m["macro_f1"]],
                         "weighted_f1": [m["weighted_f1"]], "f1_neutral": [m["f1_neutral"]],
                         "ece": [expected_calibration_error(p, y)]}, index=pd.Index([name]))


def per_class_scores(y, pred) -> pd.DataFrame:
    """Per true class (rows in :data:`LABELS` order): precision, recall, F1 and how many rows have that label."""
    y = np.asarray(y)
    m = metrics(y, pred)
    return pd.DataFrame({k: [m[f"{k}_{c}"] for c in LABELS] for k in ("precision", "recall", "f1")}
                        | {"rows": np.bincount(y, minlength=len(LABELS))}, index=pd.Index(LABELS, name="class"))


def misses_by_class(y, pred) -> pd.DataFrame:
    """Per true class: rows, missed, missed share of the class and of all errors."""
    y, pred = np.asarray(y), np.asarray(pred)
    rows = np.bincount(y, minlength=len(LABELS))
    missed = np.bincount(y[pred != y], minlength=len(LABELS))
    return pd.DataFrame({"rows": rows, "missed": missed, "share_of_class": missed / np.maximum(rows, 1),
                         "share_of_errors": missed / max(1, int(missed.sum()))}, index=pd.Index(LABELS, name="true"))


#: kinds of error, decided in this order from what the text-only and image-only models predicted on the same row
ERROR_KINDS = {
    "image right, text wrong": "the image-only model was right where the text-only model was not",
    "all agree, label differs": "text, image and final model all predicted the same other class (label noise?)",
    "neutral missed": "a neutral tweet called positive or negative",
    "other": "none of the above",
}


def error_kinds(y, final, text, image) -> pd.DataFrame:
    """Every row the final model got wrong, with its kind (:data:`ERROR_KINDS`), from OOF probabilities."""
    y = np.asarray(y)
    pf, pt, pi = final.argmax(1), text.argmax(1), image.argmax(1)
    rows = []
    for r in np.flatnonzero(pf != y):
        if pi[r] == y[r] and pt[r] != y[r]:
            kind = "image right, text wrong"
        elif pt[r] == pi[r] == pf[r]:
            kind = "all agree, label differs"
        elif y[r] == LABELS.index("neutral"):
            kind = "neutral missed"
        else:
            kind = "other"
        rows.append({"row": int(r), "true": LABELS[y[r]], "predicted": LABELS[pf[r]],
                     "confidence": float(final[r, pf[r]]), "kind": kind})
    return pd.DataFrame(rows, columns=["row", "true", "predicted", "confidence", "kind"])


def kind_counts(errors: pd.DataFrame) -> pd.DataFrame:
    """Errors per kind (from :func:`error_kinds`): count, share of all errors, and what the kind means."""
    counts = errors.groupby("kind").size().reindex(list(ERROR_KINDS), fill_value=0)
    return pd.DataFrame({"errors": counts, "share": (counts / max(1, len(errors))).round(3),
                         "what": list(ERROR_KINDS.values())}).rename_axis("kind")


def gallery_rows(errors: pd.DataFrame, per_kind: int = 3, seed: int = 0) -> pd.DataFrame:
    """A seeded sample of ``per_kind`` errors of each kind (fewer where a kind has fewer), in kind order."""
    rng = np.random.default_rng(seed)
    picks = []
    for kind in ERROR_KINDS:
        rows = errors[errors.kind == kind]
        picks.append(rows.iloc[np.sort(rng.choice(len(rows), size=min(per_kind, len(rows)), replace=False))])
    return pd.concat(picks)


def misclassified(ds: Dataset, y, pred, n: int = 8, seed: int = 0, cache: Path | None = None) -> pd.DataFrame:
    """A seeded sample of validation tweets the model got wrong (true, predicted, text)."""
    val = list(get_split(ds, cache).val)
    texts = ds.rows(val).text.to_numpy()
    wrong = np.flatnonzero(np.asarray(y) != np.asarray(pred))
    pick = np.sort(np.random.default_rng(seed).choice(wrong, size=min(n, len(wrong)), replace=False))
    return pd.DataFrame({"guid": [val[i] for i in pick], "true": [LABELS[y[i]] for i in pick],
                         "predicted": [LABELS[pred[i]] for i in pick], "text": [texts[i][:100] for i in pick]})


def paired_comparison(y, pred_a, pred_b, names: tuple[str, str] = ("a", "b")) -> pd.DataFrame:
    """How often each of two models is right where the other is wrong, per true class."""
    y, a, b = map(np.asarray, (y, pred_a, pred_b))
    rows = []
    for k, c in enumerate(LABELS):
        m = y == k
        rows.append({"class": c, "rows": int(m.sum()), f"only {names[0]} right": int(((a == y) & (b != y) & m).sum()),
                     f"only {names[1]} right": int(((b == y) & (a != y) & m).sum()), "both right": int(((a == y) & (b == y) & m).sum())})
    return pd.DataFrame(rows).set_index("class")


def decision_changes(y, control, preds: dict[str, np.ndarray]) -> pd.DataFrame:
    """Per model, rows whose label differs from ``control``'s: changed, fixed, broken and net."""
    y, control = np.asarray(y), np.asarray(control)
    rows = {}
    for name, p in preds.items():
        p = np.asarray(p)
        fixed, broken = int(((control != y) & (p == y)).sum()), int(((control == y) & (p != y)).sum())
        rows[name] = {"changed": int((p != control).sum()), "fixed": fixed, "broken": broken, "net": fixed - broken}
    return pd.DataFrame.from_dict(rows, orient="index")


def read_predictions(path: Path) -> pd.DataFrame:
    """A predictions file as a frame (``guid``, ``tag``), checked like a labels file."""
    return parse_labels(Path(path).read_text(encoding="utf-8-sig"), path)[["guid", "tag"]]


def agreement(a: pd.DataFrame, b: pd.DataFrame) -> float | None:
    """Share of rows where two prediction frames agree, or None when they do not list the same guids in order."""
    if list(a.guid) != list(b.guid):
        return None
    return float((a.tag.to_numpy() == b.tag.to_numpy()).mean()) if len(a) else 1.0


def agreeing_rows(a: pd.DataFrame, b: pd.DataFrame) -> int | None:
    """How many rows two prediction frames tag the same, or None when their guids differ in order."""
    if list(a.guid) != list(b.guid):
        return None
    return int((a.tag.to_numpy() == b.tag.to_numpy()).sum())


def class_shares(columns: dict[str, object]) -> pd.DataFrame:
    """Each column's share of every class (rows :data:`LABELS`), columns named with their row count."""
    out = {}
    for name, labels in columns.items():
        values = pd.Series(np.asarray(labels))
        if pd.api.types.is_integer_dtype(values):
            values = values.map(dict(enumerate(LABELS)))
        unknown = sorted(set(values) - set(LABELS), key=str)
        if unknown:
            raise DataError(f"class_shares: column {name!r} holds labels that are no class: {unknown[:3]}")
        out[f"{name}, n={len(values)}"] = values.value_counts(normalize=True).reindex(list(LABELS), fill_value=0.0)
    return pd.DataFrame(out).rename_axis("class")


def misnormalised(spec: ImageSpec) -> dict[str, ImageSpec]:
    """The ImageNet check's controls: ``spec`` with no normalisation, and with pixels left on the 0-255 scale."""
    return {"no normalisation (the reference report's input)": replace(spec, mean=(0.0,) * 3, std=(1.0,) * 3),
            "pixels on the 0-255 scale": replace(spec, mean=(0.0,) * 3, std=(1 / 255,) * 3)}


def imagenet_top1(enc: ImageEncoder, images: list, spec: ImageSpec | None = None) -> list[tuple[str, float]]:
    """ImageNet class name and probability of each PIL image, preprocessed as ``spec`` says."""
    from torchvision.models import ResNet50_Weights

    categories = ResNet50_Weights.IMAGENET1K_V2.meta["categories"]  # ships with torchvision, no download
    classify = getattr(enc.body, "_fc", None)
    if classify is None:
        raise EncoderUnavailable(f"{enc.name} has no ImageNet classifier head")
    x = torch.stack([(spec or enc.spec).transform()(im) for im in images])
    with torch.inference_mode():
        p = classify(enc(x)[0]).softmax(-1)
    conf, idx = p.max(-1)
    return [(categories[i], float(c)) for i, c in zip(idx.tolist(), conf.tolist())]
