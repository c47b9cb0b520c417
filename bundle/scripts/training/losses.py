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
"""The loss of a click-simulation step: one loss summed over the rounds, as the reference sums them."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["RoundsLoss"]


class RoundsLoss(nn.Module):
    """Sum of ``loss(pred[:, r:r+1], target)`` over the rounds (channels) of ``pred``, as the reference sums them.

    Args:
        loss: a loss on one-channel logits, e.g. ``DiceCELoss(sigmoid=True, squared_pred=True)``.
    """

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Args: pred ``(B, R, ...)`` logits; target ``(B, 1, ...)`` binary."""
        target = target.float()
        return sum(self.loss(pred[:, r : r + 1].float(), target) for r in range(pred.shape[1]))
