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
"""Strict loading of SAM-Med3D checkpoints (official container, plain state_dict, DDP) and conversion to model.pt.

Run from ``bundle/``: ``python -m scripts.networks.checkpoint convert sam_med3d_turbo.pth models/model.pt``.
"""

from __future__ import annotations

import os
import pickle
import re
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

__all__ = [
    "NETWORK_CONFIG_KEY",
    "DECODER_HEADS",
    "read_state_dict",
    "read_checkpoint",
    "network_config",
    "save_network",
    "check_state_dict",
    "load_checkpoint",
    "convert",
]

# Key of the network's sizes in a container written by :func:`save_network` (beside ``model_state_dict``).
NETWORK_CONFIG_KEY = "network_config"
# Decoder attention heads by decoder width (the released and demo models): the only size the weights do not show.
DECODER_HEADS = {384: 8, 96: 4}

_BLOCK = re.compile(r"image_encoder\.blocks\.(\d+)\.")
_LAYER = re.compile(r"mask_decoder\.transformer\.layers\.(\d+)\.")

_LISTED = 8  # keys named per category in an error message


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict | None]:
    """Read a checkpoint with ``weights_only=True``: its plain state_dict and the network sizes stored with it.

    Accepts the official container (``{"model_state_dict": ..., <other keys ignored>}``), the same with the sizes
    (``network_config``, written by :func:`save_network`), a plain state_dict and one saved from a DDP-wrapped model
    (every key prefixed with ``module.``). The sizes are ``None`` where the file holds none.

    Args:
        path: the checkpoint file.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a readable PyTorch checkpoint holding a state_dict (truncated, corrupted, or
            holding more than tensors): the message says to fetch it again and where its SHA-256 is.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint not found: {path}; the released weights are fetched as models/model.pt by "
            "`python -m monai.bundle download_large_files --bundle_path <bundle>` (see large_files.yml)."
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    # what torch raises for a truncated file (cut anywhere: OSError, struct.error and EOFError near the start,
    # RuntimeError further on) or one that holds more than tensors (UnpicklingError)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError, struct.error) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0].split(". ")[0].rstrip(".")
        raise ValueError(
            f"{path} ({path.stat().st_size:,} bytes) is not a readable PyTorch checkpoint (weights_only=True): "
            f"{first}. A truncated or corrupted download reads like this: remove it and fetch it again (`python -m "
            "monai.bundle download_large_files --bundle_path <bundle>` checks the released file's SHA-256 in "
            "large_files.yml), or pass a checkpoint that holds tensors only (a state_dict or the official container)."
        ) from e
    config = None
    if isinstance(obj, Mapping) and isinstance(obj.get("model_state_dict"), Mapping):
        if isinstance(obj.get(NETWORK_CONFIG_KEY), Mapping):
            config = dict(obj[NETWORK_CONFIG_KEY])
        obj = obj["model_state_dict"]
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(
            f"{path} holds no state_dict: expected a dict of tensors or a dict with 'model_state_dict' "
            f"(the official SAM-Med3D container)."
        )
    state = dict(obj)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state, config


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The plain state_dict of a checkpoint (see :func:`read_checkpoint`).

    Args:
        path: the checkpoint file.
    """
    return read_checkpoint(path)[0]


def network_config(state: Mapping[str, torch.Tensor]) -> dict:
    """``SAMMed3D`` keyword arguments that fit a state_dict, read from its keys and shapes.

    Every size shows in the shapes except the decoder's attention heads, taken from :data:`DECODER_HEADS` (8 for
    any other width); files written by ``networks.checkpoint.save_network`` (training) store them, and
    :func:`load_network` reads them from there.

    Args:
        state: a SAM-Med3D state_dict.

    Raises:
        ValueError: if the state_dict is not a SAM-Med3D one.
    """
    try:
        patch = state["image_encoder.patch_embed.proj.weight"]
        grid = state["image_encoder.pos_embed"].shape[1]
        blocks = sorted({int(m.group(1)) for k in state if (m := _BLOCK.match(k))})
        rel_pos = [state[f"image_encoder.blocks.{b}.attn.rel_pos_d"] for b in blocks]
        decoder_dim = int(state["image_encoder.neck.0.weight"].shape[0])
        layers = {int(m.group(1)) for k in state if (m := _LAYER.match(k))}
        mlp_dim = int(state["mask_decoder.transformer.layers.0.mlp.lin1.weight"].shape[0])
    except (KeyError, IndexError, AttributeError) as e:
        raise ValueError(f"not a SAM-Med3D state_dict (no {e} key): use a SAM-Med3D checkpoint.") from None
    embed_dim, patch_size = int(patch.shape[0]), int(patch.shape[2])
    global_blocks = [b for b, r in zip(blocks, rel_pos) if r.shape[0] == 2 * grid - 1]
    windowed = [r.shape[0] for r in rel_pos if r.shape[0] != 2 * grid - 1]
    class_rows = state.get("prompt_encoder.class_embeddings.weight")
    config = {
        "img_size": int(grid * patch_size),
        "patch_size": patch_size,
        "encoder_embed_dim": embed_dim,
        "encoder_depth": len(blocks),
        "encoder_num_heads": embed_dim // int(rel_pos[0].shape[1]),
        "encoder_global_attn_indexes": tuple(global_blocks),
        "prompt_embed_dim": decoder_dim,
        "decoder_depth": len(layers),
        "decoder_num_heads": DECODER_HEADS.get(decoder_dim, 8),
        "decoder_mlp_dim": mlp_dim,
        "num_class_prompts": 0 if class_rows is None else int(class_rows.shape[0]),
        # four point embeddings (negative, positive, two box corners): the CVPR25_3DFM checkpoints
        "box_embeddings": "prompt_encoder.point_embeddings.2.weight" in state,
    }
    if windowed:
        config["window_size"] = (int(windowed[0]) + 1) // 2
    return config


