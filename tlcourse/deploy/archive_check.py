"""Inspecting a model export member by member before PyTorch reads any of it.

``torch.export.load`` trusts its input: it unpickles pickled weights, constants and example
inputs, ``eval``-s the symbolic shape expressions of the graph and ``exec``-s its guard code.
An export received from someone else may carry code in any of those places. So
:func:`checked_export_archive` inspects the archive (a zip, the ``.pt2`` format of
``torch/export/pt2_archive``) first and allows only what :func:`tlcourse.deploy.export_model`
writes:

- the members it writes, each once (:func:`check_member_names`, cheap: names only);
- weights and constants stored as raw bytes, never as pickles;
- example inputs that are absent or plain tensors (and then left out);
- a graph whose operators, names and shape expressions cannot carry code.

It returns the archive rebuilt in memory from exactly the bytes it checked, so PyTorch never
reads anything that was not inspected. Anything else raises
:class:`~tlcourse.errors.UnsafeFileError` naming the member refused.
"""
from __future__ import annotations

import io
import json
import keyword
import pickle
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ..errors import CourseError, UnsafeFileError
from ..safeload import first_line, refusal_reason

# The members of an archive written by torch.export.save for one program called "model" (see
# torch/export/pt2_archive/constants.py), relative to the archive's root folder. Anything else
# (AOTInductor libraries, legacy pickled weights, other extra files) is refused.
_FIXED_MEMBERS = {
    ".data/version", ".data/serialization_id", "archive_format", "archive_version", "byteorder",
    "models/model.json",
    "data/weights/model_weights_config.json",
    "data/constants/model_constants_config.json",
    "data/sample_inputs/model.pt",
}
_NUMBERED_MEMBER = re.compile(r"data/(?:weights/weight|constants/tensor)_\d+")
PROGRAM = "models/model.json"
WEIGHTS_CONFIG = "data/weights/model_weights_config.json"
CONSTANTS_CONFIG = "data/constants/model_constants_config.json"
SAMPLE_INPUTS = "data/sample_inputs/model.pt"

# Names that end up in Python source PyTorch generates and runs (parameter paths, argument
# names, node names): plain identifiers and dotted paths of them, nothing that could close a
# string or a bracket. (All patterns here are used with fullmatch: "$" would let a newline in.)
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.]*")
# Display-only node metadata (where a node came from): kept as text, never run nor compiled.
_FREE_TEXT_METADATA = {"stack_trace", "nn_module_stack", "torch_fn", "custom", "from_node"}
# Operators a graph may call: ATen operators (minus the two that read or write files) and the
# arithmetic on symbolic sizes that torch.export records for a free batch size.
_ATEN_TARGET = re.compile(r"torch\.ops\.aten\.([A-Za-z0-9_]+)\.[A-Za-z0-9_]+")
_FILE_OPERATORS = {"from_file", "save"}
_SYMBOLIC_TARGETS = {
    *(f"_operator.{op}" for op in ("eq", "ne", "le", "ge", "lt", "gt", "neg", "pos", "mul", "add", "sub",
                                   "floordiv", "mod", "truediv", "and_", "or_")),
    *(f"torch.{fn}" for fn in ("sym_not", "sym_int", "sym_float", "sym_ite", "sym_max", "sym_min", "sym_sqrt")),
    "math.trunc",
}
# Shape expressions are parsed with sympy.sympify, i.e. eval: allow only sympy's own printing
# of integer expressions (srepr), so no attribute, subscript, lambda or unknown name gets in.
_EXPR_TOKEN = re.compile(r" *(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<number>\d+)"
                         r"|(?P<string>'[A-Za-z_][A-Za-z0-9_]*')|(?P<op>//|[-+*/%(),=<>]))")
_EXPR_NAMES = {
    "Symbol", "Integer", "Rational", "Add", "Mul", "Max", "Min", "Eq", "Ne", "Lt", "Le", "Gt", "Ge",
    "StrictLessThan", "StrictGreaterThan", "LessThan", "GreaterThan", "And", "Or", "Not", "true", "false",
    "True", "False", "positive", "negative", "nonnegative", "nonpositive", "integer", "real", "finite",
    "FloorDiv", "CeilDiv", "CleanDiv", "Mod", "PythonMod", "ModularIndexing", "FloorToInt", "CeilToInt",
}
_SYMBOL_NAME = re.compile(r"[a-z]\d+")  # s77, u0: torch's names for symbolic sizes


def export_root(metadata_member: str) -> str:
    """The archive's root folder ("archive/"), taken from where its metadata member sits."""
    return metadata_member[: -len("extra/tlcourse.json")]


