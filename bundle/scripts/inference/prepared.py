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
"""One image prepared for SAM-Med3D: resampled and in RAS order once, its 128^3 windows encoded once and cached."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from monai.data import MetaTensor

from ..geometry import (
    ROI_SIZE,
    TARGET_SPACING,
    extract_window,
    index_transform,
    map_points,
    nearest_voxel,
    paste_back,
    reorient_to_ras,
    resample_to_spacing,
    z_normalize,
)
from ..geometry.grid import translation
from ..geometry.window import grid_part

__all__ = ["PreparedImage", "Window"]

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
    """The reference preprocessing of one image, done once, with every encoded window cached.

    Everything after it works on the RAS grid (``ras``, 1.5 mm, axes reordered to RAS) and its windows; points
    come in as voxel indices of the original image (``to_ras``) and masks go back onto it (``paste_region``).

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
        self.roi_size = tuple(int(s) for s in roi_size)
        self.device = next(network.parameters()).device
        self.amp = amp and self.device.type == "cuda"
        self.ras = reorient_to_ras(resample_to_spacing(image, spacing, mode=interpolation))
        self._to_ras = index_transform(image.affine, self.ras.affine)
        self._windows: dict[Start, Window] = {}

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        """Spatial shape of the RAS grid."""
        return tuple(int(s) for s in self.ras.shape[1:])  # type: ignore[return-value]

    @property
    def num_encoded(self) -> int:
        """How many distinct windows went through the encoder."""
        return len(self._windows)

    def to_ras(self, points: np.ndarray) -> np.ndarray:
        """Continuous RAS-grid coordinates of original voxel indices ``(N, 3)`` (or ``(3,)``)."""
        return map_points(points, self._to_ras)

    def mask_to_ras(self, mask: np.ndarray | torch.Tensor) -> np.ndarray:
        """A mask on the original grid ``(I, J, K)`` on the RAS grid (nearest neighbour, as the reference resamples
        labels), bool."""
        data = torch.as_tensor(np.asarray(mask, dtype=np.uint8))
        if tuple(data.shape) != tuple(self.image.shape[1:]):
            raise ValueError(
                f"the mask has shape {tuple(data.shape)}, the image {tuple(self.image.shape[1:])}: give a mask on the "
                "image's own grid."
            )
        ras = reorient_to_ras(
            resample_to_spacing(MetaTensor(data[None], affine=self.image.affine), self.spacing, mode="nearest")
        )
        return ras.as_tensor()[0].numpy() > 0

    def window(self, start: Start) -> Window:
        """The window at ``start``, encoded on first use."""
        start = tuple(int(s) for s in start)  # type: ignore[assignment]
        if start not in self._windows:
            image = z_normalize(extract_window(self.ras, start, self.roi_size))
            with torch.no_grad(), self.autocast():
                embedding = self.network.encode(image.as_tensor()[None].to(self.device))
            self._windows[start] = Window(start, image.affine, embedding)
        return self._windows[start]

    def roi_points(self, ras_points: np.ndarray, start: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """ROI voxel indices of RAS-grid points for the window at ``start``, and which of them fall inside it."""
        roi = nearest_voxel(
            np.asarray(ras_points, dtype=np.float64).reshape(-1, 3) - np.asarray(start, dtype=np.float64)
        )
        inside = ((roi >= 0) & (roi < np.asarray(self.roi_size))).all(axis=1)
        return roi, inside

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

    def paste_region(self, ras_mask: np.ndarray, lo: Sequence[int], hi: Sequence[int]) -> np.ndarray:
        """A RAS-grid mask that is empty outside the box ``[lo, hi)`` on the original grid, bool ``(I, J, K)``.

        Only the box is resampled (nearest neighbour, the reference's paste-back), so a mask on a large image costs
        its region, not the image.
        """
        lo = [max(0, int(v)) for v in lo]
        hi = [min(n, int(v)) for v, n in zip(hi, ras_mask.shape)]
        if any(b <= a for a, b in zip(lo, hi)):
            return np.zeros(self.image.shape[1:], dtype=bool)
        crop = ras_mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        affine = self.ras.affine.numpy() @ translation(lo)
        roi = MetaTensor(torch.from_numpy(crop.astype(np.uint8))[None], affine=affine)
        pasted = paste_back(roi, self.image.shape[1:], self.image.affine).as_tensor()[0]
        # nearest-neighbour sampling keeps the values 0 and 1, so the bytes are the boolean mask
        return pasted.numpy().view(bool)

    def window_part(self, grid_mask: np.ndarray, start: Sequence[int]) -> np.ndarray:
        """The window at ``start`` cut from a RAS-grid mask (False where the window leaves the grid)."""
        return grid_part(grid_mask, start, self.roi_size)

    def autocast(self):
        """CUDA autocast when enabled, else nothing."""
        return torch.autocast("cuda") if self.amp else nullcontext()
