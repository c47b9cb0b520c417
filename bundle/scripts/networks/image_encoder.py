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
"""The SAM-Med3D image encoder: a 3-D ViT with windowed and global attention blocks and a convolutional neck."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .layers import LayerNorm3d, TwoLayerMLP
from .rel_pos_attention import RelPosAttention3D

__all__ = ["ImageEncoderViT3D", "EncoderBlock3D", "PatchEmbed3D"]


class PatchEmbed3D(nn.Module):
    """Non-overlapping 3-D patches to tokens, channels-last.

    Args:
        patch_size: side of a cubic patch.
        in_chans: image channels.
        embed_dim: token width.
    """

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 4, 1)


class EncoderBlock3D(nn.Module):
    """Pre-norm transformer block (attention + GELU MLP) on a channels-last token grid.

    Args:
        dim: token width.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width as a multiple of ``dim``.
        window_size: side of the attended window (the token grid is zero-padded to it after ``norm1``).
        padded_attention: use the literal padded attention instead of the exact real-token form.
    """

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float, window_size: int, padded_attention: bool = False
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = RelPosAttention3D(dim, num_heads, window_size, qkv_bias=True, padded=padded_attention)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = TwoLayerMLP(dim, int(dim * mlp_ratio), nn.GELU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ImageEncoderViT3D(nn.Module):
    """3-D ViT image encoder of SAM-Med3D (``build_sam3D_vit_b_ori``).

    Args:
        img_size: side of the cubic input volume.
        patch_size: side of a patch; the token grid has side ``img_size // patch_size``.
        in_chans: image channels.
        embed_dim: token width.
        depth: number of blocks.
        num_heads: attention heads per block.
        mlp_ratio: MLP hidden width as a multiple of ``embed_dim``.
        out_chans: channels of the image embedding.
        window_size: window side of the windowed blocks (the token grid is padded up to it).
        global_attn_indexes: blocks that attend globally over the token grid instead.
        padded_attention: use the literal padded attention (the reference's cost) in the windowed blocks.
    """

    def __init__(
        self,
        img_size: int = 128,
        patch_size: int = 16,
        in_chans: int = 1,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        out_chans: int = 384,
        window_size: int = 14,
        global_attn_indexes: Sequence[int] = (2, 5, 8, 11),
        padded_attention: bool = False,
    ) -> None:
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"img_size {img_size} is not a multiple of patch_size {patch_size}.")
        grid = img_size // patch_size
        if window_size < grid:
            raise ValueError(f"window_size {window_size} must cover the {grid}^3 token grid (one window per image).")
        self.img_size = img_size
        self.in_chans = in_chans
        self.patch_embed = PatchEmbed3D(patch_size, in_chans, embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid, grid, grid, embed_dim))
        self.blocks = nn.ModuleList(
            EncoderBlock3D(
                embed_dim,
                num_heads,
                mlp_ratio,
                window_size=grid if i in global_attn_indexes else window_size,
                padded_attention=padded_attention,
            )
            for i in range(depth)
        )
        self.neck = nn.Sequential(
            nn.Conv3d(embed_dim, out_chans, kernel_size=1, bias=False),
            LayerNorm3d(out_chans),
            nn.Conv3d(out_chans, out_chans, kernel_size=3, padding=1, bias=False),
            LayerNorm3d(out_chans),
        )

    def set_padded_attention(self, padded: bool) -> None:
        """Switch every block between the exact real-token attention and the literal padded one.

        Args:
            padded: ``True`` for the padded (reference-cost) form.
        """
        for block in self.blocks:
            block.attn.padded = padded

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode a batch of volumes.

        Args:
            x: ``(B, in_chans, img_size, img_size, img_size)``.

        Returns:
            The image embedding ``(B, out_chans, grid, grid, grid)``.
        """
        expected = (self.in_chans, self.img_size, self.img_size, self.img_size)
        if x.ndim != 5 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"image must have shape (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}.")
        x = self.patch_embed(x) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.neck(x.permute(0, 4, 1, 2, 3))
