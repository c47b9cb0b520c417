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
"""Click-prompted inference on a whole image: windows around the clicks, followed while the object continues."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.inferers import Inferer
from scipy.ndimage import distance_transform_edt
from scipy.ndimage import label as connected_components

from .pasteback import paste_back
from .preprocessing import ROI_SIZE, TARGET_SPACING
from .prompts import ObjectPrompt
from .windows import PreparedImage, Window

__all__ = ["ClickWindowInferer", "segment_object"]

logger = logging.getLogger(__name__)


def _touched_faces(roi_mask: np.ndarray, window: Window, grid_shape: Sequence[int]) -> list[tuple[int, int]]:
    """``(axis, +1/-1)`` for every face of the window that the mask reaches and behind which the image goes on."""
    faces = []
    for axis in range(3):
        size = roi_mask.shape[axis]
        if window.start[axis] > 0 and np.take(roi_mask, 0, axis=axis).any():
            faces.append((axis, -1))
        if window.start[axis] + size < grid_shape[axis] and np.take(roi_mask, size - 1, axis=axis).any():
            faces.append((axis, 1))
    return faces


def _seed_click(mask: np.ndarray, start: Sequence[int], size: Sequence[int]) -> np.ndarray | None:
    """The voxel of ``mask`` (RAS grid) deepest inside the window at ``start``, or ``None`` if none is there."""
    lo = [max(0, s) for s in start]
    hi = [min(n, s + t) for s, t, n in zip(start, size, mask.shape)]
    part = mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    if not part.any():
        return None
    depth = distance_transform_edt(np.pad(part, 1))[1:-1, 1:-1, 1:-1]
    return np.asarray(np.unravel_index(int(depth.argmax()), part.shape)) + np.asarray(lo)


def _connected_part(roi_mask: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """The 26-connected components of ``roi_mask`` that hold a voxel of ``seeds`` (both bool, window grid)."""
    components, _ = connected_components(roi_mask, structure=np.ones((3, 3, 3), dtype=bool))
    kept = np.unique(components[seeds & roi_mask])
    return np.isin(components, kept[kept > 0])


def _points_mask(points: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """A bool grid of ``shape`` that is True at the voxels nearest to ``points`` (window indices, clipped)."""
    grid = np.zeros(shape, dtype=bool)
    if len(points):
        voxels = np.clip(np.round(points).astype(int), 0, np.asarray(shape) - 1)
        grid[tuple(voxels.T)] = True
    return grid


def _window_part(mask: np.ndarray, start: Sequence[int], size: Sequence[int]) -> np.ndarray:
    """The window at ``start`` cut from a RAS-grid mask (False outside the grid)."""
    part = np.zeros(tuple(size), dtype=bool)
    lo = [max(0, s) for s in start]
    hi = [min(n, s + t) for s, t, n in zip(start, size, mask.shape)]
    dst = tuple(slice(a - s, b - s) for a, b, s in zip(lo, hi, start))
    part[dst] = mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    return part


def _add_window_mask(mask: np.ndarray, roi_mask: np.ndarray, start: Sequence[int]) -> None:
    """OR a window's mask into the RAS-grid mask (the part of the window inside the grid)."""
    lo = [max(0, s) for s in start]
    hi = [min(n, s + t) for s, t, n in zip(start, roi_mask.shape, mask.shape)]
    src = tuple(slice(a - s, b - s) for a, b, s in zip(lo, hi, start))
    mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] |= roi_mask[src]


