"""Every solution notebook's ``answers`` dict is right for its bank, and answers every non-code question.

A reordered option in a bank would otherwise silently break a solution notebook (its answer
letters would point at other options).
"""
from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

SOLUTIONS = Path(__file__).resolve().parents[2] / "exercises" / "solutions"


def _answer_key(notebook: Path) -> dict:
    """The ``answers`` dict of a solution notebook's parameters cell."""
    nb = nbformat.read(notebook, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    for node in ast.parse(cell.source).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "answers" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{notebook.name}: no answers dict in the parameters cell")


@pytest.mark.parametrize("notebook", sorted(SOLUTIONS.glob("*.ipynb")), ids=lambda p: p.stem)
def test_solution_answer_keys_are_right(notebook, load_exercises):
    ex = load_exercises(notebook.stem)
    key = _answer_key(notebook)
    assert key, "the answer key is empty"
    for qid, answer in key.items():
        fb = ex.grade(qid, answer)
        assert fb.correct, (qid, answer, fb.message)
    answered_in_code = {q.id for q in ex.bank if q.kind == "code"}
    assert set(key) | answered_in_code == set(ex.ids)
