"""Hostile model exports are refused before anything in them runs.

Every hostile file here is the session's *real* export (tests/deploy/exported_leaves.py) with
one part swapped for a payload that, if anything unpickled or evaluated it, would create a
marker file and then hand back what the loader expected (tests/hostile_pickles.py), so that
on a vulnerable loader the attack is silent: the model loads and predicts as usual. The tests
assert that the marker never appears, that the file is refused with a message naming the part
that was refused, and that nothing on disk was lost or changed.
"""
from __future__ import annotations

import io
import json
import pickle
import shutil
import zipfile
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from torch import nn

from exported_leaves import LeafExport
from filesnap import snapshot
from hostile_pickles import Touch, python_code, torch_payload
from tlcourse.course.cli import main
from tlcourse.deploy import load_exported
from tlcourse.errors import CourseError, UnsafeFileError


# ----------------------------------------------------------------------------- hostile exports


def _rewrite(src: Path, dst: Path, edit: Callable[[dict[str, bytes]], None]) -> Path:
    """Copy the archive ``src`` to ``dst`` with its members edited in memory by ``edit``."""
    with zipfile.ZipFile(src) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    edit(members)
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return dst


def _json(members: dict[str, bytes], name: str) -> Any:
    return json.loads(members[name])


def _put_json(members: dict[str, bytes], name: str, data: Any) -> None:
    members[name] = json.dumps(data).encode()


WEIGHTS_CONFIG = "archive/data/weights/model_weights_config.json"
CONSTANTS_CONFIG = "archive/data/constants/model_constants_config.json"
SAMPLE_INPUTS = "archive/data/sample_inputs/model.pt"
PROGRAM = "archive/models/model.json"
HEAD = "classifier.1.weight"


def _pickled_weight(members: dict[str, bytes], marker: Path, model: nn.Module) -> str:
    config = _json(members, WEIGHTS_CONFIG)
    entry = config["config"][HEAD]
    entry["use_pickle"] = True
    _put_json(members, WEIGHTS_CONFIG, config)
    weight = nn.Parameter(model.state_dict()[HEAD].detach().clone(), requires_grad=False)
    name = f"archive/data/weights/{entry['path_name']}"
    members[name] = torch_payload(marker, weight)
    return name


def _sample_inputs(members: dict[str, bytes], marker: Path, model: nn.Module) -> str:
    members[SAMPLE_INPUTS] = torch_payload(marker, ((torch.zeros(2, 3, 64, 64),), {}))
    return SAMPLE_INPUTS


def _pickled_extra_file(members: dict[str, bytes], marker: Path, model: nn.Module) -> str:
    members["archive/extra/notes.pkl"] = pickle.dumps(Touch(marker), protocol=0)
    return "archive/extra/notes.pkl"


def _pickled_metadata(members: dict[str, bytes], marker: Path, model: nn.Module) -> str:
    members["archive/extra/tlcourse.json"] = pickle.dumps(Touch(marker), protocol=0)
    return "tlcourse.json"


def _legacy_weights_member(members: dict[str, bytes], marker: Path, model: nn.Module) -> str:
    # torch.export.load still reads this older layout, and unpickles it with weights_only=False
    # once the weights-only attempt fails
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    members["archive/data/weights/model.pt"] = torch_payload(marker, state)
    return "archive/data/weights/model.pt"


def _unexpected_member(members: dict[str, bytes], marker: Path, model: nn.Module) -> str:
    members["archive/data/aotinductor/model/model.so"] = b"\x7fELF not really a library"
    return "archive/data/aotinductor/model/model.so"


def _opaque_constant(members: dict[str, bytes], marker: Path, model: nn.Module) -> str:
    config = _json(members, CONSTANTS_CONFIG)
    config["config"]["hidden"] = {"path_name": "opaque_obj_0", "is_param": False, "use_pickle": True,
                                  "tensor_meta": None}
    _put_json(members, CONSTANTS_CONFIG, config)
    members["archive/data/constants/opaque_obj_0"] = pickle.dumps(Touch(marker))
    return "archive/data/constants/opaque_obj_0"


def _guards_code(members: dict[str, bytes], marker: Path, model: nn.Module) -> str:
    program = _json(members, PROGRAM)
    program["guards_code"] = [f"{python_code(marker)} is None"]
    _put_json(members, PROGRAM, program)
    # torch only turns guards into a function when the file has (harmless) sample inputs
    buffer = io.BytesIO()
    torch.save(((torch.zeros(2, 3, 64, 64),), {}), buffer)
    members[SAMPLE_INPUTS] = buffer.getvalue()
    return "guards_code"


def _symbolic_expression(members: dict[str, bytes], marker: Path, model: nn.Module) -> str:
    text = members[PROGRAM].decode()
    program = json.loads(text)
    (original,) = set(_values(program, "expr_str"))  # the batch size, e.g. Symbol('s77', ...)
    hostile = f"({python_code(marker)} or {original})"
    members[PROGRAM] = text.replace(json.dumps(original)[1:-1], json.dumps(hostile)[1:-1]).encode()
    return "expr_str"


