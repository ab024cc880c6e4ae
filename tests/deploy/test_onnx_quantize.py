"""Static int8 quantisation of the real leaf export: smaller, still standard ONNX, accuracy kept within bounds."""
from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
import torch

from exported_leaves import LeafExport
from test_onnx_export import unseen_leaves
from tlcourse.errors import InvalidParameterError


@pytest.fixture(scope="module")
def leaf_int8(leaf_export: LeafExport, leaf_onnx: Path, shared_data: Path, tmp_path_factory) -> Path:
    from PIL import Image

    from tlcourse.deploy import quantize_int8
    from tlcourse.data import get_info

    transform = leaf_export.preprocessing.transforms()
    calibration = []
    for folder in get_info("plantvillage").class_folders:  # training photos only (the first ones per class)
        for path in sorted((shared_data / "plantvillage" / folder).glob("*.jpg"))[:2]:
            with Image.open(path) as img:
                calibration.append(transform(img.convert("RGB")))
    return quantize_int8(leaf_onnx, tmp_path_factory.mktemp("int8") / "leaves_int8.onnx", torch.stack(calibration))


def test_int8_is_smaller_standard_and_keeps_its_metadata(leaf_onnx: Path, leaf_int8: Path):
    from tlcourse.deploy.onnx_check import STANDARD_DOMAINS

    assert leaf_int8.stat().st_size < 0.4 * leaf_onnx.stat().st_size
    proto = onnx.load(str(leaf_int8))
    assert {o.domain for o in proto.opset_import} <= STANDARD_DOMAINS
    assert "QuantizeLinear" in {n.op_type for n in proto.graph.node}
    metadata = json.loads({p.key: p.value for p in proto.metadata_props}["tlcourse.json"])
    assert metadata["provenance"]["quantization"]["calibration_images"] == 30


def test_int8_accuracy_stays_within_the_stated_drop(leaf_onnx: Path, leaf_int8: Path, shared_data: Path):
    from tlcourse.deploy import load_onnx
    from tlcourse.deploy.onnx_quantize import INT8_TYPICAL_DROP

    paths, labels = unseen_leaves(shared_data, 6)
    y = torch.tensor(labels)
    fp32 = load_onnx(leaf_onnx, threads=1)
    int8 = load_onnx(leaf_int8, threads=1)
    x = fp32.preprocess(paths)
    with torch.inference_mode():
        acc32 = float((fp32.model(x).argmax(1) == y).float().mean())
        acc8 = float((int8.model(x).argmax(1) == y).float().mean())
    assert acc32 > 0.5  # a trained model, so a drop means something
    assert acc32 - acc8 <= INT8_TYPICAL_DROP, (acc32, acc8)


def test_calibration_images_must_be_normalised_at_the_right_size(leaf_onnx: Path, tmp_path: Path):
    from tlcourse.deploy import quantize_int8

    with pytest.raises(InvalidParameterError, match=r"\(N, 3, 64, 64\)"):
        quantize_int8(leaf_onnx, tmp_path / "q.onnx", torch.zeros(4, 3, 32, 32))
    with pytest.raises(InvalidParameterError, match="raw uint8"):
        quantize_int8(leaf_onnx, tmp_path / "q.onnx", torch.zeros(4, 3, 64, 64, dtype=torch.uint8))
    assert not (tmp_path / "q.onnx").exists()
