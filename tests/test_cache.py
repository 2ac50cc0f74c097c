"""lab5.cache: the one cache's keys, atomic writes, checksums and the rebuild warning."""
from __future__ import annotations

import json
import logging

import pytest
from synthetic import small_config

import lab5.cache as C


def test_the_key_changes_with_a_decisive_field_the_format_and_a_library_version(monkeypatch):
    key, made = C.key({"lr": 1e-3}, ("torch",))
    assert C.key({"lr": 1e-3}, ("torch",)) == (key, made)
    assert made["format"] == C.FORMAT_VERSION and set(made["libraries"]) == {"torch"} and made["numerics"] == C.numerics()
    assert C.key({"lr": 2e-3}, ("torch",))[0] != key
    monkeypatch.setattr(C, "FORMAT_VERSION", C.FORMAT_VERSION + 1)
    assert C.key({"lr": 1e-3}, ("torch",))[0] != key
    monkeypatch.undo()
    real = C.versions
    monkeypatch.setattr(C, "versions", lambda *p: {**real(*p), "torch": "0.0.1"})
    assert C.key({"lr": 1e-3}, ("torch",))[0] != key


def test_a_run_field_does_not_change_the_key(tmp_path):
    cfg = small_config(tmp_path)
    moved = cfg.replace(cache=tmp_path / "elsewhere", progress=not cfg.progress, jobs=cfg.jobs + 1)
    assert C.key(moved.result_fields()) == C.key(cfg.result_fields())
    assert C.key(cfg.replace(lr=cfg.lr * 2).result_fields()) != C.key(cfg.result_fields())


def _entry(tmp_path):
    path = C.path(tmp_path, "cv", "k.run")
    C.store(path, b"payload", {"made": "by a test"})
    return path


def test_an_entry_is_stored_with_its_checksum_and_read_back(tmp_path):
    path = _entry(tmp_path)
    assert path == tmp_path / "cv" / "k.run"
    meta = json.loads(C.sidecar(path).read_text())
    assert meta == {"made": "by a test", "sha256": C.sha256(b"payload")}
    assert C.load(path, lambda blob, meta: (blob, meta["made"])) == (b"payload", "by a test")
    assert C.load(tmp_path / "cv" / "none.run", lambda blob, meta: pytest.fail("read")) is None


@pytest.mark.parametrize("damage", ["flip", "truncate", "sidecar", "no sidecar", "refused"])
def test_a_damaged_entry_is_rebuilt_with_the_warning(tmp_path, caplog, damage):
    path = _entry(tmp_path)
    if damage == "flip":
        path.write_bytes(b"paYload")
    elif damage == "truncate":
        path.write_bytes(b"pay")
    elif damage == "sidecar":
        C.sidecar(path).write_text("{")
    elif damage == "no sidecar":
        C.sidecar(path).unlink()

    def read(blob, meta):
        if damage == "refused":
            raise ValueError("from another version")
        return blob

    with caplog.at_level(logging.WARNING, logger="lab5"):
        assert C.load(path, read) is None
    assert f"cache file {path} is corrupt or from another version (" in caplog.text
    assert caplog.text.rstrip().endswith("rebuilding it")


def test_an_interrupted_write_leaves_the_old_file_and_no_partial_one(tmp_path, monkeypatch):
    path = _entry(tmp_path)

    def crash(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(C.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        C.store(path, b"another payload", {})
    assert sorted(p.name for p in path.parent.iterdir()) == ["k.json", "k.run"]
    assert C.load(path, lambda blob, meta: blob) == b"payload"
