"""Files from others run no code: hostile model exports, checkpoints and cache files.

Every hostile file here is a *real* file with one part swapped for a payload that, if anything
unpickled or evaluated it, would create a marker file (``pathlib.Path.touch``) and then hand
back the value the loader expected, so that on a vulnerable loader the attack is silent: the
model loads and predicts as usual. The tests assert that the marker never appears, that the
file is refused with a message naming the part that was refused, and that nothing on disk
was lost or changed.

The model exports start from test_export.py's real export (MobileNetV2, a head trained on
cached features of real PlantVillage photos at 64 px).
"""
from __future__ import annotations

import io
import json
import operator
import pathlib
import pickle
import shutil
import zipfile
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from torch import nn

from filesnap import snapshot
from test_export import LeafExport, leaf_export  # noqa: F401  (the shared session fixture)
from tlcourse.cli import main
from tlcourse.errors import CourseError, UnsafeFileError
from tlcourse.export import load_exported

# ----------------------------------------------------------------------------- payloads


class _Touch:
    """Unpickles to ``Path(marker).touch()``: stands for any code an attacker wants to run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


class _TouchThen:
    """Unpickles to ``value`` after running the payload: a load that looks perfectly normal."""

    def __init__(self, marker: Path, value: Any) -> None:
        self.marker, self.value = marker, value

    def __reduce__(self) -> tuple[Any, ...]:
        return (operator.getitem, ((_Touch(self.marker), self.value), 1))


def _torch_payload(marker: Path, value: Any) -> bytes:
    """``torch.save`` of ``value`` wrapped in the payload (torch.load(weights_only=False) runs it)."""
    buffer = io.BytesIO()
    torch.save(_TouchThen(marker, value), buffer)
    return buffer.getvalue()


def _python_code(marker: Path) -> str:
    """Python source that creates the marker (for fields torch passes to eval/exec)."""
    return f"__import__('pathlib').Path({str(marker)!r}).touch()"


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
    members[name] = _torch_payload(marker, weight)
    return name


def _sample_inputs(members: dict[str, bytes], marker: Path, model: nn.Module) -> str:
    members[SAMPLE_INPUTS] = _torch_payload(marker, ((torch.zeros(2, 3, 64, 64),), {}))
    return SAMPLE_INPUTS


def _pickled_extra_file(members: dict[str, bytes], marker: Path, model: nn.Module) -> str:
    members["archive/extra/notes.pkl"] = pickle.dumps(_Touch(marker), protocol=0)
    return "archive/extra/notes.pkl"


def _pickled_metadata(members: dict[str, bytes], marker: Path, model: nn.Module) -> str:
    members["archive/extra/tlcourse.json"] = pickle.dumps(_Touch(marker), protocol=0)
    return "tlcourse.json"


def _legacy_weights_member(members: dict[str, bytes], marker: Path, model: nn.Module) -> str:
    # torch.export.load still reads this older layout, and unpickles it with weights_only=False
    # once the weights-only attempt fails
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    members["archive/data/weights/model.pt"] = _torch_payload(marker, state)
    return "archive/data/weights/model.pt"


def _unexpected_member(members: dict[str, bytes], marker: Path, model: nn.Module) -> str:
    members["archive/data/aotinductor/model/model.so"] = b"\x7fELF not really a library"
    return "archive/data/aotinductor/model/model.so"


def _opaque_constant(members: dict[str, bytes], marker: Path, model: nn.Module) -> str:
    config = _json(members, CONSTANTS_CONFIG)
    config["config"]["hidden"] = {"path_name": "opaque_obj_0", "is_param": False, "use_pickle": True,
                                  "tensor_meta": None}
    _put_json(members, CONSTANTS_CONFIG, config)
    members["archive/data/constants/opaque_obj_0"] = pickle.dumps(_Touch(marker))
    return "archive/data/constants/opaque_obj_0"


def _guards_code(members: dict[str, bytes], marker: Path, model: nn.Module) -> str:
    program = _json(members, PROGRAM)
    program["guards_code"] = [f"{_python_code(marker)} is None"]
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
    hostile = f"({_python_code(marker)} or {original})"
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
    signature["forward_arg_names"] = [f"x={_python_code(marker)}"]
    _put_json(members, PROGRAM, program)
    return "forward_arg_names"


def _injected_parameter_name(members: dict[str, bytes], marker: Path, model: nn.Module) -> str:
    # parameter paths are pasted into the Python source of the loaded module (getattr(self, "..."))
    program = _json(members, PROGRAM)
    for spec in program["graph_module"]["signature"]["input_specs"]:
        if spec.get("parameter", {}).get("parameter_name") == HEAD:
            spec["parameter"]["parameter_name"] = f'{HEAD}"), {_python_code(marker)}, getattr(self, "x'
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
def hostile(request, leaf_export: LeafExport, tmp_path: Path) -> tuple[Path, Path, str]:  # noqa: F811
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
    hostile: tuple[Path, Path, str], leaf_export: LeafExport, capsys: pytest.CaptureFixture  # noqa: F811
) -> None:
    path, marker, named = hostile
    photo = leaf_export.held_out[0]
    code = main(["predict", "--model", str(path), str(photo)])
    out, err = capsys.readouterr()
    assert not marker.exists(), "the payload ran"
    assert code == 2 and out == ""
    assert err.startswith("tlcourse predict: ") and err.count("\n") == 1 and named in err


def test_member_stored_twice_is_refused(leaf_export: LeafExport, tmp_path: Path) -> None:  # noqa: F811
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


def test_refusal_is_an_unsafe_file_error_for_code_carrying_parts(leaf_export: LeafExport, tmp_path: Path) -> None:  # noqa: F811
    marker = tmp_path / "PAYLOAD_RAN"
    path = _rewrite(leaf_export.path, tmp_path / "m.pt2", lambda m: _pickled_weight(m, marker, leaf_export.model))
    with pytest.raises(UnsafeFileError, match=r"weight_\d+.*pickle"):
        load_exported(path)
    assert not marker.exists()


def test_own_export_holds_no_pickle(leaf_export: LeafExport) -> None:  # noqa: F811
    """What export_model writes passes the same inspection (test_export.py checks it loads)."""
    with zipfile.ZipFile(leaf_export.path) as archive:
        assert archive.read(SAMPLE_INPUTS) == b""  # no pickled example inputs
        weights = json.loads(archive.read(WEIGHTS_CONFIG))["config"]
        constants = json.loads(archive.read(CONSTANTS_CONFIG))["config"]
    assert weights and not any(e["use_pickle"] for e in [*weights.values(), *constants.values()])


def test_older_export_with_tensor_sample_inputs_still_loads(leaf_export: LeafExport, tmp_path: Path) -> None:  # noqa: F811
    """Exports written before this check carry example inputs as a plain tensor pickle: still fine."""
    def add_inputs(members: dict[str, bytes]) -> None:
        buffer = io.BytesIO()
        torch.save(((torch.randn(2, 3, 64, 64),), {}), buffer)
        members[SAMPLE_INPUTS] = buffer.getvalue()

    path = _rewrite(leaf_export.path, tmp_path / "older.pt2", add_inputs)
    loaded = load_exported(path)
    expected = load_exported(leaf_export.path).predict(leaf_export.held_out[:2])
    assert loaded.predict(leaf_export.held_out[:2]) == expected


# ----------------------------------------------------------------------------- checkpoints and caches


@pytest.fixture(scope="module")
def leaf_features(small_plants):
    """Real penultimate features of real leaf photos (MobileNetV2), as fit's training data."""
    from tlcourse.features import extract_features
    from tlcourse.models import create_model, freeze

    model, _ = create_model("mobilenet_v2", 15, seed=0)
    freeze(model)
    return extract_features(model, small_plants, progress=False)


