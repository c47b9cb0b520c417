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
"""An interactive session on one image, for viewers and notebooks: click, undo, reset; masks in the original space."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import LoadImage

from .inferer import ClickWindowInferer
from .prompts import parse_request_prompts
from .windows import Window

__all__ = ["InteractiveSession"]


@dataclass
class _State:
    """What one click leaves behind, so that ``undo`` can go back to it."""

    points: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    window: Window | None = None
    low_res: torch.Tensor | None = None
    mask: np.ndarray | None = None


class InteractiveSession:
    """Interactive segmentation of one object at a time on one image.

    The image is resampled and reordered once; each window is encoded once and cached, so a further click in the
    same window costs one decoder call (all clicks so far plus the previous low-resolution logits). A positive
    click outside the current window moves the window onto the positive clicks and replays them there.

    Args:
        network: a ``SAMMed3D`` with its weights.
        image: a path readable by MONAI's ``LoadImage``, or a channel-first ``(1, I, J, K)`` MetaTensor.
        inferer: supplies spacing, window size and autocast (default ``ClickWindowInferer()``).
    """

    def __init__(self, network: torch.nn.Module, image: str | MetaTensor, inferer: ClickWindowInferer | None = None):
        if not isinstance(image, MetaTensor):
            image = LoadImage(image_only=True, ensure_channel_first=True, dtype=None)(str(image))
        self.inferer = inferer or ClickWindowInferer()
        self.prepared = self.inferer.prepare(image, network)
        self._states: list[_State] = [_State()]

    @property
    def image(self) -> MetaTensor:
        """The original image."""
        return self.prepared.image

    @property
    def num_clicks(self) -> int:
        """Clicks on the current object."""
        return len(self._states[-1].points)

    def click(self, point, positive: bool = True) -> np.ndarray:
        """Add a click on the current object.

        Args:
            point: voxel indices ``(i, j, k)`` of the original image.
            positive: ``True`` to add the voxel to the object, ``False`` to remove it.

        Returns:
            The object's mask on the original grid (bool, shape ``(I, J, K)``).
        """
        state = self._states[-1]
        points, labels = [*state.points, list(point)], [*state.labels, int(positive)]
        (prompt,) = parse_request_prompts(
            {"points": points, "point_labels": labels}, self.image.shape[1:], self.image.affine
        )
        prepared = self.prepared
        ras_points = prepared.to_ras(prompt.points)
        window, low_res = state.window, state.low_res
        if window is None or not prepared.to_window(ras_points, window)[1].all():
            # First click, or a click outside the window: centre a window on the positive clicks, replay them all.
            window, low_res = prepared.window(prepared.window_start_around(ras_points[prompt.point_labels == 1])), None
            roi_points, inside = prepared.to_window(ras_points, window)
            if not inside.all():
                raise ValueError(
                    f"click {list(point)} is too far from the object's other clicks for one {prepared.roi_size} "
                    "window; undo it or reset and segment the part as another object."
                )
            for n in range(1, len(roi_points)):
                low_res = prepared.decode(window, roi_points[:n], prompt.point_labels[:n], low_res)
        roi_points = prepared.to_window(ras_points, window)[0]
        low_res = prepared.decode(window, roi_points, prompt.point_labels, low_res)
        mask = prepared.paste(prepared.mask(low_res), window).numpy().view(bool)
        self._states.append(_State(points, labels, window, low_res, mask))
        return mask

    def undo(self) -> np.ndarray | None:
        """Remove the last click; returns the mask before it (``None`` when no click is left)."""
        if len(self._states) > 1:
            self._states.pop()
        return self._states[-1].mask

    def reset(self) -> None:
        """Forget the current object's clicks (the encoded windows stay cached)."""
        self._states = [_State()]
