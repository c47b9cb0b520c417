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
"""The reference's optimiser groups: the image encoder at the learning rate, prompt encoder and decoder lower."""

from __future__ import annotations

from torch import nn

__all__ = ["param_groups"]


def param_groups(
    network: nn.Module, lr: float, prompt_decoder_lr_multiplier: float = 0.1, freeze_encoder: bool = False
) -> list[dict]:
    """AdamW parameter groups of the reference: image encoder at ``lr``, prompt encoder and mask decoder lower.

    Args:
        network: a ``SAMMed3D``.
        lr: learning rate of the image encoder.
        prompt_decoder_lr_multiplier: factor on ``lr`` for the prompt encoder and the mask decoder (reference 0.1).
        freeze_encoder: freeze the image encoder (``requires_grad=False``) and leave it out of the optimizer.

    Returns:
        The groups, each with ``name``, ``params`` and ``lr``.
    """
    encoder = list(network.image_encoder.parameters())
    rest = list(network.prompt_encoder.parameters()) + list(network.mask_decoder.parameters())
    groups = [{"name": "prompt_encoder+mask_decoder", "params": rest, "lr": lr * prompt_decoder_lr_multiplier}]
    if freeze_encoder:
        for p in encoder:
            p.requires_grad_(False)
    else:
        groups.insert(0, {"name": "image_encoder", "params": encoder, "lr": lr})
    return groups
