"""Atomic writes (tlcourse/atomic.py): a file is replaced whole or not at all, with the mode
a plain ``open()`` would give it.

An interrupted write keeps the earlier file and leaves no temporary file, for each writer of
the course (progress files, results, checkpoints, downloads). Files written atomically get
``0o666 & ~umask``, so packs, exported models and run summaries are readable by the other users
of a shared classroom machine, and a replaced file keeps the mode its owner gave it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from filesnap import mode_of
from loopback_server import LoopbackServer, loopback_server, shared_data_dir  # noqa: F401
from tlcourse import atomic
from tlcourse.course import results
from tlcourse.data import download as dl
from tlcourse.data.registry import get_info
from tlcourse.course.pack import build_pack

DATA = shared_data_dir()
NPZ = "pneumoniamnist/pneumoniamnist.npz"

pytestmark = pytest.mark.usefixtures("shared_data")  # no data is a failure, not a skip


# ---------------------------------------------------------------- an interrupted write


class _Crash(BaseException):
    """Stands for the process dying at the worst moment (a KeyboardInterrupt would do too)."""


@pytest.mark.parametrize("writer", ["progress", "results", "checkpoint", "download"])
def test_files_are_replaced_atomically_an_interrupted_write_keeps_the_old_one(
    writer: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loopback_server: LoopbackServer  # noqa: F811
) -> None:
    """Interrupt each writer just before its rename: the earlier file is intact, no temp left."""
    from tlcourse.exercises import progress
    from tlcourse.atomic import torch_save

    target = tmp_path / "out" / "file"

    def write(version: int) -> None:
        if writer == "progress":
            progress.append_entry(target, {"learner": "ada", "bank": "b", "question": f"q{version}",
                                           "correct": True, "time": "2024-05-01T10:00:00+00:00"})
        elif writer == "results":
            results.write_json_atomic(target, {"values": {"acc": version}})
        elif writer == "checkpoint":
            torch_save({"epoch": version, "model": torch.arange(1000) * version}, target)
        else:  # the first download is good; the second replaces a wrong file at dest
            if version == 2:
                target.write_bytes(b"x" * 10)
            info = get_info("pneumoniamnist")
            dl.download_file(loopback_server.url_for(NPZ), target, info.sha256, info.size, progress=False)

    write(1)
    before = target.read_bytes()
    real = {"replace": os.replace, "rename": os.rename}  # pooch moves a download with os.rename

    def crashing(name: str):
        def crash(src, dst, *args, **kwargs):
            if Path(dst) == target:
                raise _Crash()
            return real[name](src, dst, *args, **kwargs)
        return crash

    for name in real:
        monkeypatch.setattr(os, name, crashing(name))
    with pytest.raises(_Crash):
        write(2)
    for name, function in real.items():
        monkeypatch.setattr(os, name, function)
    leftovers = sorted(p.name for p in target.parent.iterdir() if p.name != target.name and not p.name.endswith(".lock"))
    if writer == "download":
        # A download's .part is kept on purpose: the next run resumes it and verifies the result.
        assert not target.exists() and leftovers == ["file.part"]
        write(1)
        assert target.read_bytes() == (DATA / NPZ).read_bytes()
    else:
        assert target.read_bytes() == before
        assert leftovers == []


# ---------------------------------------------------------------- modes follow the umask


def _tiny_export(target: Path) -> Path:
    """A real exported model: a small CNN captured with torch.export and written by tlcourse."""
    from tlcourse.deploy import export_model
    from tlcourse.models import get_spec

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    pre = get_spec("mobilenet_v2").preprocessing.at(32)
    return export_model(model, target, class_names=["healthy", "sick"], preprocessing=pre,
                        provenance={"backbone": "tiny", "dataset": "none"})


def test_export_pack_summary_progress_and_results_files_are_readable_by_others(
    tmp_path: Path, umask: None, small_packs: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tlcourse.exercises import progress
    from tlcourse.course.runner import NotebookResult, RunSummary, write_report

    written = {
        "export": _tiny_export(tmp_path / "model.pt2"),
        "pack": build_pack(tmp_path / "classroom.tar", progress=False).path,
    }
    results.write_json_atomic(tmp_path / "run" / "summary.json", {"profile": "smoke"})
    written["summary.json"] = tmp_path / "run" / "summary.json"
    summary = RunSummary("smoke", {}, "2024-05-01T10:00:00", tmp_path / "run", "python3", None,
                         notebooks=[NotebookResult("00", "ok", 1.0, "00.ipynb", {})])
    written["report.md"] = write_report(summary)
    written["progress"] = tmp_path / "progress.json"
    progress.append_entry(written["progress"], {"learner": "ada", "bank": "b", "question": "q1",
                                                "correct": True, "time": "2024-05-01T10:00:00+00:00"})
    monkeypatch.setenv(results.RESULTS_ENV, str(tmp_path / "run" / "00.results.json"))
    results.record(accuracy=0.5)
    written["results"] = tmp_path / "run" / "00.results.json"
    import matplotlib.pyplot as plt

    fig = plt.figure()
    written["figure"] = results.record_figure(fig, "curve")
    plt.close(fig)
    written["text"] = atomic.write_text("hello\n", tmp_path / "note.txt")
    written["checkpoint"] = atomic.torch_save({"epoch": 1}, tmp_path / "ckpt.pt")

    assert {name: oct(mode_of(path)) for name, path in written.items()} == {name: "0o644" for name in written}
    assert json.loads(written["results"].read_text())["values"] == {"accuracy": 0.5}


@pytest.mark.parametrize("mask, expected", [(0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_follow_the_umask_not_a_fixed_mode(mask: int, expected: int, tmp_path: Path) -> None:
    old = os.umask(mask)
    try:
        paths = [atomic.write_text("x\n", tmp_path / "a.txt"), atomic.write_bytes(b"x", tmp_path / "b.bin")]
        with atomic.atomic_path(tmp_path / "c.bin") as tmp:
            tmp.write_bytes(b"x")
        paths.append(tmp_path / "c.bin")
    finally:
        os.umask(old)
    assert [mode_of(p) for p in paths] == [expected] * 3


def test_replacing_a_file_keeps_the_mode_its_owner_gave_it(tmp_path: Path, umask: None) -> None:
    """A progress file its owner shares with the class group only stays that way after a write."""
    target = tmp_path / "progress.json"
    atomic.write_text("{}\n", target)
    os.chmod(target, 0o640)
    atomic.write_text('{"entries": []}\n', target)
    assert oct(mode_of(target)) == "0o640" and target.read_text() == '{"entries": []}\n'
