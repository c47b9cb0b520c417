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
"""Voxel grids: affines, index maps between grids, points and their nearest voxels, MetaTensor geometry."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.data import MetaTensor

__all__ = [
    "TIE_TOLERANCE",
    "as_affine",
    "translation",
    "check_image",
    "with_geometry",
    "spacing_from_affine",
    "index_transform",
    "map_points",
    "nearest_voxel",
    "original_to_roi",
    "roi_to_original",
]

# Positions this close (in voxels) below a half-integer round up like exact ties (float64 noise, not float32).
TIE_TOLERANCE = 1e-9


def as_affine(affine: np.ndarray | torch.Tensor | Sequence[Sequence[float]]) -> np.ndarray:
    """Return a 4x4 float64 numpy copy of ``affine``.

    Args:
        affine: 4x4 matrix (numpy, torch or nested sequences).

    Returns:
        float64 numpy array of shape (4, 4).
    """
    if isinstance(affine, torch.Tensor):
        affine = affine.detach().cpu().numpy()
    out = np.array(affine, dtype=np.float64)
    if out.shape != (4, 4):
        raise ValueError(f"expected a 4x4 affine, got shape {out.shape}")
    return out


def translation(offset: Sequence[float]) -> np.ndarray:
    """Return the 4x4 index map that shifts voxel indices by ``offset``."""
    out = np.eye(4)
    out[:3, 3] = np.asarray(offset, dtype=np.float64)
    return out


def check_image(img: torch.Tensor) -> None:
    """Raise if ``img`` is not a channel-first 3D ``MetaTensor``."""
    if not isinstance(img, MetaTensor):
        raise TypeError(f"expected a MetaTensor with an affine, got {type(img).__name__}")
    if img.ndim != 4:
        raise ValueError(f"expected a channel-first 3D image (C, I, J, K), got shape {tuple(img.shape)}")


def with_geometry(img: MetaTensor, data: torch.Tensor, affine: np.ndarray) -> MetaTensor:
    """Wrap ``data`` as a MetaTensor carrying ``img``'s meta data and the new ``affine``."""
    meta = {key: value for key, value in img.meta.items() if key != "affine"}
    return MetaTensor(data, affine=torch.as_tensor(affine, dtype=torch.float64), meta=meta)


def spacing_from_affine(affine: np.ndarray | torch.Tensor) -> np.ndarray:
    """Voxel size along each voxel axis: the norms of the affine's first three columns.

    Args:
        affine: 4x4 voxel-to-world matrix.

    Returns:
        float64 array of 3 spacings in mm.
    """
    return np.linalg.norm(as_affine(affine)[:3, :3], axis=0)


def index_transform(from_affine: np.ndarray | torch.Tensor, to_affine: np.ndarray | torch.Tensor) -> np.ndarray:
    """The index map taking voxel indices of one grid to continuous voxel indices of another.

    Args:
        from_affine: 4x4 voxel-to-world matrix of the grid the points are given in.
        to_affine: 4x4 voxel-to-world matrix of the grid the points are wanted in.

    Returns:
        float64 4x4 matrix ``inv(to_affine) @ from_affine``.
    """
    return np.linalg.solve(as_affine(to_affine), as_affine(from_affine))


def map_points(points: np.ndarray | torch.Tensor | Sequence[Sequence[float]], index_map: np.ndarray) -> np.ndarray:
    """Apply a 4x4 index map to points.

    Args:
        points: ``(3,)`` or ``(N, 3)`` voxel coordinates.
        index_map: float64 4x4 matrix.

    Returns:
        float64 array of the same shape with the continuous mapped coordinates.
    """
    if isinstance(points, torch.Tensor):
        points = points.detach().cpu().numpy()
    pts = np.asarray(points, dtype=np.float64)
    matrix = np.asarray(index_map, dtype=np.float64)
    mapped = pts.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]
    return mapped.reshape(pts.shape)


def nearest_voxel(points: np.ndarray) -> np.ndarray:
    """Round continuous voxel coordinates to the nearest voxel, half-way positions upwards.

    Args:
        points: float coordinates of any shape.

    Returns:
        int64 array of the same shape.
    """
    return np.floor(np.asarray(points, dtype=np.float64) + 0.5 + TIE_TOLERANCE).astype(np.int64)


def original_to_roi(
    points: np.ndarray | torch.Tensor | Sequence[Sequence[float]],
    original_affine: np.ndarray | torch.Tensor,
    roi_affine: np.ndarray | torch.Tensor,
) -> np.ndarray:
    """Map voxel indices of the original image (file voxel order ``i, j, k``) to ROI tensor indices.

    Args:
        points: ``(3,)`` or ``(N, 3)`` voxel coordinates in the original image.
        original_affine: 4x4 affine of the original image.
        roi_affine: 4x4 affine of the ROI (the ``affine`` of :func:`extract_window`'s output).

    Returns:
        Continuous ROI coordinates (float64); :func:`nearest_voxel` gives the ROI voxel whose nearest-neighbour
        source is closest, which for images at 1.5 mm or coarser is the voxel the point lies in.
    """
    return map_points(points, index_transform(original_affine, roi_affine))


def roi_to_original(
    points: np.ndarray | torch.Tensor | Sequence[Sequence[float]],
    original_affine: np.ndarray | torch.Tensor,
    roi_affine: np.ndarray | torch.Tensor,
) -> np.ndarray:
    """Map ROI tensor indices to voxel indices of the original image (inverse of :func:`original_to_roi`).

    Args:
        points: ``(3,)`` or ``(N, 3)`` ROI coordinates.
        original_affine: 4x4 affine of the original image.
        roi_affine: 4x4 affine of the ROI.

    Returns:
        Continuous original voxel coordinates (float64); :func:`nearest_voxel` gives the voxel that the
        reference's nearest-neighbour resampling of the label reads for an ROI voxel.
    """
    return map_points(points, index_transform(roi_affine, original_affine))
