"""``tlcourse doctor``: can this machine run the course? Also seeds the offline weights.

It prints versions, the device, which pretrained weights and datasets are available offline,
and whether Jupyter widgets will render; it classifies one real photo with the offline
MobileNetV2 as an end-to-end check of weights and preprocessing. Exit status 1 when something
the lessons need is missing, with the command that fixes each problem.
"""
from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from dataclasses import dataclass
from typing import Any


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True


def _imagenet_sanity() -> Check:
    import torch
    from skimage import data as skdata
    from torchvision.models import MobileNet_V2_Weights

    from ..models import imagenet_categories, load_backbone

    model = load_backbone("mobilenet_v2").eval()
    image = torch.from_numpy(skdata.chelsea()).permute(2, 0, 1)
    x = MobileNet_V2_Weights.IMAGENET1K_V1.transforms()(image).unsqueeze(0)
    with torch.inference_mode():
        probs = model(x).softmax(1)[0]
    p, i = probs.max(0)
    label = imagenet_categories()[int(i)]
    ok = label in {"Egyptian cat", "tabby", "tiger cat"}
    return Check("ImageNet sanity check", ok, f"scikit-image chelsea() -> {label} ({float(p):.2f})")


# ipywidgets major version -> the jupyterlab_widgets major version whose front-end speaks its
# widget protocol (ipywidgets 7: protocol 2.0, jupyterlab_widgets 1; ipywidgets 8: protocol 2.1,
# jupyterlab_widgets 3). Any other pairing shows "Error displaying widget" instead of widgets.
WIDGET_FRONTENDS = {7: 1, 8: 3}
COURSE_IPYWIDGETS = 8  # what pyproject.toml asks for


def _major(version: str) -> int | None:
    match = re.match(r"\s*v?(\d+)", version)
    return int(match.group(1)) if match else None


def widget_frontend_problem(ipywidgets: str | None, frontend: str | None, python: str = "python") -> str | None:
    """Why these ipywidgets / jupyterlab_widgets versions cannot draw widgets, with the fix.

    ``None`` when they match. ``python`` is the interpreter named in the pip command. The fix
    moves the front-end to the installed ipywidgets when that is the course's major version,
    otherwise ipywidgets to the course's version (pip then brings the front-end that fits).
    """
    course = f'"ipywidgets>={COURSE_IPYWIDGETS},<{COURSE_IPYWIDGETS + 1}"'
    if ipywidgets is None:
        return f"ipywidgets is not installed: `{python} -m pip install {course}`"
    major = _major(ipywidgets)
    want = WIDGET_FRONTENDS.get(major) if major is not None else None
    if want is None:
        return (f"ipywidgets {ipywidgets}: tlcourse knows no JupyterLab front-end for it (it knows "
                f"ipywidgets 7 + jupyterlab_widgets 1, ipywidgets 8 + jupyterlab_widgets 3); the "
                f"course's pair: `{python} -m pip install {course}`")
    if major == COURSE_IPYWIDGETS:
        fix = f'`{python} -m pip install "jupyterlab_widgets>={want},<{want + 1}"`'
    else:
        fix = f"`{python} -m pip install {course}` (the course's version; it brings its front-end)"
    if frontend is None:
        return (f"ipywidgets {ipywidgets} is installed but not its JupyterLab front-end "
                f"(jupyterlab_widgets {want}.x), so widgets show as text: {fix}")
    if _major(frontend) != want:
        return (f"ipywidgets {ipywidgets} needs jupyterlab_widgets {want}.x, but {frontend} is "
                f"installed, so JupyterLab shows \"Error displaying widget\": {fix}, then restart JupyterLab")
    return None


def _widget_frontend_check() -> Check:
    """Do the installed ipywidgets and JupyterLab's widget manager speak the same protocol?"""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    widgets, frontend = installed("ipywidgets"), installed("jupyterlab_widgets")
    problem = widget_frontend_problem(widgets, frontend, sys.executable)
    detail = problem or f"ipywidgets {widgets} with jupyterlab_widgets {frontend}"
    return Check("widget versions", problem is None, detail, required=False)


