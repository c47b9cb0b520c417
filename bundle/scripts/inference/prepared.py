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
"""One image prepared for SAM-Med3D: its 1.5 mm RAS grid as geometry, its 128^3 windows sampled, encoded and cached on
first use."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from monai.data import MetaTensor

from ..geometry import ROI_SIZE, TARGET_SPACING, index_transform, map_points, z_normalize
from ..geometry.grid import translation
from ..geometry.pasteback import paste_back_region
from ..geometry.ras_grid import RasGrid
from ..geometry.resample import reorient_to_ras, resample_to_spacing
from ..geometry.window import bounding_box

__all__ = ["GridMask", "PreparedImage", "Window"]

Start = tuple[int, int, int]


@dataclass(frozen=True)
class Window:
    """A ``roi_size`` window of the RAS grid with its image embedding.

    Args:
        start: first voxel of the window in the RAS grid (may be negative: the window is zero padded).
        affine: the ROI affine (window voxel indices to RAS mm).
        embedding: the network's image embedding of the z-normalised window.
    """

    start: Start
    affine: torch.Tensor
    embedding: torch.Tensor


class PreparedImage:
    """The reference preprocessing of one image, done where it is needed, with every encoded window cached.

    The RAS grid (1.5 mm, axes reordered to RAS) is geometry (:class:`RasGrid`); a window's input is sampled from the
    original image when the window is first encoded, exactly as the reference's whole-image resampling would give it.
    Points come in as voxel indices of the original image (``to_ras``); masks go back onto it (``paste``).

    Args:
        image: the original image, channel-first ``(1, I, J, K)`` with its affine.
        network: a ``SAMMed3D`` (``encode``, ``decode``, ``upsample``).
        spacing: voxel size (mm) of the network input.
        roi_size: window size.
        interpolation: image resampling, ``"bilinear"`` (the reference) or ``"nearest"``.
        amp: CUDA autocast for the network.
    """

    def __init__(
        self,
        image: MetaTensor,
        network: torch.nn.Module,
        spacing: Sequence[float] = TARGET_SPACING,
        roi_size: Sequence[int] = ROI_SIZE,
        interpolation: str = "bilinear",
        amp: bool = False,
    ) -> None:
        if image.ndim != 4 or image.shape[0] != 1:
            raise ValueError(f"expected a one-channel 3-D image (1, I, J, K), got shape {tuple(image.shape)}.")
        self.image = image
        self.network = network
        self.spacing = tuple(float(s) for s in spacing)
        self.roi_size: Start = tuple(int(s) for s in roi_size)  # type: ignore[assignment]
        self.interpolation = interpolation
        self.device = next(network.parameters()).device
        self.amp = amp and self.device.type == "cuda"
        self.grid = RasGrid(image.shape[1:], image.affine, spacing)
        self._to_ras = index_transform(image.affine, self.grid.affine)
        self._windows: dict[Start, Window] = {}
        self._ras: MetaTensor | None = None
        self.pasted_voxels = 0  # original voxels computed by paste(), for tests and benchmarks

    @property
    def grid_shape(self) -> Start:
        """Spatial shape of the RAS grid."""
        return self.grid.shape

    @property
    def ras(self) -> MetaTensor:
        """The whole image on the RAS grid (computed on first use: automatic mode slides over all of it)."""
        if self._ras is None:
            self._ras = reorient_to_ras(resample_to_spacing(self.image, self.spacing, mode=self.interpolation))
        return self._ras

    @property
    def num_encoded(self) -> int:
        """How many distinct windows went through the encoder."""
        return len(self._windows)

    @property
    def embeddings(self) -> list[torch.Tensor]:
        """The cached windows' image embeddings."""
        return [w.embedding for w in self._windows.values()]

    def to_ras(self, points: np.ndarray) -> np.ndarray:
        """Continuous RAS-grid coordinates of original voxel indices ``(N, 3)`` (or ``(3,)``)."""
        return map_points(points, self._to_ras)

    def grid_mask(self, mask: np.ndarray | torch.Tensor) -> GridMask:
        """A mask on the original grid ``(I, J, K)`` as the RAS grid sees it (nearest neighbour, as the reference
        resamples labels), sampled where it is needed.

        Args:
            mask: bool or 0/1 mask on the image's own grid.
        """
        return GridMask(self, mask)

    def window(self, start: Sequence[int]) -> Window:
        """The window at ``start``, sampled and encoded on first use."""
        start = tuple(int(s) for s in start)  # type: ignore[assignment]
        if start not in self._windows:
            voxels = self.grid.sample(self.image.as_tensor(), start, self.roi_size, self.interpolation)
            image = z_normalize(voxels)
            with torch.no_grad(), self.autocast():
                embedding = self.network.encode(image.as_tensor()[None].to(self.device))
            affine = torch.as_tensor(self.grid.affine @ translation(start), dtype=torch.float64)
            self._windows[start] = Window(start, affine, embedding)
        return self._windows[start]

    def decode(
        self,
        window: Window,
        roi_points: np.ndarray,
        labels: np.ndarray,
        low_res: torch.Tensor | None,
        class_id: int | None = None,
        box: np.ndarray | None = None,
    ) -> tuple[torch.Tensor, float]:
        """One decoder call: the window's clicks so far and its previous low-resolution logits (``None`` at first).

        Args:
            window: the encoded window.
            roi_points: ``(N, 3)`` ROI voxel indices.
            labels: ``(N,)`` 1 positive, 0 negative.
            low_res: the window's previous logits, or ``None``.
            class_id: a class prompt, or ``None``.
            box: ``(6,)`` two corners in ROI voxel indices (networks with box embeddings), or ``None``.

        Returns:
            The low-resolution logits ``(1, 1, 32, 32, 32)`` and the decoder's predicted IoU of the mask.
        """
        points = torch.as_tensor(np.asarray(roi_points).reshape(-1, 3), dtype=torch.float32, device=self.device)[None]
        point_labels = torch.as_tensor(np.asarray(labels).reshape(-1), dtype=torch.long, device=self.device)[None]
        extra = {} if class_id is None else {"class_ids": torch.as_tensor([int(class_id)], device=self.device)}
        if box is not None:
            extra["boxes"] = torch.as_tensor(np.asarray(box).reshape(1, 6), dtype=torch.float32, device=self.device)
        if low_res is not None:
            low_res = low_res.to(self.device)
        with torch.no_grad(), self.autocast():
            low_res, iou = self.network.decode(window.embedding, points, point_labels, low_res, **extra)
        return low_res, float(iou.flatten()[0]) if iou is not None else float("nan")

    def mask(self, low_res: torch.Tensor) -> np.ndarray:
        """The binary ``roi_size`` mask of low-resolution logits (trilinear upsampling, logit > 0)."""
        with torch.no_grad():
            logits = self.network.upsample(low_res.float())
        return (logits[0, 0] > 0).cpu().numpy()

    def paste(self, region: np.ndarray, lo: Sequence[int]) -> tuple[tuple[slice, ...], np.ndarray]:
        """A RAS-grid mask given on the box ``[lo, lo + region.shape)`` (empty elsewhere) on the original grid (nearest
        neighbour, the reference's paste-back): the box of the original grid it covers and the mask there (bool);
        the mask is empty elsewhere. Only that box is computed: a mask on a large image costs its region.

        Args:
            region: bool mask on the box.
            lo: the box's first voxel on the RAS grid.
        """
        if region.size == 0 or not region.any():
            return (slice(0, 0),) * 3, np.zeros((0, 0, 0), dtype=bool)
        data = np.ascontiguousarray(region).view(np.uint8) if region.dtype == bool else region
        roi = MetaTensor(torch.from_numpy(data)[None], affine=self.grid.affine @ translation(lo))
        box, block = paste_back_region(roi, self.image.shape[1:], self.image.affine)
        self.pasted_voxels += int(block.size)
        return box, block.view(bool)  # nearest-neighbour sampling keeps 0 and 1: the bytes are the boolean mask

    def autocast(self):
        """CUDA autocast when enabled, else nothing."""
        return torch.autocast("cuda") if self.amp else nullcontext()


