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
"""Progress line (speed, ETA) and TensorBoard scalars of the click-simulation training."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import timedelta

import torch
from ignite.engine import Engine, Events
from monai.utils import CommonKeys as Keys

__all__ = ["TrainingMonitor"]

logger = logging.getLogger(__name__)


class TrainingMonitor:
    """Progress line (speed, ETA) and TensorBoard scalars of the click-simulation training.

    Every ``interval`` iterations it logs ``epoch e/E iter i/n | loss | Dice per round | lr | it/s | ETA`` and
    writes ``train/loss``, ``train/dice_round_<r>`` (hard Dice of ``logits > 0`` per round, 1-based) and
    ``train/lr_<group>`` to ``tensorboard_dir`` (nothing when ``None``; pass it on rank 0 only). Loss and Dice are
    means over the iterations since the last report: with one random class per item, a single step says little.
    The iterations after the last report are reported when the run completes, so a short run logs its loss too.

    Args:
        interval: iterations between two reports.
        tensorboard_dir: TensorBoard log folder, or ``None``.
    """

    def __init__(self, interval: int = 10, tensorboard_dir: str | None = None) -> None:
        self.interval = max(1, int(interval))
        self.tensorboard_dir = tensorboard_dir
        self.writer = None
        self._t0 = 0.0
        self._i0: int | None = None
        self._sums: list[float] = []  # loss, then Dice per round, summed since the last report
        self._count = 0

    def attach(self, engine: Engine) -> None:
        """Attach to a trainer."""
        if self.tensorboard_dir:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=self.tensorboard_dir)
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.ITERATION_STARTED, self._first_iteration)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._accumulate)
        engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.interval), self._report)
        engine.add_event_handler(Events.COMPLETED, self._completed)

    def _started(self, engine: Engine) -> None:
        self._i0 = None
        self._sums, self._count = [], 0

    def _first_iteration(self, engine: Engine) -> None:
        if self._i0 is None:  # here, not at STARTED: a resumed run's iteration is restored by then
            self._t0, self._i0 = time.perf_counter(), engine.state.iteration - 1

    @staticmethod
    def round_dice(output: Mapping) -> list[float]:
        """Hard Dice per round, averaged over the batch, from a trainer output (``pred`` ``(B, R, ...)``)."""
        pred = output[Keys.PRED].detach() > 0
        truth = output[Keys.LABEL].detach() > 0
        dims = tuple(range(2, pred.ndim))
        inter = (pred & truth).sum(dims).float()
        total = pred.sum(dims).float() + truth.sum(dims).float()
        return (2 * inter / total.clamp_min(1)).mean(0).tolist()

    def _accumulate(self, engine: Engine) -> None:
        output = engine.state.output
        loss = output[Keys.LOSS]
        values = [float(loss.detach() if torch.is_tensor(loss) else loss)] + self.round_dice(output)
        self._sums = [a + b for a, b in zip(self._sums, values)] if self._sums else values
        self._count += 1

    def _report(self, engine: Engine) -> None:
        state = engine.state
        loss, *dice = (v / max(self._count, 1) for v in self._sums)
        self._sums, self._count = [], 0
        lrs = {g.get("name", str(i)): g["lr"] for i, g in enumerate(engine.optimizer.param_groups)}
        done = state.iteration - self._i0
        speed = done / max(time.perf_counter() - self._t0, 1e-9)
        total = state.max_epochs * state.epoch_length
        eta = timedelta(seconds=round((total - state.iteration) / max(speed, 1e-9)))
        local = (state.iteration - 1) % state.epoch_length + 1
        dice_text = " ".join(f"{d:.3f}" for d in dice)
        lr_text = " ".join(f"{v:.2e}" for v in lrs.values())
        logger.info(
            f"epoch {state.epoch}/{state.max_epochs} iter {local}/{state.epoch_length} (step {state.iteration}/{total})"
            f" | loss {loss:.4f} | dice/round {dice_text} | lr {lr_text} | {speed:.3f} it/s | ETA {eta}"
        )
        if self.writer is not None:
            self.writer.add_scalar("train/loss", loss, state.iteration)
            for r, d in enumerate(dice, start=1):
                self.writer.add_scalar(f"train/dice_round_{r}", d, state.iteration)
            for name, value in lrs.items():
                self.writer.add_scalar(f"train/lr_{name}", value, state.iteration)

    def _completed(self, engine: Engine) -> None:
        if self._count:  # the iterations since the last report: a run shorter than ``interval`` still logs its loss
            self._report(engine)
        if self.writer is not None:
            self.writer.flush()
