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
"""The CVPR 2025 SegFM challenge's scores and click rule, as its official evaluator computes them.

* **DSC** of a step: the mean over the ground truth's classes of each class's Dice.
* **NSD** of a step: the mean over the classes of the surface Dice at 2 mm, computed only when the step's DSC is
  above 0.2 (else 0). The surface Dice is DeepMind's surfel form: the 2x2x2 neighbourhood code of every corner of the
  masks' bounding box (zero-padded one voxel at the high end), surfels where the code is neither 0 nor 255, each with
  its area from the surfel-area table of the ``surface-distance`` package (the same table the evaluator carries), the
  distance of each surfel to the other mask's surfels by a Euclidean distance transform with the spacing, and
  ``(area of gt surfels within tolerance + area of predicted surfels within tolerance) / (all their area)``. The
  spacing is used **as the case stores it** (the evaluator passes ``spacing`` unchanged for the (D, H, W) arrays).
* **AUC**: ``scipy.integrate.cumulative_trapezoid(scores[-5:], arange(5))[-1]``: the 5 click steps (the box step is
  not counted), so it ranges over [0, 4].
* **Click**: per class, the largest 26-connected component of ``(segs == k) != (gts == k)``; the Euclidean distance
  transform of it in voxel units with everything outside the image counted as background (computed on its bounding
  box padded by a quarter of its size, at least one voxel; boxes over 60 M voxels are max-pooled 2x2x2 first and the
  distances repeated back, as the evaluator does); among the voxels at its maximum (in C order), the one that
  ``RandomState(42).choice`` picks; fg if the ground truth holds the class there, else bg. No error: no click.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = ["NSD_TOLERANCE_MM", "segfm_auc", "segfm_click", "segfm_dsc", "segfm_nsd", "segfm_scores", "surfel_dice"]

NSD_TOLERANCE_MM = 2.0
NSD_MIN_DSC = 0.2  # below it the NSD of a step is not computed, and counts 0
LARGE_CROP = 60_000_000  # voxels above which the evaluator max-pools the crop before the EDT
_CODE_KERNEL = np.array([[[128, 64], [32, 16]], [[8, 4], [2, 1]]])
_CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)


def _classes(gts: np.ndarray) -> list[int]:
    return [int(c) for c in np.unique(gts) if c != 0]


def segfm_dsc(gts: np.ndarray, segs: np.ndarray) -> float:
    """The mean over the ground truth's classes of the Dice of ``segs == k`` (see the module docstring).

    Args:
        gts: ground truth (D, H, W), classes 1..K.
        segs: prediction of the same shape.
    """
    scores = []
    for k in _classes(gts):
        truth, pred = gts == k, segs == k
        scores.append(2.0 * int((truth & pred).sum()) / (int(truth.sum()) + int(pred.sum())))
    return float(np.mean(scores))


def _surfels(mask: np.ndarray, box: tuple[slice, ...], shape: tuple[int, ...]) -> np.ndarray:
    crop = np.zeros(shape, dtype=np.uint8)
    crop[:-1, :-1, :-1] = mask[box]
    return ndimage.correlate(crop, _CODE_KERNEL, mode="constant", cval=0)


def surfel_dice(truth: np.ndarray, pred: np.ndarray, spacing: Sequence[float], tolerance: float) -> float:
    """DeepMind's surface Dice at ``tolerance`` mm of two binary masks (see the module docstring).

    Args:
        truth: ground-truth mask (3-D bool).
        pred: predicted mask.
        spacing: voxel size in mm along the masks' three axes.
        tolerance: tolerance in mm.
    """
    from surface_distance.lookup_tables import create_table_neighbour_code_to_surface_area

    truth, pred = np.asarray(truth, dtype=bool), np.asarray(pred, dtype=bool)
    union = truth | pred
    if not union.any():
        return float("nan")
    lo, hi = [], []
    for axis in range(3):
        hits = np.flatnonzero(union.any(axis=tuple(a for a in range(3) if a != axis)))
        lo.append(int(hits[0]))
        hi.append(int(hits[-1]))
    box = tuple(slice(a, b + 1) for a, b in zip(lo, hi))
    shape = tuple(b - a + 2 for a, b in zip(lo, hi))
    areas = create_table_neighbour_code_to_surface_area([float(s) for s in spacing])
    codes = [_surfels(m, box, shape) for m in (truth, pred)]
    borders = [(c != 0) & (c != 255) for c in codes]
    distances = [
        ndimage.distance_transform_edt(~b, sampling=spacing) if b.any() else np.full(b.shape, np.inf) for b in borders
    ]
    area = [areas[c][b] for c, b in zip(codes, borders)]
    within = [area[0][distances[1][borders[0]] <= tolerance], area[1][distances[0][borders[1]] <= tolerance]]
    return float((np.sum(within[0]) + np.sum(within[1])) / (np.sum(area[0]) + np.sum(area[1])))


def segfm_nsd(
    gts: np.ndarray, segs: np.ndarray, spacing: Sequence[float], tolerance: float = NSD_TOLERANCE_MM
) -> float:
    """The mean over the ground truth's classes of :func:`surfel_dice` (no DSC gate; see :func:`segfm_scores`).

    Args:
        gts: ground truth (D, H, W).
        segs: prediction.
        spacing: as the case stores it (used unchanged for the array's axes, as the evaluator does).
        tolerance: in mm.
    """
    return float(np.mean([surfel_dice(gts == k, segs == k, spacing, tolerance) for k in _classes(gts)]))


def segfm_scores(gts: np.ndarray, segs: np.ndarray, spacing: Sequence[float]) -> tuple[float, float]:
    """A step's ``(DSC, NSD)``: the NSD at 2 mm only where the DSC is above 0.2, else 0.

    Args:
        gts: ground truth (D, H, W).
        segs: prediction.
        spacing: as the case stores it.
    """
    dsc = segfm_dsc(gts, segs)
    return dsc, segfm_nsd(gts, segs, spacing) if dsc > NSD_MIN_DSC else 0.0


def segfm_auc(scores: Sequence[float], num_clicks: int = 5) -> float:
    """The area under the last ``num_clicks`` scores, unit spacing (the challenge's ``DSC_AUC`` / ``NSD_AUC``).

    Args:
        scores: the per-step scores (box step first, when any).
        num_clicks: the click steps counted.
    """
    values = np.asarray(scores, dtype=np.float64)[-num_clicks:]
    return float(np.sum((values[1:] + values[:-1]) / 2.0))


def _component_edt(component: np.ndarray) -> np.ndarray:
    """EDT (voxel units) of a component, the image border counting as background, on a padded crop."""
    hits = np.argwhere(component)
    lo, hi = hits.min(axis=0), hits.max(axis=0) + 1
    size = hi - lo
    pad = np.maximum((size * 0.25).astype(int), 1)
    crop = np.zeros(size + 2 * pad, dtype=np.uint8)
    inner = tuple(slice(p, p + s) for p, s in zip(pad, size))
    crop[inner] = component[tuple(slice(a, b) for a, b in zip(lo, hi))]
    large = crop.size > LARGE_CROP
    if large:  # max-pool 2x2x2 (the end padded with zeros), then repeat the distances back
        even = np.zeros(tuple(-(-n // 2) * 2 for n in crop.shape), dtype=np.uint8)
        even[tuple(slice(0, n) for n in crop.shape)] = crop
        d, h, w = even.shape
        crop = even.reshape(d // 2, 2, h // 2, 2, w // 2, 2).max(axis=(1, 3, 5))
    edt = ndimage.distance_transform_edt(crop)
    if large:
        edt = edt.repeat(2, axis=0).repeat(2, axis=1).repeat(2, axis=2)
    out = np.zeros(component.shape, dtype=edt.dtype)
    out[tuple(slice(a, b) for a, b in zip(lo, hi))] = edt[inner]
    return out


def segfm_click(segs: np.ndarray, gts: np.ndarray, k: int) -> tuple[tuple[int, int, int], bool] | None:
    """The challenge's next click on class ``k`` (see the module docstring): ``((z, y, x), is_fg)`` or ``None``.

    Args:
        segs: the current prediction (D, H, W).
        gts: the ground truth.
        k: the class.
    """
    truth = gts == k
    error = (segs == k) != truth
    if not error.any():
        return None
    components, count = ndimage.label(error, structure=_CONNECTIVITY)
    sizes = np.bincount(components.ravel(), minlength=count + 1)
    sizes[0] = 0
    component = components == int(np.argmax(sizes))  # ties: the lowest label, first in raster order
    edt = _component_edt(component) * component
    if edt.sum() == 0:
        edt = component.astype(np.float64)
    peaks = np.argwhere(edt == edt.max())
    voxel = tuple(int(v) for v in peaks[np.random.RandomState(42).choice(len(peaks))])
    return voxel, bool(truth[voxel])  # type: ignore[return-value]
