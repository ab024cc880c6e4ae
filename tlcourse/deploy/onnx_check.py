"""What an ONNX file from someone else is allowed to ask of ONNX Runtime.

An ONNX file is a protobuf message: parsing it runs no code. What a hostile file can do is
ask the *runtime* to do things on the reader's machine:

- **external data**: a tensor may say "my bytes are in file ``location``"; ONNX Runtime then
  opens that path relative to the model's folder, and ``../`` or an absolute path reaches any
  file the reader can read (``/etc/passwd``, an SSH key turned into weights whose effect the
  sender can observe), or a device like ``/dev/zero`` that never ends;
- **custom operator domains**: a node in a domain other than the standard one runs code from
  a custom-op library (a shared object, native code). ONNX Runtime loads such a library only
  when the program registers it (``SessionOptions.register_custom_ops_library``), which the
  course never does, but Microsoft's ``com.microsoft`` contrib ops are built in and widen what
  the file can exercise; the course's files use none of it;
- **model-local functions**: operators defined inside the file, in their own domain;
- **sheer size**: a multi-gigabyte file costs memory before any check could run.

So :func:`checked_onnx_bytes` reads at most :data:`MAX_ONNX_BYTES`, parses the message with
``onnx`` without loading external data, and refuses (:class:`~tlcourse.errors.UnsafeFileError`)
any tensor stored outside the file, any node or opset import outside the standard domain,
and any local function, in the main graph and in every subgraph (``If``/``Loop``/``Scan``
bodies). The session is then built from the checked bytes, never from the path, so nothing
is read from the file's folder and the file cannot change between check and load. What stays
possible is what any valid model can do: use CPU time and memory at run time.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import CourseError, UnsafeFileError

#: The largest ONNX file the course reads: 50x the largest model it exports (Lite2, 24 MB).
MAX_ONNX_BYTES = 1 << 30
#: The operator domains a course file may use: the standard ONNX operators, under both names.
STANDARD_DOMAINS = frozenset({"", "ai.onnx"})


def read_limited(path: Path, limit: int | None = None) -> bytes:
    """The file's bytes, refused above ``limit`` (default :data:`MAX_ONNX_BYTES`) before they are read."""
    limit = MAX_ONNX_BYTES if limit is None else limit
    if not path.exists():
        raise CourseError(f"No model file at {path}. Check the path (relative paths start from {Path.cwd()}).")
    if not path.is_file():
        raise CourseError(f"{path} is not a regular file; give the .onnx file itself.")
    size = path.stat().st_size
    if size > limit:
        raise UnsafeFileError(
            f"{path} is {size / 1e6:.0f} MB, over the {limit / 1e6:.0f} MB the course reads from an ONNX file "
            "(its own exports are under 30 MB). Ask the sender what it is; nothing was loaded."
        )
    with open(path, "rb") as stream:
        data = stream.read(limit + 1)
    if len(data) > limit:  # the file grew after stat (a device, a file still being written)
        raise UnsafeFileError(f"{path} grew past {limit / 1e6:.0f} MB while being read; nothing was loaded.")
    return data


def _graphs(graph: Any, where: str = "graph") -> Iterator[tuple[str, Any]]:
    """The graph and every subgraph inside its nodes' attributes, with a readable location."""
    import onnx

    yield where, graph
    for node in graph.node:
        for attr in node.attribute:
            inner = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
            for i, sub in enumerate(inner):
                yield from _graphs(sub, f"{where} > {node.op_type} {node.name!r} {attr.name}[{i}]")


def _tensors(graph: Any) -> Iterator[Any]:
    """Every tensor a graph stores: initializers, sparse ones, and constants in node attributes."""
    import onnx

    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                yield attr.t
            yield from attr.tensors


def _external_location(tensor: Any) -> str | None:
    import onnx

    if tensor.data_location != onnx.TensorProto.EXTERNAL and not len(tensor.external_data):
        return None
    entries = {e.key: e.value for e in tensor.external_data}
    return entries.get("location", "(no location given)")


def check_onnx_proto(proto: Any, path: Path) -> None:
    """Refuse external data, non-standard domains and local functions (see the module docstring)."""
    def refuse(what: str) -> UnsafeFileError:
        return UnsafeFileError(
            f"{path} was refused: {what} Files written by tlcourse.deploy.export_onnx never do this; ask the "
            "sender for a plain export (standard operators, weights inside the file). Nothing was run."
        )

    if len(proto.functions):
        names = ", ".join(sorted({f"{f.domain}.{f.name}" for f in proto.functions}))[:200]
        raise refuse(f"it defines its own operators (model-local functions: {names}).")
    odd = sorted({o.domain for o in proto.opset_import} - STANDARD_DOMAINS)
    if odd:
        raise refuse(f"it imports operator domains other than the standard one ({', '.join(odd)}); such "
                     "operators run code from outside the ONNX standard.")
    for where, graph in _graphs(proto.graph):
        custom = sorted({f"{n.domain}::{n.op_type}" for n in graph.node if n.domain not in STANDARD_DOMAINS})
        if custom:
            raise refuse(f"{where} uses non-standard operators ({', '.join(custom[:5])}); custom operators "
                         "run native code from a library the runtime would have to load.")
        for tensor in _tensors(graph):
            location = _external_location(tensor)
            if location is not None:
                raise refuse(f"{where} keeps tensor {tensor.name!r} in an external file ({location!r}); ONNX "
                             "Runtime would open that path on this machine, wherever it points.")


def parse_onnx(data: bytes, path: Path) -> Any:
    """The ``ModelProto`` in ``data`` (external data never loaded); a damaged file is named."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        proto = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise CourseError(
            f"{path} is not an ONNX model ({exc.__class__.__name__}); the file is damaged or of another kind. "
            "A tlcourse export written by export_model ends in .pt2; export_onnx writes .onnx."
        ) from exc
    if not proto.HasField("graph") or not len(proto.graph.node):
        raise CourseError(f"{path} holds no ONNX graph (a damaged file, or not an ONNX model at all).")
    return proto


def checked_onnx_bytes(path: str | os.PathLike[str]) -> tuple[bytes, Any]:
    """The file's bytes and parsed model, after every check; build the session from these bytes."""
    path = Path(path)
    data = read_limited(path)
    proto = parse_onnx(data, path)
    check_onnx_proto(proto, path)
    return data, proto


__all__ = ["MAX_ONNX_BYTES", "STANDARD_DOMAINS", "check_onnx_proto", "checked_onnx_bytes", "parse_onnx", "read_limited"]
