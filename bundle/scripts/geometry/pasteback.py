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
"""The way back after the network: a mask on the ROI grid onto the original image grid (``data_postprocess``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.data import MetaTensor

from .grid import as_affine, index_transform
from .resample import resample_axis_aligned, resample_block

__all__ = ["paste_back", "paste_back_region"]


def paste_back(
    roi_mask: MetaTensor, original_shape: Sequence[int], original_affine: np.ndarray | torch.Tensor
) -> MetaTensor:
    """Resample a ROI mask onto the original image grid with nearest neighbour, 0 outside the ROI.

    This is the reference's ``data_postprocess`` (``tio.Resample(target=original image)`` of the ROI prediction
    with the ROI affine, i.e. SimpleITK nearest neighbour): original voxel ``v`` takes the ROI voxel nearest to
    ``inv(roi_affine) @ original_affine @ v``, half-way positions rounding up, and 0 when that position is
    outside ``[-0.5, 127.5)``. Only the part of the original grid covered by the ROI is computed.

    The reference returns the result transposed to SimpleITK's ``(Z, Y, X)`` order; this returns the file's
    voxel order ``(C, I, J, K)`` with the original affine, as ``SaveImage`` expects.

    Args:
        roi_mask: channel-first ROI mask ``(C, 128, 128, 128)`` whose ``affine`` is the ROI affine; its dtype is kept
            (pass uint8 or bool masks; nothing is interpolated).
        original_shape: spatial shape ``(I, J, K)`` of the original image (or ``(C, I, J, K)``: C is ignored).
        original_affine: 4x4 affine of the original image.

    Returns:
        The mask on the original grid, with the original affine (and the ROI mask's other meta data).

    Raises:
        ValueError: if the ROI grid is not axis-aligned with the original grid (ROIs cut by ``preprocessing`` from
            the original image always are, even for oblique images, since every step works on its voxel axes).
    """
    shape = tuple(int(s) for s in original_shape)[-3:]
    target = as_affine(original_affine)
    index_map = index_transform(target, roi_mask.affine)
    return resample_axis_aligned(roi_mask, index_map, shape, mode="nearest", out_affine=target)


def paste_back_region(
    roi_mask: MetaTensor, original_shape: Sequence[int], original_affine: np.ndarray | torch.Tensor
) -> tuple[tuple[slice, ...], np.ndarray]:
    """:func:`paste_back` as the box of the original grid that the ROI covers and the mask there: ``(box, block)``,
    the original grid being 0 elsewhere. It costs the ROI's box, not the original grid.

    Args:
        roi_mask: channel-first ROI mask ``(1, X, Y, Z)`` whose ``affine`` is the ROI affine (uint8 or bool).
        original_shape: spatial shape ``(I, J, K)`` of the original image.
        original_affine: 4x4 affine of the original image.

    Returns:
        The box (slices of the original grid) and the mask on it, ``(I', J', K')`` in the ROI mask's dtype.
    """
    shape = tuple(int(s) for s in original_shape)[-3:]
    index_map = index_transform(as_affine(original_affine), roi_mask.affine)
    box, block = resample_block(roi_mask.as_tensor(), index_map, shape, mode="nearest")
    return box, block[0].numpy()