def segment_object(prepared: PreparedImage, prompt: ObjectPrompt, max_windows: int = 1) -> tuple[np.ndarray, int]:
    """Segment one object; returns its mask on the RAS grid of ``prepared`` and the number of windows used.

    The first window is centred on the object's positive clicks, whose clicks are replayed one at a time (all
    clicks so far plus the previous low-resolution logits, as the reference does); its mask is kept as it is. The
    object is then followed by its connected part only (the components holding a positive click): while that part
    reaches a face of its window and the image continues behind it, a window shifted by half its size across that
    face is added (up to ``max_windows``), prompted with the deepest voxel of the object so far inside it (positive)
    and the user's clicks that fall in it; of that window's mask, the components that continue the object (touch it
    or a positive click) are added. So a stray blob at a window's edge neither opens windows nor grows there.

    Args:
        prepared: the image, resampled and reoriented once.
        prompt: the object's clicks in original voxel indices.
        max_windows: window budget of the object; 1 is the reference's single window.
    """
    ras_points = prepared.to_ras(prompt.points)
    window = prepared.window(prepared.window_start_around(ras_points[prompt.point_labels == 1]))
    roi_points, inside = prepared.to_window(ras_points, window)
    if not inside.all():
        raise ValueError(
            f"object '{prompt.name}': its clicks span more than one {prepared.roi_size} window; click within "
            "one window (the object is then followed across windows) or segment the parts as separate objects."
        )
    low_res = None
    for n in range(1, len(roi_points) + 1):
        low_res = prepared.decode(window, roi_points[:n], prompt.point_labels[:n], low_res)
    size = prepared.roi_size
    mask = np.zeros(prepared.ras.shape[1:], dtype=bool)  # what is returned
    followed = np.zeros_like(mask)  # the object's connected part, which decides where to go on
    first = prepared.mask(low_res)
    _add_window_mask(mask, first, window.start)
    if max_windows == 1:
        return mask, 1
    queue = deque([(window, _connected_part(first, _points_mask(roi_points[prompt.point_labels == 1], size)))])
    visited = {window.start}
    while queue:
        window, part = queue.popleft()
        _add_window_mask(followed, part, window.start)
        for axis, side in _touched_faces(part, window, mask.shape):
            start = list(window.start)
            start[axis] += side * size[axis] // 2
            if tuple(start) in visited or len(visited) >= max_windows:
                continue
            seed = _seed_click(followed, start, size)
            if seed is None:
                continue
            visited.add(tuple(start))
            next_window = prepared.window(tuple(start))
            user_points, user_inside = prepared.to_window(ras_points, next_window)
            points = np.concatenate([seed[None] - np.asarray(start), user_points[user_inside]])
            labels = np.concatenate([[1], prompt.point_labels[user_inside]])
            roi_mask = prepared.mask(prepared.decode(next_window, points, labels, None))
            seeds = _window_part(followed, start, size) | _points_mask(points[labels == 1], size)
            next_part = _connected_part(roi_mask, seeds)
            _add_window_mask(mask, next_part, start)
            queue.append((next_window, next_part))
    return mask, len(visited)


class ClickWindowInferer(Inferer):
    """Segments the prompted objects of one image and returns their label map on the original grid.

    The path of a request: resample to ``spacing`` (corner-aligned grid) and reorder to RAS once -> per object
    :func:`segment_object` (windows encoded once and shared by all objects) -> paste-back of each object's mask
    onto the original grid. Later objects overwrite earlier ones where they overlap.

    Args:
        spacing: voxel size (mm) of the network input.
        roi_size: window size (the network input size).
        max_windows: windows per object when following an object beyond its first window (1: the reference).
        amp: run the network under CUDA autocast (float16) on CUDA devices.
        interpolation: ``"bilinear"`` (the reference's image resampling) or ``"nearest"`` (how the reference
            resamples labels; tests use it to feed a label through the exact image geometry).
    """

    def __init__(
        self,
        spacing: Sequence[float] = TARGET_SPACING,
        roi_size: Sequence[int] = ROI_SIZE,
        max_windows: int = 8,
        amp: bool = False,
        interpolation: str = "bilinear",
    ) -> None:
        super().__init__()
        if max_windows < 1:
            raise ValueError(f"max_windows must be at least 1, got {max_windows}.")
        self.spacing = tuple(float(s) for s in spacing)
        self.roi_size = tuple(int(s) for s in roi_size)
        self.max_windows = max_windows
        self.amp = amp
        self.interpolation = interpolation

    def prepare(self, image: MetaTensor, network: torch.nn.Module) -> PreparedImage:
        """The image resampled and reoriented once, with its window cache (also the start of a session).

        Args:
            image: the original image ``(1, I, J, K)``.
            network: the SAM-Med3D network.
        """
        return PreparedImage(image, network, self.spacing, self.roi_size, self.interpolation, self.amp)

    def __call__(  # type: ignore[override]
        self, inputs: MetaTensor, network: torch.nn.Module, objects: Sequence[ObjectPrompt]
    ) -> MetaTensor:
        """Label map of ``objects`` on the grid of ``inputs``.

        Args:
            inputs: the original image, channel-first ``(1, I, J, K)`` with its affine.
            network: a ``SAMMed3D`` (``encode``, ``decode``, ``upsample``).
            objects: validated prompts (see ``prompts.parse_request_prompts``).

        Returns:
            ``(1, I, J, K)`` uint8 label map with the image's affine and metadata.
        """
        prepared = self.prepare(inputs, network)
        label_map = torch.zeros(inputs.shape, dtype=torch.uint8)
        for prompt in objects:
            mask, windows = segment_object(prepared, prompt, self.max_windows)
            ras_mask = MetaTensor(torch.from_numpy(mask.astype(np.uint8))[None], affine=prepared.ras.affine)
            pasted = paste_back(ras_mask, inputs.shape[1:], inputs.affine).as_tensor()
            label_map[pasted > 0] = prompt.label
            logger.info(f"object '{prompt.name}': {int(pasted.sum())} voxels from {windows} window(s)")
        logger.info(f"segmented {len(objects)} object(s) with {prepared.num_encoded} encoder pass(es)")
        meta = {k: v for k, v in inputs.meta.items() if k != "affine"}  # the affine is set explicitly
        return MetaTensor(label_map, affine=inputs.affine, meta=meta)
