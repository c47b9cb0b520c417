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
"""The geometry of SAM-Med3D inference before the network, as in the reference ``medim_val_single.py``.

The reference (torchio 0.20.1 on SimpleITK) does, per target: resample to 1.5 mm on a corner-aligned grid
(:func:`resample_to_spacing`), reorder the voxel axes to RAS (:func:`reorient_to_ras`), cut a 128^3 window
centred on the label's bounding box (:func:`label_bbox_center`, :func:`window_start`, :func:`extract_window`),
z-normalise it (:func:`z_normalize`) and draw the first click (:func:`sample_first_click`).
:func:`reference_preprocess` chains these steps; ``pasteback.paste_back`` is the way back.

Conventions:
    * Images are channel-first MONAI ``MetaTensor`` s ``(C, I, J, K)`` whose ``affine`` maps voxel indices to
      RAS millimetres (what ``LoadImage(image_only=True, ensure_channel_first=True)`` gives).
    * Voxel coordinates are voxel-centre based: voxel ``(i, j, k)`` covers ``[i - 0.5, i + 0.5)`` etc.
    * An *index map* is a float64 4x4 matrix taking voxel indices of an output grid to continuous voxel indices
      of an input grid (``out_affine = in_affine @ index_map``). Every grid of the pipeline is the original grid
      scaled, permuted, flipped or shifted, so the maps are axis-aligned and all data movement is separable.
    * Nearest neighbour rounds half-way positions up (ITK's ``RoundHalfIntegerUp``); a position within
      :data:`TIE_TOLERANCE` below a half-integer counts as half-way, so float64 noise of affine products
      (~1e-13 voxel) cannot flip a tie, while the offsets that the file's float32 spacings create (~1e-7 voxel,
      e.g. 0.8 mm stored as 0.800000011920929) still decide, as they do in the reference.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Orientation
from monai.utils import dtype_torch_to_numpy

__all__ = [
    "TARGET_SPACING",
    "ROI_SIZE",
    "FIRST_CLICK_SEED",
    "TIE_TOLERANCE",
    "as_affine",
    "spacing_from_affine",
    "corner_aligned_grid",
    "index_transform",
    "map_points",
    "nearest_voxel",
    "original_to_roi",
    "roi_to_original",
    "resample_axis_aligned",
    "resample_to_spacing",
    "reorient_to_ras",
    "label_bbox_center",
    "window_start",
    "crop_or_pad_params",
    "extract_window",
    "z_normalize",
    "sample_first_click",
    "reference_preprocess",
]

TARGET_SPACING: tuple[float, float, float] = (1.5, 1.5, 1.5)
"""Voxel size (mm) of the network input."""
ROI_SIZE: tuple[int, int, int] = (128, 128, 128)
"""Spatial size of the network input window."""
FIRST_CLICK_SEED = 233
"""Seed of ``np.random.seed`` in the reference's ``validate_paired_img_gt``."""
TIE_TOLERANCE = 1e-9
"""Positions this close (in voxels) below a half-integer round up like exact ties (float64 noise, not float32)."""

_RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))
_AXIS_TOLERANCE = 1e-6


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


def _translation(offset: Sequence[float]) -> np.ndarray:
    """Return the 4x4 index map that shifts voxel indices by ``offset``."""
    out = np.eye(4)
    out[:3, 3] = np.asarray(offset, dtype=np.float64)
    return out


def _check_image(img: torch.Tensor) -> None:
    """Raise if ``img`` is not a channel-first 3D ``MetaTensor``."""
    if not isinstance(img, MetaTensor):
        raise TypeError(f"expected a MetaTensor with an affine, got {type(img).__name__}")
    if img.ndim != 4:
        raise ValueError(f"expected a channel-first 3D image (C, I, J, K), got shape {tuple(img.shape)}")


def _with_geometry(img: MetaTensor, data: torch.Tensor, affine: np.ndarray) -> MetaTensor:
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


def _valid_range(positions: torch.Tensor, size: int) -> tuple[int, int]:
    """First and last+1 output index whose nearest input voxel lies inside ``[0, size)`` (positions monotone)."""
    nearest = torch.floor(positions + 0.5 + TIE_TOLERANCE)
    valid = torch.nonzero((nearest >= 0) & (nearest < size)).flatten()
    if valid.numel() == 0:
        return 0, 0
    return int(valid[0]), int(valid[-1]) + 1


def _take(data: torch.Tensor, dim: int, index: torch.Tensor) -> torch.Tensor:
    """``data.index_select(dim, index)`` by advanced indexing (much faster on the last dim on CPU)."""
    return data[(slice(None),) * dim + (index,)]


