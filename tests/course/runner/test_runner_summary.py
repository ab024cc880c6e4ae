"""summary.json (tlcourse/course/runner/summary.py), from the shared CLI run (conftest.py)."""
from __future__ import annotations

import json

from tlcourse.course.runner import default_kernel


def test_summary_records_failure_and_continues(cli_run):
    out = cli_run[1]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["profile"] == "smoke"
    assert summary["parameters"] == {"lr": 0.5}
    # no --kernel given: the course's own kernel when scripts/setup.sh registered it, else python3
    assert summary["timeout"] == 120 and summary["kernel"] == default_kernel()
    assert summary["started"] <= summary["finished"]
    boom, alpha = summary["notebooks"]
    assert [boom["name"], alpha["name"]] == ["00_boom.ipynb", "01_alpha.ipynb"]

    assert boom["status"] == "failed"
    assert boom["error"] == "ZeroDivisionError: division by zero"
    assert boom["parameters"] == {"seed": 3}  # only what it declares; no epochs/lr/name
    assert boom["results"]["values"] == {"before_error": 1, "seed": 3}  # recorded before 1/0
    partial = json.loads((out / boom["output"]).read_text())
    assert any(o.get("ename") == "ZeroDivisionError"
               for c in partial["cells"] for o in c.get("outputs", []))

    assert alpha["status"] == "ok" and alpha["error"] is None and alpha["seconds"] > 0
    # notebook default < profile defaults < profile notebooks: glob < -p
    assert alpha["parameters"] == {"epochs": 1, "name": "from-profile", "lr": 0.5}
    values = alpha["results"]["values"]
    # cwd is the run's own folder: files a notebook writes never land in the source tree
    assert values == {
        "epochs": 1, "lr": 0.5, "name": "from-profile", "n_per_class": 4,
        "headless": "1", "cwd": out.name, "score": 0.5, "curve": [0, 1, 2],
    }
    assert alpha["results"]["figures"] == {"curve": "01_alpha.curve.png"}
    assert (out / "01_alpha.curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    executed = json.loads((out / "01_alpha.ipynb").read_text())
    injected = [c for c in executed["cells"]
                if "injected-parameters" in c["metadata"].get("tags", [])]
    assert "lr = 0.5" in "".join(injected[0]["source"])
