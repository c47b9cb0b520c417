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
"""The SegFM challenge's loop on one case: the box step (where the case has boxes), then 5 click steps, one click
per class per step by the challenge's rule, each step scored; and a SegFM case built from a NIfTI image and label."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence

import numpy as np

from .segfm_metrics import segfm_auc, segfm_click, segfm_scores

__all__ = ["NUM_CLICKS", "nifti_case", "segfm_loop"]

NUM_CLICKS = 5  # the challenge's click steps, after the box step


def segfm_loop(
    name: str, arrays: dict, gts: np.ndarray, predict: Callable[[dict], np.ndarray], num_clicks: int = NUM_CLICKS
) -> dict:
    """Run the challenge's steps on one case and score them as its evaluator does.

    A case without ``boxes`` skips the box step, which scores 0 (the evaluator's rule). From the second step the
    predictor's input holds the cumulative ``clicks`` (per class ``fg``/``bg`` lists of ``[z, y, x]``),
    ``clicks_order`` (``None`` once a class is perfect) and ``prev_pred`` (the last output).

    Args:
        name: the case's name.
        arrays: ``imgs``, ``spacing`` (as stored) and optionally ``boxes``.
        gts: the ground truth (D, H, W), classes 1..K.
        predict: the predictor, ``inputs -> segs`` (uint8 (D, H, W)).
        num_clicks: click steps.

    Returns:
        ``{case, num_class, DSC_1.., NSD_1.., RunningTime_1.., DSC_AUC, NSD_AUC, DSC_Final, NSD_Final,
        TotalRunningTime, clicks}`` (``clicks``: per step, per class ``[[z, y, x], "fg"|"bg"]`` or ``None``).
    """
    classes = [int(c) for c in np.unique(gts) if c != 0]
    spacing = np.asarray(arrays["spacing"], dtype=np.float64)
    clicks: list[dict] = [{"fg": [], "bg": []} for _ in classes]
    order: list[list] = [[] for _ in classes]
    segs = np.zeros(gts.shape, dtype=np.uint8)
    record: dict = {"case": name, "num_class": len(classes)}
    dscs, nsds, placed, total = [], [], [], 0.0
    for step in range(num_clicks + 1):
        if step == 0:
            if "boxes" not in arrays:
                record.update({"RunningTime_1": 0.0, "DSC_1": 0.0, "NSD_1": 0.0})
                dscs.append(0.0)
                nsds.append(0.0)
                placed.append(None)
                continue
            inputs = dict(arrays)
        else:
            now = []
            for i, k in enumerate(classes):
                click = segfm_click(segs, gts, k)
                if click is None:
                    order[i].append(None)
                    now.append(None)
                    continue
                kind = "fg" if click[1] else "bg"
                clicks[i][kind].append(list(click[0]))
                order[i].append(kind)
                now.append([list(click[0]), kind])
            placed.append(now)
            inputs = {
                **arrays,
                "clicks": copy.deepcopy(clicks),
                "clicks_order": copy.deepcopy(order),
                "prev_pred": segs,
            }
        start = time.perf_counter()
        segs = np.asarray(predict(inputs)).astype(np.uint8)
        seconds = time.perf_counter() - start
        total += seconds
        if step == 0:
            placed.append(None)
        dsc, nsd = segfm_scores(gts, segs, spacing)
        record.update({f"RunningTime_{step + 1}": seconds, f"DSC_{step + 1}": dsc, f"NSD_{step + 1}": nsd})
        dscs.append(dsc)
        nsds.append(nsd)
    record.update(
        {
            "TotalRunningTime": total,
            "DSC_AUC": segfm_auc(dscs, num_clicks),
            "NSD_AUC": segfm_auc(nsds, num_clicks),
            "DSC_Final": dscs[-1],
            "NSD_Final": nsds[-1],
            "clicks": placed,
        }
    )
    return record


def nifti_case(image: np.ndarray, label: np.ndarray, zooms: Sequence[float], classes: Sequence[int]) -> tuple:
    """A SegFM case from NIfTI voxel data: arrays ``(D, H, W) = (k, j, i)``, ``spacing`` in NIfTI zoom order
    ``(x, y, z)`` (how the challenge stores it), the classes renumbered 1..K in the order given, intensities scaled
    to uint8 between their 0.5 and 99.5 percentiles, and one box per class: its slice range and the tight 2-D box on
    its middle occupied slice (the challenge also enlarges that box by 0-5 random voxels; this one is tight, so the
    run is deterministic).

    Args:
        image: the NIfTI image's voxels ``(I, J, K)``.
        label: its labels, same grid.
        zooms: the NIfTI voxel sizes ``(x, y, z)``.
        classes: the label values to segment.

    Returns:
        ``(arrays, gts)``: the predictor's arrays (``imgs``, ``spacing``, ``boxes``) and the ground truth.

    Raises:
        ValueError: a class absent from the label.
    """
    data = np.asarray(image, dtype=np.float64).transpose(2, 1, 0)
    lo, hi = np.percentile(data, [0.5, 99.5])
    imgs = np.round(np.clip((data - lo) / max(hi - lo, 1e-8), 0, 1) * 255).astype(np.uint8)
    values = np.asarray(label).transpose(2, 1, 0)
    gts = np.zeros(values.shape, dtype=np.uint8)
    boxes = []
    for k, c in enumerate(classes, start=1):
        mask = values == c
        if not mask.any():
            raise ValueError(f"class {c} is not in the label: give classes that the label holds.")
        gts[mask] = k
        slices = np.flatnonzero(mask.any(axis=(1, 2)))
        mid = int(slices[len(slices) // 2])
        ys, xs = np.nonzero(mask[mid])
        boxes.append(
            {
                "z_min": int(slices[0]),
                "z_max": int(slices[-1]),
                "z_mid": mid,
                "z_mid_x_min": int(xs.min()),
                "z_mid_y_min": int(ys.min()),
                "z_mid_x_max": int(xs.max()),
                "z_mid_y_max": int(ys.max()),
            }
        )
    arrays = {"imgs": imgs, "spacing": np.asarray(zooms[:3], dtype=np.float64), "boxes": np.array(boxes, dtype=object)}
    return arrays, gts