def test_hostile_checkpoint_is_refused_on_resume(leaf_features, tmp_path: Path) -> None:
    from tlcourse.train import fit

    marker = tmp_path / "PAYLOAD_RAN"
    ckpt = tmp_path / "run.pt"
    fit(nn.Linear(1280, 15), leaf_features, leaf_features, epochs=1, progress=False, checkpoint_path=ckpt)
    state = torch.load(ckpt, weights_only=True)  # the course's own checkpoint is plain data
    ckpt.write_bytes(_torch_payload(marker, state))
    before = snapshot(tmp_path)
    with pytest.raises(CourseError) as info:
        fit(nn.Linear(1280, 15), leaf_features, leaf_features, epochs=2, progress=False,
            checkpoint_path=ckpt, resume=True)
    assert not marker.exists(), "the payload ran"
    assert str(ckpt) in str(info.value) and "resume" in str(info.value)
    assert snapshot(tmp_path) == before


def test_hostile_dataset_cache_is_discarded_and_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tlcourse.data import load_dataset

    monkeypatch.setenv("TLCOURSE_CACHE", str(tmp_path / "cache"))
    marker = tmp_path / "PAYLOAD_RAN"
    clean = load_dataset("pneumoniamnist", 16, progress=False)
    (cache_file,) = (tmp_path / "cache" / "tensors").glob("pneumoniamnist-16px-*.pt")
    payload = {"images": clean.images, "labels": clean.labels, "paths": clean.paths, "splits": clean.splits,
               "count": len(clean)}
    cache_file.write_bytes(_torch_payload(marker, payload))
    with pytest.warns(UserWarning, match="discarded") as record:
        again = load_dataset("pneumoniamnist", 16, progress=False)
    assert not marker.exists(), "the payload ran"
    assert any(str(cache_file) in str(w.message) for w in record)
    assert torch.equal(again.images, clean.images) and again.paths == clean.paths
    assert torch.load(cache_file, weights_only=True)["paths"] == clean.paths  # rebuilt as plain data


