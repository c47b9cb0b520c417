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
"""SAM-Med3D's training-time click simulation as one ``forward``, so that MONAI's ``SupervisedTrainer`` and DDP drive it.

Training uses MONAI's ``SupervisedTrainer`` unchanged (accumulation, autocast, grad scaling, events): the "network"
it drives is :class:`ClickSimulation`, whose ``forward(image, label)`` encodes once and runs ``num_rounds`` decoder rounds
with clicks drawn from the error region of the previous round, returning the logits of every round. Because the whole
simulation is one ``forward``, wrapping it in ``DistributedDataParallel`` all-reduces the gradients (the reference
called ``model.module`` and never synchronised). The batch reaches ``forward`` through MONAI's
``PrepareBatchExtraInput(extra_keys="label")``.
"""

from __future__ import annotations

import torch
from monai.data import MetaTensor
from torch import nn

from .clicks import CLICK_RULES, sample_error_clicks

__all__ = ["ClickSimulation"]


class ClickSimulation(nn.Module):
    """SAM-Med3D's training-time click simulation as one ``forward``, so that DDP and MONAI engines can drive it.

    Per batch: ``network.encode`` once; then ``num_rounds`` decoder rounds. A click round adds one click per item,
    drawn by ``click_rule`` from the error region of the previous round's mask (positive if the voxel is missed);
    the decoder gets every click so far (as at inference; the reference passed only the newest one) and the
    previous low-resolution logits as the mask prompt. A mask-only round passes the mask prompt alone. The mask of a
    round is ``logits > 0`` (the reference thresholded logits at 0.5).

    Class prompts (automatic mode), when the network has ``num_class_prompts > 0`` and ``forward`` gets the items'
    ``class_id``: per batch the class token is dropped with probability ``drop_class_prob``; if it is kept, the clicks
    are dropped with probability ``drop_points_prob`` (every round then gets the class token and the previous mask,
    the first round the class token alone, as automatic inference does). So a batch is trained with clicks, clicks
    and class, or class alone, never with neither.

    Args:
        network: a ``SAMMed3D``.
        num_rounds: decoder rounds per batch (the reference: 11).
        num_random_mask_only_rounds: rounds, drawn among rounds ``2 .. num_rounds - 3`` (0-based, the reference's
            ``randint(2, 9)`` for 11 rounds), that get the mask prompt alone (the reference: 1).
        last_round_mask_only: the last round gets the mask prompt alone (the reference: True).
        click_rule: ``"random"`` or ``"center"`` (see ``click_sampling``).
        detach_mask_prompt: stop gradients through the mask prompt between rounds (the reference does not).
        drop_class_prob: probability of training a batch without its class prompt (used only with class prompts).
        drop_points_prob: probability of training a batch that has its class prompt without clicks.
    """

    def __init__(
        self,
        network: nn.Module,
        num_rounds: int = 11,
        num_random_mask_only_rounds: int = 1,
        last_round_mask_only: bool = True,
        click_rule: str = "random",
        detach_mask_prompt: bool = False,
        drop_class_prob: float = 0.5,
        drop_points_prob: float = 0.5,
    ) -> None:
        super().__init__()
        for name, p in (("drop_class_prob", drop_class_prob), ("drop_points_prob", drop_points_prob)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {p}.")
        if num_rounds < 1:
            raise ValueError(f"num_rounds must be at least 1, got {num_rounds}.")
        if click_rule not in CLICK_RULES:
            raise ValueError(f"unknown click_rule {click_rule!r}; use one of {CLICK_RULES}.")
        self.network = network
        self.num_rounds = num_rounds
        self.num_random_mask_only_rounds = num_random_mask_only_rounds
        self.last_round_mask_only = last_round_mask_only and num_rounds > 1
        self.click_rule = click_rule
        self.detach_mask_prompt = detach_mask_prompt
        self.drop_class_prob = float(drop_class_prob)
        self.drop_points_prob = float(drop_points_prob)

    def prompt_kinds(self, class_id: torch.Tensor | None) -> tuple[bool, bool]:
        """Draw whether this batch gets clicks and whether it gets class prompts (torch's global stream).

        Args:
            class_id: the items' class ids, or ``None`` (clicks only).
        """
        if class_id is None or not getattr(self.network, "num_class_prompts", 0):
            return True, False
        if torch.rand(()).item() < self.drop_class_prob:
            return True, False
        return torch.rand(()).item() >= self.drop_points_prob, True

    def mask_only_rounds(self) -> set[int]:
        """Draw the rounds (0-based) that get no click in this batch (torch's global stream, seeded per rank)."""
        rounds = {self.num_rounds - 1} if self.last_round_mask_only else set()
        candidates = [r for r in range(2, self.num_rounds - 2) if r not in rounds]
        count = min(self.num_random_mask_only_rounds, len(candidates))
        if count > 0:
            picks = torch.randperm(len(candidates))[:count].tolist()
            rounds |= {candidates[i] for i in picks}
        return rounds

    def forward(self, image: torch.Tensor, label: torch.Tensor, class_id: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of every round.

        Args:
            image: ``(B, 1, S, S, S)`` normalised windows.
            label: ``(B, 1, S, S, S)`` binary targets; every item needs a target voxel.
            class_id: ``(B,)`` the class of each item's target (ignored unless the network has class prompts).

        Returns:
            ``(B, num_rounds, S, S, S)`` full-resolution logits, round ``r`` in channel ``r``.
        """
        if isinstance(image, MetaTensor):
            image = image.as_tensor()  # no meta tracking inside the network: faster, and DDP-friendly
        if isinstance(label, MetaTensor):
            label = label.as_tensor()
        target = label > 0
        use_points, use_class = self.prompt_kinds(class_id)
        # class prompts only when used, so a network (or wrapper) without them is called exactly as before
        extra = {"class_ids": torch.as_tensor(class_id, device=image.device).reshape(-1)} if use_class else {}
        embedding = self.network.encode(image)
        mask_only = self.mask_only_rounds() if use_points else set(range(self.num_rounds))
        current = torch.zeros_like(target)
        points: list[torch.Tensor] = []
        point_labels: list[torch.Tensor] = []
        low_res = None
        outputs = []
        for r in range(self.num_rounds):
            if r in mask_only:
                prompt_points = prompt_labels = None
            else:
                with torch.no_grad():
                    new_points, new_labels = sample_error_clicks(current, target, self.click_rule)
                points.append(new_points)
                point_labels.append(new_labels)
                prompt_points, prompt_labels = torch.cat(points, dim=1), torch.cat(point_labels, dim=1)
            mask_prompt = low_res.detach() if (low_res is not None and self.detach_mask_prompt) else low_res
            low_res, _ = self.network.decode(embedding, prompt_points, prompt_labels, mask_prompt, **extra)
            logits = self.network.upsample(low_res)
            outputs.append(logits)
            current = logits.detach() > 0
        return torch.cat(outputs, dim=1)
