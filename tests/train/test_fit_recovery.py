"""Training that meets a missing GPU, a full GPU, Ctrl-C or SIGKILL loses nothing, and runs
are reproducible.

Each test asserts the message a learner reads (what was wrong, what to do) *and* that no file
or weight was lost: no checkpoint for a run that never started, the checkpoint of the last
finished epoch after a failure, and a resumed run identical to an uninterrupted one. Inputs
are real: MobileNetV2 with its ImageNet weights on 30 PlantVillage leaves (``tiny_root``).
The ``slow`` test starts fresh Python processes (one is killed with SIGKILL in the middle of
training); it still runs in CI.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tlcourse.course import results
from tlcourse.data import load_image_folder
from tlcourse.errors import CourseError

TESTS = Path(__file__).resolve().parent

pytestmark = pytest.mark.usefixtures("shared_data")  # no data is a failure, not a skip


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models on a shared, busy machine: one thread beats several spinning for cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tiny_sets(root: Path):
    """Real leaves at 64 px: train 10 per class, val 4 per class, MobileNetV2-normalised."""
    from tlcourse.data import eval_transform, train_transform
    from tlcourse.models import get_spec

    pre = get_spec("mobilenet_v2").preprocessing.at(64)
    train = load_image_folder(root / "train", 64, progress=False).with_transform(train_transform(pre, "flip"))
    val = load_image_folder(root / "val", 64, progress=False).with_transform(eval_transform(pre))
    return train, val


# ---------------------------------------------------------------- no GPU, a full GPU


def test_cuda_requested_but_absent(tiny_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tlcourse.device import pick_device
    from tlcourse.course.lesson import start_lesson
    from tlcourse.models import create_model
    from tlcourse.train import fit

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
    from tlcourse.train import evaluate, fit

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


# ---------------------------------------------------------------- interrupted, killed, resumed


def _tiny_fit(root: Path, *, checkpoint: Path | None = None, resume: bool = False, delay: float = 0.0,
              on_epoch_end=None, epochs: int = 3):
    """MobileNetV2, every layer trained (BN and dropout active), flips, on 30 real leaves."""
    from tlcourse.models import create_model
    from tlcourse.train import fit

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
    """``python -c 'from test_fit_recovery import tiny_fit_main; tiny_fit_main()' ROOT [CKPT DELAY]``."""
    root = Path(sys.argv[1])
    checkpoint = Path(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2] else None
    delay = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    model, history = _tiny_fit(root, checkpoint=checkpoint, delay=delay)
    print(json.dumps({"records": _comparable(history), "digest": _digest(model), "best_epoch": history.best_epoch}))


def _python(*args: str) -> list[str]:
    code = f"import sys; sys.path.insert(0, {str(TESTS)!r}); from test_fit_recovery import tiny_fit_main; tiny_fit_main()"
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
