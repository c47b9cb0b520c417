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
"""An evaluator whose iteration reads the clicks of each request and calls the click-window inferer."""

from __future__ import annotations

from monai.engines import SupervisedEvaluator
from monai.engines.utils import IterationEvents

from .prompts import parse_request_prompts

__all__ = ["PromptedEvaluator"]


class PromptedEvaluator(SupervisedEvaluator):
    """``SupervisedEvaluator`` fed with uncollated requests (``collate_fn=no_collation``, ``decollate=False``).

    Each request is a dict with the loaded ``image`` (channel-first MetaTensor) and its prompt keys; the output of
    an iteration is one ``{"pred": label map}`` per request, on the request's original grid.
    """

    def _iteration(self, engine: SupervisedEvaluator, batchdata: list[dict]) -> list[dict]:  # type: ignore[override]
        outputs = []
        for request in batchdata:
            image = request["image"]
            if image.ndim != 4 or image.shape[0] != 1:
                raise ValueError(
                    f"{image.meta.get('filename_or_obj', 'image')}: expected a one-channel 3-D image (1, I, J, K), "
                    f"got shape {tuple(image.shape)}; 2-D images, 4-D series and multi-channel images are not supported."
                )
            objects = parse_request_prompts(request, image.shape[1:], image.affine)
            with engine.mode(engine.network):
                outputs.append({"pred": engine.inferer(image, engine.network, objects)})
        engine.state.output = outputs  # the postprocessing runs on MODEL_COMPLETED and reads it from the state
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
