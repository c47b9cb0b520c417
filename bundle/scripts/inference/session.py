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
"""An interactive session on one image, for viewers and notebooks: box, click, undo, reset; masks on the image's
grid."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from monai.data import MetaTensor

from ..geometry import as_affine
from .image_input import as_image
from .inferer import ClickWindowInferer
from .prepared import GridMask, PreparedImage
from .prompts import parse_box, voxel_points
from .track import ObjectTrack, box_on_grid

__all__ = ["InteractiveSession"]


class InteractiveSession:
    """Interactive segmentation of one object at a time on one image: the command line's path, one click at a time.

    **Voxel order.** Clicks and masks use the image's own voxel order: indices ``(i, j, k)`` of the array as stored
    (a file's ``nibabel`` ``dataobj[i, j, k]``, or your numpy array's ``[i, j, k]``); masks are bool arrays of the
    image's shape. Internally the image is resampled to 1.5 mm (spacing read from the affine's column norms) and its
    axes reordered to RAS; that never shows outside.

    **Same as the command line.** Each object is an ``ObjectTrack`` (see ``inference/track.py``), the path that
    ``inference.json`` feeds a request's clicks through in order, with the same ``max_windows``: the same clicks in
    the same order give, voxel for voxel, the command line's mask. Each window is encoded once and cached for the
    session (also across ``reset`` and objects), so a further click costs one decoder pass per window of the object
    that holds it.

    Args:
        network: a ``SAMMed3D`` with its weights (``scripts.load_network``).
        image: a path readable by MONAI's ``LoadImage`` (NIfTI, NRRD, MHA, DICOM series folder), a MetaTensor
            ``(1, I, J, K)`` or ``(I, J, K)`` with its affine, or a numpy array ``(I, J, K)`` with ``affine`` or
            ``spacing`` (+ ``axcodes``).
        affine: 4x4 voxel-to-RAS (mm) affine of an array.
        spacing: voxel size (mm) of an array along its axes, instead of ``affine``.
        axcodes: the directions of an array's axes with ``spacing``, e.g. ``"RAS"`` (default) or ``"SPL"`` for a
            SimpleITK ``GetArrayFromImage`` array ``[z, y, x]`` of an LPS image.
        max_windows: windows per object (the command line's ``max_windows``); used without ``inferer``.
        inferer: supplies spacing, window size, ``max_windows`` and autocast (default
            ``ClickWindowInferer(max_windows=max_windows)``, as ``inference.json``).
    """

    def __init__(
        self,
        network: torch.nn.Module,
        image: str | os.PathLike | MetaTensor | np.ndarray,
        *,
        affine: np.ndarray | None = None,
        spacing: Sequence[float] | None = None,
        axcodes: str = "RAS",
        max_windows: int = 8,
        inferer: ClickWindowInferer | None = None,
    ) -> None:
        self.inferer = inferer or ClickWindowInferer(max_windows=max_windows)
        self.prepared = self.inferer.prepare(as_image(image, affine, spacing, axcodes), network)
        self.track = self._new_track()

    def _new_track(self, start_mask: GridMask | None = None) -> ObjectTrack:
        return ObjectTrack(
            self.prepared,
            self.inferer.max_windows,
            start_mask=start_mask,
            box_margin_mm=getattr(self.inferer, "box_margin_mm", 10.0),
        )

    @classmethod
    def on_prepared(cls, prepared: PreparedImage, inferer: ClickWindowInferer | None = None) -> InteractiveSession:
        """A session on an image already prepared by ``inferer.prepare``: it shares the image's encoded windows with
        every other session on it (a server's sessions per client and label on one cached image).

        Args:
            prepared: the image, prepared once (``ClickWindowInferer.prepare``).
            inferer: the inferer that prepared it (supplies ``max_windows``; default ``ClickWindowInferer()``).
        """
        session = cls.__new__(cls)
        session.inferer = inferer or ClickWindowInferer()
        session.prepared = prepared
        session.track = session._new_track()
        return session

    @property
    def image(self) -> MetaTensor:
        """The original image ``(1, I, J, K)``."""
        return self.prepared.image

    @property
    def num_clicks(self) -> int:
        """Clicks on the current object."""
        return self.track.num_prompts

    @property
    def mask(self) -> np.ndarray:
        """The current object's mask on the image's grid (bool ``(I, J, K)``)."""
        return self.track.original_mask()

    @property
    def mask_region(self) -> tuple[tuple[slice, ...], np.ndarray]:
        """The current object's mask as a box of the image's grid and the mask there (empty outside the box): what
        ``mask`` holds, at the cost of the object rather than the image."""
        return self.track.original_region()

    @property
    def iou(self) -> float:
        """The decoder's predicted IoU of the current object's mask (NaN before its first click)."""
        return self.track.iou

    def click(self, point: Sequence[float], positive: bool = True) -> np.ndarray:
        """Add a click on the current object.

        Args:
            point: voxel indices ``(i, j, k)`` of the image, in its own voxel order.
            positive: ``True`` to add the voxel to the object, ``False`` to remove it.

        Returns:
            The object's mask on the image's grid (bool, shape ``(I, J, K)``).
        """
        self.add_click(point, positive)
        return self.mask

    def add_click(self, point: Sequence[float], positive: bool = True) -> None:
        """:meth:`click` without building the full-size mask (a server reads :attr:`mask_region`).

        Args:
            point: voxel indices ``(i, j, k)`` of the image, in its own voxel order.
            positive: ``True`` to add the voxel to the object, ``False`` to remove it.
        """
        shape, affine = self.image.shape[1:], as_affine(self.image.affine)
        (voxel,) = voxel_points([list(point)], shape, affine, what="click")
        self.track.add_click(self.prepared.to_ras(voxel), int(bool(positive)))

    def box(self, lo: Sequence[float], hi: Sequence[float]) -> np.ndarray:
        """Start the current object from a box (before any click; ``undo`` removes it).

        A network with box embeddings (the CVPR 2025 checkpoints) embeds its corners; the released turbo gets a
        positive click at its centre and a mask clipped to the box grown by the inferer's ``box_margin_mm``.

        Args:
            lo: the box's lowest corner voxel ``(i, j, k)`` of the image, in its own voxel order.
            hi: its highest corner voxel (inclusive).

        Returns:
            The object's mask on the image's grid (bool, shape ``(I, J, K)``).
        """
        self.add_box(lo, hi)
        return self.mask

    def add_box(self, lo: Sequence[float], hi: Sequence[float]) -> None:
        """:meth:`box` without building the full-size mask (a server reads :attr:`mask_region`).

        Args:
            lo: the box's lowest corner voxel ``(i, j, k)`` of the image, in its own voxel order.
            hi: its highest corner voxel (inclusive).
        """
        shape, affine = self.image.shape[1:], as_affine(self.image.affine)
        corners = parse_box([list(lo), list(hi)], shape, affine)
        self.track.add_box(box_on_grid(self.prepared, corners[0], corners[1]))

    def undo(self) -> np.ndarray | None:
        """Remove the last prompt (click or box); returns the mask before it (``None`` when no prompt is left and no
        starting mask)."""
        self.track.undo()
        if self.track.num_prompts == 0 and self.track.start_mask is None:
            return None
        return self.mask

    def reset(self, mask: np.ndarray | None = None) -> None:
        """Start the next object (the encoded windows stay cached), empty or from a mask on the image's grid.

        Args:
            mask: bool or 0/1 ``(I, J, K)`` mask on the image's grid (a viewer's label, a previous prediction): it is
                the decoder's mask prompt in each window the object uses, and stays the object's mask outside them; a
                first negative click then subtracts from it.
        """
        start = None if mask is None else self.prepared.grid_mask(mask)
        self.track = self._new_track(start)
