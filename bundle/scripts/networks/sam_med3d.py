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
"""SAM-Med3D as one module: ``encode`` once per 128^3 window, ``decode`` many prompts, ``forward`` for engines."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .image_encoder import ImageEncoderViT3D
from .mask_decoder import MaskDecoder3D
from .prompt_encoder import PromptEncoder3D

__all__ = ["SAMMed3D", "decoder_mask_prompt"]


def decoder_mask_prompt(
    image_embeddings: torch.Tensor,
    points: torch.Tensor | None,
    point_labels: torch.Tensor | None,
    mask_prompt: torch.Tensor | None,
    mask_input_size: Sequence[int],
    class_ids: torch.Tensor | None = None,
    boxes: torch.Tensor | None = None,
) -> torch.Tensor:
    """Check that the prompts of ``K`` objects go together and return the mask prompt (zeros when ``None``).

    Args:
        image_embeddings: ``(1, C, g, g, g)`` shared by all objects, or ``(K, C, g, g, g)``.
        points: ``(K, N, 3)`` or ``None``.
        point_labels: ``(K, N)``, required with ``points``.
        mask_prompt: ``(K, 1, *mask_input_size)`` or ``None``.
        mask_input_size: spatial size of the low-resolution masks.
        class_ids: ``(K,)`` or ``None``.
        boxes: ``(K, 6)`` or ``None``.
    """
    if (points is None) != (point_labels is None):
        raise ValueError("points and point_labels must be given together.")
    if points is not None:
        num_objects = points.shape[0]
    elif boxes is not None:
        num_objects = boxes.shape[0]
    elif mask_prompt is not None:
        num_objects = mask_prompt.shape[0]
    elif class_ids is not None:
        num_objects = class_ids.shape[0]
    else:
        num_objects = image_embeddings.shape[0]
    if image_embeddings.shape[0] not in (1, num_objects):
        raise ValueError(
            f"image_embeddings has batch {image_embeddings.shape[0]}; expected 1 (shared) or {num_objects}."
        )
    if mask_prompt is None:
        mask_prompt = image_embeddings.new_zeros(num_objects, 1, *mask_input_size)
    return mask_prompt


class SAMMed3D(nn.Module):
    """Promptable 3-D segmentation network (the architecture of ``sam_med3d_turbo.pth``).

    The state_dict keys are those of the released checkpoints (``image_encoder.*``, ``prompt_encoder.*``,
    ``mask_decoder.*``). Point coordinates are voxel indices ``(dim2, dim3, dim4)`` of the ``(B, 1, S, S, S)`` network
    input (``S = img_size``). Labels: 1 positive, 0 negative, -1 padding.

    Args:
        img_size: side of the cubic network input.
        patch_size: encoder patch side.
        encoder_embed_dim: encoder token width.
        encoder_depth: encoder blocks.
        encoder_num_heads: encoder attention heads.
        encoder_global_attn_indexes: encoder blocks with global attention; the others are windowed.
        window_size: window side of the windowed blocks.
        prompt_embed_dim: width of the image embedding, prompt tokens and decoder.
        decoder_depth: two-way transformer blocks.
        decoder_num_heads: decoder attention heads.
        decoder_mlp_dim: decoder MLP hidden width.
        padded_attention: run the windowed blocks in the reference's literal padded form (slow; for benchmarks and
            as a test oracle). The default exact form gives the same outputs.
        num_class_prompts: learned class prompts for the automatic mode (``prompt_encoder.class_embeddings``, class id
            ``c`` uses row ``c``); 0 (the default) keeps exactly the released architecture and state_dict.
        box_embeddings: the two box-corner embeddings of the ``CVPR25_3DFM`` checkpoints
            (``sam_med3d_turbo_bbox_init.pth`` and its fine-tunes: four ``prompt_encoder.point_embeddings``);
            ``False`` (the default) is the released turbo's two.
    """

    def __init__(
        self,
        img_size: int = 128,
        patch_size: int = 16,
        encoder_embed_dim: int = 768,
        encoder_depth: int = 12,
        encoder_num_heads: int = 12,
        encoder_global_attn_indexes: Sequence[int] = (2, 5, 8, 11),
        window_size: int = 14,
        prompt_embed_dim: int = 384,
        decoder_depth: int = 2,
        decoder_num_heads: int = 8,
        decoder_mlp_dim: int = 2048,
        padded_attention: bool = False,
        num_class_prompts: int = 0,
        box_embeddings: bool = False,
    ) -> None:
        super().__init__()
        self.config = {  # the sizes, saved beside the weights (networks.checkpoint.save_network)
            "img_size": img_size,
            "patch_size": patch_size,
            "encoder_embed_dim": encoder_embed_dim,
            "encoder_depth": encoder_depth,
            "encoder_num_heads": encoder_num_heads,
            "encoder_global_attn_indexes": [int(i) for i in encoder_global_attn_indexes],
            "window_size": window_size,
            "prompt_embed_dim": prompt_embed_dim,
            "decoder_depth": decoder_depth,
            "decoder_num_heads": decoder_num_heads,
            "decoder_mlp_dim": decoder_mlp_dim,
            "num_class_prompts": num_class_prompts,
            "box_embeddings": bool(box_embeddings),
        }
        grid = img_size // patch_size
        self.img_size = img_size
        self.image_encoder = ImageEncoderViT3D(
            img_size=img_size,
            patch_size=patch_size,
            embed_dim=encoder_embed_dim,
            depth=encoder_depth,
            num_heads=encoder_num_heads,
            out_chans=prompt_embed_dim,
            window_size=window_size,
            global_attn_indexes=tuple(encoder_global_attn_indexes),
            padded_attention=padded_attention,
        )
        self.prompt_encoder = PromptEncoder3D(
            embed_dim=prompt_embed_dim,
            image_embedding_size=(grid,) * 3,
            input_image_size=(img_size,) * 3,
            num_class_prompts=num_class_prompts,
            box_embeddings=box_embeddings,
        )
        self.mask_decoder = MaskDecoder3D(
            transformer_dim=prompt_embed_dim,
            transformer_depth=decoder_depth,
            num_heads=decoder_num_heads,
            mlp_dim=decoder_mlp_dim,
        )

    @property
    def num_class_prompts(self) -> int:
        """Number of learned class prompts (0: click prompts only, as released)."""
        return self.prompt_encoder.num_class_prompts

    @property
    def box_embeddings(self) -> bool:
        """Whether boxes are embedded (the CVPR 2025 checkpoints) or must be given as a click (the released turbo)."""
        return self.prompt_encoder.box_embeddings

    @property
    def mask_input_size(self) -> tuple[int, int, int]:
        """Spatial size of the low-resolution masks (decoder output and mask prompt)."""
        return self.prompt_encoder.mask_input_size

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """Image embeddings, computed once per window and reused for every prompt.

        Args:
            image: ``(B, 1, S, S, S)`` normalised intensities.

        Returns:
            ``(B, prompt_embed_dim, S/16, S/16, S/16)``.
        """
        return self.image_encoder(image)

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
        """Low-resolution mask logits for ``K`` objects that share (or each have) an image embedding.

        Args:
            image_embeddings: ``(1, C, g, g, g)`` shared by all objects, or ``(K, C, g, g, g)``.
            points: ``(K, N, 3)`` voxel indices of the network input, or ``None`` for a mask-only prompt.
            point_labels: ``(K, N)``, required with ``points``.
            mask_prompt: previous low-resolution logits ``(K, 1, 4g, 4g, 4g)``. ``None`` means "no mask yet" and is
                fed as zeros, as the reference pipeline does on the first click.
            multimask_output: return the three (untrained) multimask outputs instead of the single mask.
            class_ids: ``(K,)`` class ids (needs ``num_class_prompts > 0``), one more sparse token per object after
                the point tokens; ``None`` for click prompts only.
            boxes: ``(K, 6)`` two corners per object, voxel indices of the network input (needs ``box_embeddings``),
                or ``None``.

        Returns:
            Logits ``(K, M, 4g, 4g, 4g)`` and IoU predictions ``(K, M)``.
        """
        mask_prompt = decoder_mask_prompt(
            image_embeddings, points, point_labels, mask_prompt, self.mask_input_size, class_ids, boxes
        )
        prompts = None if points is None else (points, point_labels)
        sparse, dense = self.prompt_encoder(points=prompts, boxes=boxes, masks=mask_prompt, class_ids=class_ids)
        return self.mask_decoder(
            image_embeddings=image_embeddings,
            image_pe=self.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask_output,
        )

    def upsample(self, low_res_logits: torch.Tensor) -> torch.Tensor:
        """Trilinear upsampling of low-resolution logits to the network input size (``align_corners=False``).

        Args:
            low_res_logits: ``(K, M, 4g, 4g, 4g)``.
        """
        return F.interpolate(low_res_logits, size=(self.img_size,) * 3, mode="trilinear", align_corners=False)

    def forward(
        self,
        image: torch.Tensor,
        points: torch.Tensor | None = None,
        point_labels: torch.Tensor | None = None,
        mask_prompt: torch.Tensor | None = None,
        class_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Full-resolution logits for one prompt per image; the image alone gives the mask-only prompt of zeros.

        Args:
            image: ``(B, 1, S, S, S)``.
            points: ``(B, N, 3)`` or ``None``.
            point_labels: ``(B, N)`` or ``None``.
            mask_prompt: ``(B, 1, 4g, 4g, 4g)`` previous logits, or ``None``.
            class_ids: ``(B,)`` class prompts (networks built with ``num_class_prompts > 0``), or ``None``.

        Returns:
            Logits ``(B, 1, S, S, S)``; the mask is ``logits > 0``.
        """
        embeddings = self.encode(image)
        low_res, _ = self.decode(embeddings, points, point_labels, mask_prompt, class_ids=class_ids)
        return self.upsample(low_res)
