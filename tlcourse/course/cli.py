"""The ``tlcourse`` command line (also ``python -m tlcourse``).

Each subcommand's handler lives in the module that owns the feature and is imported only when
that subcommand runs, so ``tlcourse --help`` stays fast. A :class:`~tlcourse.errors.CourseError`
is printed as a one-paragraph message (no traceback) with exit status 2.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import CourseError


def _handler(module: str, function: str):
    def call(args: argparse.Namespace) -> int:
        import importlib

        return int(getattr(importlib.import_module(module), function)(args) or 0)

    return call


def _add_doctor(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check this machine can run the course; seed offline weights")
    p.set_defaults(func=_handler("tlcourse.course.doctor", "cli_doctor"))


def _add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="list, fetch and verify the course's datasets")
    dsub = p.add_subparsers(dest="data_command", required=True)
    dsub.add_parser("list", help="datasets, their licences and where they are").set_defaults(
        func=_handler("tlcourse.data.commands", "cli_list")
    )
    f = dsub.add_parser("fetch", help="download a dataset (or `all`) into the cache, sha256-checked")
    f.add_argument("name")
    f.set_defaults(func=_handler("tlcourse.data.commands", "cli_fetch"))
    v = dsub.add_parser("verify", help="check every file of a dataset against its sha256")
    v.add_argument("name")
    v.set_defaults(func=_handler("tlcourse.data.commands", "cli_verify"))


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="execute the course notebooks with papermill")
    p.add_argument("--profile", default=None,
                   help="smoke | classroom | full (defined in notebooks/profiles.yaml; "
                        "default classroom)")
    p.add_argument("--only", default=None, help="run only notebooks whose name contains PATTERN")
    p.add_argument("--out", default=None, help="output directory (default runs/<timestamp>/)")
    p.add_argument("-p", "--parameter", action="append", default=[], metavar="KEY=VALUE",
                   help="override a notebook parameter (repeatable)")
    p.add_argument("--exercises", action="store_true", help="also run the exercise notebooks")
    p.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds (0: no limit)")
    p.add_argument("--kernel", default=None,
                   help="Jupyter kernel name (default: 'tlcourse' if registered by scripts/setup.sh, else 'python3')")
    p.add_argument("--resume", default=None, metavar="DIR",
                   help="finish an interrupted run in DIR: rerun only the notebooks that are "
                        "not ok, with the settings recorded in DIR/summary.json")
    p.add_argument("--site", action="store_true",
                   help="at the end, build the run's website into OUT/site (see tlcourse site)")
    p.set_defaults(func=_handler("tlcourse.course.runner", "cli_run"))


def _add_sweep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="rerun notebooks over a grid of parameter values on Dask")
    p.add_argument("--only", default=None, help="the notebook(s) to sweep, as for `run --only`")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="values to try for one parameter (repeatable: every combination runs)")
    p.add_argument("-p", "--parameter", action="append", default=[], metavar="KEY=VALUE",
                   help="a parameter fixed for every task (repeatable)")
    p.add_argument("--profile", default=None, help="smoke | classroom | full (default classroom)")
    p.add_argument("--out", default=None, help="output directory (default sweeps/<timestamp>/)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="a running Dask scheduler, e.g. tcp://head:8786 (default: a local cluster)")
    where.add_argument("--workers", type=int, default=None, metavar="N",
                       help="local cluster workers (default: as many as cores and memory allow)")
    p.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds (0: no limit)")
    p.add_argument("--kernel", default=None, help="Jupyter kernel name (as for `run`)")
    p.add_argument("--resume", default=None, metavar="DIR",
                   help="rerun only the tasks of the sweep in DIR that are not ok")
    p.set_defaults(func=_handler("tlcourse.course.sweep", "cli_sweep"))


def _add_site(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("site", help="turn a tlcourse run folder into a static website (Jupyter Book)")
    p.add_argument("run_dir", metavar="RUN_DIR", help="the output folder of a tlcourse run")
    p.add_argument("--out", default=None, help="where to write the site (default RUN_DIR/site)")
    p.add_argument("--force", action="store_true",
                   help="replace a non-empty --out folder (only once the new site is built)")
    p.set_defaults(func=_handler("tlcourse.course.site", "cli_site"))


def _add_progress(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("progress", help="summarise exercise progress files (one learner or a class)")
    p.add_argument("files", nargs="*", help="progress JSON files (default: your own)")
    p.add_argument("--csv", default=None, help="also write the class table as CSV")
    p.set_defaults(func=_handler("tlcourse.exercises.progress", "cli_progress"))


def _add_exercises(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("exercises", help="build student exercise notebooks; validate question banks")
    esub = p.add_subparsers(dest="exercises_command", required=True)
    b = esub.add_parser("build", help="strip solutions/*.ipynb into the student notebooks")
    b.add_argument("--check", action="store_true",
                   help="only report student notebooks that are missing or out of date (exit 1)")
    b.add_argument("--dir", default=None, help="the exercises folder (default: found from here)")
    b.set_defaults(func=_handler("tlcourse.exercises.build", "cli_build"))
    v = esub.add_parser("validate", help="load question banks and report every problem")
    v.add_argument("banks", nargs="*", help="bank names or .yaml paths (default: all)")
    v.set_defaults(func=_handler("tlcourse.exercises.bank", "cli_validate"))


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify images with an exported tlcourse model")
    p.add_argument("--model", required=True, help="a file written by tlcourse.deploy.export_model, or an .onnx file "
                   "written by tlcourse.deploy.export_onnx (run with ONNX Runtime)")
    p.add_argument("paths", nargs="+", help="image files or folders")
    p.add_argument("--top-k", type=int, default=1)
    p.set_defaults(func=_handler("tlcourse.deploy.predict", "cli_predict"))


def _add_pack(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pack", help="build an offline classroom pack (weights + datasets)")
    p.add_argument("--out", required=True, help="the pack file to write (an existing file is refused)")
    p.add_argument("--force", action="store_true",
                   help="replace an existing --out file (only once the new pack is complete)")
    p.set_defaults(func=_handler("tlcourse.course.pack", "cli_pack"))
    u = sub.add_parser("unpack", help="install a classroom pack into the cache, offline")
    u.add_argument("file")
    u.set_defaults(func=_handler("tlcourse.course.pack", "cli_unpack"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tlcourse", description=__doc__.splitlines()[0])
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"tlcourse {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_doctor, _add_data, _add_run, _add_sweep, _add_progress, _add_exercises, _add_predict,
                _add_pack, _add_site):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CourseError as exc:
        print(f"tlcourse {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tlcourse {args.command}: interrupted.", file=sys.stderr)
        return 130
