"""lab5.config: every option value checked in one place, defaults from the environment and the current folder."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import lab5.encoders
import lab5.heads
from lab5.config import (
    IMAGE_ENCODER_NAMES,
    MODEL_NAMES,
    Config,
    default_cache_dir,
    default_data_dir,
    default_out_dir,
    find_project,
)
from lab5.errors import ConfigError, UserError


def test_defaults_make_a_valid_config(isolated):
    cfg = Config()
    assert cfg.problems() == []
    assert cfg.model == "cross_attention+gated+late" and cfg.device == "auto" and cfg.folds == 5
    assert cfg.cache == isolated["cache"] and cfg.out_dir == isolated["out"]  # LAB5_CACHE, LAB5_OUT
    assert cfg.data == Path.cwd() / "data"


@pytest.mark.parametrize("changes, needle", [
    ({"folds": 1}, "--folds must be at least 2, not 1"),
    ({"batch_size": 0}, "--batch-size must be at least 1, not 0"),
    ({"epochs": 0}, "--epochs must be at least 1, not 0"),
    ({"seed": -1}, "--seed must be at least 0, not -1"),
    ({"fold_seed": -1}, "--fold-seed must be at least 0, not -1"),
    ({"max_length": 0}, "--max-length must be at least 1"),
    ({"lr": 0.0}, "--lr must be above 0, not 0.0"),
    ({"encoder_lr": -1e-5}, "--encoder-lr must be above 0"),
    ({"dropout": 1.0}, "--dropout must be in [0, 1), not 1.0"),
    ({"dropout": -0.1}, "--dropout must be in [0, 1)"),
    ({"model": "svm"}, "unknown model 'svm'; choose one of text, image"),
    ({"model": "late+svm"}, "unknown model 'svm'"),
    ({"model": "late+late"}, "model 'late+late' names a head twice"),
    ({"image_encoder": "vgg16"}, "unknown --image-encoder 'vgg16'; use efficientnet-lite0, resnet50, resnet50-scratch"),
    ({"text_encoder": ""}, "--text-encoder '' must name one encoder, or several different ones joined with +"),
    ({"text_encoder": "minilm+"}, "--text-encoder 'minilm+' must name one encoder"),
    ({"text_encoder": "minilm+minilm"}, "--text-encoder 'minilm+minilm' must name one encoder"),
    ({"text_features": "bag-of-words"}, "unknown --text-features 'bag-of-words'"),
    ({"device": "tpu"}, "unknown --device 'tpu'; use cpu, cuda, auto"),
    ({"attention_hidden": 10}, "--attention-hidden 10 is not a multiple of the 4 attention heads"),
    ({"image_size": 128}, "efficientnet-lite0 is built for 224x224 inputs"),
    ({"image_encoder": "resnet50", "image_size": 16}, "--image-size must be 0 (the encoder's own) or at least 32, not 16"),
    ({"image_size": -1}, "--image-size must be at least 0"),
    ({"text_encoder": "minilm+mpnet", "model": "late", "finetune": True}, "--finetune fine-tunes one text encoder"),
    ({"model": "late+gated", "finetune": True}, "ensembles train on cached features; drop --finetune"),
    ({"epochs": "3"}, "--epochs must be int, not '3'"),
    ({"epochs": True}, "--epochs must be int, not True"),
    ({"epochs": 2.0}, "--epochs must be int, not 2.0"),
    ({"lr": "fast"}, "--lr must be float, not 'fast'"),
    ({"dropout": None}, "--dropout must be float, not None"),
    ({"finetune": "yes"}, "--finetune must be bool, not 'yes'"),
    ({"progress": 1}, "--progress must be bool, not 1"),
    ({"model": 3}, "--model must be str, not 3"),
], ids=lambda v: "-".join(f"{k}={v[k]}" for k in v) if isinstance(v, dict) else None)
def test_each_bad_value_is_a_config_error_naming_the_option(changes, needle):
    with pytest.raises(ConfigError) as e:  # on one text encoder, so each change makes one problem
        Config(**{"text_encoder": "minilm", **changes})
    assert len(e.value.problems) == 1, e.value.problems
    assert needle in e.value.problems[0]


def test_device_cuda_without_cuda_is_a_config_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError) as e:
        Config(device="cuda")
    assert e.value.problems == ["--device cuda was asked for, but torch sees no CUDA device (use --device cpu or auto)"]


def test_a_path_option_of_another_type_is_a_config_error():
    with pytest.raises(ConfigError, match="--data"):
        Config(data=3)


def test_every_problem_is_listed_at_once():
    with pytest.raises(ConfigError) as e:
        Config(folds=1, lr=0.0, device="tpu")
    assert [p.split()[0 if p.startswith("--") else 1] for p in e.value.problems] == ["--folds", "--lr", "--device"]
    assert str(e.value) == "\n".join(e.value.problems)


def test_config_error_is_a_user_error_and_a_value_error():
    assert issubclass(ConfigError, UserError) and issubclass(ConfigError, ValueError)


def test_replace_checks_the_new_values():
    cfg = Config(epochs=3)
    assert cfg.replace(epochs=4).epochs == 4 and cfg.epochs == 3
    with pytest.raises(ConfigError, match="--epochs must be at least 1"):
        cfg.replace(epochs=0)


def test_paths_are_made_paths():
    cfg = Config(data="d", cache="c", out_dir="o")
    assert (cfg.data, cfg.cache, cfg.out_dir) == (Path("d"), Path("c"), Path("o"))


def test_the_names_config_checks_are_the_registries_of_models_and_image_encoders():
    assert set(MODEL_NAMES) == set(lab5.heads.MODELS)
    assert set(IMAGE_ENCODER_NAMES) == set(lab5.encoders.IMAGE_ENCODERS)


# --------------------------------------------------------------------------- to and from dicts
def test_config_round_trips_through_a_dict_and_json():
    cfg = Config(model="gated", lr=3e-4, finetune=True, text_encoder="minilm", out_dir=Path("somewhere"))
    assert Config.from_dict({**cfg.to_dict(), "some_future_key": 1}) == cfg
    assert Config.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert cfg.to_dict()["cache"] == str(cfg.cache)


def test_from_dict_applies_overrides_and_fills_missing_or_null_values_with_defaults(isolated):
    cfg = Config.from_dict({"model": "late", "epochs": 7, "out_dir": None, "cache": "/old/cache"}, cache=Path("/new"))
    assert cfg.model == "late" and cfg.epochs == 7
    assert cfg.cache == Path("/new") and cfg.out_dir == isolated["out"] and cfg.lr == Config().lr
    with pytest.raises(ConfigError, match="unknown --device"):
        Config.from_dict({"model": "late"}, device="tpu")


# --------------------------------------------------------------------------- defaults from the environment
def _project(root: Path) -> Path:
    (root / "notebooks").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    return root


def test_find_project_looks_upwards_for_notebooks_and_pyproject(tmp_path, monkeypatch):
    project = _project(tmp_path / "proj")
    (project / "deep" / "er").mkdir(parents=True)
    assert find_project(project / "deep" / "er") == project.resolve()
    assert find_project(tmp_path) is None
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "notebooks").mkdir()
    assert find_project(tmp_path / "half") is None  # no pyproject.toml: not a project
    monkeypatch.chdir(project / "deep")
    assert find_project() == project.resolve()


def test_default_folders_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB5_DATA", str(tmp_path / "d"))
    assert (default_data_dir(), default_cache_dir(), default_out_dir()) == (tmp_path / "d", tmp_path / "cache", tmp_path / "out")


def test_without_the_environment_defaults_are_the_projects_folders(tmp_path, monkeypatch):
    for name in ("LAB5_DATA", "LAB5_CACHE", "LAB5_OUT"):
        monkeypatch.delenv(name, raising=False)
    assert (default_data_dir(), default_cache_dir(), default_out_dir()) == (tmp_path / "data", tmp_path / ".cache", None)
    project = _project(tmp_path / "proj")
    (project / "sub").mkdir()
    monkeypatch.chdir(project / "sub")
    assert default_data_dir() == project.resolve() / "data" and default_cache_dir() == project.resolve() / ".cache"
    assert Config().out_dir is None


def test_a_result_key_holds_every_field_but_the_run_fields():
    """Cache keys hold every field, at its default or not, and the fold seed even where it equals the seed."""
    from lab5.config import RUN_FIELDS

    cfg = Config(data="d", cache="c")
    assert set(cfg.result_fields()) == set(cfg.to_dict()) - set(RUN_FIELDS)
    assert set(RUN_FIELDS) == {"data", "cache", "out_dir", "progress", "jobs"}
    assert cfg.result_fields()["fold_seed"] == 0 and cfg.result_fields()["seed"] == 0
    assert cfg.replace(seed=3, fold_seed=3).result_fields()["fold_seed"] == 3
    assert cfg.replace(fold_seed=3).result_fields()["fold_seed"] == 3


def test_every_field_is_in_exactly_one_group():
    import dataclasses

    from lab5.config import GROUPS

    grouped = [f for names in GROUPS.values() for f in names]
    assert sorted(grouped) == sorted(f.name for f in dataclasses.fields(Config))  # each once, none left out
    assert list(GROUPS) == ["run", "model", "training"]


def test_heads_batches_and_the_training_loop_are_given_only_their_group_of_the_config():
    import typing

    from lab5 import training as T
    from lab5.batches import make_data
    from lab5.config import ModelGroup, TrainingGroup
    from lab5.heads import MODELS

    cfg = Config(data="d", cache="c", hidden=32, lr=0.5)
    assert cfg.model_group.hidden == 32 and cfg.training_group.lr == 0.5
    for head in MODELS.values():
        assert typing.get_type_hints(head.__init__)["arch"] is ModelGroup, head
    for layer in (T.train_classifier, T.make_optimizer, T.evaluate, T.predict_logits):
        assert typing.get_type_hints(layer)["training"] is TrainingGroup, layer
        assert Config not in typing.get_type_hints(layer).values(), layer
    assert typing.get_type_hints(make_data)["arch"] is ModelGroup  # the batches read what the model is, no paths
    with pytest.raises(AttributeError):
        cfg.model_group.cache  # a head never sees a path
