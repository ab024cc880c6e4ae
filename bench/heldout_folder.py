"""Lesson 10's defaults on a PlantVillage-style folder that no test and no default run uses.

Builds ``OUT/photos/<class>/`` from the last 40 files (sorted by name) of each of PlantVillage's
15 classes in ``TLCOURSE_DATA`` (the tests' photo folders take the first files, lesson 10's
default run takes the ants/bees photos), runs ``notebooks/10_your_own_data.ipynb`` on it with
``tlcourse run --profile classroom -p data_dir=OUT/photos`` and prints the held-out test
accuracy, the recipe the notebook chose and the lesson's own wall time. Target: >= 90%.

    python bench/heldout_folder.py --out /tmp/lesson10-heldout
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PER_CLASS = 40


def build_folder(target: Path, per_class: int = PER_CLASS) -> Path:
    source = Path(os.environ.get("TLCOURSE_DATA", ROOT.parent / "shared" / "data")) / "plantvillage"
    for cls in sorted(d for d in source.iterdir() if d.is_dir()):
        (target / cls.name).mkdir(parents=True)
        for photo in sorted(cls.glob("*.jpg"))[-per_class:]:
            shutil.copyfile(photo, target / cls.name / photo.name)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="an empty or new folder for the photos and the run")
    args = parser.parse_args()
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        parser.error(f"{out} is not empty; give a new folder.")
    photos = build_folder(out / "photos")
    sys.path.insert(0, str(ROOT))
    from tlcourse.course.runner import default_kernel, run_course

    summary = run_course(ROOT, profile="classroom", only="10", out=out / "run",
                         parameters={"data_dir": str(photos)}, kernel=default_kernel())
    entry = json.loads((out / "run" / "summary.json").read_text())["notebooks"][0]
    if summary.notebooks[0].status != "ok":
        print(f"lesson 10 failed: {summary.notebooks[0].error}")
        return 1
    r = entry["results"]["values"]
    print(f"held-out test accuracy {r['test_accuracy']:.1%} on {r['n_test']} photos ({r['n_classes']} classes, "
          f"{r['n_train']} training photos); quadrant {r['quadrant']}, {r['head']} head on {r['head_reads']}, "
          f"kept fine-tuned: {r['kept_fine_tuned']}; lesson {r['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
