"""``import tlcourse`` then any public submodule as an attribute: the lazy list stays complete."""
from __future__ import annotations

import pkgutil
import subprocess
import sys
from types import ModuleType

import pytest

import tlcourse


def _public_modules() -> set[str]:
    return {m.name for m in pkgutil.iter_modules(tlcourse.__path__)
            if not m.name.startswith("_")}


def test_the_lazy_list_names_every_public_module_and_nothing_else():
    assert tlcourse._SUBMODULES == _public_modules()


def test_every_public_submodule_is_an_attribute_after_import_tlcourse():
    """In a fresh interpreter, as a learner's ``import tlcourse; tlcourse.experiments`` would."""
    code = ("import tlcourse, types\n"
            f"for name in {sorted(_public_modules())!r}:\n"
            "    assert isinstance(getattr(tlcourse, name), types.ModuleType), name\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_an_unknown_attribute_still_raises_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        tlcourse.nothing_here  # noqa: B018


def test_import_tlcourse_does_not_import_torch():
    code = "import sys, tlcourse; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_dir_lists_the_submodules():
    assert {"course", "models", "plots"} <= set(dir(tlcourse))
    assert isinstance(tlcourse.models, ModuleType)