def _sample_axis(data: torch.Tensor, dim: int, positions: torch.Tensor, mode: str) -> torch.Tensor:
    """Resample ``data`` along ``dim`` at continuous ``positions`` (all inside ``[-0.5, n - 0.5)``).

    ``"bilinear"`` returns float64 (computed as ITK does: ``low + (high - low) * weight``), ``"nearest"`` keeps the
    dtype.
    """
    size = data.shape[dim]
    if mode == "nearest":
        index = torch.floor(positions + 0.5 + TIE_TOLERANCE).long().clamp_(0, size - 1)
        return _take(data, dim, index)
    lower = torch.floor(positions).clamp_(0, size - 1)
    weight = (positions - lower).clamp_(0.0, 1.0)
    lower = lower.long()
    upper = (lower + 1).clamp_(max=size - 1)
    shape = [1] * data.ndim
    shape[dim] = -1
    weight = weight.reshape(shape)
    low = _take(data, dim, lower).to(torch.float64)
    return _take(data, dim, upper).to(torch.float64).sub_(low).mul_(weight).add_(low)


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
    _check_image(img)
    if mode not in ("bilinear", "linear", "nearest"):
        raise ValueError(f"mode must be 'bilinear' or 'nearest', got {mode!r}")
    index_map = np.asarray(index_map, dtype=np.float64)
    if out_affine is None:
        out_affine = as_affine(img.affine) @ index_map
    plan = _axis_plan(index_map)
    shape = tuple(int(s) for s in spatial_shape)
    data = img.as_tensor().permute(0, *(1 + axis for axis, _, _ in plan))
    # numpy's zeros come from calloc: pages outside the sampled block are never written (a mask pasted onto a large
    # image costs the window, not the image; torch.zeros would memset all of it)
    out = torch.from_numpy(np.zeros((data.shape[0], *shape), dtype=dtype_torch_to_numpy(data.dtype)))

    bounds = []
    positions = []
    for out_axis, (_, scale, offset) in enumerate(plan):
        pos = torch.arange(shape[out_axis], dtype=torch.float64) * scale + offset
        lo, hi = _valid_range(pos, data.shape[1 + out_axis])
        bounds.append(slice(lo, hi))
        positions.append(pos[lo:hi])
    if all(b.stop > b.start for b in bounds):
        kind = "nearest" if mode == "nearest" else "bilinear"
        block = data
        for out_axis, pos in enumerate(positions):
            block = _sample_axis(block, 1 + out_axis, pos, kind)
        if kind == "bilinear" and not data.dtype.is_floating_point:
            info = torch.iinfo(data.dtype)
            block = torch.trunc(block).clamp_(info.min, info.max)
        out[(slice(None), *bounds)] = block.to(data.dtype)
    return _with_geometry(img, out, out_affine)


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
    _check_image(img)
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
    _check_image(img)
    out = Orientation(axcodes="RAS", labels=_RAS_LABELS)(img)
    assert isinstance(out, MetaTensor)
    return out


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
    _check_image(img)
    data = img.as_tensor()
    out = torch.zeros((data.shape[0], *(int(t) for t in size)), dtype=data.dtype)
    src: list[slice] = []
    dst: list[slice] = []
    for s, n, t in zip(start, data.shape[1:], size):
        lo, hi = max(int(s), 0), min(int(s) + int(t), int(n))
        src.append(slice(lo, max(lo, hi)))
        dst.append(slice(lo - int(s), max(lo, hi) - int(s)))
    out[(slice(None), *dst)] = data[(slice(None), *src)]
    return _with_geometry(img, out, as_affine(img.affine) @ _translation(start))


def z_normalize(img: MetaTensor, threshold: float = 0.0) -> MetaTensor:
    """``tio.ZNormalization(masking_method=lambda x: x > 0)``: standardise with the statistics of ``x > threshold``.

    The mean and the unbiased (N - 1) standard deviation of the voxels above ``threshold`` are applied to all
    voxels (statistics in float64, output float32). MONAI's ``NormalizeIntensity(nonzero=True)`` differs: its
    mask is ``x != 0`` (negative values count, e.g. all of CT air and fat) and its std is the biased one (N).

    Args:
        img: channel-first image (all channels share the statistics, as in the reference's one-channel use).
        threshold: voxels strictly above it define the statistics.

    Returns:
        The normalised image (float32).

    Raises:
        ValueError: if fewer than two voxels exceed the threshold or they are all equal (torchio raises too).
    """
    data = img.as_tensor() if isinstance(img, MetaTensor) else torch.as_tensor(img)
    values = data[data > threshold].to(torch.float64)
    if values.numel() < 2:
        raise ValueError("z-normalisation needs at least two voxels above the threshold")
    mean = values.mean()
    std = values.std(correction=1)
    if std == 0:
        raise ValueError("z-normalisation: the masked voxels have zero standard deviation")
    out = ((data.to(torch.float64) - mean) / std).to(torch.float32)
    if isinstance(img, MetaTensor):
        return _with_geometry(img, out, as_affine(img.affine))
    return MetaTensor(out)


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


def reference_preprocess(
    image: MetaTensor, label: MetaTensor, spacing: Sequence[float] = TARGET_SPACING, size: Sequence[int] = ROI_SIZE
) -> tuple[MetaTensor, MetaTensor]:
    """The reference's per-target preprocessing: resample, RAS, window on the label's box, z-normalisation.

    Args:
        image: channel-first image with its affine.
        label: channel-first binary label on the same grid (the reference binarises ``label == class`` first).
        spacing: resampling voxel size in mm.
        size: window size.

    Returns:
        ``(roi_image, roi_label)``: the float32 network input and the ROI label, both with the ROI affine.
    """
    canonical_image = reorient_to_ras(resample_to_spacing(image, spacing, mode="bilinear"))
    canonical_label = reorient_to_ras(resample_to_spacing(label, spacing, mode="nearest"))
    start = window_start(label_bbox_center(canonical_label), size)
    roi_image = z_normalize(extract_window(canonical_image, start, size))
    roi_label = extract_window(canonical_label, start, size)
    return roi_image, roi_label
