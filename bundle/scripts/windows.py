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
"""One image prepared for SAM-Med3D: resampled and in RAS order once, 128^3 windows encoded once and cached."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import numpy as np
import torch
from monai.data import MetaTensor

from .pasteback import paste_back
from .preprocessing import (
    ROI_SIZE,
    TARGET_SPACING,
    extract_window,
    index_transform,
    map_points,
    nearest_voxel,
    reorient_to_ras,
    resample_to_spacing,
    window_start,
    z_normalize,
)

__all__ = ["PreparedImage", "Window"]

Start = tuple[int, int, int]


class Window:
    """A ``roi_size`` window of the RAS grid with its network input and image embedding.

    Args:
        start: first voxel of the window in the RAS grid (may be negative: the window is zero padded).
        image: the z-normalised window ``(1, *roi_size)`` with its affine (the ROI affine).
        embedding: the network's image embedding of it.
    """

    def __init__(self, start: Start, image: MetaTensor, embedding: torch.Tensor) -> None:
        self.start = start
        self.image = image
        self.embedding = embedding

    @property
    def affine(self) -> torch.Tensor:
        """The ROI affine (voxel indices of the window to RAS mm)."""
        return self.image.affine


class PreparedImage:
    """The reference preprocessing of one image, done once, with every encoded window cached.

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
        self.roi_size = tuple(int(s) for s in roi_size)
        self.device = next(network.parameters()).device
        self.amp = amp and self.device.type == "cuda"
        self.ras = reorient_to_ras(resample_to_spacing(image, spacing, mode=interpolation))
        self._to_ras = index_transform(image.affine, self.ras.affine)
        self._windows: dict[Start, Window] = {}

    @property
    def num_encoded(self) -> int:
        """How many distinct windows went through the encoder."""
        return len(self._windows)

    def to_ras(self, points: np.ndarray) -> np.ndarray:
        """Continuous RAS-grid coordinates of original voxel indices ``(N, 3)``."""
        return map_points(points, self._to_ras)

    def window_start_around(self, ras_points: np.ndarray) -> Start:
        """The window centred on the bounding box of RAS-grid points (a single click lands at ROI index 64)."""
        return window_start((ras_points.min(axis=0) + ras_points.max(axis=0)) / 2, self.roi_size)

    def window(self, start: Start) -> Window:
        """The window at ``start``, encoded on first use."""
        if start not in self._windows:
            image = z_normalize(extract_window(self.ras, start, self.roi_size))
            with torch.no_grad(), self.autocast():
                embedding = self.network.encode(image.as_tensor()[None].to(self.device))
            self._windows[start] = Window(start, image, embedding)
        return self._windows[start]

    def to_window(self, ras_points: np.ndarray, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """ROI voxel indices of RAS-grid points, and which of them fall inside the window."""
        roi = nearest_voxel(ras_points - np.asarray(window.start, dtype=np.float64))
        inside = ((roi >= 0) & (roi < np.asarray(self.roi_size))).all(axis=1)
        return roi, inside

    def decode(
        self, window: Window, roi_points: np.ndarray, labels: np.ndarray, low_res: torch.Tensor | None
    ) -> torch.Tensor:
        """One decoder call: all clicks so far and the previous low-resolution logits (``None`` at first)."""
        points = torch.as_tensor(roi_points, dtype=torch.float32, device=self.device)[None]
        point_labels = torch.as_tensor(labels, dtype=torch.long, device=self.device)[None]
        with torch.no_grad(), self.autocast():
            low_res, _ = self.network.decode(window.embedding, points, point_labels, low_res)
        return low_res

    def mask(self, low_res: torch.Tensor) -> np.ndarray:
        """The binary ``roi_size`` mask of low-resolution logits (trilinear upsampling, logit > 0)."""
        with torch.no_grad():
            logits = self.network.upsample(low_res.float())
        return (logits[0, 0] > 0).cpu().numpy()

    def paste(self, roi_mask: np.ndarray, window: Window) -> torch.Tensor:
        """A window's binary mask on the original grid, ``(I, J, K)`` uint8 0/1 (0 outside the window).

        Nearest-neighbour sampling keeps the values 0 and 1, so ``.numpy().view(bool)`` is the boolean mask without
        another pass over the image.
        """
        roi = MetaTensor(torch.as_tensor(roi_mask, dtype=torch.uint8)[None], affine=window.affine)
        return paste_back(roi, self.image.shape[1:], self.image.affine).as_tensor()[0]

    def autocast(self):
        """CUDA autocast when enabled, else nothing."""
        return torch.autocast("cuda") if self.amp else nullcontext()
