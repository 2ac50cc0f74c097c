"""The guard of issue 44: no output that nbval compares character by character shows a number computed from training.

Float rounding differs between processors, so a trained number reproduces only within a tolerance. A notebook shows
such numbers in cells tagged ``nbval-ignore-output`` and states the ones its prose relies on as checks
(:class:`lab5.checks.Expectations`), whose printed line is the same on every machine where the check passes.

The guard follows each notebook's names in order: a name assigned from a call that trains or runs a network
(:data:`COMPUTED`), or from a name already so assigned, holds computed numbers. A compared cell that uses such a name
may show decimals or fold counts (``4/5``) only on a check's line.
"""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from lab5.checks import CHECK_LINE

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))
#: lab5's calls whose results hold numbers computed by training or by a network's forward pass
COMPUTED = {"cv_runs", "cross_validate", "learning_curve", "train_model", "validation_predictions", "predict_test",
            "load_features", "text_features", "image_features", "imagenet_top1", "image_words", "search", "fit"}
#: what a processor's rounding can move: a decimal number, or a count of folds such as 4/5
VOLATILE = re.compile(r"\d\.\d|\b\d+/\d+\b")


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _calls(node: ast.AST) -> set[str]:
    return {c.func.id if isinstance(c.func, ast.Name) else c.func.attr for c in ast.walk(node)
            if isinstance(c, ast.Call) and isinstance(c.func, (ast.Name, ast.Attribute))}


def _targets(node: ast.AST) -> set[str]:
    """The names an assignment (or a for loop) binds or writes into (``runs[m] = ...`` writes into ``runs``)."""
    out = set()
    for t in ast.walk(node):
        if isinstance(t, ast.Name) and isinstance(t.ctx, ast.Store):
            out.add(t.id)
        elif isinstance(t, (ast.Subscript, ast.Attribute)) and isinstance(t.ctx, ast.Store):
            out |= _names(t.value)
    return out


def computed_names(source: str, computed: set[str]) -> set[str]:
    """``computed`` with the names a cell's ``source`` assigns from a :data:`COMPUTED` call or a computed name."""
    computed = set(computed)
    tree = ast.parse(source)
    changed = True
    while changed:  # a loop body may assign from a name assigned later in the same cell
        changed = False
        for node in ast.walk(tree):
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.For)):
                value = node.iter if isinstance(node, ast.For) else node.value
                if value is not None and (_calls(value) & COMPUTED or _names(value) & computed):
                    new = _targets(node.target if isinstance(node, ast.For) else node) - computed
                    if isinstance(node, ast.For):
                        new |= {n for s in node.body for n in _targets(s)} - computed
                    computed |= new
                    changed |= bool(new)
    return computed


def _shown(cell: dict) -> list[str]:
    """The lines of a cell's outputs nbval compares as text (streams and plain-text results)."""
    lines = []
    for o in cell.get("outputs", []):
        text = o.get("text") if o.get("output_type") == "stream" else o.get("data", {}).get("text/plain")
        lines += "".join(text or []).splitlines()
    return lines


def violations(nb: dict) -> list[str]:
    """Each compared code cell (by nbval's count) showing a volatile number off a check's line, with that line."""
    found, computed = [], set()
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    for k, cell in enumerate(code):
        source = "".join(cell["source"])
        uses = _names(ast.parse(source)) & computed or _calls(ast.parse(source)) & COMPUTED
        computed = computed_names(source, computed)
        if "nbval-ignore-output" in cell.get("metadata", {}).get("tags", []) or not uses:
            continue
        found += [f"Cell {k}: {line.strip()}" for line in _shown(cell)
                  if VOLATILE.search(line) and not CHECK_LINE.fullmatch(line.strip())]
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_compared_output_shows_a_trained_number_off_a_check_line(path):
    assert violations(json.loads(path.read_text(encoding="utf-8"))) == []


def _notebook(*cells: tuple[str, list[str], str]) -> dict:
    """A notebook of code cells, each (source, tags, printed output)."""
    return {"cells": [{"cell_type": "code", "source": src, "metadata": {"tags": tags},
                       "outputs": [{"output_type": "stream", "name": "stdout", "text": out}]} for src, tags, out in cells]}


def test_the_guard_fails_when_a_trained_number_is_compared_character_by_character():
    nb = _notebook(("cv = cross_validate(ds, configs)", ["nbval-ignore-output"], ""),
                   ("table = summarize(cv)\nprint(table)", [], "concat  0.723 ± 0.014\n"),
                   ("won = paired_table(cv, pairs)\nwon", [], "concat vs text  4/5\n"))
    assert violations(nb) == ["Cell 1: concat  0.723 ± 0.014", "Cell 2: concat vs text  4/5"]


def test_the_guard_follows_names_through_loops_and_containers():
    nb = _notebook(("runs = {}\nfor m in MODELS:\n    runs[m] = train_model(c, ds)\nbest = max(runs)", [], ""),
                   ("print(best)", [], "0.71\n"))
    assert violations(nb) == ["Cell 1: 0.71"]


def test_the_guard_lets_checks_committed_tables_and_ignored_cells_show_numbers():
    nb = _notebook(("cv = cross_validate(ds, configs)\nprint(len(cv))", [], "20\n"),
                   ("expect.close('accuracy', cv.accuracy.mean(), 0.72, tol=0.02)", [],
                    "accuracy: within 0.02 of the committed 0.72\n"),
                   ("expect.folds_won('row vs control', d, 4)", [],
                    "row vs control: 4 of 5 folds, as committed (a fold within 0.005 is a tie)\n"),
                   ("summarize(cv)", ["nbval-ignore-output"], "concat  0.723\n"),
                   ("read_table(path)", [], "gated+late  0.7265\n"))
    assert violations(nb) == []
