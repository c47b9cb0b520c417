# Copyright (c) 2026 SAM-Med3D MONAI bundle contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#     http://www.apache.org/licenses/LICENSE-2.0
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""Quick look at a label map written by inference.json: three orthogonal slices per object, with Dice.

    python tools/plot_segmentation.py bundle/sample_data/example_ct.nii.gz bundle/eval/example_ct_seg.nii.gz \
        bundle/docs/demo_segmentation.png --truth bundle/sample_data/example_seg_fast_force_split.nii.gz --labels 2 21

Each row is one label: the axial, coronal and sagittal slices through the centre of the object (of the ground truth
when given, else of the prediction), with the prediction in colour and the ground truth as a white outline. The
volume is reordered to RAS and shown with the patient's right on the right, superior and anterior up, in a
soft-tissue window. The Dice of each label is printed and written in the row's title.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib
import numpy as np
from monai.transforms import LoadImage, Orientation

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load_ras(path: Path) -> tuple[np.ndarray, tuple[float, ...]]:
    """A volume reordered to RAS (so that every input displays the same way up), and its voxel size."""
    image = LoadImage(image_only=True, ensure_channel_first=True, dtype=None)(str(path))
    image = Orientation("RAS")(image)
    return np.asarray(image.as_tensor()[0]), tuple(float(s) for s in image.pixdim[:3])


def dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two binary masks (nan when both are empty)."""
    total = prediction.sum() + truth.sum()
    return float(2 * (prediction & truth).sum() / total) if total else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", type=Path)
    parser.add_argument("prediction", type=Path)
    parser.add_argument("out_png", type=Path)
    parser.add_argument("--truth", type=Path, help="ground-truth label map on the image's grid")
    parser.add_argument("--labels", type=int, nargs="+", help="labels to show (default: every label predicted)")
    parser.add_argument("--window", type=float, nargs=2, default=(-160.0, 240.0), help="grey-value window")
    args = parser.parse_args()

    image, spacing = load_ras(args.image)
    prediction, _ = load_ras(args.prediction)
    truth = load_ras(args.truth)[0] if args.truth else None
    if prediction.shape != image.shape or (truth is not None and truth.shape != image.shape):
        raise SystemExit("error: the label maps must be on the image's grid (same shape after RAS reordering).")
    labels = args.labels or [int(v) for v in np.unique(prediction) if v != 0]
    if not labels:
        raise SystemExit(f"error: {args.prediction} has no label to show.")

    fig, axes = plt.subplots(len(labels), 3, figsize=(11, 3.8 * len(labels)), squeeze=False)
    for row, label in zip(axes, labels):
        predicted = np.round(prediction) == label
        target = None if truth is None else np.round(truth) == label
        shown = target if target is not None and target.any() else predicted
        if shown is None or not shown.any():
            raise SystemExit(f"error: label {label} is neither predicted nor in the ground truth.")
        centre = np.round(np.argwhere(shown).mean(0)).astype(int)
        score = "" if target is None else f", Dice {dice(predicted, target):.3f}"
        print(f"label {label}: {int(predicted.sum())} voxels predicted{score}")
        for ax, axis, name in zip(row, (2, 1, 0), ("axial", "coronal", "sagittal")):
            grey, mask = (np.take(a, centre[axis], axis=axis).T for a in (image, predicted))  # rows: the later axis
            other = [s for i, s in enumerate(spacing) if i != axis]
            style = {"origin": "lower", "aspect": other[1] / other[0]}
            ax.imshow(np.clip(grey, *args.window), cmap="gray", **style)
            ax.imshow(np.ma.masked_where(~mask, mask), cmap="autumn", alpha=0.45, vmin=0, vmax=1, **style)
            if target is not None:
                outline = np.take(target, centre[axis], axis=axis).T
                ax.contour(outline, levels=[0.5], colors="white", linewidths=0.8, origin="lower")
            ax.set_title(f"label {label}, {name} {centre[axis]}{score}", fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(args.out_png, dpi=80)


if __name__ == "__main__":
    main()
