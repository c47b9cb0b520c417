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
"""Where the bundle finds its weights, and the message when there are none."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from .networks.checkpoint import load_checkpoint

__all__ = ["WEIGHT_FILES", "DEMO_WEIGHTS", "DEMO_NETWORK", "find_weights", "network_kwargs", "load_weights"]

WEIGHT_FILES = ("model.pt", "sam_med3d_turbo.pth", "demo_model.pt")
"""Looked for in ``models/`` in this order: a converted or trained state_dict, the official checkpoint, and last the
small demo model shipped in git (``docs/demo_model.md``)."""
DEMO_WEIGHTS = "demo_model.pt"
DEMO_NETWORK = {
    "encoder_embed_dim": 96,
    "encoder_depth": 4,
    "encoder_num_heads": 4,
    "encoder_global_attn_indexes": (3,),
    "prompt_embed_dim": 96,
    "decoder_num_heads": 4,
    "decoder_mlp_dim": 384,
}
"""``SAMMed3D`` sizes of the demo model (the released checkpoints use the defaults)."""

logger = logging.getLogger(__name__)


def find_weights(ckpt_dir: str) -> Path:
    """The first of :data:`WEIGHT_FILES` present in ``ckpt_dir``.

    Args:
        ckpt_dir: the bundle's ``models`` folder.

    Raises:
        FileNotFoundError: with the commands that fetch the official weights.
    """
    for name in WEIGHT_FILES:
        path = Path(ckpt_dir) / name
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"no weights in {ckpt_dir} (looked for {', '.join(WEIGHT_FILES)}): run "
        "`python -m monai.bundle download_large_files --bundle_path .` in the bundle folder to fetch "
        "sam_med3d_turbo.pth (see large_files.yml), or pass --ckpt_dir <folder with model.pt>."
    )


def network_kwargs(ckpt_dir: str) -> dict:
    """``SAMMed3D`` sizes for the weights that :func:`find_weights` picks: the demo's, or the defaults.

    Args:
        ckpt_dir: the bundle's ``models`` folder.
    """
    try:
        demo = find_weights(ckpt_dir).name == DEMO_WEIGHTS
    except FileNotFoundError:  # reported by load_weights, with what to do
        demo = False
    return dict(DEMO_NETWORK) if demo else {}


def load_weights(network: torch.nn.Module, ckpt_dir: str, untrained: bool = False) -> torch.nn.Module:
    """Load the bundle's weights strictly into ``network``, or leave it untrained when explicitly asked.

    Args:
        network: the network to fill.
        ckpt_dir: the bundle's ``models`` folder.
        untrained: keep the random initialisation (pipeline smoke runs only: the masks are meaningless).

    Returns:
        ``network``.
    """
    if untrained:
        logger.warning("UNTRAINED network (untrained=True): the pipeline runs, but its masks are meaningless.")
        return network
    path = find_weights(ckpt_dir)
    if path.name == DEMO_WEIGHTS:
        logger.warning(
            f"DEMO model ({path}): a small SAM-Med3D trained on one CT on a CPU, for trying the pipeline; fetch the "
            "released weights for real use (python -m monai.bundle download_large_files --bundle_path .)."
        )
    logger.info(f"loading weights from {path}")
    return load_checkpoint(network, path)
