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
"""The 128^3 window: placement on a centre, cut with zero padding, z-normalisation, and clipping to a grid."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.data import MetaTensor

from .grid import TIE_TOLERANCE, as_affine, check_image, nearest_voxel, translation, with_geometry

__all__ = [
    "ROI_SIZE",
    "label_bbox_center",
    "window_start",
    "crop_or_pad_params",
    "extract_window",
    "z_normalize",
    "window_slices",
    "window_points",
    "grid_part",
    "add_to_grid",
    "bounding_box",
]

# Spatial size of the network input window.
ROI_SIZE: tuple[int, int, int] = (128, 128, 128)


def label_bbox_center(label: np.ndarray | torch.Tensor) -> np.ndarray:
    """Centre of the bounding box of the non-zero voxels, in voxel-centre coordinates.

    This is ``(min + max_exclusive) / 2 - 0.5`` per axis: torchio's ``CropOrPad(mask_name=...)`` centre, which
    torchio expresses in corner coordinates (without the ``- 0.5``).

    Args:
        label: ``(I, J, K)`` or ``(1, I, J, K)`` mask; non-zero voxels are foreground.

    Returns:
        float64 array of 3 coordinates.

    Raises:
        ValueError: if the label is empty (the reference then falls back to the image centre, with a different
            rounding for odd differences; the inference never windows on an empty label).
    """
    if isinstance(label, torch.Tensor):
        label = label.detach().cpu().numpy()
    mask = np.asarray(label)
    if mask.ndim == 4:
        mask = mask[0]
    mask = mask != 0
    if not mask.any():
        raise ValueError("empty label: no bounding box")
    center = []
    for axis in range(3):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        center.append((hits[0] + hits[-1]) / 2.0)
    return np.asarray(center, dtype=np.float64)


def window_start(center: Sequence[float] | np.ndarray, size: Sequence[int] = ROI_SIZE) -> tuple[int, int, int]:
    """First voxel of the window of ``size`` placed on ``center`` (voxel-centre coordinates of the grid).

    For even sizes the voxel nearest to ``center`` (half-way rounds up) becomes ROI index ``size // 2``, e.g. 64:
    a click on voxel ``v`` gives ``start = v - 64``. This reproduces torchio's ``CropOrPad`` placement (its
    "minus 0.5 on half indices") for both even and odd sizes: ``start = floor(center + 0.5 - size / 2)``.

    Args:
        center: centre in voxel coordinates of the grid to cut (e.g. :func:`label_bbox_center` or a click).
        size: window size.

    Returns:
        The window start per axis (may be negative or beyond the image: the window is then padded).
    """
    c = np.asarray(center, dtype=np.float64)
    s = np.asarray(size, dtype=np.float64)
    start = np.floor(c + 0.5 - s / 2.0 + TIE_TOLERANCE).astype(np.int64)
    return (int(start[0]), int(start[1]), int(start[2]))


def crop_or_pad_params(
    start: Sequence[int], spatial_shape: Sequence[int], size: Sequence[int] = ROI_SIZE
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """torchio's ``CropOrPad`` parameters of a window: pad (with 0) first, then crop.

    Args:
        start: window start per axis (:func:`window_start`).
        spatial_shape: shape of the grid the window is cut from.
        size: window size.

    Returns:
        ``(padding, cropping)``, each ``(before_0, after_0, before_1, after_1, before_2, after_2)``.
    """
    padding: list[int] = []
    cropping: list[int] = []
    for s, n, t in zip(start, spatial_shape, size):
        end = int(s) + int(t)
        padding += [max(0, -int(s)), max(0, end - int(n))]
        cropping += [max(0, int(s)), max(0, int(n) - end)]
    return tuple(padding), tuple(cropping)


def extract_window(img: MetaTensor, start: Sequence[int], size: Sequence[int] = ROI_SIZE) -> MetaTensor:
    """Cut the window ``[start, start + size)`` out of ``img``, with 0 where it leaves the image.

    Equivalent to MONAI ``BorderPad`` + ``SpatialCrop`` with the parameters of :func:`crop_or_pad_params`, in one
    copy (also for windows partly or wholly outside the image).

    Args:
        img: channel-first image ``(C, I, J, K)``.
        start: first voxel of the window per axis (may be negative).
        size: window size.

    Returns:
        The window; its affine is ``img.affine`` shifted by ``start`` voxels (the ROI affine).
    """
    check_image(img)
    data = img.as_tensor()
    out = torch.zeros((data.shape[0], *(int(t) for t in size)), dtype=data.dtype)
    src, dst = window_slices(start, size, data.shape[1:])
    out[(slice(None), *dst)] = data[(slice(None), *src)]
    return with_geometry(img, out, as_affine(img.affine) @ translation(start))


def z_normalize(img: MetaTensor | torch.Tensor, threshold: float = 0.0, empty_ok: bool = False) -> MetaTensor:
    """``tio.ZNormalization(masking_method=lambda x: x > 0)``: standardise with the statistics of ``x > threshold``.

    The mean and the unbiased (N - 1) standard deviation of the voxels above ``threshold`` are applied to all
    voxels (statistics in float64, output float32). MONAI's ``NormalizeIntensity(nonzero=True)`` differs: its
    mask is ``x != 0`` (negative values count, e.g. all of CT air and fat) and its std is the biased one (N).

    Args:
        img: channel-first image (all channels share the statistics, as in the reference's one-channel use).
        threshold: voxels strictly above it define the statistics.
        empty_ok: return the image unchanged (as float32) when it has no statistics, instead of raising (sliding
            windows over air or padding in automatic mode).

    Returns:
        The normalised image (float32).

    Raises:
        ValueError: if fewer than two voxels exceed the threshold or they are all equal (torchio raises too).
    """
    data = img.as_tensor() if isinstance(img, MetaTensor) else torch.as_tensor(img)
    values = data[data > threshold].to(torch.float64)
    std = values.std(correction=1) if values.numel() >= 2 else torch.zeros((), dtype=torch.float64)
    if std == 0 and empty_ok:
        out = data.to(torch.float32)
    elif values.numel() < 2:
        raise ValueError(
            "z-normalisation needs at least two voxels above 0 in the window: the clicked region is empty (air or "
            "outside the body); click on the object."
        )
    elif std == 0:
        raise ValueError(
            "z-normalisation: the window's voxels above 0 are all equal; the image holds no structure there."
        )
    else:
        out = ((data.to(torch.float64) - values.mean()) / std).to(torch.float32)
    if isinstance(img, MetaTensor):
        return with_geometry(img, out, as_affine(img.affine))
    return MetaTensor(out)


def window_slices(
    start: Sequence[int], size: Sequence[int], grid_shape: Sequence[int]
) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Where the window ``[start, start + size)`` overlaps a grid: the slices in the grid and in the window.

    Args:
        start: first voxel of the window per axis (may be negative or beyond the grid).
        size: window size.
        grid_shape: spatial shape of the grid.

    Returns:
        ``(grid_slices, window_slices)``, empty slices where the window misses the grid.
    """
    grid, window = [], []
    for s, t, n in zip(start, size, grid_shape):
        lo, hi = max(int(s), 0), min(int(s) + int(t), int(n))
        hi = max(lo, hi)
        grid.append(slice(lo, hi))
        window.append(slice(lo - int(s), hi - int(s)))
    return tuple(grid), tuple(window)


def window_points(points: np.ndarray, start: Sequence[int], size: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Window voxel indices of grid points for the window at ``start``, and which of them fall inside it.

    Args:
        points: ``(N, 3)`` (or ``(3,)``) continuous grid coordinates.
        start: first voxel of the window.
        size: window size.

    Returns:
        ``(N, 3)`` int64 window indices (nearest voxel) and an ``(N,)`` bool array.
    """
    roi = nearest_voxel(np.asarray(points, dtype=np.float64).reshape(-1, 3) - np.asarray(start, dtype=np.float64))
    inside = ((roi >= 0) & (roi < np.asarray(size))).all(axis=1)
    return roi, inside


def bounding_box(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The smallest box ``[lo, hi)`` holding every True voxel of a 3-D bool array, or ``None`` if there is none."""
    hits = [np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != d))) for d in range(3)]
    if any(len(h) == 0 for h in hits):
        return None
    return np.array([h[0] for h in hits]), np.array([h[-1] + 1 for h in hits])


def grid_part(grid: np.ndarray, start: Sequence[int], size: Sequence[int]) -> np.ndarray:
    """The window at ``start`` cut from a spatial array (zeros where the window leaves the grid).

    Args:
        grid: spatial array ``(X, Y, Z)``.
        start: first voxel of the window.
        size: window size.
    """
    part = np.zeros(tuple(int(t) for t in size), dtype=grid.dtype)
    dst_grid, dst_window = window_slices(start, size, grid.shape)
    part[dst_window] = grid[dst_grid]
    return part


def add_to_grid(grid: np.ndarray, part: np.ndarray, start: Sequence[int]) -> None:
    """OR a window's bool mask into a bool spatial array, in place (the part of the window inside the grid).

    Args:
        grid: bool spatial array.
        part: bool window mask.
        start: first voxel of the window.
    """
    dst_grid, dst_window = window_slices(start, part.shape, grid.shape)
    grid[dst_grid] |= part[dst_window]
