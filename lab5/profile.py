"""Where a run's time goes: ``LAB5_PROFILE=<file>`` makes :func:`stage` append one JSON line per stage.

Stages in forked workers record core-seconds, not wall time.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Iterator

import pandas as pd

ENV = "LAB5_PROFILE"


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Time the block as stage ``name`` when profiling is on (see the module docstring)."""
    t = time.perf_counter()
    try:
        yield
    finally:
        if os.environ.get(ENV):
            record(name, time.perf_counter() - t, Path(os.environ[ENV]))


def record(name: str, seconds: float, target: Path) -> None:
    """Append one stage to the profile file ``target``."""
    line = json.dumps({"stage": name, "seconds": round(seconds, 3), "pid": os.getpid()})
    with open(target, "a", encoding="utf-8") as f:  # one short append per stage: lines never interleave
        f.write(line + "\n")


def read(path: Path) -> pd.DataFrame:
    """The stages recorded in ``path``: one row per stage run (``stage``, ``seconds``, ``pid``)."""
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    return pd.DataFrame(rows, columns=["stage", "seconds", "pid"])


def table(stages: pd.DataFrame) -> pd.DataFrame:
    """Stages grouped by kind (first word) and name: runs and seconds, the most expensive first."""
    g = stages.groupby("stage", sort=False).seconds.agg(runs="count", seconds="sum").reset_index()
    g["kind"] = g.stage.str.split(" ", n=1).str[0]
    g = g.sort_values("seconds", ascending=False)
    return g[["kind", "stage", "runs", "seconds"]].round({"seconds": 1}).reset_index(drop=True)
