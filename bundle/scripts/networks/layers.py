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
"""Small building blocks shared by the encoder, the prompt encoder and the decoder."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LayerNorm3d", "TwoLayerMLP", "PatchExpand3d"]


class LayerNorm3d(nn.Module):
    """LayerNorm over the channel axis of a ``(B, C, D, H, W)`` tensor, with biased variance.

    Args:
        num_channels: number of channels ``C``.
        eps: added to the variance inside the square root (the reference uses 1e-6).
    """

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Channels-first input: move C last so F.layer_norm (one fused kernel) normalises over it.
        y = nn.functional.layer_norm(x.movedim(1, -1), (x.shape[1],), self.weight, self.bias, self.eps)
        return y.movedim(-1, 1)


class TwoLayerMLP(nn.Module):
    """``lin2(act(lin1(x)))``, named as in the released checkpoints (``mlp.lin1``, ``mlp.lin2``).

    Args:
        embedding_dim: input and output width.
        mlp_dim: hidden width.
        act: activation module class (GELU in the encoder, ReLU in the decoder).
    """

    def __init__(self, embedding_dim: int, mlp_dim: int, act: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.lin1 = nn.Linear(embedding_dim, mlp_dim)
        self.lin2 = nn.Linear(mlp_dim, embedding_dim)
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(self.act(self.lin1(x)))


class PatchExpand3d(nn.ConvTranspose3d):
    """``ConvTranspose3d`` with ``kernel_size == stride``, computed as one matrix product and a reshuffle.

    Each input voxel maps to its own ``k^3`` output block, so the transposed convolution is a per-voxel linear map;
    on CPU one GEMM is about twice as fast as the generic transposed-convolution kernel. Same parameters and keys.
    The output is stored channels-last, so that the LayerNorm over channels and a following ``PatchExpand3d`` read
    it without copies.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        scale: kernel size and stride.
    """

    def __init__(self, in_channels: int, out_channels: int, scale: int = 2) -> None:
        super().__init__(in_channels, out_channels, kernel_size=scale, stride=scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        b, c, d, h, w = x.shape
        k = self.kernel_size[0]
        out = self.weight.shape[1]
        bias = self.bias.repeat_interleave(k**3)  # weight columns are ordered (out, kd, kh, kw)
        # (voxels, C) rows: a free view when x is stored channels-last, as this module's own output is.
        y = torch.addmm(bias, x.flatten(2).transpose(1, 2).reshape(-1, c), self.weight.reshape(c, -1))
        y = y.view(b, d, h, w, out, k, k, k).permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(b, d * k, h * k, w * k, out)
        return y.permute(0, 4, 1, 2, 3)  # (B, out, D, H, W), stored channels-last
