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
"""The one call that gives a ready network from a bundle: find the weights, size the network to them, load strictly.

Every entry point uses :func:`load_network`: ``inference.json`` and its overlays, the session, evaluation, export,
``convert``, the Auto3DSeg template and the MONAI Label app. The log names the file, its size and its modification
time, so a stray ``model.pt`` is visible.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path

import torch

from .networks import SAMMed3D
from .networks.checkpoint import check_state_dict, network_config, read_checkpoint

__all__ = [
    "WEIGHT_FILES",
    "DEMO_WEIGHTS",
    "find_weights",
    "network_kwargs",
    "describe_weights",
    "load_network",
    "load_weights",
]

logger = logging.getLogger(__name__)

# Looked for in the weights folder in this order: the zoo's ``model.pt`` (what ``download_large_files`` writes, or a
# converted or trained state_dict), the official checkpoint under its released name, and last the small demo model
# shipped in git (``docs/demo_model.md``).
WEIGHT_FILES = ("model.pt", "sam_med3d_turbo.pth", "demo_model.pt")
# File name of the demo model.
DEMO_WEIGHTS = "demo_model.pt"


def find_weights(ckpt_dir: str | os.PathLike) -> Path:
    """The first of :data:`WEIGHT_FILES` present in ``ckpt_dir``.

    Args:
        ckpt_dir: the bundle's ``models`` folder.

    Raises:
        FileNotFoundError: with the commands that fetch the released weights.
    """
    for name in WEIGHT_FILES:
        path = Path(ckpt_dir) / name
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"no weights in {ckpt_dir} (looked for {', '.join(WEIGHT_FILES)}): run "
        "`python -m monai.bundle download_large_files --bundle_path <bundle>` to fetch the released weights (see "
        "large_files.yml), or pass --ckpt_dir <folder with model.pt>."
    )


def describe_weights(path: str | os.PathLike) -> str:
    """``<path> (<size> MB, modified <local time>)``, how the log names a weights file."""
    stat = Path(path).stat()
    modified = time.strftime("%Y-%m-%d %H:%M", time.localtime(stat.st_mtime))
    return f"{path} ({stat.st_size / 1e6:.1f} MB, modified {modified})"


def load_network(
    ckpt_dir: str | os.PathLike = "models",
    weights: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    untrained: bool = False,
    **overrides,
) -> SAMMed3D:
    """A ready SAM-Med3D: the weights :func:`find_weights` picks (or ``weights``), a network sized to them, loaded
    strictly, in eval mode, on ``device``.

    Args:
        ckpt_dir: the folder searched for :data:`WEIGHT_FILES` (a bundle's ``models``).
        weights: a weights file to use instead of searching (official container, plain or DDP state_dict).
        device: where to put the network (default: CPU).
        untrained: return an untrained full-size network instead (pipeline smoke runs: its masks are meaningless).
        overrides: ``SAMMed3D`` arguments that replace those read from the weights (e.g. ``decoder_num_heads``).

    Raises:
        FileNotFoundError: no weights (the message says how to get them).
        ValueError: the file is not a readable SAM-Med3D checkpoint, or does not fit the network (missing and
            unexpected keys named).
    """
    if untrained:
        logger.warning("UNTRAINED network (untrained=True): the pipeline runs, but its masks are meaningless.")
        network = SAMMed3D(**overrides)
    else:
        path = Path(weights) if weights else find_weights(ckpt_dir)
        state, stored = read_checkpoint(path)
        config = {**network_config(state), **(stored or {}), **overrides}
        with torch.device("meta"):  # no random initialisation of weights about to be replaced (0.3-0.5 s)
            network = SAMMed3D(**config)
        check_state_dict(network, state, source=str(path))
        target = network.state_dict()  # every tensor of the network is a parameter or a persistent buffer
        state = {k: v.to(dtype=target[k].dtype) for k, v in state.items()}  # the file's float16 becomes float32
        network.load_state_dict(state, strict=True, assign=True)
        if path.name == DEMO_WEIGHTS:
            logger.warning(
                f"DEMO model ({path}): a small SAM-Med3D trained on one CT on a CPU, for trying the pipeline; fetch the "
                "released weights for real use (python -m monai.bundle download_large_files --bundle_path <bundle>)."
            )
        sizes = "the released sizes" if _is_released_size(config) else _sizes(config)
        boxes = "embedded (CVPR25_3DFM)" if network.box_embeddings else "a click at the centre, mask clipped"
        logger.info(f"weights: {describe_weights(path)}; network: {sizes}; box prompts: {boxes}")
    return network.to(device or "cpu").eval()


def network_kwargs(ckpt_dir: str | os.PathLike) -> dict:
    """``SAMMed3D`` sizes of the weights :func:`find_weights` picks in ``ckpt_dir`` (empty when there are none).

    Args:
        ckpt_dir: the folder searched for :data:`WEIGHT_FILES`.
    """
    try:
        state, stored = read_checkpoint(find_weights(ckpt_dir))
        return {**network_config(state), **(stored or {})}
    except FileNotFoundError:  # reported by load_network, with what to do
        return {}


def load_weights(network: SAMMed3D, ckpt_dir: str | os.PathLike, untrained: bool = False) -> SAMMed3D:
    """Load the weights :func:`find_weights` picks strictly into a network built by the caller.

    Prefer :func:`load_network`, which also sizes the network to the weights.

    Args:
        network: the network to fill.
        ckpt_dir: the folder searched for :data:`WEIGHT_FILES`.
        untrained: keep the network's initialisation (pipeline smoke runs only).
    """
    if untrained:
        logger.warning("UNTRAINED network (untrained=True): the pipeline runs, but its masks are meaningless.")
        return network
    path = find_weights(ckpt_dir)
    state, _ = read_checkpoint(path)
    check_state_dict(network, state, source=str(path))
    network.load_state_dict(state, strict=True)
    logger.info(f"weights: {describe_weights(path)}")
    return network


def _is_released_size(config: Mapping) -> bool:
    defaults = inspect.signature(SAMMed3D).parameters
    return all(
        tuple(v) == tuple(defaults[k].default) if isinstance(v, tuple) else v == defaults[k].default
        for k, v in config.items()
        if k != "box_embeddings"  # a prompt kind, not a size: the CVPR25 checkpoints have the released sizes
    )


def _sizes(config: Mapping) -> str:
    keys = ("encoder_embed_dim", "encoder_depth", "prompt_embed_dim", "num_class_prompts")
    return ", ".join(f"{k} {config[k]}" for k in keys)
