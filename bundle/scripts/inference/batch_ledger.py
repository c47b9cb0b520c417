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
"""The record of a batch: a row per case, a progress line with an ETA per rank, and at the end, gathered from all
ranks, ``batch_report.csv``, ``batch_failures.csv``, a one-line total and the exit status."""

from __future__ import annotations

import csv
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch.distributed as dist

from ..errors import user_error
from .workflow import report_path

__all__ = ["BatchLedger", "failure_reason", "REPORT_FILE", "FAILURES_FILE"]

# The summary of a batch, one row per case, written by rank 0 into the output folder.
REPORT_FILE = "batch_report.csv"
# The failed cases of a batch, one line each (case, reason), written by rank 0 next to the report (even if empty).
FAILURES_FILE = "batch_failures.csv"
# The report's columns; voxels and iou list one value per object, in the order of ``objects``, separated by ';'.
COLUMNS = ("case", "objects", "voxels", "seconds", "iou", "status")

logger = logging.getLogger(__name__)


def failure_reason(error: BaseException) -> str:
    """One line saying why a case failed: the user error in the cause chain, or the innermost exception.

    Args:
        error: what the case raised (MONAI and ignite wrap the original in RuntimeErrors).
    """
    cause = user_error(error)
    if cause is None:
        cause, seen = error, set()
        while (cause.__cause__ or cause.__context__) is not None and id(cause) not in seen:
            seen.add(id(cause))
            cause = cause.__cause__ or cause.__context__
        text = f"{type(cause).__name__}: {cause}"
    else:
        text = str(cause)
    return " ".join(text.split())


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class BatchLedger:
    """What happened to every case of this rank's share, and the summary of all ranks at the end.

    Args:
        report_dir: where ``batch_report.csv`` and ``batch_failures.csv`` are written (the output folder; the
            ``<case>_objects.json`` reports there give the figures of cases skipped as complete).
        stop_on_error: fail fast: the first bad case ends the run with its error (the batch's ``stop_on_error``).
        progress_interval: seconds between two progress lines of a rank (the last case of a share always logs one).
    """

    def __init__(self, report_dir: str | os.PathLike, stop_on_error: bool = False, progress_interval: float = 60.0):
        self.report_dir = Path(report_dir)
        self.stop_on_error = bool(stop_on_error)
        self.progress_interval = float(progress_interval)
        self.rows: list[dict] = []
        self.share = 0
        self.failed = 0
        self.total = 0
        self._rank = 0
        self._started = time.monotonic()
        self._last_progress = self._started

    @staticmethod
    def _rank_world() -> tuple[int, int]:
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1

    def start(self, share: int) -> None:
        """Start this rank's share of ``share`` cases (the evaluator calls it when its epoch starts).

        Args:
            share: the number of cases this rank takes.
        """
        self.share, self.rows = int(share), []
        self._started = self._last_progress = time.monotonic()

    def record(
        self,
        index: int,
        case: str,
        status: str,
        *,
        objects: Sequence[str] = (),
        voxels: Sequence[int] = (),
        iou: Sequence[float | None] = (),
        seconds: float = 0.0,
        reason: str = "",
        source: str | None = None,
    ) -> None:
        """Record the outcome of one case and log the progress when it is due.

        Args:
            index: the case's position in the batch (the report keeps the batch's order).
            case: the case's name (its image file name).
            status: ``done``, ``skipped`` (its output exists and is complete) or ``failed``.
            objects: the names of its objects (or class ids in automatic mode).
            voxels: the voxels of each object.
            iou: the predicted IoU of each object (empty, or ``None`` for an object, where the model gives none).
            seconds: the time the case took, reading and writing included.
            reason: why it failed (one line).
            source: for a skipped case, its image path: its figures are read from its ``_objects.json`` report.
        """
        if status == "skipped" and source is not None:
            objects, voxels, iou = self._from_report(source)
        row = {
            "index": index,
            "case": case,
            "objects": ";".join(str(o) for o in objects),
            "voxels": ";".join(str(int(v)) for v in voxels),
            "seconds": f"{seconds:.2f}",
            "iou": ";".join("" if v is None else f"{float(v):.4f}" for v in iou),
            "status": status,
            "reason": reason,
        }
        self.rows.append(row)
        if status == "failed":
            logger.warning(f"case {case} failed: {reason}")
        self._progress()

    def _from_report(self, source: str) -> tuple[list, list, list]:
        path = report_path(self.report_dir, source, "objects")
        try:
            records = json.loads(path.read_text(encoding="utf-8"))["objects"]
            return [r["name"] for r in records], [r["voxels"] for r in records], [r.get("iou") for r in records]
        except (OSError, ValueError, KeyError, TypeError):
            return [], [], []

    def _progress(self) -> None:
        now, count = time.monotonic(), len(self.rows)
        if now - self._last_progress < self.progress_interval and count < self.share:
            return
        self._last_progress = now
        rank, world = self._rank_world()
        counts = {s: sum(r["status"] == s for r in self.rows) for s in ("done", "skipped", "failed")}
        worked = counts["done"] + counts["failed"]
        per_case = (now - self._started) / worked if worked else 0.0
        eta = _duration(per_case * max(self.share - count, 0))
        logger.info(
            f"rank {rank}/{world}: {count}/{self.share} cases ({counts['done']} done, {counts['skipped']} skipped, "
            f"{counts['failed']} failed), {per_case:.1f} s per case, ETA {eta}"
        )

    def finish(self) -> int:
        """Gather the rows of all ranks; rank 0 writes the report and the failures file and prints the total.

        Returns:
            The number of failed cases over all ranks.
        """
        rank, world = self._rank_world()
        rows = self.rows
        if world > 1:
            gathered: list = [None] * world
            dist.all_gather_object(gathered, rows)
            rows = [r for part in gathered for r in part]
        rows = sorted(rows, key=lambda r: r["index"])
        self.total, self.failed = len(rows), sum(r["status"] == "failed" for r in rows)
        self._rank = rank
        if rank == 0:
            self.report_dir.mkdir(parents=True, exist_ok=True)
            self._write(REPORT_FILE, COLUMNS, rows)
            self._write(FAILURES_FILE, ("case", "reason"), [r for r in rows if r["status"] == "failed"])
            counts = {s: sum(r["status"] == s for r in rows) for s in ("done", "skipped")}
            print(
                f"batch: {self.total} cases on {world} process(es): {counts['done']} done, {counts['skipped']} skipped "
                f"(complete from an earlier run), {self.failed} failed, {time.monotonic() - self._started:.1f} s; "
                f"report {self.report_dir / REPORT_FILE}, failures {self.report_dir / FAILURES_FILE}",
                flush=True,
            )
        return self.failed

    def _write(self, name: str, columns: Sequence[str], rows: list[dict]) -> None:
        target = self.report_dir / name
        partial = target.with_name(f".{name}.partial-{os.getpid()}")
        with open(partial, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        os.replace(partial, target)

    def exit(self) -> None:
        """End the process with exit status 1 if any case failed (after ``finish``); rank 0 says where they are."""
        if not self.failed:
            return
        if self._rank == 0:
            message = (
                f"error: {self.failed} of {self.total} cases failed, listed with their reasons in "
                f"{self.report_dir / FAILURES_FILE}; fix them and run again (finished cases are skipped)."
            )
            print(message, file=sys.stderr, flush=True)
        raise SystemExit(1)
