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
"""Training and N-click evaluation on MONAI/Ignite engines: only the parts MONAI lacks.

Training uses MONAI's ``SupervisedTrainer`` unchanged (its accumulation, autocast, grad scaling and events): the
"network" it drives is :class:`ClickSimulation`, a module whose ``forward(image, label)`` runs SAM-Med3D's click
simulation (encode once, then ``num_rounds`` decoder rounds with clicks drawn from the error region of the previous
round) and returns the logits of every round; :class:`RoundsLoss` sums a loss over the rounds. Because the whole
simulation is one ``forward``, wrapping :class:`ClickSimulation` in ``DistributedDataParallel`` all-reduces the
gradients (the reference called ``model.module`` and never synchronised). The batch reaches ``forward`` through
MONAI's ``PrepareBatchExtraInput(extra_keys="label")``.

N-click evaluation is :class:`NClickEvaluator`, a ``SupervisedEvaluator`` that overrides ``_iteration`` only.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events
from ignite.handlers import DiskSaver
from monai.data import MetaTensor
from monai.engines import SupervisedEvaluator
from monai.engines.utils import IterationEvents
from monai.handlers import CheckpointSaver
from monai.utils import CommonKeys as Keys
from torch import nn

from .click_sampling import CLICK_RULES, sample_error_clicks
from .metrics import dice_score, surface_dice

__all__ = [
    "ClickSimulation",
    "RoundsLoss",
    "param_groups",
    "initial_network",
    "checkpoint_objects",
    "AtomicCheckpointSaver",
    "TrainingMonitor",
    "NClickEvaluator",
]

logger = logging.getLogger(__name__)


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


class RoundsLoss(nn.Module):
    """Sum of ``loss(pred[:, r:r+1], target)`` over the rounds (channels) of ``pred``, as the reference sums them.

    Args:
        loss: a loss on one-channel logits, e.g. ``DiceCELoss(sigmoid=True, squared_pred=True)``.
    """

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Args: pred ``(B, R, ...)`` logits; target ``(B, 1, ...)`` binary."""
        target = target.float()
        return sum(self.loss(pred[:, r : r + 1].float(), target) for r in range(pred.shape[1]))


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


def initial_network(network: nn.Module, checkpoint: str | None = None) -> nn.Module:
    """The network to train: fresh, or fine-tuned from a checkpoint loaded strictly (a mismatch raises now).

    Args:
        network: a ``SAMMed3D`` of the wanted size.
        checkpoint: an official ``.pth`` container, a plain or DDP state_dict, or ``None`` / ``""`` for none.
    """
    if not checkpoint:
        return network
    from .networks import load_checkpoint

    # class prompts are new parameters: a checkpoint without them (the released weights) leaves them initialised
    allow_new = ("prompt_encoder.class_embeddings",) if getattr(network, "num_class_prompts", 0) else ()
    logger.info(f"fine-tuning from {checkpoint} (loaded strictly{', new: class prompts' if allow_new else ''})")
    return load_checkpoint(network, checkpoint, allow_new=allow_new)


def checkpoint_objects(network: nn.Module, optimizer, lr_scheduler, trainer: Engine) -> dict:
    """What a training checkpoint holds: network, optimizer, scheduler, trainer state and, with AMP, the scaler.

    Args:
        network: the bare network (its keys have no ``module.`` prefix, so ``model.pt`` loads anywhere).
        optimizer: the optimizer.
        lr_scheduler: the learning-rate scheduler.
        trainer: the trainer (its iteration and epoch).
    """
    objects = {"network": network, "optimizer": optimizer, "lr_scheduler": lr_scheduler, "trainer": trainer}
    if getattr(trainer, "scaler", None) is not None:
        objects["scaler"] = trainer.scaler
    return objects


class _AtomicDiskSaver(DiskSaver):
    """Write to a temporary file in the folder, then rename: a kill mid-write never leaves a truncated checkpoint."""

    def __init__(self, dirname: str, filename: str | None = None) -> None:
        super().__init__(dirname=dirname, require_empty=False, atomic=True)
        self.filename = filename

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        filename = self.filename or filename
        super().__call__(checkpoint, filename, metadata)
        path = os.path.join(self.dirname, filename)
        if os.path.exists(path):  # ignite's temporary file is private (0600); the checkpoint is not
            os.chmod(path, 0o644)

    def remove(self, filename: str) -> None:
        super().remove(self.filename or filename)


class AtomicCheckpointSaver(CheckpointSaver):
    """MONAI's ``CheckpointSaver`` with atomic writes.

    MONAI writes checkpoints in place (``atomic=False``) and, with ``n_saved=1``, deletes the previous one after
    the new one is written: a run killed while writing loses its only checkpoint. Same arguments as
    ``CheckpointSaver``.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name in ("_final_checkpoint", "_key_metric_checkpoint", "_interval_checkpoint"):
            checkpoint = getattr(self, name, None)
            if checkpoint is not None:
                checkpoint.save_handler = _AtomicDiskSaver(
                    self.save_dir, getattr(checkpoint.save_handler, "filename", None)
                )


class TrainingMonitor:
    """Progress line (speed, ETA) and TensorBoard scalars of the click-simulation training.

    Every ``interval`` iterations it logs ``epoch e/E iter i/n | loss | Dice per round | lr | it/s | ETA`` and
    writes ``train/loss``, ``train/dice_round_<r>`` (hard Dice of ``logits > 0`` per round, 1-based) and
    ``train/lr_<group>`` to ``tensorboard_dir`` (nothing when ``None``; pass it on rank 0 only). Loss and Dice are
    means over the iterations since the last report: with one random class per item, a single step says little.

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
        if self.writer is not None:
            self.writer.flush()


class NClickEvaluator(SupervisedEvaluator):
    """N-click evaluation: per case and class, ``num_clicks`` simulated clicks and Dice/NSD after each one.

    Fed with uncollated items (``collate_fn=no_collation``) holding the loaded ``image`` and ``label`` (original
    grid) and optionally ``classes`` (default: every class of the label). The clicks are simulated by
    ``simulation.simulate_clicks`` (the reference's rule and random stream, one ``RandomState(seed)`` per case) on
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
        from .preprocessing import spacing_from_affine
        from .simulation import simulate_clicks

        records = []
        for item in batchdata:
            image, label = item[Keys.IMAGE], item[Keys.LABEL]
            case = str(item.get("case") or Path(str(image.meta.get("filename_or_obj", "case"))).name)
            values = label.as_tensor()
            classes = item.get("classes") or [int(c) for c in torch.unique(values).tolist() if c != 0]
            spacing = tuple(float(s) for s in spacing_from_affine(label.affine))
            rng = np.random.RandomState(self.seed)  # once per case, shared by its classes, as the reference
            with engine.mode(engine.network), torch.no_grad():
                prepared = engine.inferer.prepare(image, engine.network)
                for class_id in classes:
                    truth = (values[0] == class_id).numpy()
                    for step in simulate_clicks(prepared, label, int(class_id), self.num_clicks, rng=rng):
                        records.append(
                            {
                                "case": case,
                                "class_id": int(class_id),
                                "click": int(step["click"]),
                                "point": [round(float(v), 2) for v in step["point"]],
                                "point_label": int(step["point_label"]),
                                "dice": dice_score(step["mask"], truth),
                                "nsd": surface_dice(step["mask"], truth, spacing, self.nsd_tolerance),
                            }
                        )
        engine.state.output = records
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return records
