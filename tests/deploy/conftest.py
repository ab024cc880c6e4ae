"""Fixtures of the deploy tests: one real export for the session, and a fresh process's environment."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from exported_leaves import LeafExport, build_leaf_export

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def leaf_export(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> LeafExport:
    """The trained leaf classifier and its export (tests/deploy/exported_leaves.py), built once."""
    return build_leaf_export(tmp_path_factory.mktemp("export"), shared_data)


@pytest.fixture(scope="module")
def loaded(leaf_export: LeafExport):
    """``load_exported(leaf_export.path)``, once per test module."""
    from tlcourse.deploy import load_exported

    return load_exported(leaf_export.path)


@pytest.fixture()
def checkout_env() -> dict[str, str]:
    """The environment for a fresh process that imports this checkout's tlcourse."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "tests"), env.get("PYTHONPATH", "")])
    return env


@pytest.fixture()
def run_predict(capsys: pytest.CaptureFixture[str]):
    """``run_predict(*argv)``: ``tlcourse predict ARGV...`` in this process, through
    ``tlcourse.course.cli.main`` exactly as the console script runs it. Returns (exit status, CSV rows
    of stdout, stderr)."""
    import csv
    import io

    from tlcourse.course.cli import main

    def run(*argv: object) -> tuple[int, list[list[str]], str]:
        code = main(["predict", *map(str, argv)])
        out, err = capsys.readouterr()
        return code, list(csv.reader(io.StringIO(out))) if out else [], err

    return run


@pytest.fixture(scope="session")
def leaf_onnx(leaf_export: LeafExport, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same trained leaf classifier exported to ONNX (``tlcourse.deploy.export_onnx``), once."""
    from tlcourse.deploy import export_onnx

    return export_onnx(leaf_export.model, tmp_path_factory.mktemp("onnx") / "leaves.onnx",
                       class_names=leaf_export.class_names, preprocessing=leaf_export.preprocessing,
                       provenance=leaf_export.provenance)
