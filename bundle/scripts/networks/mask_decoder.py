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
"""The SAM-Med3D mask decoder: MONAI's two-way transformer, 3-D upscaling and hypernetwork heads."""

from __future__ import annotations

import torch
from monai.networks.nets.vista3d import MLP, TwoWayTransformer
from torch import nn

from .layers import LayerNorm3d, PatchExpand3d, TwoLayerMLP

__all__ = ["MaskDecoder3D"]


class MaskDecoder3D(nn.Module):
    """Predicts low-resolution mask logits (4x the embedding grid) and IoU scores from image and prompt embeddings.

    The transformer is MONAI's ``TwoWayTransformer`` (the same maths as the reference); only its MLP blocks are
    swapped for ones named ``lin1``/``lin2`` so that the released checkpoints load with ``strict=True``.

    Args:
        transformer_dim: token and image-embedding width.
        num_multimask_outputs: masks of the multimask output (one more mask token is the single-mask output).
        transformer_depth: two-way blocks.
        num_heads: attention heads.
        mlp_dim: hidden width of the transformer MLPs.
        iou_head_depth: layers of the IoU head.
        iou_head_hidden_dim: hidden width of the IoU head.
    """

    def __init__(
        self,
        transformer_dim: int = 384,
        num_multimask_outputs: int = 3,
        transformer_depth: int = 2,
        num_heads: int = 8,
        mlp_dim: int = 2048,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
    ) -> None:
        super().__init__()
        self.transformer = TwoWayTransformer(transformer_depth, transformer_dim, num_heads, mlp_dim)
        for layer in self.transformer.layers:
            layer.mlp = TwoLayerMLP(transformer_dim, mlp_dim, nn.ReLU)
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)
        self.output_upscaling = nn.Sequential(
            PatchExpand3d(transformer_dim, transformer_dim // 4),
            LayerNorm3d(transformer_dim // 4),
            nn.GELU(),
            PatchExpand3d(transformer_dim // 4, transformer_dim // 8),
            nn.GELU(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(transformer_dim, transformer_dim, transformer_dim // 8, 3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(transformer_dim, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth)

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode masks for ``K`` prompts.

        Args:
            image_embeddings: ``(K or 1, C, d, h, w)``; one embedding is shared by all ``K`` prompts.
            image_pe: ``(1, C, d, h, w)`` dense positional encoding.
            sparse_prompt_embeddings: ``(K, T, C)``.
            dense_prompt_embeddings: ``(K, C, d, h, w)``.
            multimask_output: return the three multimask outputs instead of the single mask. The released model
                never trained them (nor the IoU head), so the single mask is the one to use.

        Returns:
            Low-resolution mask logits ``(K, M, 4d, 4h, 4w)`` and IoU predictions ``(K, M)``, ``M`` = 3 or 1.
        """
        num_prompts = sparse_prompt_embeddings.shape[0]
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat([output_tokens.unsqueeze(0).expand(num_prompts, -1, -1), sparse_prompt_embeddings], dim=1)
        src = (
            image_embeddings.expand(num_prompts, -1, -1, -1, -1) if image_embeddings.shape[0] == 1 else image_embeddings
        )
        src = src + dense_prompt_embeddings
        pos_src = image_pe.expand(num_prompts, -1, -1, -1, -1)
        b, c, d, h, w = src.shape
        hs, src = self.transformer(src, pos_src, tokens)
        upscaled = self.output_upscaling(src.transpose(1, 2).unflatten(2, (d, h, w)))  # a channels-last view
        # Token 0 is the single-mask output, tokens 1.. the multimask outputs: run only the hypernetworks needed.
        selected = range(1, self.num_mask_tokens) if multimask_output else range(1)
        hyper_in = torch.stack([self.output_hypernetworks_mlps[i](hs[:, 1 + i]) for i in selected], dim=1)
        masks = (hyper_in @ upscaled.flatten(2)).reshape(b, -1, *upscaled.shape[2:])
        iou_pred = self.iou_prediction_head(hs[:, 0])
        return masks, iou_pred[:, selected.start : selected.stop]
