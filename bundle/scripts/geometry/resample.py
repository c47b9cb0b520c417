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
"""Resampling along voxel axes (the reference's ``tio.Resample`` grids, exactly) and reordering to RAS."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Orientation
from monai.utils import dtype_torch_to_numpy

from .grid import TIE_TOLERANCE, as_affine, check_image, spacing_from_affine, with_geometry

__all__ = ["TARGET_SPACING", "corner_aligned_grid", "resample_axis_aligned", "resample_to_spacing", "reorient_to_ras"]

# Voxel size (mm) of the network input.
TARGET_SPACING: tuple[float, float, float] = (1.5, 1.5, 1.5)
_RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))
_AXIS_TOLERANCE = 1e-6


def corner_aligned_grid(
    shape: Sequence[int], affine: np.ndarray | torch.Tensor, spacing: Sequence[float] = TARGET_SPACING
) -> tuple[tuple[int, int, int], np.ndarray]:
    """The reference's resampling grid (``tio.Resample(target=spacing)``) for an image grid.

    The output keeps the input's axis directions, has ``ceil(n * sp / spacing)`` voxels per axis (1 stays 1) and
    its first voxel corner coincides with the input's first voxel corner: output voxel ``o`` sits at continuous
    input index ``r * o + 0.5 * (r - 1)`` with ``r = spacing / sp``.

    MONAI's ``Spacing`` builds a different grid: it keeps the first voxel *centre* in place and sizes the grid
    from the extent of the voxel centres, so its shape and origin differ from the reference (e.g. 59 instead of 60
    slices and a 0.5 mm shift for 36 slices of 2.5 mm).

    Args:
        shape: spatial shape ``(I, J, K)`` of the input grid.
        affine: 4x4 voxel-to-world matrix of the input grid.
        spacing: output voxel size in mm along the input's voxel axes.

    Returns:
        The output spatial shape and the index map (output index -> input index); the output affine is
        ``affine @ index_map``.
    """
    old_size = np.asarray(shape, dtype=np.float64)
    old_spacing = spacing_from_affine(affine)
    new_spacing = np.asarray(spacing, dtype=np.float64)
    new_size = np.ceil(old_size * old_spacing / new_spacing).astype(np.int64)
    new_size[old_size == 1] = 1
    ratio = new_spacing / old_spacing
    index_map = np.diag([*ratio, 1.0])
    index_map[:3, 3] = 0.5 * (ratio - 1.0)
    return (int(new_size[0]), int(new_size[1]), int(new_size[2])), index_map


def _axis_plan(index_map: np.ndarray) -> list[tuple[int, float, float]]:
    """Split an axis-aligned index map into ``(input axis, scale, offset)`` per output axis."""
    linear = np.asarray(index_map, dtype=np.float64)[:3, :3]
    source = np.argmax(np.abs(linear), axis=0)
    plan = []
    for out_axis in range(3):
        in_axis = int(source[out_axis])
        scale = float(linear[in_axis, out_axis])
        others = np.delete(linear[:, out_axis], in_axis)
        if np.any(np.abs(others) > _AXIS_TOLERANCE * abs(scale)):
            raise ValueError(f"index map is not axis-aligned (output axis {out_axis}):\n{index_map}")
        plan.append((in_axis, scale, float(index_map[in_axis, 3])))
    if sorted(axis for axis, _, _ in plan) != [0, 1, 2]:
        raise ValueError(f"index map is not a permutation of the axes:\n{index_map}")
    return plan


def valid_range(positions: torch.Tensor, size: int) -> tuple[int, int]:
    """First and last+1 output index whose nearest input voxel lies inside ``[0, size)`` (positions monotone)."""
    nearest = torch.floor(positions + 0.5 + TIE_TOLERANCE)
    valid = torch.nonzero((nearest >= 0) & (nearest < size)).flatten()
    if valid.numel() == 0:
        return 0, 0
    return int(valid[0]), int(valid[-1]) + 1


def _take(data: torch.Tensor, dim: int, index: torch.Tensor) -> torch.Tensor:
    """``data.index_select(dim, index)`` by advanced indexing (much faster on the last dim on CPU)."""
    return data[(slice(None),) * dim + (index,)]


def _repeat(data: torch.Tensor, dim: int, index: torch.Tensor) -> torch.Tensor:
    """:func:`_take` of a monotone index (a nearest-neighbour resampling's) as repeats of the voxels it reads: copies at
    memory speed instead of gathers."""
    values = index.numpy()
    steps = np.diff(values)
    if len(values) == 0 or not ((steps >= 0).all() or (steps <= 0).all()) or data.dtype == torch.bfloat16:
        return _take(data, dim, index)
    first, last = int(values.min()), int(values.max()) + 1
    source = data.numpy()[(slice(None),) * dim + (slice(first, last),)]
    counts = np.bincount(values - first, minlength=last - first)
    if values[0] > values[-1]:  # a flipped axis reads the voxels backwards
        source, counts = np.flip(source, dim), counts[::-1]
    return torch.from_numpy(np.repeat(source, counts, axis=dim))


def axis_sampling(
    positions: torch.Tensor, size: int, mode: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Which voxels of an axis of ``size`` voxels give the values at continuous ``positions``, and how.

    Args:
        positions: float64 positions, all inside ``[-0.5, size - 0.5)``.
        size: voxels along the axis.
        mode: ``"bilinear"`` or ``"nearest"``.

    Returns:
        ``(lower, upper, weight)``: voxel indices and the weight of ``upper`` (``"nearest"``: ``lower`` only,
        ``upper`` equal to it and no weight).
    """
    if mode == "nearest":
        index = torch.floor(positions + 0.5 + TIE_TOLERANCE).long().clamp_(0, size - 1)
        return index, index, None
    lower = torch.floor(positions).clamp_(0, size - 1)
    weight = (positions - lower).clamp_(0.0, 1.0)
    lower = lower.long()
    return lower, (lower + 1).clamp_(max=size - 1), weight


def sample_along(
    data: torch.Tensor, dim: int, lower: torch.Tensor, upper: torch.Tensor, weight: torch.Tensor | None
) -> torch.Tensor:
    """Resample ``data`` along ``dim`` with :func:`axis_sampling`'s indices (relative to ``data``) and weights.

    Linear interpolation returns float64 (computed as ITK does: ``low + (high - low) * weight``), nearest keeps the
    dtype.
    """
    if weight is None:
        return _repeat(data, dim, lower)
    shape = [1] * data.ndim
    shape[dim] = -1
    low = _take(data, dim, lower).to(torch.float64)
    return _take(data, dim, upper).to(torch.float64).sub_(low).mul_(weight.reshape(shape)).add_(low)


def _sample_axis(data: torch.Tensor, dim: int, positions: torch.Tensor, mode: str) -> torch.Tensor:
    """Resample ``data`` along ``dim`` at continuous ``positions`` (all inside ``[-0.5, n - 0.5)``)."""
    return sample_along(data, dim, *axis_sampling(positions, data.shape[dim], mode))


def cast_back(block: torch.Tensor, dtype: torch.dtype, mode: str) -> torch.Tensor:
    """Interpolated values back to the input's ``dtype``, as ITK casts: integers truncated and clipped."""
    if mode != "nearest" and not dtype.is_floating_point:
        info = torch.iinfo(dtype)
        block = torch.trunc(block).clamp_(info.min, info.max)
    return block.to(dtype)


def _sampled_block(
    plan: list[tuple[int, float, float]], in_shape: Sequence[int], out_shape: Sequence[int]
) -> tuple[list[slice], list[torch.Tensor]]:
    """The output voxels that read the input (a box), and their input positions per output axis."""
    bounds, positions = [], []
    for out_axis, (_, scale, offset) in enumerate(plan):
        pos = torch.arange(int(out_shape[out_axis]), dtype=torch.float64) * scale + offset
        lo, hi = valid_range(pos, int(in_shape[out_axis]))
        bounds.append(slice(lo, hi))
        positions.append(pos[lo:hi])
    return bounds, positions


def resample_block(
    img: MetaTensor | torch.Tensor, index_map: np.ndarray, spatial_shape: Sequence[int], mode: str = "bilinear"
) -> tuple[tuple[slice, ...], torch.Tensor]:
    """The part of :func:`resample_axis_aligned`'s output that reads the input: the box of output voxels and their
    values (``(C, *box)``, input dtype); the rest of the output is 0. It costs the box, not the output grid.

    Args:
        img: channel-first image ``(C, I, J, K)``.
        index_map: 4x4 map from output voxel indices to input voxel indices (axis-aligned).
        spatial_shape: output spatial shape.
        mode: ``"bilinear"`` (or ``"linear"``) or ``"nearest"``.
    """
    if mode not in ("bilinear", "linear", "nearest"):
        raise ValueError(f"mode must be 'bilinear' or 'nearest', got {mode!r}")
    plan = _axis_plan(np.asarray(index_map, dtype=np.float64))
    shape = tuple(int(s) for s in spatial_shape)
    data = torch.as_tensor(img).permute(0, *(1 + axis for axis, _, _ in plan))
    bounds, positions = _sampled_block(plan, data.shape[1:], shape)
    if not all(b.stop > b.start for b in bounds):
        return tuple(bounds), data.new_zeros((data.shape[0], *(max(b.stop - b.start, 0) for b in bounds)))
    kind = "nearest" if mode == "nearest" else "bilinear"
    block = data
    for out_axis, pos in enumerate(positions):
        block = _sample_axis(block, 1 + out_axis, pos, kind)
    return tuple(bounds), cast_back(block, data.dtype, kind)


def resample_axis_aligned(
    img: MetaTensor,
    index_map: np.ndarray,
    spatial_shape: Sequence[int],
    mode: str = "bilinear",
    out_affine: np.ndarray | None = None,
) -> MetaTensor:
    """Resample onto a grid whose axes are those of ``img`` permuted, flipped, scaled or shifted.

    This is SimpleITK's ``ResampleImageFilter`` with an identity transform and default value 0, done one axis
    at a time (exact, since such grids make trilinear and nearest-neighbour interpolation separable): an
    output voxel whose input position lies outside ``[-0.5, n - 0.5)`` on some axis is 0; inside, ``"bilinear"``
    interpolates linearly, holding the edge value in the outer half voxels, and ``"nearest"`` takes the
    nearest voxel (half-way rounds up). Linear interpolation is computed in float64 and cast back to the input
    dtype; integer inputs are truncated towards zero and clipped to their range, as ITK casts.

    MONAI's ``SpatialResample`` (``torch.grid_sample``) differs at the borders: ``padding_mode="zeros"`` blends
    the edge voxels with zeros in the outer half voxels, ``"border"`` never returns 0 outside the image.

    Args:
        img: channel-first image ``(C, I, J, K)``.
        index_map: 4x4 map from output voxel indices to input voxel indices (axis-aligned).
        spatial_shape: output spatial shape.
        mode: ``"bilinear"`` (or ``"linear"``) or ``"nearest"``.
        out_affine: output affine; default ``img.affine @ index_map``.

    Returns:
        The resampled image as a MetaTensor with the output affine.
    """
    check_image(img)
    index_map = np.asarray(index_map, dtype=np.float64)
    if out_affine is None:
        out_affine = as_affine(img.affine) @ index_map
    bounds, block = resample_block(img.as_tensor(), index_map, spatial_shape, mode)
    # numpy's zeros come from calloc: pages outside the sampled block are never written (a mask pasted onto a large
    # image costs the window, not the image; torch.zeros would memset all of it)
    out = np.zeros((block.shape[0], *(int(s) for s in spatial_shape)), dtype=dtype_torch_to_numpy(block.dtype))
    out = torch.from_numpy(out)
    out[(slice(None), *bounds)] = block
    return with_geometry(img, out, out_affine)


def resample_to_spacing(
    img: MetaTensor, spacing: Sequence[float] = TARGET_SPACING, mode: str = "bilinear"
) -> MetaTensor:
    """``tio.Resample(target=spacing)`` of the reference: the corner-aligned grid of :func:`corner_aligned_grid`.

    The reference interpolates linearly for the image and with nearest neighbour for the label; both keep
    the input dtype (so an int16 CT is truncated to integers after interpolation: load with
    ``LoadImage(dtype=None)`` to reproduce it; a float32 load gives the untruncated values).

    Args:
        img: channel-first image ``(C, I, J, K)`` with its affine.
        spacing: output voxel size in mm.
        mode: ``"bilinear"`` for images, ``"nearest"`` for labels.

    Returns:
        The resampled image; its affine keeps the input's axis directions.
    """
    check_image(img)
    shape, index_map = corner_aligned_grid(img.shape[1:], img.affine, spacing)
    return resample_axis_aligned(img, index_map, shape, mode=mode)


def reorient_to_ras(img: MetaTensor) -> MetaTensor:
    """``tio.ToCanonical()`` of the reference (nibabel ``as_closest_canonical``) with MONAI's ``Orientation``.

    Both reorder and flip the voxel axes to the closest RAS+ orientation with ``nibabel.io_orientation``; no
    interpolation, the output affine is ``img.affine @ P`` for a signed permutation ``P`` with an integer shift.

    Args:
        img: channel-first image ``(C, I, J, K)`` with its affine.

    Returns:
        The reoriented image.
    """
    check_image(img)
    out = Orientation(axcodes="RAS", labels=_RAS_LABELS)(img)
    assert isinstance(out, MetaTensor)
    return out
