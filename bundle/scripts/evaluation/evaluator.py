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
"""N-click evaluation on a MONAI ``SupervisedEvaluator``: only its iteration is new."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from monai.engines import SupervisedEvaluator
from monai.engines.utils import IterationEvents
from monai.utils import CommonKeys as Keys

from .nclick import case_classes, nclick_case

__all__ = ["NClickEvaluator"]


class NClickEvaluator(SupervisedEvaluator):
    """N-click evaluation: per case and class, ``num_clicks`` simulated clicks and Dice/NSD after each one.

    Fed with uncollated items (``collate_fn=no_collation``) holding the loaded ``image`` and ``label`` (original
    grid) and optionally ``classes`` (default: every class of the label). The clicks are simulated by
    ``evaluation.nclick.nclick_case`` (the reference's rule and random stream, one ``RandomState(seed)`` per case) on
    the inferer's prepared image, so evaluation runs exactly the inference path. The iteration output is a list of
    records ``{case, class_id, click, point, point_label, dice, nsd}``; Dice and NSD (at ``nsd_tolerance`` mm) are
    computed on the original grid.

    Args:
        num_clicks: clicks per case and class.
        seed: seed of each case's random stream (the reference: 233).
        nsd_tolerance: NSD tolerance in mm.
        args, kwargs: ``SupervisedEvaluator``'s (set ``decollate=False``).
    """

    def __init__(self, *args, num_clicks: int = 10, seed: int = 233, nsd_tolerance: float = 1.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if num_clicks < 1:
            raise ValueError(f"num_clicks must be at least 1, got {num_clicks}.")
        self.num_clicks = int(num_clicks)
        self.seed = int(seed)
        self.nsd_tolerance = float(nsd_tolerance)

    def _iteration(self, engine: SupervisedEvaluator, batchdata: Sequence[dict]) -> list[dict]:  # type: ignore[override]
        records = []
        for item in batchdata:
            image, label = item[Keys.IMAGE], item[Keys.LABEL]
            case = str(item.get("case") or Path(str(image.meta.get("filename_or_obj", "case"))).name)
            with engine.mode(engine.network), torch.no_grad():
                prepared = engine.inferer.prepare(image, engine.network)
                steps, _ = nclick_case(
                    prepared,
                    label,
                    case_classes(label, item.get("classes")),
                    self.num_clicks,
                    self.seed,
                    self.nsd_tolerance,
                )
            for step in steps:
                step["point"] = [round(float(v), 2) for v in step["point"]]
                records.append({"case": case, **step})
        engine.state.output = records
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return records