class GridMask:
    """A mask on the original grid seen on the RAS grid, sampled box by box where the track needs it (a window's
    mask prompt, the object's region), each box as the whole-grid nearest-neighbour resampling would give it.

    Args:
        prepared: the image.
        mask: bool or 0/1 ``(I, J, K)`` mask on the image's own grid.
    """

    def __init__(self, prepared: PreparedImage, mask: np.ndarray | torch.Tensor) -> None:
        data = np.asarray(mask)
        if tuple(data.shape) != tuple(prepared.image.shape[1:]):
            raise ValueError(
                f"the mask has shape {tuple(data.shape)}, the image {tuple(prepared.image.shape[1:])}: give a mask on "
                "the image's own grid."
            )
        self.prepared = prepared
        inside = np.ascontiguousarray(data != 0)
        self.voxels = torch.from_numpy(inside.view(np.uint8))[None]
        self._windows: dict[Start, np.ndarray] = {}
        self.bounds = self._bounds(inside)

    def _bounds(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A box of the RAS grid outside which the mask is empty there (its bounding box mapped, one voxel wider)."""
        found = bounding_box(mask)
        if found is None:
            return np.zeros(3, dtype=int), np.zeros(3, dtype=int)
        edges = [[first - 0.5, stop - 0.5] for first, stop in zip(*found)]  # the outer faces of the box's voxels
        corners = np.array(np.meshgrid(*edges, indexing="ij")).reshape(3, -1).T
        ras = self.prepared.to_ras(corners)
        lo = np.maximum(np.floor(ras.min(axis=0)).astype(int) - 1, 0)
        hi = np.minimum(np.ceil(ras.max(axis=0)).astype(int) + 2, self.prepared.grid_shape)
        return lo, np.maximum(hi, lo)

    def box(self, lo: Sequence[int], hi: Sequence[int]) -> np.ndarray:
        """The mask on the RAS-grid box ``[lo, hi)`` (bool; False where the box leaves the grid)."""
        size = [int(b) - int(a) for a, b in zip(lo, hi)]
        if any(s <= 0 for s in size):
            return np.zeros([max(s, 0) for s in size], dtype=bool)
        meets = all(int(a) < int(d) and int(c) < int(b) for a, b, c, d in zip(lo, hi, *self.bounds))
        if not meets:  # nothing of the mask there: no sampling
            return np.zeros(size, dtype=bool)
        return self.prepared.grid.sample(self.voxels, lo, size, "nearest")[0].numpy().view(bool)

    def window(self, start: Sequence[int]) -> np.ndarray:
        """The mask on the window at ``start`` (bool, window grid; cached)."""
        start = tuple(int(s) for s in start)  # type: ignore[assignment]
        if start not in self._windows:
            roi = self.prepared.roi_size
            self._windows[start] = self.box(start, [s + r for s, r in zip(start, roi)])
        return self._windows[start]
