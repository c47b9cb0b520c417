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
"""Scores of one mask against its truth, and of a per-click curve: Dice, NSD, the challenge's area under the curve.

Area under the curve (the CVPR 2025 "Foundation Models for Interactive 3D Biomedical Image Segmentation" challenge's
``DSC_AUC``): for one case and class with scores ``d_1 .. d_n`` after clicks ``1 .. n``, the trapezoid rule with unit
spacing, ``AUC = sum_{i=1}^{n-1} (d_i + d_{i+1}) / 2`` (``scipy.integrate.cumulative_trapezoid(d, arange(n))[-1]``),
which ranges over ``[0, n - 1]``; ``AUC_norm = AUC / (n - 1)`` ranges over ``[0, 1]`` (for ``n = 1``, ``d_1``). The
challenge scores 5 clicks after a box; the N-click protocol here has no box, so its curve starts at the first click.
"Best over clicks" (``best_dice``) is the maximum Dice over the clicks, the score that the upstream paper-era
validation stored per case; it is reported for comparison only, since a user cannot pick the best click afterwards.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["dice_score", "surface_dice", "curve_auc"]


def dice_score(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two binary masks; NaN when both are empty (the reference's convention), 0 when only ``truth`` is.

    Args:
        pred: predicted mask (bool or 0/1).
        truth: ground-truth mask of the same shape.
    """
    pred, truth = np.asarray(pred, dtype=bool), np.asarray(truth, dtype=bool)
    total = int(pred.sum()) + int(truth.sum())
    if total == 0:
        return float("nan")
    return 2.0 * int(np.logical_and(pred, truth).sum()) / total


def surface_dice(pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float], tolerance: float = 1.0) -> float:
    """Normalised surface Dice (NSD) at ``tolerance`` mm, MONAI's ``compute_surface_dice`` on the original grid.

    Computed on the bounding box of both masks grown by two voxels, which gives the same value as the whole volume
    (every surface voxel is inside, and the Euclidean distance transform does not depend on the crop) in far less
    time. NaN when both masks are empty, 0 when exactly one is.

    Args:
        pred: predicted mask (3-D, bool or 0/1).
        truth: ground-truth mask of the same shape.
        spacing: voxel size in mm along the three axes.
        tolerance: tolerance in mm.
    """
    from monai.metrics import compute_surface_dice

    pred, truth = np.asarray(pred, dtype=bool), np.asarray(truth, dtype=bool)
    if not pred.any() and not truth.any():
        return float("nan")
    if not pred.any() or not truth.any():
        return 0.0
    union = pred | truth
    box = []
    for axis in range(3):
        hits = np.flatnonzero(union.any(axis=tuple(a for a in range(3) if a != axis)))
        box.append(slice(max(hits[0] - 2, 0), hits[-1] + 3))
    pred, truth = np.pad(pred[tuple(box)], 2), np.pad(truth[tuple(box)], 2)  # the crop edge is never a surface

    def one_hot(mask: np.ndarray) -> torch.Tensor:
        fg = torch.from_numpy(mask)
        return torch.stack([~fg, fg])[None].float()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI's deprecation notice on get_mask_edges
        value = compute_surface_dice(one_hot(pred), one_hot(truth), [float(tolerance)], spacing=list(spacing))
    return float(value.flatten()[0])


def curve_auc(scores: Sequence[float]) -> tuple[float, float]:
    """Area under a per-click curve (see the module docstring).

    Args:
        scores: the score after click 1, 2, ..., n.

    Returns:
        ``(auc, auc_normalised)``: the challenge's unit-spaced trapezoid area and that area divided by ``n - 1``.
    """
    values = np.asarray(scores, dtype=np.float64)
    if values.size == 0:
        return float("nan"), float("nan")
    if values.size == 1:
        return 0.0, float(values[0])
    auc = float(np.sum((values[1:] + values[:-1]) / 2.0))
    return auc, auc / (values.size - 1)
