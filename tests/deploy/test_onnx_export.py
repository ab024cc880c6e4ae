"""ONNX export round trip: the real leaf classifier, exported, run by ONNX Runtime on real photos."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from exported_leaves import TRAIN_PER_CLASS, LeafExport
from tlcourse.errors import CourseError


def unseen_leaves(data_root: Path, per_class: int) -> tuple[list[Path], list[int]]:
    """``per_class`` photos per class that the leaf model never trained on, with their labels."""
    from tlcourse.data import get_info

    paths, labels = [], []
    for label, folder in enumerate(get_info("plantvillage").class_folders):
        photos = sorted((data_root / "plantvillage" / folder).glob("*.jpg"))
        chosen = photos[TRAIN_PER_CLASS : TRAIN_PER_CLASS + per_class]
        paths += chosen
        labels += [label] * len(chosen)
    return paths, labels


def test_onnx_runtime_matches_pytorch_on_real_photos(leaf_export: LeafExport, leaf_onnx: Path, shared_data: Path):
    from tlcourse.deploy import load_onnx

    paths, _ = unseen_leaves(shared_data, 4)
    onnx_model = load_onnx(leaf_onnx, threads=1)
    x = onnx_model.preprocess(paths)
    with torch.inference_mode():
        expected = leaf_export.model.eval()(x).softmax(1)
    got = onnx_model.predict_proba(paths)
    assert got.shape == (len(paths), 15)
    assert float((got - expected).abs().max()) < 1e-4
    assert torch.equal(got.argmax(1), expected.argmax(1))
    assert onnx_model.class_names == leaf_export.class_names
    assert onnx_model.preprocessing == leaf_export.preprocessing


def test_the_file_says_opset_batch_and_metadata(leaf_export: LeafExport, leaf_onnx: Path):
    import onnx

    from tlcourse.deploy.onnx_export import OPSET

    proto = onnx.load(str(leaf_onnx))
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", OPSET)]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, 64, 64]  # free batch, fixed size
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    metadata = json.loads({p.key: p.value for p in proto.metadata_props}["tlcourse.json"])
    assert metadata["class_names"] == leaf_export.class_names
    assert metadata["provenance"]["onnx_opset"] == OPSET and metadata["provenance"]["backbone"] == "mobilenet_v2"


def test_batch_of_one_and_of_many_agree(leaf_onnx: Path, leaf_export: LeafExport):
    from tlcourse.deploy import load_onnx

    model = load_onnx(leaf_onnx).model
    x = leaf_export.preprocessing.normalize(torch.rand(5, 3, 64, 64))
    with torch.inference_mode():
        many = model(x)
        ones = torch.cat([model(x[i : i + 1]) for i in range(5)])
    assert torch.allclose(many, ones, atol=1e-5)


def test_export_refuses_names_that_do_not_fit_the_outputs(leaf_export: LeafExport, tmp_path: Path):
    from tlcourse.deploy import export_onnx

    with pytest.raises(CourseError, match="one score per class name"):
        export_onnx(leaf_export.model, tmp_path / "x.onnx", class_names=["a", "b"],
                    preprocessing=leaf_export.preprocessing, provenance={})
    assert not (tmp_path / "x.onnx").exists()