def save_network(network: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``{"model_state_dict": ..., "network_config": network.config}`` atomically, the official container's
    layout plus the sizes, so that :func:`scripts.load_network` rebuilds any size exactly (the decoder's attention
    heads do not show in the weights).

    Args:
        network: a ``SAMMed3D`` (its ``config`` holds its sizes).
        path: the file to write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    torch.save({"model_state_dict": network.state_dict(), NETWORK_CONFIG_KEY: dict(network.config)}, tmp)
    os.replace(tmp, path)
    return path


def _listed(keys: list[str]) -> str:
    more = f" ... (+{len(keys) - _LISTED} more)" if len(keys) > _LISTED else ""
    return ", ".join(keys[:_LISTED]) + more


def _is_new(key: str, allow_new: Sequence[str]) -> bool:
    return any(key == name or key.startswith(f"{name}.") for name in allow_new)


def check_state_dict(
    model: nn.Module, state: Mapping[str, torch.Tensor], source: str = "checkpoint", allow_new: Sequence[str] = ()
) -> None:
    """Raise a ``ValueError`` naming missing, unexpected and mis-shaped keys unless ``state`` fits ``model`` exactly.

    Args:
        model: the network to load into.
        state: the state_dict to check.
        source: name of the checkpoint, for the message.
        allow_new: modules of ``model`` that the checkpoint may lack (e.g. ``("prompt_encoder.class_embeddings",)``
            when adding class prompts to the released weights); their keys may be missing, nothing else.
    """
    expected = model.state_dict()
    missing = sorted(k for k in set(expected) - set(state) if not _is_new(k, allow_new))
    unexpected = sorted(set(state) - set(expected))
    mis_shaped = sorted(
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    )
    problems = [
        f"{len(keys)} {what}: {_listed(keys)}"
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", mis_shaped))
        if keys
    ]
    if problems:
        raise ValueError(
            f"{source} does not match the network ({'; '.join(problems)}). "
            "Use a SAM-Med3D checkpoint of this architecture (e.g. sam_med3d_turbo.pth) or fix the network size."
        )


def load_checkpoint(model: nn.Module, path: str | os.PathLike, allow_new: Sequence[str] = ()) -> nn.Module:
    """Load a checkpoint into ``model`` strictly.

    Args:
        model: the network.
        path: official ``.pth`` container, plain state_dict or DDP state_dict.
        allow_new: modules of ``model`` that the checkpoint may lack and that keep their initialisation, e.g.
            ``("prompt_encoder.class_embeddings",)``; every other key must match exactly.

    Returns:
        ``model``, for chaining in configs.
    """
    allow_new = tuple(allow_new)
    state = read_state_dict(path)
    check_state_dict(model, state, source=str(path), allow_new=allow_new)
    model.load_state_dict(state, strict=not allow_new)  # check_state_dict allowed only the new modules to be missing
    return model


def convert(src: str, dst: str, overwrite: bool = False) -> str:
    """Convert a checkpoint into a plain state_dict (``models/model.pt``), checked against a network of its sizes.

    Args:
        src: the official ``.pth`` file.
        dst: where to write the plain state_dict.
        overwrite: replace ``dst`` if it exists.

    Returns:
        ``dst``.
    """
    from .sam_med3d import SAMMed3D

    if Path(dst).exists() and not overwrite:
        raise FileExistsError(f"{dst} exists; pass --overwrite True to replace it.")
    state, stored = read_checkpoint(src)
    check_state_dict(SAMMed3D(**{**network_config(state), **(stored or {})}), state, source=src)
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{dst}.tmp-{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, dst)  # never leave a half-written model.pt
    print(f"wrote {dst}: {len(state)} tensors, {sum(v.numel() for v in state.values()):,} values")
    return dst


if __name__ == "__main__":
    import fire

    from ..errors import exit_on_user_error

    exit_on_user_error(fire.Fire, {"convert": convert})  # bad input: one ``error:`` line, exit status 1
