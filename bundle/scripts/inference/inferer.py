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
"""Click-prompted inference on a whole image: each object's clicks fed in order to its :class:`ObjectTrack`."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.inferers import Inferer

from ..geometry import ROI_SIZE, TARGET_SPACING
from .prepared import PreparedImage
from .prompts import ObjectPrompt
from .track import ObjectTrack, box_on_grid

__all__ = ["ClickWindowInferer", "track_object"]

logger = logging.getLogger(__name__)


def track_object(
    prepared: PreparedImage, prompt: ObjectPrompt, max_windows: int = 8, box_margin_mm: float = 10.0
) -> ObjectTrack:
    """The object's track after its box and clicks, one after another (what a session given the same prompts holds).

    Args:
        prepared: the image, prepared once.
        prompt: the object's box and clicks in original voxel indices.
        max_windows: window budget of the object; 1 is the reference's single window.
        box_margin_mm: networks without box embeddings clip the mask to the box grown by this.

    Raises:
        ValueError: naming the object, if a prompt is refused (see ``ObjectTrack.add_box`` / ``add_click``).
    """
    track = ObjectTrack(prepared, max_windows, box_margin_mm=box_margin_mm)
    try:
        if prompt.box is not None:
            track.add_box(box_on_grid(prepared, prompt.box[0], prompt.box[1]))
        for point, label in zip(prepared.to_ras(prompt.points), prompt.point_labels):
            track.add_click(point, int(label))
    except ValueError as e:
        raise ValueError(f"object '{prompt.name}': {e}") from None
    return track


class ClickWindowInferer(Inferer):
    """Segments the prompted objects of one image and returns their label map on the original grid.

    The path of a request: the image's grid at ``spacing`` (corner-aligned) in RAS order, as geometry (``PreparedImage``,
    whose encoded windows all objects share) -> per object, its clicks in order through an ``ObjectTrack`` (window
    placement, decoding, tracking into further windows) -> the object's mask pasted back onto the original grid.
    Later objects overwrite earlier ones where they overlap.

    Args:
        spacing: voxel size (mm) of the network input.
        roi_size: window size (the network input size).
        max_windows: windows per object when following an object beyond its first window (1: the reference).
        amp: run the network under CUDA autocast (float16) on CUDA devices.
        interpolation: ``"bilinear"`` (the reference's image resampling) or ``"nearest"`` (how the reference
            resamples labels; tests use it to feed a label through the exact image geometry).
        box_margin_mm: a box given to a network without box embeddings (the released turbo) becomes a click at its
            centre and clips the mask to the box grown by this many mm.
    """

    def __init__(
        self,
        spacing: Sequence[float] = TARGET_SPACING,
        roi_size: Sequence[int] = ROI_SIZE,
        max_windows: int = 8,
        amp: bool = False,
        interpolation: str = "bilinear",
        box_margin_mm: float = 10.0,
    ) -> None:
        super().__init__()
        if max_windows < 1:
            raise ValueError(f"max_windows must be at least 1, got {max_windows}.")
        self.spacing = tuple(float(s) for s in spacing)
        self.roi_size = tuple(int(s) for s in roi_size)
        self.max_windows = max_windows
        self.amp = amp
        self.interpolation = interpolation
        if box_margin_mm < 0:
            raise ValueError(f"box_margin_mm must be >= 0, got {box_margin_mm}.")
        self.box_margin_mm = float(box_margin_mm)

    def prepare(self, image: MetaTensor, network: torch.nn.Module) -> PreparedImage:
        """The image's RAS grid, with its window cache (windows sampled and encoded on first use; also the start of a
        session).

        Args:
            image: the original image ``(1, I, J, K)``.
            network: the SAM-Med3D network.
        """
        return PreparedImage(image, network, self.spacing, self.roi_size, self.interpolation, self.amp)

    def segment(
        self, inputs: MetaTensor, network: torch.nn.Module, objects: Sequence[ObjectPrompt]
    ) -> tuple[MetaTensor, list[dict]]:
        """Label map of ``objects`` on the grid of ``inputs``, and one record per object.

        Args:
            inputs: the original image, channel-first ``(1, I, J, K)`` with its affine.
            network: a ``SAMMed3D`` (``encode``, ``decode``, ``upsample``).
            objects: validated prompts (see ``prompts.parse_request_prompts``).

        Returns:
            The ``(1, I, J, K)`` uint8 label map with the image's affine and metadata, and per object
            ``{name, label, voxels, windows, iou}`` (``iou``: the decoder's predicted IoU).
        """
        prepared = self.prepare(inputs, network)
        label_map = np.zeros(inputs.shape, dtype=np.uint8)  # calloc: untouched pages cost nothing
        records = []
        for prompt in objects:
            track = track_object(prepared, prompt, self.max_windows, self.box_margin_mm)
            box, block = track.original_region()  # painted on the object's box: its cost follows the object
            label_map[(0, *box)][block] = prompt.label  # numpy: the track's cached block is read-only
            records.append(
                {
                    "name": prompt.name,
                    "label": prompt.label,
                    "voxels": int(block.sum()),
                    "windows": len(track.windows),
                    "iou": track.iou,
                }
            )
            logger.info(
                f"object '{prompt.name}': {records[-1]['voxels']} voxels from {len(track.windows)} window(s), "
                f"predicted IoU {track.iou:.3f}"
            )
        logger.info(f"segmented {len(objects)} object(s) with {prepared.num_encoded} encoder pass(es)")
        meta = {k: v for k, v in inputs.meta.items() if k != "affine"}  # the affine is set explicitly
        return MetaTensor(torch.from_numpy(label_map), affine=inputs.affine, meta=meta), records

    def __call__(  # type: ignore[override]
        self, inputs: MetaTensor, network: torch.nn.Module, objects: Sequence[ObjectPrompt]
    ) -> MetaTensor:
        """The label map of :meth:`segment`.

        Args:
            inputs: the original image, channel-first ``(1, I, J, K)`` with its affine.
            network: a ``SAMMed3D``.
            objects: validated prompts.
        """
        return self.segment(inputs, network, objects)[0]
