"""Shared fixtures: synthetic datasets, synthetic features, the real encoders (loaded once), isolation.

Nothing here needs the internet or the course data: Hugging Face is forced offline before anything
imports transformers; every test runs in its own tmp folder (the current directory), with the caches
(``LAB5_CACHE``, which also holds the splits of synthetic datasets) and the outputs (``LAB5_OUT``) under it.
"""
from __future__ import annotations

import pytest
from synthetic import GUIDS, LABELS_, _tiny_image_encoder, _tiny_text_encoder, make_dataset, make_features


@pytest.fixture
def dataset_factory(tmp_path):
    """``dataset_factory(n_train=..., n_test=..., ...)`` -> path of a fresh synthetic dataset folder."""
    counter = iter(range(1000))

    def factory(**kw):
        kw.setdefault("name", f"ds{next(counter)}")
        return make_dataset(tmp_path, **kw)

    return factory


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Every test: runs in its tmp folder, with the caches (features, CV results, splits of synthetic datasets:
    ``<cache>/splits``) and the outputs in tmp, so that nothing is written into the checkout; no real data."""
    cache, out = tmp_path / "cache", tmp_path / "out"
    monkeypatch.setenv("LAB5_CACHE", str(cache))
    monkeypatch.setenv("LAB5_OUT", str(out))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.delenv("LAB5_DATA", raising=False)  # no test may wander into real data by default
    monkeypatch.chdir(tmp_path)  # relative defaults (./data, the project folder) resolve inside tmp
    yield {"cache": cache, "out": out}
    import sys

    if "matplotlib.pyplot" in sys.modules:  # figures a test made are closed with it
        sys.modules["matplotlib.pyplot"].close("all")


# --------------------------------------------------------------------------- the real encoders, once
@pytest.fixture(scope="session")
def minilm():
    from lab5.encoders import text_encoder

    return text_encoder("minilm")


@pytest.fixture(scope="session")
def effnet():
    from lab5.encoders import image_encoder

    return image_encoder("efficientnet-lite0")


@pytest.fixture(scope="session")
def tiny_text(minilm):
    return _tiny_text_encoder(minilm.tokenizer)


@pytest.fixture(scope="session")
def tiny_image():
    return _tiny_image_encoder()


@pytest.fixture
def patched_encoders(monkeypatch, tiny_text, tiny_image):
    """Route lab5's ``text_encoder`` / ``image_encoder`` to the tiny encoders: the pipeline is exercised end to end
    in seconds; the real encoders are tested on their own.

    ``lab5.pipeline`` (``load_encoders``) calls them through the ``lab5.encoders`` module, so patching it covers it;
    ``lab5.features`` and ``lab5.explain`` import the names
    themselves and are patched too. Counts the calls per modality.
    """
    import lab5.encoders
    import lab5.explain
    import lab5.features

    calls = {"text": 0, "image": 0}

    def t(name="minilm", cache=None):
        calls["text"] += 1
        return tiny_text

    def i(name="efficientnet-lite0", image_size=0, seed=0):
        calls["image"] += 1
        return tiny_image

    for mod in (lab5.encoders, lab5.features, lab5.explain):
        monkeypatch.setattr(mod, "text_encoder", t)
        monkeypatch.setattr(mod, "image_encoder", i)
    return calls


@pytest.fixture(scope="module")
def feats():
    """Separable synthetic features of GUIDS (see :func:`make_features`)."""
    return make_features(GUIDS, LABELS_)
