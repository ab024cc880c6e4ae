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
- :mod:`.latency`: latency, throughput, file sizes and machine load, measured the same way in
  lesson 09 and in ``bench/``.

The lessons use ``from tlcourse.deploy import export_model, load_exported`` (lesson 07) and
``from tlcourse import deploy`` with ``deploy.measure_latency(...)`` (lesson 09).
"""
from .export import export_model
from .images import IMAGE_EXTENSIONS, open_image
from .latency import file_size_mb, machine_load, measure_latency, saved_size_mb, throughput, torch_threads
from .load import ExportedModel, load_exported, read_metadata
from .predict import cli_predict

__all__ = [
    "IMAGE_EXTENSIONS",
    "ExportedModel",
    "cli_predict",
    "export_model",
    "file_size_mb",
    "load_exported",
    "machine_load",
    "measure_latency",
    "open_image",
    "read_metadata",
    "saved_size_mb",
    "throughput",
    "torch_threads",
]
