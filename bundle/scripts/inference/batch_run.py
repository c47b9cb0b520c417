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
"""A batch that survives bad cases and restarts where it stopped: the dataset and evaluator of
``batch_inference.json`` (and, per rank, of ``multi_gpu_batch_inference.json``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Events
from monai.data import Dataset
from monai.engines import SupervisedEvaluator
from monai.transforms import apply_transform

from .batch import BATCH_ERROR
from .batch_ledger import BatchLedger, failure_reason
from .workflow import PromptedEvaluator
from .writer import AtomicSaveImage

__all__ = ["BatchDataset", "BatchEvaluator", "CASE_KEY"]

# The key under which a loaded request carries its case (index, name, start time and, if decided, status).
CASE_KEY = "batch_case"


class BatchDataset(Dataset):
    """The requests of a batch, each read once when its turn comes; cases that need no work are not read.

    A case whose label map exists (outputs are renamed into place only when complete, so an existing one is complete)
    is marked ``skipped`` unread, unless the writer overwrites. A case that is known to be bad (``BATCH_ERROR``) or
    cannot be read is marked ``failed`` with the reason, unless the ledger stops on errors: then it raises.

    Args:
        data: the requests (``batch_requests``).
        transform: what reads a request (the ``preprocessing``).
        writer: the label maps' writer (it names the outputs and says whether it overwrites).
        ledger: the batch's ledger (``stop_on_error``).
    """

    def __init__(
        self, data: Sequence[dict], transform: Callable | None, writer: AtomicSaveImage, ledger: BatchLedger
    ) -> None:
        super().__init__(data=data, transform=transform)
        self.writer = writer
        self.ledger = ledger

    def _transform(self, index: int) -> dict:
        request = self.data[index]
        image = str(request.get("image"))
        case = {"index": index, "case": Path(image).name, "source": image, "started": time.monotonic()}
        if BATCH_ERROR in request:
            if self.ledger.stop_on_error:
                raise ValueError(request[BATCH_ERROR])
            return {CASE_KEY: {**case, "status": "failed", "reason": request[BATCH_ERROR]}}
        if not self.writer.overwrite and self.writer.target({"filename_or_obj": image}).exists():
            return {CASE_KEY: {**case, "status": "skipped"}}
        try:
            loaded = apply_transform(self.transform, request) if self.transform is not None else dict(request)
        except Exception as e:
            if self.ledger.stop_on_error:
                raise
            return {CASE_KEY: {**case, "status": "failed", "reason": failure_reason(e)}}
        return {**loaded, CASE_KEY: case}


class BatchEvaluator(PromptedEvaluator):
    """``PromptedEvaluator`` over a ``BatchDataset``: every case ends as one row of the ledger.

    A case that raises (prompts outside the image, a bad shape, a failed write...) is recorded as ``failed`` and the
    batch goes on, unless the ledger stops on errors. A case whose output turns out to exist once read is skipped.

    Args:
        args: passed to ``PromptedEvaluator``.
        ledger: the batch's ledger.
        kwargs: passed to ``PromptedEvaluator`` (``writer`` is required: it names the outputs).
    """

    def __init__(self, *args, ledger: BatchLedger, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.writer is None:
            raise ValueError("BatchEvaluator needs the label maps' writer (writer=@mask_writer).")
        self.ledger = ledger
        self.add_event_handler(Events.EPOCH_STARTED, lambda engine: ledger.start(engine.state.epoch_length))

    def _iteration(self, engine: SupervisedEvaluator, batchdata: list[dict]) -> list[dict]:  # type: ignore[override]
        outputs = []
        for request in batchdata:
            request = dict(request)
            case = request.pop(CASE_KEY)
            ids = {"index": case["index"], "case": case["case"]}
            status = case.get("status")
            if status is None and not self.writer.overwrite and self.writer.target(request["image"].meta).exists():
                status = "skipped"
            if status is not None:
                self.ledger.record(**ids, status=status, reason=case.get("reason", ""), source=case["source"])
                continue
            try:
                done = super()._iteration(engine, [request])
            except Exception as e:
                if self.ledger.stop_on_error:
                    raise
                self.ledger.record(
                    **ids, status="failed", reason=failure_reason(e), seconds=time.monotonic() - case["started"]
                )
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                continue
            summary = self._summary(request, done[0]["pred"])
            self.ledger.record(**ids, status="done", seconds=time.monotonic() - case["started"], **summary)
            outputs.extend(done)
        engine.state.output = outputs
        return outputs

    def _summary(self, request: dict, pred: torch.Tensor) -> dict:
        """Objects, voxels and predicted IoUs of the case just done: from its objects report, else (automatic and
        simulation modes, no predicted IoU) the voxels of each class in its label map."""
        for _, kind, report in self._reports:
            if kind == "objects":
                records = report["objects"]
                return {
                    "objects": [r["name"] for r in records],
                    "voxels": [r["voxels"] for r in records],
                    "iou": [r.get("iou") for r in records],
                }
        labels = np.asarray(pred)
        if "label_prompt" in request:
            classes = [int(c) for c in np.atleast_1d(request["label_prompt"])]
        else:
            classes = [int(v) for v in np.unique(labels) if v != 0]
        return {"objects": classes, "voxels": [int((labels == c).sum()) for c in classes], "iou": []}