def check_member_names(path: Path, names: list[str], root: str) -> None:
    """Refuse an archive with any member ``export_model`` does not write (cheap: names only)."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+/", root):
        raise _refuse(path, root + "extra/tlcourse.json", "is not in the archive's one top folder")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise _refuse(path, name, "appears twice in the archive: one copy could be checked and the other loaded")
        seen.add(name)
        relative = name[len(root):] if name.startswith(root) else None
        if relative == "extra/tlcourse.json":
            continue
        if relative is None or not (relative in _FIXED_MEMBERS or _NUMBERED_MEMBER.fullmatch(relative)):
            raise _refuse(path, name, "is not part of a tlcourse export (only the network, its raw weights "
                          "and tlcourse.json belong in one)")


def checked_export_archive(path: Path, metadata_member: str) -> io.BytesIO:
    """The export at ``path``, checked member by member, rebuilt in memory for ``torch.export.load``.

    Raises :class:`UnsafeFileError` naming the first member that could carry code. Example
    inputs that are plain tensors (exports written before tlcourse stopped storing them) are
    accepted but left out: PyTorch only needs them to generate input checks from the file.
    """
    try:
        data = path.read_bytes()
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
            root = export_root(metadata_member)
            check_member_names(path, names, root)
            members = {name[len(root):]: archive.read(name) for name in names}
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise CourseError(f"{path}: the archive could not be read ({exc}); the file is damaged. "
                          "Ask for the file again.") from exc
    for required in (PROGRAM, WEIGHTS_CONFIG, CONSTANTS_CONFIG, SAMPLE_INPUTS, "archive_version"):
        if required not in members:
            raise CourseError(f"{path}: the archive has no {root}{required}; the file is damaged or was cut "
                              "short. Ask for the file again.")
    _check_payload_config(path, root, members, WEIGHTS_CONFIG, "weights", "weight_")
    _check_payload_config(path, root, members, CONSTANTS_CONFIG, "constants", "tensor_")
    _check_sample_inputs(path, root + SAMPLE_INPUTS, members[SAMPLE_INPUTS])
    _check_program(path, root + PROGRAM, members[PROGRAM])
    members[SAMPLE_INPUTS] = b""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as rebuilt:
        for relative, content in members.items():
            rebuilt.writestr(root + relative, content)
    out.seek(0)
    return out


def _shown(text: Any, limit: int = 100) -> str:
    """An untrusted name as it may appear in a one-line message (repr when it is not printable)."""
    text = text if isinstance(text, str) and text.isprintable() else repr(text)
    return text if len(text) <= limit else text[:limit] + "..."


def _refuse(path: Path, member: str, why: str) -> UnsafeFileError:
    return UnsafeFileError(
        f"{path}: refused to load this model: {_shown(member)} {why}. A file like this could run code on "
        "your computer when loaded, so nothing in it was run. Do not use it; ask whoever made it to "
        "export the model again with tlcourse.deploy.export_model (which writes only raw tensors "
        "and JSON) and send the new file."
    )


def _load_json(path: Path, member: str, raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _refuse(path, member, f"is not valid JSON ({exc.__class__.__name__})") from None


def _check_payload_config(path: Path, root: str, members: dict[str, bytes], config: str, folder: str,
                          prefix: str) -> None:
    """Every weight and constant must be raw tensor bytes: never a pickle, never an object."""
    member = root + config
    data = _load_json(path, member, members[config])
    entries = data.get("config") if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        raise _refuse(path, member, "does not list the tensors of the network")
    for fqn, entry in entries.items():
        if not isinstance(entry, dict) or not _SAFE_NAME.fullmatch(fqn):
            raise _refuse(path, member, f"has an invalid entry {_shown(fqn)}")
        path_name = entry.get("path_name")
        if not isinstance(path_name, str) or not _SAFE_NAME.fullmatch(path_name):
            raise _refuse(path, member, f"points {fqn} at {_shown(path_name)}, which is not a member name")
        if entry.get("use_pickle") is not False:
            kind = "tensor" if path_name.startswith(prefix) else "custom or opaque Python object"
            raise _refuse(path, f"{root}data/{folder}/{path_name}",
                          f"({fqn}) is a {kind} stored as a pickle, which can run code when loaded")
        if not re.fullmatch(rf"{prefix}\d+", path_name) or f"data/{folder}/{path_name}" not in members:
            raise _refuse(path, member, f"points {fqn} at {path_name}, which is not one of its raw tensors")
        if not isinstance(entry.get("tensor_meta"), dict):
            raise _refuse(path, member, f"describes {fqn} without its shape and type")


def _check_sample_inputs(path: Path, member: str, raw: bytes) -> None:
    """Empty (tlcourse's exports), or a pickle of plain tensors that weights-only loading accepts."""
    if not raw:
        return
    try:
        torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise _refuse(path, member, f"(the example inputs) is a pickle of more than plain tensors "
                      f"({refusal_reason(exc)})") from None
    except Exception as exc:  # garbage: torch's errors vary
        raise _refuse(path, member, f"(the example inputs) is not a readable tensor file "
                      f"({exc.__class__.__name__}: {first_line(exc)[:120]})") from None


def _check_program(path: Path, member: str, raw: bytes) -> None:
    """The graph: only ATen and size arithmetic, safe names, no guard code, sympy-printed shapes."""
    program = _load_json(path, member, raw)
    if not isinstance(program, dict) or not isinstance(program.get("graph_module"), dict):
        raise _refuse(path, member, "is not a torch.export program")
    if program.get("guards_code"):
        raise _refuse(path, member, "has guards_code: Python source that PyTorch would execute")
    _check_call_signature(path, member, program["graph_module"].get("module_call_graph"))
    for where, key, value in _walk(program, "program"):
        _check_value(path, member, where, key, value)


def _check_value(path: Path, member: str, where: str, key: str, value: Any) -> None:
    if key in ("as_operator", "as_graph", "as_custom_obj") or (key == "custom_obj_values" and value):
        raise _refuse(path, member, f"uses {key} at {where}: a nested program or Python object, never part "
                      "of an image classifier")
    if not isinstance(value, str) or (key in ("in_spec", "out_spec") and where.endswith(".signature")):
        return  # the call signature's specs are compared whole in _check_call_signature
    if key == "target":
        aten = _ATEN_TARGET.fullmatch(value)
        if not (aten and aten.group(1) not in _FILE_OPERATORS) and value not in _SYMBOLIC_TARGETS:
            raise _refuse(path, member, f"calls {value[:80]!r} at {where}, which is not a tensor operator")
    elif key == "expr_str":
        if not _is_sympy_print(value):
            raise _refuse(path, member, f"has a shape expression (expr_str at {where}) that is not plain "
                          "integer arithmetic; PyTorch would evaluate it as Python code")
    elif key == "torch_version":
        if not re.fullmatch(r"[0-9A-Za-z.+_-]*", value):
            raise _refuse(path, member, "has an invalid torch_version")
    elif where.endswith(".metadata") and key in _FREE_TEXT_METADATA or key in ("as_string", "as_strings"):
        return  # kept as data (printed with repr in generated code), never run
    elif not _SAFE_NAME.fullmatch(value):
        raise _refuse(path, member, f"has a name that is not an identifier ({key}={value[:60]!r} at {where}); "
                      "PyTorch pastes such names into the Python code it generates")


def _walk(data: Any, where: str) -> Iterator[tuple[str, str, Any]]:
    """(path of the parent, key, value) for every dict entry and list item, depth first. Keys
    come out too, as values of the pseudo-key "dict key": they become node and parameter names."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield where, "dict key", str(key)
            yield where, key, value
            yield from _walk(value, f"{where}.{key}")
    elif isinstance(data, list):
        parent_key = where.rsplit(".", 1)[-1]
        for item in data:
            yield where, parent_key, item
            yield from _walk(item, where)


def _check_call_signature(path: Path, member: str, graph: Any) -> None:
    """One input (a batch of images), one output (the scores), argument names that are names."""
    from torch.utils import _pytree

    if not isinstance(graph, list) or not graph or not isinstance(graph[0], dict):
        raise _refuse(path, member, "has no call signature")
    signature = graph[0].get("signature")
    if not isinstance(signature, dict):
        raise _refuse(path, member, "has no call signature")
    expected_in = json.loads(_pytree.treespec_dumps(_pytree.tree_structure(((0,), {}))))
    expected_out = json.loads(_pytree.treespec_dumps(_pytree.tree_structure(0)))
    try:
        specs_match = (json.loads(signature.get("in_spec")) == expected_in
                       and json.loads(signature.get("out_spec")) == expected_out)
    except (TypeError, json.JSONDecodeError):
        specs_match = False
    if not specs_match:
        raise _refuse(path, member, "does not take one batch of images and return one tensor of scores "
                      "(its in_spec/out_spec differ from what export_model writes)")
    names = signature.get("forward_arg_names")
    if not (isinstance(names, list) and len(names) == 1 and isinstance(names[0], str)
            and names[0].isidentifier() and not keyword.iskeyword(names[0])):
        raise _refuse(path, member, f"has forward_arg_names {str(names)[:80]!r}; the one argument must be "
                      "a plain Python name")
    if any(isinstance(entry, dict) and entry.get("signature") for entry in graph[1:]):
        raise _refuse(path, member, "has call signatures for submodules, which export_model never records")


def _is_sympy_print(text: str) -> bool:
    """True when ``text`` is made only of sympy constructors, symbol names, integers and operators."""
    if "**" in text or "__" in text:
        return False
    position = 0
    while position < len(text):
        match = _EXPR_TOKEN.match(text, position)
        if not match or match.end() == position:
            return text[position:].strip(" ") == ""
        name = match.group("name")
        if name is not None and name not in _EXPR_NAMES and not _SYMBOL_NAME.fullmatch(name):
            return False
        position = match.end()
    return True


__all__ = ["check_member_names", "checked_export_archive", "export_root"]
