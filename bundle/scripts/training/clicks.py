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
"""Clicks drawn from the error region of a prediction, batched on tensors (any device), for training and evaluation.

Rules (``rule`` argument), on the error region of ``evaluation.clicks.error_regions`` (missed voxels and false
positives; the target itself when nothing is left to correct), the one error rule of training and evaluation:
    * ``"random"`` (the reference's ``get_next_click3D_torch_2``): a uniformly random voxel of the error region of
      each item; positive if it is a missed voxel.
    * ``"center"`` (the reference's ``ritm`` rule, close to the CVPR 2025 challenge's): a uniformly random voxel among
      those of the larger error set (FN or FP) whose distance to the set's border exceeds half the set's maximum
      distance, i.e. a click well inside the biggest mistake. Needs scipy (computed on the CPU).
"""

from __future__ import annotations

import numpy as np
import torch

from ..evaluation.clicks import error_regions

__all__ = ["CLICK_RULES", "sample_error_clicks"]

CLICK_RULES = ("random", "center")


def _uniform_choice(candidates: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Flat index of one uniformly random ``True`` voxel per row of ``candidates`` (B, V); rows must be non-empty.

    ``argmax`` of uniform noise on the candidates picks each with the same probability (ties have probability 0) in
    one batched pass, without ``nonzero`` (which would synchronise with the device and allocate per item).
    """
    noise = torch.rand(candidates.shape, generator=generator, device=candidates.device)
    return torch.where(candidates, noise + 1.0, torch.zeros_like(noise)).argmax(dim=1)


def _center_candidates(errors: np.ndarray) -> np.ndarray:
    """Voxels deeper than half the maximum distance-to-border of ``errors`` (bool, 3-D)."""
    from scipy.ndimage import distance_transform_edt

    distance = distance_transform_edt(np.pad(errors, 1))[1:-1, 1:-1, 1:-1]  # the volume edge is a border too
    return distance > distance.max() / 2.0


def sample_error_clicks(
    prediction: torch.Tensor, target: torch.Tensor, rule: str = "random", generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One new click per item from the error region of ``prediction`` against ``target``.

    Args:
        prediction: ``(B, 1, D, H, W)`` (or ``(B, D, H, W)``) current binary mask (bool or 0/1); all zeros before the
            first click, so that the first click is a random target voxel.
        target: binary ground truth of the same shape; every item must have at least one target voxel.
        rule: ``"random"`` or ``"center"`` (see the module docstring).
        generator: random stream on ``target``'s device (default: torch's global stream).

    Returns:
        ``points`` ``(B, 1, 3)`` float32 voxel indices (``D, H, W`` order, the network's point order) and
        ``labels`` ``(B, 1)`` int64: 1 for a missed voxel (positive click), 0 for a false positive (negative click).

    Raises:
        ValueError: for an unknown rule, mismatched shapes or an item without target voxels.
    """
    if rule not in CLICK_RULES:
        raise ValueError(f"unknown click rule {rule!r}; use one of {CLICK_RULES}.")
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in shape.")
    spatial = tuple(target.shape[-3:])
    truth = target.reshape(target.shape[0], -1) > 0
    current = prediction.reshape(prediction.shape[0], -1) > 0
    if not truth.any(dim=1).all():
        raise ValueError("cannot place a click: an item of the batch has no target voxel.")
    errors, missed = error_regions(current, truth)
    if rule == "center":
        candidates = []
        for err, miss in zip(errors.cpu().numpy(), missed.cpu().numpy()):
            # the larger of the two error sets, as the reference's ritm rule
            side = miss if miss.sum() >= (err & ~miss).sum() else err & ~miss
            candidates.append(_center_candidates(side.reshape(spatial)).reshape(-1))
        errors = torch.as_tensor(np.stack(candidates), device=target.device)
    flat = _uniform_choice(errors, generator)
    labels = missed.gather(1, flat[:, None]).long()
    coords = torch.stack(torch.unravel_index(flat, spatial), dim=-1)
    return coords.to(torch.float32)[:, None, :], labels
