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
"""The reference's 1.5 mm RAS grid of an image as geometry, and any box of it sampled from the original image.

The reference resamples the whole image to 1.5 mm (:func:`resample_to_spacing`) and reorders it to RAS
(:func:`reorient_to_ras`) before it cuts a window. :class:`RasGrid` holds that grid's shape and affine without
touching a voxel, and :meth:`RasGrid.sample` computes a box of it (a window, a mask's region) straight from the
original voxels: the same positions, the same voxels read, the same arithmetic in the same order, so the values are
those of the whole-image path bit for bit (checked by the source repository's tests), and a click costs its window,
not the image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import nibabel as nib
import numpy as np
import torch

from .grid import as_affine
from .resample import (
    _RAS_LABELS,
    TARGET_SPACING,
    axis_sampling,
    cast_back,
    corner_aligned_grid,
    sample_along,
    valid_range,
)

__all__ = ["GridAxis", "RasGrid"]


@dataclass(frozen=True)
class GridAxis:
    """How one axis of the RAS grid reads the original image.

    Args:
        source: the original (and resampled) axis it reads.
        size: voxels of the RAS grid along it.
        flip: RAS index ``m`` is resampled index ``size - 1 - m``.
        scale: resampled index ``k`` sits at original position ``k * scale + offset``.
        offset: see ``scale``.
        source_size: original voxels along ``source``.
    """

    source: int
    size: int
    flip: bool
    scale: float
    offset: float
    source_size: int

    def positions(self, first: int, count: int) -> tuple[slice, torch.Tensor]:
        """Original positions of RAS indices ``first .. first + count - 1`` that have a value, and where they are.

        Returns:
            The slice of ``0 .. count - 1`` whose RAS indices lie on the grid and read the image, and their float64
            positions, computed as the whole-image resampling computes them (``k * scale + offset``).
        """
        lo, hi = max(first, 0), min(first + count, self.size)
        if hi <= lo:
            return slice(0, 0), torch.zeros(0, dtype=torch.float64)
        ras = torch.arange(lo, hi, dtype=torch.int64)
        resampled = (self.size - 1 - ras) if self.flip else ras
        positions = resampled.to(torch.float64) * self.scale + self.offset
        a, b = valid_range(positions, self.source_size)  # positions are monotone: the inside ones are contiguous
        return slice(lo - first + a, lo - first + b), positions[a:b]


class RasGrid:
    """The grid ``reorient_to_ras(resample_to_spacing(image, spacing))`` would have, and boxes of it on demand.

    Args:
        shape: spatial shape ``(I, J, K)`` of the original image.
        affine: its 4x4 voxel-to-RAS matrix.
        spacing: voxel size (mm) of the grid.
    """

    def __init__(
        self, shape: Sequence[int], affine: np.ndarray | torch.Tensor, spacing: Sequence[float] = TARGET_SPACING
    ) -> None:
        original = as_affine(affine)
        resampled_shape, index_map = corner_aligned_grid(shape, original, spacing)
        resampled = original @ index_map  # as resample_axis_aligned makes it
        # MONAI's Orientation(axcodes="RAS"): the same orientation transform, the same matrix product
        source = nib.io_orientation(resampled)
        target = nib.orientations.axcodes2ornt("RAS", labels=_RAS_LABELS)
        ornt = nib.orientations.ornt_transform(source, target)
        self.affine = resampled @ nib.orientations.inv_ornt_aff(ornt, resampled_shape)
        order = np.argsort(ornt[:, 0])  # RAS axis a reads resampled axis order[a]
        self.axes = tuple(
            GridAxis(
                source=int(p),
                size=int(resampled_shape[p]),
                flip=bool(ornt[p, 1] == -1),
                scale=float(index_map[p, p]),
                offset=float(index_map[p, 3]),
                source_size=int(shape[p]),
            )
            for p in order
        )
        self.shape: tuple[int, int, int] = tuple(axis.size for axis in self.axes)  # type: ignore[assignment]
        self.original_shape = tuple(int(s) for s in shape)
        self.sampled_voxels = 0  # grid voxels computed by sample(), for tests and benchmarks

    def sample(self, image: torch.Tensor, start: Sequence[int], size: Sequence[int], mode: str) -> torch.Tensor:
        """The box ``[start, start + size)`` of the RAS grid, computed from the original voxels; 0 where it leaves
        the grid (equal to ``extract_window(reorient_to_ras(resample_to_spacing(image, mode=mode)), start, size)``).

        Args:
            image: the original image, channel-first ``(C, I, J, K)`` (a tensor; its geometry is this grid's).
            start: first voxel of the box on the grid (may be negative).
            size: the box's size.
            mode: ``"bilinear"`` (images) or ``"nearest"`` (masks).

        Returns:
            ``(C, *size)`` in the image's dtype, contiguous.
        """
        kind = "nearest" if mode == "nearest" else "bilinear"
        data = torch.as_tensor(image)
        out = torch.zeros((data.shape[0], *(int(s) for s in size)), dtype=data.dtype)
        by_source: dict[int, tuple] = {}
        where = []
        for axis, first, count in zip(self.axes, start, size):
            place, positions = axis.positions(int(first), int(count))
            if positions.numel() == 0:
                return out
            by_source[axis.source] = axis_sampling(positions, axis.source_size, kind)
            where.append(place)
        # the original voxels read, and the sampling along each original axis in the whole-image path's order
        lows = [int(torch.minimum(by_source[p][0].min(), by_source[p][1].min())) for p in range(3)]
        highs = [int(torch.maximum(by_source[p][0].max(), by_source[p][1].max())) + 1 for p in range(3)]
        block = data[:, lows[0] : highs[0], lows[1] : highs[1], lows[2] : highs[2]]
        for p in range(3):
            lower, upper, weight = by_source[p]
            block = sample_along(block, 1 + p, lower - lows[p], upper - lows[p], weight)
        block = cast_back(block, data.dtype, kind)
        block = block.permute(0, *(1 + axis.source for axis in self.axes))
        out[(slice(None), *where)] = block
        self.sampled_voxels += int(block[0].numel())
        return out
