"""lab5.profile: stages are timed into the file named by LAB5_PROFILE, and only then; the table made of them."""
from __future__ import annotations

import pandas as pd

from lab5 import profile


def test_a_stage_is_recorded_only_when_profiling_is_on(tmp_path, monkeypatch):
    target = tmp_path / "p.jsonl"
    monkeypatch.delenv(profile.ENV, raising=False)
    with profile.stage("features text minilm"):
        pass
    assert not target.exists()
    monkeypatch.setenv(profile.ENV, str(target))
    with profile.stage("features text minilm"):
        pass
    try:
        with profile.stage("cv late@minilm"):
            raise ValueError("the block failed")
    except ValueError:
        pass
    rows = profile.read(target)
    assert list(rows.stage) == ["features text minilm", "cv late@minilm"]  # a failed block is timed too
    assert (rows.seconds >= 0).all() and rows.pid.nunique() == 1


def test_the_table_sums_each_stage_and_puts_the_costliest_first():
    stages = pd.DataFrame({"stage": ["cv late@minilm", "features text mpnet", "cv late@minilm", "plots 05_x"],
                           "seconds": [2.0, 10.0, 3.5, 0.25], "pid": [1, 2, 3, 2]})
    t = profile.table(stages)
    assert list(t.stage) == ["features text mpnet", "cv late@minilm", "plots 05_x"]
    assert list(t.kind) == ["features", "cv", "plots"]
    assert t.set_index("stage").loc["cv late@minilm", ["runs", "seconds"]].tolist() == [2, 5.5]
