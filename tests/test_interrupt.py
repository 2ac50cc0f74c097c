"""Ctrl-C loses nothing: exit code 130 and one ``interrupted:`` line, earlier outputs byte-identical, no partial
(``.*.tmp``) files, and a feature cache that holds only complete, checksummed files (real encoders, subprocesses)."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from synthetic import make_dataset, work_folder

import lab5

pytestmark = pytest.mark.skipif(os.name != "posix", reason="sends SIGINT to a child process (POSIX only)")

REPO = Path(lab5.__file__).resolve().parent.parent
OLD_PREDICTIONS = b"guid,tag\n25,positive\n26,neutral\n27,negative\n# an earlier run's file: must survive byte for byte\n"


@pytest.fixture(autouse=True)
def isolated(isolated, tmp_path, monkeypatch):
    """conftest's isolation, run from ``tmp_path/work``: a working folder apart from the datasets beside it."""
    return {**isolated, "work": work_folder(tmp_path, monkeypatch)}


def cli_env(cache: Path, out: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "LAB5_DATA"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", LAB5_CACHE=str(cache), LAB5_OUT=str(out),
               TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    return env


def _default_sigint() -> None:
    # a child of a shell job may inherit SIGINT ignored; Python then keeps ignoring it: restore the default so that
    # the child installs its KeyboardInterrupt handler
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Child:
    """``python -m lab5 ARGS`` with stdout and stderr going to files (read while it runs; no pipe can fill up)."""

    def __init__(self, tmp_path: Path, args: list[str], env: dict[str, str], name: str):
        self.err_path, self.out_path = tmp_path / f"{name}.stderr", tmp_path / f"{name}.stdout"
        with open(self.err_path, "wb") as err, open(self.out_path, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "lab5", *map(str, args)], cwd=tmp_path / "work",
                                         env=env, stdout=out, stderr=err,
                                         preexec_fn=_default_sigint)

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    def wait_for(self, ready, what: str, timeout: float = 180) -> None:
        """Poll until ``ready()``; fails (with the child's stderr) if the child exits first or time runs out."""
        deadline = time.monotonic() + timeout
        while not ready():
            if self.proc.poll() is not None:
                pytest.fail(f"the child exited ({self.proc.returncode}) before {what}:\n{self.stderr}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} after {timeout}s:\n{self.stderr}")
            time.sleep(0.05)

    def interrupt(self, timeout: float = 120) -> int:
        assert self.proc.poll() is None, f"the child already exited ({self.proc.returncode}):\n{self.stderr}"
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


def assert_interrupted_cleanly(child: Child) -> None:
    err = child.stderr
    assert "Traceback" not in err, err
    assert "\x1b[" not in err
    assert err.rstrip("\n").splitlines()[-1].startswith("interrupted:"), err


def tmp_files(*folders: Path) -> list[Path]:
    return [p for f in folders if f.exists() for p in f.rglob(".*.tmp")]


def assert_cache_complete(cache: Path) -> list[Path]:
    """Every feature file has its metadata beside it, and the checksum there matches the file's bytes."""
    pts = sorted(cache.glob("*.pt"))
    for pt in pts:
        meta = pt.with_suffix(".json")
        assert meta.is_file(), f"{pt.name} has no {meta.name}"
        assert json.loads(meta.read_text())["sha256"] == hashlib.sha256(pt.read_bytes()).hexdigest(), pt.name
    for meta in cache.glob("*.json"):
        assert meta.with_suffix(".pt").is_file(), f"{meta.name} has no .pt"
    return pts


def test_sigint_during_training_keeps_the_old_predictions(tmp_path, isolated):
    ds = make_dataset(tmp_path, n_train=45, n_test=3, name="ds")
    out = tmp_path / "preds" / "test_with_label.txt"
    out.parent.mkdir()
    out.write_bytes(OLD_PREDICTIONS)
    cache = isolated["cache"]
    args = ["predict", "--data", ds, "--out", out, "--no-progress", "--epochs", "200", "--batch-size", "2",
            "--text-encoder", "minilm", "--folds", "3"]
    child = Child(tmp_path, args, cli_env(cache, isolated["out"]), "predict")
    try:
        # the CV's fold trainings have started once both feature files are complete
        child.wait_for(lambda: len(list(cache.glob("*.json"))) == 2, "features in the cache")
        time.sleep(2)
        rc = child.interrupt()
    finally:
        child.kill()
    assert rc == 130, child.stderr
    assert_interrupted_cleanly(child)
    assert "wrote" not in child.stdout
    assert out.read_bytes() == OLD_PREDICTIONS
    assert sorted(p.name for p in out.parent.iterdir()) == ["test_with_label.txt"]
    assert not tmp_files(out.parent, cache)
    assert len(assert_cache_complete(cache)) == 2
    assert not isolated["out"].exists()  # --out given: nothing under the output root


def test_sigint_while_encoding_leaves_only_complete_cache_files(tmp_path, isolated):
    ds = make_dataset(tmp_path, n_train=24, n_test=3, name="ds")
    cache = isolated["cache"]
    env = cli_env(cache, isolated["out"])
    child = Child(tmp_path, ["features", "--data", ds, "--no-progress", "--text-encoder", "minilm"], env, "features")
    try:
        child.wait_for(lambda: "computing text features" in child.stderr, "'computing text features' line")
        rc = child.interrupt()
    finally:
        child.kill()
    assert rc == 130, child.stderr
    assert_interrupted_cleanly(child)
    assert_cache_complete(cache)
    assert not tmp_files(cache)

    rerun = subprocess.run([sys.executable, "-m", "lab5", "features", "--data", str(ds), "--no-progress", "--text-encoder", "minilm"],
                           cwd=tmp_path / "work", env=env, capture_output=True, text=True,
                           timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "text (minilm): 27 pairs" in rerun.stdout and "image (efficientnet-lite0): 27 pairs" in rerun.stdout
    assert len(assert_cache_complete(cache)) == 2
    assert not tmp_files(cache)