def test_hostile_feature_cache_is_discarded_and_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_plants) -> None:
    from tlcourse.features import clear_memory_cache, extract_features
    from tlcourse.models import create_model, freeze

    monkeypatch.setenv("TLCOURSE_CACHE", str(tmp_path / "cache"))
    marker = tmp_path / "PAYLOAD_RAN"
    model, _ = create_model("mobilenet_v2", 15, seed=0)
    freeze(model)
    data = small_plants.subset(range(8))
    clean = extract_features(model, data, progress=False)
    cache_file = tmp_path / "cache" / "features" / f"{clean.key}.pt"
    cache_file.write_bytes(_torch_payload(marker, {"features": clean.features, "labels": clean.labels,
                                                   "classes": clean.classes}))
    clear_memory_cache()
    try:
        with pytest.warns(UserWarning, match="discarded") as record:
            again = extract_features(model, data, progress=False)
    finally:
        clear_memory_cache()
    assert not marker.exists(), "the payload ran"
    assert any(str(cache_file) in str(w.message) for w in record)
    assert torch.equal(again.features, clean.features)
    assert torch.equal(torch.load(cache_file, weights_only=True)["features"], clean.features)


def test_dataset_cache_with_numpy_extras_is_written_as_plain_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """elpv keeps per-image extras as numpy arrays; its cache must still load weights-only.
    (elpv itself is not in the test data, so its payload's shape is built here.)"""
    import numpy as np

    from tlcourse.data.datasets import _cached

    monkeypatch.setenv("TLCOURSE_CACHE", str(tmp_path))
    extras = {"defect_probability": np.array([0.0, 0.33, 1.0], dtype=np.float32),
              "cell_type": np.array(["mono", "poly", "mono"])}
    payload = {"images": torch.zeros(3, 3, 8, 8, dtype=torch.uint8), "labels": torch.tensor([0, 0, 1]),
               "paths": ["a.png", "b.png", "c.png"], "splits": None, "extras": extras}
    first = _cached("extras-test", lambda: payload)
    (cache_file,) = (tmp_path / "tensors").glob("extras-test.pt")
    torch.load(cache_file, weights_only=True)  # no numpy object inside
    again = _cached("extras-test", lambda: pytest.fail("the cache was not used"))
    for key, value in extras.items():
        assert again["extras"][key].dtype == value.dtype and (again["extras"][key] == value).all()
    assert first is payload
