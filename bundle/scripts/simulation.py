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
"""Clicks simulated from a ground-truth label as the reference does, for evaluation without a user."""

from __future__ import annotations

import numpy as np
import torch
from monai.data import MetaTensor

from .preprocessing import (
    FIRST_CLICK_SEED,
    extract_window,
    label_bbox_center,
    reorient_to_ras,
    resample_to_spacing,
    sample_first_click,
    spacing_from_affine,
    window_start,
)
from .windows import PreparedImage

__all__ = ["simulate_clicks"]


def simulate_clicks(
    prepared: PreparedImage, label: MetaTensor, class_id: int, num_clicks: int, rng: np.random.RandomState | None = None
) -> list[dict]:
    """Segment one class of ``label`` with ``num_clicks`` simulated clicks, as ``validate_paired_img_gt`` does.

    The window is centred on the bounding box of the class in the resampled RAS grid. Each click is a uniformly
    random voxel (C-order ``argwhere`` + ``rng.randint``, the reference's stream) of the error region of the current
    mask inside the window (false negatives or false positives; the whole target before the first click), positive
    if it is a missed voxel. Every click so far and the previous low-resolution logits are passed to the decoder.

    Args:
        prepared: the image, prepared once (its network and window cache are used).
        label: the ground truth ``(1, I, J, K)`` on the image's grid (multi-class ids allowed).
        class_id: the target class.
        num_clicks: clicks to simulate.
        rng: the random stream; default ``RandomState(233)`` (the reference seeds once per case: pass the same
            generator for every class of a case to continue its stream).

    Returns:
        One dict per click: ``click`` (1-based), ``point`` (original voxel indices), ``roi_point`` (window
        indices), ``point_label`` and ``mask`` (bool numpy array on the original grid).
    """
    image = prepared.image
    if tuple(label.shape[1:]) != tuple(image.shape[1:]) or not np.allclose(
        np.asarray(label.affine, dtype=np.float64), np.asarray(image.affine, dtype=np.float64), atol=1e-3
    ):
        raise ValueError(
            f"the label's grid {tuple(label.shape[1:])} differs from the image's {tuple(image.shape[1:])} "
            "(shape or affine): resample the label onto the image first."
        )
    target = MetaTensor((label.as_tensor() == class_id).to(torch.uint8), affine=label.affine)
    if not target.any():
        raise ValueError(f"class {class_id} is absent from the label: there is nothing to click on.")
    spacing = tuple(float(s) for s in spacing_from_affine(prepared.ras.affine))
    ras_target = reorient_to_ras(resample_to_spacing(target, spacing, mode="nearest"))
    start = window_start(label_bbox_center(ras_target), prepared.roi_size)
    window = prepared.window(start)
    truth = extract_window(ras_target, start, prepared.roi_size)[0].numpy() > 0
    rng = rng if rng is not None else np.random.RandomState(FIRST_CLICK_SEED)
    points, labels, results = [], [], []
    low_res, current = None, np.zeros_like(truth)
    for click in range(1, num_clicks + 1):
        missed = truth & ~current
        errors = missed | (current & ~truth)
        if not errors.any():  # perfect already: click on the target again, as the reference does
            errors = missed = truth
        point = sample_first_click(errors, rng)
        points.append(point)
        labels.append(int(missed[tuple(point)]))
        low_res = prepared.decode(window, np.stack(points), np.asarray(labels), low_res)
        current = prepared.mask(low_res)
        original_point = np.asarray(window.affine.numpy(), dtype=np.float64) @ np.append(point, 1.0)
        original_point = np.linalg.solve(np.asarray(image.affine, dtype=np.float64), original_point)[:3]
        results.append(
            {
                "click": click,
                "point": original_point.tolist(),
                "roi_point": point.tolist(),
                "point_label": labels[-1],
                "mask": prepared.paste(current, window).numpy().view(bool),
            }
        )
    return results