def _found_checks(what: str, names: Any, find: Any) -> list[Check]:
    """One check per name: ok with the path ``find(name)`` returns, or failed with its error."""
    from ..errors import CourseError

    checks = []
    for name in names:
        try:
            checks.append(Check(f"{what} {name}", True, str(find(name))))
        except CourseError as exc:
            checks.append(Check(f"{what} {name}", False, str(exc)))
    return checks


def _weight_checks() -> list[Check]:
    from ..models.registry import OFFLINE_BACKBONES, weight_path

    return _found_checks("weights", OFFLINE_BACKBONES, weight_path)


def _dataset_checks() -> list[Check]:
    from ..data.registry import DATASETS, locate

    return _found_checks("dataset", DATASETS, locate)


def _kernel_check() -> Check:
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        specs = KernelSpecManager().find_kernel_specs()
        kernel = "tlcourse" if "tlcourse" in specs else ("python3" if "python3" in specs else None)
        return Check("Jupyter kernel", kernel is not None, kernel or
                     "none: `python -m ipykernel install --sys-prefix --name tlcourse`")
    except ImportError:
        return Check("Jupyter kernel", False, "jupyter_client missing: `pip install ipykernel`")


def requirement_checks() -> list[Check]:
    """What a notebook run cannot do without: tlcourse itself, the offline weights, the
    datasets and a Jupyter kernel. ``tlcourse sweep`` runs these on every Dask worker."""
    from .. import __version__

    return [Check("tlcourse", True, __version__), *_weight_checks(), *_dataset_checks(),
            _kernel_check()]


def precision_check(device: Any) -> Check:
    """Which number format ``precision="auto"`` gives on ``device`` (information, never a failure)."""
    from .. import precision

    amp = precision.amp_for("auto", device)
    if device.type == "cpu":
        detail = ("this CPU has bfloat16 units: lessons with precision=\"auto\" train in bfloat16" if amp == "bfloat16"
                  else "this CPU has no bfloat16 units: precision=\"auto\" computes in float32 (lesson 07 takes longer)")
    else:
        detail = f"precision=\"auto\" on {device}: {precision.describe(device, amp)}"
    return Check("mixed precision", True, detail, required=False)


def run_checks() -> list[Check]:
    import torch
    import torchvision

    from ..device import pick_device

    required = requirement_checks()
    checks = [required[0],
              Check("torch / torchvision", True, f"{torch.__version__} / {torchvision.__version__}")]
    device = pick_device("auto")
    extra = f" ({torch.cuda.get_device_name(0)})" if device.type == "cuda" else f" ({torch.get_num_threads()} threads)"
    checks.append(Check("device", True, f"{device}{extra}", required=False))
    checks.append(precision_check(device))
    weights = [c for c in required if c.name.startswith("weights ")]
    checks += weights
    if all(c.ok for c in weights if c.name == "weights mobilenet_v2"):
        try:
            checks.append(_imagenet_sanity())
        except Exception as exc:  # report, don't crash the doctor
            checks.append(Check("ImageNet sanity check", False, f"{exc.__class__.__name__}: {exc}"))
    checks += [c for c in required if c.name.startswith("dataset ")]
    widgets = importlib.util.find_spec("ipywidgets") is not None
    front = importlib.util.find_spec("jupyterlab_widgets") is not None or importlib.util.find_spec("widgetsnbextension") is not None
    checks.append(Check(
        "ipywidgets", widgets and front,
        ("ipywidgets and its JupyterLab front-end are installed" if widgets and front else
         "missing: `pip install ipywidgets` (exercises then print as text instead of widgets)"),
        required=False,
    ))
    checks.append(_widget_frontend_check())
    checks.append(required[-1])
    return checks


def cli_doctor(args: argparse.Namespace) -> int:
    checks = run_checks()
    width = max(len(c.name) for c in checks)
    for c in checks:
        mark = "ok  " if c.ok else ("FAIL" if c.required else "warn")
        print(f"{mark}  {c.name:<{width}}  {c.detail}")
    failed = [c for c in checks if c.required and not c.ok]
    if failed:
        print(f"\n{len(failed)} problem(s) stop the course from running; each line above says how to fix it.")
        return 1
    print("\nEverything the course needs is here.")
    return 0
