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
"""Clicks simulated from a ground-truth label, as the reference's ``validate_paired_img_gt`` places them.

The error rule is shared with training (``training/clicks.py``): the error region of a mask is its missed voxels
and its false positives; a click in it is positive if it is a missed voxel; with no error left, the target itself
(positive), as the reference does. Here the reference's random stream picks the voxel (C-order ``argwhere`` +
``RandomState.randint``), and the clicks drive an ``ObjectTrack``, the path every front end uses.
"""

from __future__ import annotations

import numpy as np
import torch
from monai.data import MetaTensor

from ..geometry import extract_window, label_bbox_center, reorient_to_ras, resample_to_spacing, window_start
from ..inference.prepared import PreparedImage
from ..inference.track import ObjectTrack

__all__ = ["FIRST_CLICK_SEED", "error_regions", "sample_first_click", "simulate_clicks"]

# Seed of ``np.random.seed`` in the reference's ``validate_paired_img_gt``.
FIRST_CLICK_SEED = 233


def sample_first_click(label: np.ndarray | torch.Tensor, rng: np.random.RandomState | None = None) -> np.ndarray:
    """The reference's first click: a uniformly random foreground voxel of the ROI label.

    ``torch.argwhere(label > 0)`` lists the foreground in C order and ``np.random.randint(len(points))`` picks one,
    after ``np.random.seed(233)`` once per case (a later class of the same case continues the stream: pass the
    same ``rng``). ``RandomState(233)`` draws the same numbers as the seeded global generator.

    Args:
        label: ``(I, J, K)`` or ``(1, I, J, K)`` ROI label.
        rng: legacy numpy generator; default a fresh ``RandomState(233)``.

    Returns:
        int64 array ``(3,)``: the click in ROI tensor index order.

    Raises:
        ValueError: if the label has no foreground.
    """
    if isinstance(label, torch.Tensor):
        label = label.detach().cpu().numpy()
    mask = np.asarray(label)
    if mask.ndim == 4:
        mask = mask[0]
    foreground = np.flatnonzero(mask > 0)
    if foreground.size == 0:
        raise ValueError("cannot sample a click: the label is empty")
    if rng is None:
        rng = np.random.RandomState(FIRST_CLICK_SEED)
    flat = foreground[rng.randint(len(foreground))]
    return np.asarray(np.unravel_index(flat, mask.shape), dtype=np.int64)


def error_regions(current: torch.Tensor, truth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the next click may go, item by item along the first dimension (``(B, ...)`` bool tensors).

    Args:
        current: the current masks (all False before the first click).
        truth: the targets; every item needs a target voxel.

    Returns:
        ``(errors, missed)``: the missed voxels or false positives, and the missed voxels; for an item without any
        error, both are its target (click on it again, positive), as the reference does.
    """
    missed = truth & ~current
    errors = missed | (current & ~truth)
    perfect = ~errors.flatten(1).any(dim=1)
    perfect = perfect.reshape(-1, *([1] * (truth.ndim - 1)))
    return torch.where(perfect, truth, errors), torch.where(perfect, truth, missed)


def simulate_clicks(
    prepared: PreparedImage,
    label: MetaTensor,
    class_id: int,
    num_clicks: int,
    rng: np.random.RandomState | None = None,
    max_windows: int = 1,
) -> list[dict]:
    """Segment one class of ``label`` with ``num_clicks`` simulated clicks, as ``validate_paired_img_gt`` does.

    The object's first window is centred on the bounding box of the class in the resampled RAS grid. Each click is a
    uniformly random voxel (the reference's stream) of the error region (:func:`error_regions`) of the current
    mask inside that window; the clicks go one after another into an ``ObjectTrack`` (all clicks so far and the
    previous low-resolution logits reach the decoder, as in the reference).

    Args:
        prepared: the image, prepared once (its network and window cache are used).
        label: the ground truth ``(1, I, J, K)`` on the image's grid (multi-class ids allowed).
        class_id: the target class.
        num_clicks: clicks to simulate.
        rng: the random stream; default ``RandomState(233)`` (the reference seeds once per case: pass the same
            generator for every class of a case to continue its stream).
        max_windows: the track's window budget (1: the reference's single window).

    Returns:
        One dict per click: ``click`` (1-based), ``point`` (original voxel indices), ``roi_point`` (window
        indices), ``point_label``, ``mask`` (bool numpy array on the original grid) and ``iou`` (predicted).
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
    ras_target = reorient_to_ras(resample_to_spacing(target, prepared.spacing, mode="nearest"))
    start = window_start(label_bbox_center(ras_target), prepared.roi_size)
    truth = torch.from_numpy(extract_window(ras_target, start, prepared.roi_size)[0].numpy() > 0)
    track = ObjectTrack(prepared, max_windows, first_window=start)
    rng = rng if rng is not None else np.random.RandomState(FIRST_CLICK_SEED)
    to_original = np.linalg.solve(np.asarray(image.affine, dtype=np.float64), prepared.grid.affine)
    results = []
    for click in range(1, num_clicks + 1):
        current = torch.from_numpy(track.window_mask(start))
        errors, missed = error_regions(current[None], truth[None])
        point = sample_first_click(errors[0].numpy(), rng)
        ras_point = point + np.asarray(start)
        track.add_click(ras_point, int(missed[0][tuple(point)]))
        results.append(
            {
                "click": click,
                "point": (to_original[:3, :3] @ ras_point + to_original[:3, 3]).tolist(),
                "roi_point": point.tolist(),
                "point_label": track.clicks[-1].label,
                "mask": track.original_mask(),
                "iou": track.iou,
            }
        )
    return results
