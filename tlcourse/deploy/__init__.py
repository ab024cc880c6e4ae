"""Taking a trained model out of the notebook: export, load, predict, and what it costs to run.

One module per step:

- :mod:`.export`: :func:`export_model` writes the network (a ``torch.export`` program) and its
  ``tlcourse.json`` to one file that needs only PyTorch to run;
- :mod:`.metadata`: what ``tlcourse.json`` holds (class names, preprocessing, provenance), the
  conversions and checks the writing and the reading side share;
- :mod:`.load`: :func:`read_metadata`, :func:`load_exported` and :class:`ExportedModel`, which
  refuse every file that is not an export with a message saying what it is and what to do;
- :mod:`.archive_check`: the member-by-member inspection of an export before PyTorch reads it,
  so a file from someone else cannot run code when loaded;
- :mod:`.images`: opening photos (:func:`open_image`: named errors, reduced decode of huge
  JPEGs) and gathering them from folders;
- :mod:`.predict`: the ``tlcourse predict`` command and its CSV;
- :mod:`.onnx_export`: :func:`export_onnx` writes the same model as ONNX (opset 18, free batch),
  the metadata in the file's ``metadata_props``;
- :mod:`.onnx_check`: what an ONNX file from someone else may ask of ONNX Runtime (no external
  data, standard operators only, a size limit);
- :mod:`.onnx_load`: :func:`load_onnx`, an :class:`ExportedModel` running on ONNX Runtime;
- :mod:`.onnx_quantize`: :func:`quantize_int8`, ONNX Runtime's calibrated static int8;
- :mod:`.latency`: latency, throughput, file sizes and machine load, measured the same way in
  lesson 09 and in ``bench/``.

The lessons use ``from tlcourse.deploy import export_model, load_exported`` (lesson 07) and
``from tlcourse import deploy`` with ``deploy.measure_latency(...)`` (lesson 09).
"""
from .export import export_model
from .images import IMAGE_EXTENSIONS, open_image
from .latency import file_size_mb, machine_load, measure_latency, saved_size_mb, throughput, torch_threads
from .load import ExportedModel, load_exported, read_metadata
from .onnx_export import export_onnx
from .onnx_load import load_onnx
from .onnx_quantize import quantize_int8
from .predict import cli_predict

__all__ = [
    "IMAGE_EXTENSIONS",
    "ExportedModel",
    "cli_predict",
    "export_model",
    "export_onnx",
    "file_size_mb",
    "load_exported",
    "load_onnx",
    "machine_load",
    "measure_latency",
    "open_image",
    "quantize_int8",
    "read_metadata",
    "saved_size_mb",
    "throughput",
    "torch_threads",
]
