"""The README's results table quotes the committed tables: each number there is read from the CSV it names."""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
#: the README's row labels -> the model names of figures/05_cv_summary.csv
ROWS = {"always positive": "always_positive", "text only": "text", "image only": "image", "concat fusion": "concat",
        "cross-attention fusion": "cross_attention", "ensemble of the 3 heads on MiniLM": "ensemble on MiniLM",
        "final model": "ensemble on MiniLM + mpnet", "the same with out-of-fold class offsets": "mean + OOF-tuned offsets"}


def _results_table() -> dict[str, list[str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Results", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split("|") for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    return {cells[0].strip().strip("*"): [c.strip().strip("*") for c in cells[1:]] for cells in rows[1:]}


def test_the_readme_results_table_quotes_notebook_5s_cv_summary():
    table = _results_table()
    summary = pd.read_csv(ROOT / "figures" / "05_cv_summary.csv", index_col=0)
    for prefix, model in ROWS.items():
        (label,) = [k for k in table if k.startswith(prefix)]
        for quoted, column in zip(table[label], ("accuracy", "macro_f1")):
            mean = float(summary.loc[model, column].split(" ± ")[0])
            assert float(quoted) == pytest.approx(mean, abs=5e-4), (label, column)


def test_the_readme_headline_is_the_nested_cv_of_the_submitted_procedure():
    from lab5.experiments.nested import NESTED_FILE, summary

    table = _results_table()
    (label,) = [k for k in table if k.startswith("submitted procedure")]
    nested = summary(pd.read_csv(ROOT / "figures" / NESTED_FILE)).loc[("bagged", "mean")]  # what predict does
    for quoted, column in zip(table[label], ("accuracy", "macro_f1")):
        mean, std = (float(x) for x in re.fullmatch(r"([\d.]+) ± ([\d.]+)", quoted).groups())
        assert mean == pytest.approx(nested[(column, "mean")], abs=5e-4)
        assert std == pytest.approx(nested[(column, "std")], abs=5e-4)
    assert table[label][0] in (ROOT / "README.md").read_text().split("## Results")[0]  # the first lines quote it too
