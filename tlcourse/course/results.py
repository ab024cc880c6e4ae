"""Key results a notebook records as data, not only as printed text.

A lesson prints its accuracy for the learner *and* calls ``record(val_accuracy=acc)`` so that
``tlcourse run`` can collect every notebook's numbers into ``summary.json`` and ``report.md``
(a teacher compares a class's runs, CI compares a smoke run with the last one) without
scraping notebook outputs.

Under the runner, the environment variable ``TLCOURSE_RESULTS`` names this notebook's results
file; every call merges into it atomically, so a notebook that fails half-way still leaves the
results it recorded before the failure. Outside the runner (a learner in Jupyter) the values
are only kept in memory, and :func:`record_figure` does nothing.

The file holds ``{"values": {...}, "figures": {name: png file name}, "run": {...}}``.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import atomic
from .._env import HEADLESS_ENV, env_flag
from ..errors import CourseError

RESULTS_ENV = "TLCOURSE_RESULTS"
RESULTS_SUFFIX = ".results.json"

_memory: dict[str, dict[str, Any]] = {"values": {}, "figures": {}, "run": {}}


def results_path() -> Path | None:
    """The results file this notebook writes to, or ``None`` when not run by ``tlcourse run``."""
    value = os.environ.get(RESULTS_ENV)
    return Path(value) if value else None


def headless() -> bool:
    """True when a notebook runs unattended (``tlcourse run`` sets ``TLCOURSE_HEADLESS=1``).

    Widgets and "press a key" prompts check this to skip waiting for a learner. The value is
    read by :func:`tlcourse._env.env_flag`, as the exercises read it.
    """
    return env_flag(HEADLESS_ENV)


def _float(value: float) -> float | str:
    # JSON has no NaN or infinity; a diverged loss must still show up in the report.
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


_UNCONVERTED = object()


def _from_numpy(value: Any, where: str) -> Any:
    numpy = sys.modules.get("numpy")  # only if the notebook imported it: no import cost here
    if numpy is None:
        return _UNCONVERTED
    if isinstance(value, numpy.bool_):
        return bool(value)
    if isinstance(value, numpy.integer):
        return int(value)
    if isinstance(value, numpy.floating):
        return _float(float(value))
    if isinstance(value, numpy.ndarray):
        return to_json_safe(value.tolist(), where)
    return _UNCONVERTED


def _from_torch(value: Any, where: str) -> Any:
    torch = sys.modules.get("torch")
    if torch is None:
        return _UNCONVERTED
    if isinstance(value, torch.Tensor):
        data = value.detach().cpu()
        return to_json_safe(data.item() if data.numel() == 1 and data.dim() == 0
                            else data.tolist(), where)
    if isinstance(value, (torch.device, torch.dtype)):
        return str(value)
    return _UNCONVERTED


def _from_python(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, Mapping):
        return {str(k): to_json_safe(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [to_json_safe(v, f"{where}[{i}]") for i, v in enumerate(items)]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    return _UNCONVERTED


def to_json_safe(value: Any, where: str = "value") -> Any:
    """Convert numpy / torch scalars and arrays, paths, tuples and devices to plain JSON.

    Anything else (a model, a DataFrame) is refused: recording ``str(obj)`` would put a
    meaningless repr in the report, so the caller should record the number it cares about.
    """
    for convert in (_from_python, _from_numpy, _from_torch):
        converted = convert(value, where)
        if converted is not _UNCONVERTED:
            return converted
    raise CourseError(
        f"Cannot record {where} of type {type(value).__name__}: results must be numbers, "
        "strings, booleans, None, or lists/dicts of them (numpy and torch scalars are fine). "
        "Record the number you want to compare, e.g. record(accuracy=float(acc))."
    )


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON through a temp file in the same directory and ``os.replace``.

    A reader (the runner, a teacher's script) never sees a half-written file, even when the
    kernel is killed mid-write.
    """
    atomic.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", path)


def read_results(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a results file; a missing file is an empty result (the notebook recorded nothing)."""
    path = Path(path)
    empty: dict[str, Any] = {"values": {}, "figures": {}, "run": {}}
    if not path.exists():
        return empty
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CourseError(
            f"The results file {path} is not valid JSON ({exc}). It is written atomically by "
            "tlcourse.course.results, so something else wrote to it: delete it and run the notebook again."
        ) from exc
    for section in empty:
        data.setdefault(section, {})
    return data


def _merge(section: str, values: dict[str, Any]) -> None:
    _memory[section].update(values)
    path = results_path()
    if path is None:
        return
    data = read_results(path)
    data[section].update(values)
    write_json_atomic(path, data)


def record(**values: Any) -> dict[str, Any]:
    """Record key results, e.g. ``record(val_accuracy=0.93, epochs_run=3)``.

    Values are converted to JSON-safe types first (so a bad value fails here, in the cell that
    produced it). Recording a name again replaces the earlier value. Returns the converted
    values, so a notebook can display them.
    """
    safe = {name: to_json_safe(value, name) for name, value in values.items()}
    _merge("values", safe)
    return safe


def recorded() -> dict[str, Any]:
    """A copy of everything recorded in this Python process (values, figures, run)."""
    return json.loads(json.dumps(_memory))


def reset() -> None:
    """Forget the in-memory record (the results file, if any, is left alone)."""
    for section in _memory.values():
        section.clear()


def _slug(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("._")
    if not slug:
        raise CourseError(
            f"Figure name {name!r} has no letters or digits; use a short name such as "
            "'confusion_matrix'."
        )
    return slug


def record_figure(fig: Any, name: str, dpi: int = 100) -> Path | None:
    """Save a matplotlib figure as ``<notebook>.<name>.png`` next to the results file.

    Returns the PNG's path, or ``None`` (saving nothing) when the notebook is not run by
    ``tlcourse run``: a learner sees the figure inline and needs no file.
    """
    path = results_path()
    if path is None:
        return None
    stem = path.name[: -len(RESULTS_SUFFIX)] if path.name.endswith(RESULTS_SUFFIX) else path.stem
    target = path.parent / f"{stem}.{_slug(name)}.png"
    with atomic.atomic_path(target, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    _merge("figures", {str(name): target.name})
    return target


def record_run(params: dict[str, Any], seed: int, device: Any = None) -> dict[str, Any]:
    """Record what a result depends on: the parameters, the seed, versions and the device.

    ``device`` is what :func:`tlcourse.device.pick_device` returned (or its string form);
    record the resolved device, not ``"auto"``, so the record says where it actually ran.
    """
    from ..device import environment_info

    run = {
        "parameters": to_json_safe(dict(params), "params"),
        "seed": to_json_safe(seed, "seed"),
        "environment": to_json_safe(environment_info(device), "environment"),
    }
    _merge("run", run)
    return run
