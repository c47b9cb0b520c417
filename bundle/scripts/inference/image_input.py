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
"""What a caller may hand over as an image: a file or DICOM folder, a MetaTensor, or a numpy array with geometry."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import LoadImage

__all__ = ["as_image", "axcodes_affine"]

_WORLD_AXIS = {"R": (0, 1.0), "L": (0, -1.0), "A": (1, 1.0), "P": (1, -1.0), "S": (2, 1.0), "I": (2, -1.0)}


def axcodes_affine(spacing: Sequence[float], axcodes: str = "RAS") -> np.ndarray:
    """The voxel-to-RAS affine of an array whose axes point along ``axcodes`` with ``spacing`` mm (origin 0).

    Args:
        spacing: voxel size along the array's three axes, in the array's axis order.
        axcodes: where each array axis points, e.g. ``"RAS"`` (nibabel's order) or ``"SPL"`` (a SimpleITK
            ``GetArrayFromImage`` array of an LPS image, indexed ``[z, y, x]``).
    """
    codes = str(axcodes).upper()
    if len(codes) != 3 or any(c not in _WORLD_AXIS for c in codes) or len({_WORLD_AXIS[c][0] for c in codes}) != 3:
        raise ValueError(f"axcodes must name three different directions out of R/L, A/P, S/I, got {axcodes!r}.")
    if len(spacing) != 3 or any(float(s) <= 0 for s in spacing):
        raise ValueError(f"spacing must be three positive voxel sizes in mm, got {list(spacing)}.")
    affine = np.eye(4)
    affine[:3, :3] = 0.0
    for axis, (code, size) in enumerate(zip(codes, spacing)):
        world, sign = _WORLD_AXIS[code]
        affine[world, axis] = sign * float(size)
    return affine


def as_image(
    image: str | os.PathLike | MetaTensor | np.ndarray | torch.Tensor,
    affine: np.ndarray | torch.Tensor | None = None,
    spacing: Sequence[float] | None = None,
    axcodes: str = "RAS",
) -> MetaTensor:
    """A channel-first ``(1, I, J, K)`` MetaTensor with its voxel-to-RAS affine, from what a caller has.

    Args:
        image: a path readable by MONAI's ``LoadImage`` (NIfTI, NRRD, MHA, a DICOM series folder), a MetaTensor
            ``(1, I, J, K)`` or ``(I, J, K)`` carrying its affine, or an array ``(I, J, K)`` with ``affine`` or
            ``spacing``.
        affine: 4x4 voxel-to-RAS (mm) affine of an array.
        spacing: voxel size of an array along its axes (instead of ``affine``), with ``axcodes``.
        axcodes: directions of an array's axes when ``spacing`` is given (default ``"RAS"``).
    """
    if isinstance(image, (str, os.PathLike)):
        if affine is not None or spacing is not None:
            raise ValueError("a file carries its own geometry: give affine or spacing only with an array.")
        return LoadImage(image_only=True, ensure_channel_first=True, dtype=None)(str(image))
    if isinstance(image, MetaTensor) and affine is None and spacing is None:
        data, matrix = image.as_tensor(), image.affine
    else:
        if (affine is None) == (spacing is None):
            raise ValueError("an array needs its geometry: give either affine (4x4, voxel to RAS mm) or spacing.")
        data = torch.as_tensor(np.asarray(image)) if not isinstance(image, torch.Tensor) else image
        matrix = torch.as_tensor(
            np.asarray(affine, dtype=np.float64) if affine is not None else axcodes_affine(spacing, axcodes)
        )
    if data.ndim == 3:
        data = data[None]
    if data.ndim != 4 or data.shape[0] != 1:
        raise ValueError(f"expected a 3-D image (I, J, K) or (1, I, J, K), got shape {tuple(data.shape)}.")
    if tuple(matrix.shape) != (4, 4):
        raise ValueError(f"expected a 4x4 affine, got shape {tuple(matrix.shape)}.")
    meta = dict(image.meta) if isinstance(image, MetaTensor) else {}
    meta.pop("affine", None)
    return MetaTensor(data, affine=matrix.to(torch.float64), meta=meta)
