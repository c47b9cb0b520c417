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
"""Automatic mode: per-class probabilities from learned class prompts, without clicks, over the whole image.

The path: the whole image resampled to ``spacing`` and reordered to RAS once (``PreparedImage.ras``) -> MONAI's
``sliding_window_inference`` over the whole RAS grid with ``roi_size`` windows; each window is z-normalised as at
training (statistics of its voxels > 0), encoded once, and that one embedding is decoded for every class (the class
token alone, no mask) -> sigmoid of the upsampled logits, stitched (``blend_mode``) -> optional click refinement of
a class -> the probabilities are resampled onto the original grid with **linear** interpolation along the voxel
axes (``preprocessing.resample_axis_aligned``, the exact inverse geometry of the preprocessing; 0 outside the RAS
grid). The result is ``[C, I, J, K]`` float32 on the original grid, channel ``c`` for ``class_ids[c]``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.data import MetaTensor
from monai.inferers import Inferer, sliding_window_inference

from ..geometry import ROI_SIZE, TARGET_SPACING, index_transform, resample_axis_aligned, z_normalize
from ..geometry.window import grid_part, window_slices
from .prepared import PreparedImage
from .prompts import ObjectPrompt
from .track import ObjectTrack

__all__ = ["AutomaticInferer", "probabilities_to_labels"]

logger = logging.getLogger(__name__)


def probabilities_to_labels(
    probabilities: torch.Tensor, class_ids: Sequence[int], threshold: float = 0.5
) -> torch.Tensor:
    """Label map ``(1, I, J, K)`` uint8 of per-class probabilities: the most probable class where it is above
    ``threshold``, else 0.

    Args:
        probabilities: ``(C, I, J, K)``.
        class_ids: the label value of each channel.
        threshold: the probability a voxel needs to be labelled.
    """
    best, index = probabilities.max(dim=0)
    values = torch.as_tensor(list(class_ids), dtype=torch.uint8)[index]
    return torch.where(best > threshold, values, torch.zeros_like(values))[None]


class AutomaticInferer(Inferer):
    """Per-class probabilities of a whole image from class prompts (a network with ``num_class_prompts > 0``).

    Args:
        spacing: voxel size (mm) of the network input.
        roi_size: window size (the network input size).
        overlap: overlap of neighbouring sliding windows.
        sw_batch_size: windows encoded per network call.
        blend_mode: ``"constant"`` or ``"gaussian"`` stitching of overlapping windows.
        amp: CUDA autocast for the network.
        interpolation: image resampling, ``"bilinear"`` (the reference) or ``"nearest"``.
    """

    def __init__(
        self,
        spacing: Sequence[float] = TARGET_SPACING,
        roi_size: Sequence[int] = ROI_SIZE,
        overlap: float = 0.25,
        sw_batch_size: int = 1,
        blend_mode: str = "gaussian",
        amp: bool = False,
        interpolation: str = "bilinear",
    ) -> None:
        super().__init__()
        self.spacing = tuple(float(s) for s in spacing)
        self.roi_size = tuple(int(s) for s in roi_size)
        self.overlap = float(overlap)
        self.sw_batch_size = int(sw_batch_size)
        self.blend_mode = blend_mode
        self.amp = amp
        self.interpolation = interpolation

    def _predictor(self, network: torch.nn.Module, class_ids: torch.Tensor, autocast):
        def predict(windows: torch.Tensor) -> torch.Tensor:
            out = []
            for window in windows:  # one encoder pass per window, shared by all classes
                with autocast():
                    embedding = network.encode(z_normalize(window, empty_ok=True).as_tensor()[None])
                    low_res, _ = network.decode(embedding, class_ids=class_ids)
                out.append(torch.sigmoid(network.upsample(low_res.float()))[:, 0])
            return torch.stack(out)

        return predict

    def ras_probabilities(
        self, prepared: PreparedImage, network: torch.nn.Module, class_ids: Sequence[int]
    ) -> torch.Tensor:
        """Stitched probabilities ``(C, X, Y, Z)`` on the RAS grid of ``prepared``.

        Args:
            prepared: the image on its RAS grid.
            network: a ``SAMMed3D`` with class prompts.
            class_ids: the classes, one channel each.
        """
        ids = torch.as_tensor(list(class_ids), dtype=torch.long, device=prepared.device)
        network.prompt_encoder.check_class_ids(ids)
        ras = prepared.ras.as_tensor()[None].float().to(prepared.device)
        with torch.no_grad():
            probabilities = sliding_window_inference(
                ras,
                roi_size=self.roi_size,
                sw_batch_size=self.sw_batch_size,
                predictor=self._predictor(network, ids, prepared.autocast),
                overlap=self.overlap,
                mode=self.blend_mode,
                padding_mode="constant",
                cval=0.0,
            )
        return probabilities[0].float().cpu()

    def refine(self, prepared: PreparedImage, probabilities: torch.Tensor, class_ids: Sequence[int], prompt) -> None:
        """Refine one class with its clicks, in place, through an ``ObjectTrack`` (one window, centred on the first
        click): the clicks go in order with the class token, and the window's first mask prompt is the automatic
        logits of that window; the window's probabilities are then replaced by the refined ones.

        Args:
            prepared: the image on its RAS grid.
            probabilities: ``(C, X, Y, Z)`` RAS-grid probabilities, changed in place.
            class_ids: the class of each channel.
            prompt: an ``ObjectPrompt`` whose ``label`` is one of ``class_ids``.
        """
        if prompt.label not in class_ids:
            raise ValueError(
                f"object '{prompt.name}': label {prompt.label} is not one of the classes {list(class_ids)}."
            )
        channel = list(class_ids).index(prompt.label)

        def automatic_logits(window) -> torch.Tensor:
            roi = torch.from_numpy(grid_part(probabilities[channel].numpy(), window.start, self.roi_size))
            logits = torch.logit(roi.clamp(1e-4, 1 - 1e-4))[None, None]
            return F.interpolate(logits, size=prepared.network.mask_input_size, mode="area")

        track = ObjectTrack(prepared, max_windows=1, class_id=prompt.label, mask_prompt=automatic_logits)
        for point, label in zip(prepared.to_ras(prompt.points), prompt.point_labels):
            try:
                track.add_click(point, int(label))
            except ValueError as e:
                raise ValueError(f"object '{prompt.name}': {e}") from None
        for tracked in track.windows:
            with torch.no_grad():
                refined = torch.sigmoid(prepared.network.upsample(tracked.low_res.float()))[0, 0].cpu()
            grid, window = window_slices(tracked.start, self.roi_size, probabilities.shape[1:])
            probabilities[(channel, *grid)] = refined[window]

    def __call__(  # type: ignore[override]
        self,
        inputs: MetaTensor,
        network: torch.nn.Module,
        class_ids: Sequence[int],
        objects: Sequence[ObjectPrompt] = (),
    ) -> MetaTensor:
        """Per-class probabilities on the grid of ``inputs``.

        Args:
            inputs: the original image, channel-first ``(1, I, J, K)`` with its affine.
            network: a ``SAMMed3D`` built with ``num_class_prompts`` above every id in ``class_ids``.
            class_ids: the classes (label values) to segment, one output channel each.
            objects: optional clicks; an object whose ``label`` is one of ``class_ids`` refines that class.

        Returns:
            ``(C, I, J, K)`` float32 probabilities with the image's affine and metadata.
        """
        class_ids = [int(c) for c in class_ids]
        if not class_ids:
            raise ValueError("automatic mode needs at least one class id ('label_prompt').")
        prepared = PreparedImage(inputs, network, self.spacing, self.roi_size, self.interpolation, self.amp)
        probabilities = self.ras_probabilities(prepared, network, class_ids)
        for prompt in objects:
            self.refine(prepared, probabilities, class_ids, prompt)
        ras = MetaTensor(probabilities, affine=prepared.grid.affine)
        back = resample_axis_aligned(
            ras,
            index_transform(np.asarray(inputs.affine, dtype=np.float64), prepared.grid.affine),
            inputs.shape[1:],
            mode="bilinear",
            out_affine=np.asarray(inputs.affine, dtype=np.float64),
        )
        logger.info(f"automatic mode: {len(class_ids)} class(es), {len(objects)} refined by clicks")
        meta = {k: v for k, v in inputs.meta.items() if k != "affine"}
        return MetaTensor(back.as_tensor().float(), affine=inputs.affine, meta=meta)
