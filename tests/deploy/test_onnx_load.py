"""ONNX files from others: ``load_onnx`` and ``tlcourse predict`` on the real export and hostile variants.

Each hostile file is the real leaf export edited one way (tests/README.md lists them): what
ONNX Runtime could be made to do with it is refused before a session exists.
"""
from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from exported_leaves import LeafExport
from tlcourse.errors import CourseError, UnsafeFileError


def _edited(leaf_onnx: Path, tmp_path: Path, edit, name: str = "edited.onnx") -> Path:
    proto = onnx.load(str(leaf_onnx))
    edit(proto)
    path = tmp_path / name
    path.write_bytes(proto.SerializeToString())
    return path


def _external(tensor: TensorProto, location: str) -> None:
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "64")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value


def _no_metadata(proto) -> None:
    del proto.metadata_props[:]


def _weights_from_etc_passwd(proto) -> None:
    _external(proto.graph.initializer[0], "../../../../../../etc/passwd")


def _constant_from_absolute_path(proto) -> None:
    value = helper.make_tensor("c", TensorProto.FLOAT, [16], [0.0] * 16)
    _external(value, "/dev/zero")
    proto.graph.node.insert(0, helper.make_node("Constant", [], ["c_out"], value=value))


def _external_tensor_in_a_subgraph(proto) -> None:
    value = helper.make_tensor("w", TensorProto.FLOAT, [4], [0.0] * 4)
    _external(value, "secret.bin")
    branch = helper.make_graph([helper.make_node("Identity", ["w"], ["y"])], "branch", [],
                               [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], initializer=[value])
    proto.graph.node.append(helper.make_node("If", ["cond"], ["y_out"], then_branch=branch, else_branch=branch))


def _custom_operator(proto) -> None:
    proto.graph.node[0].domain = "com.example.evil"
    proto.opset_import.append(helper.make_opsetid("com.example.evil", 1))


def _contrib_domain_import(proto) -> None:
    proto.opset_import.append(helper.make_opsetid("com.microsoft", 1))


def _local_function(proto) -> None:
    proto.functions.append(helper.make_function("local", "Twice", ["x"], ["y"],
                                                [helper.make_node("Add", ["x", "x"], ["y"])],
                                                [helper.make_opsetid("", 18)]))


HOSTILE = {
    "weights from ../../etc/passwd": (_weights_from_etc_passwd, "external file ('../../../../../../etc/passwd')"),
    "a constant from /dev/zero": (_constant_from_absolute_path, "external file ('/dev/zero')"),
    "external data inside an If branch": (_external_tensor_in_a_subgraph, "If"),
    "a custom-domain operator": (_custom_operator, "com.example.evil"),
    "an import of com.microsoft": (_contrib_domain_import, "com.microsoft"),
    "a model-local function": (_local_function, "local.Twice"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_onnx_files_are_refused_before_a_session(case, leaf_onnx, tmp_path, monkeypatch):
    import onnxruntime

    from tlcourse.deploy import load_onnx

    def no_session(*args, **kwargs):
        raise AssertionError("an InferenceSession was created for a refused file")

    monkeypatch.setattr(onnxruntime, "InferenceSession", no_session)
    edit, named = HOSTILE[case]
    path = _edited(leaf_onnx, tmp_path, edit)
    with pytest.raises(UnsafeFileError) as info:
        load_onnx(path)
    assert str(path) in str(info.value) and named in str(info.value) and "Nothing was run" in str(info.value)


def test_an_onnx_file_without_metadata_is_refused(leaf_onnx, tmp_path):
    from tlcourse.deploy import load_onnx

    with pytest.raises(CourseError, match="without tlcourse's metadata.*export_onnx"):
        load_onnx(_edited(leaf_onnx, tmp_path, _no_metadata))


def test_size_limit_and_files_that_are_not_onnx(leaf_onnx, leaf_export, tmp_path, monkeypatch):
    from tlcourse.deploy import load_onnx, onnx_check

    monkeypatch.setattr(onnx_check, "MAX_ONNX_BYTES", 1_000_000)
    with pytest.raises(UnsafeFileError, match="over the 1 MB"):
        load_onnx(leaf_onnx)
    monkeypatch.undo()
    renamed = tmp_path / "model.onnx"
    renamed.write_bytes(leaf_export.path.read_bytes())  # a .pt2 (zip) under an .onnx name
    with pytest.raises(CourseError, match="not an ONNX model|holds no ONNX graph"):
        load_onnx(renamed)
    with pytest.raises(CourseError, match="No model file"):
        load_onnx(tmp_path / "missing.onnx")


def test_metadata_that_disagrees_with_the_graph_is_refused(leaf_onnx, tmp_path):
    import json

    from tlcourse.deploy import load_onnx

    def fewer_names(proto):
        entry = next(p for p in proto.metadata_props if p.key == "tlcourse.json")
        metadata = json.loads(entry.value)
        metadata["class_names"] = metadata["class_names"][:3]
        entry.value = json.dumps(metadata)

    with pytest.raises(CourseError, match="names 3 classes .* outputs 15 scores"):
        load_onnx(_edited(leaf_onnx, tmp_path, fewer_names))


def test_predict_reads_onnx_with_the_same_csv(leaf_export: LeafExport, leaf_onnx: Path, run_predict):
    photos = leaf_export.held_out[:5]
    code_pt2, rows_pt2, _ = run_predict("--model", leaf_export.path, "--top-k", 2, *photos)
    code_onnx, rows_onnx, err = run_predict("--model", leaf_onnx, "--top-k", 2, *photos)
    assert code_pt2 == code_onnx == 0, err
    assert rows_onnx[0] == rows_pt2[0] == ["path", "class_1", "prob_1", "class_2", "prob_2"]
    for a, b in zip(rows_pt2[1:], rows_onnx[1:], strict=True):
        assert a[0] == b[0] and a[1] == b[1]
        assert abs(float(a[2]) - float(b[2])) <= 2e-4


def test_predict_refuses_an_onnx_file_without_metadata(leaf_onnx, leaf_export, tmp_path, run_predict):
    bare = _edited(leaf_onnx, tmp_path, _no_metadata, "bare.onnx")
    code, rows, err = run_predict("--model", bare, leaf_export.held_out[0])
    assert code == 2 and rows == []
    assert "without tlcourse's metadata" in err and "Traceback" not in err
    code, _, err = run_predict("--model", _edited(leaf_onnx, tmp_path, _custom_operator, "evil.onnx"),
                               leaf_export.held_out[0])
    assert code == 2 and "com.example.evil" in err
