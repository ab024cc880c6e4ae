"""Which frozen features separate the held-out photo folder? Cross-validated probes per stage.

``heldout_folder.py`` runs lesson 10 once, on one 60/20/20 split of the 15 x 40 held-out
PlantVillage photos: its 120 test photos put a standard error of about 3 points on the
number. This script asks the question behind that number with less noise: for each backbone,
the globally pooled output of each of the last four stages (``tlcourse.features.stage_features``,
each photo averaged with its mirror image), and for single stages and concatenations of
neighbouring ones, the accuracy of scikit-learn's logistic regression under 5-fold stratified
cross-validation over all the photos (train on 32 photos per class, test on 8, five times), its
``C`` chosen inside each training fold by 4-fold cross-validation on log loss.

    python bench/heldout_probes.py --out /tmp/heldout-probes
    python bench/heldout_probes.py --out /tmp/heldout-probes --folder /path/to/photos --backbones mobilenet_v2:192

``--folder``: any folder of photos with one sub-folder per class instead of the held-out one.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT))

from heldout_folder import build_folder  # noqa: E402

C_GRID = [0.01, 0.1, 1.0, 10.0]


def pooled_stages(folder: Path, backbone: str, size: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Each stage's pooled features per photo, averaged over the photo and its mirror image."""
    import torch
    from torchvision import datasets, transforms

    from tlcourse import data, models
    from tlcourse.features import stage_features

    report = data.check_folder(folder, progress=False)
    report.raise_for_errors()
    pre = models.get_spec(backbone).preprocessing.at(size)

    def view(mirrored: bool):
        normalize = transforms.Normalize(pre.mean, pre.std)
        return transforms.Compose([transforms.Resize(pre.resize_size, interpolation=pre.interpolation),
                                   transforms.CenterCrop(pre.crop_size), transforms.ToTensor(),
                                   data.Mirror(normalize) if mirrored else normalize])

    keep = {str(f) for c in report.classes for f in report.files[c]}  # the photos that passed the checks
    views = [datasets.ImageFolder(report.root, transform=view(m), is_valid_file=lambda path: path in keep)
             for m in (False, True)]
    model, _ = models.create_model(backbone, len(report.classes), seed=0)
    torch.set_num_threads(2)
    photo, mirror = stage_features(model, *views, device="cpu")
    labels = np.array(views[0].targets)
    return {s: ((photo[s] + mirror[s]) / 2).numpy() for s in list(photo)[-4:]}, labels


def cross_validated_accuracy(x: np.ndarray, y: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    inner = GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)),
                         {"logisticregression__C": C_GRID}, cv=4, scoring="neg_log_loss")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter at the largest C
        predicted = cross_val_predict(inner, x, y, cv=StratifiedKFold(5, shuffle=True, random_state=0))
    return float((predicted == y).mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="a new folder for the held-out photos")
    parser.add_argument("--folder", help="a photo folder to use instead of building the held-out one")
    parser.add_argument("--backbones", nargs="+", default=["mobilenet_v2:192", "efficientnet_lite0:224"],
                        help="NAME:PIXELS pairs (efficientnet_lite2:260 works too, at 6-12x MobileNetV2's time at 192 px)")
    args = parser.parse_args()
    if args.folder:
        folder = Path(args.folder)
    else:
        out = Path(args.out)
        if out.exists() and any(out.iterdir()):
            parser.error(f"{out} is not empty; give a new folder.")
        folder = build_folder(out / "photos")
    print("| backbone | features (pooled, photo + mirror) | 5-fold CV accuracy |\n| --- | --- | --- |")
    for spec in args.backbones:
        backbone, size = spec.split(":")
        t0 = time.perf_counter()
        feats, y = pooled_stages(folder, backbone, int(size))
        names = list(feats)
        sets = [[n] for n in names] + [names[i:i + 2] for i in range(len(names) - 1)] + [names[-3:], names]
        for chosen in sets:
            acc = cross_validated_accuracy(np.concatenate([feats[n] for n in chosen], 1), y)
            print(f"| {backbone} @ {size} px | {' + '.join(chosen)} | {acc:.1%} |", flush=True)
        print(f"# {backbone}: {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
