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
"""The one N-click loop: every class of a case segmented with simulated clicks, one record per click."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from monai.data import MetaTensor

from ..geometry import spacing_from_affine
from ..inference.prepared import PreparedImage
from .clicks import FIRST_CLICK_SEED, simulate_clicks
from .metrics import dice_score, surface_dice

__all__ = ["case_classes", "nclick_case"]


def case_classes(label: MetaTensor, classes: Sequence[int] | None = None) -> list[int]:
    """The classes to evaluate: those asked for, or every non-zero value of the label.

    Args:
        label: the ground truth ``(1, I, J, K)``.
        classes: the class ids, or ``None``.

    Raises:
        ValueError: if the label is empty and no class is given.
    """
    if classes:
        return [int(c) for c in classes]
    values = np.unique(label.as_tensor().numpy())
    found = [int(c) for c in values if c != 0]
    if not found:
        raise ValueError("the label is empty: give a label that holds the target class(es).")
    return found


def nclick_case(
    prepared: PreparedImage,
    label: MetaTensor,
    classes: Sequence[int],
    num_clicks: int,
    seed: int = FIRST_CLICK_SEED,
    nsd_tolerance: float | None = None,
) -> tuple[list[dict], dict[int, np.ndarray]]:
    """Simulate ``num_clicks`` clicks per class (one random stream per case, as the reference) and score each.

    Args:
        prepared: the image, prepared once (all classes share its encoded windows).
        label: the ground truth ``(1, I, J, K)`` on the image's grid.
        classes: the classes, in order (a class's clicks continue the stream of the previous class).
        num_clicks: clicks per class.
        seed: seed of the case's stream (the reference: 233).
        nsd_tolerance: NSD tolerance in mm, or ``None`` for Dice only.

    Returns:
        The records ``{class_id, click, point, point_label, dice[, nsd], iou}`` (scores on the original grid) and
        each class's final mask.
    """
    if num_clicks < 1:
        raise ValueError(f"num_clicks must be at least 1, got {num_clicks}.")
    rng = np.random.RandomState(seed)
    values = label.as_tensor()[0].numpy()
    spacing = tuple(float(s) for s in spacing_from_affine(label.affine))
    records, final = [], {}
    for class_id in classes:
        truth = values == class_id
        for step in simulate_clicks(prepared, label, int(class_id), num_clicks, rng):
            record = {k: step[k] for k in ("click", "point", "point_label", "iou")}
            record["class_id"] = int(class_id)
            record["dice"] = dice_score(step["mask"], truth)
            if nsd_tolerance is not None:
                record["nsd"] = surface_dice(step["mask"], truth, spacing, nsd_tolerance)
            records.append(record)
        final[int(class_id)] = step["mask"]
    return records, final
