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
"""What the runtimes of an exported network (TorchScript, ONNX) share: ``SAMMed3D``'s interface around three parts."""

from __future__ import annotations

import torch
from torch import nn

from .prompt_encoder import check_point_prompts
from .sam_med3d import decoder_mask_prompt

__all__ = ["ExportedSAMMed3D"]


class ExportedSAMMed3D(nn.Module):
    """``SAMMed3D``'s ``encode`` / ``decode`` / ``upsample`` / ``forward`` over exported parts: a subclass runs the
    encoder, the decoder (click and mask prompts, the single-mask output) and the upsampling; this class checks the
    prompts as the eager network does (traced and exported graphs lost those checks) and makes the mask prompt.

    Subclasses set ``img_size`` and ``mask_input_size`` and implement :meth:`_encode`, :meth:`_decode` and
    :meth:`upsample`.
    """

    img_size: int
    mask_input_size: tuple[int, int, int]
    runtime = "exported"

    def decode(
        self,
        image_embeddings: torch.Tensor,
        points: torch.Tensor | None = None,
        point_labels: torch.Tensor | None = None,
        mask_prompt: torch.Tensor | None = None,
        multimask_output: bool = False,
        class_ids: torch.Tensor | None = None,
        boxes: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Low-resolution logits for ``K`` objects, as ``SAMMed3D.decode``.

        Args:
            image_embeddings: ``(1, C, g, g, g)`` shared by all objects, or ``(K, C, g, g, g)``.
            points: ``(K, N, 3)`` voxel indices of the network input, or ``None`` for a mask-only prompt.
            point_labels: ``(K, N)``, required with ``points``.
            mask_prompt: previous low-resolution logits ``(K, 1, 4g, 4g, 4g)``, or ``None`` (zeros).
            multimask_output: must be ``False`` (the multimask outputs were never trained upstream; not exported).
            class_ids: must be ``None`` (class prompts are not exported).
            boxes: must be ``None`` (box embeddings are not exported).

        Returns:
            Logits ``(K, 1, 4g, 4g, 4g)`` and IoU predictions ``(K, 1)``.
        """
        if multimask_output:
            raise ValueError(f"the {self.runtime} decoder has the single-mask output only (multimask_output=False).")
        if class_ids is not None or boxes is not None:
            raise ValueError(
                f"the {self.runtime} export has click and mask prompts only (no class prompts, no box embeddings)."
            )
        if points is not None and point_labels is not None:
            check_point_prompts(points, point_labels, allowed_labels=(-1, 0, 1))
        given_mask = mask_prompt is not None
        mask_prompt = decoder_mask_prompt(image_embeddings, points, point_labels, mask_prompt, self.mask_input_size)
        num_objects = mask_prompt.shape[0] if points is None else points.shape[0]
        if given_mask and tuple(mask_prompt.shape) != (num_objects, 1, *self.mask_input_size):
            raise ValueError(
                f"mask prompt must have shape {(num_objects, 1, *self.mask_input_size)}, got {tuple(mask_prompt.shape)}."
            )
        return self._decode(image_embeddings, points, point_labels, mask_prompt)

    def _decode(
        self,
        image_embeddings: torch.Tensor,
        points: torch.Tensor | None,
        point_labels: torch.Tensor | None,
        mask_prompt: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The exported decoder on checked prompts (``points`` ``None``: the mask-only prompt)."""
        raise NotImplementedError

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """Image embeddings of one window.

        Args:
            image: ``(1, 1, S, S, S)`` normalised intensities (the encoder was exported for one window).

        Returns:
            ``(1, C, S/16, S/16, S/16)``.
        """
        expected = (1, 1, self.img_size, self.img_size, self.img_size)
        if tuple(image.shape) != expected:
            raise ValueError(f"the {self.runtime} encoder takes one window {expected}, got {tuple(image.shape)}.")
        return self._encode(image)

    def _encode(self, image: torch.Tensor) -> torch.Tensor:
        """The exported encoder on one checked window."""
        raise NotImplementedError

    def upsample(self, low_res_logits: torch.Tensor) -> torch.Tensor:
        """Trilinear upsampling of low-resolution logits ``(K, M, 4g, 4g, 4g)`` to the network input size."""
        raise NotImplementedError

    def forward(
        self,
        image: torch.Tensor,
        points: torch.Tensor | None = None,
        point_labels: torch.Tensor | None = None,
        mask_prompt: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Full-resolution logits for one window and one prompt, as ``SAMMed3D.forward``.

        Args:
            image: ``(1, 1, S, S, S)``.
            points: ``(1, N, 3)`` or ``None``.
            point_labels: ``(1, N)`` or ``None``.
            mask_prompt: ``(1, 1, 4g, 4g, 4g)`` or ``None``.

        Returns:
            Logits ``(1, 1, S, S, S)``.
        """
        low_res, _ = self.decode(self.encode(image), points, point_labels, mask_prompt)
        return self.upsample(low_res)
