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
"""Training checkpoints: the starting network, what a checkpoint holds, and atomic writes."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

from ignite.engine import Engine
from ignite.handlers import DiskSaver
from monai.handlers import CheckpointSaver
from torch import nn

from ..networks.checkpoint import NETWORK_CONFIG_KEY

__all__ = ["initial_network", "checkpoint_objects", "model_objects", "AtomicCheckpointSaver"]

logger = logging.getLogger(__name__)


def initial_network(network: nn.Module, checkpoint: str | None = None) -> nn.Module:
    """The network to train: fresh, or fine-tuned from a checkpoint loaded strictly (a mismatch raises now).

    Args:
        network: a ``SAMMed3D`` of the wanted size.
        checkpoint: an official ``.pth`` container, a plain or DDP state_dict, or ``None`` / ``""`` for none.
    """
    if not checkpoint:
        return network
    from ..networks import load_checkpoint

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


class _NetworkSizes:
    """A network's sizes as a checkpoint entry (its ``state_dict`` is ``network.config``)."""

    def __init__(self, network: nn.Module) -> None:
        self.network = network

    def state_dict(self) -> dict:
        return dict(self.network.config)

    def load_state_dict(self, state: Mapping) -> None:
        """Nothing to restore: the sizes are the network's own."""


def model_objects(network: nn.Module) -> dict:
    """What ``model.pt`` holds: ``model_state_dict`` (the official container's key) and ``network_config`` (the sizes,
    which ``scripts.load_network`` reads back, so any size reloads exactly).

    Args:
        network: the bare ``SAMMed3D``.
    """
    return {"model_state_dict": network, NETWORK_CONFIG_KEY: _NetworkSizes(network)}


class _AtomicDiskSaver(DiskSaver):
    """Write to a temporary file in the folder, then rename: a kill mid-write never leaves a truncated checkpoint.

    With ``keep``, the interval checkpoints of the folder (``<prefix>_epoch=<N>.pt``) beyond the ``keep`` newest are
    removed after each write, also those of an earlier run that this one resumed (ignite prunes only its own).
    """

    def __init__(self, dirname: str, filename: str | None = None, keep: int | None = None) -> None:
        super().__init__(dirname=dirname, require_empty=False, atomic=True)
        self.filename = filename
        self.keep = keep

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        filename = self.filename or filename
        super().__call__(checkpoint, filename, metadata)
        path = os.path.join(self.dirname, filename)
        if os.path.exists(path):  # ignite's temporary file is private (0600); the checkpoint is not
            os.chmod(path, 0o644)
        found = re.fullmatch(r"(.*_(?:epoch|iteration))=(\d+)\.pt", filename)
        if self.keep and found:
            pattern = re.compile(rf"{re.escape(found.group(1))}=(\d+)\.pt")
            numbered = [(int(m.group(1)), p) for p in Path(self.dirname).iterdir() if (m := pattern.fullmatch(p.name))]
            for _, old in sorted(numbered)[: -self.keep]:
                logger.info(f"removed {old} (keep_checkpoints {self.keep})")
                old.unlink(missing_ok=True)

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
                keep = checkpoint.n_saved if name == "_interval_checkpoint" else None
                checkpoint.save_handler = _AtomicDiskSaver(
                    self.save_dir, getattr(checkpoint.save_handler, "filename", None), keep
                )