def _foreign_operator(members: dict[str, bytes], marker: Path, model: nn.Module) -> str:
    program = _json(members, PROGRAM)
    program["graph_module"]["graph"]["nodes"][0]["target"] = "torch.os.system"
    _put_json(members, PROGRAM, program)
    return "torch.os.system"


def _injected_argument_name(members: dict[str, bytes], marker: Path, model: nn.Module) -> str:
    program = _json(members, PROGRAM)
    signature = program["graph_module"]["module_call_graph"][0]["signature"]
    signature["forward_arg_names"] = [f"x={python_code(marker)}"]
    _put_json(members, PROGRAM, program)
    return "forward_arg_names"


def _injected_parameter_name(members: dict[str, bytes], marker: Path, model: nn.Module) -> str:
    # parameter paths are pasted into the Python source of the loaded module (getattr(self, "..."))
    program = _json(members, PROGRAM)
    for spec in program["graph_module"]["signature"]["input_specs"]:
        if spec.get("parameter", {}).get("parameter_name") == HEAD:
            spec["parameter"]["parameter_name"] = f'{HEAD}"), {python_code(marker)}, getattr(self, "x'
    _put_json(members, PROGRAM, program)
    return "parameter_name"


def _values(data: Any, key: str) -> list[Any]:
    if isinstance(data, dict):
        return [v for k, v in data.items() if k == key] + [x for v in data.values() for x in _values(v, key)]
    if isinstance(data, list):
        return [x for v in data for x in _values(v, key)]
    return []


HOSTILE = {
    "pickled weight": _pickled_weight,
    "pickled sample inputs": _sample_inputs,
    "pickle in an extra file": _pickled_extra_file,
    "pickle as the metadata": _pickled_metadata,
    "legacy weights member": _legacy_weights_member,
    "unexpected member": _unexpected_member,
    "opaque constant": _opaque_constant,
    "guards code": _guards_code,
    "symbolic expression": _symbolic_expression,
    "foreign operator": _foreign_operator,
    "argument name": _injected_argument_name,
    "parameter name": _injected_parameter_name,
}


@pytest.fixture(params=sorted(HOSTILE))
def hostile(request, leaf_export: LeafExport, tmp_path: Path) -> tuple[Path, Path, str]:
    """(hostile export, marker path, what the refusal must name)."""
    marker = tmp_path / "PAYLOAD_RAN"
    named: list[str] = []
    path = _rewrite(leaf_export.path, tmp_path / "shared_by_a_classmate.pt2",
                    lambda members: named.append(HOSTILE[request.param](members, marker, leaf_export.model)))
    return path, marker, named[0]


def test_hostile_export_is_refused_before_anything_runs(hostile: tuple[Path, Path, str]) -> None:
    path, marker, named = hostile
    before = snapshot(path.parent)
    with pytest.raises(CourseError) as info:
        load_exported(path)
    message = str(info.value)
    assert not marker.exists(), "the payload ran"
    assert named in message and str(path) in message
    assert "export_model" in message  # what to do: ask for a re-export
    assert "\n" not in message
    assert snapshot(path.parent) == before  # the refused file is left as it was, nothing written


def test_predict_on_hostile_export_exits_with_one_line_and_runs_nothing(
    hostile: tuple[Path, Path, str], leaf_export: LeafExport, capsys: pytest.CaptureFixture
) -> None:
    path, marker, named = hostile
    photo = leaf_export.held_out[0]
    code = main(["predict", "--model", str(path), str(photo)])
    out, err = capsys.readouterr()
    assert not marker.exists(), "the payload ran"
    assert code == 2 and out == ""
    assert err.startswith("tlcourse predict: ") and err.count("\n") == 1 and named in err


def test_member_stored_twice_is_refused(leaf_export: LeafExport, tmp_path: Path) -> None:
    """Two members with one name: a checker and a loader could each read a different one."""
    marker = tmp_path / "PAYLOAD_RAN"
    path = tmp_path / "twice.pt2"
    shutil.copy(leaf_export.path, path)
    config = json.loads(zipfile.ZipFile(path).read(WEIGHTS_CONFIG))
    config["config"][HEAD]["use_pickle"] = True
    with zipfile.ZipFile(path, "a") as archive, pytest.warns(UserWarning, match="Duplicate name"):
        archive.writestr(WEIGHTS_CONFIG, json.dumps(config))
    with pytest.raises(UnsafeFileError, match=f"{WEIGHTS_CONFIG} appears twice"):
        load_exported(path)
    assert not marker.exists()


def test_refusal_is_an_unsafe_file_error_for_code_carrying_parts(leaf_export: LeafExport, tmp_path: Path) -> None:
    marker = tmp_path / "PAYLOAD_RAN"
    path = _rewrite(leaf_export.path, tmp_path / "m.pt2", lambda m: _pickled_weight(m, marker, leaf_export.model))
    with pytest.raises(UnsafeFileError, match=r"weight_\d+.*pickle"):
        load_exported(path)
    assert not marker.exists()
