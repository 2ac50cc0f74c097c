"""lab5.runtime: the scoped seeding/threads context, the device, the pinned CPU numerics, library versions."""
from __future__ import annotations

import os
import platform
import random

import numpy as np
import pytest
import torch

from lab5.config import Config
from lab5.errors import ConfigError
from lab5.runtime import PINNED_NUMERICS, numerics, pin_numerics_env, reproducible, resolve_device, versions


def _draws() -> tuple:
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_reproducible_seeds_every_generator_so_two_blocks_draw_the_same_numbers():
    with reproducible(7, 1):
        a = [_draws() for _ in range(3)]
    random.random(), np.random.rand(), torch.rand(5)  # move the outer streams on: the block must not depend on them
    with reproducible(7, 1):
        b = [_draws() for _ in range(3)]
    with reproducible(8, 1):
        c = [_draws() for _ in range(3)]
    assert a == b
    assert all(x != y for x, y in zip(a[0], c[0]))  # another seed: other numbers in each generator


def test_reproducible_restores_the_callers_random_states_and_threads():
    torch.manual_seed(123)
    random.seed(123)
    np.random.seed(123)
    threads = torch.get_num_threads()
    other = 2 if threads != 2 else 3
    states = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone()
    expected = _draws()  # what the caller draws next when nothing happens in between
    random.setstate(states[0])
    np.random.seed(123)
    torch.set_rng_state(states[2])
    deterministic = torch.are_deterministic_algorithms_enabled()
    with reproducible(0, other):
        assert torch.get_num_threads() == other
        assert torch.are_deterministic_algorithms_enabled()
        _draws(), torch.randn(100)
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic
    assert random.getstate() == states[0]
    assert np.array_equal(np.random.get_state()[1], states[1])
    assert torch.equal(torch.get_rng_state(), states[2])
    assert _draws() == expected


def test_reproducible_restores_everything_when_the_block_raises():
    threads, state = torch.get_num_threads(), torch.get_rng_state().clone()
    py = random.getstate()
    with pytest.raises(KeyError):
        with reproducible(0, threads + 1):
            torch.rand(3), random.random()
            raise KeyError("boom")
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.get_rng_state(), state) and random.getstate() == py


def test_reproducible_without_threads_keeps_the_thread_count():
    threads = torch.get_num_threads()
    with reproducible(0):
        assert torch.get_num_threads() == threads


def test_resolve_device_picks_cuda_for_auto_only_when_present_and_the_config_refuses_the_rest():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="unknown --device 'tpu'"):  # the one check of a device name
        Config(device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA"):
            Config(device="cuda")


def test_numerics_are_pinned_because_lab5_is_imported_before_torch():
    """conftest imports lab5 first; its __init__ then pins the kernels torch picks (on x86-64 machines)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("the pins apply to x86-64 only")
    if os.environ.get("ATEN_CPU_CAPABILITY") != PINNED_NUMERICS["ATEN_CPU_CAPABILITY"]:
        pytest.skip("ATEN_CPU_CAPABILITY was set by the user")
    assert numerics() == {"cpu_capability": "AVX2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def test_pin_numerics_env_is_inert_once_torch_is_loaded(monkeypatch):
    for name in PINNED_NUMERICS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    assert pin_numerics_env() is False  # torch is imported: too late to pick its kernels
    assert not any(name in os.environ for name in PINNED_NUMERICS)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"  # read by CUDA at first use: still worth setting


def test_versions_names_absent_packages():
    v = versions("torch", "no-such-package-lab5")
    assert torch.__version__.startswith(v["torch"]) and v["no-such-package-lab5"] == "absent"


def _project_with_venv(tmp_path):
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    venv = project / ".venv" / "bin" / "python"
    venv.parent.mkdir(parents=True)
    venv.write_text("#!/bin/sh\necho \"the project's venv ran: $*\"\n")
    venv.chmod(0o755)
    return project


def test_python_m_lab5_without_the_requirements_goes_on_in_the_projects_venv(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    import lab5

    project = _project_with_venv(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(Path(lab5.__file__).parent.parent)}
    # -S: no site-packages, so numpy and pandas are missing, as in a machine's own python3 before `make setup`
    done = subprocess.run([sys.executable, "-S", "-m", "lab5", "--help"], cwd=project, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "the project's venv ran: -m lab5 --help", done.stderr
    (project / ".venv" / "bin" / "python").unlink()  # no venv: one clear error naming the fix
    done = subprocess.run([sys.executable, "-S", "-m", "lab5", "--help"], cwd=project, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0 and "make setup" in done.stderr


def test_provenance_names_the_command_the_commit_the_date_and_the_cpu(tmp_path, monkeypatch):
    import datetime

    from lab5.runtime import cpu_model, provenance

    made = provenance("lab5", ["cv", "--models", "late"])
    assert made["command"] == "python -m lab5 cv --models late"
    assert made["date"] == datetime.date.today().isoformat() and made["cpu"] == cpu_model() and made["cores"] >= 1
    assert isinstance(made["commit"], str)  # empty outside a git checkout (the tests run in a tmp folder)


def test_made_by_reads_the_commit_beside_a_table(tmp_path):
    from lab5.runtime import made_by

    (tmp_path / "t.json").write_text('{"commit": "abc1234 (with changes)"}')
    assert made_by(tmp_path / "t.csv") == "abc1234" and made_by(tmp_path / "u.csv") == "unknown"
