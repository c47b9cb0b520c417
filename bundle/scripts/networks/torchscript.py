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
"""SAM-Med3D from its TorchScript export (``encoder.ts``, ``decoder.ts``) behind ``SAMMed3D``'s inference interface.

``scripts/export.py`` writes the two files; :class:`TorchScriptSAMMed3D` runs them (input checks in Python, since
tracing drops them), and ``configs/inference_torchscript.json`` makes the inference use it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch

from .exported import ExportedSAMMed3D

__all__ = ["ENCODER_FILE", "DECODER_FILE", "EXPORT_INFO", "TorchScriptSAMMed3D", "check_exported"]

ENCODER_FILE = "encoder.ts"
DECODER_FILE = "decoder.ts"
EXPORT_INFO = "sam_med3d_export.json"


logger = logging.getLogger(__name__)


def check_exported(encoder: str | os.PathLike | None = None, decoder: str | os.PathLike | None = None) -> None:
    """Raise a ``FileNotFoundError`` with the export command unless the given TorchScript files exist.

    Args:
        encoder: the path of ``encoder.ts``, or ``None`` to skip it.
        decoder: the path of ``decoder.ts``, or ``None`` to skip it.
    """
    for part, path in (("encoder", encoder), ("decoder", decoder)):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(
                f"TorchScript {part} not found: {path}. Export the bundle's weights first, in the bundle folder: "
                "`python -m scripts.export --ckpt_dir models --out_dir models`."
            )


def _load(
    path: str | os.PathLike, part: str, map_location: str | torch.device | None
) -> tuple[torch.jit.ScriptModule, dict]:
    """Load a module written by :func:`export_torchscript` and its ``sam_med3d_export.json``."""
    check_exported(**{part: path})
    extra = {EXPORT_INFO: ""}
    module = torch.jit.load(str(path), map_location=map_location, _extra_files=extra)
    info = json.loads(extra[EXPORT_INFO]) if extra[EXPORT_INFO] else {}
    if info.get("part") != part:
        raise ValueError(f"{path} is not a SAM-Med3D {part} written by scripts.export (its {EXPORT_INFO}: {info}).")
    if map_location is not None and torch.device(map_location).type != torch.device(info["traced_on"]).type:
        logger.warning(
            f"{path} was traced on {info['traced_on']} and is loaded to {map_location}; if it fails, export it on "
            "the device it runs on (`python -m scripts.export --device ...`)."
        )
    return module, info


class TorchScriptSAMMed3D(ExportedSAMMed3D):
    """``SAMMed3D``'s inference interface (``encode``, ``decode``, ``upsample``, ``forward``) on the exported modules.

    Args:
        encoder: ``encoder.ts`` (a path or a loaded module).
        decoder: ``decoder.ts`` (a path or a loaded module).
        map_location: where to load the modules (``torch.jit.load``'s ``map_location``); ``None`` keeps the device
            they were saved from.

    Raises:
        FileNotFoundError: a file is missing; the message gives the export command.
    """

    runtime = "TorchScript"

    def __init__(
        self, encoder: str | os.PathLike, decoder: str | os.PathLike, map_location: str | torch.device | None = None
    ) -> None:
        super().__init__()
        self.encoder, encoder_info = _load(encoder, "encoder", map_location)
        self.decoder, decoder_info = _load(decoder, "decoder", map_location)
        if encoder_info["img_size"] != decoder_info["img_size"]:
            raise ValueError(f"{encoder} and {decoder} were exported from networks of different sizes.")
        self.img_size: int = decoder_info["img_size"]
        self.mask_input_size: tuple[int, int, int] = tuple(decoder_info["mask_input_size"])  # type: ignore[assignment]

    def _encode(self, image: torch.Tensor) -> torch.Tensor:
        """The traced encoder on one checked window."""
        return self.encoder(image)

    def _decode(
        self,
        image_embeddings: torch.Tensor,
        points: torch.Tensor | None,
        point_labels: torch.Tensor | None,
        mask_prompt: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The traced decoder on checked prompts (``points`` ``None``: the mask-only method)."""
        if points is None:
            return self.decoder.decode_without_points(image_embeddings, mask_prompt)
        return self.decoder(image_embeddings, points, point_labels, mask_prompt)

    def upsample(self, low_res_logits: torch.Tensor) -> torch.Tensor:
        """Trilinear upsampling of low-resolution logits to the network input size.

        Args:
            low_res_logits: ``(K, M, 4g, 4g, 4g)``.
        """
        return self.decoder.upsample(low_res_logits)
