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
"""An evaluator whose iteration reads the clicks of each request (or simulates them from a label) and segments."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import torch
from monai.data import MetaTensor
from monai.engines import SupervisedEvaluator
from monai.engines.utils import IterationEvents

from .automatic import AutomaticInferer, probabilities_to_labels
from .dicom_seg import ALGORITHM_TYPE, LABEL_NAMES
from .prompts import parse_request_prompts
from .writer import AtomicSaveImage

__all__ = ["PromptedEvaluator", "report_path"]

logger = logging.getLogger(__name__)


def report_path(report_dir: str | os.PathLike, source: str, kind: str) -> Path:
    """Where the ``kind`` report (``objects``, ``clicks``) of the image read from ``source`` is written.

    Args:
        report_dir: the reports' folder.
        source: the image's path (its ``filename_or_obj``).
        kind: the report's kind.
    """
    name = Path(source).name.split(".")[0] or "image"
    return Path(report_dir) / f"{name}_{kind}.json"


class PromptedEvaluator(SupervisedEvaluator):
    """``SupervisedEvaluator`` fed with uncollated requests (``collate_fn=no_collation``, ``decollate=False``).

    Each request is a dict with the loaded ``image`` (channel-first MetaTensor) and either click prompts (see
    ``prompts.parse_request_prompts``) or, in simulation mode, a loaded ``label`` (optional ``classes`` and
    ``num_clicks``): clicks are then drawn from the label as the reference does and the Dice of every click on the
    original grid is logged and written to ``<report_dir>/<image name>_clicks.json``. Click requests write
    ``<report_dir>/<image name>_objects.json``: per object its label, voxels, windows and the decoder's predicted IoU.
    A request with
    ``label_prompt`` (a list of class ids) runs the automatic mode (``automatic.AutomaticInferer``, a network with
    class prompts): no clicks needed; objects with clicks whose ``label`` is one of the ids refine that class. The
    output of an iteration is one ``{"pred": label map}`` per request, on the request's original grid.

    Args:
        args: passed to ``SupervisedEvaluator``.
        num_clicks: clicks per class in simulation mode, unless the request says otherwise.
        report_dir: where the reports are written (``None``: not written).
        seed: the seed of the click stream of each case (233 in the reference).
        automatic_inferer: the ``AutomaticInferer`` of ``label_prompt`` requests (default: one with the defaults).
        writer: the writer of the label maps (the postprocessing's), asked before any work on a request whether its
            output may be written (``AtomicSaveImage.check_free``): an existing output is refused before the
            segmentation, not after it (``None``: no check).
        kwargs: passed to ``SupervisedEvaluator``.
    """

    def __init__(
        self,
        *args,
        num_clicks: int = 1,
        report_dir: str | None = None,
        seed: int = 233,
        automatic_inferer: AutomaticInferer | None = None,
        writer: AtomicSaveImage | None = None,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.automatic_inferer = automatic_inferer or AutomaticInferer()
        self.num_clicks = num_clicks
        self.report_dir = report_dir
        self.seed = seed
        self.writer = writer
        self._reports: list[tuple] = []

    def _iteration(self, engine: SupervisedEvaluator, batchdata: list[dict]) -> list[dict]:  # type: ignore[override]
        outputs, self._reports = [], []
        for request in batchdata:
            image = request["image"]
            if image.ndim != 4 or image.shape[0] != 1:
                raise ValueError(
                    f"{image.meta.get('filename_or_obj', 'image')}: expected a one-channel 3-D image (1, I, J, K), "
                    f"got shape {tuple(image.shape)}; 2-D images, 4-D series and multi-channel images are not supported."
                )
            if self.writer is not None:
                self.writer.check_free(image.meta)
            with engine.mode(engine.network):
                if "label_prompt" in request:
                    pred = self._automatic(engine, image, request)
                elif "label" in request:
                    pred = self._simulate(engine, image, request)
                else:
                    objects = parse_request_prompts(request, image.shape[1:], image.affine)
                    pred, records = engine.inferer.segment(image, engine.network, objects)
                    pred.meta[LABEL_NAMES] = {r["label"]: r["name"] for r in records}  # a DICOM SEG's segment labels
                    self._reports.append((image, "objects", {"objects": records}))
            outputs.append({"pred": pred})
        for report in self._reports:  # before the label maps: an existing label map means a complete case
            self._write_report(*report)
        engine.state.output = outputs  # the postprocessing runs on MODEL_COMPLETED and reads it from the state
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output

    def _automatic(self, engine: SupervisedEvaluator, image: MetaTensor, request: dict) -> MetaTensor:
        class_ids = request["label_prompt"]
        if isinstance(class_ids, (int, np.integer)):
            class_ids = [class_ids]
        class_ids = [int(c) for c in class_ids]
        has_clicks = any(k in request for k in ("objects", "points", "points_world", "box", "box_world"))
        objects = parse_request_prompts(request, image.shape[1:], image.affine) if has_clicks else []
        probabilities = self.automatic_inferer(image, engine.network, class_ids, objects)
        meta = {k: v for k, v in image.meta.items() if k != "affine"}
        meta[LABEL_NAMES] = {c: f"class {c}" for c in class_ids}
        meta[ALGORITHM_TYPE] = "SEMIAUTOMATIC" if objects else "AUTOMATIC"
        return MetaTensor(probabilities_to_labels(probabilities, class_ids), affine=image.affine, meta=meta)

    def _simulate(self, engine: SupervisedEvaluator, image: MetaTensor, request: dict) -> MetaTensor:
        from ..evaluation.nclick import case_classes, nclick_case  # evaluation builds on inference, not the reverse

        label = request["label"]
        classes = case_classes(label, request.get("classes"))
        num_clicks = int(request.get("num_clicks", self.num_clicks))
        prepared = engine.inferer.prepare(image, engine.network)
        records, final = nclick_case(prepared, label, classes, num_clicks, self.seed)
        label_map = torch.zeros(image.shape, dtype=torch.uint8)
        report: dict = {"num_clicks": num_clicks, "classes": {}}
        for class_id in classes:
            label_map[0][torch.from_numpy(final[class_id])] = class_id
            steps = [
                {k: r[k] for k in ("click", "point", "point_label", "dice", "iou")}
                for r in records
                if r["class_id"] == class_id
            ]
            report["classes"][str(class_id)] = steps
            dice = ", ".join(f"{r['dice']:.4f}" for r in steps)
            logger.info(f"class {class_id}: Dice per click {dice}")
        self._reports.append((image, "clicks", report))
        meta = {k: v for k, v in image.meta.items() if k != "affine"}
        meta[LABEL_NAMES] = {c: f"class {c}" for c in classes}
        return MetaTensor(label_map, affine=image.affine, meta=meta)

    def _write_report(self, image: MetaTensor, kind: str, report: dict) -> None:
        """Write ``<report_dir>/<image name>_<kind>.json`` atomically (nothing when ``report_dir`` is ``None``)."""
        if self.report_dir is None:
            return
        source = str(image.meta.get("filename_or_obj", ""))
        target = report_path(self.report_dir, source, kind)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
        partial.write_text(json.dumps({"image": source, **report}, indent=4) + "\n", encoding="utf-8")
        os.replace(partial, target)
        logger.info(f"wrote {target}")
