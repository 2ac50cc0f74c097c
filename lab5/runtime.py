"""The process a run lives in: CPU numerics pinned before torch loads, scoped seeds and threads, device, versions.

torch is imported inside functions: ``lab5/__init__`` imports this module to pin numerics before torch loads.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import platform
import random
import sys
from importlib import metadata
from pathlib import Path
from typing import Iterator


#: Environment defaults that make every x86-64 CPU with AVX2 pick the same kernels, so that float rounding, and
#: with it every prediction, agrees across Intel and AMD machines (no slower than the native kernels here).
PINNED_NUMERICS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def pin_numerics_env() -> bool:
    """Set (where the user has not) :data:`PINNED_NUMERICS` and related defaults in the environment.

    Effective only before torch is imported, on x86-64; returns whether the CPU pins could take effect.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    # workers are forked after the tokenizer ran (lab5.parallel): its own thread pool would warn at every fork
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    native = os.environ.get("LAB5_NUMERICS", "pinned") == "native"
    if native or platform.machine().lower() not in ("x86_64", "amd64") or "torch" in sys.modules:
        return False
    for name, value in PINNED_NUMERICS.items():
        os.environ.setdefault(name, value)
    return True


def numerics() -> dict[str, str]:
    """The kernels this process computes with: torch's CPU capability and the MKL / oneDNN pins in force."""
    import torch

    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(),
            **{name: os.environ.get(name, "") for name in ("MKL_CBWR", "ONEDNN_MAX_CPU_ISA")}}


def versions(*packages: str) -> dict[str, str]:
    """Installed versions of ``packages`` (``absent`` where one is not installed)."""
    out = {}
    for p in packages:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "absent"
    return out


@contextlib.contextmanager
def reproducible(seed: int, threads: int | None = None) -> Iterator[None]:
    """Inside the block: seeded RNGs, deterministic algorithms, ``threads`` threads; all restored on exit.

    In a forked worker torch stays on one thread: OpenMP's pool cannot restart after a fork and would hang.
    """
    import numpy as np
    import torch
    import torch.utils.deterministic

    if multiprocessing.current_process().daemon:
        threads = 1
    py_state, np_state = random.getstate(), np.random.get_state()
    old_threads = torch.get_num_threads()
    old_det, old_warn = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    old_bench = torch.backends.cudnn.benchmark
    old_fill = torch.utils.deterministic.fill_uninitialized_memory
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=cuda):
        try:
            random.seed(seed)
            np.random.seed(seed)
            torch.manual_seed(seed)
            torch.use_deterministic_algorithms(True, warn_only=True)
            # NaN-filling new tensors costs time and changes no number: nothing reads memory before writing it
            torch.utils.deterministic.fill_uninitialized_memory = False
            torch.backends.cudnn.benchmark = False
            if threads:
                torch.set_num_threads(threads)
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
            torch.use_deterministic_algorithms(old_det, warn_only=old_warn)
            torch.utils.deterministic.fill_uninitialized_memory = old_fill
            torch.backends.cudnn.benchmark = old_bench
            torch.set_num_threads(old_threads)


def resolve_device(name: str):
    """The torch device of a ``Config.device``: ``auto`` picks CUDA when present, else the CPU."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def use_project_venv(missing: ModuleNotFoundError) -> None:
    """On a missing requirement, rerun ``python -m lab5`` in the project's ``.venv``, else raise ImportError."""
    from .config import find_project

    project = find_project()
    venv = project / ".venv" / "bin" / "python" if project else None
    if sys.argv[:1] == ["-m"] and venv is not None and venv.is_file() and Path(sys.executable) != venv:
        os.execv(venv, [str(venv), "-m", "lab5", *sys.argv[1:]])
    raise ImportError(f"lab5 needs its requirements ({missing.name} is missing from {sys.executable}): run `make setup` "
                      "in the project and use .venv/bin/python, or pip install -r requirements.txt") from missing


def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def provenance(module: str, argv: list[str]) -> dict:
    """Where a committed table comes from: command, commit, date, CPU model and cores."""
    import datetime
    import subprocess

    from .config import find_project

    project = find_project() or Path.cwd()  # the checkout whose code made the table, not another repository

    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", *a], capture_output=True, text=True, timeout=10, cwd=project).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"command": " ".join(["python -m", module, *argv]),
            "commit": git("rev-parse", "--short", "HEAD") + (" (with changes)" if git("status", "--porcelain", "-uno") else ""),
            "date": datetime.date.today().isoformat(), "cpu": cpu_model(), "cores": os.cpu_count()}


def write_table(path: Path, table, made: dict, started: float) -> None:
    """A command's table as CSV, and beside it (``.json``) its provenance with the wall time."""
    import json
    import time

    from .cache import atomic_write_bytes

    atomic_write_bytes(path, table.to_csv(index=False).encode())
    wall = round(time.perf_counter() - started, 1)
    atomic_write_bytes(path.with_suffix(".json"), json.dumps({**made, "wall_s": wall}, indent=2).encode())


def made_by(table: Path) -> str:
    """The commit that made a committed table, from the provenance ``.json`` beside it (:func:`write_table`)."""
    import json

    meta = Path(table).with_suffix(".json")
    return json.loads(meta.read_text())["commit"].split()[0] if meta.is_file() else "unknown"
